-- Without MCP_GATEWAY_SESSION_KEYS, the key of Mcp-Session-Id tokens and sealed requestState is
-- now derived from the pepper, so a copy of the database cannot seal a requestState. The key
-- older gateways generated and stored here signs nothing any more (sessions it signed end: clients
-- start a new one), so it goes.
DELETE FROM gateway_secrets WHERE name = 'session-signing-key';
