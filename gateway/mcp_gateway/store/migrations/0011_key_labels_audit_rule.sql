-- API key labels (a small JSON object of strings, read by policy rules as `key.labels`), and the
-- policy rule that refused a call, for audit records of refusals (NULL otherwise).
ALTER TABLE api_keys ADD COLUMN labels jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE audit_log ADD COLUMN rule text;
