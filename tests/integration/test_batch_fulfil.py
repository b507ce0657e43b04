"""Fulfillment in batches (issue 16): the sql action's jobs on the
receiver's own database are taken, run and finished in one transaction, a
subtransaction each (a CALL, which PREPARE does not take, goes the per-job
way: claimed, then the statements of jobs claimed together share one
transaction, a savepoint each); several processes share one queue.

Jobs are made with bayarhook.ingest() itself (what `serve` calls for every
callback) while no daemon runs, so that the first claim takes them all and
they start together: one batch, whatever the machine's speed.
"""
import json

import bh

ACTIONS = {"paid": ["ship"]}


def ingest(db, invoices):
    """Paid callbacks for invoices through bayarhook.ingest(), in one commit."""
    batch = [bh.ingest_item(i, inv) for i, inv in enumerate(invoices)]
    with db.connect() as c:
        c.execute("SELECT count(*) FROM bayarhook.ingest(%s::jsonb, %s::jsonb)",
                  [json.dumps(batch), json.dumps(ACTIONS)])


def settled(db, n):
    return db.count("jobs", "state IN ('succeeded', 'dead')") == n


def test_one_failing_statement_in_a_batch_fails_only_its_job(make_daemon, db):
    d = make_daemon(config={
        "fulfillment": {"concurrency": "16"},
        "action.ship": {"type": "sql", "expect_rows": "1", "max_attempts": "1",
                        "statement": "INSERT INTO shop_paid (invoice_id, total)"
                                     " VALUES (:invoice_id, :final_amount)"},
    }, start=False)
    d.migrate()
    db.execute("CREATE TABLE shop_paid (invoice_id text PRIMARY KEY, total numeric NOT NULL,"
               " CHECK (invoice_id NOT LIKE '%POISON%'))")
    invoices = [bh.new_invoice(f"batch{i}") for i in range(10)]
    invoices[5] = bh.new_invoice("batch5POISON")  # sorts (and gets its id) in place
    ingest(db, invoices)
    assert db.count("jobs", "state = 'pending'") == 10
    d.start(migrate=False)
    bh.wait_for(lambda: settled(db, 10), 60, what="10 jobs settled")

    # The poison's statement failed; it alone is dead (max_attempts = 1).
    dead = db.rows("SELECT invoice_id, last_error FROM bayarhook.jobs WHERE state = 'dead'")
    assert [r[0] for r in dead] == [invoices[5]], dead
    assert "check constraint" in dead[0][1], dead
    # Every other job succeeded, its row written exactly once.
    assert db.count("jobs", "state = 'succeeded'") == 9
    rows = db.rows("SELECT invoice_id FROM shop_paid ORDER BY invoice_id")
    assert sorted(r[0] for r in rows) == sorted(i for i in invoices if "POISON" not in i)
    assert db.count("job_attempts") == 10
    assert db.rows("SELECT a.outcome, count(*) FROM bayarhook.job_attempts a"
                   " GROUP BY 1 ORDER BY 1") == [("failed", 1), ("succeeded", 9)]
    # ... and the poison was rolled back to its savepoint inside a transaction
    # that committed jobs before and after it: job_finish() stamps now(), the
    # transaction's start, so the jobs of one transaction share finished_at
    # (runs go into transactions in claim order, which is job id order).
    poison = db.scalar("SELECT id FROM bayarhook.jobs WHERE state = 'dead'")
    groups = db.rows("SELECT min(id), max(id), count(*) FROM bayarhook.jobs"
                     " WHERE state = 'succeeded' GROUP BY finished_at")
    assert len(groups) < 9, groups
    assert any(lo < poison < hi for lo, hi, _ in groups), (poison, groups)


