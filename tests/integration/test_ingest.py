"""The callback path and /healthz (SPEC §4), with the rows they leave (SPEC §6).

Each test has its own database and its own daemon.
"""

import json
import re
import signal
import threading
import time

import pytest

import bh

OK = {"success": True}
DUP = {"success": True, "duplicate": True}
BAD_SIG = {"success": False, "error": "invalid signature"}
STALE = {"success": False, "error": "timestamp outside replay window"}


def only_row(rows):
    assert len(rows) == 1, rows
    return rows[0]


def assert_error_body(r, status):
    assert r.status == status, r
    assert isinstance(r.json, dict) and r.json.get("success") is False, r
    assert isinstance(r.json.get("error"), str) and r.json["error"], r


# ---------------------------------------------------------------------------
# accepted, duplicate

def test_valid_callback_is_recorded(daemon, db):
    inv = bh.new_invoice("ok")
    r = daemon.callback(inv, amount=50000, final_amount=50123)
    assert r.status == 200, r
    assert r.json == OK
    assert r.headers.get("Content-Type", "").startswith("application/json")

    p = db.payment(inv)
    assert p is not None
    assert p["status"] == "paid"
    assert float(p["amount"]) == 50000
    assert float(p["final_amount"]) == 50123
    assert p["source"] == "callback"
    assert p["paid_reff_num"].startswith("TRX")
    assert p["paid_at"] is not None
    assert p["first_seen_at"] is not None and p["updated_at"] is not None

    cb = only_row(db.callbacks(inv))
    assert cb["verdict"] == "accepted"
    assert cb["http_status"] == 200
    assert cb["status"] == "paid"
    assert cb["event"] == "payment.paid"
    assert "127.0.0.1" in str(cb["remote_addr"])
    assert cb["received_at"] is not None
    assert "x-webhook-signature" in bh.header_names(cb["headers"]), cb["headers"]
    assert json.loads(cb["body"])["invoice_id"] == inv


def test_same_callback_twice_is_duplicate(daemon, db):
    inv = bh.new_invoice("dup")
    body, headers = bh.make_callback(inv, secret=daemon.secret)
    r1 = bh.post(daemon.callback_url, body, headers)
    r2 = bh.post(daemon.callback_url, body, headers)
    assert (r1.status, r1.json) == (200, OK)
    assert (r2.status, r2.json) == (200, DUP)
    assert db.verdicts(inv) == ["accepted", "duplicate"]
    assert [c["http_status"] for c in db.callbacks(inv)] == [200, 200]
    assert db.count("payments", "invoice_id = %s", [inv]) == 1


def test_gateway_retry_with_fresh_timestamp_is_duplicate(daemon, db):
    # The gateway re-sends with a new timestamp and signature: same payment.
    inv = bh.new_invoice("retry")
    assert daemon.callback(inv, ts=int(time.time()) - 10).json == OK
    r = daemon.callback(inv)
    assert (r.status, r.json) == (200, DUP)
    assert db.verdicts(inv) == ["accepted", "duplicate"]
    assert db.count("payments", "invoice_id = %s", [inv]) == 1


def test_concurrent_identical_callbacks(daemon, db):
    inv = bh.new_invoice("conc")
    body, headers = bh.make_callback(inv, secret=daemon.secret)
    n = 20
    barrier = threading.Barrier(n, timeout=30)
    results = [None] * n

    def worker(i):
        try:
            barrier.wait()
            results[i] = bh.post(daemon.callback_url, body, headers, timeout=60)
        except Exception as e:  # noqa: BLE001 - reported below
            results[i] = e

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert not any(t.is_alive() for t in threads)
    errors = [r for r in results if not isinstance(r, bh.Response)]
    assert not errors, errors
    assert [r.status for r in results] == [200] * n, results
    assert sorted(json.dumps(r.json, sort_keys=True) for r in results) == sorted(
        [json.dumps(OK, sort_keys=True)] + [json.dumps(DUP, sort_keys=True)] * (n - 1))
    assert db.count("payments", "invoice_id = %s", [inv]) == 1
    verdicts = db.verdicts(inv)
    assert verdicts.count("accepted") == 1, verdicts
    assert verdicts.count("duplicate") == n - 1, verdicts


# ---------------------------------------------------------------------------
# signature

def test_bad_signature(daemon, db):
    inv = bh.new_invoice("badsig")
    r = daemon.callback(inv, secret="whsec_not_the_secret")
    assert (r.status, r.json) == (401, BAD_SIG)
    cb = only_row(db.wait_callbacks(1, inv))
    assert cb["verdict"] == "bad_signature"
    assert cb["http_status"] == 401
    assert "x-webhook-signature" in bh.header_names(cb["headers"])
    assert db.payment(inv) is None


