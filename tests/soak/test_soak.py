"""The load scenario of tests/hardening, run longer and wider (`make soak`; not in the default run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gateway.support import Spawn
from tests.hardening.load import run_load

pytestmark = pytest.mark.soak


async def test_soak_with_quotas(spawn: Spawn, feature: str, tmp_path: Path, pg_dsn: str) -> None:
    figures = await run_load(
        spawn, feature, tmp_path, pg_dsn, seconds=300, workers=32, sessions=48, quota=1_000_000, name="soak-load"
    )
    # Memory after five minutes stays within a bound of the start (no per-call leak).
    assert figures["rssAfterMiB"] - figures["rssBeforeMiB"] < 150, figures
