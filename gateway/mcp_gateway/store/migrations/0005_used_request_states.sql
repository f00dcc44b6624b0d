-- Sealed requestState envelopes already used for a free (uncharged) continuation: each
-- envelope is a free pass once. Rows are kept until the envelope would have expired anyway.
CREATE TABLE used_request_states (
    digest      bytea PRIMARY KEY,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX used_request_states_expiry ON used_request_states (expires_at);
