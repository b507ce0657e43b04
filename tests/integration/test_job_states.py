"""Job states (issue 10, SPEC §6): the transition rule, the functions that
move jobs between states, and the migration that made held and cancelled
states of their own.

The rule is one SQL function, bayarhook.job_state_may_change(from, to); a
trigger applies it to every UPDATE of jobs.state. The truth table below is
the contract: every (from, to) pair is checked against the function and
against a real row.
"""

import os
import json

import psycopg
import pytest

import bh

STATES = ["pending", "running", "succeeded", "dead", "held", "cancelled"]

# (from, to) pairs that may happen; every other pair is refused.
ALLOWED = {
    ("pending", "pending"),    # bayarhook retry: due now
    ("pending", "running"),    # job_claim
    ("pending", "held"),       # an action that went away (SPEC §7)
    ("pending", "cancelled"),  # bayarhook cancel
    ("pending", "succeeded"),  # job_run_sql: taken, run and finished in one transaction
    ("pending", "dead"),       # job_run_sql, job_attempt_lost
    ("running", "running"),    # job_claim of a job whose lease ended
    ("running", "pending"),    # job_finish (retry later), job_release
    ("running", "succeeded"),  # job_finish
    ("running", "dead"),       # job_finish after max_attempts
    ("held", "pending"),       # confirm_held: agreed
    ("held", "dead"),          # confirm_held: disagreed
    ("held", "cancelled"),     # bayarhook cancel
    ("dead", "pending"),       # bayarhook retry
    ("dead", "cancelled"),     # bayarhook cancel
}


def migrated(make_daemon, **kw):
    d = make_daemon(start=False, **kw)
    d.migrate()
    return d


def add_payment(db, inv, status="paid"):
    event = json.dumps({"invoice_id": inv, "status": status, "final_amount": 50123})
    db.execute("INSERT INTO bayarhook.payments (invoice_id, status, source, event)"
               " VALUES (%s, %s, 'callback', %s)", [inv, status, event])


def add_job(db, inv, state, action="a", **cols):
    cols = {"invoice_id": inv, "action": action, "trigger_status": "paid", "state": state,
            "replay": True, **cols}
    names = ", ".join(cols)
    marks = ", ".join(["%s"] * len(cols))
    return db.scalar(f"INSERT INTO bayarhook.jobs ({names}, event) SELECT {marks}, event"
                     f" FROM bayarhook.payments WHERE invoice_id = %s RETURNING id",
                     list(cols.values()) + [inv])


def job(db, job_id):
    return db.query("SELECT id, state, attempts, last_error, lease_owner, finished_at,"
                    " next_attempt_at <= now() AS due FROM bayarhook.jobs WHERE id = %s",
                    [job_id])[0]


# ---------------------------------------------------------------------------
# the rule

def test_transition_rule_truth_table(make_daemon, db):
    migrated(make_daemon)
    inv = bh.new_invoice("rule")
    add_payment(db, inv)
    wrong = []
    for f in STATES:
        for t in STATES:
            want = (f, t) in ALLOWED
            got = db.scalar("SELECT bayarhook.job_state_may_change(%s, %s)", [f, t])
            if got is not want:
                wrong.append(f"rule {f} -> {t}: {got}, want {want}")
            # The trigger: the same answer for a real row, whoever writes it.
            jid = add_job(db, inv, f)
            try:
                db.execute("UPDATE bayarhook.jobs SET state = %s WHERE id = %s", [t, jid])
                moved = True
            except psycopg.errors.CheckViolation as e:
                assert "cannot go from" in str(e)
                moved = False
            if moved is not want:
                wrong.append(f"UPDATE {f} -> {t}: {'done' if moved else 'refused'}")
            assert db.scalar("SELECT state FROM bayarhook.jobs WHERE id = %s", [jid]) == \
                (t if moved else f)
    assert not wrong, "\n".join(wrong)
    # Not a state at all, and a missing one.
    assert db.scalar("SELECT bayarhook.job_state_may_change('pending', 'paused')") is False
    assert db.scalar("SELECT bayarhook.job_state_may_change(NULL, 'pending')") is False


def test_columns_other_than_state_are_not_checked(make_daemon, db):
    migrated(make_daemon)
    inv = bh.new_invoice("cols")
    add_payment(db, inv)
    jid = add_job(db, inv, "succeeded")
    db.execute("UPDATE bayarhook.jobs SET last_error = 'note' WHERE id = %s", [jid])
    assert job(db, jid)["last_error"] == "note"


# ---------------------------------------------------------------------------
# the functions, called as the worker, the confirmer and the CLI call them

