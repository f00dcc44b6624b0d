"""Offline checks behind `mcp-gateway validate FILE...`.

Each file is recognised by its shape:
- Kubernetes manifests (documents with `apiVersion` and `kind`): Tenant, Profile and
  Upstream objects are checked against the openAPIV3Schema of the CRDs in `crds/`
  (jsonschema), then against what the schema cannot express: the CRDs' CEL rules,
  fields the API server would silently prune, and references between the objects of
  all files given together (a Profile's Upstreams and Tenant).
- a local config (`examples/local.yaml` style: `gateway` plus `adapters`/`services`):
  the routing config and every adapter's config;
- otherwise a routing config (docs/routing-config.md).

Every problem carries the file and a field path, so a person can go straight to it.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from mcp_adapter.config import ConfigError
from mcp_adapter.config import parse_config as parse_adapter_config
from pydantic import ValidationError

from mcp_gateway.config import RoutingConfig
from mcp_gateway.local import LocalConfig, Placeholders

GROUP = "mcpgateway.dev"
# The repository's crds/ (override with MCP_GATEWAY_CRD_DIR, e.g. in an image).
CRD_DIR = Path(os.environ.get("MCP_GATEWAY_CRD_DIR", Path(__file__).resolve().parents[2] / "crds"))
LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class Problem:
    path: str
    message: str


@dataclass
class FileReport:
    file: str
    kind: str = "unknown"
    objects: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "kind": self.kind,
            "valid": self.valid,
            "objects": self.objects,
            "problems": [{"path": p.path, "message": p.message} for p in self.problems],
        }


def _loc(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _pydantic(exc: ValidationError, prefix: str = "") -> list[Problem]:
    problems = []
    for error in exc.errors():
        path = _loc(error["loc"])
        problems.append(Problem(f"{prefix}{path}" if prefix else path, error["msg"]))
    return problems


# --- routing and local configs -------------------------------------------------------


def check_routing(data: Any, prefix: str = "") -> list[Problem]:
    if not isinstance(data, dict):
        return [Problem(prefix or "(top level)", "expected a mapping with `tenants` and `profiles`")]
    try:
        RoutingConfig.model_validate(data)
    except ValidationError as exc:
        return _pydantic(exc, prefix)
    return []


def check_local(data: dict[str, Any], base_dir: Path) -> list[Problem]:
    try:
        local = LocalConfig.model_validate(Placeholders().fill(data))
    except ValidationError as exc:
        return _pydantic(exc)
    problems = check_routing(local.gateway, "gateway.")
    for i, adapter in enumerate(local.adapters):
        try:
            parse_adapter_config(adapter.config, base_dir)
        except ConfigError as exc:
            problems += [Problem(f"adapters[{i}].config ({adapter.name})", p) for p in exc.problems]
    return problems


# --- Kubernetes manifests --------------------------------------------------------------


@cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> openAPIV3Schema, for every CRD in crds/."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                schemas[(f"{spec['group']}/{version['name']}", spec["names"]["kind"])] = version["schema"][
                    "openAPIV3Schema"
                ]
    return schemas


def _schema_path(parts: Any) -> str:
    return _loc(list(parts))


def _pruned(obj: Any, schema: dict[str, Any], path: str) -> list[Problem]:
    """Fields the schema does not know: the API server would drop them without a word."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    problems: list[Problem] = []
    if isinstance(obj, dict) and "properties" in schema and "additionalProperties" not in schema:
        known = schema["properties"]
        for key, value in obj.items():
            child = f"{path}.{key}" if path else key
            if key not in known:
                problems.append(Problem(child, "unknown field (the API server would silently drop it); check spelling"))
            else:
                problems += _pruned(value, known[key], child)
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(obj):
            problems += _pruned(item, schema["items"], f"{path}[{i}]")
    return problems


def _has(obj: Any, *keys: str) -> bool:
    return isinstance(obj, dict) and all(k in obj for k in keys)


def _label(name: Any, limit: int) -> bool:
    return isinstance(name, str) and len(name) <= limit and LABEL.match(name) is not None


