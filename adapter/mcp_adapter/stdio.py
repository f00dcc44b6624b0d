"""A child MCP server process spoken to over stdin/stdout.

Unlike the SDK's `stdio_client`, the child's stderr is read line by line into
the adapter's JSON log tagged with the source name, the process runs in its
own process group, and shutdown is SIGTERM to the group, then SIGKILL after a
grace period. When the child exits, the read stream ends, which fails every
request in flight with CONNECTION_CLOSED instead of leaving it hanging.
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


def _parse(line: str) -> SessionMessage | Exception:
    try:
        return SessionMessage(types.jsonrpc_message_adapter.validate_json(line, by_name=False))
    except ValueError as exc:
        return exc


async def _pump_stdout(proc: anyio.abc.Process, out: MemoryObjectSendStream[SessionMessage | Exception]) -> None:
    assert proc.stdout is not None
    buffer = b""
    async with out:
        with suppress(anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            async for chunk in proc.stdout:
                *lines, buffer = (buffer + chunk).split(b"\n")
                for line in lines:
                    if line.strip():
                        await out.send(_parse(line.decode("utf-8", "replace")))


async def _pump_stdin(proc: anyio.abc.Process, inbox: MemoryObjectReceiveStream[SessionMessage]) -> None:
    assert proc.stdin is not None
    with suppress(anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
        async with inbox:
            async for msg in inbox:
                data = msg.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n"
                await proc.stdin.send(data.encode())


async def _pump_stderr(proc: anyio.abc.Process, source: str) -> None:
    assert proc.stderr is not None
    buffer = b""
    with suppress(anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
        async for chunk in proc.stderr:
            *lines, buffer = (buffer + chunk).split(b"\n")
            for line in lines:
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
            tg.start_soon(_pump_stdout, proc, read_send)
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
