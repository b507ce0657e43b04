-- audit_partitions.sql: the monthly partitions of bayarhook.callbacks
-- (011, SPEC §11): making the months ahead, and retention, which drops
-- whole months and leaves the chain's anchors behind. Applied by every
-- bayarhook migrate (CREATE OR REPLACE), which also makes the months ahead
-- at the end of this file.
--
-- Months are UTC months (TimeZone is set to UTC inside the functions),
-- partitions are named bayarhook.callbacks_yYYYYmMM, and
-- bayarhook.callbacks_default holds what no month holds.
--
-- Both functions take their locks with a bound (lock_timeout): a partition
-- is made or dropped under a lock on bayarhook.callbacks that would queue
-- every callback behind a long reader (an export); failing, to be tried
-- again later, is better.

-- Makes the partitions of this month and of the next months_ahead months,
-- and of every month that has rows in callbacks_default (which move into
-- their new partition, rows unchanged). Returns the names it made.
--
-- SECURITY DEFINER: the daemon's role (README "Setup") owns nothing and
-- may only insert into callbacks, yet a daemon that runs for years without
-- `bayarhook migrate` must keep having months to write into; it calls this
-- at start and daily, with the rights of the role that ran migrate.
-- search_path holds only pg_catalog (and pg_temp last), so no object of
-- the caller's can stand in for one named here.
CREATE OR REPLACE FUNCTION bayarhook.audit_partitions_ensure(months_ahead integer DEFAULT 3)
RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET TimeZone = 'UTC'
SET lock_timeout = '10s'
AS $fn$
DECLARE
    m     timestamptz;
    part  text;
    cols  text;
BEGIN
    IF months_ahead IS NULL OR months_ahead < 0 OR months_ahead > 120 THEN
        RAISE EXCEPTION 'months_ahead must be between 0 and 120, not %', months_ahead
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- One at a time among the processes sharing the database (each serve
    -- calls this daily): the second finds the months made.
    PERFORM pg_advisory_xact_lock(hashtext('bayarhook.audit_partitions_ensure'));
    -- Named, not by position: a column list that does not depend on the
    -- order in which columns were added to this or that partition.
    SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO cols
      FROM pg_attribute a
     WHERE a.attrelid = 'bayarhook.callbacks'::regclass AND a.attnum > 0
       AND NOT a.attisdropped;
    -- At most 24 months of stranded rows a call (the oldest first; the rest
    -- wait in the default partition for the next): a role that may insert
    -- any received_at cannot make this create partitions without bound.
    FOR m IN
        (SELECT DISTINCT date_trunc('month', d.received_at) AS m
           FROM bayarhook.callbacks_default d
          WHERE isfinite(d.received_at)
          ORDER BY 1 LIMIT 24)
        UNION
        SELECT date_trunc('month', now()) + make_interval(months => i)
          FROM generate_series(0, months_ahead) AS i
        ORDER BY 1
    LOOP
        part := 'callbacks_' || to_char(m, '"y"YYYY"m"MM');
        CONTINUE WHEN to_regclass('bayarhook.' || quote_ident(part)) IS NOT NULL;
        -- Made apart and attached: ATTACH locks bayarhook.callbacks only
        -- against other DDL, not against the callbacks being written.
        EXECUTE format('CREATE TABLE bayarhook.%I (LIKE bayarhook.callbacks'
                       ' INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE'
                       ' INCLUDING COMPRESSION)', part);
        EXECUTE format('WITH moved AS (DELETE FROM bayarhook.callbacks_default'
                       '  WHERE received_at >= %L AND received_at < %L RETURNING %s)'
                       ' INSERT INTO bayarhook.%I (%s) SELECT %s FROM moved',
                       m, m + interval '1 month', cols, part, cols, cols);
        EXECUTE format('ALTER TABLE bayarhook.callbacks ATTACH PARTITION bayarhook.%I'
                       ' FOR VALUES FROM (%L) TO (%L)', part, m, m + interval '1 month');
        RETURN NEXT 'bayarhook.' || part;
    END LOOP;
END
$fn$;
-- Only the roles given it (bayarhook grant, README "Setup") run it as its owner.
REVOKE ALL ON FUNCTION bayarhook.audit_partitions_ensure(integer) FROM PUBLIC;

