-- 005: the payment's whole life reaches the shop (SPEC §5-§7, issue 11).
--
-- Until now an action got one job per invoice (jobs_once_idx on invoice and
-- action), so an action with on = paid, expired that had run for `expired`
-- never ran for a late `paid`: the customer paid and the shop never heard.
-- Now it is one job per invoice, action and triggering status.
--
-- jobs.status is the payment status that triggered a job. Every job already
-- carries it in trigger_status (since 001, set by ingest() and job_replay()
-- from the status that made it), which is right for old jobs too, where the
-- payment's status today may be a later one: so status is that column under
-- its SPEC name, generated, and can never disagree with it. Writers keep
-- writing trigger_status (an old daemon not yet restarted included).
ALTER TABLE bayarhook.jobs
    ADD COLUMN status text GENERATED ALWAYS AS (trigger_status) STORED;

-- Under the old rule (invoice_id, action) was unique among non-replay jobs,
-- so every existing row is unique under the new, wider key: the old jobs
-- keep their places, and a later status of their invoice adds its own.
DROP INDEX bayarhook.jobs_once_idx;
CREATE UNIQUE INDEX jobs_once_idx ON bayarhook.jobs (invoice_id, action, status)
    WHERE NOT replay;

-- payments.flag: why a payment needs a human's eyes (for example 'paid after
-- expired'), NULL when nothing does. It is flag_reason under its SPEC name,
-- generated like jobs.status, so every writer of flag_reason (ingest(), the
-- confirmer) sets it without knowing of it.
ALTER TABLE bayarhook.payments
    ADD COLUMN flag text GENERATED ALWAYS AS (CASE WHEN flagged THEN flag_reason END) STORED;

-- The audit says which secret verified a callback (0: the current one; NULL
-- when none did) and whether its signature verified at all, also for one
-- refused as stale (a delayed genuine callback) or audited unsigned. Rows
-- from before this migration say NULL: not recorded.
ALTER TABLE bayarhook.callbacks
    ADD COLUMN secret_index integer,
    ADD COLUMN signature_valid boolean;

-- 'unsigned': [security] unsigned = confirm (SPEC §7).
ALTER TABLE bayarhook.callbacks
    DROP CONSTRAINT callbacks_verdict_check,
    ADD CONSTRAINT callbacks_verdict_check
        CHECK (verdict IN ('accepted', 'duplicate', 'out_of_order', 'bad_signature',
                           'stale_timestamp', 'malformed', 'forbidden', 'too_large',
                           'unsigned'));

-- Result columns change: ingest() returns the flag an item raised, and
-- job_claim() the payment's flag and the job's status. PostgreSQL replaces
-- a function only with the same result type; sql/functions/ creates them
-- again right after this, in the same transaction.
-- IF EXISTS: a database made by the numbered files alone has no job_claim.
DROP FUNCTION IF EXISTS bayarhook.ingest(jsonb, text[], jsonb);
DROP FUNCTION IF EXISTS bayarhook.job_claim(text, integer, jsonb, integer);

-- The victims of the old rule: payments accepted as a late paid whose paid
-- actions never got a job. Running them now, unasked, could fulfil an order
-- a person already handled by hand, so this only says so; README
-- ("Late payments") shows how to find them and `bayarhook replay` them.
DO $do$
DECLARE
    n integer;
BEGIN
    SELECT count(*) INTO n FROM bayarhook.payments p
     WHERE p.status = 'paid' AND p.flagged AND p.flag_reason LIKE 'paid after %'
       AND NOT EXISTS (SELECT 1 FROM bayarhook.jobs j
                        WHERE j.invoice_id = p.invoice_id AND j.trigger_status = 'paid');
    IF n > 0 THEN
        RAISE WARNING '% late paid payment(s) never ran their paid actions: see README, "Late payments"', n;
    END IF;
END
$do$;
