"""The caller identity the audit log records from a verified token: configured claim names, and
claims of the wrong type left out rather than recorded as something else."""

from __future__ import annotations

from mcp_gateway.auth import MAX_GROUPS, oidc_identity
from mcp_gateway.config import IdentityClaims


def test_default_claim_names() -> None:
    claims = {"sub": "u-1", "groups": ["admins", "dev"], "email": "a@example.com", "name": "Alice"}
    assert oidc_identity(claims, IdentityClaims()) == {
        "sub": "u-1",
        "groups": ["admins", "dev"],
        "email": "a@example.com",
    }


def test_configured_claim_names() -> None:
    names = IdentityClaims(subject="preferred_username", groups="roles", email="mail")
    claims = {"sub": "u-1", "preferred_username": "alice", "roles": "admin", "mail": "a@example.com"}
    assert oidc_identity(claims, names) == {"sub": "alice", "groups": ["admin"], "email": "a@example.com"}
    # A token without the configured subject claim is recorded under its `sub`.
    assert oidc_identity({"sub": "u-1"}, names) == {"sub": "u-1"}


def test_claims_of_the_wrong_type_are_left_out() -> None:
    claims = {"sub": "u-1", "groups": {"admins": True}, "email": ["a@example.com"]}
    assert oidc_identity(claims, IdentityClaims()) == {"sub": "u-1"}
    mixed = {"sub": "u-1", "groups": ["ok", 7, None, "fine"] + ["g"] * 100}
    assert oidc_identity(mixed, IdentityClaims())["groups"][:2] == ["ok", "fine"]
    assert len(oidc_identity(mixed, IdentityClaims())["groups"]) == MAX_GROUPS
