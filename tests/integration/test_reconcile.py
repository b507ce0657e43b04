"""The reconciler and confirm_with_api (issue 4, SPEC §1-§3).

Real PostgreSQL, the real binary; the fake bayar.gg (fake_gateway.py) is the
only double. The one action is an exec script that appends a line per run
to a file, so "ran once" is a line count.
"""

import datetime
import os
import re
import stat
import subprocess
import time

import pytest

import bh
import fake_gateway



def make_recon(make_daemon, gateway, tmp_path, config=None, start=False, **kw):
    """A daemon whose [action.fulfill] writes 'invoice source job_id' per run."""
    runs = tmp_path / "runs.txt"
    script = tmp_path / "fulfill.sh"
    script.write_text("#!/bin/sh\n"
                      f'echo "$BAYAR_INVOICE_ID $BAYARHOOK_SOURCE $BAYARHOOK_JOB_ID" >> {runs}\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    cfg = {
        "reconciler": {"enabled": "false", "min_age": "60", "lookback": "172800",
                       "max_requests_per_minute": "6000", "interval": "300"},
        "action.fulfill": {"type": "exec", "on": "paid", "timeout": "10",
                           "command": str(script)},
    }
    for sec, keys in (config or {}).items():
        cfg.setdefault(sec, {}).update(keys)
    d = make_daemon(config=cfg, gateway_url=gateway.base_url if gateway else None,
                    start=start, **kw)
    if not start:
        d.migrate()
    d.runs_path = runs
    return d


