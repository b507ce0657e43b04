-- jobs_direct.sql: the jobs of a sql action on the receiver's own database,
-- taken, run and finished in one transaction (issue 16; src/action_sql_direct.c):
--
--   BEGIN;
--   SELECT ... FROM bayarhook.job_take(...);      -- due jobs, locked
--   SELECT ... FROM bayarhook.job_run_sql(...);   -- each statement, each outcome
--   COMMIT;
--
-- A job taken so is never 'running' and has no lease: its row lock is the
-- claim (SKIP LOCKED keeps every other taker off it), and it ends with its
-- statement's effects in one commit: exactly once (SPEC §5). A process that
-- dies before the COMMIT leaves the job pending and the statement undone;
-- an attempt is counted only when its outcome is written. Four round trips
-- and one commit for up to a batch of jobs, where a claim, a statement and a
-- completion each cost one before; and one write of the job's row, not two.

-- The types PostgreSQL infers for the statement's parameters ($1..$n, as
-- text a client binds with no type), one row each in order, as names that
-- parse back: the caller
-- casts its text values to them, so a value means what it meant bound to
-- the statement itself. PREPARE is not transactional: the statement is
-- always deallocated before this returns. The PREPARE runs in a
-- subtransaction that is always undone: a text with a second command
-- (which the daemon does not send here: action_sql_one_command()) cannot
-- change anything through it.
CREATE OR REPLACE FUNCTION bayarhook.sql_param_types(p_statement text)
RETURNS SETOF text
LANGUAGE plpgsql AS $fn$
DECLARE
    t text[];
BEGIN
    IF EXISTS (SELECT 1 FROM pg_prepared_statements WHERE name = 'bayarhook_param_types') THEN
        DEALLOCATE bayarhook_param_types;
    END IF;
    BEGIN
        EXECUTE 'PREPARE bayarhook_param_types AS ' || p_statement;
        SELECT s.parameter_types::text[] INTO t FROM pg_prepared_statements s
         WHERE s.name = 'bayarhook_param_types';
        DEALLOCATE bayarhook_param_types;
        RAISE SQLSTATE 'BH002';  -- undo whatever else the text did
    EXCEPTION
        WHEN SQLSTATE 'BH002' THEN
            NULL;
        WHEN OTHERS THEN
            IF EXISTS (SELECT 1 FROM pg_prepared_statements
                        WHERE name = 'bayarhook_param_types') THEN
                DEALLOCATE bayarhook_param_types;
            END IF;
            RAISE;
    END;
    RETURN QUERY SELECT u.x FROM unnest(t) WITH ORDINALITY AS u(x, i) ORDER BY u.i;
END
$fn$;

-- Takes up to p_limit due pending jobs of action p_action (only those in
-- p_only when given), oldest due first, locked until the transaction ends,
-- and sets the transaction's statement_timeout to p_timeout_ms (the
-- action's timeout). attempts is the number of the attempt about to run.
-- The other columns are job_claim()'s, but event_bare, which no sql
-- statement can name: NULL.
CREATE OR REPLACE FUNCTION bayarhook.job_take(p_action text, p_limit integer, p_timeout_ms integer,
                                              p_only bigint[] DEFAULT NULL)
RETURNS TABLE (job_id bigint, invoice_id text, attempts integer, source text, event text,
               event_bare text, status text, flag text, idempotency_key text)
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
BEGIN
    PERFORM set_config('statement_timeout', p_timeout_ms::text, true);
    -- The ids first, in the partial index's order (013), then the rest of
    -- their rows: a join under the LIMIT reads every due job.
    RETURN QUERY
        WITH c AS (
            SELECT id FROM bayarhook.jobs
             WHERE state = 'pending' AND next_attempt_at <= now() AND action = p_action
               AND (p_only IS NULL OR id = ANY (p_only))
             ORDER BY next_attempt_at, id LIMIT p_limit
               FOR UPDATE SKIP LOCKED)
        SELECT j.id, j.invoice_id, j.attempts + 1, j.source, coalesce(j.event, p.event)::text,
               NULL::text, j.status, p.flag,
               bayarhook.job_idempotency_key(j.invoice_id, j.action, j.status, j.replay, j.id)
          FROM c
          JOIN bayarhook.jobs j ON j.id = c.id
          JOIN bayarhook.payments p ON p.invoice_id = j.invoice_id
         ORDER BY j.id;
