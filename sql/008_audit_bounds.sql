-- 008: refused requests are audited in bounded form (SPEC §13). A refusal
-- row keeps its body's first bytes (callbacks.body) with the whole body's
-- length and SHA-256, capped headers (headers_dropped says how many were
-- left out), the number of identical refusals it stands for (repeat) and
-- how many of its client's refusals were kept out of the audit since that
-- client's previous row (suppressed).
--
-- Rows from before this migration keep NULL body_length and body_sha256:
-- they were stored as escaped text, so a digest computed now would be of
-- the stored text, not of the bytes received, and a backfill would rewrite
-- every row of a table that may be large because of the very flood this
-- answers. Every column below is added without rewriting or scanning the
-- table (constant defaults, no CHECK to validate against existing rows).
ALTER TABLE bayarhook.callbacks
    ADD COLUMN body_length     bigint,
    ADD COLUMN body_sha256     bytea,
    ADD COLUMN repeat          integer NOT NULL DEFAULT 1,
    ADD COLUMN suppressed      bigint NOT NULL DEFAULT 0,
    ADD COLUMN headers_dropped integer NOT NULL DEFAULT 0;

COMMENT ON COLUMN bayarhook.callbacks.body_length IS
    'bytes of the request body as received (body may hold only the first of them); NULL before 008';
COMMENT ON COLUMN bayarhook.callbacks.body_sha256 IS
    'SHA-256 of the request body as received; NULL before 008';
COMMENT ON COLUMN bayarhook.callbacks.repeat IS
    'requests this row stands for: itself and identical refusals (client, verdict, body) collapsed into it';
COMMENT ON COLUMN bayarhook.callbacks.suppressed IS
    'refusals of this client kept out of the audit by the rate limits since its previous row';
COMMENT ON COLUMN bayarhook.callbacks.headers_dropped IS
    'request headers left out of headers by the cap on a refusal''s headers';
