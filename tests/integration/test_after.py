"""`after = NAME` (SPEC §9): a job waits held (held_reason 'after') until the
same invoice's NAME job succeeded, then runs; it stays held when NAME's job
is dead; an unknown name or a cycle is a config error.
"""

import bh

OK = {"success": True}


def jobs(db, invoice):
    return {r["action"]: r for r in db.query(
        "SELECT * FROM bayarhook.jobs WHERE invoice_id = %s", [invoice])}


def script(tmp_path, body):
    p = tmp_path / "first.sh"
    p.write_text("#!/bin/sh\n" + body)
    p.chmod(0o755)
    return str(p)


def config(first_cmd):
    return {
        "fulfillment": {"backoff_initial": "1", "max_attempts": "3"},
        # Declared before its predecessor: the order of the file does not matter.
        "action.second": {"type": "sql", "after": "first", "statement":
                          "INSERT INTO runs VALUES (:invoice_id, 'second', clock_timestamp())"},
        "action.first": {"type": "exec", "command": first_cmd},
    }


def test_waits_for_its_predecessor(make_daemon, db, tmp_path):
    db.execute("CREATE TABLE runs (invoice text, action text, at timestamptz)")
    gate = tmp_path / "open"
    # first fails until the test opens the gate: second must wait meanwhile.
    d = make_daemon(config=config(script(tmp_path, f"test -e {gate} || exit 1\n")))
    inv = bh.new_invoice("after")
    assert d.callback(inv).json == OK
    bh.wait_for(lambda: jobs(db, inv).get("first", {}).get("attempts", 0) >= 2,
                30 * bh.SLOW, what="first failing twice")
    sec = jobs(db, inv)["second"]
    assert (sec["state"], sec["held_reason"], sec["attempts"]) == ("held", "after", 0)
    assert db.scalar("SELECT count(*) FROM public.runs") == 0
    gate.write_text("")
    bh.wait_for(lambda: (jobs(db, inv).get("second") or {}).get("state") == "succeeded",
                30 * bh.SLOW, what="second to run after first")
    js = jobs(db, inv)
    assert js["first"]["state"] == "succeeded"
    assert js["second"]["held_reason"] is None
    assert js["second"]["finished_at"] > js["first"]["finished_at"]


def test_held_while_predecessor_is_dead(make_daemon, db, tmp_path):
    db.execute("CREATE TABLE runs (invoice text, action text, at timestamptz)")
    d = make_daemon(config=config(script(tmp_path, "exit 65\n")))  # dead at once
    inv = bh.new_invoice("afterdead")
    assert d.callback(inv).json == OK
    bh.wait_for(lambda: jobs(db, inv).get("first", {}).get("state") == "dead",
                30 * bh.SLOW, what="first dead")
    # Give the queue a positive sign of life: another invoice's first runs.
    inv2 = bh.new_invoice("afterdead2")
    assert d.callback(inv2).json == OK
    bh.wait_for(lambda: jobs(db, inv2).get("first", {}).get("state") == "dead",
                30 * bh.SLOW, what="the next invoice's first")
    sec = jobs(db, inv)["second"]
    assert (sec["state"], sec["held_reason"]) == ("held", "after")
    assert db.scalar("SELECT count(*) FROM public.runs") == 0


def test_config_errors(make_daemon):
    d = make_daemon(start=False, config={
        "action.a": {"type": "sql", "statement": "SELECT 1", "after": "nope"}})
    r = d.cli("check-config")
    assert r.returncode != 0 and "after: no [action.nope]" in r.stderr
    d.update_config({"action.a": {"after": "b"},
                     "action.b": {"type": "sql", "statement": "SELECT 1", "after": "c"},
                     "action.c": {"type": "sql", "statement": "SELECT 1", "after": "a"}})
    r = d.cli("check-config")
    assert r.returncode != 0 and "after: a cycle: a waits for itself" in r.stderr
    d.update_config({"action.c": {"after": "c"}})
    r = d.cli("check-config")
    assert r.returncode != 0 and "after: a cycle: c waits for itself" in r.stderr


def test_a_sql_predecessor_on_this_database_lets_its_successor_go(make_daemon, db):
    # Both run in rounds (taken, run and finished in one transaction): the
    # first's success, committed in its round, lets the second go.
    db.execute("CREATE TABLE runs (invoice text, action text, at timestamptz)")
    d = make_daemon(config={
        "action.second": {"type": "sql", "after": "first", "statement":
                          "INSERT INTO runs VALUES (:invoice_id, 'second', clock_timestamp())"},
        "action.first": {"type": "sql", "statement":
                         "INSERT INTO runs VALUES (:invoice_id, 'first', clock_timestamp())"},
    })
    inv = bh.new_invoice("aftersql")
    assert d.callback(inv).json == OK
    bh.wait_for(lambda: (jobs(db, inv).get("second") or {}).get("state") == "succeeded",
                30 * bh.SLOW, what="second to run after first")
    assert [r[0] for r in db.rows("SELECT action FROM public.runs ORDER BY at")] == \
        ["first", "second"]
    assert db.scalar("SELECT count(*) FROM bayarhook.job_attempts") == 2
