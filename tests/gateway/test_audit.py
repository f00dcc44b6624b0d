"""Audit log in PostgreSQL: every tool call recorded with arguments hashed, paged through
the admin API, and no record lost while the database is unreachable."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from mcp_gateway.audit import AuditWriter
from mcp_gateway.store.base import AuditQuery, AuditRecord
from mcp_gateway.store.postgres import PostgresStore

from tests.gateway.support import ADMIN_HEADERS, GatewayProc, Spawn, TcpProxy, mcp_client, profile, start_gateway


def audit_items(gateway: GatewayProc, **params: Any) -> dict[str, Any]:
    with gateway.admin() as admin:
        response = admin.get("/admin/v1/audit", params=params)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def pending(gateway: GatewayProc) -> float:
    for line in httpx.get(f"{gateway.base}/metrics", headers=ADMIN_HEADERS).text.splitlines():
        if line.startswith("mcp_gateway_audit_pending "):
            return float(line.split()[1])
    return -1


async def test_audit_survives_database_outage(
    spawn: Spawn, feature: str, routing: Callable[[dict[str, Any]], Path], pg_dsn: str
) -> None:
    parts = urlsplit(pg_dsn)
    database = await TcpProxy(parts.port or 5432).start()
    proxied = urlunsplit(parts._replace(netloc=f"{parts.username}:{parts.password}@127.0.0.1:{database.port}"))
    config = routing(
        {
            "tenants": [{"id": "acme"}],
            "profiles": [profile("open", "acme", [("feat", feature)], auth={"mode": "none"})],
        }
    )
    gateway = start_gateway(spawn, config, dsn=proxied)
    try:
        async with mcp_client(gateway.url("open")) as client:
            for i in range(3):
                await client.call_tool("echo", {"text": f"secret-value-{i}"})
            await client.call_tool("fail", {"message": "boom"})

            database.target_port = None  # the database becomes unreachable
            database.cut()
            for i in range(4):
                await client.call_tool("add", {"a": i, "b": 1})
            deadline = time.monotonic() + 5
            while pending(gateway) < 4 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert pending(gateway) >= 4

        database.target_port = parts.port or 5432
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if len(audit_items(gateway, limit=100)["items"]) == 8:
                    break
            except AssertionError:
                pass
            time.sleep(0.3)
        time.sleep(1.0)  # any duplicate would land with a late retry; give it the chance to show
        items = audit_items(gateway, limit=100)["items"]
        assert len(items) == 8
        assert [i["tool"] for i in items] == ["add"] * 4 + ["fail"] + ["echo"] * 3
        assert {i["outcome"] for i in items} == {"ok", "tool_error"}
        assert all(i["tenant"] == "acme" and i["profile"] == "open" and i["caller"] == "anonymous" for i in items)
        echo = items[-1]
        assert echo["arguments"].startswith("hmac-sha256:") and "secret-value" not in str(items)
        # Keyed: hashing candidate arguments (the dictionary attack on low-entropy values) finds nothing.
        plain = hashlib.sha256(b'{"text":"secret-value-0"}').hexdigest()
        assert all(plain not in str(i["arguments"]) for i in items)
        assert echo["latencyMs"] > 0

        first_page = audit_items(gateway, limit=5)
        assert len(first_page["items"]) == 5
        second_page = audit_items(gateway, limit=5, before=first_page["nextBefore"])
        assert [i["tool"] for i in second_page["items"]] == ["echo"] * 3
        assert second_page["nextBefore"] is None
        assert len(audit_items(gateway, tool="fail")["items"]) == 1
    finally:
        await database.close()


class AckDropper:
    """A TCP forwarder to PostgreSQL that, once armed, swallows the reply to an INSERT and drops
    the connection: the write commits and its acknowledgement is lost."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.armed = False
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> AckDropper:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers.update({writer, up_writer})

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, replies: bool) -> None:
            try:
                while data := await src.read(65536):
                    if replies and self.armed and b"INSERT 0 " in data:
                        # PostgreSQL answers once the batch has committed (at Sync): lose that answer.
                        self._cut()
                        return
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer, False), pipe(up_reader, writer, True))

    def _cut(self) -> None:
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def close(self) -> None:
        self._cut()
        if self._server is not None:
            self._server.close()


async def test_audit_write_is_stored_once_when_its_ack_is_lost(pg_dsn: str) -> None:
    """The batch reaches PostgreSQL and commits, the reply is lost, the writer retries: one row per record."""
    parts = urlsplit(pg_dsn)
    dropper = await AckDropper(parts.port or 5432).start()
    netloc = f"{parts.username}:{parts.password}@127.0.0.1:{dropper.port}"
    # Plain text on loopback, so the forwarder can see which reply acknowledges the INSERT.
    proxied = urlunsplit(parts._replace(netloc=netloc, query="sslmode=disable"))
    store = PostgresStore(proxied)
    await store.start()
    writer = AuditWriter(store)
    try:
        for i in range(5):
            writer.record(AuditRecord("acme", "p", "anonymous", f"tool{i}", "ok", 1.0))
        dropper.armed = True
        assert not await writer.flush()  # the write was sent; its acknowledgement never came
        assert writer.pending == 5
        dropper.armed = False
        assert await writer.flush()  # the retry
        assert writer.pending == 0
        rows = await store.query_audit(AuditQuery(tenant="acme", limit=100))
        assert sorted(r.tool for r in rows) == [f"tool{i}" for i in range(5)]
        assert len({r.uid for r in rows}) == 5
    finally:
        await store.close()
        await dropper.close()


async def test_concurrent_flushes_lose_nothing(pg_dsn: str) -> None:
    """The background flush, an admin audit query and shutdown may flush at once, while calls keep recording."""
    store = PostgresStore(pg_dsn)
    await store.start()
    writer = AuditWriter(store, batch=3)
    try:
        for i in range(10):
            writer.record(AuditRecord("acme", "p", "anonymous", f"tool{i}", "ok", 1.0))
        assert all(await asyncio.gather(writer.flush(), writer.flush(), writer.flush()))
        assert writer.pending == 0
        rows = await store.query_audit(AuditQuery(tenant="acme", limit=100))
        assert sorted(r.tool for r in rows) == sorted(f"tool{i}" for i in range(10))
    finally:
        await store.close()


async def test_records_added_during_a_flush_are_kept(pg_dsn: str) -> None:
    """A full buffer sheds its oldest record while a write is in flight: the new records stay queued."""
    store = PostgresStore(pg_dsn)
    await store.start()
    writer = AuditWriter(store, batch=5, max_buffer=5)
    try:
        for i in range(5):
            writer.record(AuditRecord("acme", "p", "anonymous", f"old{i}", "ok", 1.0))
        flushing = asyncio.ensure_future(writer.flush())
        await asyncio.sleep(0)  # the flush has sent its batch and waits for PostgreSQL
        for i in range(2):
            writer.record(AuditRecord("acme", "p", "anonymous", f"new{i}", "ok", 1.0))
        assert await flushing  # the new records were not in the batch: they stay queued and go next
        assert writer.pending == 0
        rows = await store.query_audit(AuditQuery(tenant="acme", limit=100))
        assert sorted(r.tool for r in rows) == [*(f"new{i}" for i in range(2)), *(f"old{i}" for i in range(5))]
    finally:
        await store.close()
