-- jobs.sql: every change of a job's state, as named functions. The worker
-- (src/worker.c), the confirmer (src/confirm.c) and the CLI (src/cli_jobs.c)
-- call these with named arguments and nothing else writes bayarhook.jobs
-- (ingest() only creates jobs, pending or held). bayarhook migrate applies
-- this file every time, after the numbered migrations and in their
-- transaction, so CREATE OR REPLACE is the rule here and a parameter or
-- result column is never renamed in place (PostgreSQL refuses; drop the
-- function in a numbered migration first).
--
-- States (SPEC §6):
--   pending    waits for next_attempt_at, then job_claim() takes it
--   running    claimed: lease_owner holds it until lease_until
--   succeeded  final
--   dead       failed max_attempts times, or once with a failure retrying
--              cannot fix, or refused by the confirmer; waits for
--              bayarhook retry
--   held       held_reason NULL: waits for the gateway to confirm the
--              payment (confirm_held); 'action_removed': waits for its
--              action to come back to the config (job_resume); 'after':
--              waits for the invoice's job of after_action to succeed
--              (job_finish)
--   cancelled  final: bayarhook cancel ended it
--
-- Every write to a claimed job is fenced on its claim (lease_owner and
-- attempts): a runner whose lease ran out changes nothing.
--
-- job_claim() and job_finish(), called for every job, are plpgsql around
-- one query: a LANGUAGE sql function with data-modifying CTEs is parsed and
-- planned again on every call (about half a millisecond each, more than
-- running it), while plpgsql keeps the plan for the session (issue 16).
-- #variable_conflict use_column: a name is the column where a result column
-- has the same name.

-- The one rule of which state may become which; a trigger enforces it on
-- every UPDATE of jobs.state, whoever writes. Same-state pairs are true only
-- where a function writes them: a pending job made due now (retry), a
-- running one taken over after its lease ended (claim). pending ->
-- succeeded or dead: a sql action on the receiver's own database, taken,
-- run and finished in one transaction (jobs_direct.sql), never running.
CREATE OR REPLACE FUNCTION bayarhook.job_state_may_change(p_from text, p_to text)
RETURNS boolean
LANGUAGE sql IMMUTABLE AS $fn$
    SELECT coalesce(CASE p_from
        WHEN 'pending' THEN p_to IN ('pending', 'running', 'held', 'cancelled', 'succeeded',
                                     'dead')
        WHEN 'running' THEN p_to IN ('running', 'pending', 'succeeded', 'dead')
        WHEN 'held'    THEN p_to IN ('pending', 'dead', 'cancelled')
        WHEN 'dead'    THEN p_to IN ('pending', 'cancelled')
        ELSE false -- succeeded and cancelled never change
    END, false)
$fn$;

CREATE OR REPLACE FUNCTION bayarhook.jobs_refuse_state_change()
RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE EXCEPTION 'job % cannot go from % to %', OLD.id, OLD.state, NEW.state
        USING ERRCODE = 'check_violation',
              HINT = 'bayarhook.job_state_may_change() is the rule';
END
$fn$;

-- A trigger has no CREATE OR REPLACE before PostgreSQL 14: create it once.
-- Its WHEN calls the rule by name, so a new rule needs no new trigger.
DO $do$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger
                    WHERE tgrelid = 'bayarhook.jobs'::regclass
                      AND tgname = 'jobs_state_rule') THEN
        CREATE TRIGGER jobs_state_rule
            BEFORE UPDATE OF state ON bayarhook.jobs
            FOR EACH ROW
            WHEN (NOT bayarhook.job_state_may_change(OLD.state, NEW.state))
            EXECUTE FUNCTION bayarhook.jobs_refuse_state_change();
    END IF;
END
$do$;

-- SPEC §12: a job's Idempotency-Key, the SHA-256 of invoice|action|status,
-- the same for every attempt and rerun and for a job made again after a
-- failover; a replay's adds its own job id, so each replay is new.
CREATE OR REPLACE FUNCTION bayarhook.job_idempotency_key(p_invoice text, p_action text,
                                                         p_status text, p_replay boolean,
                                                         p_job bigint)
RETURNS text
LANGUAGE sql IMMUTABLE AS $fn$
    SELECT encode(sha256(convert_to(p_invoice || '|' || p_action || '|' || coalesce(p_status, '')
                                    || CASE WHEN p_replay THEN '|replay ' || p_job ELSE '' END,
                                    'UTF8')), 'hex')