def runs(d):
    try:
        return [line.split() for line in d.runs_path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return []


def reconcile(d, *extra, expect=0, timeout=120):
    p = d.cli("reconcile", "--once", *extra, timeout=timeout)
    assert p.returncode == expect, f"exit {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}"
    return p


def last_pass(db):
    rows = db.query("SELECT * FROM bayarhook.reconcile_passes ORDER BY id DESC LIMIT 1")
    return rows[0] if rows else None


def add_local(db, invoice, status="pending", age_s=600, final_amount=50123):
    """A payment known here (as if a callback had recorded it) age_s seconds ago."""
    db.execute(
        "INSERT INTO bayarhook.payments (invoice_id, status, amount, final_amount, source, event,"
        " first_seen_at, updated_at) VALUES (%s, %s, 50000, %s, 'callback', %s::jsonb,"
        " now() - make_interval(secs => %s), now() - make_interval(secs => %s))",
        [invoice, status, final_amount,
         f'{{"invoice_id":"{invoice}","status":"{status}","final_amount":{final_amount}}}',
         age_s, age_s])


# ---------------------------------------------------------------------------
# a paid invoice whose callback never came

def test_paid_without_callback_is_fulfilled_once(make_daemon, gateway, db, tmp_path):
    inv = bh.new_invoice("lost")
    gateway.add_payment(inv, status="paid", amount=50000, final_amount=50123)
    d = make_recon(make_daemon, gateway, tmp_path)

    p = reconcile(d)
    assert re.search(rf"^found\s+{re.escape(inv)}\s", p.stdout, re.M), p.stdout
    assert re.search(r"pass \d+ completed", p.stdout), p.stdout

    pay = db.payment(inv)
    assert pay["status"] == "paid"
    assert pay["source"] == "reconciler"
    assert float(pay["final_amount"]) == 50123 and float(pay["amount"]) == 50000
    assert pay["paid_reff_num"] and pay["paid_at"]
    assert not pay["flagged"]
    # What actions read: the gateway's payment, shaped like a callback.
    assert pay["event"]["invoice_id"] == inv
    assert pay["event"]["event"] == "payment.paid"
    assert "success" not in pay["event"]
    # bayarhook.callbacks holds requests to the callback path only.
    assert db.callbacks(inv) == []
    jobs = db.query("SELECT * FROM bayarhook.jobs WHERE invoice_id = %s", [inv])
    assert len(jobs) == 1 and jobs[0]["action"] == "fulfill" and jobs[0]["source"] == "reconciler"
    assert jobs[0]["state"] == "pending"

    ps = last_pass(db)
    assert ps["result"] == "completed" and ps["finished_at"] is not None
    assert (ps["found"], ps["errors"], ps["checked"]) == (1, 0, 0)
    assert ps["trigger"] == "cli"
    # One list-payments page per status of [reconciler] statuses (paid, expired,
    # cancelled); the item carries check-payment's fields, so no check-payment.
    assert ps["requests"] == len(gateway.requests) == 3
    for r in gateway.requests:
        assert r["headers"].get("X-API-Key") == bh.DEFAULT_API_KEY
    assert [r["query"]["status"] for r in gateway.requests] == ["paid", "expired", "cancelled"]
    lst = gateway.requests_to("list-payments")[0]["query"]
    assert lst["status"] == "paid" and lst["limit"] == "100" and lst["page"] == "1"
    # today in WIB, minus lookback (2 days), minus one more day
    wib_today = datetime.datetime.now(datetime.timezone(datetime.timedelta(hours=7))).date()
    assert lst["start_date"] == str(wib_today - datetime.timedelta(days=3))

    # The action runs in serve, once, with source reconciler.
    d.start(migrate=False)
    bh.wait_for(lambda: runs(d), 20, what="the action to run")
    time.sleep(0.5)
    assert runs(d) == [[inv, "reconciler", str(jobs[0]["id"])]]

    # The callback arrives late: a duplicate that adds no job and runs nothing.
    r = gateway.send_callback(d.callback_url, inv, secret=d.secret)
    assert (r.status, r.json) == (200, {"success": True, "duplicate": True})
    assert db.verdicts(inv) == ["duplicate"]
    assert db.count("jobs", "invoice_id = %s", [inv]) == 1
    # A second pass finds nothing to do: the invoice is paid here.
    reconcile(d)
    assert last_pass(db)["found"] == 0
    assert gateway.requests_to("check-payment") == []
    time.sleep(1)
    assert len(runs(d)) == 1


def test_serve_runs_passes_when_enabled(make_daemon, gateway, db, tmp_path):
    inv = bh.new_invoice("serve")
    gateway.add_payment(inv, status="paid")
    d = make_recon(make_daemon, gateway, tmp_path,
                   config={"reconciler": {"enabled": "true", "interval": "1"}}, start=True)
    bh.wait_for(lambda: runs(d), 30, what="the periodic pass to find and fulfil it")
    assert runs(d)[0][:2] == [inv, "reconciler"]
    assert db.payment(inv)["source"] == "reconciler"
    bh.wait_for(lambda: db.count("reconcile_passes", "result = 'completed'") >= 2, 20,
                what="a second periodic pass")
    assert db.scalar("SELECT min(trigger) FROM bayarhook.reconcile_passes") == "serve"
    assert len(runs(d)) == 1


def test_reconcile_ignores_enabled_false_and_help_lists_it(make_daemon, gateway, db, tmp_path):
    d = make_recon(make_daemon, gateway, tmp_path)  # enabled = false
    reconcile(d)
    assert last_pass(db)["result"] == "completed"
    h = d.cli("--help")
    assert h.returncode == 0 and "reconcile --once" in h.stdout
    bad = d.cli("reconcile")
    assert bad.returncode == 2 and "usage" in bad.stderr


# ---------------------------------------------------------------------------
# rate limits and errors

def test_two_429_then_success_completes(make_daemon, gateway, db, tmp_path):
    inv = bh.new_invoice("429")
    gateway.add_payment(inv, status="paid")
    d = make_recon(make_daemon, gateway, tmp_path)
    gateway.fail_next(2, status=429, retry_after=1)

    t0 = time.monotonic()
    p = reconcile(d)
    took = time.monotonic() - t0
    assert f"found   {inv}" in p.stdout
    assert db.payment(inv)["source"] == "reconciler"
    statuses = [r["status"] for r in gateway.requests]
    assert statuses.count(429) == 2 and statuses[2:] == [200, 200, 200], statuses
    # Retry-After: 1 was honoured, twice: nothing was sent during the pauses.
    times = [r["time"] for r in gateway.requests]
    assert times[1] - times[0] >= 0.9 and times[2] - times[1] >= 0.9, times
    assert took >= 1.8
    ps = last_pass(db)
    assert ps["result"] == "completed" and ps["errors"] == 0
    # paid: 429, 429, 200; then expired and cancelled
    assert ps["requests"] == len(gateway.requests) == 5


def test_long_retry_after_is_honoured_by_not_asking(make_daemon, gateway, db, tmp_path):
    d = make_recon(make_daemon, gateway, tmp_path)
    for i in range(12):
        inv = bh.new_invoice(f"wait{i}")
        gateway.add_payment(inv, status="paid")
        add_local(db, inv, "pending", age_s=600)
    gateway.fail_next(4, status=429, retry_after=3600)
    t0 = time.monotonic()
    p = reconcile(d, expect=1)
    assert time.monotonic() - t0 < 10
    assert "3600" in p.stdout + p.stderr, p.stdout + p.stderr
    # Only what was already in flight when the first 429 came; nothing after it.
    assert len(gateway.requests) <= 4
    assert all(r["status"] == 429 for r in gateway.requests)
    ps = last_pass(db)
    assert ps["result"] == "failed" and ps["found"] == 0 and ps["errors"] >= 5


def test_5xx_without_retry_after_backs_off_and_completes(make_daemon, gateway, db, tmp_path):
    inv = bh.new_invoice("500")
    gateway.add_payment(inv, status="paid")
    d = make_recon(make_daemon, gateway, tmp_path)
    gateway.fail_next(1, status=503)
    reconcile(d)
    assert db.payment(inv)["status"] == "paid"
    assert [r["status"] for r in gateway.requests].count(503) == 1


def test_persistent_500_fails_the_pass_after_bounded_retries(make_daemon, gateway, db, tmp_path):
    d = make_recon(make_daemon, gateway, tmp_path)
    gateway.fail_next(50, status=500, retry_after=0)
    p = reconcile(d, expect=1)
    assert "failed" in p.stderr and "HTTP 500" in p.stderr, p.stderr
    ps = last_pass(db)
    assert ps["result"] == "failed" and ps["errors"] == 1 and "500" in ps["note"]
    # The first try and 4 retries, then it gives up: the gateway is down, so the
    # pass ends rather than try the other statuses' sweeps.
    assert len(gateway.requests) == 5


def test_wrong_api_key_fails_fast_and_never_logs_the_key(make_daemon, gateway, db, tmp_path):
    gateway.api_key = "a_different_key"
    d = make_recon(make_daemon, gateway, tmp_path)
    for i in range(20):
        add_local(db, bh.new_invoice(f"key{i}"), "pending", age_s=600)
    p = reconcile(d, "--verbose", expect=1)
    assert "API key" in p.stderr or "401" in p.stderr, p.stderr
    ps = last_pass(db)
    assert ps["result"] == "failed" and "401" in ps["note"]
    # One refusal says it all: the pass stops instead of asking about every invoice.
    assert len(gateway.requests) <= 8, len(gateway.requests)
    assert bh.DEFAULT_API_KEY not in p.stdout + p.stderr + d.log()


def test_malformed_answer_is_a_clear_error(make_daemon, gateway, db, tmp_path):
    inv = bh.new_invoice("bad")
    gateway.add_payment(inv, status="paid")
    d = make_recon(make_daemon, gateway, tmp_path)
    gateway.fail_next(1, status=200, body={"success": True, "data": "nope"})
    p = reconcile(d, expect=1)
    assert "list-payments page 1" in p.stderr and "data" in p.stderr, p.stderr
    assert last_pass(db)["result"] == "failed"


def start_slow_pass(make_daemon, gateway, db, tmp_path, tag):
    """`reconcile --once` started in the background on 5 pending payments
    (each one a check-payment) at 3 requests a minute: a pass that lasts."""
    d = make_recon(make_daemon, gateway, tmp_path,
                   config={"reconciler": {"max_requests_per_minute": "3"}})
    for i in range(5):
        inv = bh.new_invoice(f"{tag}{i}")
        gateway.add_payment(inv, status="pending")
        add_local(db, inv, "pending", age_s=600)
    argv = [bh.BIN, "-c", d.config_path, "reconcile", "--once"]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=d.env,
                            text=True)


