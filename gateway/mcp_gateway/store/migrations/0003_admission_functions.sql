-- Admission in one round trip: the per-bucket and per-counter statements of
-- store/postgres.py run server-side, in the order given (callers sort by key, so
-- two calls never deadlock), all or nothing. A refusal raises inside an inner
-- block, which rolls back what this call already took; locals survive, so the
-- function still reports which item refused.

CREATE OR REPLACE FUNCTION mcp_take_tokens(keys text[], rates float8[], bursts float8[])
RETURNS TABLE (refused integer, level float8) LANGUAGE plpgsql AS $$
BEGIN
    refused := NULL;
    level := NULL;
    BEGIN
        FOR i IN 1 .. coalesce(array_length(keys, 1), 0) LOOP
            INSERT INTO rate_buckets AS b (key, tokens, updated_at) VALUES (keys[i], bursts[i] - 1, clock_timestamp())
            ON CONFLICT (key) DO UPDATE
            SET tokens = LEAST(bursts[i], b.tokens + rates[i] * EXTRACT(EPOCH FROM clock_timestamp() - b.updated_at)) - 1,
                updated_at = clock_timestamp()
            WHERE LEAST(bursts[i], b.tokens + rates[i] * EXTRACT(EPOCH FROM clock_timestamp() - b.updated_at)) >= 1;
            IF NOT FOUND THEN
                refused := i;
                SELECT LEAST(bursts[i], b.tokens + rates[i] * EXTRACT(EPOCH FROM clock_timestamp() - b.updated_at))
                  INTO level FROM rate_buckets b WHERE b.key = keys[i];
                RAISE EXCEPTION USING ERRCODE = 'P0001';
            END IF;
        END LOOP;
    EXCEPTION WHEN raise_exception THEN
        NULL;
    END;
    RETURN NEXT;
END $$;

CREATE OR REPLACE FUNCTION mcp_consume_quota(scopes text[], periods text[], limits bigint[])
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    refused integer := NULL;
BEGIN
    BEGIN
        FOR i IN 1 .. coalesce(array_length(scopes, 1), 0) LOOP
            INSERT INTO quota_counters AS q (scope, period, used) VALUES (scopes[i], periods[i], 1)
            ON CONFLICT (scope, period) DO UPDATE SET used = q.used + 1, updated_at = now()
            WHERE q.used < limits[i];
            IF NOT FOUND THEN
                refused := i;
                RAISE EXCEPTION USING ERRCODE = 'P0001';
            END IF;
        END LOOP;
    EXCEPTION WHEN raise_exception THEN
        NULL;
    END;
    RETURN refused;
END $$;