$fn$;

-- Claims up to p_limit due jobs for p_owner: pending ones whose time has
-- come and running ones whose lease ended (their runner is gone), oldest
-- due first. Each gets attempts + 1 and a lease of p_leases ->> action
-- seconds (p_default_lease for an action this process does not know). The
-- open attempt of a job taken over is closed as abandoned, and a new
-- attempt row opened. event_bare is the event without the signature fields.
-- status is the payment status that triggered the job; flag the payment's
-- flag as it is now (SPEC §7: every action sees it; NULL when none).
-- idempotency_key: job_idempotency_key(). (010 dropped the version without idempotency_key.) p_skip: actions whose
-- pending jobs this process takes with job_take() instead (016); their
-- lapsed running jobs (claimed before) are still taken over here.
CREATE OR REPLACE FUNCTION bayarhook.job_claim(p_owner text, p_limit integer, p_leases jsonb,
                                               p_default_lease integer,
                                               p_skip text[] DEFAULT '{}')
RETURNS TABLE (job_id bigint, invoice_id text, action text, attempts integer, source text,
               event text, event_bare text, attempt_id bigint, status text, flag text,
               idempotency_key text)
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
BEGIN
    RETURN QUERY
        -- Each half reads its own partial index in order (013); a job of the
        -- half left out by the final LIMIT stays locked only until the commit.
        WITH due AS (
            SELECT id, next_attempt_at FROM bayarhook.jobs
             WHERE state = 'pending' AND next_attempt_at <= now()
               AND action <> ALL (p_skip)
             ORDER BY next_attempt_at, id LIMIT p_limit
               FOR UPDATE SKIP LOCKED
        ), lapsed AS (
            SELECT id, next_attempt_at FROM bayarhook.jobs
             WHERE state = 'running' AND lease_until < now()
             ORDER BY lease_until LIMIT p_limit
               FOR UPDATE SKIP LOCKED
        ), c AS (
            SELECT id FROM (SELECT * FROM due UNION ALL SELECT * FROM lapsed) u
             ORDER BY next_attempt_at, id LIMIT p_limit
        ), j AS (
            UPDATE bayarhook.jobs AS t SET state = 'running', attempts = t.attempts + 1,
                   lease_owner = p_owner,
                   lease_until = now() + make_interval(secs =>
                       coalesce((p_leases ->> t.action)::integer, p_default_lease))
              FROM c WHERE t.id = c.id
            RETURNING t.id, t.invoice_id, t.action, t.attempts, t.source, t.event, t.status,
                      t.replay
        ), ab AS (
            UPDATE bayarhook.job_attempts AS a SET outcome = 'abandoned', finished_at = now()
              FROM j WHERE a.job_id = j.id AND a.finished_at IS NULL
        ), ins AS (
            INSERT INTO bayarhook.job_attempts (job_id, attempt, runner)
            SELECT j.id, j.attempts, p_owner FROM j
            RETURNING id, job_id
        )
        SELECT j.id, j.invoice_id, j.action, j.attempts, j.source,
               coalesce(j.event, p.event)::text,
               (coalesce(j.event, p.event) - 'timestamp' - 'signature')::text, ins.id, j.status,
               p.flag,
               bayarhook.job_idempotency_key(j.invoice_id, j.action, j.status, j.replay, j.id)
          FROM j JOIN ins ON ins.job_id = j.id
          JOIN bayarhook.payments p ON p.invoice_id = j.invoice_id
         ORDER BY j.id;
END
$fn$;

