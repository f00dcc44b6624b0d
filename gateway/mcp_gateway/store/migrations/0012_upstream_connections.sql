-- Per-user connections to third-party OAuth servers (mcp_gateway/connections): the refresh
-- token is stored sealed with AES-GCM under the key named by key_id; never in clear.
CREATE TABLE IF NOT EXISTS upstream_connections (
    tenant text NOT NULL,
    caller text NOT NULL,
    profile text NOT NULL,
    upstream text NOT NULL,
    key_id text NOT NULL,
    sealed_refresh bytea NOT NULL,
    scopes text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (tenant, caller, profile, upstream)
);
