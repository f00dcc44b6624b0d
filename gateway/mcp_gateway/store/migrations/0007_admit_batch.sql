-- Several requests' admissions in one call and one transaction (store/admission.py):
-- mcp_admit for each, in the order given, one result row per admission.
--
-- Admission i owns keys[bucket_from[i] : bucket_from[i+1]-1] (with rates and bursts
-- alike) and scopes[counter_from[i] : counter_from[i+1]-1] (with periods and limits).
-- Rows stay locked until the transaction ends, so taking them admission by admission
-- would let two replicas' batches deadlock on keys met in different orders: every
-- existing row the batch may change is locked first, in one global order (buckets
-- by key, then counters by scope and period).

CREATE OR REPLACE FUNCTION mcp_admit_batch(
    keys text[], rates float8[], bursts float8[], bucket_from integer[],
    scopes text[], periods text[], limits bigint[], counter_from integer[],
    sync_commit boolean
) RETURNS TABLE (bucket_refused integer, level float8, counter_refused integer) LANGUAGE plpgsql AS $$
DECLARE
    b0 integer;
    b1 integer;
    c0 integer;
    c1 integer;
BEGIN
    IF NOT sync_commit THEN
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
    PERFORM 1 FROM rate_buckets WHERE key = ANY (keys) ORDER BY key FOR UPDATE;
    PERFORM 1 FROM quota_counters AS q
        JOIN unnest(scopes, periods) AS u (scope, period) ON q.scope = u.scope AND q.period = u.period
        ORDER BY q.scope, q.period FOR UPDATE OF q;
    FOR i IN 1 .. coalesce(array_length(bucket_from, 1), 1) - 1 LOOP
        b0 := bucket_from[i];
        b1 := bucket_from[i + 1] - 1;
        c0 := counter_from[i];
        c1 := counter_from[i + 1] - 1;
        SELECT a.bucket_refused, a.level, a.counter_refused INTO bucket_refused, level, counter_refused
        FROM mcp_admit(
            keys[b0:b1], rates[b0:b1], bursts[b0:b1], scopes[c0:c1], periods[c0:c1], limits[c0:c1], true
        ) AS a;
        RETURN NEXT;
    END LOOP;
END $$;
