-- The console cookie key is now derived from environment secrets (the pepper, the session keys).
-- The key older gateways stored here in plain form would let anyone holding a copy of the
-- database forge console sessions; it signs nothing any more, so it goes.
DELETE FROM gateway_secrets WHERE name = 'console-session-key';
