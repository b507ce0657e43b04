-- 011: the audit trail is partitioned by month (SPEC §11, issue 15), so that
-- retention drops whole months (bayarhook audit retain) instead of a mass
-- DELETE, and a month's rows can be read without touching the others.
--
-- The keyed chain's columns come first (012 builds the chain on them),
-- so that the partitioned table is made with them: each row's writer lane,
-- its place in that lane, and its MAC. audit_anchors keeps, for every lane
-- that lost rows to retention, the last dropped row's place and MAC, from
-- which `audit verify` resumes the lane.
ALTER TABLE bayarhook.callbacks
    ADD COLUMN IF NOT EXISTS lane bigint,
    ADD COLUMN IF NOT EXISTS lane_seq bigint,
    ADD COLUMN IF NOT EXISTS mac bytea;
CREATE TABLE IF NOT EXISTS bayarhook.audit_anchors (
    lane            bigint PRIMARY KEY,
    lane_seq        bigint NOT NULL,
    mac             bytea NOT NULL,
    dropped_through timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now());

-- The conversion, in migrate's one transaction (nothing here refuses to run
-- in one): the old table steps aside under another name, the new one is
-- made LIKE it (every column in its order, NOT NULL, defaults, the verdict
-- CHECK, the column comments of 008), one partition per month that has rows
-- up to the months ahead, and every row is copied over once, ids and all.
-- A callback that arrives meanwhile waits for the commit, then goes to the
-- new table (its INSERT resolves the name again after the lock).
--
-- Months are UTC months whatever the session's zone: the bounds are
-- computed with TimeZone UTC, and named callbacks_yYYYYmMM.
--
-- The id sequence stays: it is released from the old table (which would
-- drop it) and owned by the new one, so ids go on where they were and
-- ingest()'s nextval('bayarhook.callbacks_id_seq') keeps working. The
-- primary key has to hold the partition key: (id, received_at). ids are
-- still unique, as they come from that one sequence.
--
-- The cost is one copy of the table (measured on 1 million rows in the
-- report of issue 15); the indexes are built after the copy, per partition.
SET LOCAL TimeZone = 'UTC';

ALTER TABLE bayarhook.callbacks RENAME TO callbacks_pre011;
ALTER INDEX bayarhook.callbacks_pkey RENAME TO callbacks_pre011_pkey;
ALTER INDEX bayarhook.callbacks_invoice_idx RENAME TO callbacks_pre011_invoice_idx;
ALTER INDEX bayarhook.callbacks_received_idx RENAME TO callbacks_pre011_received_idx;
ALTER SEQUENCE bayarhook.callbacks_id_seq OWNED BY NONE;

CREATE TABLE bayarhook.callbacks (
    LIKE bayarhook.callbacks_pre011
        INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING COMMENTS
        INCLUDING GENERATED INCLUDING STORAGE INCLUDING COMPRESSION
) PARTITION BY RANGE (received_at);
ALTER SEQUENCE bayarhook.callbacks_id_seq OWNED BY bayarhook.callbacks.id;
COMMENT ON TABLE bayarhook.callbacks IS
    'one row per request to the callback path, append-only; partitioned by UTC month (callbacks_yYYYYmMM)';

-- A row whose month has no partition (the daemon did not run
-- audit_partitions_ensure() for months) is kept here rather than refused;
-- audit_partitions_ensure() moves such rows into their month's partition.
CREATE TABLE bayarhook.callbacks_default PARTITION OF bayarhook.callbacks DEFAULT;

DO $do$
DECLARE
    first_month timestamptz;
    last_month  timestamptz;
    m           timestamptz;
BEGIN
    -- min and max by the received_at index: no scan of the table.
    SELECT date_trunc('month', min(received_at)), date_trunc('month', max(received_at))
      INTO first_month, last_month FROM bayarhook.callbacks_pre011;
    first_month := least(coalesce(first_month, date_trunc('month', now())),
                         date_trunc('month', now()));
    last_month := greatest(coalesce(last_month, date_trunc('month', now())),
                           date_trunc('month', now()) + interval '3 months');
    m := first_month;
    WHILE m <= last_month LOOP
        EXECUTE format('CREATE TABLE bayarhook.%I PARTITION OF bayarhook.callbacks'
                       ' FOR VALUES FROM (%L) TO (%L)',
                       'callbacks_' || to_char(m, '"y"YYYY"m"MM'), m, m + interval '1 month');
        m := m + interval '1 month';
    END LOOP;
END
$do$;

INSERT INTO bayarhook.callbacks SELECT * FROM bayarhook.callbacks_pre011 ORDER BY id;

-- Grants on the old table (a least-privileged daemon role, README "Setup")
-- carry over to the new one.
DO $do$
DECLARE
    g record;
BEGIN
    FOR g IN
        SELECT a.privilege_type AS priv,
               CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END AS who
          FROM pg_class c
         CROSS JOIN LATERAL aclexplode(c.relacl) a
          LEFT JOIN pg_roles r ON r.oid = a.grantee
         WHERE c.oid = 'bayarhook.callbacks_pre011'::regclass
           AND a.grantee <> c.relowner
    LOOP
        EXECUTE format('GRANT %s ON bayarhook.callbacks TO %s', g.priv, g.who);
    END LOOP;
END
$do$;

DROP TABLE bayarhook.callbacks_pre011;

ALTER TABLE bayarhook.callbacks ADD CONSTRAINT callbacks_pkey PRIMARY KEY (id, received_at);
CREATE INDEX callbacks_invoice_idx ON bayarhook.callbacks (invoice_id);
CREATE INDEX callbacks_received_idx ON bayarhook.callbacks (received_at);

RESET TimeZone;
