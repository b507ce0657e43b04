"""Fulfillment (issue 3, SPEC §5): the job queue and the exec, sql and forward actions.

Everything is real: the daemon, PostgreSQL, the scripts it runs (they record
their environment, stdin and timing in files), and the shop's PHP handler from
the bayar.gg docs under `php -S`. Assertions are on those files and on
bayarhook.jobs / bayarhook.job_attempts.
"""

import json
import os
import signal
import socket
import stat
import subprocess
import textwrap
import threading
import time

import pytest

import bh

OK = {"success": True}
HERE = os.path.dirname(os.path.abspath(__file__))


# ---------------------------------------------------------------------------
# helpers

def script(path, body):
    """Writes an executable Python script (python3 -S: nothing of site-packages)."""
    with open(path, "w") as f:
        f.write("#!/usr/bin/python3 -S\n" + textwrap.dedent(body))
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(path)


def jobs(db, invoice=None):
    sql = "SELECT * FROM bayarhook.jobs"
    params = []
    if invoice:
        sql += " WHERE invoice_id = %s"
        params.append(invoice)
    return db.query(sql + " ORDER BY id", params)


def attempts(db, job_id):
    return db.query("SELECT * FROM bayarhook.job_attempts WHERE job_id = %s ORDER BY id",
                    [job_id])


def wait_jobs(db, invoice, pred, timeout=30, what="jobs"):
    return bh.wait_for(lambda: (lambda js: js if js and pred(js) else None)(jobs(db, invoice)),
                       timeout * bh.SLOW, what=what)


def all_in(state):
    return lambda js: all(j["state"] == state for j in js)


def lines(path):
    try:
        with open(path) as f:
            return [ln for ln in f.read().splitlines() if ln.strip()]
    except FileNotFoundError:
        return []


