"""The reconciler's part of the payment's whole life (issue 11, SPEC §7).

Real PostgreSQL, the real binary, the fake bayar.gg (fake_gateway.py): every
status is swept, so expiries reach `on = expired` actions and a paid invoice
with no callback raises missed_callback; stale-but-authentic and unsigned
callbacks are followed up with check-payment, within the request budget,
and only the gateway's answer acts. The exec action appends one line per
run, so "ran once" is a line count.
"""

import signal
import stat
import time

import bh
import fake_gateway

FOLLOW = {"reconciler": {"enabled": "false", "min_age": "60"}}


def make_life(make_daemon, gateway, tmp_path, config=None, start=False, on="paid"):
    """A daemon whose [action.act] writes 'invoice status source final amount' per run."""
    runs = tmp_path / "runs.txt"
    script = tmp_path / "act.sh"
    script.write_text("#!/bin/sh\n"
                      f'echo "$BAYAR_INVOICE_ID $BAYAR_STATUS $BAYARHOOK_SOURCE'
                      f' $BAYAR_FINAL_AMOUNT $BAYAR_AMOUNT" >> {runs}\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    cfg = {
        "reconciler": {"enabled": "false", "min_age": "60", "lookback": "172800",
                       "max_requests_per_minute": "6000", "interval": "300"},
        "action.act": {"type": "exec", "on": on, "timeout": "10", "command": str(script)},
    }
    for sec, keys in (config or {}).items():
        cfg.setdefault(sec, {}).update(keys)
    d = make_daemon(config=cfg, gateway_url=gateway.base_url, start=start)
    if not start:
        d.migrate()
    d.runs_path = runs
    return d


