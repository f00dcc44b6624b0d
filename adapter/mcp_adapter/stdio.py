"""A child MCP server process spoken to over stdin/stdout.

Unlike the SDK's `stdio_client`, the child's stderr is read line by line into
the adapter's JSON log tagged with the source name, the process runs in its
own process group, and shutdown is SIGTERM to the group, then SIGKILL after a
grace period. When the child exits, the read stream ends, which fails every
request in flight with CONNECTION_CLOSED instead of leaving it hanging.

Stdout lines that are not JSON-RPC (a stray `print`) are dropped and reported
in the log as their count grows (first, 10th, 100th...), never per line, and
never fatal; lines are buffered up to a bound, so a child writing without
newlines cannot exhaust the adapter's memory.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass

import anyio
import anyio.abc
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


async def _lines(stream: anyio.abc.ByteReceiveStream, limit: int, source: str, name: str) -> AsyncIterator[bytes]:
    """The stream's lines (without the newline), buffering at most `limit` bytes.

    A longer line is dropped with a warning (the rest of it up to the next newline too), so a
    child writing without newlines cannot make the adapter buffer without bound.
    """
    buffer = bytearray()
    scanned = 0  # bytes at the start of `buffer` known to hold no newline
    skipping = False
    async for chunk in stream:
        buffer += chunk
        start = 0
        while (end := buffer.find(b"\n", scanned)) != -1:
            if not skipping:
                yield bytes(buffer[start:end])
            skipping = False
            start = scanned = end + 1
        del buffer[:start]
        scanned = len(buffer)
        if len(buffer) > limit:
            if not skipping:
                logger.warning(
                    "child wrote a %s line longer than %d bytes; dropped it", name, limit, extra={"source": source}
                )
            skipping = True
            buffer.clear()
            scanned = 0


async def _pump_stdout(
    proc: anyio.abc.Process, out: MemoryObjectSendStream[SessionMessage | Exception], source: str
) -> None:
    """Forward the JSON-RPC lines of stdout; anything else is counted and reported, never fatal."""
    assert proc.stdout is not None
    garbage = _Garbage(source)
    async with out:
        with suppress(anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            async for line in _lines(proc.stdout, _MAX_MESSAGE_BYTES, source, "stdout"):
                if not line.strip():
                    continue
                message = _parse(line)
                if message is None:
                    garbage.saw(line)
                else:
                    await out.send(message)


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
        async for line in _lines(proc.stderr, _MAX_STDERR_BUFFER, source, "stderr"):
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