def test_signature_over_other_amount_is_rejected(daemon, db):
    inv = bh.new_invoice("tamper")
    r = daemon.callback(inv, final_amount=50123, signed_amount="1")
    assert (r.status, r.json) == (401, BAD_SIG)
    db.wait_callbacks(1, inv)
    assert db.verdicts(inv) == ["bad_signature"]
    assert db.payment(inv) is None


def test_missing_signature(daemon, db):
    inv = bh.new_invoice("nosig")
    body, headers = bh.make_callback(inv, secret=daemon.secret, drop=("signature",))
    del headers["X-Webhook-Signature"]
    r = bh.post(daemon.callback_url, body, headers)
    assert (r.status, r.json) == (401, BAD_SIG)
    db.wait_callbacks(1, inv)
    assert db.verdicts(inv) == ["bad_signature"]
    assert db.payment(inv) is None


def test_signature_in_body_fields_without_headers(daemon, db):
    inv = bh.new_invoice("body")
    body, headers = bh.make_callback(inv, secret=daemon.secret, headers=False)
    assert set(headers) == {"Content-Type"}
    r = bh.post(daemon.callback_url, body, headers)
    assert (r.status, r.json) == (200, OK)
    assert db.verdicts(inv) == ["accepted"]
    assert db.payment(inv)["status"] == "paid"


def test_older_secret_still_accepted_during_rotation(make_daemon, db):
    new, old = "whsec_new_secret_after_rotation", "whsec_old_secret_before_rotation"
    d = make_daemon(secrets=[new, old])
    inv_old, inv_new, inv_bad = (bh.new_invoice(t) for t in ("old", "new", "bad"))
    assert d.callback(inv_old, secret=old).json == OK
    assert d.callback(inv_new, secret=new).json == OK
    r = d.callback(inv_bad, secret="whsec_some_other_secret")
    assert (r.status, r.json) == (401, BAD_SIG)
    db.wait_callbacks(1, inv_bad)
    assert db.verdicts(inv_old) == ["accepted"]
    assert db.verdicts(inv_new) == ["accepted"]
    assert db.verdicts(inv_bad) == ["bad_signature"]


def test_float_final_amount_signed_as_php_text(daemon, db):
    inv = bh.new_invoice("float")
    body, headers = bh.make_callback(inv, secret=daemon.secret, final_amount=50123.0,
                                     signed_amount="50123")
    assert b'"final_amount":50123.0' in body
    r = bh.post(daemon.callback_url, body, headers)
    assert (r.status, r.json) == (200, OK)
    assert float(db.payment(inv)["final_amount"]) == 50123


# ---------------------------------------------------------------------------
# replay window

def test_timestamp_inside_window_accepted(daemon, db):
    inv = bh.new_invoice("win")
    r = daemon.callback(inv, ts=int(time.time()) - (daemon.window - 5))
    assert (r.status, r.json) == (200, OK)
    assert db.verdicts(inv) == ["accepted"]


@pytest.mark.parametrize("offset", [-1, +1], ids=["past", "future"])
def test_timestamp_outside_window_rejected(daemon, db, offset):
    inv = bh.new_invoice("stale")
    r = daemon.callback(inv, ts=int(time.time()) + offset * (daemon.window + 5))
    assert (r.status, r.json) == (401, STALE)
    cb = only_row(db.wait_callbacks(1, inv))
    assert cb["verdict"] == "stale_timestamp"
    assert cb["http_status"] == 401
    assert db.payment(inv) is None


def test_short_replay_window_is_honoured(make_daemon, db):
    d = make_daemon(config={"security": {"replay_window": 30}})
    now = int(time.time())
    ok, late = bh.new_invoice("w30a"), bh.new_invoice("w30b")
    assert d.callback(ok, ts=now - 25).status == 200
    assert (d.callback(late, ts=now - 35).json) == STALE


@pytest.mark.parametrize("mode", ["headers", "body"])
def test_missing_timestamp_rejected(daemon, db, mode):
    inv = bh.new_invoice("nots")
    body, headers = bh.make_callback(inv, secret=daemon.secret, headers=(mode == "headers"),
                                     drop=("timestamp",))
    headers.pop("X-Webhook-Timestamp", None)
    r = bh.post(daemon.callback_url, body, headers)
    assert (r.status, r.json) == (401, STALE)
    db.wait_callbacks(1, inv)
    assert db.verdicts(inv) == ["stale_timestamp"]
    assert db.payment(inv) is None