-- Records the outcome of attempt p_attempt_id of a job claimed by p_owner
-- as its attempt number p_attempts. Success: succeeded. Failure: pending
-- again in p_retry_in seconds (the caller's backoff), or dead once
-- attempts reach p_max_attempts, or dead at once when p_permanent (a
-- failure retrying cannot fix, SPEC §7: the action type decided it).
-- Returns the new state, or no row when the claim is gone (nothing is
-- written then). (006 dropped the version without p_permanent.) The one
-- item of a job_finish_many(), which holds the query.
CREATE OR REPLACE FUNCTION bayarhook.job_finish(p_job bigint, p_owner text, p_attempts integer,
                                                p_attempt_id bigint, p_outcome text,
                                                p_max_attempts integer,
                                                p_retry_in double precision,
                                                p_exit_code integer DEFAULT NULL,
                                                p_http_status integer DEFAULT NULL,
                                                p_row_count bigint DEFAULT NULL,
                                                p_output text DEFAULT NULL,
                                                p_error text DEFAULT NULL,
                                                p_permanent boolean DEFAULT false)
RETURNS TABLE (state text)
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
BEGIN
    RETURN QUERY
        SELECT f.state FROM bayarhook.job_finish_many(p_owner, jsonb_build_array(jsonb_build_object(
            'job', p_job, 'attempts', p_attempts, 'attempt_id', p_attempt_id,
            'outcome', p_outcome, 'max_attempts', p_max_attempts, 'retry_in', p_retry_in,
            'exit_code', p_exit_code, 'http_status', p_http_status, 'row_count', p_row_count,
            'output', p_output, 'error', p_error, 'permanent', p_permanent))) AS f;
END
$fn$;

-- after = NAME (SPEC §9): a success of action p_action for each invoice of
-- p_invoice (arrays of one length, or a single pair) lets the invoice's jobs
-- waiting for it go, and tells the queue once. A dead job lets nothing go.
-- Returns how many it let go. The held jobs are never the finished ones, so
-- a statement that finishes jobs may call this on them as it goes.
CREATE OR REPLACE FUNCTION bayarhook.job_release_after(p_invoice text[], p_action text[])
RETURNS integer
LANGUAGE plpgsql AS $fn$
DECLARE
    n integer;
BEGIN
    UPDATE bayarhook.jobs w SET state = 'pending', held_reason = NULL, next_attempt_at = now()
      FROM unnest(p_invoice, p_action) AS s(inv, act)
     WHERE w.invoice_id = s.inv AND w.after_action = s.act
       AND w.state = 'held' AND w.held_reason = 'after';
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        PERFORM pg_notify('bayarhook_jobs', '');
    END IF;
    RETURN n;
END
$fn$;

CREATE OR REPLACE FUNCTION bayarhook.job_release_after(p_invoice text, p_action text)
RETURNS integer
LANGUAGE sql AS $fn$
    SELECT bayarhook.job_release_after(ARRAY[p_invoice], ARRAY[p_action])
$fn$;

-- job_finish() for many jobs in one statement and one commit (issue 16):
-- the worker records the outcomes of every attempt that ended since its
-- last write together, and the sql action's completions of a shared
-- transaction. p_items is a JSON array of objects with
-- job_finish()'s arguments under the same names without "p_" (job,
-- attempts, attempt_id, outcome, max_attempts, retry_in, exit_code,
-- http_status, row_count, output, error, permanent); numbers may be JSON
-- strings. Each item is fenced on its own claim; one row (job_id, state)
-- per job whose claim held, none for one whose claim is gone.
-- One query per item, in a loop of this function: a set-based version, one
-- UPDATE of jobs for all items, measured slower (0.3-0.6 ms per job against
-- about 0.25, bench/fulfil.py), and calling job_finish() per item cost a
-- nested set-returning call and a second read of the job's row (0.13-0.16
-- ms per job against 0.13-0.14 like this).
CREATE OR REPLACE FUNCTION bayarhook.job_finish_many(p_owner text, p_items jsonb)
RETURNS TABLE (job_id bigint, state text)
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
DECLARE
    x    record;