END
$fn$;

-- The outcomes of attempts of jobs taken with job_take() in this
-- transaction, or of one whose transaction was lost (job_attempt_lost), one
-- element of each array per job: attempts becomes p_attempts; succeeded,
-- or pending again in p_retry_in seconds, or dead (p_permanent, or
-- p_attempts reached p_max_attempts). Fenced on the job being pending at
-- attempt p_attempts - 1. Also writes each attempt's row, and a success
-- lets the invoice's jobs waiting for its action go (after = NAME, SPEC
-- §9). One row (job_id, state) per job written; none for one whose fence
-- did not hold. One statement for all of them: each statement costs an
-- executor start and the state rule's trigger set up again, more than a
-- job's own writes (issue 16).
CREATE OR REPLACE FUNCTION bayarhook.job_direct_end(p_owner text, p_max_attempts integer,
                                                    p_job bigint[], p_attempts integer[],
                                                    p_outcome text[], p_row_count bigint[],
                                                    p_output text[], p_error text[],
                                                    p_permanent boolean[],
                                                    p_retry_in double precision[])
RETURNS TABLE (job_id bigint, state text)
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
BEGIN
    RETURN QUERY
        WITH u AS MATERIALIZED (
            SELECT x.*, CASE WHEN x.oc = 'succeeded' THEN 'succeeded'
                             WHEN x.perm OR x.att >= p_max_attempts THEN 'dead'
                             ELSE 'pending' END AS st
              FROM unnest(p_job, p_attempts, p_outcome, p_row_count, p_output, p_error,
                          p_permanent, p_retry_in) AS x(job, att, oc, n, out, err, perm, wait)
        ), j AS (
            UPDATE bayarhook.jobs j SET state = u.st, attempts = u.att,
                   finished_at = CASE WHEN u.st <> 'pending' THEN now() END,
                   next_attempt_at = CASE WHEN u.st = 'pending'
                                          THEN now() + u.wait * interval '1 second'
                                          ELSE j.next_attempt_at END,
                   last_error = u.err
              FROM u
             WHERE j.id = u.job AND j.state = 'pending' AND j.attempts = u.att - 1
            RETURNING j.id, j.state, j.invoice_id, j.action
        ), a AS (
            INSERT INTO bayarhook.job_attempts
                (job_id, attempt, runner, started_at, finished_at, outcome, row_count, output)
            SELECT u.job, u.att, p_owner, now(), clock_timestamp(), u.oc, u.n, u.out
              FROM u JOIN j ON j.id = u.job
        ), rel AS (
            SELECT bayarhook.job_release_after(array_agg(j.invoice_id), array_agg(j.action)) AS n
              FROM j WHERE j.state = 'succeeded' HAVING count(*) > 0
        )
        SELECT j.id, j.state FROM j LEFT JOIN rel ON rel.n >= 0;  -- rel.n: always run
END
$fn$;

-- Runs p_statement once per item of p_items ({"job", "attempts",
-- "retry_in", "params": [text or null, ...]}: jobs this transaction took
-- with job_take(); an item with "fail" instead, the reason its values could
-- not be bound, fails with it and runs nothing), each in a subtransaction
-- of its own: a statement that
-- fails, or changes other than p_expect_rows rows (0: any), is undone
-- alone and fails only its job (dead at once when p_dead_on_mismatch, for
-- a mismatch). p_statement takes the item's params as one text[], $1,
-- each cast to its type (sql_param_types()): they are bound, never pasted
-- into the text. The statement_timeout job_take() set bounds the whole
-- call: a statement cut off by it is not caught here, the transaction is
-- lost and the caller runs the jobs one by one. One row per item.
CREATE OR REPLACE FUNCTION bayarhook.job_run_sql(p_owner text, p_statement text,
                                                 p_expect_rows integer,
                                                 p_dead_on_mismatch boolean,
                                                 p_max_attempts integer, p_items jsonb)
