-- 010: the shops' own systems (SPEC §9) and the idempotency key (SPEC §12).
--
-- job_claim() returns idempotency_key too. A changed result type cannot be
-- made by CREATE OR REPLACE, so the old function goes here and
-- sql/functions/jobs.sql makes the new one right after the migrations.
DROP FUNCTION IF EXISTS bayarhook.job_claim(text, integer, jsonb, integer);

-- after = NAME (SPEC §9): a job waits, held with held_reason 'after', until
-- the same invoice's job of after_action succeeded (job_finish() releases
-- it). 006 made the CHECK with PostgreSQL's default name.
ALTER TABLE bayarhook.jobs ADD COLUMN IF NOT EXISTS after_action text;
ALTER TABLE bayarhook.jobs DROP CONSTRAINT IF EXISTS jobs_held_reason_check;
ALTER TABLE bayarhook.jobs
    ADD CONSTRAINT jobs_held_reason_check CHECK (held_reason IN ('action_removed', 'after'));