def test_rate_limit_is_respected(make_daemon, gateway, db, tmp_path):
    # 8 requests at 3 per minute: the 4th waits until a minute after the 1st.
    # Too slow for every run; the limit itself is what is checked.
    child = start_slow_pass(make_daemon, gateway, db, tmp_path, "rl")
    try:
        gateway.wait_requests(3, timeout=20)
        time.sleep(3)
        assert len(gateway.requests) == 3  # the bucket is empty for the rest of the minute
    finally:
        child.terminate()
        out, err = child.communicate(timeout=30)
    assert child.returncode == 1, (out, err)
    assert bh.sanitizer_errors(err) == []
    # SIGTERM ends the pass cleanly, recorded as aborted, the lease released.
    ps = last_pass(db)
    assert ps["result"] == "aborted" and ps["finished_at"] is not None, ps
    lease = db.query("SELECT owner, expires_at < now() AS free FROM bayarhook.reconcile_lease")
    assert lease == [{"owner": None, "free": True}], lease


def test_one_process_reconciles_at_a_time(make_daemon, gateway, db, tmp_path):
    inv = bh.new_invoice("lock")
    gateway.add_payment(inv, status="paid")
    d = make_recon(make_daemon, gateway, tmp_path)
    # A live holder: its lease has not expired.
    db.execute("UPDATE bayarhook.reconcile_lease SET owner = 'otherhost:1:ab',"
               " expires_at = now() + interval '1 hour'")
    p = reconcile(d, expect=1)
    assert "another process is reconciling" in p.stderr and "otherhost:1:ab" in p.stderr
    assert gateway.requests == []
    assert db.payment(inv) is None
    # A holder that died: its lease expired, the next pass takes it.
    db.execute("UPDATE bayarhook.reconcile_lease SET expires_at = now() - interval '1 second'")
    reconcile(d)
    assert db.payment(inv)["status"] == "paid"
    assert db.query("SELECT owner FROM bayarhook.reconcile_lease") == [{"owner": None}]


