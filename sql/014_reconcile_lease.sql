-- 014: the reconciler's single leader as a lease row instead of a session
-- advisory lock. A session lock needs the same server connection for the
-- whole pass: behind a transaction-pooling PgBouncer it is taken on one
-- server connection and released (or not) on another, so passes overlapped
-- and the lock outlived every bayarhook. A lease is one row that each
-- statement reads and writes on its own: taken when free or expired,
-- renewed during the pass, released at its end; a holder that died leaves
-- a lease that expires by itself (src/reconcile_lease.c).
CREATE TABLE bayarhook.reconcile_lease (
    name        text PRIMARY KEY,          -- 'reconcile': one leader per database
    owner       text,                      -- host:pid:token of the pass holding it, NULL: free
    taken_at    timestamptz,
    expires_at  timestamptz NOT NULL DEFAULT '-infinity'
);
INSERT INTO bayarhook.reconcile_lease (name) VALUES ('reconcile');
