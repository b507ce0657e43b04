"""bayarhook behind a transaction-pooling PgBouncer (issue 18, SPEC §12).

Debian's pgbouncer runs as the postgres user in front of the session's
cluster, pool_mode = transaction. There:

- LISTEN cannot deliver: the wake-up finds it out at start, says so, and
  polls every 25 ms, so jobs still start right after the callback's 200;
  with listen_conninfo pointing at PostgreSQL it LISTENs again;
- two daemons reconciling every second never run passes that overlap, and
  once they stopped no lock or lease is left: `reconcile --once` runs;
- `migrate` itself runs through the pooler;
- serve opens exactly pool_size connections (+ concurrency per sql-action
  database), as README documents.
"""

import os
import pwd
import shutil
import statistics
import subprocess
import tempfile
import time

import psycopg
import pytest

import bh

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


class Bouncer:
    def __init__(self, cluster, pool_mode="transaction", pool_size=20):
        self.cluster = cluster
        self.dir = tempfile.mkdtemp(prefix="bayarhook-pgb-")
        self.port = bh.free_port()
        self.ini = os.path.join(self.dir, "pgbouncer.ini")
        self.log = os.path.join(self.dir, "pgbouncer.log")
        with open(os.path.join(self.dir, "userlist.txt"), "w") as f:
            f.write('"postgres" ""\n')
        with open(self.ini, "w") as f:
            f.write(f"""[databases]
* = host={cluster.host} port={cluster.port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {self.dir}/userlist.txt
pool_mode = {pool_mode}
default_pool_size = {pool_size}
max_client_conn = 300
ignore_startup_parameters = extra_float_digits,options
logfile = {self.log}
pidfile = {self.dir}/pgbouncer.pid
""")
        self.as_root = os.geteuid() == 0
        if self.as_root:  # pgbouncer refuses to run as root
            pw = pwd.getpwnam("postgres")
            os.chmod(self.dir, 0o755)
            for name in (self.dir, *[os.path.join(self.dir, n) for n in os.listdir(self.dir)]):
                os.chown(name, pw.pw_uid, pw.pw_gid)
        self.proc = None

    def start(self):
        cmd = [PGBOUNCER, self.ini]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT)

        def accepts():
            if self.proc.poll() is not None:
                raise RuntimeError(f"pgbouncer exited {self.proc.returncode}:\n{bh.tail(self.log)}")
            try:
                with psycopg.connect(self.conninfo("postgres"), connect_timeout=2):
                    return True
            except psycopg.Error:
                return False
        bh.wait_for(accepts, 30, what="pgbouncer to accept connections")
        return self

    def conninfo(self, dbname):
        return (f"host=127.0.0.1 port={self.port} dbname={dbname} user=postgres "
                f"connect_timeout=5")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Target:
    def __init__(self, conninfo):
        self.conninfo = conninfo


@pytest.fixture
def bouncer(pg):
    b = Bouncer(pg).start()
    yield b
    b.stop()


# The action's start, recorded by the action itself on the database's clock
# (the same machine's as the sender's): an sql action, so that no fork and
# exec is counted in the wake-up's time.
START_ACTION = {"type": "sql",
                "statement": "INSERT INTO starts (invoice, at)"
                             " VALUES (:invoice_id, extract(epoch FROM clock_timestamp()))"}


def start_delays(d, db, n=25):
    """Callbacks one at a time; seconds from each 200 to its action's start."""
    answered = {}
    for i in range(n):
        inv = bh.new_invoice(f"pb{i}")
        r = d.callback(inv)
        answered[inv] = time.time()
        assert r.status == 200, r
        # One at a time: the next callback only once this job has started.
        bh.wait_for(lambda: db.scalar("SELECT count(*) FROM starts WHERE invoice = %s",
                                      [inv]) > 0, 30, interval=0.01,
                    what=f"the action of {inv}")
    starts = {r["invoice"]: float(r["at"]) for r in db.query("SELECT invoice, at FROM starts")}
    return sorted(starts[inv] - t for inv, t in answered.items())


def log_has(d, text, timeout=15):
    return bh.wait_for(lambda: text in d.log(), timeout, what=f"log line {text!r}")