def test_a_pass_whose_lease_is_taken_over_stops(make_daemon, gateway, db, tmp_path):
    """The lease is renewed during a pass; one found taken over (this process
    stalled past its expiry) ends the pass, so that two never run on."""
    child = start_slow_pass(make_daemon, gateway, db, tmp_path, "lease")
    try:
        bh.wait_for(lambda: db.scalar("SELECT owner FROM bayarhook.reconcile_lease"), 20,
                    what="the pass to take the lease")
        gateway.wait_requests(3, timeout=20)
        db.execute("UPDATE bayarhook.reconcile_lease SET owner = 'thief:1:00',"
                   " expires_at = now() + interval '1 hour'")
        out, err = child.communicate(timeout=60)  # the next renewal, 10 s at most
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 1, (out, err)
    assert bh.sanitizer_errors(err) == []
    assert "taken over" in err, err
    ps = last_pass(db)
    assert ps["result"] == "failed" and "taken over" in ps["note"], ps
    # Released only by its owner: the thief keeps it.
    assert db.scalar("SELECT owner FROM bayarhook.reconcile_lease") == "thief:1:00"


def test_a_pass_left_running_by_a_dead_process_is_closed(make_daemon, gateway, db, tmp_path):
    d = make_recon(make_daemon, gateway, tmp_path)
    db.execute("INSERT INTO bayarhook.reconcile_passes (trigger) VALUES ('serve')")
    reconcile(d)
    rows = db.query("SELECT result, note FROM bayarhook.reconcile_passes ORDER BY id")
    assert rows[0]["result"] == "aborted" and "ended" in rows[0]["note"]
    assert rows[1]["result"] == "completed"


# ---------------------------------------------------------------------------
# pending invoices, and the sweep

def test_pending_invoices(make_daemon, gateway, db, tmp_path):
    still = bh.new_invoice("still")      # pending here and at the gateway
    paid = bh.new_invoice("nowpaid")     # pending here, paid at the gateway
    young = bh.new_invoice("young")      # pending here for less than min_age
    expired = bh.new_invoice("expired")  # pending here, expired at the gateway
    for inv, st in ((still, "pending"), (paid, "paid"), (expired, "expired")):
        gateway.add_payment(inv, status=st)
    # Paid a moment ago: its callback is surely on its way.
    gateway.add_payment(young, status="paid", paid_at=fake_gateway.wib_now())
    d = make_recon(make_daemon, gateway, tmp_path)
    add_local(db, still, age_s=600)
    add_local(db, paid, age_s=600)
    add_local(db, young, age_s=5)
    add_local(db, expired, age_s=600)
    gateway.add_payment(bh.new_invoice("gwpending"), status="pending")  # never listed (paid only)

    p = reconcile(d, "--verbose")
    assert f"checked {still}  still pending" in p.stdout, p.stdout
    assert f"checked {young}  paid less than min_age ago" in p.stdout, p.stdout
    asked = {r["query"]["invoice"] for r in gateway.requests_to("check-payment")}
    assert asked == {still, paid, expired}  # not the young one: its callback may yet come
    # The sweeps list paid and expired ones too: each invoice is handled once a pass.
    assert len(gateway.requests_to("check-payment")) == 3
    assert db.payment(still)["status"] == "pending"
    assert db.count("jobs", "invoice_id = %s", [still]) == 0  # a pending invoice is not fulfilled
    assert db.payment(paid)["status"] == "paid" and db.count("jobs", "invoice_id = %s", [paid]) == 1
    assert db.payment(expired)["status"] == "expired"
    assert db.count("jobs", "invoice_id = %s", [expired]) == 0
    assert db.payment(young)["status"] == "pending"
    ps = last_pass(db)
    assert (ps["checked"], ps["found"], ps["result"]) == (3, 2, "completed")


