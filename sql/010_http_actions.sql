-- 010: the shops' own systems (SPEC §9) and the idempotency key (SPEC §12).
--
-- job_claim() returns idempotency_key too. A changed result type cannot be
-- made by CREATE OR REPLACE, so the old function goes here and
-- sql/functions/jobs.sql makes the new one right after the migrations.
DROP FUNCTION IF EXISTS bayarhook.job_claim(text, integer, jsonb, integer);
