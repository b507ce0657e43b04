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
    ), unfinished AS (
        -- Payments paid today with a paid job not done: dead, or still on its
        -- way. Driven from the jobs, which are few, not from the payments.
        SELECT j.invoice_id, bool_or(j.state = 'dead') AS dead
          FROM bayarhook.jobs j
          JOIN bayarhook.payments p ON p.invoice_id = j.invoice_id
         WHERE j.trigger_status = 'paid' AND j.state IN ('dead', 'pending', 'running', 'held')
           AND p.status = 'paid' AND p.updated_at >= (SELECT start FROM day)
         GROUP BY j.invoice_id
    ), paid AS (
        SELECT (SELECT count(*) FROM bayarhook.payments p
                 WHERE p.status = 'paid' AND p.updated_at >= (SELECT start FROM day)) AS n,
               (SELECT count(*) FROM unfinished WHERE dead) AS failed,
               (SELECT count(*) FROM unfinished WHERE NOT dead) AS moving
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
        'paid_today', (
            SELECT json_build_object('paid', n, 'fulfilled', n - failed - moving,
                                     'in_progress', moving, 'failed', failed)
              FROM paid),
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
