"""A bounded load test (loopback only, ~20 s of traffic): concurrent handshake sessions and
stateless calls through a PostgreSQL-backed gateway with quotas on. Figures are printed and
written to tests/artifacts/hardening-load.json; assertions are about correctness only."""

from __future__ import annotations

from pathlib import Path

from tests.gateway.support import Spawn
from tests.hardening.load import run_load


async def test_load_with_quotas(spawn: Spawn, feature: str, tmp_path: Path, pg_dsn: str) -> None:
    # The quota is set so that it runs out part-way: both admissions and refusals are exercised.
    figures = await run_load(
        spawn, feature, tmp_path, pg_dsn, seconds=15, workers=16, sessions=16, quota=1500, name="hardening-load"
    )
    assert figures["quotaRefusals"] > 0 and figures["admitted"] == figures["quota"]