def claim(db, owner="h:1:s:n", limit=10, leases='{"a": 30}'):
    return db.query("SELECT * FROM bayarhook.job_claim(p_owner => %s, p_limit => %s,"
                    " p_leases => %s, p_default_lease => 90)", [owner, limit, leases])


def finish(db, c, outcome, owner="h:1:s:n", max_attempts=3, retry_in=0.0, **kw):
    args = {"p_job": c["job_id"], "p_owner": owner, "p_attempts": c["attempts"],
            "p_attempt_id": c["attempt_id"], "p_outcome": outcome,
            "p_max_attempts": max_attempts, "p_retry_in": retry_in, **kw}
    named = ", ".join(f"{k} => %s" for k in args)
    return db.rows(f"SELECT state FROM bayarhook.job_finish({named})", list(args.values()))


def test_claim_finish_retry_dead(make_daemon, db):
    migrated(make_daemon)
    inv = bh.new_invoice("fin")
    add_payment(db, inv)
    jid = add_job(db, inv, "pending")
    held = add_job(db, inv, "held")

    (c,) = claim(db)  # the held job is not claimed
    assert (c["job_id"], c["attempts"], c["action"]) == (jid, 1, "a")
    assert json.loads(c["event"])["invoice_id"] == inv
    assert job(db, jid)["state"] == "running" and job(db, held)["state"] == "held"
    assert claim(db) == []

    # A failure before max_attempts: pending again, after the delay asked for.
    assert finish(db, c, "failed", retry_in=3600, p_error="boom", p_exit_code=1) == \
        [("pending",)]
    j = job(db, jid)
    assert (j["state"], j["due"], j["last_error"], j["lease_owner"]) == \
        ("pending", False, "boom", None)
    att = db.query("SELECT * FROM bayarhook.job_attempts WHERE job_id = %s", [jid])
    assert [(a["outcome"], a["exit_code"]) for a in att] == [("failed", 1)]
    # The same outcome again: the claim is gone, nothing changes.
    assert finish(db, c, "succeeded") == []
    assert job(db, jid)["state"] == "pending"

    # Due now, then failing at max_attempts: dead.
    db.execute("UPDATE bayarhook.jobs SET next_attempt_at = now() WHERE id = %s", [jid])
    (c,) = claim(db)
    assert finish(db, c, "failed", max_attempts=2, p_error="again") == [("dead",)]
    j = job(db, jid)
    assert j["state"] == "dead" and j["finished_at"] is not None

    # bayarhook retry: a dead job starts over with its attempts at 0.
    assert db.rows("SELECT * FROM bayarhook.job_retry(p_job => %s)", [jid]) == \
        [("dead", True)]
    j = job(db, jid)
    assert (j["state"], j["attempts"], j["due"], j["finished_at"]) == \
        ("pending", 0, True, None)
    (c,) = claim(db)
    assert finish(db, c, "succeeded", p_row_count=1) == [("succeeded",)]
    # succeeded never changes: retry and cancel refuse.
    assert db.rows("SELECT * FROM bayarhook.job_retry(p_job => %s)", [jid]) == \
        [("succeeded", False)]
    assert db.rows("SELECT * FROM bayarhook.job_cancel(p_job => %s)", [jid]) == \
        [("succeeded", False)]
    assert db.rows("SELECT * FROM bayarhook.job_retry(p_job => 999999)") == []


def test_release_and_expired_owners(make_daemon, db):
    migrated(make_daemon)
    inv = bh.new_invoice("rel")
    add_payment(db, inv)
    jid = add_job(db, inv, "pending")
    (c,) = claim(db, owner="h:1:s:a")
    # Another owner's release changes nothing.
    assert db.rows("SELECT * FROM bayarhook.job_release(p_job => %s, p_owner => 'x',"
                   " p_attempts => 1, p_attempt_id => %s)", [jid, c["attempt_id"]]) == []
    assert db.rows("SELECT * FROM bayarhook.job_release(p_job => %s, p_owner => 'h:1:s:a',"
                   " p_attempts => 1, p_attempt_id => %s)", [jid, c["attempt_id"]]) == [(jid,)]
    j = job(db, jid)
    assert (j["state"], j["attempts"], j["due"]) == ("pending", 0, True)

    # A process of this host that is gone: its leases end at once.
    (c,) = claim(db, owner="h:2:s:b")
    assert db.rows("SELECT * FROM bayarhook.job_local_owners(p_host => 'h', p_scope => 's',"
                   " p_self => 'h:1:s:a')") == [("h:2:s:b",)]
    assert db.rows("SELECT * FROM bayarhook.job_local_owners(p_host => 'h', p_scope => 't',"
                   " p_self => 'h:1:s:a')") == []
    assert db.scalar("SELECT bayarhook.job_expire_owners(p_owners => %s)",
                     ['["h:2:s:b"]']) == 1
    (c2,) = claim(db, owner="h:1:s:a")
    assert (c2["job_id"], c2["attempts"]) == (jid, 2)
    outcomes = db.rows("SELECT attempt, outcome FROM bayarhook.job_attempts"
                       " WHERE job_id = %s ORDER BY id", [jid])
    assert outcomes == [(1, "abandoned"), (1, "abandoned"), (2, None)]
    # The first owner's late outcome is fenced off.
    assert finish(db, c, "succeeded", owner="h:2:s:b") == []


