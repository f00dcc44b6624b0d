-- Ended handshake-era sessions (DELETE), kept until their token would have expired anyway,
-- and replica-to-replica messages too large for a NOTIFY payload.
CREATE TABLE revoked_sessions (
    nonce       text PRIMARY KEY,
    expires_at  timestamptz NOT NULL
);

CREATE TABLE relay_messages (
    id          bigserial PRIMARY KEY,
    body        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