-- Drops the monthly partitions whose every row is older than
-- retention_days (the whole month ended before now() - retention_days),
-- never this month's and never callbacks_default, oldest first. For every
-- lane with rows in a dropped month, audit_anchors keeps the highest
-- (lane_seq, mac) among them (the greater lane_seq when the lane has one
-- already), with dropped_through the month's end, in the same transaction
-- as the DROP: `audit verify` resumes each lane there. Rows without a lane
-- (from before the chain) leave no anchor. A row is never DELETEd.
--
-- dry_run: only says what would go. Without it, rows stranded in
-- callbacks_default first move into their months (audit_partitions_ensure)
-- so that they are dropped in their turn.
--
-- Not SECURITY DEFINER: dropping the audit is the owner's (README
-- "Setup"); the daemon's role gets insufficient_privilege (42501).
CREATE OR REPLACE FUNCTION bayarhook.audit_retain(retention_days integer,
                                                  dry_run boolean DEFAULT false)
RETURNS TABLE (partition_name text, range_from timestamptz, range_to timestamptz,
               row_count bigint, lanes integer)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET TimeZone = 'UTC'
SET lock_timeout = '3s'
AS $fn$
DECLARE
    p       record;
    cutoff  timestamptz;
    doomed  text[] := '{}';
    part    text;
BEGIN
    IF retention_days IS NULL OR retention_days < 1 THEN
        RAISE EXCEPTION 'retention_days must be 1 or more, not %', retention_days
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    cutoff := least(now() - make_interval(days => retention_days), date_trunc('month', now()));
    IF NOT dry_run THEN
        PERFORM bayarhook.audit_partitions_ensure(0);
    END IF;
    FOR p IN
        SELECT b.name, b.lo, b.hi FROM (
            SELECT c.relname::text AS name,
                   (regexp_match(pg_get_expr(c.relpartbound, c.oid),
                                 '^FOR VALUES FROM \(''([^'']+)''\) TO \(''([^'']+)''\)$'))
                       AS bound
              FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'bayarhook.callbacks'::regclass) AS x,
            LATERAL (SELECT x.name, x.bound[1]::timestamptz AS lo,
                            x.bound[2]::timestamptz AS hi) AS b
         WHERE x.bound IS NOT NULL AND b.hi <= cutoff
         ORDER BY b.lo
    LOOP
        partition_name := 'bayarhook.' || p.name;
        range_from := p.lo;
        range_to := p.hi;
        -- Through the parent: the partition itself may not be readable by the caller.
        SELECT count(*), count(DISTINCT c.lane) INTO row_count, lanes
          FROM bayarhook.callbacks c WHERE c.received_at >= p.lo AND c.received_at < p.hi;
        IF NOT dry_run THEN
            INSERT INTO bayarhook.audit_anchors AS a (lane, lane_seq, mac, dropped_through)
            SELECT DISTINCT ON (c.lane) c.lane, c.lane_seq, c.mac, p.hi
              FROM bayarhook.callbacks c
             WHERE c.received_at >= p.lo AND c.received_at < p.hi AND c.lane IS NOT NULL
             ORDER BY c.lane, c.lane_seq DESC NULLS LAST
            ON CONFLICT (lane) DO UPDATE SET
                lane_seq = greatest(a.lane_seq, excluded.lane_seq),
                mac = CASE WHEN excluded.lane_seq > a.lane_seq THEN excluded.mac ELSE a.mac END,
                dropped_through = greatest(a.dropped_through, excluded.dropped_through),
                created_at = now();
            doomed := doomed || p.name;
        END IF;
        RETURN NEXT;
    END LOOP;
    -- The drops last, all together: each locks bayarhook.callbacks against
    -- every writer until the commit, which must not wait for the scans
    -- above. lock_timeout bounds how long callbacks queue behind a drop
    -- that waits for a reader (an export): then this fails, nothing is
    -- dropped, and the next run tries again.
    FOREACH part IN ARRAY doomed LOOP
        EXECUTE format('DROP TABLE bayarhook.%I', part);
    END LOOP;
END
$fn$;

-- Every migrate leaves the months ahead in place (and empties the default
-- partition), whoever runs the daemon afterwards.
SELECT bayarhook.audit_partitions_ensure(3);
