-- Alerts (SPEC §8; the table is 009's). Raised in the transaction of the
-- event itself, so an alert is never lost: a job going dead, a payment
-- flagged, a confirmation that disagreed and a third failed reconcile pass
-- in a row are rows changing, and a trigger on each writes the alert.
-- missed_callback and database_down are raised by the daemon with
-- alert_raise() (database_down, sent straight while the database was away,
-- with alert_record_sent() once it is back).

CREATE OR REPLACE FUNCTION bayarhook.alert_raise(p_kind text, p_subject text, p_detail jsonb)
RETURNS bigint
LANGUAGE sql AS $fn$
    INSERT INTO bayarhook.alerts (kind, subject, detail)
    VALUES (p_kind, coalesce(p_subject, ''), coalesce(p_detail, '{}'))
    RETURNING id
$fn$;

-- database_down already sent straight from the daemon while the database
-- was away: kept for the record, delivered.
CREATE OR REPLACE FUNCTION bayarhook.alert_record_sent(p_kind text, p_subject text, p_detail jsonb)
RETURNS bigint
LANGUAGE sql AS $fn$
    INSERT INTO bayarhook.alerts (kind, subject, detail, state, delivered_at, attempts)
    VALUES (p_kind, coalesce(p_subject, ''), coalesce(p_detail, '{}'), 'sent', now(), 1)
    RETURNING id
$fn$;

CREATE OR REPLACE FUNCTION bayarhook.alerts_on_job_dead()
RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM bayarhook.alert_raise('job_dead', NEW.action,
        jsonb_build_object('invoice', NEW.invoice_id, 'job_id', NEW.id, 'action', NEW.action,
                           'attempts', NEW.attempts, 'last_error', NEW.last_error));
    RETURN NULL;
END
$fn$;

CREATE OR REPLACE FUNCTION bayarhook.alerts_on_payment_flagged()
RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM bayarhook.alert_raise('payment_flagged', NEW.invoice_id,
        jsonb_build_object('invoice', NEW.invoice_id, 'status', NEW.status,
                           'reason', NEW.flag_reason));
    RETURN NULL;
END
$fn$;

CREATE OR REPLACE FUNCTION bayarhook.alerts_on_confirm_disagreed()
RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM bayarhook.alert_raise('confirm_disagreed', NEW.invoice_id,
        jsonb_build_object('invoice', NEW.invoice_id, 'reason', NEW.reason, 'jobs', NEW.jobs,
                           'callback_status', NEW.callback_status,
                           'gateway_status', NEW.gateway_status,
                           'callback_final_amount', NEW.callback_final_amount,
                           'gateway_final_amount', NEW.gateway_final_amount));
    RETURN NULL;
END
$fn$;

-- A failed pass raises reconcile_failing when it and the two finished
-- passes before it all failed (aborted rows, left by a crash, are not
-- passes that ran). Every further failure raises again; min_interval keeps
-- that to one message per interval, the rest counted in suppressed.
CREATE OR REPLACE FUNCTION bayarhook.alerts_on_pass_failed()
RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    last3 text[];
BEGIN
    SELECT array_agg(r.result) INTO last3 FROM (
        SELECT p.result FROM bayarhook.reconcile_passes p
         WHERE p.result IN ('completed', 'failed')
         ORDER BY p.id DESC LIMIT 3) r;
    IF cardinality(last3) = 3 AND last3 = ARRAY['failed', 'failed', 'failed'] THEN
        PERFORM bayarhook.alert_raise('reconcile_failing', '',
            jsonb_build_object('pass_id', NEW.id, 'note', NEW.note, 'errors', NEW.errors));
    END IF;
    RETURN NULL;
END
$fn$;

-- Triggers have no CREATE OR REPLACE before PostgreSQL 14: each is created once.
DO $do$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'bayarhook.jobs'::regclass
                      AND tgname = 'alerts_job_dead') THEN
        CREATE TRIGGER alerts_job_dead
            AFTER UPDATE OF state ON bayarhook.jobs
            FOR EACH ROW
            WHEN (NEW.state = 'dead' AND OLD.state IS DISTINCT FROM 'dead')
            EXECUTE FUNCTION bayarhook.alerts_on_job_dead();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'bayarhook.payments'::regclass
                      AND tgname = 'alerts_payment_flagged') THEN
        CREATE TRIGGER alerts_payment_flagged
            AFTER UPDATE OF flagged ON bayarhook.payments
            FOR EACH ROW
            WHEN (NEW.flagged AND NOT OLD.flagged)
            EXECUTE FUNCTION bayarhook.alerts_on_payment_flagged();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'bayarhook.confirmations'::regclass
                      AND tgname = 'alerts_confirm_disagreed') THEN
        CREATE TRIGGER alerts_confirm_disagreed
            AFTER INSERT ON bayarhook.confirmations
            FOR EACH ROW
            WHEN (NEW.outcome = 'disagreed')
            EXECUTE FUNCTION bayarhook.alerts_on_confirm_disagreed();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'bayarhook.reconcile_passes'::regclass
                      AND tgname = 'alerts_reconcile_failing') THEN
        CREATE TRIGGER alerts_reconcile_failing
            AFTER UPDATE OF result ON bayarhook.reconcile_passes
            FOR EACH ROW
            WHEN (NEW.result = 'failed' AND OLD.result IS DISTINCT FROM 'failed')
            EXECUTE FUNCTION bayarhook.alerts_on_pass_failed();
    END IF;
