"""The payment's whole life reaches the shop (issue 11, SPEC §5-§7).

Late payments: a `paid` after `expired` or `cancelled` runs the `paid`
actions (one job per invoice, action and triggering status), flagged, and
every action type sees the flag. The callback path: stale but authentic
callbacks keep `signature_valid`, `[security] unsigned = confirm` audits an
unsigned callback without touching the payment, `secret_index` names the
secret that verified a callback. And a database of the previous schema is
carried over by `bayarhook migrate`.

Everything is real: the daemon, PostgreSQL, an exec recorder, a sql action
on the receiver's own database and the bayar.gg docs' PHP handler.
"""

import json
import os
import re
import time

import pytest

import bh
from test_jobs import RECORDER, lines, php_shop, script  # noqa: F401 (php_shop: fixture)

OK = {"success": True}
STALE = {"success": False, "error": "timestamp outside replay window"}
BAD_SIG = {"success": False, "error": "invalid signature"}


def jobs(db, invoice):
    return db.query("SELECT * FROM bayarhook.jobs WHERE invoice_id = %s ORDER BY id", [invoice])


def wait_jobs(db, invoice, n, state="succeeded", timeout=30):
    return bh.wait_for(
        lambda: (lambda js: js if len(js) == n and all(j["state"] == state for j in js)
                 else None)(jobs(db, invoice)),
        timeout * bh.SLOW, what=f"{n} jobs {state}")


def metric(d, name, **labels):
    text = bh.get(d.url("/metrics")).data.decode()
    want = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
                   if labels else "")
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.rsplit(" ", 1)[1])
    raise KeyError(want)


# ---------------------------------------------------------------------------
# late payments

SEEN_SQL = ("INSERT INTO seen (invoice_id, status, flagged, job_id, attempt, source)"
            " VALUES (:invoice_id, :status, :bayarhook_flagged, :bayarhook_job_id::bigint,"
            " :bayarhook_attempt::integer, :bayarhook_source)")


@pytest.mark.parametrize("first", ["expired", "cancelled"])
def test_late_paid_runs_the_paid_actions_flagged(make_daemon, db, tmp_path, php_shop, first):
    """The bug of issue 11: an action on `paid, <first>` ran for <first>, and a
    late `paid` was accepted and flagged, but its action never ran."""
    shop = php_shop()
    db.execute("CREATE TABLE seen (invoice_id text, status text, flagged text, job_id bigint,"
               " attempt integer, source text)")
    out = tmp_path / "exec"
    out.mkdir()
    rec = script(tmp_path / "record.py", RECORDER)
    on = f"paid, {first}"
    d = make_daemon(config={
        "action.deliver": {"type": "exec", "on": on, "command": f"{rec} {out}"},
        "action.remember": {"type": "sql", "on": on, "statement": SEEN_SQL},
        "action.notify_shop": {"type": "forward", "on": on, "url": shop.url},
    })
    inv = bh.new_invoice("late")

    assert d.callback(inv, status=first).json == OK
    before = wait_jobs(db, inv, 3)
    assert {j["status"] for j in before} == {first}
    assert db.payment(inv)["flag"] is None

    r = d.callback(inv, status="paid")
    assert (r.status, r.json) == (200, OK)
    assert db.verdicts(inv) == ["accepted", "accepted"]
    pay = db.payment(inv)
    assert pay["status"] == "paid" and pay["flag"] == f"paid after {first}"
    assert pay["flagged"]

    js = wait_jobs(db, inv, 6)
    by = {(j["action"], j["status"]): j for j in js}
    assert set(by) == {(a, s) for a in ("deliver", "remember", "notify_shop")
                       for s in (first, "paid")}
    assert all(j["trigger_status"] == j["status"] for j in js)

    # exec: BAYARHOOK_FLAGGED, empty before the flag, the reason after it
    runs = [json.loads(ln) for ln in lines(out / "runs.jsonl")]
    assert len(runs) == 2, runs
    env = {r["env"]["BAYAR_STATUS"]: r["env"] for r in runs}
    assert env[first]["BAYARHOOK_FLAGGED"] == ""
    assert env["paid"]["BAYARHOOK_FLAGGED"] == f"paid after {first}"
    assert env["paid"]["BAYARHOOK_JOB_ID"] == str(by[("deliver", "paid")]["id"])

    # sql: :bayarhook_flagged (NULL when none) and the job's own placeholders
    seen = db.query("SELECT * FROM seen ORDER BY job_id")
    assert [(s["status"], s["flagged"]) for s in seen] == [(first, None),
                                                            ("paid", f"paid after {first}")]
    assert [s["job_id"] for s in seen] == [by[("remember", first)]["id"],
                                          by[("remember", "paid")]["id"]]
    assert all(s["attempt"] == 1 and s["source"] == "callback" for s in seen)

    # forward: the PHP handler accepted both; X-Bayarhook-Flagged only on the second
    got = shop.received()
    assert len(got) == 2 and all(g["ok"] for g in got), got
    flagged = {g["data"]["status"]: g["headers"]["flagged"] for g in got}
    assert flagged == {first: None, "paid": f"paid after {first}"}

    # observable: a warning and a metric
    assert re.search(rf"payment flagged invoice={re.escape(inv)} flag=paid after {first}",
                     d.log()), d.log_tail(40)
    assert metric(d, "bayarhook_payments_flagged_total") == 1

    # a duplicate of the late paid adds nothing
    assert d.callback(inv, status="paid").json == {"success": True, "duplicate": True}
    time.sleep(0.5)  # a job made by mistake would be visible by now (NOTIFY wakes the worker)
    assert len(jobs(db, inv)) == 6
    assert metric(d, "bayarhook_payments_flagged_total") == 1