def _one_of(obj: Any, *keys: str) -> bool:
    return sum(1 for k in keys if _has(obj, k)) == 1


def _is_cidr(value: Any) -> bool:
    """CEL `isCIDR`: an address, '/', a prefix length (host bits may be set)."""
    if not isinstance(value, str) or "/" not in value:
        return False
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return True


def _unique_names(items: Any) -> bool:
    names = [u.get("name") for u in items or [] if isinstance(u, dict)]
    return len(names) == len(set(names))


# The CRDs' x-kubernetes-validations, ported by hand: rule text -> (check of `self`, field it is about).
# A rule missing here fails tests/gateway/test_cli.py, so a new CEL rule cannot go unchecked offline.
CEL_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "size(self.metadata.name) <= 63 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')": (
        lambda o: _label((o.get("metadata") or {}).get("name"), 63),
        "metadata.name",
    ),
    "size(self.metadata.name) <= 55 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')": (
        lambda o: _label((o.get("metadata") or {}).get("name"), 55),
        "metadata.name",
    ),
    "has(self.spec.id) || (size(self.metadata.name) <= 63 && "
    "self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'))": (
        lambda o: _has(o.get("spec"), "id") or _label((o.get("metadata") or {}).get("name"), 63),
        "metadata.name",
    ),
    "self.upstreams.all(u, self.upstreams.exists_one(v, v.name == u.name))": (
        lambda o: _unique_names(o.get("upstreams")),
        "upstreams",
    ),
    "!has(self.mode) || !has(self.methods)": (lambda o: not (_has(o, "mode") and _has(o, "methods")), ""),
    "!((has(self.mode) && self.mode == 'oidc') || (has(self.methods) && 'oidc' in self.methods)) || has(self.oidc)": (
        lambda o: not (o.get("mode") == "oidc" or "oidc" in (o.get("methods") or [])) or _has(o, "oidc"),
        "",
    ),
    "[has(self.stdio), has(self.mcp), has(self.openapi), has(self.http)].filter(x, x).size() == 1": (
        lambda o: _one_of(o, "stdio", "mcp", "openapi", "http"),
        "",
    ),
    "!has(self.bodyFields) || !has(self.body) || self.body == 'none'": (
        lambda o: not _has(o, "bodyFields") or not _has(o, "body") or o.get("body") == "none",
        "",
    ),
    "has(self.value) != has(self.valueFrom)": (lambda o: _one_of(o, "value", "valueFrom"), ""),
    "has(self.secretKeyRef) != has(self.configMapKeyRef)": (
        lambda o: _one_of(o, "secretKeyRef", "configMapKeyRef"),
        "",
    ),
    "has(self.value) != has(self.secretKeyRef)": (lambda o: _one_of(o, "value", "secretKeyRef"), ""),
    "has(self.url) != has(self.configMapKeyRef)": (lambda o: _one_of(o, "url", "configMapKeyRef"), ""),
    "isCIDR(self)": (_is_cidr, ""),
    "self.type != 'apiKey' || has(self.apiKey)": (lambda o: o.get("type") != "apiKey" or _has(o, "apiKey"), ""),
    "has(self.rate) || has(self.quota)": (lambda o: _has(o, "rate") or _has(o, "quota"), ""),
    "has(self.tokenEndpoint) != has(self.issuer)": (lambda o: _one_of(o, "tokenEndpoint", "issuer"), ""),
    "self.type in ['exchanged', 'connection'] || has(self.secretName)": (
        lambda o: o.get("type") in ("exchanged", "connection") or _has(o, "secretName"),
        "",
    ),
    "!(has(self.tokenExchange) && has(self.connection))": (
        lambda o: not (_has(o, "tokenExchange") and _has(o, "connection")),
        "",
    ),
    "has(self.connection) || !((has(self.mcp) && has(self.mcp.auth) && self.mcp.auth.type == 'connection') || "
    "(has(self.openapi) && has(self.openapi.auth) && self.openapi.auth.type == 'connection') || "
    "(has(self.http) && has(self.http.auth) && self.http.auth.type == 'connection'))": (
        lambda o: _has(o, "connection") or not _connection_auth(o),
        "",
    ),
    "has(self.issuer) || (has(self.authorizationEndpoint) && has(self.tokenEndpoint))": (
        lambda o: _has(o, "issuer") or (_has(o, "authorizationEndpoint") and _has(o, "tokenEndpoint")),
        "",
    ),
}