def test_two_daemons_claim_batches_from_one_queue_and_run_each_job_once(make_daemon, db):
    n = 200
    cfg = {
        "fulfillment": {"concurrency": "4"},
        # 20 ms a statement: one process alone would need seconds, so both take part.
        "action.ship": {"type": "sql", "expect_rows": "1",
                        "statement": "INSERT INTO ran (job_id, invoice_id, backend)"
                                     " SELECT :bayarhook_job_id::bigint, :invoice_id,"
                                     " pg_backend_pid() FROM pg_sleep(0.02)"},
    }
    d1 = make_daemon(config=cfg, name="one", start=False)
    d2 = make_daemon(config=cfg, name="two", start=False)
    d1.migrate()
    # A job run twice would break the primary key (a failed attempt) or add an attempt.
    db.execute("CREATE TABLE ran (job_id bigint PRIMARY KEY, invoice_id text NOT NULL,"
               " backend integer NOT NULL)")
    ingest(db, [bh.new_invoice(f"two{i}") for i in range(n)])
    d1.start(migrate=False, wait=False)
    d2.start(migrate=False, wait=False)
    d1.wait_ready()
    d2.wait_ready()
    bh.wait_for(lambda: settled(db, n), 120, what=f"{n} jobs settled")

    assert db.count("jobs", "state = 'succeeded'") == n
    assert db.scalar("SELECT count(*) FROM ran") == n
    assert db.count("job_attempts") == n
    assert db.count("job_attempts", "outcome <> 'succeeded'") == 0
    assert db.scalar("SELECT count(*) FROM ran r JOIN bayarhook.jobs j ON j.id = r.job_id"
                     " AND j.invoice_id = r.invoice_id") == n
    # Both processes claimed, and in batches: more than one job per claim.
    per_runner = dict(db.rows("SELECT runner, count(*) FROM bayarhook.job_attempts GROUP BY 1"))
    assert len(per_runner) == 2, per_runner
    assert db.scalar("SELECT max(c) FROM (SELECT count(*) AS c FROM bayarhook.job_attempts"
                     " GROUP BY runner, started_at) x") > 1
    assert d1.alive() and d2.alive()


def test_a_job_taken_over_in_a_batch_is_undone_and_the_others_run_again_once(make_daemon, db):
    # CALL is not a statement PREPARE takes: this action's jobs go the
    # per-job way (claimed, running under a lease, their statements sharing
    # a transaction), which is what this test is about.
    d = make_daemon(config={
        "fulfillment": {"concurrency": "16"},
        # The SLOW one's statement sleeps: the window in which its claim is taken.
        "action.ship": {"type": "sql", "expect_rows": "0",
                        "statement": "CALL ship(:invoice_id)"},
    }, start=False)
    d.migrate()
    db.execute("CREATE TABLE shop_paid (invoice_id text PRIMARY KEY)")
    db.execute("CREATE PROCEDURE ship(inv text) LANGUAGE plpgsql AS $$ BEGIN"
               " PERFORM pg_sleep(CASE WHEN inv LIKE '%SLOW%' THEN 5 ELSE 0 END);"
               " INSERT INTO shop_paid (invoice_id) VALUES (inv); END $$")
    invoices = [bh.new_invoice("lease1"), bh.new_invoice("lease2SLOW"), bh.new_invoice("lease3")]
    ingest(db, invoices)
    d.start(migrate=False)
    bh.wait_for(lambda: db.count("jobs", "state = 'running'") == 3, 30, what="3 jobs claimed")
    # Another process takes the SLOW job over (as after its lease ran out).
    taken = db.rows("UPDATE bayarhook.jobs SET lease_owner = 'elsewhere:1:x:y'"
                    " WHERE invoice_id LIKE '%SLOW%' AND state = 'running' RETURNING id")
    assert len(taken) == 1
    bh.wait_for(lambda: db.count("jobs", "state = 'succeeded'") == 2, 60,
                what="the two others succeeded")
    bh.wait_for(lambda: "lease expired" in d.log(), 30, what="the outcome dropped")
    # Its statement was undone with the transaction; the others ran again,
    # in a new one, and took effect once, their attempt counted once.
    assert sorted(r[0] for r in db.rows("SELECT invoice_id FROM shop_paid")) == \
        sorted([invoices[0], invoices[2]])
    assert db.rows("SELECT state, lease_owner FROM bayarhook.jobs WHERE id = %s",
                   [taken[0][0]]) == [("running", "elsewhere:1:x:y")]
    assert db.count("job_attempts") == 3
    assert db.count("job_attempts", "outcome = 'succeeded'") == 2


