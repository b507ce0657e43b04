"""Bounded answers and health that means "can commit" (issue 18, SPEC §12).

- The database port held silent (tcp_proxy.TcpProxy.hold: sockets open,
  nothing moves): under 200 callbacks every one is answered 503 with
  Retry-After within answer_timeout + 1 s (the one timing assertion here:
  it is the contract), /healthz is degraded and bayarhook_database_up 0;
  once the port moves again the daemon recovers by itself, the held
  transactions commit late, and every resend is accepted or a duplicate:
  one payment and one job per invoice.
- Connections cut while callbacks wait: the store fails its queue at once
  (long before answer_timeout), nothing waits for the reconnect.
- A standby-only conninfo: degraded with a reason, a clear log line,
  doctor says so; promoted, the daemon reconnects by itself. Two hosts
  without target_session_attrs: bayarhook asks for read-write and lands on
  the primary.
- Every pool's connections carry application_name bayarhook/<purpose>
  unless the conninfo names one; libpq notices and warnings reach our log.
"""

import concurrent.futures
import time

import pytest

import bh
import replica
from tcp_proxy import TcpProxy

ANSWER_TIMEOUT = 2
LOAD = 200
SENDERS = 40


@pytest.fixture
def proxy(pg):
    p = TcpProxy(pg.port).start()
    yield p
    p.release()
    p.stop()


def via(db, port):
    return (f"host=127.0.0.1 port={port} dbname={db.name} user=postgres "
            "connect_timeout=5")


def healthz(d):
    r = bh.get(d.url("/healthz"), timeout=10)
    return r.status, r.json


