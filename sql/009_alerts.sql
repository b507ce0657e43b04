-- 009: alerts (SPEC §8). One row per thing the operator must hear about,
-- written where it happens (the triggers and alert_raise() in
-- sql/functions/alerts.sql, in the same transaction as the event) and
-- delivered at least once by the daemon (src/alert.c) to [alert] command
-- and/or url.
--
-- state: pending (not yet delivered), sent (delivered, delivered_at set),
-- merged (held back by min_interval and counted into merged_into's
-- suppressed; delivered_at set when that one is sent), ignored (its kind
-- is not in [alert] kinds).
CREATE TABLE bayarhook.alerts (
    id              bigserial PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('job_dead', 'payment_flagged',
                        'missed_callback', 'confirm_disagreed', 'reconcile_failing',
                        'database_down')),
    subject         text NOT NULL DEFAULT '',
    detail          jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    state           text NOT NULL DEFAULT 'pending'
                        CHECK (state IN ('pending', 'sent', 'merged', 'ignored')),
    suppressed      integer NOT NULL DEFAULT 0,
    merged_into     bigint,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_owner     text,
    lease_until     timestamptz,
    last_error      text
);
CREATE INDEX alerts_pending_idx ON bayarhook.alerts (kind, subject, id) WHERE state = 'pending';
CREATE INDEX alerts_sent_idx ON bayarhook.alerts (kind, subject, delivered_at) WHERE state = 'sent';