def _connection_auth(spec: Any) -> bool:
    """A source of this Upstream spec relays each caller's connected token (auth type connection)."""
    sources = (spec.get(k) for k in ("mcp", "openapi", "http")) if isinstance(spec, dict) else ()
    return any(isinstance(s, dict) and (s.get("auth") or {}).get("type") == "connection" for s in sources)


def cel_rules(schema: dict[str, Any]) -> list[str]:
    """Every x-kubernetes-validations rule in a schema."""
    rules = [str(r["rule"]) for r in schema.get("x-kubernetes-validations") or []]
    for child in (schema.get("properties") or {}).values():
        rules += cel_rules(child)
    if isinstance(schema.get("items"), dict):
        rules += cel_rules(schema["items"])
    return rules


def _cel_rules(obj: Any, schema: dict[str, Any], path: str = "") -> list[Problem]:
    """The CRDs' CEL rules, which jsonschema cannot evaluate, wherever the object has the field."""
    problems: list[Problem] = []
    for rule in schema.get("x-kubernetes-validations") or []:
        check, about = CEL_RULES.get(str(rule["rule"]), (None, ""))
        if check is None:
            continue
        try:
            ok = check(obj)
        except (AttributeError, TypeError):
            continue  # a wrong type, which the schema check reports
        if not ok:
            problems.append(Problem(".".join(p for p in (path, about) if p), str(rule.get("message", rule["rule"]))))
    if isinstance(obj, dict):
        for key, child in (schema.get("properties") or {}).items():
            if key in obj:
                problems += _cel_rules(obj[key], child, f"{path}.{key}" if path else key)
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(obj):
            problems += _cel_rules(item, schema["items"], f"{path}[{i}]")
    return problems


@dataclass
class _Manifest:
    report: FileReport
    index: int
    obj: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind"))

    @property
    def name(self) -> str:
        return str((self.obj.get("metadata") or {}).get("name", "?"))

    @property
    def namespace(self) -> str:
        return str((self.obj.get("metadata") or {}).get("namespace", "default"))

    @property
    def label(self) -> str:
        scope = "" if self.kind == "Tenant" else f"{self.namespace}/"
        return f"{self.kind} {scope}{self.name}"

    def problem(self, path: str, message: str) -> None:
        self.report.problems.append(Problem(f"{self.label} (document {self.index + 1}): {path}", message))


def check_manifest(item: _Manifest) -> None:
    api_version = str(item.obj.get("apiVersion", ""))
    if not api_version.startswith(f"{GROUP}/"):
        return  # Namespaces, Secrets, ConfigMaps...: not ours to check
    schema = crd_schemas().get((api_version, item.kind))
    if schema is None:
        known = sorted({f"{v} {k}" for v, k in crd_schemas()})
        item.problem("kind", f"unknown kind/apiVersion {item.kind!r} {api_version!r}; known: {', '.join(known)}")
        return
    validator = jsonschema.Draft7Validator(schema)
    for error in sorted(validator.iter_errors(item.obj), key=lambda e: list(e.absolute_path)):
        item.problem(_schema_path(error.absolute_path), error.message)
    for problem in _pruned(item.obj, schema, "") + _cel_rules(item.obj, schema):
        if not problem.path.startswith(("metadata.", "status")) or problem.path == "metadata.name":
            item.problem(problem.path, problem.message)
    if item.kind == "Profile":
        _policy_rules_compile(item)