def test_pending_then_paid_is_not_flagged(make_daemon, db, tmp_path):
    """The ordinary life: pending then paid runs the actions of each, no flag."""
    out = tmp_path / "out.txt"
    w = script(tmp_path / "w.py", f"""
        import os, sys
        with open({str(out)!r}, "a") as f:
            f.write(sys.argv[1] + " [" + os.environ["BAYARHOOK_FLAGGED"] + "]\\n")
    """)
    d = make_daemon(config={"action.a": {"type": "exec", "on": "pending, paid",
                                         "command": f"{w} {{status}}"}})
    inv = bh.new_invoice("normal")
    assert d.callback(inv, status="pending").json == OK
    wait_jobs(db, inv, 1)
    assert d.callback(inv, status="paid").json == OK
    wait_jobs(db, inv, 2)
    assert sorted(lines(out)) == ["paid []", "pending []"]
    assert db.payment(inv)["flag"] is None
    assert metric(d, "bayarhook_payments_flagged_total") == 0
    assert "payment flagged" not in d.log()


# ---------------------------------------------------------------------------
# the callback path: unsigned, stale, secret_index

def unsigned_callback(d, inv, status="paid", drop_timestamp=False):
    drop = ("signature", "timestamp") if drop_timestamp else ("signature",)
    body, headers = bh.make_callback(inv, status=status, headers=False, drop=drop)
    return bh.post(d.callback_url, body, headers)


def test_unsigned_confirm_audits_only(make_daemon, db, tmp_path):
    out = tmp_path / "out.txt"
    w = script(tmp_path / "w.py", f"""
        import sys
        with open({str(out)!r}, "a") as f:
            f.write(sys.argv[1] + "\\n")
    """)
    d = make_daemon(config={"security": {"unsigned": "confirm"},
                            "action.a": {"type": "exec", "on": "paid", "command": f"{w} x"}})
    inv = bh.new_invoice("unsigned")
    assert d.callback(inv, status="pending").json == OK

    for drop_timestamp in (False, True):
        r = unsigned_callback(d, inv, drop_timestamp=drop_timestamp)
        assert (r.status, r.json) == (200, OK)
    rows = db.callbacks(inv)
    assert [r["verdict"] for r in rows] == ["accepted", "unsigned", "unsigned"]
    for row in rows[1:]:
        assert row["http_status"] == 200 and row["status"] == "paid"
        assert row["signature_valid"] is False and row["secret_index"] is None
        assert json.loads(row["body"])["invoice_id"] == inv  # the body kept for the audit
    # the body's values touch nothing: still pending, no job
    pay = db.payment(inv)
    assert pay["status"] == "pending" and pay["source"] == "callback"
    assert jobs(db, inv) == []
    # an unknown invoice sent unsigned makes no payment either
    other = bh.new_invoice("unsigned-new")
    assert unsigned_callback(d, other).json == OK
    assert db.payment(other) is None and db.verdicts(other) == ["unsigned"]
    assert metric(d, "bayarhook_http_requests_total", verdict="unsigned") == 3

    # a wrong signature is still refused
    r = d.callback(inv, status="paid", signature="0" * 64)
    assert (r.status, r.json) == (401, BAD_SIG)
    rows = db.wait_callbacks(4, inv)
    assert rows[-1]["verdict"] == "bad_signature" and rows[-1]["signature_valid"] is False
    assert not os.path.exists(out)


