-- Who called, as the authentication established it: sub, groups and email of an OIDC token
-- (the profile's identityClaims), or an API key's id and name. NULL for anonymous profiles.
ALTER TABLE audit_log ADD COLUMN identity jsonb;
