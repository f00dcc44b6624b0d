"""Bookkeeping deferred to after a request's response (mcp_adapter/after_response.py).

A tool call's metrics and audit record wait until the answer is sent, but are never lost:
they run when the request ends, in the context they were deferred in, and anywhere outside a
request (or after it ended) they run at once.
"""

from __future__ import annotations

import asyncio
import logging
from contextvars import ContextVar

import pytest
from mcp_adapter.after_response import defer, deferring

pytestmark = pytest.mark.anyio

caller: ContextVar[str] = ContextVar("caller", default="nobody")


def test_deferred_work_runs_when_the_request_ends_in_order() -> None:
    done: list[str] = []
    with deferring():
        defer(lambda: done.append("metrics"))
        defer(lambda: done.append("audit"))
        done.append("response sent")
    assert done == ["response sent", "metrics", "audit"]


def test_outside_a_request_work_runs_at_once() -> None:
    done: list[str] = []
    defer(lambda: done.append("audit"))
    assert done == ["audit"]


def test_deferred_work_sees_the_context_it_was_deferred_in() -> None:
    seen: list[str] = []
    with deferring():
        token = caller.set("key:alice")
        defer(lambda: seen.append(caller.get()))
        caller.reset(token)  # the request moved on before its bookkeeping ran
    assert seen == ["key:alice"]


def test_a_failing_call_is_logged_and_the_rest_still_run(caplog: pytest.LogCaptureFixture) -> None:
    done: list[str] = []

    def broken() -> None:
        raise RuntimeError("metrics backend gone")

    with caplog.at_level(logging.ERROR, logger="mcp_adapter.after_response"), deferring():
        defer(broken)
        defer(lambda: done.append("audit"))
    assert done == ["audit"]
    assert "post-response bookkeeping failed" in caplog.text and "metrics backend gone" in caplog.text


def test_deferred_work_runs_even_when_the_request_fails() -> None:
    done: list[str] = []
    with pytest.raises(ValueError), deferring():
        defer(lambda: done.append("audit"))
        raise ValueError("the client left")
    assert done == ["audit"]


async def test_a_task_outliving_its_request_runs_its_work_at_once() -> None:
    """A task copies the request's context; once the request has ended, nobody would run its batch."""
    done: list[str] = []
    release = asyncio.Event()

    async def background() -> None:
        await release.wait()
        defer(lambda: done.append("late audit"))
        done.append("after defer")

    with deferring():
        task = asyncio.get_running_loop().create_task(background())
    assert done == []
    release.set()
    await task
    assert done == ["late audit", "after defer"]
