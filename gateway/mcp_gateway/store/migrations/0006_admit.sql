-- Admission of one request in one round trip: its rate buckets, then (if every
-- bucket had a token) its quota counters, each step all or nothing as in 0003.
-- A quota refusal leaves the rate tokens taken: the request was made.
--
-- sync_commit false (gateway.limitsCommit: async) lets this transaction commit
-- without waiting for its WAL flush: counts stay exact, but a PostgreSQL crash
-- may forget the last few hundred milliseconds of them. set_config(..., true)
-- lasts until the end of the transaction, so it applies to this call's commit.

CREATE OR REPLACE FUNCTION mcp_admit(
    keys text[], rates float8[], bursts float8[],
    scopes text[], periods text[], limits bigint[],
    sync_commit boolean
) RETURNS TABLE (bucket_refused integer, level float8, counter_refused integer) LANGUAGE plpgsql AS $$
BEGIN
    IF NOT sync_commit THEN
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
    SELECT t.refused, t.level INTO bucket_refused, level FROM mcp_take_tokens(keys, rates, bursts) AS t;
    counter_refused := NULL;
    IF bucket_refused IS NULL THEN
        counter_refused := mcp_consume_quota(scopes, periods, limits);
    END IF;
    RETURN NEXT;
END $$;
