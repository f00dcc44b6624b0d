"""The admin API fuzzed from its own OpenAPI document (schemathesis) against a real gateway
process with a real PostgreSQL: valid and invalid inputs for every operation, with and
without the admin token. No answer is a 5xx or carries a stack trace."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.generation import GenerationMode

from tests.gateway.support import ADMIN_HEADERS, ADMIN_TOKEN, Spawn, profile, start_gateway

EXAMPLES_PER_OPERATION = 25


def test_admin_api_from_its_openapi_document(
    spawn: Spawn, feature: str, routing: Callable[[dict[str, Any]], Path], pg_dsn: str
) -> None:
    config = routing(
        {
            "tenants": [{"id": "acme", "limits": {"quota": {"daily": 10}}}, {"id": "globex"}],
            "profiles": [
                profile("acme-dev", "acme", [("feat", feature)]),
                profile("gx", "globex", [("feat", feature)]),
            ],
        }
    )
    gateway = start_gateway(spawn, config, dsn=pg_dsn, name="gw-schemathesis")
    document = httpx.get(f"{gateway.base}/openapi.json", headers=ADMIN_HEADERS, timeout=10).json()
    schema = schemathesis.openapi.from_dict(document).include(path_regex="^/admin/")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 5, [op.label for op in operations]

    tokens = st.sampled_from([f"Bearer {ADMIN_TOKEN}", f"Bearer {ADMIN_TOKEN}", "Bearer wrong", "", "Basic YTpi"])
    seen: dict[str, set[int]] = {}
    with httpx.Client(base_url=gateway.base, timeout=15) as http:
        for operation in operations:
            cases = st.one_of(
                operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)
            )

            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=cases, token=tokens)
            def one(case: Any, token: str) -> None:
                request = case.as_transport_kwargs(base_url=gateway.base)
                headers = {k: str(v) for k, v in (request.get("headers") or {}).items() if k.lower() != "authorization"}
                if token:
                    headers["Authorization"] = token
                response = http.request(
                    request["method"],
                    request["url"],
                    params=request.get("params"),
                    headers=headers,
                    json=request.get("json"),
                    content=request.get("data") if isinstance(request.get("data"), bytes | str) else None,
                )
                seen.setdefault(case.operation.label, set()).add(response.status_code)
                assert response.status_code < 500, (case.operation.label, response.status_code, response.text[:300])
                assert "Traceback" not in response.text and 'File "' not in response.text
                if not token.startswith(f"Bearer {ADMIN_TOKEN}"):
                    # Never served without the token (FastAPI may refuse an unparsable body first: 422).
                    assert response.status_code in (401, 422), (case.operation.label, token, response.status_code)

            one()
    # Every operation was reached with valid credentials and answered something other than 401.
    assert all(codes - {401} for codes in seen.values()), seen
    assert gateway.process.alive()
