-- 012: the audit as evidence, the tamper-evident chain (SPEC §11).
--
-- Every callbacks row written while [audit] key_file is set carries
-- (lane, lane_seq, mac). The design, as decided (README "Audit chain"):
--
-- * The HMAC key never enters the database: it lives in key_file, read by
--   the daemon like a webhook secret. Only the daemon (and the CLI) hold it.
-- * The daemon's write stays ONE statement per batch (bayarhook.ingest())
--   and its role has INSERT and SELECT on callbacks but no UPDATE, so the
--   mac is computed inside ingest() at insert time. For that the daemon
--   sends, per row position (lane, lane_seq), a subkey's HMAC pads:
--   k_row = HMAC-SHA256(key, 'bayarhook-audit-row' || be64(lane) ||
--   be64(lane_seq)), sent as k_row XOR ipad and k_row XOR opad (64 bytes
--   each), so ingest() computes HMAC-SHA256(k_row, msg) with core sha256()
--   only: sha256(opad_k || sha256(ipad_k || msg)). A subkey is good for one
--   position only: whoever sees one in transit or in a log cannot forge
--   any other row.
-- * msg = bayarhook.audit_digest(the row's columns) || previous mac. The
--   digest is defined once (sql/functions/audit.sql) and used by ingest()
--   and by `bayarhook audit verify` (which selects it per row and does the
--   HMAC in C): one serialization, never two to keep in step.
-- * Lanes: a chain per concurrent writer. A lane is a random 63-bit id
--   chosen by the daemon; each lane carries at most one batch at a time, so
--   its head is known after every commit; an unknown commit outcome (a
--   lost connection) abandons the lane and starts a new one. lane_seq
--   starts at 1 with 32 zero bytes as the previous mac. Several processes
--   on one database, and several connections of one, are several lanes.
-- * Retention (another migration) drops whole partitions and keeps, per
--   lane, its last dropped row in audit_anchors: verify then starts that
--   lane at anchor.lane_seq + 1 with anchor.mac as the previous mac.
-- * Redaction rewrites body and headers (as the owner role: an UPDATE);
--   it first keeps the row's original digest in redacted_digest, and
--   redaction_mac = HMAC(key, 'bayarhook-audit-redaction' || be64(id) ||
--   original digest || new digest), computed in C. verify uses the
--   original digest for the chain when redaction_mac checks out.
--
-- callbacks.lane, lane_seq, mac and the table bayarhook.audit_anchors were
-- made by 011 (the partitioning), which retention writes the anchors of.

ALTER TABLE bayarhook.callbacks
    ADD COLUMN IF NOT EXISTS redacted_digest bytea,
    ADD COLUMN IF NOT EXISTS redaction_mac bytea;

-- verify --since and --checkpoint find a row by its place in its lane.
-- Partial: without a key_file no row has a lane and inserts pay nothing.
CREATE INDEX IF NOT EXISTS callbacks_lane_idx ON bayarhook.callbacks (lane, lane_seq)
    WHERE lane IS NOT NULL;

COMMENT ON COLUMN bayarhook.callbacks.lane IS
    'the audit chain this row belongs to (one per writer connection); NULL: no [audit] key_file';
COMMENT ON COLUMN bayarhook.callbacks.lane_seq IS 'the row''s place in its lane, from 1';
COMMENT ON COLUMN bayarhook.callbacks.mac IS
    'HMAC-SHA256 over audit_digest(row) and the lane''s previous mac (SPEC §11)';
COMMENT ON COLUMN bayarhook.callbacks.redacted_digest IS
    'audit_digest of the row before its personal data was redacted; NULL: never redacted';
COMMENT ON COLUMN bayarhook.callbacks.redaction_mac IS
    'HMAC(key, id, redacted_digest, digest after redaction): the redaction is authentic';