def test_transaction_pooling_polls_and_jobs_start_at_once(make_daemon, db, bouncer):
    db.execute("CREATE TABLE starts (invoice text, at float8)")
    d = make_daemon(database=Target(bouncer.conninfo(db.name)),
                    config={"action.start": START_ACTION})
    # migrate went through the pooler too (its lock is transaction-scoped).
    assert db.scalar("SELECT max(version) FROM bayarhook.schema_version") >= 14
    log_has(d, "job wake-up: LISTEN on [database] conninfo does not deliver notifications")
    assert "polling for due jobs every 25 ms" in d.log()
    delays = start_delays(d, db)
    med = statistics.median(delays)
    print(f"\nPGBOUNCER transaction, polling: start after 200 median={med * 1000:.1f} ms "
          f"max={delays[-1] * 1000:.1f} ms n={len(delays)}")
    # The 1 s tick alone would give a median near 500 ms; polling every 25 ms
    # about 15. A bound generous for a loaded machine, far below the tick's.
    assert med < 0.25, delays


def test_listen_conninfo_direct_to_postgresql_listens(make_daemon, db, bouncer):
    db.execute("CREATE TABLE starts (invoice text, at float8)")
    d = make_daemon(database=Target(bouncer.conninfo(db.name)),
                    config={"database": {"listen_conninfo": db.conninfo},
                            "action.start": START_ACTION})
    log_has(d, "job wake-up: LISTEN bayarhook_jobs on [database] listen_conninfo")
    assert "does not deliver notifications" not in d.log()
    delays = start_delays(d, db)
    med = statistics.median(delays)
    print(f"\nPGBOUNCER transaction, listen_conninfo direct: start after 200 "
          f"median={med * 1000:.1f} ms max={delays[-1] * 1000:.1f} ms n={len(delays)}")
    assert med < 0.25, delays


def advisory_locks(db):
    return db.scalar("SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
                     " WHERE l.locktype = 'advisory' AND d.datname = %s", [db.name])


def test_two_daemons_never_overlap_passes_and_leave_no_lock(make_daemon, db, bouncer, gateway,
                                                            tmp_path):
    for i in range(250):  # three list-payments pages a pass
        gateway.add_payment(bh.new_invoice(f"rc{i}"), status="paid")
    conf = {"reconciler": {"enabled": "true", "interval": "1", "max_requests_per_minute": "6000"}}
    daemons = [make_daemon(database=Target(bouncer.conninfo(db.name)), config=conf,
                           gateway_url=gateway.base_url, name=f"r{i}") for i in range(2)]
    bh.wait_for(lambda: db.scalar("SELECT count(*) FROM bayarhook.reconcile_passes"
                                  " WHERE result = 'completed'") >= 12, 120,
                interval=0.5, what="12 completed reconcile passes")
    for d in daemons:
        assert d.stop() == 0
    rows = db.query("SELECT id, runner, result, started_at, finished_at"
                    " FROM bayarhook.reconcile_passes ORDER BY started_at")
    assert all(r["finished_at"] is not None for r in rows), rows
    overlaps = [(a["id"], b["id"]) for a, b in zip(rows, rows[1:])
                if b["started_at"] < a["finished_at"]]
    runners = {r["runner"] for r in rows}
    print(f"\nPGBOUNCER reconcile: passes={len(rows)} runners={len(runners)} "
          f"overlapping={len(overlaps)}")
    assert overlaps == []
    # Every bayarhook stopped: nothing held, the next pass just runs.
    assert advisory_locks(db) == 0
    assert db.query("SELECT owner FROM bayarhook.reconcile_lease") == [{"owner": None}]
    r = daemons[0].cli("reconcile", "--once", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "another process is reconciling" not in r.stdout + r.stderr
    assert advisory_locks(db) == 0


def own_connections(db):
    return db.scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
                     " AND pid <> pg_backend_pid()", [db.name])


@pytest.mark.parametrize("pool_size", [5, 8, 11])
def test_serve_opens_pool_size_connections_plus_sql_action_pools(make_daemon, db, pool_size):
    d = make_daemon(config={"database": {"pool_size": str(pool_size)}})
    log_has(d, f"database connections: pool_size={pool_size} ")
    bh.wait_for(lambda: own_connections(db) == pool_size, 30,
                what=f"{pool_size} connections of serve")
    d.stop()
    # An sql action on [database] conninfo: concurrency more.
    d = make_daemon(config={"database": {"pool_size": str(pool_size)},
                            "fulfillment": {"concurrency": "3"},
                            "action.row": {"type": "sql", "statement": "SELECT 1"}})
    bh.wait_for(lambda: own_connections(db) == pool_size + 3, 30,
                what=f"{pool_size} + 3 connections of serve")
    assert own_connections(db) == pool_size + 3
