-- 001: the audit trail, the payment state machine, the job queue, and the
-- one function that records a batch of callbacks in one transaction.
CREATE SCHEMA IF NOT EXISTS bayarhook;

-- One row per request to the callback path, append-only.
CREATE TABLE bayarhook.callbacks (
    id           bigserial PRIMARY KEY,
    received_at  timestamptz NOT NULL DEFAULT now(),
    remote_addr  text,            -- the real client (after trusted proxies)
    peer_addr    text,            -- the TCP peer
    invoice_id   text,
    event        text,
    status       text,
    verdict      text NOT NULL CHECK (verdict IN ('accepted', 'duplicate', 'out_of_order',
                     'bad_signature', 'stale_timestamp', 'malformed', 'forbidden', 'too_large')),
    http_status  integer NOT NULL,
    error        text,            -- why a request was refused
    method       text,
    headers      jsonb NOT NULL DEFAULT '{}',
    body         text
);
CREATE INDEX callbacks_invoice_idx ON bayarhook.callbacks (invoice_id);
CREATE INDEX callbacks_received_idx ON bayarhook.callbacks (received_at);

-- One row per invoice. status only moves forward (see ingest()).
CREATE TABLE bayarhook.payments (
    invoice_id     text PRIMARY KEY,
    status         text NOT NULL CHECK (status IN ('pending', 'paid', 'expired', 'cancelled')),
    amount         numeric,
    final_amount   numeric,
    paid_at        text,          -- as the gateway wrote it (WIB)
    paid_reff_num  text,
    source         text NOT NULL CHECK (source IN ('callback', 'reconciler')),
    first_seen_at  timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    flagged        boolean NOT NULL DEFAULT false,
    flag_reason    text,
    event          jsonb NOT NULL -- the last accepted event, what actions read
);
CREATE INDEX payments_status_idx ON bayarhook.payments (status, updated_at);

