-- 013: claims at ingest speed (issue 16). job_claim() takes the oldest due
-- jobs; with one index on next_attempt_at over pending and running jobs
-- alike it had to read every due job (and every running one) and sort them
-- by (next_attempt_at, id) before its LIMIT: milliseconds per claim with a
-- backlog of thousands. Two partial indexes give each half of the claim its
-- rows in order, so a claim reads about as many rows as it takes. Each job
-- is in at most one of them, as it was in jobs_due_idx: the writes per job
-- do not grow.
DROP INDEX IF EXISTS bayarhook.jobs_due_idx;
CREATE INDEX jobs_pending_idx ON bayarhook.jobs (next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX jobs_lease_idx ON bayarhook.jobs (lease_until) WHERE state = 'running';
