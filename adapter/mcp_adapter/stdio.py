"""A child MCP server process spoken to over stdin/stdout.

Unlike the SDK's `stdio_client`, the child's stderr is read line by line into
the adapter's JSON log tagged with the source name, the process runs in its
own process group, and shutdown is SIGTERM to the group, then SIGKILL after a
grace period. When the child exits, the read stream ends, which fails every
request in flight with CONNECTION_CLOSED instead of leaving it hanging.

Stdout lines that are not JSON-RPC (a stray `print`) are dropped and reported
in the log as their count grows (first, 10th, 100th...), never per line, and
never fatal; lines are buffered up to a bound, so a child writing without
newlines cannot exhaust the adapter's memory. A line over the bound is dropped,
but when it never ended (a runaway print without newline) the next message is
glued to its end: the reader finds that message by matching brackets back from
the newline and delivers it, so only the runaway bytes are lost, not the call.
"""

from __future__ import annotations

import logging
import os
import re
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass

import anyio
import anyio.abc
import anyio.to_thread
import mcp_types as types
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.shared.message import SessionMessage

logger = logging.getLogger("mcp_adapter.child")

_MAX_STDERR_LINE = 4000
_EXCERPT = 120
_MAX_STDERR_BUFFER = 1024 * 1024
# One JSON-RPC message per stdout line; larger ones (say, huge base64 images) are refused.
_MAX_MESSAGE_BYTES = 32 * 1024 * 1024


@dataclass
class ChildSpec:
    source: str
    command: str
    args: list[str]
    env: dict[str, str]
    cwd: str | None
    grace_seconds: float


@dataclass
class ChildStreams:
    read: MemoryObjectReceiveStream[SessionMessage | Exception]
    write: MemoryObjectSendStream[SessionMessage]
    process: anyio.abc.Process
    exited: anyio.Event


def _parse(line: bytes) -> SessionMessage | None:
    try:
        return SessionMessage(types.jsonrpc_message_adapter.validate_json(line, by_name=False))
    except ValueError:
        return None


@dataclass
class _Garbage:
    """Counts stdout lines that are not JSON-RPC; reports the first and then every tenfold more."""

    source: str
    count: int = 0
    next_report: int = 1

    def saw(self, line: bytes) -> None:
        self.count += 1
        if self.count < self.next_report:
            return
        self.next_report *= 10
        excerpt = line[:_EXCERPT].decode("utf-8", "replace")
        logger.warning(
            "child wrote %d line(s) to stdout that are not JSON-RPC and were dropped (stdout carries only the "
            "protocol: the server should log to stderr); latest: %r",
            self.count,
            excerpt,
            extra={"source": self.source, "garbage_lines": self.count},
        )


