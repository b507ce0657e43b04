"""Failures retrying cannot fix, and actions that go away (issue 11, SPEC §7).

- exec exit 65 (EX_DATAERR), forward 400/401/403/404/410/422 and sql with
  on_mismatch = dead make the job dead after one attempt; every other
  failure is retried as before. Each dead job is a warning log line and
  bayarhook_jobs_dead_total{action}.
- The pending jobs of an action no longer in the config are held (no attempt
  spent) at start and on every reload, with a warning giving their number;
  they resume when the action returns. A job held for confirm_with_api is
  never released by that.

Real daemon, real PostgreSQL, the PHP shop handler under `php -S`.
"""

import json
import re

import pytest

import bh
from test_jobs import PhpShop, all_in, attempts, jobs, script, wait_jobs

OK = {"success": True}


@pytest.fixture
def php_shop(tmp_path):
    shops = []

    def make(secret=bh.DEFAULT_SECRET, status=None):
        d = tmp_path / f"php{len(shops)}"
        d.mkdir()
        s = PhpShop(d, secret, status)
        shops.append(s)
        return s

    yield make
    for s in shops:
        s.stop()


def by_action(db, inv):
    return {j["action"]: j for j in jobs(db, inv)}


def metric(d, name, action):
    text = bh.get(d.url("/metrics")).data.decode()
    m = re.search(rf'^{name}{{action="{action}"}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


def dead_line(d, job):
    """The warning a dead job leaves (None until it is there)."""
    for ln in d.log().splitlines():
        if f"job dead job={job['id']} " in ln:
            return ln
    return None


# ---------------------------------------------------------------------------
# permanent failures

RETRY_FAST = {"backoff_initial": "1", "backoff_max": "1", "max_attempts": "5"}


def test_exec_exit_65_is_dead_at_once_while_exit_1_retries(make_daemon, db, tmp_path):
    bad = script(tmp_path / "bad.py", """
        import sys
        print("order total does not match", file=sys.stderr)
        sys.exit(65)
    """)
    flaky = script(tmp_path / "flaky.py", """
        import sys
        sys.exit(1)
    """)
    d = make_daemon(config={
        "fulfillment": RETRY_FAST,
        "action.data": {"type": "exec", "command": bad},
        "action.flaky": {"type": "exec", "command": flaky},
    })
    inv = bh.new_invoice("ex65")
    assert d.callback(inv).json == OK
    wait_jobs(db, inv, lambda js: len(js) == 2 and by_action(db, inv)["flaky"]["attempts"] >= 3,
              30, "the exit-1 job to be retried")
    js = by_action(db, inv)
    data, fl = js["data"], js["flaky"]
    assert data["state"] == "dead" and data["attempts"] == 1, data
    assert data["last_error"].startswith("exit status 65")
    assert "order total does not match" in data["last_error"]
    assert [(a["outcome"], a["exit_code"]) for a in attempts(db, data["id"])] == [("failed", 65)]
    assert fl["state"] in ("pending", "running") and fl["attempts"] >= 3, fl
    line = bh.wait_for(lambda: dead_line(d, data), 5, what="the dead job's log line")
    assert ": warning: " in line and f"invoice={inv}" in line and "action=data" in line
    assert "reason=permanent" in line and "exit status 65" in line
    assert dead_line(d, fl) is None
    assert metric(d, "bayarhook_jobs_dead_total", "data") == 1
    assert metric(d, "bayarhook_jobs_dead_total", "flaky") == 0

    # Spent max_attempts: dead too, counted, and said so.
    (fl,) = [j for j in wait_jobs(db, inv, lambda js: all_in("dead")(js), 30) if
             j["action"] == "flaky"]
    assert fl["attempts"] == 5
    line = bh.wait_for(lambda: dead_line(d, fl), 5, what="the dead job's log line")
    assert "reason=max_attempts" in line
    assert metric(d, "bayarhook_jobs_dead_total", "flaky") == 1


def test_forward_404_is_dead_at_once_500_retries(make_daemon, db, php_shop):
    gone, down = php_shop(status=404), php_shop(status=500)
    d = make_daemon(config={
        "fulfillment": RETRY_FAST,
        "action.gone": {"type": "forward", "url": gone.url, "sign": "bayar"},
        "action.down": {"type": "forward", "url": down.url, "sign": "bayar"},
    })
    inv = bh.new_invoice("f404")
    assert d.callback(inv).json == OK
    wait_jobs(db, inv, lambda js: len(js) == 2 and by_action(db, inv)["down"]["attempts"] >= 3,
              30, "the 500 job to be retried")
    js = by_action(db, inv)
    assert js["gone"]["state"] == "dead" and js["gone"]["attempts"] == 1
    assert js["gone"]["last_error"].startswith("HTTP 404")
    assert [a["http_status"] for a in attempts(db, js["gone"]["id"])] == [404]
    assert len(gone.received()) == 1
    assert js["down"]["state"] in ("pending", "running") and len(down.received()) >= 3
    assert metric(d, "bayarhook_jobs_dead_total", "gone") == 1
    assert metric(d, "bayarhook_jobs_dead_total", "down") == 0


def test_sql_on_mismatch_dead_or_retry(make_daemon, db):
    db.execute("CREATE TABLE shop_orders (invoice_id text PRIMARY KEY, hits integer"
               " NOT NULL DEFAULT 0)")
    stmt = "UPDATE shop_orders SET hits = hits + 1 WHERE invoice_id = :invoice_id"
    d = make_daemon(config={
        "fulfillment": RETRY_FAST,
        "action.strict": {"type": "sql", "statement": stmt, "on_mismatch": "dead"},
        "action.patient": {"type": "sql", "statement": stmt},  # on_mismatch = retry
    })
    p = d.cli("check-config", check=True)
    assert "on_mismatch = dead" in p.stdout and "on_mismatch = retry" in p.stdout
    inv = bh.new_invoice("mism")
    assert d.callback(inv).json == OK  # no order row: 0 rows changed, 1 expected
    wait_jobs(db, inv, lambda js: len(js) == 2 and by_action(db, inv)["patient"]["attempts"] >= 2,
              30, "the retry job to be retried")
    js = by_action(db, inv)
    assert js["strict"]["state"] == "dead" and js["strict"]["attempts"] == 1
    assert "expected 1 row(s), the statement changed 0" in js["strict"]["last_error"]
    assert [a["row_count"] for a in attempts(db, js["strict"]["id"])] == [0]
    assert js["patient"]["state"] in ("pending", "running")
    line = bh.wait_for(lambda: dead_line(d, js["strict"]), 5, what="the dead job's log line")
    assert "reason=permanent" in line
    # The row appears: the patient one succeeds, the strict one stays dead.
    db.execute("INSERT INTO shop_orders (invoice_id) VALUES (%s)", [inv])
    wait_jobs(db, inv, lambda js: by_action(db, inv)["patient"]["state"] == "succeeded", 20)
    assert by_action(db, inv)["strict"]["state"] == "dead"
    assert db.scalar("SELECT hits FROM shop_orders WHERE invoice_id = %s", [inv]) == 1

    d.update_config({"action.strict": {"on_mismatch": "never"}})
    p = d.cli("check-config")
    assert p.returncode == 1
    assert re.search(r"receiver\.conf:\d+: on_mismatch: must be retry or dead", p.stderr), p.stderr


# ---------------------------------------------------------------------------
# actions that go away

def test_removed_action_jobs_are_held_and_resume(make_daemon, db, tmp_path):
    fixed = tmp_path / "fixed"
    ship = script(tmp_path / "ship.py", f"""
        import os, sys
        sys.exit(0 if os.path.exists({str(fixed)!r}) else 1)
    """)
    # A long backoff: after its first failure the job waits, pending.
    d = make_daemon(config={
        "fulfillment": {"backoff_initial": "3600", "backoff_max": "3600", "max_attempts": "5"},
        "action.ship": {"type": "exec", "command": ship},
        "action.other": {"type": "exec", "command": "/bin/true"},
    })
    inv = bh.new_invoice("rm")
    assert d.callback(inv).json == OK
    wait_jobs(db, inv, lambda js: by_action(db, inv).get("ship", {}).get("attempts") == 1
              and by_action(db, inv)["ship"]["state"] == "pending", 20)
    (job,) = [j for j in jobs(db, inv) if j["action"] == "ship"]
    # What confirm_with_api leaves for the same action: held, no reason.
    confirm_id = db.scalar(
        "INSERT INTO bayarhook.jobs (invoice_id, action, trigger_status, event, replay, state)"
        " SELECT invoice_id, 'ship', status, event, true, 'held' FROM bayarhook.payments"
        " WHERE invoice_id = %s RETURNING id", [inv])

    d.update_config({"action.ship": None})
    d.reload()
    bh.wait_for(lambda: "reload: 1 job(s) held because their action is not in the config"
                in d.log(), 10, what="the reload's warning")
    line = [ln for ln in d.log().splitlines() if "job(s) held because" in ln][-1]
    assert ": warning: " in line
    held = db.query("SELECT state, attempts, held_reason FROM bayarhook.jobs WHERE id = %s",
                    [job["id"]])[0]
    assert held == {"state": "held", "attempts": 1, "held_reason": "action_removed"}
    assert len(attempts(db, job["id"])) == 1

    # A restart without the action: still held, still said.
    d.stop()
    d.start()
    bh.wait_for(lambda: "start: 1 job(s) held because" in d.log(), 10, what="the start warning")
    assert db.scalar("SELECT state FROM bayarhook.jobs WHERE id = %s", [job["id"]]) == "held"

    # It comes back (and works now): the job resumes and runs; attempt 2.
    fixed.write_text("yes")
    d.update_config({"action.ship": {"type": "exec", "command": ship}})
    d.reload()
    bh.wait_for(lambda: "reload: 1 held job(s) resumed" in d.log(), 10, what="the resume")
    (done,) = [j for j in wait_jobs(db, inv, lambda js: any(
        j["id"] == job["id"] and j["state"] == "succeeded" for j in js), 20)
        if j["id"] == job["id"]]
    assert done["attempts"] == 2 and done["held_reason"] is None
    # The confirmation hold was not released by it.
    row = db.query("SELECT state, attempts, held_reason FROM bayarhook.jobs WHERE id = %s",
                   [confirm_id])[0]
    assert row == {"state": "held", "attempts": 0, "held_reason": None}


def test_jobs_of_an_action_missing_at_start_are_held(make_daemon, db):
    d = make_daemon(config={"action.keep": {"type": "exec", "command": "/bin/true"}},
                    start=False)
    d.migrate()
    inv = bh.new_invoice("st")
    event = json.dumps({"invoice_id": inv, "status": "paid", "amount": 50000,
                        "final_amount": 50123})
    db.execute("INSERT INTO bayarhook.payments (invoice_id, status, source, event)"
               " VALUES (%s, 'paid', 'callback', %s)", [inv, event])
    gone = db.scalar("INSERT INTO bayarhook.jobs (invoice_id, action, trigger_status, event)"
                     " VALUES (%s, 'gone', 'paid', %s) RETURNING id", [inv, event])
    kept = db.scalar("INSERT INTO bayarhook.jobs (invoice_id, action, trigger_status, event)"
                     " VALUES (%s, 'keep', 'paid', %s) RETURNING id", [inv, event])
    d.start(migrate=False)
    bh.wait_for(lambda: "start: 1 job(s) held because their action is not in the config "
                "(1 held now)" in d.log(), 10, what="the start warning")
    wait_jobs(db, inv, lambda js: {j["id"]: j["state"] for j in js}
              == {gone: "held", kept: "succeeded"}, 15)
    assert db.scalar("SELECT attempts FROM bayarhook.jobs WHERE id = %s", [gone]) == 0
    assert db.count("job_attempts", "job_id = %s", [gone]) == 0
    # bayarhook cancel ends it.
    assert d.cli("cancel", gone).returncode == 0
    assert db.scalar("SELECT state FROM bayarhook.jobs WHERE id = %s", [gone]) == "cancelled"


# ---------------------------------------------------------------------------
# the migration

def test_006_carries_a_version_4_database_over(make_daemon, db):
    """A database at version 4: its held jobs stay confirmation holds, and
    job_finish() is one function again (the old signature would make every
    named call ambiguous)."""
    with db.connect() as c:
        bh.schema_at(db, 4, conn=c)
        # What version 4's functions left: job_finish without p_permanent.
        c.execute("CREATE FUNCTION bayarhook.job_finish(p_job bigint, p_owner text,"
                  " p_attempts integer, p_attempt_id bigint, p_outcome text,"
                  " p_max_attempts integer, p_retry_in double precision,"
                  " p_exit_code integer DEFAULT NULL, p_http_status integer DEFAULT NULL,"
                  " p_row_count bigint DEFAULT NULL, p_output text DEFAULT NULL,"
                  " p_error text DEFAULT NULL) RETURNS TABLE (state text)"
                  " LANGUAGE sql AS 'SELECT NULL::text WHERE false'")
    inv = bh.new_invoice("v4")
    event = json.dumps({"invoice_id": inv, "status": "paid", "final_amount": 50123})
    db.execute("INSERT INTO bayarhook.payments (invoice_id, status, source, event)"
               " VALUES (%s, 'paid', 'callback', %s)", [inv, event])
    held = db.scalar("INSERT INTO bayarhook.jobs (invoice_id, action, trigger_status, event,"
                     " state) VALUES (%s, 'a', 'paid', %s, 'held') RETURNING id", [inv, event])
    d = make_daemon(start=False)
    d.migrate()
    assert db.scalar("SELECT count(*) FROM pg_proc WHERE proname = 'job_finish'") == 1
    assert db.query("SELECT state, held_reason FROM bayarhook.jobs WHERE id = %s", [held]) == \
        [{"state": "held", "held_reason": None}]
    # A confirmation hold is not one of a removed action: job_resume leaves it.
    assert db.scalar("SELECT bayarhook.job_resume(p_actions => ARRAY['a'])") == 0
    assert db.scalar("SELECT state FROM bayarhook.jobs WHERE id = %s", [held]) == "held"
    p = d.migrate()
    assert "schema is up to date" in p.stdout