-- One row per invoice and action (replays add more, on purpose).
CREATE TABLE bayarhook.jobs (
    id               bigserial PRIMARY KEY,
    invoice_id       text NOT NULL REFERENCES bayarhook.payments (invoice_id),
    action           text NOT NULL,
    trigger_status   text NOT NULL,
    source           text NOT NULL DEFAULT 'callback',
    state            text NOT NULL DEFAULT 'pending'
                         CHECK (state IN ('pending', 'running', 'succeeded', 'dead')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_until      timestamptz,
    lease_owner      text,
    last_error       text,
    replay           boolean NOT NULL DEFAULT false,
    event            jsonb NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz
);
CREATE UNIQUE INDEX jobs_once_idx ON bayarhook.jobs (invoice_id, action) WHERE NOT replay;
CREATE INDEX jobs_due_idx ON bayarhook.jobs (next_attempt_at) WHERE state IN ('pending', 'running');

CREATE TABLE bayarhook.job_attempts (
    id           bigserial PRIMARY KEY,
    job_id       bigint NOT NULL REFERENCES bayarhook.jobs (id),
    attempt      integer NOT NULL,
    runner       text,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    outcome      text CHECK (outcome IN ('succeeded', 'failed', 'timeout', 'abandoned')),
    exit_code    integer,
    http_status  integer,
    row_count    bigint,
    output       text
);
CREATE INDEX job_attempts_job_idx ON bayarhook.job_attempts (job_id);

-- Records a batch of requests in the caller's transaction and returns each
-- item's verdict. Items are handled in invoice order so that concurrent
-- batches lock payment rows in the same order and cannot deadlock.
-- An item with "verdict" set was refused before storage and is only audited;
-- one without is a verified event whose verdict is decided here, against
-- the committed state, so that every process sharing the database agrees.
-- actions maps a status to the names of the actions it triggers.
-- Item keys: idx, verdict, http_status, error, remote_addr, peer_addr,
-- invoice_id, event_name, status, method, headers, body (the audit row);
-- amount, final_amount, paid_at, paid_reff_num, source, event, hold (the
-- payment and its jobs); audit (false: no audit row, for the reconciler).
CREATE FUNCTION bayarhook.ingest(batch jsonb, actions jsonb)
RETURNS TABLE (idx integer, verdict text, callback_id bigint)
LANGUAGE plpgsql AS $fn$
DECLARE
    it      jsonb;
    v       text;
    st      text;
    inv     text;
    old     text;
    cb_id   bigint;
    njobs   integer;
BEGIN
    FOR it IN
        SELECT e FROM jsonb_array_elements(batch) AS e
        ORDER BY e ->> 'invoice_id' NULLS FIRST, (e ->> 'idx')::integer
    LOOP
        v := it ->> 'verdict';
        inv := it ->> 'invoice_id';
        st := it ->> 'status';
        IF v IS NULL THEN
            INSERT INTO bayarhook.payments AS p
                (invoice_id, status, amount, final_amount, paid_at, paid_reff_num, source, event)
            VALUES (inv, st, (it ->> 'amount')::numeric, (it ->> 'final_amount')::numeric,
                    it ->> 'paid_at', it ->> 'paid_reff_num', it ->> 'source', it -> 'event')
            ON CONFLICT (invoice_id) DO NOTHING;
            IF FOUND THEN
                v := 'accepted';
            ELSE
                SELECT p.status INTO old FROM bayarhook.payments p
                 WHERE p.invoice_id = inv FOR UPDATE;
                IF old = st THEN
                    v := 'duplicate';
                ELSIF st = 'pending' OR old = 'paid' OR st <> 'paid' AND old <> 'pending' THEN
                    v := 'out_of_order';
                ELSE
                    UPDATE bayarhook.payments p SET
                        status = st,
                        amount = coalesce((it ->> 'amount')::numeric, p.amount),
                        final_amount = (it ->> 'final_amount')::numeric,
                        paid_at = coalesce(it ->> 'paid_at', p.paid_at),
                        paid_reff_num = coalesce(it ->> 'paid_reff_num', p.paid_reff_num),
                        updated_at = now(),
                        event = it -> 'event',
                        flagged = p.flagged OR old <> 'pending',
                        flag_reason = CASE WHEN old <> 'pending'
                                           THEN 'paid after ' || old ELSE p.flag_reason END
                     WHERE p.invoice_id = inv;
                    v := 'accepted';
                END IF;
            END IF;
            IF v = 'accepted' AND jsonb_typeof(actions -> st) = 'array' THEN
                -- "hold": confirm_with_api; the jobs wait (never due) until
                -- the gateway confirms the payment.
                INSERT INTO bayarhook.jobs
                    (invoice_id, action, trigger_status, source, event, next_attempt_at)
                SELECT inv, a, st, it ->> 'source', it -> 'event',
                       CASE WHEN coalesce((it ->> 'hold')::boolean, false)
                            THEN 'infinity'::timestamptz ELSE now() END
                  FROM jsonb_array_elements_text(actions -> st) AS a
                ON CONFLICT (invoice_id, action) WHERE NOT replay DO NOTHING;
                GET DIAGNOSTICS njobs = ROW_COUNT;
                IF njobs > 0 THEN
                    PERFORM pg_notify('bayarhook_jobs', inv);
                END IF;
            END IF;
        END IF;
        cb_id := NULL;
        IF coalesce((it ->> 'audit')::boolean, true) THEN
            INSERT INTO bayarhook.callbacks
                (remote_addr, peer_addr, invoice_id, event, status, verdict, http_status,
                 error, method, headers, body)
            VALUES (it ->> 'remote_addr', it ->> 'peer_addr', inv, it ->> 'event_name', st, v,
                    coalesce((it ->> 'http_status')::integer, 200), it ->> 'error',
                    it ->> 'method', coalesce(it -> 'headers', '{}'), it ->> 'body')
            RETURNING id INTO cb_id;
        END IF;
        idx := (it ->> 'idx')::integer;
        verdict := v;
        callback_id := cb_id;
        RETURN NEXT;
    END LOOP;
END
$fn$;