async def _lines(stream: anyio.abc.ByteReceiveStream, limit: int) -> AsyncIterator[tuple[bytes, bool]]:
    """The stream's lines (without the newline), each with whether it overflowed `limit`.

    At most about `limit` bytes are buffered: a longer line is cut down as it grows to its tail from
    the first `{` in the newest half of the buffer (a JSON-RPC message can only start there), and
    is yielded as that tail with `True`, so the reader can still recover a message the child wrote
    after a line it never ended (see `recover_message`). Bytes without a `{` are simply discarded,
    so a runaway writer costs almost no memory.
    """
    buffer = bytearray()
    scanned = 0  # bytes at the start of `buffer` known to hold no newline
    overflowed = False
    async for chunk in stream:
        buffer += chunk
        start = 0
        while (end := buffer.find(b"\n", scanned)) != -1:
            yield bytes(buffer[start:end]), overflowed
            overflowed = False
            start = scanned = end + 1
        del buffer[:start]
        if len(buffer) > limit:
            overflowed = True
            brace = buffer.find(b"{", len(buffer) - limit // 2)
            del buffer[: len(buffer) if brace == -1 else brace]
        scanned = len(buffer)


_STRUCTURE = re.compile(rb'[{}\[\]"]')


def _object_start(segment: bytes) -> int | None:
    """Where the JSON object that ends `segment` starts, by matching brackets backwards; None if not in it.

    Scanning backwards from the end never enters the (arbitrary) bytes before the object; a quote
    belongs to a string delimiter unless an odd number of backslashes precede it.
    """
    depth = 0
    in_string = False
    end = len(segment)
    for match in _STRUCTURE.finditer(segment[::-1]):
        index = end - 1 - match.start()
        char = segment[index]
        if char == 0x22:  # "
            slashes = 0
            while index - slashes > 0 and segment[index - slashes - 1] == 0x5C:
                slashes += 1
            if slashes % 2 == 0:
                in_string = not in_string
        elif in_string:
            continue
        elif char in b"}]":
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                return index if char == 0x7B else None
            if depth < 0:
                return None
    return None


def recover_message(tail: bytes) -> SessionMessage | None:
    """The JSON-RPC message a child wrote right after a line it never ended, if `tail` ends with one.

    A runaway print without a newline glues itself to the next message; the message is the JSON
    object that ends the line, so it is found from the end, whatever came before it.
    """
    segment = tail.rstrip()
    if not segment.endswith(b"}"):
        return None
    start = _object_start(segment)
    return None if start is None else _parse(segment[start:])


async def _pump_stdout(
    proc: anyio.abc.Process, out: MemoryObjectSendStream[SessionMessage | Exception], source: str
) -> None:
    """Forward the JSON-RPC lines of stdout; anything else is counted and reported, never fatal."""
    assert proc.stdout is not None
    garbage = _Garbage(source)
    async with out:
        with suppress(anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            async for line, overflowed in _lines(proc.stdout, _MAX_MESSAGE_BYTES):
                if overflowed:
                    message = await _after_overflow(line, source)
                elif not line.strip():
                    continue
                else:
                    message = _parse(line)
                    if message is None:
                        garbage.saw(line)
                if message is not None:
                    await out.send(message)


async def _after_overflow(tail: bytes, source: str) -> SessionMessage | None:
    """Report an over-long stdout line, and resynchronise on a message glued to its end, if any."""
    # A bracket scan of up to `limit / 2` bytes is too slow for the event loop: run it aside.
    message = await anyio.to_thread.run_sync(recover_message, tail)
    if message is None:
        logger.warning(
            "child wrote a stdout line longer than %d bytes; dropped it", _MAX_MESSAGE_BYTES, extra={"source": source}
        )
    else:
        logger.warning(
            "child wrote more than %d bytes to stdout without a newline; dropped them and kept the JSON-RPC "
            "message that followed",
            _MAX_MESSAGE_BYTES,
            extra={"source": source},
        )
    return message


async def _pump_stdin(proc: anyio.abc.Process, inbox: MemoryObjectReceiveStream[SessionMessage]) -> None:
    assert proc.stdin is not None
    with suppress(anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
        async with inbox:
            async for msg in inbox:
                data = msg.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n"
                await proc.stdin.send(data.encode())


async def _pump_stderr(proc: anyio.abc.Process, source: str) -> None:
    assert proc.stderr is not None
    with suppress(anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
        async for line, overflowed in _lines(proc.stderr, _MAX_STDERR_BUFFER):
            if overflowed:
                logger.warning(
                    "child wrote a stderr line longer than %d bytes; logged its end",
                    _MAX_STDERR_BUFFER,
                    extra={"source": source},
                )
            text = line.decode("utf-8", "replace").rstrip()
            if text:
                logger.info(text[:_MAX_STDERR_LINE], extra={"source": source, "stream": "stderr"})


def _signal_group(proc: anyio.abc.Process, sig: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


async def stop_child(proc: anyio.abc.Process, grace: float, source: str) -> None:
    """SIGTERM the child's process group, SIGKILL it if still alive after `grace` seconds."""
    if proc.returncode is not None:
        return
    _signal_group(proc, signal.SIGTERM)
    with anyio.move_on_after(grace):
        await proc.wait()
        return
    logger.warning("child did not exit %.1fs after SIGTERM; killing it", grace, extra={"source": source})
    _signal_group(proc, signal.SIGKILL)
    with anyio.move_on_after(2):
        await proc.wait()


@asynccontextmanager
async def spawn_child(spec: ChildSpec) -> AsyncIterator[ChildStreams]:
    """Start the child; on exit stop it cleanly whatever state it is in."""
    proc = await anyio.open_process(
        [spec.command, *spec.args],
        env=spec.env,
        cwd=spec.cwd,
        start_new_session=True,  # own process group, so signals reach grandchildren too
    )
    logger.info("child started", extra={"source": spec.source, "pid": proc.pid})
    read_send, read_recv = anyio.create_memory_object_stream[SessionMessage | Exception](32)
    write_send, write_recv = anyio.create_memory_object_stream[SessionMessage](32)
    exited = anyio.Event()

    async def watch() -> None:
        code = await proc.wait()
        exited.set()
        logger.info("child exited", extra={"source": spec.source, "pid": proc.pid, "exit_code": code})

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_pump_stdout, proc, read_send, spec.source)
            tg.start_soon(_pump_stdin, proc, write_recv)
            tg.start_soon(_pump_stderr, proc, spec.source)
            tg.start_soon(watch)
            try:
                yield ChildStreams(read_recv, write_send, proc, exited)
            finally:
                with anyio.CancelScope(shield=True):
                    write_send.close()
                    await stop_child(proc, spec.grace_seconds, spec.source)
                tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            if proc.returncode is None:
                _signal_group(proc, signal.SIGKILL)
            await proc.aclose()