def pid_state(pid):
    """The state letter of /proc/PID/stat, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return data[data.rindex(")") + 2]


def zombie_children(pid):
    return [child for child, state in bh.child_processes(pid) if state == "Z"]


class PhpShop:
    """The bayar.gg docs' PHP receiver (php/callback.php) under `php -S`."""

    def __init__(self, workdir, secret, status=None):
        self.port = bh.free_port()
        self.out = os.path.join(str(workdir), "php-received.jsonl")
        self.log = os.path.join(str(workdir), "php-server.log")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CALLBACK_SECRET": secret,
               "CALLBACK_OUT": self.out}
        if status:
            env["CALLBACK_STATUS"] = str(status)
        self._log = open(self.log, "ab")
        self.proc = subprocess.Popen(
            ["php", "-S", f"127.0.0.1:{self.port}", "-t", os.path.join(HERE, "php")],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        bh.wait_for(self._up, 15, what="php -S")

    def _up(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"php -S exited: {bh.tail(self.log)}")
        with socket.create_connection(("127.0.0.1", self.port), timeout=1):
            return True

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/callback.php"

    def received(self):
        return [json.loads(ln) for ln in lines(self.out)]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


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


RECORDER = """
    import json, os, sys
    out = sys.argv[1]
    env = {}
    with open("/proc/self/environ", "rb") as f:
        for item in f.read().split(b"\\0"):
            if item:
                k, _, v = item.partition(b"=")
                env[k.decode()] = v.decode()
    stdin = sys.stdin.read()
    rec = {"argv": sys.argv[1:], "env": env, "stdin": stdin, "pid": os.getpid()}
    with open(os.path.join(out, "runs.jsonl"), "a") as f:
        f.write(json.dumps(rec) + "\\n")
    print("recorded", env.get("BAYAR_INVOICE_ID"))
"""


def shop_table(db):
    db.execute("CREATE TABLE shop_orders (invoice_id text PRIMARY KEY, total numeric NOT NULL,"
               " state text NOT NULL DEFAULT 'new', hits integer NOT NULL DEFAULT 0)")


def add_order(db, invoice, total=50123):
    db.execute("INSERT INTO shop_orders (invoice_id, total) VALUES (%s, %s)", [invoice, total])


SHOP_SQL = ("UPDATE shop_orders SET state = 'paid', hits = hits + 1"
            " WHERE invoice_id = :invoice_id AND total = :final_amount")


def three_actions(tmp_path, shop, extra=None):
    out = tmp_path / "exec"
    out.mkdir(exist_ok=True)
    rec = script(tmp_path / "record.py", RECORDER)
    cfg = {
        "action.deliver": {"type": "exec", "on": "paid", "timeout": "20",
                           "command": f"{rec} {out} --invoice {{invoice_id}} "
                                      "'--amount={final_amount}'"},
        "action.mark_paid": {"type": "sql", "on": "paid", "statement": SHOP_SQL,
                             "expect_rows": "1"},
        "action.notify_shop": {"type": "forward", "on": "paid", "url": shop.url,
                               "sign": "bayar", "timeout": "10"},
    }
    cfg.update(extra or {})
    return cfg, out


# ---------------------------------------------------------------------------
# one paid callback -> every action once

def test_paid_callback_runs_every_action_once(make_daemon, db, tmp_path, php_shop):
    shop = php_shop()
    shop_table(db)
    cfg, out = three_actions(tmp_path, shop)
    d = make_daemon(config=cfg)
    inv = bh.new_invoice("full")
    add_order(db, inv)
    r = d.callback(inv, amount=50000, final_amount=50123)
    assert (r.status, r.json) == (200, OK)

    js = wait_jobs(db, inv, lambda js: len(js) == 3 and all_in("succeeded")(js), 30,
                   "three jobs succeeded")
    by_action = {j["action"]: j for j in js}
    assert set(by_action) == {"deliver", "mark_paid", "notify_shop"}
    for j in js:
        assert j["attempts"] == 1 and j["finished_at"] is not None and j["last_error"] is None
        assert j["lease_owner"] is None

    # exec: once, with its arguments, a clean environment and the event on stdin
    runs = [json.loads(ln) for ln in lines(out / "runs.jsonl")]
    assert len(runs) == 1, runs
    run = runs[0]
    assert run["argv"] == [str(out), "--invoice", inv, "--amount=50123"]
    env = run["env"]
    assert env["BAYAR_INVOICE_ID"] == inv
    assert env["BAYAR_STATUS"] == "paid"
    assert env["BAYAR_AMOUNT"] == "50000"
    assert env["BAYAR_FINAL_AMOUNT"] == "50123"
    assert env["BAYAR_EVENT"] == "payment.paid"
    assert env["BAYAR_CUSTOMER_EMAIL"] == "john@example.com"
    assert env["BAYAR_PAID_REFF_NUM"].startswith("TRX")
    assert env["BAYAR_HAS_FILE"] == "1" and env["BAYAR_HAS_CONTENT"] == ""
    assert env["BAYARHOOK_SOURCE"] == "callback"
    assert env["BAYARHOOK_JOB_ID"] == str(by_action["deliver"]["id"])
    assert env["BAYARHOOK_ATTEMPT"] == "1"
    assert env["PATH"]
    # Nothing of the daemon's own environment leaks in.
    extra = {k for k in env if not k.startswith(("BAYAR_", "BAYARHOOK_"))} - {"PATH"}
    assert extra == set(), extra
    event = json.loads(run["stdin"])
    assert event["invoice_id"] == inv and event["final_amount"] == 50123
    assert event["customer_name"] == "John Doe"

    # sql: the shop's row, changed exactly once
    row = db.query("SELECT state, hits FROM shop_orders WHERE invoice_id = %s", [inv])[0]
    assert row == {"state": "paid", "hits": 1}

    # forward: the PHP sample accepted the signature, with every bayar.gg header
    got = shop.received()
    assert len(got) == 1 and got[0]["ok"], got
    h = got[0]["headers"]
    assert h["content_type"] == "application/json"
    assert h["event"] == "payment.paid"
    assert h["invoice"] == inv
    assert h["job"] == str(by_action["notify_shop"]["id"])
    assert abs(int(h["timestamp"]) - time.time()) < 60
    # The body carries the same fresh timestamp and signature, as bayar.gg's does.
    assert str(got[0]["body_timestamp"]) == h["timestamp"]
    assert got[0]["body_signature"] == h["signature"]
    assert got[0]["data"]["final_amount"] == 50123

    # the attempts: one each, with what each action reports
    a = {j["action"]: attempts(db, j["id"]) for j in js}
    assert all(len(v) == 1 and v[0]["outcome"] == "succeeded" for v in a.values()), a
    assert a["deliver"][0]["exit_code"] == 0
    assert "recorded " + inv in a["deliver"][0]["output"]
    assert a["mark_paid"][0]["row_count"] == 1
    assert a["notify_shop"][0]["http_status"] == 200
    assert json.loads(a["notify_shop"][0]["output"]) == {"success": True}
    assert all(v[0]["finished_at"] >= v[0]["started_at"] for v in a.values())
    # NOTIFY, not a poll: each job started well within a second of its commit.
    for j in js:
        assert (a[j["action"]][0]["started_at"] - j["created_at"]).total_seconds() < 1, a

    # jobs CLI
    p = d.cli("jobs", "--invoice", inv, "--json", check=True)
    listed = json.loads(p.stdout)
    assert {j["action"] for j in listed} == {"deliver", "mark_paid", "notify_shop"}
    assert all(j["state"] == "succeeded" for j in listed)
    for key in ("id", "invoice_id", "action", "state", "attempts", "next_attempt_at",
                "last_error", "created_at", "finished_at"):
        assert key in listed[0]
    p = d.cli("jobs", "--state", "succeeded", check=True)
    assert inv in p.stdout and "deliver" in p.stdout
    assert d.cli("jobs", "--state", "finished").returncode == 2


def test_twenty_concurrent_identical_callbacks_run_each_action_once(make_daemon, db, tmp_path,
                                                                    php_shop):
    shop = php_shop()
    shop_table(db)
    cfg, out = three_actions(tmp_path, shop)
    d = make_daemon(config=cfg)
    inv = bh.new_invoice("many")
    add_order(db, inv)
    body, headers = bh.make_callback(inv, secret=d.secret)
    answers = []
    barrier = threading.Barrier(20)

    def send():
        barrier.wait()
        answers.append(bh.post(d.callback_url, body, headers))

    threads = [threading.Thread(target=send) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(answers) == 20 and all(a.status == 200 for a in answers), answers
    assert sum(1 for a in answers if a.json == OK) == 1

    wait_jobs(db, inv, lambda js: len(js) == 3 and all_in("succeeded")(js), 30)
    time.sleep(1.5)  # anything left to run twice would have by now
    assert len(jobs(db, inv)) == 3
    assert len(lines(out / "runs.jsonl")) == 1
    assert db.scalar("SELECT hits FROM shop_orders WHERE invoice_id = %s", [inv]) == 1
    assert len(shop.received()) == 1
    assert db.count("job_attempts") == 3


# ---------------------------------------------------------------------------
# failures, backoff, dead, retry

def test_failing_script_backs_off_then_dead_then_retry_succeeds(make_daemon, db, tmp_path):
    fixed = tmp_path / "fixed"
    runs = tmp_path / "runs.txt"
    fail = script(tmp_path / "fail.py", f"""
        import os, sys, time
        with open({str(runs)!r}, "a") as f:
            f.write(os.environ["BAYARHOOK_ATTEMPT"] + " " + str(time.time()) + "\\n")
        if not os.path.exists({str(fixed)!r}):
            print("starting fulfilment", flush=True)
            print("boom: card declined", file=sys.stderr)
            sys.exit(3)
        print("fulfilled")
    """)
    # 1 s doubling to 4 s: the nominal delays 1, 2, 4 s have disjoint jitter
    # ranges ([0.5, 1], [1, 2], [2, 4]), so growth is visible without luck.
    d = make_daemon(config={
        "fulfillment": {"backoff_initial": "1", "backoff_max": "4", "max_attempts": "4"},
        "action.ship": {"type": "exec", "command": fail, "timeout": "10"},
    })
    inv = bh.new_invoice("fail")
    assert d.callback(inv).json == OK
    (job,) = wait_jobs(db, inv, all_in("dead"), 40, "the job to be dead")
    assert job["attempts"] == 4
    assert "exit status 3" in job["last_error"] and "boom: card declined" in job["last_error"]
    assert job["finished_at"] is not None

    att = attempts(db, job["id"])
    assert [a["attempt"] for a in att] == [1, 2, 3, 4]
    assert all(a["outcome"] == "failed" and a["exit_code"] == 3 for a in att)
    assert "starting fulfilment" in att[0]["output"] and "boom" in att[0]["output"]
    gaps = [(att[i + 1]["started_at"] - att[i]["finished_at"]).total_seconds()
            for i in range(3)]
    print("retry delays:", gaps)
    lo = [0.5, 1.0, 2.0]
    for g, low in zip(gaps, lo):
        assert low - 0.05 <= g <= 2 * low + 1.0, gaps
    assert gaps[0] < gaps[2] and gaps[1] < gaps[2] + 0.05

    # A dead job waits; retry puts it back with a fresh budget.
    time.sleep(1)
    assert len(lines(runs)) == 4
    fixed.write_text("yes")
    p = d.cli("retry", job["id"], check=True)
    assert str(job["id"]) in p.stdout
    (job2,) = wait_jobs(db, inv, all_in("succeeded"), 20, "the retried job to succeed")
    assert job2["id"] == job["id"] and job2["attempts"] == 1 and job2["last_error"] is None
    att = attempts(db, job["id"])
    assert len(att) == 5 and att[-1]["outcome"] == "succeeded"
    assert lines(runs)[-1].split()[0] == "1"

    # retry refuses what it cannot mean
    p = d.cli("retry", job["id"])
    assert p.returncode == 1 and "already succeeded" in p.stderr
    p = d.cli("retry", "987654321")
    assert p.returncode == 1 and "no job" in p.stderr
    assert d.cli("retry", "abc").returncode == 2
    assert d.cli("retry").returncode == 2


def test_sql_rows_mismatch_rolls_back_and_retries(make_daemon, db):
    shop_table(db)
    d = make_daemon(config={
        "fulfillment": {"backoff_initial": "1", "backoff_max": "1", "max_attempts": "20"},
        "action.mark_paid": {"type": "sql", "statement": SHOP_SQL, "expect_rows": "1"},
        "action.mark_twice": {"type": "sql", "on": "paid", "expect_rows": "1",
                              "statement": "UPDATE shop_orders SET hits = hits + 1"
                                           " WHERE total = :final_amount"},
    })
    inv, other = bh.new_invoice("nomatch"), bh.new_invoice("other")
    add_order(db, other)
    add_order(db, bh.new_invoice("third"))  # same total: mark_twice changes 2 rows
    assert d.callback(inv).json == OK
    bh.wait_for(lambda: all(j["attempts"] >= 2 for j in jobs(db, inv)), 20,
                what="two failed attempts each")
    by = {j["action"]: j for j in jobs(db, inv)}
    assert by["mark_paid"]["state"] in ("pending", "running")
    assert "expected 1 row(s), the statement changed 0" in by["mark_paid"]["last_error"]
    assert "expected 1 row(s), the statement changed 2" in by["mark_twice"]["last_error"]
    # rolled back every time: no hits counted
    assert db.scalar("SELECT sum(hits) FROM shop_orders") == 0
    # the order shows up: the next attempt succeeds
    add_order(db, inv)
    wait_jobs(db, inv, lambda js: {j["action"]: j["state"] for j in js}["mark_paid"]
              == "succeeded", 20)
    assert db.query("SELECT state, hits FROM shop_orders WHERE invoice_id = %s", [inv])[0] == \
        {"state": "paid", "hits": 1}


def test_claimed_job_of_an_unknown_action_is_held_uncounted(make_daemon, db):
    # A job made after the start's hold (a batch in flight during a reload):
    # claimed, then given back uncounted and held (SPEC §7), never failed.
    d = make_daemon(config={
        "fulfillment": {"max_attempts": "1"},
        "action.noop": {"type": "exec", "command": "/bin/true"},
    })
    inv = bh.new_invoice("gone")
    assert d.callback(inv).json == OK
    wait_jobs(db, inv, all_in("succeeded"))
    db.execute("INSERT INTO bayarhook.jobs (invoice_id, action, trigger_status, event, replay)"
               " SELECT invoice_id, 'removed', status, event, true FROM bayarhook.payments"
               " WHERE invoice_id = %s", [inv])
    db.execute("NOTIFY bayarhook_jobs")
    js = wait_jobs(db, inv, lambda js: len(js) == 2 and js[1]["state"] == "held", 15)
    assert js[1]["attempts"] == 0 and js[1]["held_reason"] == "action_removed"
    assert js[1]["last_error"] is None
    (att,) = attempts(db, js[1]["id"])
    assert att["outcome"] == "abandoned" and "not in the config" in att["output"]
    assert f"job held job={js[1]['id']}" in d.log()


# ---------------------------------------------------------------------------
# timeouts and crashes

def test_hanging_script_and_its_child_are_killed_at_timeout(make_daemon, db, tmp_path):
    pids = tmp_path / "pids.txt"
    hang = script(tmp_path / "hang.py", f"""
        import os, subprocess, time
        child = subprocess.Popen(["sleep", "1000"])
        with open({str(pids)!r}, "w") as f:
            f.write(f"{{os.getpid()}} {{child.pid}}\\n")
        print("hanging", flush=True)
        time.sleep(1000)
    """)
    d = make_daemon(config={
        "fulfillment": {"max_attempts": "1"},
        "action.hang": {"type": "exec", "command": hang, "timeout": "2"},
    })
    inv = bh.new_invoice("hang")
    t0 = time.monotonic()
    assert d.callback(inv).json == OK
    bh.wait_for(lambda: lines(pids), 10, what="the script to start")
    leader, child = map(int, lines(pids)[0].split())
    (job,) = wait_jobs(db, inv, all_in("dead"), 20)
    took = time.monotonic() - t0
    assert 2 <= took < 10, took
    (att,) = attempts(db, job["id"])
    assert att["outcome"] == "timeout"
    assert "timed out after 2 s" in job["last_error"]
    assert "hanging" in att["output"]
    # Both gone (a zombie left to init counts as gone: it is dead, only unreaped by pid 1).
    for pid in (leader, child):
        bh.wait_for(lambda pid=pid: pid_state(pid) in (None, "Z"), 10, what=f"pid {pid} dead")
        if pid_state(pid) == "Z":
            with open(f"/proc/{pid}/stat") as f:
                assert int(f.read().rsplit(")", 1)[1].split()[1]) != d.pid
    assert zombie_children(d.pid) == []
    assert d.alive()


def test_sigkill_while_running_then_restart_runs_the_job_again_once(make_daemon, db, tmp_path):
    marker = tmp_path / "first-run"
    done = tmp_path / "done.txt"
    slow = script(tmp_path / "slow.py", f"""
        import os, time
        job = os.environ["BAYARHOOK_JOB_ID"]
        att = os.environ["BAYARHOOK_ATTEMPT"]
        if not os.path.exists({str(marker)!r}):
            with open({str(marker)!r}, "w") as f:
                f.write(f"{{os.getpid()}} {{job}} {{att}}\\n")
            time.sleep(60)
        with open({str(done)!r}, "a") as f:
            f.write(f"{{job}} {{att}}\\n")
    """)
    d = make_daemon(config={"action.slow": {"type": "exec", "command": slow, "timeout": "120"}})
    inv = bh.new_invoice("crash")
    assert d.callback(inv).json == OK
    bh.wait_for(lambda: lines(marker), 10, what="the first run")
    pid, job_id, att = lines(marker)[0].split()
    assert att == "1"
    d.proc.kill()
    d.stop()
    # What systemd does to the rest of the cgroup when the main process dies.
    try:
        os.killpg(int(pid), signal.SIGKILL)
    except ProcessLookupError:
        pass
    (job,) = jobs(db, inv)
    assert job["state"] == "running"

    t0 = time.monotonic()
    d.start()
    # The lease would hold it for 120 + 60 s; the dead local owner is noticed at once.
    (job,) = wait_jobs(db, inv, all_in("succeeded"), 20, "the job to run again")
    assert time.monotonic() - t0 < 20
    assert str(job["id"]) == job_id
    assert job["attempts"] == 2
    assert lines(done) == [f"{job_id} 2"]
    att = attempts(db, job["id"])
    assert [a["outcome"] for a in att] == ["abandoned", "succeeded"]
    time.sleep(1.5)
    assert lines(done) == [f"{job_id} 2"]


def test_sigterm_waits_for_running_jobs(make_daemon, db, tmp_path):
    started = tmp_path / "started"
    s = script(tmp_path / "s.py", f"""
        import time
        open({str(started)!r}, "w").close()
        time.sleep(2)
        print("finished")
    """)
    d = make_daemon(config={"action.s": {"type": "exec", "command": s}})
    inv = bh.new_invoice("term")
    assert d.callback(inv).json == OK
    bh.wait_for(lambda: started.exists(), 10, what="the script")
    d.signal(signal.SIGTERM)
    assert d.proc.wait(20) == 0
    (job,) = jobs(db, inv)
    assert job["state"] == "succeeded"


# ---------------------------------------------------------------------------
# which actions, replay

def test_expired_callback_runs_only_actions_on_expired(make_daemon, db, tmp_path):
    out = tmp_path / "out.txt"
    w = script(tmp_path / "w.py", f"""
        import sys
        with open({str(out)!r}, "a") as f:
            f.write(sys.argv[1] + " " + sys.argv[2] + "\\n")
    """)
    d = make_daemon(config={
        "action.on_paid": {"type": "exec", "on": "paid", "command": f"{w} on_paid {{status}}"},
        "action.on_expired": {"type": "exec", "on": "expired",
                              "command": f"{w} on_expired {{status}}"},
        "action.on_both": {"type": "exec", "on": "paid, expired",
                           "command": f"{w} on_both {{status}}"},
    })
    inv = bh.new_invoice("exp")
    assert d.callback(inv, status="expired").json == OK
    js = wait_jobs(db, inv, lambda js: len(js) == 2 and all_in("succeeded")(js), 20)
    assert {j["action"] for j in js} == {"on_expired", "on_both"}
    assert all(j["trigger_status"] == "expired" for j in js)
    time.sleep(1)
    assert sorted(lines(out)) == ["on_both expired", "on_expired expired"]


def test_replay_adds_new_jobs(make_daemon, db, tmp_path):
    out = tmp_path / "out.txt"
    w = script(tmp_path / "w.py", f"""
        import os, sys
        with open({str(out)!r}, "a") as f:
            f.write(sys.argv[1] + " " + os.environ["BAYARHOOK_JOB_ID"] + "\\n")
    """)
    d = make_daemon(config={
        "action.a": {"type": "exec", "command": f"{w} a"},
        "action.b": {"type": "exec", "command": f"{w} b"},
        "action.x": {"type": "exec", "on": "expired", "command": f"{w} x"},
    })
    inv = bh.new_invoice("replay")
    assert d.callback(inv).json == OK
    wait_jobs(db, inv, lambda js: len(js) == 2 and all_in("succeeded")(js))

    p = d.cli("replay", inv, check=True)
    assert p.stdout.count("queued") == 2
    js = wait_jobs(db, inv, lambda js: len(js) == 4 and all_in("succeeded")(js))
    assert [j["replay"] for j in js] == [False, False, True, True]
    p = d.cli("replay", inv, "--action", "b", check=True)
    js = wait_jobs(db, inv, lambda js: len(js) == 5 and all_in("succeeded")(js))
    assert js[-1]["action"] == "b" and js[-1]["replay"]
    time.sleep(0.5)
    got = sorted(lines(out))
    assert [g.split()[0] for g in got] == ["a", "a", "b", "b", "b"]
    assert len({g.split()[1] for g in got}) == 5  # one run per job id

    p = d.cli("replay", inv, "--action", "x")
    assert p.returncode == 1 and "does not run on status paid" in p.stderr
    p = d.cli("replay", inv, "--action", "nope")
    assert p.returncode == 1
    p = d.cli("replay", "PAY-no-such-invoice")
    assert p.returncode == 1 and "no payment" in p.stderr
    assert d.cli("replay").returncode == 2


# ---------------------------------------------------------------------------
# forward failures

def test_forward_to_a_shop_with_another_secret_is_dead_at_once(make_daemon, db, php_shop):
    # 401: the shop refuses our signature; asking again cannot change that (SPEC §7).
    shop = php_shop(secret="whsec_some_other_secret")
    d = make_daemon(config={
        "fulfillment": {"backoff_initial": "1", "backoff_max": "1", "max_attempts": "2"},
        "action.fwd": {"type": "forward", "url": shop.url, "sign": "bayar"},
    })
    inv = bh.new_invoice("fwd401")
    assert d.callback(inv).json == OK
    (job,) = wait_jobs(db, inv, all_in("dead"), 20)
    assert job["last_error"].startswith("HTTP 401")
    att = attempts(db, job["id"])
    assert [a["http_status"] for a in att] == [401]
    assert "Invalid signature" in att[0]["output"]
    assert len(shop.received()) == 1


def test_forward_with_its_own_secret(make_daemon, db, php_shop, tmp_path):
    shop = php_shop(secret="whsec_shop_secret")
    secret_file = tmp_path / "shop-secret"
    secret_file.write_text("whsec_shop_secret\n")
    os.chmod(secret_file, 0o600)
    d = make_daemon(config={
        "action.fwd": {"type": "forward", "url": shop.url, "sign": "bayar",
                       "secret_file": str(secret_file)},
    })
    inv = bh.new_invoice("fwdown")
    assert d.callback(inv, final_amount="50123.50").json == OK
    wait_jobs(db, inv, all_in("succeeded"), 20)
    (got,) = shop.received()
    assert got["ok"] and got["data"]["final_amount"] == "50123.50"


# ---------------------------------------------------------------------------
# several processes

def test_two_daemons_never_run_the_same_job_at_once(make_daemon, db, tmp_path):
    log = tmp_path / "runs.log"
    lock = tmp_path / "runs.lock"
    w = script(tmp_path / "w.py", f"""
        import fcntl, os, time
        def note(what):
            with open({str(lock)!r}, "a") as l:
                fcntl.flock(l, fcntl.LOCK_EX)
                with open({str(log)!r}, "a") as f:
                    f.write(f"{{what}} {{os.environ['BAYARHOOK_JOB_ID']}} {{time.time():.6f}}"
                            f" {{os.getppid()}}\\n")
        note("start")
        time.sleep(0.2)
        note("end")
    """)
    cfg = {"fulfillment": {"concurrency": "3"},
           "action.a": {"type": "exec", "command": w},
           "action.b": {"type": "exec", "command": w}}
    d1 = make_daemon(config=cfg, name="one")
    d2 = make_daemon(config=cfg, name="two")
    invoices = [bh.new_invoice(f"two{i}") for i in range(20)]
    errors = []

    def send(i, inv):
        try:
            r = (d1 if i % 2 else d2).callback(inv)
            if r.status != 200:
                errors.append(r)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=send, args=(i, inv)) for i, inv in enumerate(invoices)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    bh.wait_for(lambda: db.count("jobs", "state = 'succeeded'") == 40, 60,
                what="40 jobs succeeded")
    time.sleep(0.5)
    runs = {}
    for ln in lines(log):
        what, job, t, ppid = ln.split()
        runs.setdefault(job, []).append((what, float(t), int(ppid)))
    assert len(runs) == 40
    for job, evs in runs.items():
        assert [e[0] for e in evs] == ["start", "end"], (job, evs)
    # no job ran twice, and both processes took part
    runners = {evs[0][2] for evs in runs.values()}
    assert runners == {d1.pid, d2.pid}, runners
    assert db.scalar("SELECT count(DISTINCT runner) FROM bayarhook.job_attempts") == 2
    assert db.count("job_attempts") == 40
    assert d1.alive() and d2.alive()


def test_sigterm_stops_jobs_still_running_after_the_grace_and_puts_them_back(make_daemon, db,
                                                                             tmp_path):
    pids = tmp_path / "pids"
    s = script(tmp_path / "s.py", f"""
        import os, time
        with open({str(pids)!r}, "a") as f:
            f.write(f"{{os.getpid()}} {{os.environ['BAYARHOOK_ATTEMPT']}}\\n")
        time.sleep(300)
    """)
    d = make_daemon(config={"action.s": {"type": "exec", "command": s, "timeout": "600"}})
    inv = bh.new_invoice("grace")
    assert d.callback(inv).json == OK
    bh.wait_for(lambda: lines(pids), 10, what="the script")
    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    assert d.proc.wait(60) == 0
    took = time.monotonic() - t0
    assert 24 <= took < 35, took
    pid = int(lines(pids)[0].split()[0])
    bh.wait_for(lambda: pid_state(pid) in (None, "Z"), 10, what="the script killed")
    (job,) = jobs(db, inv)
    assert job["state"] == "pending" and job["lease_owner"] is None
    assert job["attempts"] == 0  # the interrupted attempt does not count
    (att,) = attempts(db, job["id"])
    assert att["outcome"] == "abandoned" and att["finished_at"] is not None
    assert "stopped and put back" in d.log()


def test_bad_action_is_a_config_error(make_daemon, db, tmp_path):
    d = make_daemon(config={"action.bad": {"type": "exec", "command": "/bin/echo 'unterminated"}},
                    start=False)
    p = d.cli("check-config")
    assert p.returncode == 1
    assert "receiver.conf:" in p.stderr and "command: unterminated" in p.stderr, p.stderr
    d.update_config({"action.bad": {"type": "sql", "command": None,
                                    "statement": "UPDATE t SET a = $1"}})
    p = d.cli("check-config")
    assert p.returncode == 1 and "statement: positional parameter" in p.stderr, p.stderr
    d.update_config({"action.bad": {"type": "exec", "statement": None,
                                    "command": "/bin/echo {invoice_id}"}})
    assert d.cli("check-config").returncode == 0


def test_reload_takes_new_actions_and_refuses_bad_ones(make_daemon, db, tmp_path):
    out = tmp_path / "out.txt"
    w = script(tmp_path / "w.py", f"""
        import sys
        with open({str(out)!r}, "a") as f:
            f.write(" ".join(sys.argv[1:]) + "\\n")
    """)
    d = make_daemon(config={"action.a": {"type": "exec", "command": f"{w} v1 {{invoice_id}}"}})
    inv1 = bh.new_invoice("r1")
    assert d.callback(inv1).json == OK
    wait_jobs(db, inv1, all_in("succeeded"))

    d.update_config({"action.a": {"command": f"{w} v2 {{invoice_id}}"}})
    d.reload()
    bh.wait_for(lambda: "configuration reloaded" in d.log(), 10, what="the reload")
    inv2 = bh.new_invoice("r2")
    assert d.callback(inv2).json == OK
    wait_jobs(db, inv2, all_in("succeeded"))

    d.update_config({"action.a": {"command": f"{w} v3 {{invoice_id"}})
    d.reload()
    bh.wait_for(lambda: "reload failed" in d.log(), 10, what="the refused reload")
    inv3 = bh.new_invoice("r3")
    assert d.callback(inv3).json == OK
    wait_jobs(db, inv3, all_in("succeeded"))
    time.sleep(0.3)
    assert lines(out) == [f"v1 {inv1}", f"v2 {inv2}", f"v2 {inv3}"]


def test_held_jobs_wait_and_cannot_be_forced(make_daemon, db, tmp_path):
    out = tmp_path / "out.txt"
    w = script(tmp_path / "w.py", f"""
        with open({str(out)!r}, "a") as f:
            f.write("ran\\n")
    """)
    d = make_daemon(config={"action.a": {"type": "exec", "command": w}})
    inv = bh.new_invoice("held")
    assert d.callback(inv).json == OK
    wait_jobs(db, inv, all_in("succeeded"))
    # What confirm_with_api leaves until the gateway agrees: a held job (SPEC §6).
    db.execute("INSERT INTO bayarhook.jobs (invoice_id, action, trigger_status, event, replay,"
               " state) SELECT invoice_id, 'a', status, event, true, 'held'"
               " FROM bayarhook.payments WHERE invoice_id = %s", [inv])
    db.execute("NOTIFY bayarhook_jobs")
    time.sleep(2)
    held = db.query("SELECT id, state, attempts FROM bayarhook.jobs WHERE invoice_id = %s"
                    " ORDER BY id DESC LIMIT 1", [inv])[0]
    assert held["state"] == "held" and held["attempts"] == 0
    assert lines(out) == ["ran"]
    p = d.cli("retry", held["id"])
    assert p.returncode == 1 and "confirm" in p.stderr
    p = d.cli("replay", inv)
    assert p.returncode == 1 and "confirm" in p.stderr
    listed = json.loads(d.cli("jobs", "--invoice", inv, "--state", "held", "--json",
                              check=True).stdout)
    assert [j["id"] for j in listed] == [held["id"]] and listed[0]["next_attempt_at"] is None


def test_sql_action_on_another_database(make_daemon, db, pg):
    shop = pg.create_database()
    try:
        shop_table(shop)
        d = make_daemon(config={
            "action.mark_paid": {"type": "sql", "conninfo": shop.conninfo, "statement": SHOP_SQL,
                                 "expect_rows": "1"},
        })
        inv = bh.new_invoice("otherdb")
        add_order(shop, inv)
        assert d.callback(inv).json == OK
        (job,) = wait_jobs(db, inv, all_in("succeeded"))
        assert shop.query("SELECT state, hits FROM shop_orders WHERE invoice_id = %s",
                          [inv])[0] == {"state": "paid", "hits": 1}
        (att,) = attempts(db, job["id"])
        assert att["row_count"] == 1 and att["output"] == "UPDATE 1"
        d.stop()
    finally:
        pg.drop_database(shop.name)


# Other backends than this test's own running a round of sql jobs.
RUN_SQL_BACKENDS = ("SELECT count(*) FROM pg_stat_activity"
                    " WHERE query LIKE '%%bayarhook.job_run_sql(%%' AND pid <> pg_backend_pid()")


def test_sigkill_during_sql_action_commits_it_once(make_daemon, db):
    shop_table(db)
    d = make_daemon(config={
        "action.mark_paid": {"type": "sql", "expect_rows": "1",
                             "statement": "UPDATE shop_orders SET state = 'paid', hits = hits + 1"
                                          " WHERE invoice_id = :invoice_id"
                                          " AND pg_sleep(2) IS NOT NULL"},
    })
    inv = bh.new_invoice("sqlkill")
    add_order(db, inv)
    assert d.callback(inv).json == OK
    # The job is taken, run and finished in one transaction (job_run_sql).
    bh.wait_for(lambda: db.scalar(RUN_SQL_BACKENDS + " AND state = 'active'"), 10,
                what="the statement to run")
    d.proc.kill()
    d.stop()
    # The statement finishes in the server, but its transaction never commits:
    # its backend ends once it finds the client gone.
    bh.wait_for(lambda: db.scalar(RUN_SQL_BACKENDS) == 0, 30,
                what="the killed process's backend to end")
    assert db.scalar("SELECT hits FROM shop_orders WHERE invoice_id = %s", [inv]) == 0
    # Nothing of the attempt cut short was committed: not its effect, not its count.
    assert db.rows("SELECT state, attempts FROM bayarhook.jobs WHERE invoice_id = %s",
                   [inv]) == [("pending", 0)]
    d.start()
    (job,) = wait_jobs(db, inv, all_in("succeeded"), 30)
    assert job["attempts"] == 1
    assert db.scalar("SELECT hits FROM shop_orders WHERE invoice_id = %s", [inv]) == 1
    assert [a["outcome"] for a in attempts(db, job["id"])] == ["succeeded"]