def bh_wib_days_ago(days):
    return datetime.datetime.now(datetime.timezone(datetime.timedelta(hours=7))) \
        - datetime.timedelta(days=days)


def test_three_pages_are_swept_completely(make_daemon, gateway, db, tmp_path):
    invs = [bh.new_invoice(f"p{i:03d}") for i in range(250)]
    for i, inv in enumerate(invs):
        gateway.add_payment(inv, status="paid", final_amount=50000 + i,
                            created_at=bh_wib_days_ago(0) - datetime.timedelta(seconds=i))
    d = make_recon(make_daemon, gateway, tmp_path)
    # 10 of them are already paid here: the sweep skips them without recording them.
    for inv in invs[:10]:
        add_local(db, inv, status="paid", age_s=100)
    # Outside lookback + 1 day: not listed, not found.
    old = bh.new_invoice("old")
    gateway.add_payment(old, status="paid", created_at=bh_wib_days_ago(5))

    p = reconcile(d)
    lists = gateway.requests_to("list-payments")
    paid_pages = [r for r in lists if r["query"]["status"] == "paid"]
    assert sorted(int(r["query"]["page"]) for r in paid_pages) == [1, 2, 3]
    # expired and cancelled: one empty page each
    assert sorted((r["query"]["status"], r["query"]["page"]) for r in lists
                  if r not in paid_pages) == [("cancelled", "1"), ("expired", "1")]
    assert all(r["query"]["limit"] == "100" for r in lists)
    assert gateway.requests_to("check-payment") == []
    assert db.count("payments", "source = 'reconciler' AND status = 'paid'") == 240
    assert db.count("jobs", "source = 'reconciler'") == 240
    assert db.payment(old) is None
    assert float(db.payment(invs[200])["final_amount"]) == 50200
    ps = last_pass(db)
    assert (ps["pages"], ps["checked"], ps["found"], ps["errors"]) == (5, 0, 240, 0)
    assert p.stdout.count("\nfound ") + p.stdout.startswith("found ") == 240


# ---------------------------------------------------------------------------
# confirm_with_api

CONFIRM = {"security": {"confirm_with_api": "true"}}


def test_confirm_with_api_disagreement_runs_nothing(make_daemon, gateway, db, tmp_path):
    inv = bh.new_invoice("disagree")
    gateway.add_payment(inv, status="paid", final_amount=60000)
    d = make_recon(make_daemon, gateway, tmp_path, config=CONFIRM, start=True)
    r = d.callback(inv, final_amount=50123)  # validly signed, but the gateway says 60000
    assert (r.status, r.json) == (200, {"success": True})

    job = bh.wait_for(lambda: db.query("SELECT state, last_error FROM bayarhook.jobs"
                                       " WHERE invoice_id = %s AND state = 'dead'", [inv]), 20,
                      what="the held job to be refused")[0]
    assert "final_amount differs" in job["last_error"] and "60000" in job["last_error"]
    pay = db.payment(inv)
    assert pay["flagged"] and "not confirmed by the gateway" in pay["flag_reason"]
    conf = db.query("SELECT * FROM bayarhook.confirmations WHERE invoice_id = %s", [inv])
    assert len(conf) == 1 and conf[0]["outcome"] == "disagreed"
    assert conf[0]["callback_final_amount"] == "50123"
    assert conf[0]["gateway_final_amount"] == "60000"
    assert "final_amount differs" in conf[0]["reason"]
    # bayarhook audit shows why next to the callback.
    a = d.cli("audit", "--invoice", inv)
    assert a.returncode == 0 and "final_amount differs" in a.stdout, a.stdout
    time.sleep(1.5)
    assert runs(d) == []
    assert bh.DEFAULT_API_KEY not in d.log()


