-- 016: sql actions on the receiver's own database run where their jobs are
-- (issue 16): one transaction takes due jobs (row locks, SKIP LOCKED), runs
-- their statements and records their outcomes, pending -> succeeded in one
-- write (sql/functions/jobs_direct.sql). job_claim() gains p_skip, the
-- actions it leaves to that path; a parameter cannot be added in place, so
-- the old signature goes (sql/functions/jobs.sql makes the new one right
-- after the migrations, and a call by name with the old four arguments
-- still works against it).
DROP FUNCTION IF EXISTS bayarhook.job_claim(text, integer, jsonb, integer);

-- A paid job's event is its payment's (ingest() leaves jobs.event NULL;
-- readers take coalesce(jobs.event, payments.event)): paid is final, so the
-- payment's event is the one that made the job, and each job of a paid
-- callback no longer copies it, nor writes it again at every state change.
ALTER TABLE bayarhook.jobs ALTER COLUMN event DROP NOT NULL;