BEGIN
    FOR x IN
        SELECT r.job, r.attempts, r.attempt_id, r.outcome, r.max_attempts,
               coalesce(r.retry_in, 0) AS retry_in, r.exit_code, r.http_status, r.row_count,
               r.output, r.error,
               -- final: succeeded, or dead if the job's attempts say so (below)
               r.outcome = 'succeeded' OR coalesce(r.permanent, false) AS ends,
               r.outcome = 'succeeded' AS ok, coalesce(r.permanent, false) AS permanent
          FROM jsonb_to_recordset(p_items) AS r(job bigint, attempts integer, attempt_id bigint,
                                                outcome text, max_attempts integer,
                                                retry_in double precision, exit_code integer,
                                                http_status integer, row_count bigint,
                                                output text, error text, permanent boolean)
    LOOP
        RETURN QUERY
            WITH j AS (
                UPDATE bayarhook.jobs SET
                       state = CASE WHEN x.ok THEN 'succeeded'
                                    WHEN x.permanent OR attempts >= x.max_attempts THEN 'dead'
                                    ELSE 'pending' END,
                       finished_at = CASE WHEN x.ends OR attempts >= x.max_attempts
                                          THEN now() END,
                       next_attempt_at = CASE WHEN x.ends OR attempts >= x.max_attempts
                                              THEN next_attempt_at
                                              ELSE now() + x.retry_in * interval '1 second' END,
                       last_error = x.error, lease_owner = NULL, lease_until = NULL
                 WHERE id = x.job AND lease_owner = p_owner AND attempts = x.attempts
                   AND state = 'running'
                RETURNING id, state, invoice_id, action
            ), a AS (
                UPDATE bayarhook.job_attempts SET finished_at = now(), outcome = x.outcome,
                       exit_code = x.exit_code, http_status = x.http_status,
                       row_count = x.row_count, output = x.output
                 WHERE id = x.attempt_id AND finished_at IS NULL AND EXISTS (SELECT 1 FROM j)
            ), rel AS (
                SELECT bayarhook.job_release_after(j.invoice_id, j.action) AS n
                  FROM j WHERE j.state = 'succeeded'
            )
            SELECT j.id, j.state FROM j LEFT JOIN rel ON rel.n >= 0;  -- rel.n: always run
    END LOOP;
END
$fn$;

-- Actions that go away (SPEC §7): the pending jobs of every action not in
-- p_actions (the actions of the running config) are held, held_reason
-- 'action_removed': never claimed, no attempt spent. serve calls this at
-- start and on every reload. Returns how many it held (held) and how many
-- wait so in all, those held earlier included (waiting).
CREATE OR REPLACE FUNCTION bayarhook.job_hold_removed(p_actions text[])
RETURNS TABLE (held integer, waiting integer)
LANGUAGE plpgsql AS $fn$
BEGIN
    UPDATE bayarhook.jobs j SET state = 'held', held_reason = 'action_removed'
     WHERE j.state = 'pending' AND NOT (j.action = ANY (p_actions));
    GET DIAGNOSTICS held = ROW_COUNT;
    SELECT count(*)::integer INTO waiting FROM bayarhook.jobs j
     WHERE j.state = 'held' AND j.held_reason = 'action_removed'
       AND NOT (j.action = ANY (p_actions));
    RETURN NEXT;
END
$fn$;

-- The jobs job_hold_removed() held whose action is in p_actions again are
-- pending, due now, and the queue is notified. Jobs held for the gateway's
-- confirmation (held_reason NULL) are never touched. Returns how many.
CREATE OR REPLACE FUNCTION bayarhook.job_resume(p_actions text[])
RETURNS integer
LANGUAGE plpgsql AS $fn$
DECLARE
    n   integer;
    inv text;
BEGIN
    WITH r AS (
        UPDATE bayarhook.jobs j SET state = 'pending', held_reason = NULL,
               next_attempt_at = now()
         WHERE j.state = 'held' AND j.held_reason = 'action_removed'
           AND j.action = ANY (p_actions)
        RETURNING j.invoice_id
    )
    SELECT count(*)::integer, min(r.invoice_id) INTO n, inv FROM r;
    IF n > 0 THEN
        PERFORM pg_notify('bayarhook_jobs', inv);
    END IF;
    RETURN n;
END
$fn$;

-- A claimed job whose action the claiming process does not know (made by a
-- batch that was in flight while a reload removed the action): the claim
-- is given back uncounted, as job_release() does, and the job held as
-- job_hold_removed() holds. Fenced like job_finish(); returns the job, or
-- no row when the claim is gone.
CREATE OR REPLACE FUNCTION bayarhook.job_hold_claimed(p_job bigint, p_owner text,
                                                      p_attempts integer, p_attempt_id bigint)
RETURNS TABLE (job_id bigint)
LANGUAGE plpgsql AS $fn$
BEGIN
    -- Two steps, each a move the state rule allows: running -> pending -> held.
    UPDATE bayarhook.jobs j SET state = 'pending', attempts = j.attempts - 1,
           lease_owner = NULL, lease_until = NULL
     WHERE j.id = p_job AND j.lease_owner = p_owner AND j.attempts = p_attempts
       AND j.state = 'running';
    IF NOT FOUND THEN
        RETURN;
    END IF;
    UPDATE bayarhook.jobs j SET state = 'held', held_reason = 'action_removed'
     WHERE j.id = p_job;
    UPDATE bayarhook.job_attempts a SET finished_at = now(), outcome = 'abandoned',
           output = 'not run: its action is not in the config; the job is held'
     WHERE a.id = p_attempt_id AND a.finished_at IS NULL;
    job_id := p_job;
    RETURN NEXT;