END
$do$;

-- The delivery claim (src/alert.c). Picks the oldest due pending alert
-- whose kind and subject had nothing sent in the last p_min_interval
-- seconds and nothing in flight; the newest pending alert of that kind and
-- subject is the one sent, the older ones are merged into it and counted
-- in its suppressed (theirs included). Kinds not in p_kinds (NULL: all)
-- are set ignored. Returns the alert JSON as sent, or no row.
CREATE OR REPLACE FUNCTION bayarhook.alert_claim(p_owner text, p_kinds text[],
                                                 p_min_interval integer, p_lease integer)
RETURNS TABLE (alert_id bigint, kind text, attempts integer, body text)
LANGUAGE plpgsql AS $fn$
DECLARE
    c       record;
    carrier bigint;
    s       integer;
BEGIN
    -- One claimer at a time, in every process: the merge reads a group whole.
    PERFORM pg_advisory_xact_lock(7242184292);
    UPDATE bayarhook.alerts a SET state = 'ignored'
     WHERE a.state = 'pending' AND p_kinds IS NOT NULL AND NOT (a.kind = ANY (p_kinds));
    SELECT a.kind, a.subject INTO c FROM bayarhook.alerts a
     WHERE a.state = 'pending' AND a.next_attempt_at <= now()
       AND NOT EXISTS (SELECT 1 FROM bayarhook.alerts f
                        WHERE f.state = 'pending' AND f.kind = a.kind AND f.subject = a.subject
                          AND f.lease_until >= now())
       AND NOT EXISTS (SELECT 1 FROM bayarhook.alerts s
                        WHERE s.state = 'sent' AND s.kind = a.kind AND s.subject = a.subject
                          AND s.delivered_at > now() - p_min_interval * interval '1 second')
     ORDER BY a.id LIMIT 1;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT max(a.id) INTO carrier FROM bayarhook.alerts a
     WHERE a.state = 'pending' AND a.kind = c.kind AND a.subject = c.subject;
    WITH m AS (
        UPDATE bayarhook.alerts a SET state = 'merged', merged_into = carrier,
               lease_owner = NULL, lease_until = NULL
         WHERE a.state = 'pending' AND a.kind = c.kind AND a.subject = c.subject
           AND a.id < carrier
        RETURNING a.suppressed
    )
    SELECT coalesce(sum(m.suppressed + 1), 0) INTO s FROM m;
    UPDATE bayarhook.alerts a SET suppressed = a.suppressed + s, attempts = a.attempts + 1,
           lease_owner = p_owner, lease_until = now() + p_lease * interval '1 second'
     WHERE a.id = carrier
    RETURNING a.id, a.kind, a.attempts,
              jsonb_build_object('id', a.id, 'kind', a.kind, 'subject', a.subject,
                                 'detail', a.detail, 'created_at', a.created_at,
                                 'suppressed', a.suppressed)::text
         INTO alert_id, kind, attempts, body;
    RETURN NEXT;
END
$fn$;

-- The delivery's outcome: sent (it and the alerts merged into it are
-- delivered now) or pending again in p_retry_in seconds. Nothing is written
-- when p_owner no longer holds the claim.
CREATE OR REPLACE FUNCTION bayarhook.alert_done(p_id bigint, p_owner text, p_ok boolean,
                                                p_error text, p_retry_in double precision)
RETURNS boolean
LANGUAGE plpgsql AS $fn$
BEGIN
    UPDATE bayarhook.alerts a SET
           state = CASE WHEN p_ok THEN 'sent' ELSE 'pending' END,
           delivered_at = CASE WHEN p_ok THEN now() END,
           next_attempt_at = CASE WHEN p_ok THEN a.next_attempt_at
                                  ELSE now() + p_retry_in * interval '1 second' END,
           last_error = p_error, lease_owner = NULL, lease_until = NULL
     WHERE a.id = p_id AND a.lease_owner = p_owner AND a.state = 'pending';
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF p_ok THEN
        UPDATE bayarhook.alerts a SET delivered_at = now()
         WHERE a.state = 'merged' AND a.delivered_at IS NULL
           AND (a.kind, a.subject) = (SELECT b.kind, b.subject FROM bayarhook.alerts b
                                       WHERE b.id = p_id)
           AND a.id < p_id;
    END IF;
    RETURN true;
END
$fn$;