def test_confirm_with_api_agreement_makes_the_job_due(make_daemon, gateway, db, tmp_path):
    inv = bh.new_invoice("agree")
    gateway.add_payment(inv, status="paid", final_amount=50123)
    d = make_recon(make_daemon, gateway, tmp_path, config=CONFIRM, start=True)
    r = d.callback(inv, final_amount=50123)
    assert r.status == 200
    bh.wait_for(lambda: runs(d), 20, what="the confirmed job to run")
    assert runs(d)[0][:2] == [inv, "callback"]
    conf = db.query("SELECT * FROM bayarhook.confirmations WHERE invoice_id = %s", [inv])
    assert [c["outcome"] for c in conf] == ["agreed"]
    assert [r["query"]["invoice"] for r in gateway.requests_to("check-payment")] == [inv]
    assert not db.payment(inv)["flagged"]
    time.sleep(1)
    assert len(runs(d)) == 1


def test_confirm_with_api_holds_until_the_gateway_answers(make_daemon, gateway, db, tmp_path):
    inv = bh.new_invoice("held")
    gateway.add_payment(inv, status="paid", final_amount=50123)
    gateway.fail_next(2, status=503, retry_after=1)
    d = make_recon(make_daemon, gateway, tmp_path, config=CONFIRM, start=True)
    assert d.callback(inv, final_amount=50123).status == 200
    # Held: queued, not run, until check-payment agrees.
    assert db.scalar("SELECT state FROM bayarhook.jobs WHERE invoice_id = %s", [inv]) == "held"
    bh.wait_for(lambda: runs(d), 30, what="the job to run once the gateway answers")
    assert len(runs(d)) == 1


def test_confirm_with_api_unknown_invoice_is_refused(make_daemon, gateway, db, tmp_path):
    inv = bh.new_invoice("unknown")
    d = make_recon(make_daemon, gateway, tmp_path, config=CONFIRM, start=True)
    assert d.callback(inv).status == 200
    bh.wait_for(lambda: db.count("jobs", "invoice_id = %s AND state = 'dead'", [inv]), 20,
                what="the job to be refused")
    assert "does not know" in db.payment(inv)["flag_reason"]
    time.sleep(1)
    assert runs(d) == []


# ---------------------------------------------------------------------------
# the measurements asked for in issues 4 and 11

def test_measure_thousand_invoices_in_each_status(make_daemon, gateway, db, tmp_path):
    n = 1000
    for st in ("paid", "expired", "cancelled"):
        for i in range(n):
            gateway.add_payment(bh.new_invoice(f"m{st[0]}{i:04d}"), status=st,
                                created_at=bh_wib_days_ago(0) - datetime.timedelta(seconds=i))
    d = make_recon(make_daemon, gateway, tmp_path,
                   config={"action.fulfill": {"on": "paid, expired, cancelled"}})
    t0 = time.monotonic()
    p = reconcile(d, timeout=300)
    wall = time.monotonic() - t0
    ps = last_pass(db)
    lists = gateway.requests_to("list-payments")
    checks = len(gateway.requests_to("check-payment"))
    print(f"\nMEASURE: {n} invoices in each of paid, expired, cancelled: {ps['requests']} API "
          f"requests ({len(lists)} list-payments pages + {checks} check-payment), pass "
          f"{(ps['finished_at'] - ps['started_at']).total_seconds():.2f} s, "
          f"command wall time {wall:.2f} s\n{p.stdout.splitlines()[-1]}")
    # Ten pages of 100 per status; the items are recorded as listed.
    assert sorted((r["query"]["status"], int(r["query"]["page"])) for r in lists) == \
        sorted((st, pg) for st in ("paid", "expired", "cancelled") for pg in range(1, 11))
    assert (checks, ps["requests"]) == (0, 30)
    assert ps["found"] == 3 * n and ps["result"] == "completed"
    for st in ("paid", "expired", "cancelled"):
        assert db.count("payments", "source = 'reconciler' AND status = %s", [st]) == n
        assert db.count("jobs", "source = 'reconciler' AND invoice_id IN (SELECT invoice_id"
                                " FROM bayarhook.payments WHERE status = %s)", [st]) == n
    # The next pass: the same 3,000 are known here, so only the pages are read.
    gateway.clear_requests()
    t0 = time.monotonic()
    reconcile(d)
    wall = time.monotonic() - t0
    ps = last_pass(db)
    print(f"MEASURE: next pass over the same {3 * n}: {ps['requests']} API requests, "
          f"pass {(ps['finished_at'] - ps['started_at']).total_seconds():.2f} s, "
          f"command wall time {wall:.2f} s")
    assert (ps["requests"], ps["found"]) == (30, 0)
    assert db.count("jobs") == 3 * n