def metric(d, name):
    for line in bh.get(d.url("/metrics"), timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in /metrics")


def timed_callback(d, invoice):
    """(invoice, status, Retry-After, seconds from before the connect to the answer, json)."""
    body, headers = bh.make_callback(invoice, secret=d.secret)
    t0 = time.monotonic()
    r = bh.post(d.callback_url, body, headers, timeout=120)
    return invoice, r.status, r.headers.get("Retry-After"), time.monotonic() - t0, r.json


def send_all(d, invoices, senders=SENDERS):
    with concurrent.futures.ThreadPoolExecutor(senders) as ex:
        return list(ex.map(lambda inv: timed_callback(d, inv), invoices))


def stalled_run(d, proxy, invoices, hold_for=None):
    """Holds the database's port, sends a callback per invoice (SENDERS at a
    time) and returns their timed_callback() results. The port is released
    after the last answer, or after hold_for seconds when given (a build
    without the deadline answers only then)."""
    proxy.hold()
    timer = None
    if hold_for is not None:
        import threading
        timer = threading.Timer(hold_for, proxy.release)
        timer.start()
    try:
        return send_all(d, invoices)
    finally:
        if timer is not None:
            timer.join()


def assert_once_each(db, invoices):
    """One payment, one accepted audit row and one job per invoice: nothing doubled."""
    rows = db.rows("SELECT invoice_id, count(*) FILTER (WHERE verdict = 'accepted'), count(*) "
                   "FROM bayarhook.callbacks WHERE invoice_id = ANY(%s) GROUP BY 1", [invoices])
    assert len(rows) == len(invoices)
    doubled = [r for r in rows if r[1] != 1]
    assert not doubled, doubled[:5]
    assert db.scalar("SELECT count(*) FROM bayarhook.payments WHERE invoice_id = ANY(%s) "
                     "AND status = 'paid'", [invoices]) == len(invoices)
    jobs = db.rows("SELECT invoice_id, count(*) FROM bayarhook.jobs WHERE invoice_id = ANY(%s) "
                   "GROUP BY 1", [invoices])
    assert len(jobs) == len(invoices)
    assert all(n == 1 for _, n in jobs), [j for j in jobs if j[1] != 1][:5]


# proxy comes first: the daemons stop before it does.
def test_silent_database_port_answers_503_within_answer_timeout(proxy, make_daemon, db):
    d = make_daemon(config={
        "server": {"answer_timeout": str(ANSWER_TIMEOUT)},
        "database": {"conninfo": via(db, proxy.port)},
        "action.noop": {"type": "exec", "command": "/bin/true"},
    })
    assert d.callback().status == 200  # the path through the proxy works
    invoices = [bh.new_invoice("HOLE") for _ in range(LOAD)]
    results = stalled_run(d, proxy, invoices)
    try:
        # Still held: degraded, and the metric agrees.
        status, body = healthz(d)
        assert (status, body["status"], body["reason"]) == (503, "degraded",
                                                            "answer_timeout passed"), body
        assert metric(d, "bayarhook_database_up") == 0
    finally:
        proxy.release()
    slowest = max(r[3] for r in results)
    print(f"\nslowest answer with the port held: {slowest:.2f} s "
          f"(answer_timeout = {ANSWER_TIMEOUT} s, {LOAD} callbacks, {SENDERS} senders)")
    for inv, status, retry_after, seconds, body in results:
        assert status == 503, (inv, status, body)
        assert retry_after and retry_after.isdigit(), (inv, retry_after)
        assert body == {"success": False, "error": "temporarily unavailable, retry later"}
        assert seconds <= ANSWER_TIMEOUT + 1, (inv, seconds)
    assert "was not durable within answer_timeout=2s" in d.log()

    # Released: the daemon recovers by itself; the held transactions commit.
    bh.wait_for(lambda: healthz(d) == (200, {"status": "ok", "database": "up"}), 60,
                interval=0.2, what="/healthz ok after the stall")
    bh.wait_for(lambda: "the database commits again" in d.log(), 30,
                what="the stall's closing line")
    # Those still waiting when answered are recorded as answered.
    late = db.rows("SELECT http_status, error FROM bayarhook.callbacks "
                   "WHERE invoice_id = ANY(%s) AND http_status = 503", [invoices])
    assert late, "no item was recorded as answered 503"
    assert {tuple(r) for r in late} == {
        (503, "not durable within answer_timeout: answered 503")}
    # The gateway sends each again: accepted, or a duplicate of a late commit.
    again = send_all(d, invoices)
    for inv, status, _, _, body in again:
        assert status == 200, (inv, status, body)
        assert body in ({"success": True}, {"success": True, "duplicate": True}), body
    assert any(r[4] == {"success": True, "duplicate": True} for r in again)
    assert_once_each(db, invoices)


def test_cut_connections_fail_waiting_callbacks_at_once(proxy, make_daemon, db):
    # answer_timeout far away: what answers them is the pool going down.
    d = make_daemon(config={
        "server": {"answer_timeout": "120"},
        "database": {"conninfo": via(db, proxy.port)},
        "action.noop": {"type": "exec", "command": "/bin/true"},
    })
    assert d.callback().status == 200
    invoices = [bh.new_invoice("CUT") for _ in range(30)]
    proxy.hold()
    with concurrent.futures.ThreadPoolExecutor(len(invoices)) as ex:
        futures = [ex.submit(timed_callback, d, inv) for inv in invoices]
        # A transaction is stuck in the proxy; the rest of the callbacks wait behind it.
        bh.wait_for(lambda: proxy.waiting_bytes() > 0, 30, what="a batch held by the proxy")
        proxy.cut()
        # Bounded well below answer_timeout: nobody waits for the reconnect.
        results = [f.result(timeout=60) for f in futures]
    for inv, status, retry_after, _, body in results:
        assert status == 503, (inv, status, body)
        assert retry_after, inv
    assert "database connection lost" in d.log()
    proxy.release()
    # The pool reconnects by itself. (/healthz stays degraded for a while after
    # failed commits unless one succeeds: the resends are what succeed.)
    bh.wait_for(lambda: timed_callback(d, invoices[0])[1] == 200, 60, interval=0.2,
                what="a resend accepted")
    for inv, status, _, _, body in send_all(d, invoices):
        assert status == 200, (inv, status, body)
    assert healthz(d) == (200, {"status": "ok", "database": "up"})
    assert_once_each(db, invoices)


def test_late_callbacks_whose_transaction_then_fails(proxy, make_daemon, db):
    # Answered 503 by the deadline, then the connections are cut under them:
    # each is answered once (ASan would see a second answer's use after free).
    d = make_daemon(config={
        "server": {"answer_timeout": str(ANSWER_TIMEOUT)},
        "database": {"conninfo": via(db, proxy.port)},
    })
    assert d.callback().status == 200
    invoices = [bh.new_invoice("LATECUT") for _ in range(30)]
    results = stalled_run(d, proxy, invoices)
    assert all(r[1] == 503 for r in results), results
    assert healthz(d)[1]["reason"] == "answer_timeout passed"
    proxy.cut()
    bh.wait_for(lambda: "the transactions that stalled failed" in d.log(), 30,
                what="the stall's closing line")
    proxy.release()
    bh.wait_for(lambda: timed_callback(d, invoices[0])[1] == 200, 60, interval=0.2,
                what="a resend accepted")
    for inv, status, _, _, body in send_all(d, invoices):
        assert status == 200, (inv, status, body)
    rows = db.rows("SELECT invoice_id, count(*) FILTER (WHERE verdict = 'accepted') "
                   "FROM bayarhook.callbacks WHERE invoice_id = ANY(%s) GROUP BY 1", [invoices])
    assert sorted(r[1] for r in rows) == [1] * len(invoices), rows


@pytest.fixture
def standby(pg, db):
    # Made after db exists (the fixture created it), so it has it too.
    s = replica.make_standby(pg)
    yield s
    s.destroy()


@pytest.fixture
def migrated(make_daemon, db):
    make_daemon(start=False, name="migrator").migrate()
    return db


def test_standby_only_is_degraded_then_reconnects_once_promoted(make_daemon, migrated, pg,
                                                                  tmp_path):
    s = replica.make_standby(pg)
    try:
        assert s.in_recovery()
        d = make_daemon(config={"database": {"conninfo": s.conninfo(migrated.name)}},
                        start=False)
        d.start(migrate=False)
        want = (503, {"status": "degraded", "database": "down", "reason": "read-only session"})
        bh.wait_for(lambda: healthz(d) == want, 30, interval=0.2, what="degraded: read-only")
        r = d.callback()
        assert r.status == 503 and r.headers.get("Retry-After"), r
        assert metric(d, "bayarhook_database_up") == 0
        assert "database session is read-only" in d.log()
        assert "reconnecting" in d.log()
        out = d.cli("doctor").stdout
        assert "FAIL  database: read-only" in out, out
        assert "read-only session" in out, out  # the listener line shows /healthz's reason
        # Promoted: the daemon reconnects by itself and records again.
        s.promote()
        inv = bh.new_invoice("PROMOTED")
        bh.wait_for(lambda: d.callback(inv).status == 200, 60, interval=0.3,
                    what="callbacks accepted after the promotion")
        assert healthz(d) == (200, {"status": "ok", "database": "up"})
        with bh.psycopg.connect(s.conninfo(migrated.name)) as c:
            assert c.execute("SELECT count(*) FROM bayarhook.payments WHERE invoice_id = %s",
                             [inv]).fetchone()[0] == 1
    finally:
        s.destroy()


def serves_through(make_daemon, migrated, conninfo, tag, timeout):
    """A daemon on conninfo: /healthz ok within timeout, and a callback
    recorded as paid in migrated. Returns the daemon."""
    d = make_daemon(config={"database": {"conninfo": conninfo}}, start=False)
    d.start(migrate=False)
    bh.wait_for(lambda: healthz(d) == (200, {"status": "ok", "database": "up"}), timeout,
                interval=0.2, what="/healthz ok")
    inv = bh.new_invoice(tag)
    assert d.callback(inv).status == 200
    assert migrated.payment(inv)["status"] == "paid"
    return d


def test_two_hosts_without_session_attrs_reach_the_primary(make_daemon, migrated, pg, standby):
    # The standby is listed first: without target_session_attrs libpq would take it.
    conninfo = (f"host=127.0.0.1,127.0.0.1 port={standby.port},{pg.port} "
                f"dbname={migrated.name} user=postgres connect_timeout=5")
    d = serves_through(make_daemon, migrated, conninfo, "TWO", 30)
    assert "read-only" not in d.log()


def test_a_silent_first_host_is_passed_over(proxy, make_daemon, migrated, pg):
    # libpq ignores connect_timeout under PQconnectPoll: the attempt is given
    # up as a whole (connect_timeout + 1 s) and the next starts at the next host.
    # (Before, every attempt began at the silent one again: never up.)
    proxy.hold()
    conninfo = (f"host=127.0.0.1,127.0.0.1 port={proxy.port},{pg.port} "
                f"dbname={migrated.name} user=postgres connect_timeout=1")
    serves_through(make_daemon, migrated, conninfo, "SECOND", 60)


def app_names(db):
    return {r[0] for r in db.rows("SELECT application_name FROM pg_stat_activity "
                                  "WHERE datname = current_database() "
                                  "AND pid <> pg_backend_pid()")}


def test_pools_carry_application_name_and_notices_reach_the_log(make_daemon, db):
    d = make_daemon()
    want = {"bayarhook/ingest", "bayarhook/worker", "bayarhook/reconcile"}
    names = bh.wait_for(lambda: (lambda n: n if want <= n else None)(app_names(db)), 20,
                        what="the pools in pg_stat_activity")
    assert all(n.startswith("bayarhook/") for n in names), names

    db.execute("""CREATE FUNCTION public.bh_notice() RETURNS trigger LANGUAGE plpgsql AS $$
                  BEGIN
                      RAISE NOTICE 'bh-notice %', NEW.invoice_id;
                      RAISE WARNING 'bh-warning %', NEW.invoice_id;
                      RETURN NEW;
                  END $$""")
    db.execute("CREATE TRIGGER bh_notice AFTER INSERT ON bayarhook.payments "
               "FOR EACH ROW EXECUTE FUNCTION public.bh_notice()")
    inv = bh.new_invoice("NOTICE")
    assert d.callback(inv).status == 200
    lines = bh.wait_for(lambda: [ln for ln in d.log().splitlines() if inv in ln and
                                 "pool=ingest" in ln and "database " in ln] or None, 10,
                        what="the notices in our log")
    assert any("database NOTICE pool=ingest" in ln and f"bh-notice {inv}" in ln
               for ln in lines), lines
    assert any("database WARNING pool=ingest" in ln and f"bh-warning {inv}" in ln
               for ln in lines), lines


def test_conninfo_application_name_wins(make_daemon, db):
    d = make_daemon(config={"database": {"conninfo": db.conninfo + " application_name=shop"}})
    assert d.callback().status == 200
    names = bh.wait_for(lambda: (lambda n: n if "shop" in n else None)(app_names(db)), 20,
                        what="the named connections")
    assert not [n for n in names if n.startswith("bayarhook/")], names
