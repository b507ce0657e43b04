#!/usr/bin/python3
"""bench/fulfil.py: does fulfillment keep up with ingest? (issue 16)

One run on a private PostgreSQL (tests/integration/bh.py's PgCluster:
initdb into a temp dir, fsync on, pg_stat_statements loaded), a fresh
database and daemon per scenario, side by side:

  ceiling  pgbench running bench/pgbench_rows.sql: an accepted callback's
           audit and payment rows written straight into the migrated
           schema, 16 callbacks per commit, 4 clients; no daemon, no HTTP
  dbingest the same pgbench with bayarhook.ingest() called as the daemon
           calls it for 16 callbacks (bench/pgbench_callback.sql's item, 16
           times): the database's rate for the daemon's own SQL, no HTTP
  none     wrk -t2 -c32 (--conns) sending unique signed callbacks as fast as it can
           for D seconds; no actions: the ingest rate (once per --conns value)
  sql      the same with one sql action on the receiver's own database
           (INSERT INTO shop_paid ... VALUES (:invoice_id, :final_amount,
           clock_timestamp()), expect_rows = 1), concurrency 16: the ingest
           rate, and the jobs finished within the same interval per second
  exec     the same with exec command = /bin/true, concurrency 16
  latency  the sql action at a steady RATE callbacks/s (bench/fixed_rate.py)
           for D seconds: shop_paid.done_at - callbacks.received_at, p50/p99

The ingest rate is the accepted callbacks divided by the span of their
payments.first_seen_at (commit-time clock, wrk's counting plays no part);
the fulfillment rate is the jobs that finished within that same span,
divided by it. After each run the backlog is drained (bounded) and how long
that took is reported. pg_stat_statements' top statements of the sql run
say where the database's time went.

Each run also says where the machine's CPU went while wrk (or pgbench)
ran: µs per callback used by the daemon, by PostgreSQL (every backend and
helper process) and by the load generator, how busy the machine was, and
the rate that sum would allow with every core busy. The last table rows
compare that rate with the ceiling: when it is short of 60 %, no
scheduling of the same work reaches the target on this machine.

usage: bench/fulfil.py [--duration D] [--rate RATE] [--only a,b,...] [--keep] [--conns N[,N...]]
                       [--after-migrate SQL]... [--set SECTION.KEY=VALUE]...
       bench/fulfil.py --backlog [-n N] [--concurrency C,...]  (the older
       scenario: N jobs pending before serve starts, then drained)
env:   BENCH_BIN (default build-bench/bayarhook, built when missing)
Bounded: every wait has a timeout, everything started is stopped on exit.
"""
import argparse
import json
import os
import re
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
sys.path.insert(0, HERE)

import bh  # noqa: E402
import run as R  # noqa: E402  (bench/run.py: wrk and callback files)


def binary():
    b = os.environ.get("BENCH_BIN")
    if b:
        return os.path.abspath(b)
    build = os.path.join(SRC, "build-bench")
    path = os.path.join(build, "bayarhook")
    if not os.access(path, os.X_OK):
        subprocess.run(["cmake", "-S", SRC, "-B", build, "-DCMAKE_BUILD_TYPE=Release",
                        "-DBAYARHOOK_TESTS=OFF"], check=True, timeout=300)
        subprocess.run(["cmake", "--build", build, "-j", str(os.cpu_count() or 2)],
                       check=True, timeout=900)
    return path


SQL_ACTION = {"type": "sql", "expect_rows": "1", "timeout": "30",
              "statement": "INSERT INTO shop_paid (invoice_id, total, done_at)"
                           " VALUES (:invoice_id, :final_amount, clock_timestamp())"}
EXEC_ACTION = {"type": "exec", "command": "/bin/true", "timeout": "30"}
# --after-migrate: statements run on each scenario's database after migrate
# (an A/B of storage parameters or indexes with one binary).
AFTER_MIGRATE = []
# --set SECTION.KEY=VALUE: config keys of every daemon the run starts.
EXTRA_CONFIG = {}


def postmaster_pid(pg):
    with open(os.path.join(pg.datadir, "postmaster.pid")) as f:
        return int(f.readline())


