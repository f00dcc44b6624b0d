-- Initial schema: API keys (hashed), quota counters, rate buckets, audit log, shared secrets.
CREATE TABLE api_keys (
    id          uuid PRIMARY KEY,
    prefix      text NOT NULL UNIQUE,
    key_hash    text NOT NULL,
    tenant      text NOT NULL,
    profiles    text[] NOT NULL DEFAULT '{}',
    name        text NOT NULL DEFAULT '',
    expires_at  timestamptz,
    revoked_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_tenant ON api_keys (tenant);

CREATE TABLE quota_counters (
    scope       text NOT NULL,
    period      text NOT NULL,
    used        bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, period)
);

CREATE TABLE rate_buckets (
    key         text PRIMARY KEY,
    tokens      double precision NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL,
    tenant      text NOT NULL,
    profile     text NOT NULL,
    caller      text NOT NULL,
    tool        text NOT NULL,
    outcome     text NOT NULL,
    latency_ms  double precision NOT NULL,
    arguments   text,
    error       text
);
CREATE INDEX audit_log_tenant ON audit_log (tenant, id DESC);
CREATE INDEX audit_log_profile ON audit_log (profile, id DESC);

CREATE TABLE gateway_secrets (
    name        text PRIMARY KEY,
    value       bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
