#!/usr/bin/python3
"""bench/fulfil.py: how many paid invoices per second bayarhook fulfils.

For each scenario, on a private PostgreSQL (tests/integration/bh.py's
PgCluster: initdb into a temp dir, fsync on):

  1. a fresh database, `bayarhook migrate`;
  2. N paid callbacks recorded with bayarhook.ingest() (the function `serve`
     uses for every callback) in batches of 200 while no daemon runs, so
     N jobs are pending;
  3. `bayarhook serve` starts; the clock runs from its first claimed
     attempt until every job is `succeeded` (polled every 50 ms);
  4. fulfilled invoices/s = N / that time; the daemon is stopped.

Scenarios (one action each):
  exec     command = /bin/true
  sql      UPDATE shop_orders SET state = 'paid'
           WHERE invoice_id = :invoice_id AND total = :final_amount
           (expect_rows = 1; same database: one transaction with the
           job's completion)
each at [fulfillment] concurrency 4 (the default) and 16.

usage: bench/fulfil.py [-n N] [--concurrency C,...] [--only exec,sql]
env:   BENCH_BIN (default build-bench/bayarhook, built when missing)
Bounded: every wait has a timeout, everything started is stopped on exit.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))

import bh  # noqa: E402


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


def ingest(db, n, actions, tag):
    """n paid callbacks through bayarhook.ingest(), as serve records them."""
    invoices = []
    with db.connect() as c:
        for start in range(0, n, 200):
            batch = []
            for i in range(start, min(n, start + 200)):
                inv = f"PAY-bench{tag}-{i:06d}"
                invoices.append(inv)
                body, _ = bh.make_callback(inv)
                ev = json.loads(body)
                batch.append({
                    "idx": len(batch), "invoice_id": inv, "status": "paid",
                    "event_name": "payment.paid", "amount": "50000", "final_amount": "50123",
                    "paid_at": ev["paid_at"], "paid_reff_num": ev["paid_reff_num"],
                    "source": "callback", "event": ev, "method": "POST", "http_status": 200,
                    "remote_addr": "127.0.0.1", "body": body.decode(),
                })
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
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("--concurrency", default="4,16")
    ap.add_argument("--only", default="exec,sql")
    args = ap.parse_args()
    if not 1 <= args.n <= 100000:
        sys.exit("fulfil.py: -n must be between 1 and 100000")
    bh.BIN = binary()
    print(f"binary: {bh.BIN}  N={args.n}  cpus={os.cpu_count()}", flush=True)
    workdir = tempfile.mkdtemp(prefix="bayarhook-fulfil-")
    pg = bh.PgCluster()
    rows = []
    try:
        pg.init().start()
        for kind in args.only.split(","):
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
