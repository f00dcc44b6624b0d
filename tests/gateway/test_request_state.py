"""2026-07-28 input-required rounds through the gateway: the upstream's requestState travels in a
gateway-sealed envelope bound to profile, caller and request, so no one else can replay it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.gateway.support import GatewayProc, Spawn, modern_call, modern_headers, profile, start_gateway

TOOL = "test_input_required_result_request_state"
CONFIRM = {"confirm": {"action": "accept", "content": {"ok": True}}}


def call(gateway: GatewayProc, pid: str, key: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    body = modern_call(TOOL, {})
    body["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"] = {"elicitation": {"form": {}}}
    body["params"].update(params or {})
    headers = {**modern_headers("tools/call", TOOL), "Authorization": f"Bearer {key}"}
    response = httpx.post(gateway.url(pid), json=body, headers=headers, timeout=10)
    if response.headers["content-type"].startswith("text/event-stream"):
        data = [line[5:] for line in response.text.splitlines() if line.startswith("data:")]
        answer: dict[str, Any] = json.loads(data[-1])
    else:
        answer = response.json()
    answer["status"] = response.status_code
    return answer


def mint(gateway: GatewayProc, tenant: str) -> str:
    with gateway.admin() as admin:
        key: str = admin.post(f"/admin/v1/tenants/{tenant}/keys", json={}).json()["key"]
    return key


async def test_request_state_is_bound_to_profile_and_caller(
    spawn: Spawn, feature: str, routing: Callable[[dict[str, Any]], Path]
) -> None:
    config = routing(
        {
            "tenants": [{"id": "acme"}, {"id": "globex"}],
            "profiles": [
                profile("acme-p", "acme", [("feat", feature)], limits={"quota": {"daily": 3}}),
                profile("globex-p", "globex", [("feat", feature)]),
            ],
        }
    )
    gateway = start_gateway(spawn, config)
    alice, bob, mallory = mint(gateway, "acme"), mint(gateway, "acme"), mint(gateway, "globex")

    round_one = call(gateway, "acme-p", alice)["result"]
    assert round_one["resultType"] == "input_required"
    state = round_one["requestState"]
    assert "awaiting-confirm" not in state  # sealed: neither the upstream's nor the gateway's is readable

    def refused(answer: dict[str, Any]) -> None:
        assert answer["error"]["code"] == -32602, answer
        message = answer["error"]["message"]
        assert message.startswith("Invalid or expired requestState") and "start over" in message

    refused(call(gateway, "acme-p", bob, {"inputResponses": CONFIRM, "requestState": state}))  # another caller
    refused(call(gateway, "globex-p", mallory, {"inputResponses": CONFIRM, "requestState": state}))  # another tenant
    tampered = state[:-6] + ("A" if state[-6] != "A" else "B") + state[-5:]
    refused(call(gateway, "acme-p", alice, {"inputResponses": CONFIRM, "requestState": tampered}))
    other_args = {"inputResponses": CONFIRM, "requestState": state, "arguments": {"extra": 1}}
    refused(call(gateway, "acme-p", alice, other_args))  # bound to the request, too

    done = call(gateway, "acme-p", alice, {"inputResponses": CONFIRM, "requestState": state})
    assert done["result"]["content"][0]["text"] == "state-ok: confirmation received"
    # Quota 3 per caller: round one and the tampered retry were charged; the genuine continuation was not,
    # nor were the refused ones (they never reached the upstream).
    assert used(gateway) == 2

    # An envelope is a free pass once: replaying it (it stays valid for an hour) is charged like a new call.
    again = call(gateway, "acme-p", alice, {"inputResponses": CONFIRM, "requestState": state})
    assert again["result"]["content"][0]["text"] == "state-ok: confirmation received"
    assert used(gateway) == 3
    replayed = call(gateway, "acme-p", alice, {"inputResponses": CONFIRM, "requestState": state})
    assert "quota exceeded" in replayed["error"]["message"], replayed
    # ...and a call that merely claims to answer a round is charged, and refused at the quota.
    claimed = call(gateway, "acme-p", alice, {"inputResponses": CONFIRM, "requestState": "v1.forged"})
    assert claimed["status"] == 429, claimed
    assert used(gateway) == 3


def used(gateway: GatewayProc) -> int:
    with gateway.admin() as admin:
        counters = admin.get("/admin/v1/tenants/acme/usage").json()["counters"]
    return sum(c["used"] for c in counters if c["period"].startswith("d:") and c["scope"].startswith("caller:"))
