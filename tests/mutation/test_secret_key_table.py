"""auth/secret_keys.py's table in process: tenant keys from Secrets, hashed, replaced and dropped
per Secret, short values ignored, Secret data decoded (mutation-tested)."""

from __future__ import annotations

import base64

from mcp_gateway.auth import secret_keys
from mcp_gateway.auth.apikeys import KeyHasher
from mcp_gateway.auth.secret_keys import SecretKey, SecretKeyTable, decode_values

HASHER = KeyHasher(b"pepper-0123456789abcdef")
LONG_A = "a" * secret_keys.MIN_KEY_LENGTH
LONG_B = "b" * 20


def test_keys_are_found_by_value_and_name_their_caller() -> None:
    table = SecretKeyTable(HASHER)
    changed, short = table.replace("ns/keys", "acme", {"ci": LONG_A, "bot": LONG_B, "tiny": "x" * 15})
    assert changed and short == ["tiny"]
    assert table.count("ns/keys") == 2 and table.secrets == {"ns/keys"}
    found = table.lookup(LONG_A)
    assert found == SecretKey("acme", "ns/keys", "ci") and found.caller == "secret:ns/keys/ci"
    assert table.lookup("x" * 15) is None and table.lookup(LONG_A + "x") is None
    assert LONG_A not in repr(table._by_hash)  # only hashes are kept


def test_replacing_reports_changes_and_forgets_removed_keys() -> None:
    table = SecretKeyTable(HASHER)
    table.replace("ns/keys", "acme", {"ci": LONG_A})
    assert table.replace("ns/keys", "acme", {"ci": LONG_A}) == (False, [])
    assert table.replace("ns/keys", "acme", {"renamed": LONG_A})[0]
    assert table.replace("ns/keys", "acme", {"renamed": LONG_B})[0]
    assert table.lookup(LONG_A) is None and table.lookup(LONG_B) is not None
    assert table.replace("ns/other", "globex", {})[0]  # a new Secret, even empty, is a change
    table.drop("ns/keys")
    assert table.lookup(LONG_B) is None and table.count("ns/keys") == 0 and table.secrets == {"ns/other"}
    table.drop("ns/missing")  # nothing to drop is fine


def test_secret_data_is_decoded_and_trimmed() -> None:
    encoded = {
        "ci": base64.b64encode(b"key-value\n").decode(),
        "binary": base64.b64encode(b"\xff\xfe").decode(),
        "broken": "abc",  # bad padding
    }
    assert decode_values(encoded) == {"ci": "key-value"}
    assert decode_values(None) == {} and decode_values({}) == {}
