-- 006: permanent failures and actions that go away (SPEC §7).
--
-- A job is held for one of two reasons, and resuming one must never
-- release the other: held_reason is NULL for a job waiting for the
-- gateway's confirmation (confirm_with_api; ingest() makes those, and every
-- held job before this migration is one), 'action_removed' for a job whose
-- action is no longer in the config (job_hold_removed() in
-- sql/functions/jobs.sql; job_resume() ends it when the action returns).
ALTER TABLE bayarhook.jobs
    ADD COLUMN held_reason text CHECK (held_reason IN ('action_removed'));

-- job_finish() gains p_permanent (dead at once). A new parameter is a new
-- signature to PostgreSQL: the old function would stay beside the new one
-- and make every call ambiguous, so it goes before sql/functions/ makes
-- the new one.
DROP FUNCTION IF EXISTS bayarhook.job_finish(bigint, text, integer, bigint, text, integer,
                                             double precision, integer, integer, bigint,
                                             text, text);