def machine_ticks():
    """(all, idle) jiffies of the whole machine since boot (/proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return sum(v), v[3] + v[4]


class Load:
    """Where the CPU went inside the block: the process trees of groups
    (bench/run.py's CpuMeter: the daemon, PostgreSQL with every backend), the
    children this script reaped meanwhile ("client": wrk or pgbench), and the
    share of the machine's time that was busy (/proc/stat)."""

    def __init__(self, groups):
        self.meter = R.CpuMeter(groups)

    def __enter__(self):
        self.meter.__enter__()
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.kids0 = ru.ru_utime + ru.ru_stime
        self.ticks0 = machine_ticks()
        return self

    def __exit__(self, *a):
        self.meter.__exit__(*a)
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        total, idle = machine_ticks()
        self.used = dict(self.meter.used, client=ru.ru_utime + ru.ru_stime - self.kids0)
        span = total - self.ticks0[0]
        self.busy = 1 - (idle - self.ticks0[1]) / span if span else 0

    def per_callback(self, n):
        """{group: CPU µs per callback}, the sum, and the rate that sum allows
        with every core busy: what this path could reach on this machine."""
        us = {k: 1e6 * v / max(n, 1) for k, v in self.used.items()}
        total = sum(us.values())
        return us, total, (os.cpu_count() or 1) * 1e6 / total if total else 0

    def note(self, n, names):
        us, total, bound = self.per_callback(n)
        parts = ", ".join(f"{names[k]} {us[k]:.0f}" for k in names)
        return (f"CPU µs/callback: {parts} = {total:.0f}; machine {100 * self.busy:.0f} % busy;"
                f" with every core busy {bound:.0f}/s")


def live_daemon(pg, workdir, name, secret, action, concurrency=16):
    db = pg.create_database()
    cfg = {"security": {"replay_window": "3600"},
           "fulfillment": {"concurrency": str(concurrency)}}
    if action:
        cfg["action.fulfil"] = dict(action, on="paid")
    for sec, keys in EXTRA_CONFIG.items():
        cfg.setdefault(sec, {}).update(keys)
    d = bh.Daemon(os.path.join(workdir, name), db.conninfo, secrets=(secret,), config=cfg)
    d.migrate()
    for stmt in AFTER_MIGRATE:
        db.execute(stmt)
    db.execute("CREATE TABLE shop_paid (invoice_id text PRIMARY KEY, total numeric NOT NULL,"
               " done_at timestamptz NOT NULL)")
    with db.connect() as c:
        c.execute("CHECKPOINT")
        c.execute("SELECT pg_stat_statements_reset()")
    d.start(migrate=False)
    return db, d


def drain(db, n_jobs, timeout=180):
    """Waits (bounded) for every job to end; returns seconds after the last callback."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # pending and running: their partial indexes, not a scan of every job
        left = db.scalar("SELECT (SELECT count(*) FROM bayarhook.jobs WHERE state = 'pending')"
                         " + (SELECT count(*) FROM bayarhook.jobs WHERE state = 'running')")
        if left == 0:
            break
        time.sleep(0.5)
    else:
        return None
    return float(db.scalar("SELECT extract(epoch FROM (SELECT max(finished_at) FROM bayarhook.jobs)"
                           " - (SELECT max(first_seen_at) FROM bayarhook.payments))") or 0)


def rates(db):
    """(callbacks, span s, ingest/s, jobs finished within the span /s, dead)."""
    n, t0, t1 = db.rows("SELECT count(*), min(first_seen_at), max(first_seen_at)"
                         " FROM bayarhook.payments")[0]
    span = (t1 - t0).total_seconds() if n > 1 else 0
    done = db.scalar("SELECT count(*) FROM bayarhook.jobs WHERE state = 'succeeded'"
                     " AND finished_at BETWEEN %s AND %s", [t0, t1]) if n > 1 else 0
    dead = db.count("jobs", "state = 'dead'")
    return n, span, (n / span if span else 0), (done / span if span else 0), dead


def top_statements(db, k=8):
    rows = db.rows("SELECT calls, round(total_exec_time::numeric, 0),"
                    " round((total_exec_time / calls)::numeric, 3), wal_bytes,"
                    " regexp_replace(left(query, 90), '\\s+', ' ', 'g')"
                    " FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database"
                    " WHERE datname = current_database())"
                    " ORDER BY total_exec_time DESC LIMIT %s", [k])
    out = [f"    {r[1]:>8} ms {r[0]:>8} calls {r[2]:>8} ms/call {int(r[3]) // max(r[0], 1):>7} WAL B/call"
           f"  {r[4]}" for r in rows]
    # Updates that stayed HOT (no index written) out of all, per table.
    for t in db.rows("SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables"
                     " WHERE schemaname = 'bayarhook' AND relname IN ('jobs', 'job_attempts')"
                     " ORDER BY relname"):
        out.append(f"    {t[0]}: {t[1]} inserts, {t[2]} updates, {t[3]} HOT")
    return "\n".join(out)


def http_scenario(pg, workdir, name, secret, action, secs, cb_n):
    db, d = live_daemon(pg, workdir, name, secret, action)
    try:
        cb = R.gen_callbacks(secret, cb_n, f"F{name}{secrets.token_hex(3)}")
        R.raw_requests(cb, d.url(""), "/callback")
        with Load({"daemon": [d.pid], "pg": [postmaster_pid(pg)]}) as load:
            w = R.wrk(d.url(""), "/callback", cb, secs, prepared=True)
        n, span, ingest, fulfil, dead = rates(db)
        drained = drain(db, n) if action else 0.0
        top = top_statements(db)
        rss = R.status_kb(d.pid, "VmHWM")
        return {"name": name, "ingest": ingest, "fulfil": fulfil, "n": n, "span": span,
                "non2xx": w["non2xx"] + w["sockerr"], "drain": drained, "dead": dead,
                "top": top, "hwm_kb": rss, "repeated": w["repeated"], "load": load,
                "cpu": load.note(n, {"daemon": "daemon", "pg": "PostgreSQL", "client": "wrk"})}
    finally:
        d.stop(timeout=40)
        pg.drop_database(db.name)


def latency_scenario(pg, workdir, secret, rate, secs):
    db, d = live_daemon(pg, workdir, "latency", secret, SQL_ACTION)
    try:
        cb = R.gen_callbacks(secret, int(rate * secs) + 10, f"FL{secrets.token_hex(3)}")
        p = R.run([sys.executable, os.path.join(HERE, "fixed_rate.py"), d.url("/callback"), cb,
                   str(rate), str(secs)], timeout=secs + 120, check=False)
        drain(db, 0, timeout=60)
        p50, p99, n = db.rows(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms),"
            " percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), count(*) FROM"
            " (SELECT extract(epoch FROM s.done_at - c.received_at) * 1000 AS ms"
            "  FROM shop_paid s JOIN bayarhook.callbacks c ON c.invoice_id = s.invoice_id"
            "  AND c.verdict = 'accepted') x")[0]
        return {"p50": float(p50 or 0), "p99": float(p99 or 0), "n": n,
                "client": p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""}
    finally:
        d.stop(timeout=40)
        pg.drop_database(db.name)


def ingest_script(path, n=16):
    """bench/pgbench_callback.sql's one-item ingest() call made an n-item
    batch (n invoices, n bodies): bayarhook.ingest() as a group commit of n
    callbacks calls it, for the pgbench scenario `dbingest`."""
    with open(os.path.join(HERE, "pgbench_callback.sql")) as f:
        line = next(l for l in f if l.startswith("SELECT idx"))
    m = re.match(r"(SELECT .*?ingest\(')\[(\{.*?\"idx\":0\})\]('::jsonb, ARRAY\[)('.*?')"
                 r"(\]::text\[\], .*)$", line.rstrip("\n"))
    pre, item, mid, body, post = m.groups()
    items = [item.replace("PGB-:inv", f"PGB-:inv-{i}").replace('"idx":0', f'"idx":{i}')
             for i in range(n)]
    bodies = [body.replace("PGB-:inv", f"PGB-:inv-{i}") for i in range(n)]
    with open(path, "w") as f:
        f.write("\\set inv random(1, 1000000000000000)\n" + pre + "[" + ",".join(items) + "]"
                + mid + ",".join(bodies) + post + "\n")
    return path


def ceiling_scenario(pg, secs, script=None):
    """pgbench, 4 clients, 16 callbacks per transaction: bench/pgbench_rows.sql
    (the ceiling) or script. (callbacks/s, the CPU line)."""
    db = pg.create_database()
    try:
        d = bh.Daemon(tempfile.mkdtemp(prefix="bh-ceiling-"), db.conninfo)
        d.migrate()
        for stmt in AFTER_MIGRATE:
            db.execute(stmt)
        with db.connect() as c:
            c.execute("CHECKPOINT")
        pgbench = os.path.join(pg.bindir, "pgbench")
        cmd = [pgbench, "-n", "-M", "simple", "-c", "4", "-j", "2", "-T", str(secs),
               "-f", script or os.path.join(HERE, "pgbench_rows.sql"),
               "-h", pg.host, "-p", str(pg.port),
               "-U", pg.SUPERUSER, db.name]
        with Load({"pg": [postmaster_pid(pg)]}) as load:
            p = R.run(cmd, timeout=secs + 120, check=False)
        m = re.search(r"tps = ([\d.]+)", p.stdout)
        if not m:
            raise RuntimeError("pgbench failed:\n" + p.stdout[-2000:])
        rate = float(m.group(1)) * 16
        return rate, load.note(rate * secs, {"pg": "PostgreSQL", "client": "pgbench"})
    finally:
        pg.drop_database(db.name)


def live(args):
    bh.BIN = binary()
    print(f"binary: {bh.BIN}  D={args.duration}s  cpus={os.cpu_count()}", flush=True)
    workdir = tempfile.mkdtemp(prefix="bayarhook-fulfil-")
    R.tmpdir = workdir
    conns = [int(c) for c in str(args.conns).split(",")]
    R.THREADS = 2
    secret = "whsec_bench_" + secrets.token_hex(16)
    pg = bh.PgCluster()
    want = args.only.split(",")
    res = {}
    try:
        pg.init()
        with open(os.path.join(pg.datadir, "postgresql.conf"), "a") as f:
            f.write("shared_preload_libraries = 'pg_stat_statements'\n"
                    "pg_stat_statements.track = all\n")
        pg.start()
        with psycopg_connect(pg) as c:
            c.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        if "ceiling" in want:
            res["ceiling"], ceiling_cpu = ceiling_scenario(pg, args.duration)
            print(f"ceiling: {res['ceiling']:.0f} callbacks/s; {ceiling_cpu}", flush=True)
        if "dbingest" in want:
            res["dbingest"], cpu = ceiling_scenario(
                pg, args.duration, ingest_script(os.path.join(workdir, "ingest16.sql")))
            print(f"dbingest: {res['dbingest']:.0f} callbacks/s; {cpu}", flush=True)
        cb_n = 12000 * args.duration + 5000
        # none: once per --conns value; sql and exec: the first one.
        runs = [("none", None, c) for c in conns] + [("sql", SQL_ACTION, conns[0]),
                                                     ("exec", EXEC_ACTION, conns[0])]
        for name, action, c in runs:
            if name not in want:
                continue
            key = name if c == conns[0] else f"{name}@{c}"
            R.CONNS = c
            r = http_scenario(pg, workdir, name, secret, action, args.duration, cb_n)
            res[key] = r
            print(f"{name} ({c} senders): ingest {r['ingest']:.0f}/s, fulfilled within the run"
                  f" {r['fulfil']:.0f}/s, {r['n']} callbacks, errors {r['non2xx']},"
                  f" backlog drained {r['drain'] if r['drain'] is not None else 'NOT'} s"
                  f" after the last callback, dead {r['dead']},"
                  f" VmHWM {r['hwm_kb'] / 1024:.1f} MB\n  {r['cpu']}\n  top statements:\n"
                  f"{r['top']}", flush=True)
        if "latency" in want:
            res["latency"] = latency_scenario(pg, workdir, secret, args.rate, args.duration)
            print(f"latency at {args.rate}/s: callback -> sql action p50"
                  f" {res['latency']['p50']:.1f} ms, p99 {res['latency']['p99']:.1f} ms"
                  f" ({res['latency']['n']} jobs; client: {res['latency']['client']})",
                  flush=True)
    finally:
        pg.destroy()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print("\n| figure | value | target |\n|---|---:|---|")
    none = res.get("none", {}).get("ingest")
    for k, label in (("sql", "sql action"), ("exec", "exec /bin/true, concurrency 16")):
        if k in res and res[k]["ingest"]:
            print(f"| {label}: fulfilled / ingest | {res[k]['fulfil']:.0f} / "
                  f"{res[k]['ingest']:.0f} = {100 * res[k]['fulfil'] / res[k]['ingest']:.0f} % |"
                  f" {'≥ 80 %' if k == 'sql' else '≥ 30 %'} |")
    if res.get("dbingest") and res.get("ceiling"):
        print(f"| bayarhook.ingest() alone (pgbench, 16 per call) / database-only ceiling |"
              f" {res['dbingest']:.0f} / {res['ceiling']:.0f} ="
              f" {100 * res['dbingest'] / res['ceiling']:.0f} % | |")
    if "latency" in res:
        print(f"| callback → sql action at {args.rate}/s, p50 / p99 |"
              f" {res['latency']['p50']:.1f} / {res['latency']['p99']:.1f} ms | ≤ 5 / ≤ 20 ms |")
    for k in ("sql", "exec"):
        if k in res and none:
            print(f"| ingest with {k} action / without | {res[k]['ingest']:.0f} / {none:.0f} ="
                  f" {100 * res[k]['ingest'] / none:.0f} % | ≥ 80 % |")
    for c in conns:
        key = "none" if c == conns[0] else f"none@{c}"
        if key in res and res.get("ceiling"):
            r = res[key]
            print(f"| ingest without actions / database-only ceiling, {c} senders |"
                  f" {r['ingest']:.0f} / {res['ceiling']:.0f} ="
                  f" {100 * r['ingest'] / res['ceiling']:.0f} % | ≥ 60 % |")
    # What the HTTP path could reach with every core busy at its measured CPU
    # per callback, against the ceiling's measured rate (issue 16's analysis).
    for c in conns:
        key = "none" if c == conns[0] else f"none@{c}"
        if key in res and res.get("ceiling"):
            bound = res[key]["load"].per_callback(res[key]["n"])[2]
            print(f"| the same, if every core were busy at this CPU per callback, {c} senders |"
                  f" {bound:.0f} / {res['ceiling']:.0f} = {100 * bound / res['ceiling']:.0f} % |"
                  f" |")


def psycopg_connect(pg):
    import psycopg
    # template1: every database of the run has the extension
    return psycopg.connect(pg.conninfo("template1"), autocommit=True)


def ingest(db, n, actions, tag):
    """n paid callbacks through bayarhook.ingest(), as serve records them."""
    invoices = []
    with db.connect() as c:
        for start in range(0, n, 200):
            batch = []
            for i in range(start, min(n, start + 200)):
                inv = f"PAY-bench{tag}-{i:06d}"
                invoices.append(inv)
                batch.append(bh.ingest_item(len(batch), inv))
            c.execute("SELECT count(*) FROM bayarhook.ingest(%s::jsonb, %s::jsonb)",
                      [json.dumps(batch), json.dumps({"paid": actions})])
    return invoices


def scenario(pg, workdir, kind, n, concurrency):
    db = pg.create_database()
    try:
        if kind == "exec":
            action = {"type": "exec", "command": "/bin/true", "timeout": "30"}
        else:
            action = {"type": "sql", "expect_rows": "1", "timeout": "30",
                      "statement": "UPDATE shop_orders SET state = 'paid'"
                                   " WHERE invoice_id = :invoice_id AND total = :final_amount"}
        d = bh.Daemon(os.path.join(workdir, f"{kind}-{concurrency}"), db.conninfo, config={
            "fulfillment": {"concurrency": str(concurrency)},
            "action.fulfil": action,
        })
        d.migrate()
        invoices = ingest(db, n, ["fulfil"], f"{kind}{concurrency}")
        if kind == "sql":
            db.execute("CREATE TABLE shop_orders (invoice_id text PRIMARY KEY,"
                       " total numeric NOT NULL, state text NOT NULL DEFAULT 'new')")
            with db.connect() as c:
                with c.cursor().copy("COPY shop_orders (invoice_id, total) FROM STDIN") as cp:
                    for inv in invoices:
                        cp.write_row((inv, 50123))
        assert db.count("jobs", "state = 'pending'") == n
        d.start()
        try:
            deadline = time.monotonic() + 600
            while db.count("job_attempts") == 0:
                if time.monotonic() > deadline:
                    raise TimeoutError("no job started")
                time.sleep(0.01)
            t0 = time.monotonic()
            while db.count("jobs", "state = 'succeeded'") < n:
                if time.monotonic() > deadline:
                    raise TimeoutError("jobs did not finish within 600 s")
                if db.count("jobs", "state = 'dead'"):
                    raise RuntimeError("a job died: " + bh.tail(d.log_path, 20))
                time.sleep(0.05)
            elapsed = time.monotonic() - t0
            # The same interval measured by the database itself.
            span = db.scalar("SELECT extract(epoch FROM max(finished_at) - min(started_at))"
                             " FROM bayarhook.job_attempts")
            attempts = db.count("job_attempts")
            if kind == "sql":
                assert db.scalar("SELECT count(*) FROM shop_orders WHERE state = 'paid'") == n
        finally:
            d.stop(timeout=60)
        return elapsed, float(span), attempts
    finally:
        pg.drop_database(db.name)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--rate", type=int, default=200)
    ap.add_argument("--only", default="ceiling,dbingest,none,sql,exec,latency")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--conns", default="32",
                    help="wrk's connections (callbacks in flight; default 32); a list"
                         " (32,64,128) runs `none` once for each, sql and exec with the first")
    ap.add_argument("--after-migrate", action="append", default=[], metavar="SQL",
                    help="run SQL on each scenario's database after migrate (repeatable)")
    ap.add_argument("--backlog", action="store_true")
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("--concurrency", default="4,16")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="a config key of every daemon started (repeatable)")
    args = ap.parse_args()
    AFTER_MIGRATE.extend(args.after_migrate)
    for kv in args.set:
        k, eq, v = kv.partition("=")
        sec, _, key = k.rpartition(".")
        if not sec or not key or not eq:
            sys.exit(f"fulfil.py: --set {kv!r}: want SECTION.KEY=VALUE")
        EXTRA_CONFIG.setdefault(sec, {})[key] = v
    if not args.backlog:
        if not 1 <= args.duration <= 120:
            sys.exit("fulfil.py: --duration must be between 1 and 120")
        live(args)
        return
    if not 1 <= args.n <= 100000:
        sys.exit("fulfil.py: -n must be between 1 and 100000")
    bh.BIN = binary()
    print(f"binary: {bh.BIN}  N={args.n}  cpus={os.cpu_count()}", flush=True)
    workdir = tempfile.mkdtemp(prefix="bayarhook-fulfil-")
    pg = bh.PgCluster()
    rows = []
    try:
        pg.init().start()
        for kind in ("exec", "sql"):
            for conc in [int(c) for c in args.concurrency.split(",")]:
                elapsed, span, attempts = scenario(pg, workdir, kind, args.n, conc)
                rows.append((kind, conc, args.n, attempts, elapsed, args.n / elapsed,
                             args.n / span))
                print(f"{kind:5s} concurrency={conc:<3d} {args.n} jobs in {elapsed:.2f} s:"
                      f" {args.n / elapsed:.0f} invoices/s (database clock: "
                      f"{args.n / span:.0f}/s)", flush=True)
    finally:
        pg.destroy()
    print("\n| action | concurrency | invoices | attempts | seconds | invoices/s |")
    print("|---|---|---|---|---|---|")
    for kind, conc, n, att, el, rate, _ in rows:
        print(f"| {kind} | {conc} | {n} | {att} | {el:.2f} | {rate:.0f} |")


if __name__ == "__main__":
    main()