END
$fn$;

-- bayarhook serve stopping (SIGTERM after the grace): the job goes back,
-- due now, and the interrupted attempt does not count. Fenced like
-- job_finish(); returns the job, or no row when the claim is gone.
CREATE OR REPLACE FUNCTION bayarhook.job_release(p_job bigint, p_owner text, p_attempts integer,
                                                 p_attempt_id bigint)
RETURNS TABLE (job_id bigint)
LANGUAGE sql AS $fn$
    WITH j AS (
        UPDATE bayarhook.jobs SET state = 'pending', attempts = attempts - 1,
               next_attempt_at = now(), lease_owner = NULL, lease_until = NULL
         WHERE id = p_job AND lease_owner = p_owner AND attempts = p_attempts
           AND state = 'running'
        RETURNING id
    ), a AS (
        UPDATE bayarhook.job_attempts SET finished_at = now(), outcome = 'abandoned',
               output = 'interrupted: bayarhook stopped'
         WHERE id = p_attempt_id AND finished_at IS NULL AND EXISTS (SELECT 1 FROM j)
    )
    SELECT j.id FROM j
$fn$;

-- The claim owners ("host:pid:scope:nonce") of running jobs that belong to
-- other processes of host p_host under kernel scope p_scope: the worker
-- checks whether those processes still exist.
CREATE OR REPLACE FUNCTION bayarhook.job_local_owners(p_host text, p_scope text, p_self text)
RETURNS SETOF text
LANGUAGE sql STABLE AS $fn$
    SELECT DISTINCT lease_owner FROM bayarhook.jobs
     WHERE state = 'running' AND split_part(lease_owner, ':', 1) = p_host
       AND split_part(lease_owner, ':', 3) = p_scope AND lease_owner <> p_self
$fn$;

-- The leases of p_owners (a JSON array of owners whose processes are gone)
-- end now, so the next claim takes their jobs over. Returns how many.
CREATE OR REPLACE FUNCTION bayarhook.job_expire_owners(p_owners jsonb)
RETURNS integer
LANGUAGE sql AS $fn$
    WITH r AS (
        UPDATE bayarhook.jobs SET lease_until = now() - interval '1 second'
         WHERE state = 'running'
           AND lease_owner IN (SELECT jsonb_array_elements_text(p_owners))
        RETURNING id
    )
    SELECT count(*)::integer FROM r
$fn$;

-- bayarhook retry: a dead job starts over (attempts 0, so a full
-- max_attempts); a pending one becomes due now, its attempts still
-- counting. Other states are left alone. Returns the state it was in and
-- whether it was queued, or no row when there is no such job.
CREATE OR REPLACE FUNCTION bayarhook.job_retry(p_job bigint)
RETURNS TABLE (was text, queued boolean)
LANGUAGE sql AS $fn$
    WITH cur AS (
        SELECT id, state FROM bayarhook.jobs WHERE id = p_job FOR UPDATE
    ), upd AS (
        UPDATE bayarhook.jobs j SET state = 'pending', next_attempt_at = now(),
               finished_at = NULL,
               attempts = CASE WHEN cur.state = 'dead' THEN 0 ELSE j.attempts END
          FROM cur WHERE j.id = cur.id AND cur.state IN ('dead', 'pending')
        RETURNING j.invoice_id
    ), n AS (
        SELECT pg_notify('bayarhook_jobs', upd.invoice_id) FROM upd
    )
    SELECT cur.state, (SELECT count(*) FROM n) > 0 FROM cur
$fn$;

-- bayarhook cancel: a pending, held or dead job ends, cancelled. Returns
-- the state it was in and whether it was cancelled, or no row when there is
-- no such job.
CREATE OR REPLACE FUNCTION bayarhook.job_cancel(p_job bigint)
RETURNS TABLE (was text, cancelled boolean)
LANGUAGE sql AS $fn$
    WITH cur AS (
        SELECT id, state FROM bayarhook.jobs WHERE id = p_job FOR UPDATE
    ), upd AS (
        UPDATE bayarhook.jobs j SET state = 'cancelled', finished_at = now()
          FROM cur WHERE j.id = cur.id AND cur.state IN ('pending', 'held', 'dead')
        RETURNING j.id
    )
    SELECT cur.state, EXISTS (SELECT 1 FROM upd) FROM cur