# ---------------------------------------------------------------------------
# malformed requests

def test_not_json(daemon, db):
    before = db.count("callbacks")
    r = bh.post(daemon.callback_url, b"invoice_id=PAY-1&status=paid",
                {"Content-Type": "application/json", "X-Webhook-Signature": "00" * 32,
                 "X-Webhook-Timestamp": str(int(time.time()))})
    assert_error_body(r, 400)
    rows = db.wait_callbacks(before + 1)
    assert len(rows) == before + 1
    assert rows[-1]["verdict"] == "malformed"
    assert rows[-1]["http_status"] == 400
    assert rows[-1]["body"] == "invoice_id=PAY-1&status=paid"


def test_missing_invoice_id(daemon, db):
    body, headers = bh.make_callback("", secret=daemon.secret, drop=("invoice_id",))
    del headers["X-Invoice-ID"]
    r = bh.post(daemon.callback_url, body, headers)
    assert_error_body(r, 400)
    rows = db.wait_callbacks(1)
    assert [c["verdict"] for c in rows] == ["malformed"]
    assert rows[0]["http_status"] == 400
    assert db.count("payments") == 0


def test_invoice_header_mismatch(daemon, db):
    inv = bh.new_invoice("mm")
    body, headers = bh.make_callback(inv, secret=daemon.secret)
    headers["X-Invoice-ID"] = bh.new_invoice("other")
    r = bh.post(daemon.callback_url, body, headers)
    assert_error_body(r, 400)
    rows = db.wait_callbacks(1)
    assert [c["verdict"] for c in rows] == ["malformed"]
    assert rows[0]["http_status"] == 400
    assert db.count("payments") == 0


def test_body_too_large(make_daemon, db):
    d = make_daemon(config={"server": {"max_body_bytes": 1024}})
    inv = bh.new_invoice("big")
    body, headers = bh.make_callback(inv, secret=d.secret, extra={"description": "x" * 2048})
    assert len(body) > 1024
    r = bh.post(d.callback_url, body, headers)
    assert r.status == 413, r
    rows = db.wait_callbacks(1)
    assert [c["verdict"] for c in rows] == ["too_large"]
    assert rows[0]["http_status"] == 413
    assert db.count("payments") == 0
    # A body that fits is still fine.
    small_inv = bh.new_invoice("small")
    assert d.callback(small_inv).status == 200
    assert db.verdicts(small_inv) == ["accepted"]


def test_wrong_method(daemon, db):
    r = bh.get(daemon.callback_url)
    assert r.status == 405, r
    assert "POST" in r.headers.get("Allow", ""), dict(r.headers)
    rows = db.wait_callbacks(1)
    assert [c["verdict"] for c in rows] == ["malformed"]
    assert rows[0]["http_status"] == 405


def test_allow_from_excludes_client(make_daemon, db):
    d = make_daemon(config={"server": {"allow_from": "10.0.0.0/8"}})
    inv = bh.new_invoice("forb")
    r = d.callback(inv)
    assert r.status == 403, r
    rows = db.wait_callbacks(1)
    assert [c["verdict"] for c in rows] == ["forbidden"]
    assert rows[0]["http_status"] == 403
    assert db.count("payments") == 0


def test_allow_from_uses_address_given_by_trusted_proxy(make_daemon, db):
    # 127.0.0.1 is a trusted proxy, so its X-Forwarded-For names the real client.
    d = make_daemon(config={"server": {"allow_from": "10.0.0.0/8",
                                       "trusted_proxies": "127.0.0.1/32"}})
    inv_in, inv_out = bh.new_invoice("xin"), bh.new_invoice("xout")
    body, headers = bh.make_callback(inv_in, secret=d.secret)
    headers["X-Forwarded-For"] = "10.1.2.3"
    assert bh.post(d.callback_url, body, headers).status == 200
    body, headers = bh.make_callback(inv_out, secret=d.secret)
    headers["X-Forwarded-For"] = "203.0.113.9"
    assert bh.post(d.callback_url, body, headers).status == 403
    db.wait_callbacks(2)
    # A refused client's body need not be read, so its row may have no invoice_id.
    assert db.verdicts() == ["accepted", "forbidden"]
    assert db.verdicts(inv_in) == ["accepted"]


# ---------------------------------------------------------------------------
# status order

def test_pending_after_paid_is_out_of_order(daemon, db):
    inv = bh.new_invoice("ooo")
    now = int(time.time())
    assert daemon.callback(inv, status="paid", ts=now - 5).json == OK
    r = daemon.callback(inv, status="pending", ts=now)
    assert r.status == 200, r
    assert r.json.get("success") is True
    assert db.verdicts(inv) == ["accepted", "out_of_order"]
    assert db.payment(inv)["status"] == "paid"