def test_a_statement_cut_off_by_its_timeout_costs_only_its_own_job_an_attempt(make_daemon, db):
    d = make_daemon(config={
        "fulfillment": {"concurrency": "16"},
        "action.ship": {"type": "sql", "expect_rows": "1", "timeout": "1", "max_attempts": "1",
                        "statement": "INSERT INTO shop_paid (invoice_id) SELECT :invoice_id"
                                     " FROM pg_sleep(CASE WHEN :invoice_id LIKE '%SLOW%'"
                                     " THEN 3 ELSE 0 END)"},
    }, start=False)
    d.migrate()
    db.execute("CREATE TABLE shop_paid (invoice_id text PRIMARY KEY)")
    invoices = [bh.new_invoice(f"cut{i}") for i in range(5)]
    invoices[2] = bh.new_invoice("cut2SLOW")
    ingest(db, invoices)
    d.start(migrate=False)
    bh.wait_for(lambda: settled(db, 5), 60, what="5 jobs settled")

    # The whole transaction was lost to the timeout; the jobs ran again one
    # by one, and only the slow one, cut off again, counts an attempt that failed.
    assert "running them one by one" in d.log()
    dead = db.rows("SELECT j.invoice_id, j.attempts, j.last_error, a.outcome"
                   " FROM bayarhook.jobs j JOIN bayarhook.job_attempts a ON a.job_id = j.id"
                   " WHERE j.state = 'dead'")
    assert len(dead) == 1 and dead[0][:2] == (invoices[2], 1), dead
    assert "statement timeout" in dead[0][2] and dead[0][3] == "timeout", dead
    assert sorted(r[0] for r in db.rows("SELECT invoice_id FROM shop_paid")) == \
        sorted(i for i in invoices if "SLOW" not in i)
    assert db.rows("SELECT outcome, count(*) FROM bayarhook.job_attempts GROUP BY 1 ORDER BY 1") \
        == [("succeeded", 4), ("timeout", 1)]
    assert db.scalar("SELECT max(attempts) FROM bayarhook.jobs") == 1


def ingest_actions(db, invoices, actions):
    batch = [bh.ingest_item(i, inv) for i, inv in enumerate(invoices)]
    with db.connect() as c:
        c.execute("SELECT count(*) FROM bayarhook.ingest(%s::jsonb, %s::jsonb)",
                  [json.dumps(batch), json.dumps({"paid": actions})])


def test_rounds_never_hold_every_slot_from_other_actions(make_daemon, db):
    """SPEC §5: every action gets its job run. Rounds took a slot per sql
    action on the receiver's own database at every wake-up, in config
    order, jobs or not: with as many of them as [fulfillment] concurrency,
    the other actions' jobs and the later sql actions' waited for ever."""
    sql = {"type": "sql", "expect_rows": "1",
           "statement": "INSERT INTO done (action, invoice_id) VALUES (:a, :invoice_id)"}
    cfg = {"fulfillment": {"concurrency": "1"},
           "action.first": dict(sql, statement=sql["statement"].replace(":a", "'first'")),
           "action.second": dict(sql, statement=sql["statement"].replace(":a", "'second'")),
           "action.script": {"type": "exec", "command": "/bin/true"}}
    d = make_daemon(config=cfg, start=False)
    d.migrate()
    db.execute("CREATE TABLE done (action text, invoice_id text, PRIMARY KEY (action, invoice_id))")
    invoices = [bh.new_invoice(f"slot{i}") for i in range(3)]
    ingest_actions(db, invoices, ["first", "second", "script"])
    assert db.count("jobs", "state = 'pending'") == 9
    d.start(migrate=False)
    bh.wait_for(lambda: db.count("jobs", "state = 'succeeded'") == 9, 60,
                what="every job of the three actions succeeded, with one slot")
    assert db.scalar("SELECT count(*) FROM done") == 6
    assert db.count("job_attempts") == 9


def test_a_statement_of_two_commands_runs_neither_twice_nor_in_rounds(make_daemon, db):
    """SPEC §5: the sql action on the receiver's own database is exactly once.
    A statement of two commands went in rounds, where PREPARE (learning the
    types) ran the second one and the job ran both again. Now it goes the
    per-job way, where a prepared statement is one command: the job fails
    and nothing of it is written."""
    d = make_daemon(config={
        "action.ship": {"type": "sql", "max_attempts": "1",
                        "statement": "INSERT INTO t (k) VALUES ('one');"
                                     " INSERT INTO t (k) VALUES (:invoice_id)"},
    }, start=False)
    d.migrate()
    db.execute("CREATE TABLE t (k text)")
    inv = bh.new_invoice("two")
    ingest(db, [inv])
    d.start(migrate=False)
    bh.wait_for(lambda: settled(db, 1), 30, what="the job settled")
    assert db.scalar("SELECT state FROM bayarhook.jobs") == "dead"
    assert "multiple commands" in db.scalar("SELECT last_error FROM bayarhook.jobs")
    assert db.scalar("SELECT count(*) FROM t") == 0