def test_cancel(make_daemon, db):
    migrated(make_daemon)
    inv = bh.new_invoice("cancel")
    add_payment(db, inv)
    for state in ("pending", "held", "dead"):
        jid = add_job(db, inv, state)
        assert db.rows("SELECT * FROM bayarhook.job_cancel(p_job => %s)", [jid]) == \
            [(state, True)]
        j = job(db, jid)
        assert j["state"] == "cancelled" and j["finished_at"] is not None
        # cancelled is final
        assert db.rows("SELECT * FROM bayarhook.job_retry(p_job => %s)", [jid]) == \
            [("cancelled", False)]
    jid = add_job(db, inv, "running")
    assert db.rows("SELECT * FROM bayarhook.job_cancel(p_job => %s)", [jid]) == \
        [("running", False)]


def test_cancel_command(make_daemon, db):
    d = migrated(make_daemon)
    inv = bh.new_invoice("cancelcli")
    add_payment(db, inv)
    jid = add_job(db, inv, "dead")
    p = d.cli("cancel", str(jid))
    assert p.returncode == 0 and f"job {jid} cancelled (was dead)" in p.stdout, p
    p = d.cli("cancel", str(jid))
    assert p.returncode == 1 and "is cancelled" in p.stderr, p
    p = d.cli("retry", str(jid))
    assert p.returncode == 1 and "is cancelled" in p.stderr, p
    assert d.cli("cancel", "999999").returncode == 1
    assert d.cli("cancel", "x").returncode == 2
    listed = json.loads(d.cli("jobs", "--state", "cancelled", "--json", check=True).stdout)
    assert [j["id"] for j in listed] == [jid]


def test_replay_function(make_daemon, db):
    migrated(make_daemon)
    inv = bh.new_invoice("replay")
    actions = json.dumps({"paid": ["b", "a"], "expired": ["x"]})
    assert db.rows("SELECT outcome FROM bayarhook.job_replay(p_invoice => %s,"
                   " p_actions => %s)", [inv, actions]) == [("no_payment",)]
    add_payment(db, inv)
    rows = db.rows("SELECT outcome, status, action FROM bayarhook.job_replay(p_invoice => %s,"
                   " p_actions => %s)", [inv, actions])
    assert rows == [("queued", "paid", "b"), ("queued", "paid", "a")]
    assert db.rows("SELECT outcome, status FROM bayarhook.job_replay(p_invoice => %s,"
                   " p_actions => '{\"expired\": [\"x\"]}')", [inv]) == [("no_action", "paid")]
    add_job(db, inv, "held")
    assert db.rows("SELECT outcome FROM bayarhook.job_replay(p_invoice => %s,"
                   " p_actions => %s)", [inv, actions]) == [("held",)]


def test_confirm_held_moves_only_held_jobs(make_daemon, db):
    migrated(make_daemon)
    inv, bad = bh.new_invoice("agree"), bh.new_invoice("disagree")
    add_payment(db, inv)
    add_payment(db, bad)
    held = add_job(db, inv, "held")
    other = add_job(db, inv, "pending", action="b")
    r = db.rows("SELECT outcome, jobs FROM bayarhook.confirm_held(inv => %s,"
                " gw_status => 'paid', gw_final_amount => '50123', max_unconfirmed => 3)", [inv])
    assert r == [("agreed", 1)]
    assert job(db, held)["state"] == "pending" and job(db, held)["due"]
    assert job(db, other)["state"] == "pending"
    h2 = add_job(db, bad, "held")
    r = db.rows("SELECT outcome, jobs FROM bayarhook.confirm_held(inv => %s,"
                " gw_status => 'paid', gw_final_amount => '1', max_unconfirmed => 3)", [bad])
    assert r == [("disagreed", 1)]
    assert job(db, h2)["state"] == "dead"
    assert "final_amount differs" in job(db, h2)["last_error"]


# ---------------------------------------------------------------------------
# migrate

