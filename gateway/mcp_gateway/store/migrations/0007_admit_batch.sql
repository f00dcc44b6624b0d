-- Several requests' admissions in one call and one transaction (store/admission.py).
--
-- Admission i owns keys[bucket_from[i] : bucket_from[i+1]-1] (with rates and bursts
-- alike) and scopes[counter_from[i] : counter_from[i+1]-1] (with periods and limits).
-- Each is decided in the order given, exactly as mcp_admit (0006) would decide it at
-- that point: every bucket must hold a token, then every counter must be under its
-- limit, each step all or nothing. One result row per admission.
--
-- Unlike a loop of mcp_admit calls, every row is read and written once per batch:
-- the hot rows (a tenant's bucket and counter) would otherwise get one new row
-- version per request. All rows the batch touches are created if missing and then
-- locked in one global order (buckets by key, then counters by scope and period),
-- so two replicas' batches never wait on each other in a cycle over existing rows.

CREATE OR REPLACE FUNCTION mcp_admit_batch(
    keys text[], rates float8[], bursts float8[], bucket_from integer[],
    scopes text[], periods text[], limits bigint[], counter_from integer[],
    sync_commit boolean
) RETURNS TABLE (bucket_refused integer, level float8, counter_refused integer) LANGUAGE plpgsql AS $$
DECLARE
    batch_at timestamptz := clock_timestamp();
    bucket_keys text[];
    stored_tokens float8[];
    idle_seconds float8[];
    levels float8[];          -- a bucket's level once the batch first used it (NULL before)
    counter_keys text[];      -- scope || E'\x1f' || period
    counts bigint[];
    counters_changed boolean := false;
    ok boolean;
    slot integer;
    now_level float8;
BEGIN
    IF NOT sync_commit THEN
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;

    INSERT INTO rate_buckets AS b (key, tokens, updated_at)
    SELECT DISTINCT ON (u.k) u.k, u.burst, batch_at FROM unnest(keys, bursts) AS u (k, burst) ORDER BY u.k
    ON CONFLICT (key) DO NOTHING;
    INSERT INTO quota_counters (scope, period, used)
    SELECT DISTINCT u.s, u.p, 0 FROM unnest(scopes, periods) AS u (s, p) ORDER BY u.s, u.p
    ON CONFLICT (scope, period) DO NOTHING;

    SELECT coalesce(array_agg(r.key ORDER BY r.key), '{}'), coalesce(array_agg(r.tokens ORDER BY r.key), '{}'),
           coalesce(array_agg(greatest(0, extract(epoch FROM batch_at - r.updated_at)) ORDER BY r.key), '{}')
      INTO bucket_keys, stored_tokens, idle_seconds
      FROM (SELECT b.key, b.tokens, b.updated_at FROM rate_buckets AS b
            WHERE b.key = ANY (keys) ORDER BY b.key FOR UPDATE) AS r;
    levels := array_fill(NULL::float8, ARRAY[coalesce(array_length(bucket_keys, 1), 0)]);
    SELECT coalesce(array_agg(r.scope || E'\x1f' || r.period ORDER BY r.scope, r.period), '{}'),
           coalesce(array_agg(r.used ORDER BY r.scope, r.period), '{}')
      INTO counter_keys, counts
      FROM (SELECT q.scope, q.period, q.used FROM quota_counters AS q
            JOIN unnest(scopes, periods) AS u (s, p) ON q.scope = u.s AND q.period = u.p
            ORDER BY q.scope, q.period FOR UPDATE OF q) AS r;

    FOR i IN 1 .. coalesce(array_length(bucket_from, 1), 1) - 1 LOOP
        bucket_refused := NULL;
        level := NULL;
        counter_refused := NULL;
        ok := true;
        FOR j IN bucket_from[i] .. bucket_from[i + 1] - 1 LOOP
            slot := array_position(bucket_keys, keys[j]);
            now_level := LEAST(bursts[j], coalesce(levels[slot], stored_tokens[slot] + rates[j] * idle_seconds[slot]));
            IF now_level < 1 THEN
                bucket_refused := j - bucket_from[i] + 1;
                level := now_level;
                ok := false;
                EXIT;
            END IF;
        END LOOP;
        IF ok THEN
            FOR j IN bucket_from[i] .. bucket_from[i + 1] - 1 LOOP
                slot := array_position(bucket_keys, keys[j]);
                levels[slot] := LEAST(bursts[j], coalesce(levels[slot], stored_tokens[slot] + rates[j] * idle_seconds[slot])) - 1;
            END LOOP;
            FOR j IN counter_from[i] .. counter_from[i + 1] - 1 LOOP
                IF counts[array_position(counter_keys, scopes[j] || E'\x1f' || periods[j])] >= limits[j] THEN
                    counter_refused := j - counter_from[i] + 1;
                    EXIT;
                END IF;
            END LOOP;
            IF counter_refused IS NULL THEN
                FOR j IN counter_from[i] .. counter_from[i + 1] - 1 LOOP
                    slot := array_position(counter_keys, scopes[j] || E'\x1f' || periods[j]);
                    counts[slot] := counts[slot] + 1;
                    counters_changed := true;
                END LOOP;
            END IF;
        END IF;
        RETURN NEXT;
    END LOOP;

    UPDATE rate_buckets AS b SET tokens = v.lv, updated_at = batch_at
      FROM unnest(bucket_keys, levels) AS v (k, lv)
     WHERE b.key = v.k AND v.lv IS NOT NULL;
    IF counters_changed THEN
        UPDATE quota_counters AS q SET used = v.n, updated_at = now()
          FROM unnest(counter_keys, counts) AS v (k, n)
         WHERE q.scope || E'\x1f' || q.period = v.k AND q.used <> v.n;
    END IF;
END $$;