def test_paid_after_expired_is_accepted(daemon, db):
    inv = bh.new_invoice("late")
    now = int(time.time())
    assert daemon.callback(inv, status="expired", ts=now - 5).json == OK
    assert db.payment(inv)["status"] == "expired"
    r = daemon.callback(inv, status="paid", ts=now)
    assert (r.status, r.json) == (200, OK)
    assert db.verdicts(inv) == ["accepted", "accepted"]
    p = db.payment(inv)
    assert p["status"] == "paid"
    assert p["paid_reff_num"]


def test_event_is_the_exact_body_and_two_argument_ingest_still_works(daemon, db):
    """The daemon sends a verified body apart (ingest(batch, bodies, actions));
    the audit keeps its exact bytes and the payment its JSON. The two-argument
    ingest() of migration 001, kept for a daemon not yet restarted, records
    the same items with everything inside the batch."""
    inv = bh.new_invoice("body")
    r = daemon.callback(inv, status="paid")
    assert (r.status, r.json) == (200, OK)
    cb = only_row(db.query("SELECT body, verdict FROM bayarhook.callbacks WHERE invoice_id = %s",
                           [inv]))
    assert cb["verdict"] == "accepted"
    ev = db.scalar("SELECT event FROM bayarhook.payments WHERE invoice_id = %s", [inv])
    assert ev == json.loads(cb["body"]) and ev["invoice_id"] == inv

    old = bh.new_invoice("twoarg")
    body = json.dumps({"invoice_id": old, "status": "paid", "final_amount": 5})
    batch = [{"idx": 0, "invoice_id": old, "status": "paid", "final_amount": "5",
              "source": "callback", "event": json.loads(body), "body": body},
             {"idx": 1, "verdict": "malformed", "http_status": 400, "error": "test",
              "body": "not json"},
             {"idx": 2, "invoice_id": old, "status": "paid", "final_amount": "5",
              "source": "callback", "event": json.loads(body), "body": body}]
    got = db.rows("SELECT idx, verdict FROM bayarhook.ingest(%s::jsonb, %s::jsonb) ORDER BY idx",
                  [json.dumps(batch), json.dumps({"paid": []})])
    assert got == [(0, "accepted"), (1, "malformed"), (2, "duplicate")]
    assert db.verdicts(old) == ["accepted", "duplicate"]
    assert db.scalar("SELECT event FROM bayarhook.payments WHERE invoice_id = %s",
                     [old]) == json.loads(body)
    assert db.scalar("SELECT body FROM bayarhook.callbacks WHERE invoice_id = %s ORDER BY id "
                     "LIMIT 1", [old]) == body


# ---------------------------------------------------------------------------
# health, metrics

def test_healthz_ok(daemon):
    r = bh.get(daemon.url("/healthz"))
    assert (r.status, r.json) == (200, {"status": "ok", "database": "up"})


def test_metrics(daemon):
    daemon.callback(bh.new_invoice("m"))
    r = bh.get(daemon.url("/metrics"))
    assert r.status == 200, r
    assert r.headers.get("Content-Type", "").startswith("text/plain")
    for line in r.text.splitlines():
        if line and not line.startswith("#"):
            assert re.match(r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})?\s+\S+(\s+\d+)?$", line), line


def test_database_restart_while_serving(daemon, db, pg):
    assert daemon.callback(bh.new_invoice("before")).json == OK
    pid = daemon.pid
    pg.stop("immediate")
    try:
        inv = bh.new_invoice("down")
        r = daemon.callback(inv)
        assert r.status == 503, r
        assert r.headers.get("Retry-After", "").strip().isdigit(), dict(r.headers)

        def degraded():
            h = bh.get(daemon.url("/healthz"), timeout=10)
            return h if h.status == 503 else None

        h = bh.wait_for(degraded, 15 * bh.SLOW, interval=0.3, what="/healthz 503")
        assert h.json == {"status": "degraded", "database": "down"}
    finally:
        pg.start()

    def healthy():
        h = bh.get(daemon.url("/healthz"), timeout=10)
        return h if h.status == 200 else None

    h = bh.wait_for(healthy, 30 * bh.SLOW, interval=0.3, what="/healthz 200 after restart")
    assert h.json == {"status": "ok", "database": "up"}
    inv = bh.new_invoice("after")
    r = daemon.callback(inv)
    assert (r.status, r.json) == (200, OK)
    assert db.verdicts(inv) == ["accepted"]
    assert daemon.alive() and daemon.pid == pid


