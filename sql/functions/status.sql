-- The status page (SPEC §8; src/admin_summary.c): everything it shows, as
-- one JSON object, in one statement, so that the page costs the database
-- one round trip on its own connection. "Today" starts at midnight in the
-- session's TimeZone, which the object names; every time carries its offset.
-- p_list bounds the dead, held and flagged rows listed (their counts are
-- whole). The object's fields are described in README, "Status page".

CREATE OR REPLACE FUNCTION bayarhook.status_summary(p_list integer)
RETURNS json
LANGUAGE sql STABLE AS $fn$
    WITH day AS (
        SELECT date_trunc('day', now()) AS start
    ), paid AS (
        -- Payments paid today and where their paid jobs are.
        SELECT p.invoice_id,
               count(j.id) FILTER (WHERE j.state = 'dead') AS dead,
               count(j.id) FILTER (WHERE j.state IN ('pending', 'running', 'held')) AS open
          FROM bayarhook.payments p
          LEFT JOIN bayarhook.jobs j ON j.invoice_id = p.invoice_id AND j.trigger_status = 'paid'
         WHERE p.status = 'paid' AND p.updated_at >= (SELECT start FROM day)
         GROUP BY p.invoice_id
    )
    SELECT json_build_object(
        'now', to_char(now(), 'YYYY-MM-DD HH24:MI:SSOF'),
        'time_zone', current_setting('TimeZone'),
        'today_since', to_char((SELECT start FROM day), 'YYYY-MM-DD HH24:MI:SSOF'),
        'callbacks_today', (
            SELECT coalesce(json_object_agg(v.verdict, v.n ORDER BY v.n DESC, v.verdict), '{}')
              FROM (SELECT c.verdict, sum(c.repeat)::bigint AS n
                      FROM bayarhook.callbacks c
                     WHERE c.received_at >= (SELECT start FROM day)
                     GROUP BY c.verdict) v),
        'paid_today', json_build_object(
            'paid', (SELECT count(*) FROM paid),
            'fulfilled', (SELECT count(*) FROM paid WHERE dead = 0 AND open = 0),
            'in_progress', (SELECT count(*) FROM paid WHERE dead = 0 AND open > 0),
            'failed', (SELECT count(*) FROM paid WHERE dead > 0)),
        'jobs', (
            SELECT coalesce(json_object_agg(s.state, s.n ORDER BY s.state), '{}')
              FROM (SELECT j.state, count(*) AS n FROM bayarhook.jobs j GROUP BY j.state) s),
        'dead_jobs', (
            SELECT coalesce(json_agg(to_jsonb(t) - 'sort' ORDER BY t.sort DESC, t.id DESC), '[]')
              FROM (SELECT j.id, j.invoice_id, j.action, j.attempts, j.last_error,
                           to_char(coalesce(j.finished_at, j.created_at),
                                   'YYYY-MM-DD HH24:MI:SSOF') AS failed_at,
                           coalesce(j.finished_at, j.created_at) AS sort
                      FROM bayarhook.jobs j WHERE j.state = 'dead'
                     ORDER BY sort DESC, j.id DESC LIMIT p_list) t),
        'held_jobs', (
            SELECT coalesce(json_agg(t ORDER BY t.id), '[]')
              FROM (SELECT j.id, j.invoice_id, j.action, j.held_reason, j.after_action,
                           j.last_error,
                           to_char(j.created_at, 'YYYY-MM-DD HH24:MI:SSOF') AS created_at
                      FROM bayarhook.jobs j WHERE j.state = 'held'
                     ORDER BY j.id LIMIT p_list) t),
        'orders_needing_attention', (
            SELECT count(*) FROM (
                SELECT j.invoice_id FROM bayarhook.jobs j WHERE j.state = 'dead'
                UNION
                SELECT p.invoice_id FROM bayarhook.payments p
                 WHERE p.flagged AND p.updated_at >= (SELECT start FROM day)) x),
        'orders_not_delivered', (
            SELECT count(DISTINCT j.invoice_id) FROM bayarhook.jobs j WHERE j.state = 'dead'),
        'flagged_today', (
            SELECT count(*) FROM bayarhook.payments p
             WHERE p.flagged AND p.updated_at >= (SELECT start FROM day)),
        'flagged_total', (SELECT count(*) FROM bayarhook.payments p WHERE p.flagged),
        'flagged_payments', (
            SELECT coalesce(json_agg(to_jsonb(t) - 'sort' ORDER BY t.sort DESC, t.invoice_id), '[]')
              FROM (SELECT p.invoice_id, p.status, coalesce(p.final_amount, p.amount)::text AS amount,
                           p.flag_reason,
                           to_char(p.updated_at, 'YYYY-MM-DD HH24:MI:SSOF') AS updated_at,
                           p.updated_at >= (SELECT start FROM day) AS today,
                           p.updated_at AS sort
                      FROM bayarhook.payments p WHERE p.flagged
                     ORDER BY p.updated_at DESC, p.invoice_id LIMIT p_list) t),
        'last_reconcile', (
            SELECT row_to_json(t)
              FROM (SELECT r.id, to_char(r.started_at, 'YYYY-MM-DD HH24:MI:SSOF') AS started_at,
                           to_char(r.finished_at, 'YYYY-MM-DD HH24:MI:SSOF') AS finished_at,
                           r.result, r.checked, r.found, r.errors, r.requests, r.note
                      FROM bayarhook.reconcile_passes r
                     ORDER BY r.id DESC LIMIT 1) t))
$fn$;
