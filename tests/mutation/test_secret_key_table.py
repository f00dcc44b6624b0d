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


def _encoded(values: dict[str, str]) -> dict[str, str]:
    return {name: base64.b64encode(value.encode()).decode() for name, value in values.items()}


def test_annotations_label_every_key_and_each_key_on_its_own() -> None:
    annotations = {
        "labels.mcpgateway.dev/team": "payments",
        "labels.mcpgateway.dev/env": "ci",
        "mcpgateway.dev/key-labels": '{"bot": {"env": "prod", "tier": "gold"}}',
        "kubectl.kubernetes.io/last-applied-configuration": "{}",  # other annotations are not labels
    }
    contents = secret_keys.secret_contents(_encoded({"ci": LONG_A, "bot": LONG_B}), annotations)
    assert contents.problems == [] and contents.values == {"ci": LONG_A, "bot": LONG_B}
    assert contents.labels == {
        "ci": {"env": "ci", "team": "payments"},
        "bot": {"env": "prod", "team": "payments", "tier": "gold"},
    }
    table = SecretKeyTable(HASHER)
    table.replace("ns/keys", "acme", contents.values, contents.labels)
    found = table.lookup(LONG_B)
    assert found is not None and found.labels == {"env": "prod", "team": "payments", "tier": "gold"}
    assert table.replace("ns/keys", "acme", contents.values, {"bot": {"env": "prod"}})[0]  # new labels: a change
    plain = secret_keys.secret_contents(_encoded({"ci": LONG_A}), None)
    assert plain.labels == {"ci": {}} and plain.problems == []


def test_keys_with_bad_labels_do_not_work_and_the_problem_is_said() -> None:
    data = _encoded({"ci": LONG_A, "bot": LONG_B})
    bad_shared = secret_keys.secret_contents(data, {"labels.mcpgateway.dev/team": "a\nb"})
    assert bad_shared.values == {} and "labels.mcpgateway.dev/*" in bad_shared.problems[0]
    assert "printable" in bad_shared.problems[0]
    one_bad = secret_keys.secret_contents(data, {"mcpgateway.dev/key-labels": '{"bot": {"te am": "x"}, "gone": {}}'})
    assert one_bad.values == {"ci": LONG_A}  # the other key still works, unlabelled
    assert any("'gone', which is not a data key" in p for p in one_bad.problems)
    assert any("labels of key 'bot'" in p and "'te am'" in p for p in one_bad.problems)
    for broken in ("not json", '["bot"]', '{"bot": "team=x"}'):
        contents = secret_keys.secret_contents(data, {"mcpgateway.dev/key-labels": broken})
        assert contents.values == {} and "expected a JSON object" in contents.problems[0]