def _schema(db):
    funcs = bh.function_defs(db)
    triggers = db.rows("""SELECT tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t
                           WHERE tgrelid = 'bayarhook.jobs'::regclass AND NOT tgisinternal
                           ORDER BY 1""")
    checks = db.rows("""SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
                         WHERE conrelid = 'bayarhook.jobs'::regclass ORDER BY 1""")
    versions = db.rows("SELECT version, name, applied_at FROM bayarhook.schema_version"
                       " ORDER BY 1")
    return funcs, triggers, checks, versions


def test_migrate_twice_changes_nothing(make_daemon, db):
    d = migrated(make_daemon)
    first = _schema(db)
    funcs, triggers, _, versions = first
    names = {f.split("(")[0] for f, _ in funcs}
    assert {"bayarhook.job_claim", "bayarhook.job_finish", "bayarhook.job_release",
            "bayarhook.job_retry", "bayarhook.job_replay", "bayarhook.job_cancel",
            "bayarhook.job_expire_owners", "bayarhook.job_state_may_change",
            "bayarhook.confirm_held", "bayarhook.ingest"} <= names, names
    # The job_dead alert's trigger (sql/functions/alerts.sql) beside the state rule.
    assert [t for t, _ in triggers] == ["alerts_job_dead", "jobs_state_rule"]
    # The newest numbered file of sql/, whichever it is now.
    latest = sorted(f for f in os.listdir(os.path.join(bh.SOURCE_DIR, "sql"))
                    if f[:3].isdigit() and f.endswith(".sql"))[-1]
    assert versions[-1][:2] == (int(latest[:3]), latest)
    p = d.migrate()
    assert f"schema is up to date (version {int(latest[:3])})" in p.stdout
    assert _schema(db) == first


def test_migrate_reapplies_the_functions(make_daemon, db):
    """A function changed by hand (or by an older binary) is put back."""
    d = migrated(make_daemon)
    want = _schema(db)
    db.execute("CREATE OR REPLACE FUNCTION bayarhook.job_state_may_change(p_from text,"
               " p_to text) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT true'")
    db.execute("DROP FUNCTION bayarhook.job_cancel(bigint)")
    d.migrate()
    assert _schema(db)[:3] == want[:3]


def test_004_moves_infinity_rows_to_held(make_daemon, db):
    """A database at version 3 (held = pending with next_attempt_at 'infinity')."""
    bh.schema_at(db, 3)
    inv = bh.new_invoice("old")
    add_payment(db, inv)
    old_held = add_job(db, inv, "pending", next_attempt_at="infinity")
    old_pending = add_job(db, inv, "pending", action="b")
    d = make_daemon(start=False)
    p = d.migrate()
    assert "applied 004_job_states.sql" in p.stdout, p.stdout
    j = job(db, old_held)
    assert j["state"] == "held" and j["due"]  # a real time now; its state says it waits
    assert job(db, old_pending)["state"] == "pending"
    assert db.scalar("SELECT count(*) FROM bayarhook.jobs WHERE NOT isfinite(next_attempt_at)") \
        == 0
    # held jobs are what confirm_with_api and bayarhook jobs see
    listed = json.loads(d.cli("jobs", "--state", "held", "--json", check=True).stdout)
    assert [x["id"] for x in listed] == [old_held] and listed[0]["next_attempt_at"] is None


def test_held_jobs_in_the_metrics(make_daemon, db):
    d = make_daemon(config={"action.a": {"type": "exec", "command": "/bin/true"}})
    inv = bh.new_invoice("metrics")
    add_payment(db, inv)
    add_job(db, inv, "held")
    add_job(db, inv, "cancelled")

    def gauges():
        text = bh.get(d.url("/metrics")).data.decode()
        vals = {}
        for line in text.splitlines():
            if line.startswith("bayarhook_jobs{"):
                k, v = line.rsplit(" ", 1)
                vals[k] = float(v)
        return vals if vals.get('bayarhook_jobs{state="held"}') == 1 else None

    vals = bh.wait_for(gauges, 15, interval=0.5, what="the jobs gauges")
    assert vals['bayarhook_jobs{state="cancelled"}'] == 1
    assert vals['bayarhook_jobs{state="pending"}'] == 0


@pytest.mark.parametrize("state", ["held", "cancelled"])
def test_jobs_state_option_accepts_new_states(make_daemon, db, state):
    d = migrated(make_daemon)
    p = d.cli("jobs", "--state", state)
    assert p.returncode == 0, p.stderr
    p = d.cli("jobs", "--state", "paused")
    assert p.returncode == 2 and "held or cancelled" in p.stderr