def runs(d):
    try:
        return [line.split() for line in d.runs_path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return []


def reconcile(d, expect=0):
    p = d.cli("reconcile", "--once", timeout=120)
    assert p.returncode == expect, f"exit {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}"
    return p


def last_pass(db):
    return db.query("SELECT * FROM bayarhook.reconcile_passes ORDER BY id DESC LIMIT 1")[0]


def metric(d, name, label=None):
    """The value of one series on GET /metrics (0 when absent)."""
    text = bh.get(d.url("/metrics")).data.decode()
    want = f'{name}{{outcome="{label}"}}' if label else name
    for line in text.splitlines():
        if line.split(" ")[0] == want:
            return float(line.split(" ")[1])
    return 0.0


def checks_of(gateway, inv):
    return [r for r in gateway.requests_to("check-payment") if r["query"].get("invoice") == inv]


# ---------------------------------------------------------------------------
# every status is swept

def test_expired_never_called_back_runs_on_expired_once(make_daemon, gateway, db, tmp_path):
    exp = bh.new_invoice("expired")
    can = bh.new_invoice("cancelled")
    gateway.add_payment(exp, status="expired", final_amount=70001)
    gateway.add_payment(can, status="cancelled", final_amount=70002)
    d = make_life(make_daemon, gateway, tmp_path, on="expired, cancelled")

    p = reconcile(d)
    assert f"found   {exp}  recorded expired" in p.stdout, p.stdout
    assert f"found   {can}  recorded cancelled" in p.stdout, p.stdout
    for inv, st in ((exp, "expired"), (can, "cancelled")):
        pay = db.payment(inv)
        assert (pay["status"], pay["source"]) == (st, "reconciler")
        assert pay["event"]["event"] == f"payment.{st}"
        assert db.count("jobs", "invoice_id = %s", [inv]) == 1
    assert [r["query"]["status"] for r in gateway.requests_to("list-payments")] == \
        ["paid", "expired", "cancelled"]
    assert gateway.requests_to("check-payment") == []  # the list item is the answer

    d.start(migrate=False)
    bh.wait_for(lambda: len(runs(d)) == 2, 20, what="both actions to run")
    assert sorted(r[:4] for r in runs(d)) == sorted([[exp, "expired", "reconciler", "70001"],
                                                     [can, "cancelled", "reconciler", "70002"]])
    # Sweeping again records nothing more and runs nothing more.
    reconcile(d)
    ps = last_pass(db)
    assert (ps["found"], ps["result"]) == (0, "completed")
    assert db.count("jobs") == 2
    time.sleep(1)
    assert len(runs(d)) == 2
    # Not paid: no missed callback.
    assert metric(d, "bayarhook_missed_callbacks_total") == 0


def test_paid_without_callback_raises_missed_callback(make_daemon, gateway, db, tmp_path):
    inv = bh.new_invoice("missed")
    gateway.add_payment(inv, status="paid", final_amount=50123)
    d = make_life(make_daemon, gateway, tmp_path, start=True,
                  config={"reconciler": {"enabled": "true", "interval": "1"}})
    bh.wait_for(lambda: runs(d), 30, what="the periodic pass to find and fulfil it")
    assert runs(d)[0][:3] == [inv, "paid", "reconciler"]
    bh.wait_for(lambda: metric(d, "bayarhook_missed_callbacks_total") == 1, 10,
                what="missed_callback counted")
    line = [ln for ln in d.log().splitlines() if f"missed callback invoice={inv}" in ln]
    assert len(line) == 1 and "warning" in line[0], line
    # More passes: nothing more recorded, run or counted.
    first = db.scalar("SELECT max(id) FROM bayarhook.reconcile_passes")
    bh.wait_for(lambda: db.count("reconcile_passes", "id > %s AND result = 'completed'",
                                 [first]) >= 2, 20, what="two more passes")
    assert db.count("jobs", "invoice_id = %s", [inv]) == 1
    assert len(runs(d)) == 1
    assert metric(d, "bayarhook_missed_callbacks_total") == 1
    assert db.scalar("SELECT sum(found) FROM bayarhook.reconcile_passes") == 1


def test_sweep_finds_a_late_payment_after_its_expiry(make_daemon, gateway, db, tmp_path):
    inv = bh.new_invoice("late")
    gateway.add_payment(inv, status="expired")
    d = make_life(make_daemon, gateway, tmp_path, on="paid, expired")
    reconcile(d)
    assert db.payment(inv)["status"] == "expired"
    # Paid after it expired, and no callback came: the paid sweep finds it.
    gateway.set_status(inv, "paid", paid_at=fake_gateway.wib_text(time.time() - 600))
    p = reconcile(d)
    assert f"found   {inv}  recorded paid" in p.stdout, p.stdout
    pay = db.payment(inv)
    assert (pay["status"], pay["flag"]) == ("paid", "paid after expired")
    assert f"missed callback invoice={inv}" in p.stderr + d.log()
    d.start(migrate=False)
    bh.wait_for(lambda: len(runs(d)) == 2, 20, what="the expired and the paid action")
    assert sorted(r[1] for r in runs(d)) == ["expired", "paid"]
    reconcile(d)
    assert last_pass(db)["found"] == 0
    time.sleep(1)
    assert len(runs(d)) == 2


def test_check_payment_carries_both_parameters(make_daemon, gateway, db, tmp_path):
    inv = bh.new_invoice("both")
    gateway.add_payment(inv, status="pending")
    d = make_life(make_daemon, gateway, tmp_path)
    db.execute("INSERT INTO bayarhook.payments (invoice_id, status, final_amount, source, event,"
               " first_seen_at) VALUES (%s, 'pending', 50123, 'callback', '{}',"
               " now() - interval '1h')", [inv])
    reconcile(d)
    (r,) = gateway.requests_to("check-payment")
    assert r["query"] == {"invoice": inv, "invoice_id": inv}
    assert r["path"] == f"/api/check-payment.php?invoice={inv}&invoice_id={inv}"


# ---------------------------------------------------------------------------
# stale but authentic, and forged

def test_old_genuine_callback_is_recorded_and_fulfilled_once(make_daemon, gateway, db, tmp_path):
    inv = bh.new_invoice("stale")
    gateway.add_payment(inv, status="paid", amount=50000, final_amount=50123)
    d = make_life(make_daemon, gateway, tmp_path, config=FOLLOW, start=True)
    old = int(time.time()) - 7200
    r = gateway.send_callback(d.callback_url, inv, secret=d.secret, ts=old)
    assert (r.status, r.json["error"]) == (401, "timestamp outside replay window")
    assert db.verdicts(inv) == ["stale_timestamp"]

    bh.wait_for(lambda: runs(d), 20, what="the follow-up to record and fulfil it")
    assert runs(d) == [[inv, "paid", "reconciler", "50123", "50000"]]
    pay = db.payment(inv)
    assert (pay["status"], pay["source"]) == ("paid", "reconciler")
    (ask,) = checks_of(gateway, inv)
    assert ask["query"] == {"invoice": inv, "invoice_id": inv}
    assert metric(d, "bayarhook_followup_checks_total", "recorded") == 1

    # The same old callback again, within min_age: not asked again, nothing more runs.
    r = gateway.send_callback(d.callback_url, inv, secret=d.secret, ts=old)
    assert r.status == 401
    bh.wait_for(lambda: metric(d, "bayarhook_followup_checks_total", "throttled") == 1, 10,
                what="the repeat to be throttled")
    assert len(checks_of(gateway, inv)) == 1
    time.sleep(1)
    assert len(runs(d)) == 1
    assert db.count("jobs", "invoice_id = %s", [inv]) == 1


def test_forged_old_callback_costs_no_gateway_request(make_daemon, gateway, db, tmp_path):
    forged = bh.new_invoice("forged")
    genuine = bh.new_invoice("genuine")
    for inv in (forged, genuine):
        gateway.add_payment(inv, status="paid")
    d = make_life(make_daemon, gateway, tmp_path, config=FOLLOW, start=True)
    old = int(time.time()) - 7200
    r = gateway.send_callback(d.callback_url, forged, secret="whsec_not_the_secret", ts=old)
    assert r.status == 401
    # A genuine one after it: once it has been asked about, the forged one would have been.
    assert gateway.send_callback(d.callback_url, genuine, secret=d.secret, ts=old).status == 401
    bh.wait_for(lambda: runs(d), 20, what="the genuine one to be fulfilled")
    assert [r["query"]["invoice"] for r in gateway.requests_to("check-payment")] == [genuine]
    assert db.payment(forged) is None
    assert [r[0] for r in runs(d)] == [genuine]


# ---------------------------------------------------------------------------
# SIGKILL between the finding and its jobs

def test_sigkill_mid_pass_loses_and_doubles_nothing(make_daemon, gateway, db, tmp_path):
    n_paid, n_exp = 250, 40
    invs = {}
    for i in range(n_paid):
        inv = bh.new_invoice(f"k{i:03d}")
        gateway.add_payment(inv, status="paid")
        invs[inv] = "paid"
    for i in range(n_exp):
        inv = bh.new_invoice(f"x{i:03d}")
        gateway.add_payment(inv, status="expired")
        invs[inv] = "expired"
    db.execute("CREATE TABLE public.fulfilled (invoice_id text NOT NULL, status text NOT NULL)")
    gateway.list_delay = 0.4  # pages come slowly: the kill lands between them
    cfg = {
        "reconciler": {"enabled": "true", "interval": "1", "min_age": "60",
                       "max_requests_per_minute": "6000"},
        # exactly once: the row commits with the job's completion
        "action.book": {"type": "sql", "on": "paid, expired", "expect_rows": "1",
                        "statement": "INSERT INTO public.fulfilled (invoice_id, status)"
                                     " VALUES (:invoice_id, :status)"},
    }
    d = make_daemon(config=cfg, gateway_url=gateway.base_url, start=True)
    bh.wait_for(lambda: db.count("payments") > 0, 30, interval=0.02,
                what="the first findings of the pass")
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait(10)
    d.stop()
    found_before = db.count("payments")
    assert 0 < found_before < len(invs), found_before
    # Each finding committed with its job: none without the other.
    assert db.count("payments p", "NOT EXISTS (SELECT 1 FROM bayarhook.jobs j"
                                  " WHERE j.invoice_id = p.invoice_id)") == 0

    gateway.list_delay = 0
    d.start(migrate=False)
    bh.wait_for(lambda: db.count("jobs", "state = 'succeeded'") == len(invs), 60,
                what="every finding fulfilled after the restart")
    first = db.scalar("SELECT max(id) FROM bayarhook.reconcile_passes")
    bh.wait_for(lambda: db.count("reconcile_passes", "id > %s AND result = 'completed'",
                                 [first]) >= 2, 30, what="two more passes")
    d.stop()
    assert db.count("payments") == len(invs)
    assert db.count("jobs") == len(invs)
    rows = db.query("SELECT invoice_id, status FROM public.fulfilled")
    assert len(rows) == len(invs)
    assert {r["invoice_id"]: r["status"] for r in rows} == invs
    assert db.count("payments", "source = 'reconciler'") == len(invs)


# ---------------------------------------------------------------------------
# [security] unsigned = confirm

def unsigned_daemon(make_daemon, gateway, db, tmp_path, **reconciler):
    return make_life(make_daemon, gateway, tmp_path, start=True,
                     config={"security": {"unsigned": "confirm"}, "reconciler": reconciler})


def send_unsigned(d, inv, **kw):
    """A callback with no signature at all: neither header nor body field."""
    body, hdrs = bh.make_callback(inv, headers=False, drop=("signature", "timestamp"), **kw)
    return bh.post(d.callback_url, body, hdrs)


def test_unsigned_is_fulfilled_with_the_gateways_amounts_once_paid(make_daemon, gateway, db,
                                                                     tmp_path):
    inv = bh.new_invoice("unsigned")
    gateway.add_payment(inv, status="pending", amount=50000, final_amount=50123)
    d = unsigned_daemon(make_daemon, gateway, db, tmp_path, min_age="2")
    r = send_unsigned(d, inv, final_amount=99999, amount=99000)
    assert (r.status, r.json) == (200, {"success": True})
    (row,) = db.callbacks(inv)
    assert row["verdict"] == "unsigned" and "99999" in row["body"]

    # Asked at once; the gateway says pending: nothing recorded, nothing run.
    gateway.wait_requests(1, "check-payment", timeout=10)
    bh.wait_for(lambda: f"invoice={inv} follow-up of a unsigned callback: the gateway says "
                        "pending" in d.log(), 10, what="the pending answer")
    assert db.payment(inv) is None
    assert db.count("jobs", "invoice_id = %s", [inv]) == 0
    assert runs(d) == []

    # It is paid now: the next ask (min_age later) records the gateway's values only.
    gateway.set_status(inv, "paid")
    bh.wait_for(lambda: runs(d), 20, what="the action once the gateway says paid")
    assert runs(d) == [[inv, "paid", "reconciler", "50123", "50000"]]
    pay = db.payment(inv)
    assert (pay["status"], float(pay["final_amount"]), float(pay["amount"])) == \
        ("paid", 50123, 50000)
    assert pay["source"] == "reconciler"
    asks = checks_of(gateway, inv)
    assert len(asks) == 2 and all(a["query"]["invoice_id"] == inv for a in asks)
    time.sleep(1)
    assert len(runs(d)) == 1


def test_unsigned_is_never_fulfilled_while_the_gateway_says_pending(make_daemon, gateway, db,
                                                                   tmp_path):
    inv = bh.new_invoice("stillpending")
    gateway.add_payment(inv, status="pending")
    d = unsigned_daemon(make_daemon, gateway, db, tmp_path, min_age="1")
    assert send_unsigned(d, inv).status == 200
    bh.wait_for(lambda: metric(d, "bayarhook_followup_checks_total", "not_confirmed") == 1, 20,
                what="the follow-up to give up")
    assert len(checks_of(gateway, inv)) == 3  # SOON_MAX_ASKS
    assert db.payment(inv) is None
    assert db.count("jobs") == 0
    assert runs(d) == []


def test_unsigned_asks_are_bounded(make_daemon, gateway, db, tmp_path):
    # 4 requests a minute: unsigned callbacks get 2 of them, the rest wait or are dropped.
    d = unsigned_daemon(make_daemon, gateway, db, tmp_path, min_age="60",
                        max_requests_per_minute="4")
    strangers = [bh.new_invoice(f"flood{i}") for i in range(6)]  # unknown at the gateway
    for inv in strangers:
        assert send_unsigned(d, inv).status == 200
    assert send_unsigned(d, strangers[0]).status == 200  # the same invoice again
    # A wrong signature is still refused, and never asked about.
    bad = bh.new_invoice("badsig")
    gateway.add_payment(bad, status="paid")
    assert gateway.send_callback(d.callback_url, bad, secret="whsec_wrong").status == 401
    gateway.wait_requests(2, "check-payment", timeout=10)
    bh.wait_for(lambda: metric(d, "bayarhook_followup_checks_total", "throttled") >= 3, 10,
                what="the rest throttled")
    # The other half of the budget is still there for a genuine stale callback.
    genuine = bh.new_invoice("genuine")
    gateway.add_payment(genuine, status="paid")
    old = int(time.time()) - 7200
    assert gateway.send_callback(d.callback_url, genuine, secret=d.secret, ts=old).status == 401
    bh.wait_for(lambda: runs(d), 20, what="the genuine stale callback's follow-up")
    time.sleep(2)
    asked = [r["query"]["invoice"] for r in gateway.requests_to("check-payment")]
    assert len([a for a in asked if a in strangers]) == 2, asked
    assert bad not in asked and genuine in asked
    assert len(asked) == 3
