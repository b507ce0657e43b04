-- 002: what the reconciler and confirm_with_api leave behind: one row per
-- reconciliation pass, one row per confirmation of a callback with the
-- gateway, and the function that releases or refuses held jobs.

-- One row per pass (bayarhook serve every [reconciler] interval, or
-- bayarhook reconcile --once), so an operator can see that it runs.
CREATE TABLE bayarhook.reconcile_passes (
    id           bigserial PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    checked      integer NOT NULL DEFAULT 0,  -- invoices asked about with check-payment
    found        integer NOT NULL DEFAULT 0,  -- payments it recorded (state changes)
    errors       integer NOT NULL DEFAULT 0,  -- invoices or pages it could not get
    requests     integer NOT NULL DEFAULT 0,  -- API requests sent, retries included
    pages        integer NOT NULL DEFAULT 0,  -- list-payments pages swept
    result       text NOT NULL DEFAULT 'running'
                     CHECK (result IN ('running', 'completed', 'failed', 'aborted')),
    trigger      text,                        -- 'serve' or 'cli'
    runner       text,                        -- host:pid
    note         text                         -- why it failed, or what it saw
);
CREATE INDEX reconcile_passes_started_idx ON bayarhook.reconcile_passes (started_at);

-- One row per check of held jobs against check-payment (confirm_with_api).
-- Append-only, like bayarhook.callbacks: the audit of why jobs ran or not.
CREATE TABLE bayarhook.confirmations (
    id                    bigserial PRIMARY KEY,
    checked_at            timestamptz NOT NULL DEFAULT now(),
    invoice_id            text NOT NULL,
    outcome               text NOT NULL CHECK (outcome IN ('agreed', 'disagreed', 'unconfirmed')),
    callback_status       text,      -- what the held jobs were queued for
    callback_final_amount text,
    gateway_status        text,      -- what check-payment said (NULL: unknown invoice)
    gateway_final_amount  text,
    jobs                  integer NOT NULL DEFAULT 0,  -- jobs released or killed
    reason                text
);
CREATE INDEX confirmations_invoice_idx ON bayarhook.confirmations (invoice_id, checked_at);

-- numeric or NULL, never an error: amounts come from strangers.
CREATE FUNCTION bayarhook.try_numeric(t text) RETURNS numeric
LANGUAGE plpgsql IMMUTABLE AS $fn$
BEGIN
    RETURN t::numeric;
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$fn$;

-- Decides the held jobs (next_attempt_at = 'infinity') of one invoice
-- against the gateway's check-payment answer. gw_status NULL means the
-- gateway does not know the invoice. For each (status, final_amount) the
-- held jobs were queued with:
--   agreed       same status (or the jobs were for 'pending' and the gateway
--                has moved on) and the same amount as a number: the jobs
--                become due now and the queue is notified;
--   unconfirmed  the gateway still says 'pending' for a non-pending callback
--                (its API may lag its callbacks): nothing changes, and the
--                confirmer asks again later, at most max_unconfirmed times;
--   disagreed    anything else: the jobs are dead with the reason, the
--                payment is flagged.
-- Every decision is a row in bayarhook.confirmations.
CREATE FUNCTION bayarhook.confirm_held(inv text, gw_status text, gw_final_amount text,
                                       max_unconfirmed integer)
RETURNS TABLE (outcome text, jobs integer, reason text)
LANGUAGE plpgsql AS $fn$
DECLARE
    g       record;
    o       text;
    why     text;
    n       integer;
    tries   integer;
BEGIN
    -- The payment row lock orders us with ingest() and other confirmers.
    PERFORM 1 FROM bayarhook.payments p WHERE p.invoice_id = inv FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    FOR g IN
        SELECT j.trigger_status AS st, j.event ->> 'final_amount' AS fa
          FROM bayarhook.jobs j
         WHERE j.invoice_id = inv AND j.state = 'pending' AND j.next_attempt_at = 'infinity'
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
            UPDATE bayarhook.jobs j SET next_attempt_at = now()
             WHERE j.invoice_id = inv AND j.state = 'pending' AND j.next_attempt_at = 'infinity'
               AND j.trigger_status = g.st AND (j.event ->> 'final_amount') IS NOT DISTINCT FROM g.fa;
            GET DIAGNOSTICS n = ROW_COUNT;
            IF n > 0 THEN
                PERFORM pg_notify('bayarhook_jobs', inv);
            END IF;
        ELSIF o = 'disagreed' THEN
            UPDATE bayarhook.jobs j SET state = 'dead', finished_at = now(),
                   last_error = 'not confirmed by the gateway: ' || why
             WHERE j.invoice_id = inv AND j.state = 'pending' AND j.next_attempt_at = 'infinity'
               AND j.trigger_status = g.st AND (j.event ->> 'final_amount') IS NOT DISTINCT FROM g.fa;
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
