-- Audit records carry an id chosen by the gateway: a batch retried after a lost ack
-- (the insert committed, the reply never arrived) is skipped by ON CONFLICT instead of duplicated.
-- Rows written before this migration keep a NULL uid (NULLs never conflict).
ALTER TABLE audit_log ADD COLUMN uid uuid;
CREATE UNIQUE INDEX audit_log_uid ON audit_log (uid);