def _policy_rules_compile(item: _Manifest) -> None:
    """A Profile's CEL policy rules, compiled as the operator and the gateway will (rules.py)."""
    from mcp_gateway.rules import RuleError, compile_rule  # the CEL runtime, only when there are rules

    policy = (item.obj.get("spec") or {}).get("policy")
    rules = policy.get("rules") if isinstance(policy, dict) else None
    for i, rule in enumerate(rules if isinstance(rules, list) else []):
        when = rule.get("when") if isinstance(rule, dict) else None
        if not isinstance(when, str) or not when:
            continue  # the schema check reports it
        try:
            compile_rule(when)
        except RuleError as exc:
            item.problem(f"spec.policy.rules[{i}].when", f"rule {rule.get('name')!r} does not compile: {exc}")


def cross_check(items: list[_Manifest]) -> None:
    """References between objects given together; skipped for kinds none of the files define."""
    ours = [i for i in items if str(i.obj.get("apiVersion", "")).startswith(f"{GROUP}/")]
    tenants = [i for i in ours if i.kind == "Tenant"]
    upstreams = {(i.namespace, i.name) for i in ours if i.kind == "Upstream"}
    tenant_of_ns: dict[str, str] = {}
    for tenant in tenants:
        for ns in (tenant.obj.get("spec") or {}).get("namespaces") or []:
            if ns in tenant_of_ns:
                tenant.problem("spec.namespaces", f"namespace {ns!r} already belongs to tenant {tenant_of_ns[ns]!r}")
            tenant_of_ns[str(ns)] = tenant.name
    seen: dict[tuple[str, str, str], _Manifest] = {}
    for item in ours:
        key = (item.kind, item.namespace, item.name)
        if key in seen:
            item.problem("metadata.name", f"defined twice (also in {seen[key].report.file})")
        seen[key] = item
        if item.kind != "Profile":
            continue
        if tenants and item.namespace not in tenant_of_ns:
            item.problem("metadata.namespace", f"namespace {item.namespace!r} belongs to no Tenant (spec.namespaces)")
        for j, ref in enumerate((item.obj.get("spec") or {}).get("upstreams") or []):
            name = ref.get("name") if isinstance(ref, dict) else None
            if upstreams and name is not None and (item.namespace, name) not in upstreams:
                item.problem(f"spec.upstreams[{j}].name", f"no Upstream {name!r} in namespace {item.namespace!r}")


# --- files -------------------------------------------------------------------------------


def _documents(report: FileReport, path: Path) -> list[Any] | None:
    try:
        text = path.read_text()
    except OSError as exc:
        report.problems.append(Problem("(file)", f"cannot read: {exc.strerror or exc}"))
        return None
    try:
        loader = json.loads if path.suffix == ".json" else None
        return [loader(text)] if loader else [d for d in yaml.safe_load_all(text) if d is not None]
    except (yaml.YAMLError, ValueError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "(file)"
        report.problems.append(Problem(where, f"not valid YAML/JSON: {getattr(exc, 'problem', None) or exc}"))
        return None


def _is_local(doc: Any) -> bool:
    if not isinstance(doc, dict):
        return False
    gateway = doc.get("gateway")
    return "adapters" in doc or "services" in doc or (isinstance(gateway, dict) and "profiles" in gateway)


def validate_files(paths: list[str]) -> list[FileReport]:
    reports: list[FileReport] = []
    manifests: list[_Manifest] = []
    for name in paths:
        report = FileReport(name)
        reports.append(report)
        docs = _documents(report, Path(name))
        if docs is None:
            continue
        if any(isinstance(d, dict) and "apiVersion" in d and "kind" in d for d in docs):
            report.kind = "manifests"
            for i, doc in enumerate(docs):
                if not isinstance(doc, dict) or "kind" not in doc:
                    report.problems.append(Problem(f"document {i + 1}", "not a Kubernetes object (no kind)"))
                    continue
                item = _Manifest(report, i, doc)
                report.objects.append(item.label)
                manifests.append(item)
                check_manifest(item)
        elif len(docs) == 1 and _is_local(docs[0]):
            report.kind = "local config"
            report.problems += check_local(docs[0], Path(name).resolve().parent)
        elif len(docs) == 1:
            report.kind = "routing config"
            report.problems += check_routing(docs[0])
        else:
            report.problems.append(Problem("(file)", "expected one routing/local config document, or manifests"))
    cross_check(manifests)
    return reports