$fn$;

-- bayarhook replay: new jobs (replay = true, so never deduplicated) for the
-- actions p_actions names under the payment's current status ({"paid":
-- ["a", "b"], ...}, as ingest() takes them), in that order. One row per
-- new job with outcome 'queued'; or a single row saying why none was made:
-- 'no_payment', 'held' (its jobs wait for the gateway's confirmation), or
-- 'no_action' (none runs on that status). status is the payment's.
CREATE OR REPLACE FUNCTION bayarhook.job_replay(p_invoice text, p_actions jsonb)
RETURNS TABLE (outcome text, status text, job_id bigint, action text)
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
DECLARE
    st      text;
    names   jsonb;
BEGIN
    -- The payment row lock orders us with ingest() and the confirmer.
    SELECT p.status INTO st FROM bayarhook.payments p
     WHERE p.invoice_id = p_invoice FOR UPDATE;
    IF NOT FOUND THEN
        outcome := 'no_payment';
        RETURN NEXT;
        RETURN;
    END IF;
    status := st;
    names := p_actions -> st;
    IF EXISTS (SELECT 1 FROM bayarhook.jobs j
                WHERE j.invoice_id = p_invoice AND j.state = 'held'
                  AND j.held_reason IS NULL) THEN
        outcome := 'held';
        RETURN NEXT;
        RETURN;
    END IF;
    IF jsonb_typeof(names) IS DISTINCT FROM 'array' OR jsonb_array_length(names) = 0 THEN
        outcome := 'no_action';
        RETURN NEXT;
        RETURN;
    END IF;
    RETURN QUERY
    WITH ins AS (
        -- after = NAME: a replayed job waits for a NAME job this replay makes.
        INSERT INTO bayarhook.jobs (invoice_id, action, trigger_status, source, event, replay,
                                    state, after_action, held_reason)
        SELECT p.invoice_id, a.name, p.status, p.source, p.event, true,
               CASE WHEN names ? (p_actions -> 'after' ->> a.name) THEN 'held'
                    ELSE 'pending' END,
               p_actions -> 'after' ->> a.name,
               CASE WHEN names ? (p_actions -> 'after' ->> a.name) THEN 'after' END
          FROM bayarhook.payments p,
               jsonb_array_elements_text(names) WITH ORDINALITY AS a(name, n)
         WHERE p.invoice_id = p_invoice
         ORDER BY a.n
        RETURNING id, action
    )
    SELECT 'queued'::text, st, ins.id, ins.action FROM ins ORDER BY ins.id;
    PERFORM pg_notify('bayarhook_jobs', p_invoice);
END
$fn$;

-- confirm_with_api: decides the held jobs (held_reason NULL) of one invoice against the
-- gateway's check-payment answer. gw_status NULL means the gateway does not
-- know the invoice. For each (status, final_amount) the held jobs were
-- queued with:
--   agreed       same status (or the jobs were for 'pending' and the gateway
--                has moved on) and the same amount as a number: the jobs
--                become pending, due now, and the queue is notified;
--   unconfirmed  the gateway still says 'pending' for a non-pending callback
--                (its API may lag its callbacks): nothing changes, and the
--                confirmer asks again later, at most max_unconfirmed times;
--   disagreed    anything else: the jobs are dead with the reason, the
--                payment is flagged.
-- Every decision is a row in bayarhook.confirmations. (The parameter names
-- are 002's, which first defined it.)
CREATE OR REPLACE FUNCTION bayarhook.confirm_held(inv text, gw_status text, gw_final_amount text,
                                                  max_unconfirmed integer)
RETURNS TABLE (outcome text, jobs integer, reason text)
LANGUAGE plpgsql AS $fn$
DECLARE
    g       record;
    o       text;
    why     text;
    n       integer;
    tries   integer;
    pev     jsonb;
BEGIN
    -- The payment row lock orders us with ingest() and other confirmers.
    -- Its event is a paid job's (jobs.event NULL, 016).
    SELECT p.event INTO pev FROM bayarhook.payments p WHERE p.invoice_id = inv FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    FOR g IN
        SELECT j.trigger_status AS st, coalesce(j.event, pev) ->> 'final_amount' AS fa
          FROM bayarhook.jobs j
         WHERE j.invoice_id = inv AND j.state = 'held' AND j.held_reason IS NULL
         GROUP BY 1, 2
    LOOP
        why := NULL;
        IF gw_status IS NULL THEN
            o := 'disagreed';
            why := 'the gateway does not know this invoice';
        ELSIF bayarhook.try_numeric(g.fa) IS DISTINCT FROM bayarhook.try_numeric(gw_final_amount)
              OR bayarhook.try_numeric(g.fa) IS NULL THEN
            o := 'disagreed';
            why := format('final_amount differs: callback %s, gateway %s',
                          coalesce(g.fa, 'none'), coalesce(gw_final_amount, 'none'));
        ELSIF g.st = gw_status OR g.st = 'pending' THEN
            o := 'agreed';
        ELSIF gw_status = 'pending' THEN
            SELECT count(*) INTO tries FROM bayarhook.confirmations c
             WHERE c.invoice_id = inv AND c.outcome = 'unconfirmed';
            IF tries + 1 >= max_unconfirmed THEN
                o := 'disagreed';
                why := format('status differs: callback %s, gateway still pending after %s checks',
                              g.st, tries + 1);
            ELSE
                o := 'unconfirmed';
                why := format('the gateway still says pending (check %s of %s)',
                              tries + 1, max_unconfirmed);
            END IF;
        ELSE
            o := 'disagreed';
            why := format('status differs: callback %s, gateway %s', g.st, gw_status);
        END IF;

        n := 0;
        IF o = 'agreed' THEN
            UPDATE bayarhook.jobs j SET state = 'pending', next_attempt_at = now()
             WHERE j.invoice_id = inv AND j.state = 'held' AND j.held_reason IS NULL
               AND j.trigger_status = g.st AND (coalesce(j.event, pev) ->> 'final_amount') IS NOT DISTINCT FROM g.fa;
            GET DIAGNOSTICS n = ROW_COUNT;
            IF n > 0 THEN
                PERFORM pg_notify('bayarhook_jobs', inv);
            END IF;
        ELSIF o = 'disagreed' THEN
            UPDATE bayarhook.jobs j SET state = 'dead', finished_at = now(),
                   last_error = 'not confirmed by the gateway: ' || why
             WHERE j.invoice_id = inv AND j.state = 'held' AND j.held_reason IS NULL
               AND j.trigger_status = g.st AND (coalesce(j.event, pev) ->> 'final_amount') IS NOT DISTINCT FROM g.fa;
            GET DIAGNOSTICS n = ROW_COUNT;
            UPDATE bayarhook.payments p SET flagged = true,
                   flag_reason = 'not confirmed by the gateway: ' || why, updated_at = now()
             WHERE p.invoice_id = inv;
        END IF;
        INSERT INTO bayarhook.confirmations
            (invoice_id, outcome, callback_status, callback_final_amount, gateway_status,
             gateway_final_amount, jobs, reason)
        VALUES (inv, o, g.st, g.fa, gw_status, gw_final_amount, n, why);
        outcome := o;
        jobs := n;
        reason := why;
        RETURN NEXT;
    END LOOP;
END
$fn$;

-- bayarhook retry --state dead: every dead job (of p_action when given,
-- dead since p_since when given) starts over like job_retry() starts one,
-- in one statement. One row per job queued; the daemons are woken once per
-- invoice (NOTIFY folds identical payloads in a transaction).
CREATE OR REPLACE FUNCTION bayarhook.job_retry_dead(p_action text, p_since timestamptz)
RETURNS TABLE (job_id bigint, invoice_id text)
LANGUAGE sql AS $fn$
    WITH upd AS (
        UPDATE bayarhook.jobs j SET state = 'pending', next_attempt_at = now(),
               finished_at = NULL, attempts = 0
         WHERE j.state = 'dead'
           AND (p_action IS NULL OR j.action = p_action)
           AND (p_since IS NULL OR coalesce(j.finished_at, j.created_at) >= p_since)
        RETURNING j.id, j.invoice_id
    ), n AS (
        SELECT pg_notify('bayarhook_jobs', upd.invoice_id) FROM upd
    )
    SELECT upd.id, upd.invoice_id FROM upd WHERE (SELECT count(*) FROM n) > 0
$fn$;