def test_unsigned_refused_by_default(daemon, db):
    inv = bh.new_invoice("unsigned-refused")
    r = unsigned_callback(daemon, inv)
    assert (r.status, r.json) == (401, BAD_SIG)
    (row,) = db.wait_callbacks(1, inv)
    assert row["verdict"] == "bad_signature" and row["signature_valid"] is False
    assert db.payment(inv) is None


def test_unsigned_confirm_needs_an_api_key(make_daemon):
    d = make_daemon(start=False, config={"security": {"unsigned": "confirm"},
                                         "gateway": {"api_key_file": None}})
    os.unlink(d.api_key_file)  # else api_key_file's default, api-key, names it
    p = d.cli("check-config")
    assert p.returncode != 0
    assert "unsigned: confirm needs a [gateway] api_key_file (or api_key)" in p.stderr


def test_stale_authentic_and_forged(daemon, db):
    now = int(time.time())
    genuine, forged = bh.new_invoice("stale-ok"), bh.new_invoice("stale-forged")
    r = daemon.callback(genuine, ts=now - 7200)
    assert (r.status, r.json) == (401, STALE)
    r = daemon.callback(forged, ts=now - 7200, secret="whsec_forger")
    assert (r.status, r.json) == (401, BAD_SIG)
    (g,) = db.wait_callbacks(1, genuine)
    (f,) = db.wait_callbacks(1, forged)
    assert (g["verdict"], g["signature_valid"], g["secret_index"]) == \
        ("stale_timestamp", True, 0)
    assert (f["verdict"], f["signature_valid"], f["secret_index"]) == \
        ("bad_signature", False, None)
    assert db.payment(genuine) is None and db.payment(forged) is None


def test_secret_index_names_the_secret(make_daemon, db):
    d = make_daemon(secrets=("whsec_new_current", bh.DEFAULT_SECRET))
    new, old = bh.new_invoice("sec0"), bh.new_invoice("sec1")
    assert d.callback(new, secret="whsec_new_current").json == OK
    assert d.callback(old, secret=bh.DEFAULT_SECRET).json == OK
    assert [(r["verdict"], r["secret_index"], r["signature_valid"])
            for r in db.callbacks(new) + db.callbacks(old)] == \
        [("accepted", 0, True), ("accepted", 1, True)]
    # a duplicate (the batch's slow path) records it too
    assert d.callback(old, secret=bh.DEFAULT_SECRET).json["duplicate"] is True
    assert db.callbacks(old)[-1]["secret_index"] == 1


# ---------------------------------------------------------------------------
# migrating a database of the previous schema

def schema_snapshot(db):
    return (
        db.rows("""SELECT table_name, column_name, data_type, is_generated,
                          generation_expression FROM information_schema.columns
                    WHERE table_schema = 'bayarhook' ORDER BY 1, 2"""),
        db.rows("""SELECT indexname, indexdef FROM pg_indexes
                    WHERE schemaname = 'bayarhook' ORDER BY 1"""),
        db.rows("""SELECT conrelid::regclass::text, conname, pg_get_constraintdef(c.oid)
                     FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
                    WHERE n.nspname = 'bayarhook' ORDER BY 1, 2"""),
        bh.function_defs(db),
        db.rows("SELECT version, name, applied_at FROM bayarhook.schema_version ORDER BY 1"),
    )


def schema_before_005(db):
    """A database as the previous release left it: 001-004 and their data."""
    assert bh.schema_at(db, 4)[-1] == "004_job_states.sql"