RETURNS TABLE (job_id bigint, state text, outcome text, row_count bigint, error text)
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
DECLARE
    x      record;
    n      bigint;
    err    text;
    mism   boolean;
    k      integer := 0;
    -- The statement's command tag, as the client would have seen it.
    verb   text := upper(substring(p_statement FROM '^\s*([A-Za-z]+)'));
    jobs   bigint[];
    atts   integer[];
    ocs    text[];
    ns     bigint[];
    outs   text[];
    errs   text[];
    perms  boolean[];
    waits  double precision[];
BEGIN
    FOR x IN
        SELECT r.job, r.attempts, r.params, coalesce(r.retry_in, 0) AS retry_in, r.fail
          FROM jsonb_to_recordset(p_items) AS r(job bigint, attempts integer, params text[],
                                                retry_in double precision, fail text)
    LOOP
        n := NULL;
        err := x.fail;
        mism := false;
        IF err IS NULL THEN
            BEGIN
                EXECUTE p_statement USING x.params;
                GET DIAGNOSTICS n = ROW_COUNT;
                IF p_expect_rows <> 0 AND n <> p_expect_rows THEN
                    RAISE EXCEPTION 'expected % row(s), the statement changed %',
                                    p_expect_rows, n USING ERRCODE = 'BH001';
                END IF;
            EXCEPTION WHEN OTHERS THEN  -- query_canceled is not caught: see above
                mism := SQLSTATE = 'BH001';
                err := CASE WHEN mism THEN SQLERRM ELSE 'statement failed: ' || SQLERRM END;
                n := CASE WHEN mism THEN n END;
            END;
        END IF;
        k := k + 1;
        jobs[k] := x.job;
        atts[k] := x.attempts;
        ocs[k] := CASE WHEN err IS NULL THEN 'succeeded' ELSE 'failed' END;
        ns[k] := n;
        outs[k] := CASE WHEN n IS NOT NULL
                        THEN verb || CASE WHEN verb = 'INSERT' THEN ' 0 ' ELSE ' ' END || n END;
        errs[k] := err;
        perms[k] := mism AND p_dead_on_mismatch;
        waits[k] := x.retry_in;
    END LOOP;
    RETURN QUERY
        SELECT u.job, e.state, u.oc, u.n, u.err
          FROM unnest(jobs, ocs, ns, errs) AS u(job, oc, n, err)
          LEFT JOIN bayarhook.job_direct_end(p_owner, p_max_attempts, jobs, atts, ocs, ns, outs,
                                             errs, perms, waits) e ON e.job_id = u.job;
END
$fn$;

-- The attempt of a job whose transaction was lost (its statement cut off by
-- the timeout, the COMMIT refused, the connection gone) run alone and lost
-- again: written in a transaction of its own, so that a statement that
-- always fails so still counts its attempts and ends dead. Nothing of the
-- statement was committed. Returns the new state, or NULL (see
-- job_direct_end()).
CREATE OR REPLACE FUNCTION bayarhook.job_attempt_lost(p_job bigint, p_attempts integer,
                                                      p_owner text, p_outcome text,
                                                      p_error text, p_max_attempts integer,
                                                      p_retry_in double precision)
RETURNS text
LANGUAGE sql AS $fn$
    SELECT e.state
      FROM bayarhook.job_direct_end(p_owner, p_max_attempts, ARRAY[p_job], ARRAY[p_attempts],
                                    ARRAY[p_outcome], ARRAY[NULL::bigint], ARRAY[NULL::text],
                                    ARRAY[p_error], ARRAY[false], ARRAY[p_retry_in]) e
$fn$;
