-- ingest(): records a batch of callbacks (or reconciler findings) in the
-- caller's transaction: the audit rows, the payments' state machine, and the
-- jobs each accepted item starts, pending or held (confirm_with_api). The
-- design, and why it works by sets, is in sql/003_ingest_sets.sql, which
-- first created it; bayarhook migrate applies this file every time, so this
-- is the definition in force.
--
-- bodies[idx + 1] is the body of a verified callback, sent apart from the
-- batch (binary text[], so neither side escapes it); its item then has
-- neither "body" nor "event": the body is both. Items without one (refusals,
-- the reconciler's) carry "body" and "event" in the batch as before. A
-- refusal sends the first bytes of its body there too (audit_limit.h), with
-- "body_length" and "body_sha256" (hex) of the whole body as received, and
-- "repeat", "suppressed", "headers_dropped" (sql/008); an item without them
-- gets the length and digest of the body it stores, 1, 0 and 0. A refusal
-- whose body was not read whole (too large) has its length and no digest.
--
-- Item keys since 005: secret_index (which webhook secret verified it) and
-- signature_valid, for the audit row. An item with "verdict" 'unsigned'
-- ([security] unsigned = confirm) is, like a refusal, an audit row only: the
-- body's values never touch a payment.
--
-- Late payments (SPEC §7): a `paid` after `expired` or `cancelled` is
-- accepted, the payment flagged 'paid after <old status>' (payments.flag),
-- and the `paid` actions get their jobs: one job per invoice, action and
-- triggering status (jobs_once_idx, 005). flag in the result is the flag this
-- item raised (NULL when it raised none), so the caller can say so.
--
-- The audit chain (SPEC §11, sql/012_audit_chain.sql, sql/functions/audit.sql):
-- chain is NULL without [audit] key_file (lane, lane_seq and mac stay NULL),
-- else be64 lane, be64 the lane's next lane_seq, its head mac (32 bytes),
-- then 128 bytes of HMAC pads per row position from that lane_seq on (one
-- per item of the batch; the items without an audit row leave theirs
-- unused). The audit rows take lane_seq in id order and each its mac, the
-- HMAC of audit_digest(row) || the previous mac, at insert time: the
-- daemon's role has no UPDATE. lane_seq and mac in the result are the
-- item's audit row's, so the caller learns the lane's new head.
CREATE OR REPLACE FUNCTION bayarhook.ingest(batch jsonb, bodies text[], actions jsonb,
                                            chain bytea)
RETURNS TABLE (idx integer, verdict text, callback_id bigint, flag text, lane_seq bigint,
               mac bytea)
LANGUAGE plpgsql AS $fn$
DECLARE
    c_lane  bigint := ('x' || encode(substring(chain FROM 1 FOR 8), 'hex'))::bit(64)::bigint;
    c_seq0  bigint := ('x' || encode(substring(chain FROM 9 FOR 8), 'hex'))::bit(64)::bigint;
    c_head  bytea := substring(chain FROM 17 FOR 32);
    n_fast  bigint;           -- audit rows of step 1: step 2's lane_seq start after them
    f_seq   bigint[];
    f_mac   bytea[];
    r       record;
    f_idx   integer[];        -- items decided by step 1, their verdicts and audit ids
    f_v     text[];
    f_cid   bigint[];
    slow    integer[];        -- items left to step 2
    vs      text[] := '{}';   -- verdict of item idx, at idx + 1
    fl      text[] := '{}';   -- the flag item idx raised, at idx + 1
    old     text;
    v       text;
    njobs   integer;
BEGIN
    WITH items AS MATERIALIZED (
        SELECT x.*,
               x.verdict IS NULL
               AND row_number() OVER (PARTITION BY x.verdict IS NULL, x.invoice_id
                                      ORDER BY x.idx) = 1 AS lead
          FROM jsonb_to_recordset(batch) AS x(idx integer, verdict text, invoice_id text,
                   status text, amount numeric, final_amount numeric, paid_at text,
                   paid_reff_num text, source text, event jsonb, remote_addr text,
                   peer_addr text, event_name text, http_status integer, error text,
                   method text, headers jsonb, body text, audit boolean,
                   secret_index integer, signature_valid boolean,
                   body_length bigint, body_sha256 text, repeat integer, suppressed bigint,
                   headers_dropped integer)),
    ins AS (
        INSERT INTO bayarhook.payments AS p
            (invoice_id, status, amount, final_amount, paid_at, paid_reff_num, source, event)
        SELECT i.invoice_id, i.status, i.amount, i.final_amount, i.paid_at,
               i.paid_reff_num, i.source, coalesce(i.event, bodies[i.idx + 1]::jsonb)
          FROM items i
         WHERE i.lead
         ORDER BY i.invoice_id
        ON CONFLICT (invoice_id) DO NOTHING
        RETURNING p.invoice_id),
    decided AS MATERIALIZED (
        SELECT i.*, d.known,
               CASE WHEN d.known IS NOT NULL AND coalesce(i.audit, true)
                    THEN nextval('bayarhook.callbacks_id_seq') END AS cid
          FROM items i
          CROSS JOIN LATERAL (
                SELECT coalesce(i.verdict,
                                CASE WHEN i.lead AND i.invoice_id IN (SELECT new.invoice_id FROM ins new)
                                     THEN 'accepted' END) AS known) AS d),
    audited AS (
        INSERT INTO bayarhook.callbacks
            (id, received_at, remote_addr, peer_addr, invoice_id, event, status, verdict,
             http_status, error, method, headers, body, secret_index, signature_valid,
             body_length, body_sha256, repeat, suppressed, headers_dropped, lane, lane_seq, mac)
        SELECT q.cid, now(), q.remote_addr, q.peer_addr, q.invoice_id, q.event_name, q.status,
               q.known, q.http_status, q.error, q.method, q.headers, q.body, q.secret_index,
               q.signature_valid, q.body_length, q.body_sha256, q.repeat, q.suppressed,
               q.headers_dropped, c_lane, q.seq,
               nullif(bayarhook.audit_chain(
                   CASE WHEN chain IS NOT NULL THEN bayarhook.audit_digest(
                       q.cid, c_lane, q.seq, now(), q.remote_addr, q.peer_addr, q.invoice_id,
                       q.event_name, q.status, q.known, q.http_status, q.error, q.method,
                       q.headers, q.body, q.secret_index, q.signature_valid, q.body_length,
                       q.body_sha256, q.repeat, q.suppressed, q.headers_dropped) END,
                   bayarhook.audit_pads(chain, q.seq - c_seq0 + 1), c_head)
                   OVER (ORDER BY q.cid), '')
          FROM (SELECT c.cid, c.remote_addr, c.peer_addr, c.invoice_id, c.event_name, c.status,
                       c.known, coalesce(c.http_status, 200) AS http_status, c.error, c.method,
                       coalesce(c.headers, '{}') AS headers,
                       coalesce(bodies[c.idx + 1], c.body) AS body,
                       c.secret_index, c.signature_valid,
                       coalesce(c.body_length,
                                octet_length(coalesce(bodies[c.idx + 1], c.body))) AS body_length,
                       CASE WHEN c.body_length IS NULL  -- a whole body: its digest here
                            THEN sha256(convert_to(coalesce(bodies[c.idx + 1], c.body), 'UTF8'))
                            ELSE decode(c.body_sha256, 'hex') END AS body_sha256,  -- NULL: refused unread
                       coalesce(c.repeat, 1) AS repeat, coalesce(c.suppressed, 0) AS suppressed,
                       coalesce(c.headers_dropped, 0) AS headers_dropped,
                       c_seq0 - 1 + row_number() OVER (ORDER BY c.cid) AS seq
                  FROM decided c
                 WHERE c.cid IS NOT NULL) AS q
         ORDER BY q.cid
        RETURNING bayarhook.callbacks.id, bayarhook.callbacks.lane_seq, bayarhook.callbacks.mac)
    SELECT array_agg(c.idx ORDER BY c.idx) FILTER (WHERE c.known IS NOT NULL),
           array_agg(c.known ORDER BY c.idx) FILTER (WHERE c.known IS NOT NULL),
           array_agg(c.cid ORDER BY c.idx) FILTER (WHERE c.known IS NOT NULL),
           array_agg(a.lane_seq ORDER BY c.idx) FILTER (WHERE c.known IS NOT NULL),
           array_agg(a.mac ORDER BY c.idx) FILTER (WHERE c.known IS NOT NULL),
           array_agg(c.idx) FILTER (WHERE c.known IS NULL),
           count(a.id),
           coalesce((array_agg(a.mac ORDER BY a.lane_seq DESC NULLS LAST))[1], c_head)
      INTO f_idx, f_v, f_cid, f_seq, f_mac, slow, n_fast, c_head
      FROM decided c
      LEFT JOIN audited a ON a.id = c.cid;

    FOR n IN 1 .. coalesce(cardinality(f_idx), 0) LOOP
        vs[f_idx[n] + 1] := f_v[n];
        idx := f_idx[n];
        verdict := f_v[n];
        callback_id := f_cid[n];
        flag := NULL;  -- a payment's first event raises no flag
        lane_seq := f_seq[n];
        mac := f_mac[n];
        RETURN NEXT;
    END LOOP;

    IF slow IS NOT NULL THEN
        FOR r IN
            SELECT (e ->> 'idx')::integer AS i, e ->> 'invoice_id' AS inv,
                   e ->> 'status' AS st, e AS it
              FROM jsonb_array_elements(batch) AS e
             WHERE (e ->> 'idx')::integer = ANY (slow)
             ORDER BY 2, 1
        LOOP
            SELECT p.status INTO old FROM bayarhook.payments p
             WHERE p.invoice_id = r.inv FOR UPDATE;
            IF old = r.st THEN
                v := 'duplicate';
            ELSIF r.st = 'pending' OR old = 'paid' OR r.st <> 'paid' AND old <> 'pending' THEN
                v := 'out_of_order';
            ELSE
                UPDATE bayarhook.payments p SET
                    status = r.st,
                    amount = coalesce((r.it ->> 'amount')::numeric, p.amount),
                    final_amount = (r.it ->> 'final_amount')::numeric,
                    paid_at = coalesce(r.it ->> 'paid_at', p.paid_at),
                    paid_reff_num = coalesce(r.it ->> 'paid_reff_num', p.paid_reff_num),
                    updated_at = now(),
                    event = coalesce(r.it -> 'event', bodies[r.i + 1]::jsonb),
                    flagged = p.flagged OR old <> 'pending',
                    flag_reason = CASE WHEN old <> 'pending'
                                       THEN 'paid after ' || old ELSE p.flag_reason END
                 WHERE p.invoice_id = r.inv;
                v := 'accepted';
                -- Only a late paid gets here from a status other than pending.
                IF old <> 'pending' THEN
                    fl[r.i + 1] := 'paid after ' || old;
                END IF;
            END IF;
            vs[r.i + 1] := v;
        END LOOP;

        RETURN QUERY
        WITH src AS MATERIALIZED (
            SELECT x.*, vs[x.idx + 1] AS final_verdict, fl[x.idx + 1] AS raised,
                   CASE WHEN coalesce(x.audit, true)
                        THEN nextval('bayarhook.callbacks_id_seq') END AS cid
              FROM jsonb_to_recordset(batch) AS x(idx integer, remote_addr text,
                       peer_addr text, invoice_id text, event_name text, status text,
                       http_status integer, error text, method text, headers jsonb,
                       body text, audit boolean, secret_index integer,
                       signature_valid boolean, body_length bigint, body_sha256 text,
                       repeat integer, suppressed bigint, headers_dropped integer)
             WHERE x.idx = ANY (slow)),
        audited AS (
            INSERT INTO bayarhook.callbacks
                (id, received_at, remote_addr, peer_addr, invoice_id, event, status, verdict,
                 http_status, error, method, headers, body, secret_index, signature_valid,
                 body_length, body_sha256, repeat, suppressed, headers_dropped, lane, lane_seq,
                 mac)
            SELECT q.cid, now(), q.remote_addr, q.peer_addr, q.invoice_id, q.event_name,
                   q.status, q.final_verdict, q.http_status, q.error, q.method, q.headers,
                   q.body, q.secret_index, q.signature_valid, q.body_length, q.body_sha256,
                   q.repeat, q.suppressed, q.headers_dropped, c_lane, q.seq,
                   nullif(bayarhook.audit_chain(
                       CASE WHEN chain IS NOT NULL THEN bayarhook.audit_digest(
                           q.cid, c_lane, q.seq, now(), q.remote_addr, q.peer_addr,
                           q.invoice_id, q.event_name, q.status, q.final_verdict,
                           q.http_status, q.error, q.method, q.headers, q.body, q.secret_index,
                           q.signature_valid, q.body_length, q.body_sha256, q.repeat,
                           q.suppressed, q.headers_dropped) END,
                       bayarhook.audit_pads(chain, q.seq - c_seq0 + 1), c_head)
                       OVER (ORDER BY q.cid), '')
              FROM (SELECT s.cid, s.remote_addr, s.peer_addr, s.invoice_id, s.event_name,
                           s.status, s.final_verdict, coalesce(s.http_status, 200) AS http_status,
                           s.error, s.method, coalesce(s.headers, '{}') AS headers,
                           coalesce(bodies[s.idx + 1], s.body) AS body,
                           s.secret_index, s.signature_valid,
                           coalesce(s.body_length,
                                    octet_length(coalesce(bodies[s.idx + 1], s.body))) AS body_length,
                           CASE WHEN s.body_length IS NULL  -- a whole body: its digest here
                                THEN sha256(convert_to(coalesce(bodies[s.idx + 1], s.body), 'UTF8'))
                                ELSE decode(s.body_sha256, 'hex') END AS body_sha256,
                           coalesce(s.repeat, 1) AS repeat, coalesce(s.suppressed, 0) AS suppressed,
                           coalesce(s.headers_dropped, 0) AS headers_dropped,
                           c_seq0 + n_fast - 1 + row_number() OVER (ORDER BY s.cid) AS seq
                      FROM src s
                     WHERE s.cid IS NOT NULL) AS q
             ORDER BY q.cid
            RETURNING bayarhook.callbacks.id, bayarhook.callbacks.lane_seq,
                      bayarhook.callbacks.mac)
        SELECT s.idx, s.final_verdict, s.cid, s.raised, a.lane_seq, a.mac
          FROM src s
          LEFT JOIN audited a ON a.id = s.cid
         ORDER BY s.idx;
    END IF;

    -- A job's event is the item's. A paid job's is the payment's own
    -- (jobs.event NULL, 016): paid is final, so payments.event never changes
    -- after it, and a job does not copy 600 bytes the payment holds.
    -- "hold": confirm_with_api; the jobs are held until the gateway confirms
    -- the payment (bayarhook.confirm_held() in jobs.sql). A job is keyed by
    -- the status that triggered it (jobs.status, generated from
    -- trigger_status), so a later status of the same invoice starts the
    -- actions of that status even when they already ran for an earlier one.
    IF jsonb_path_exists(actions, '$.*[0]') THEN
        -- after = NAME (SPEC §9, actions -> 'after' maps an action to NAME):
        -- held 'after' while NAME has no succeeded job for the invoice but
        -- will have one (this item starts it, or one is not finished yet).
        INSERT INTO bayarhook.jobs
            (invoice_id, action, trigger_status, source, event, state, after_action, held_reason)
        SELECT e ->> 'invoice_id', a.name, e ->> 'status', e ->> 'source',
               CASE WHEN e ->> 'status' <> 'paid'
                    THEN coalesce(e -> 'event', bodies[(e ->> 'idx')::integer + 1]::jsonb) END,
               CASE WHEN coalesce((e ->> 'hold')::boolean, false) OR w.waits
                    THEN 'held' ELSE 'pending' END,
               actions -> 'after' ->> a.name,
               CASE WHEN w.waits AND NOT coalesce((e ->> 'hold')::boolean, false)
                    THEN 'after' END
          FROM jsonb_array_elements(batch) AS e
          CROSS JOIN LATERAL jsonb_array_elements_text(
                   CASE WHEN jsonb_typeof(actions -> (e ->> 'status')) = 'array'
                        THEN actions -> (e ->> 'status') ELSE '[]' END) AS a(name)
          CROSS JOIN LATERAL (
              SELECT actions -> 'after' ->> a.name IS NOT NULL
                 AND NOT EXISTS (SELECT 1 FROM bayarhook.jobs p
                                  WHERE p.invoice_id = e ->> 'invoice_id'
                                    AND p.action = actions -> 'after' ->> a.name
                                    AND p.state = 'succeeded')
                 AND ((actions -> (e ->> 'status')) ? (actions -> 'after' ->> a.name)
                      AND NOT coalesce((e -> 'skip') ? (actions -> 'after' ->> a.name), false)
                      OR EXISTS (SELECT 1 FROM bayarhook.jobs p
                                  WHERE p.invoice_id = e ->> 'invoice_id'
                                    AND p.action = actions -> 'after' ->> a.name
                                    AND p.state NOT IN ('succeeded', 'cancelled')))
                 AS waits) AS w
         WHERE vs[(e ->> 'idx')::integer + 1] = 'accepted'
           -- SPEC §9 when =: the daemon lists the actions this event does not match.
           AND NOT coalesce((e -> 'skip') ? a.name, false)
         ORDER BY 1, 2
        ON CONFLICT (invoice_id, action, status) WHERE NOT replay DO NOTHING;
        GET DIAGNOSTICS njobs = ROW_COUNT;
        IF njobs > 0 THEN
            PERFORM pg_notify('bayarhook_jobs', '');
        END IF;
    END IF;
END
$fn$;

-- The three-argument form (before 012), for a daemon not yet restarted on
-- this schema: no audit chain.
CREATE OR REPLACE FUNCTION bayarhook.ingest(batch jsonb, bodies text[], actions jsonb)
RETURNS TABLE (idx integer, verdict text, callback_id bigint, flag text)
LANGUAGE sql AS $fn$
    SELECT i.idx, i.verdict, i.callback_id, i.flag
      FROM bayarhook.ingest(batch, bodies, actions, NULL::bytea) i
$fn$;

-- The two-argument form (001's), for a daemon not yet restarted on this
-- schema and for hand-made batches: everything in the batch.
CREATE OR REPLACE FUNCTION bayarhook.ingest(batch jsonb, actions jsonb)
RETURNS TABLE (idx integer, verdict text, callback_id bigint)
LANGUAGE sql AS $fn$
    SELECT i.idx, i.verdict, i.callback_id
      FROM bayarhook.ingest(batch, NULL::text[], actions, NULL::bytea) i
$fn$;