def old_payment(db, inv, status, flagged=None):
    event = json.dumps({"event": f"payment.{status}", "invoice_id": inv, "status": status,
                        "amount": 50000, "final_amount": 50123})
    db.execute("INSERT INTO bayarhook.payments (invoice_id, status, source, event, flagged,"
               " flag_reason) VALUES (%s, %s, 'callback', %s, %s, %s)",
               [inv, status, event, flagged is not None, flagged])


def old_job(db, inv, action, trigger, state="pending"):
    return db.scalar("INSERT INTO bayarhook.jobs (invoice_id, action, trigger_status, state,"
                     " event) SELECT %s, %s, %s, %s, event FROM bayarhook.payments"
                     " WHERE invoice_id = %s RETURNING id", [inv, action, trigger, state, inv])


def test_previous_schema_is_carried_over(make_daemon, db, tmp_path):
    schema_before_005(db)
    # Old rows: a job waiting under the one-job-per-invoice rule, one done, and
    # a payment flagged by the old code (paid after expired) whose paid action
    # never ran: the victim.
    waiting, done, victim = (bh.new_invoice(t) for t in ("oldwait", "olddone", "oldvictim"))
    old_payment(db, waiting, "expired")
    old_payment(db, done, "paid")
    old_payment(db, victim, "paid", flagged="paid after expired")
    j_wait = old_job(db, waiting, "a", "expired")
    j_done = old_job(db, done, "a", "paid", state="succeeded")
    j_victim = old_job(db, victim, "a", "expired", state="succeeded")

    out = tmp_path / "out.txt"
    w = script(tmp_path / "w.py", f"""
        import os, sys
        with open({str(out)!r}, "a") as f:
            f.write(os.environ["BAYARHOOK_JOB_ID"] + " " + sys.argv[1] + " ["
                    + os.environ["BAYARHOOK_FLAGGED"] + "]\\n")
    """)
    d = make_daemon(start=False, config={
        "action.a": {"type": "exec", "on": "paid, expired", "command": f"{w} {{status}}"}})
    p = d.migrate()
    assert "applied 005_payment_life.sql" in p.stdout, p.stdout
    # the victim is named (not run unasked: a person may have handled it)
    assert "1 late paid payment(s) never ran their paid actions" in p.stderr, p.stderr

    # every old job has its status: the one that made it, not the payment's
    assert {j["id"]: j["status"] for j in db.query("SELECT id, status FROM bayarhook.jobs")} \
        == {j_wait: "expired", j_done: "paid", j_victim: "expired"}
    assert db.payment(victim)["flag"] == "paid after expired"
    assert db.payment(done)["flag"] is None
    assert db.scalar("SELECT count(*) FROM bayarhook.callbacks") == 0

    snap = schema_snapshot(db)
    p = d.migrate()
    assert "schema is up to date" in p.stdout, p.stdout
    assert schema_snapshot(db) == snap

    # the old pending job still runs, and the new rule applies to old payments
    d.start(migrate=False)
    bh.wait_for(lambda: lines(out), 20 * bh.SLOW, what="the old job to run")
    assert lines(out) == [f"{j_wait} expired []"]
    assert d.callback(waiting, status="paid").json == OK
    js = wait_jobs(db, waiting, 2)
    assert [(j["id"], j["status"]) for j in js][0] == (j_wait, "expired")
    assert js[1]["status"] == "paid"
    bh.wait_for(lambda: len(lines(out)) == 2, 20 * bh.SLOW, what="the late paid job to run")
    assert lines(out)[1] == f"{js[1]['id']} paid [paid after expired]"
    # the victim, replayed as README says, runs its paid action with the flag
    assert len(jobs(db, victim)) == 1
    d.cli("replay", victim, check=True)
    bh.wait_for(lambda: len(lines(out)) == 3, 20 * bh.SLOW, what="the replayed victim")
    (replayed,) = [j for j in jobs(db, victim) if j["replay"]]
    assert replayed["status"] == "paid"
    assert lines(out)[2] == f"{replayed['id']} paid [paid after expired]"
    # the old jobs are still unique per (invoice, action, status)
    with pytest.raises(Exception, match="jobs_once_idx"):
        old_job(db, done, "a", "paid")