# ---------------------------------------------------------------------------
# command line

def _audit_records(stdout):
    """audit --json: one JSON array, or one JSON object per line."""
    text = stdout.strip()
    if not text:
        return []
    try:
        data = json.loads(text)
    except ValueError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    if isinstance(data, dict):
        for key in ("callbacks", "data", "rows", "items"):
            if isinstance(data.get(key), list):
                return data[key]
        return [data]
    return data


def test_audit_cli(daemon, db):
    inv, bad = bh.new_invoice("aud"), bh.new_invoice("audbad")
    assert daemon.callback(inv).status == 200
    assert daemon.callback(bad, secret="whsec_wrong").status == 401
    db.wait_callbacks(2)

    p = daemon.cli("audit", check=True)
    assert inv in p.stdout and bad in p.stdout

    p = daemon.cli("audit", "--json", check=True)
    recs = _audit_records(p.stdout)
    by_inv = {r.get("invoice_id"): r for r in recs}
    assert by_inv[inv]["verdict"] == "accepted"
    assert by_inv[bad]["verdict"] == "bad_signature"

    p = daemon.cli("audit", "--invoice", inv, "--json", check=True)
    recs = _audit_records(p.stdout)
    assert recs and all(r["invoice_id"] == inv for r in recs)

    p = daemon.cli("audit", "--verdict", "bad_signature", "--json", check=True)
    recs = _audit_records(p.stdout)
    assert [r["invoice_id"] for r in recs] == [bad]


def test_send_test_cli(daemon, db):
    inv = bh.new_invoice("send")
    p = daemon.cli("send-test", "--invoice", inv, check=True)
    assert p.returncode == 0
    assert db.verdicts(inv) == ["accepted"]
    assert db.payment(inv)["status"] == "paid"

    before = db.count("callbacks", "verdict = 'accepted'")
    daemon.cli("send-test", check=True)
    assert db.count("callbacks", "verdict = 'accepted'") == before + 1


def test_check_config(make_daemon):
    d = make_daemon(start=False)
    p = d.cli("check-config")
    assert p.returncode == 0, p.stderr
    assert d.secret not in p.stdout + p.stderr  # a summary never shows secrets

    lines = bh.render_ini(d.sections).splitlines()
    idx = lines.index("replay_window = 300")
    lines[idx] = "replay_window = soon"
    d.write_config("\n".join(lines) + "\n")
    p = d.cli("check-config")
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert f"{d.config_path}:{idx + 1}: replay_window:" in p.stderr, p.stderr

    lines[idx] = "replay_window = 300"
    lines.insert(idx + 1, "no_such_key = 1")
    d.write_config("\n".join(lines) + "\n")
    p = d.cli("check-config")
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert f"{d.config_path}:{idx + 2}: no_such_key:" in p.stderr, p.stderr


def _schema_snapshot(db):
    cols = db.rows("""SELECT table_name, column_name, data_type FROM information_schema.columns
                      WHERE table_schema = 'bayarhook' ORDER BY 1, 2""")
    idx = db.rows("""SELECT indexname, indexdef FROM pg_indexes
                     WHERE schemaname = 'bayarhook' ORDER BY 1""")
    tables = [t for (t,) in db.rows("""SELECT table_name FROM information_schema.tables
                                        WHERE table_schema = 'bayarhook' ORDER BY 1""")]
    versions = {t: db.rows(f'SELECT * FROM bayarhook."{t}" ORDER BY 1')
                for t in tables if re.search(r"migration|version", t)}
    return cols, idx, tables, versions


def test_migrate_is_idempotent(make_daemon, db):
    d = make_daemon(start=False)
    d.migrate()
    first = _schema_snapshot(db)
    cols, _, tables, versions = first
    assert {"callbacks", "payments", "jobs"} <= set(tables), tables
    assert versions, f"no schema version table among {tables}"
    assert any(rows for rows in versions.values()), versions
    d.migrate()
    assert _schema_snapshot(db) == first
    # And the daemon runs on it.
    d.start(migrate=False)
    assert d.callback(bh.new_invoice("mig")).status == 200


def test_version_and_usage(make_daemon):
    d = make_daemon(start=False)
    p = d.cli("--version", config=False)
    assert p.returncode == 0
    assert re.search(r"\d+\.\d+\.\d+", p.stdout + p.stderr)
    p = d.cli("no-such-command")
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert p.stderr.strip()


def test_sigterm_stops_daemon(daemon):
    assert daemon.alive()
    daemon.signal(signal.SIGTERM)
    assert daemon.proc.wait(10 * bh.SLOW) == 0
