#!/usr/bin/python3
"""The database port held silent, measured: issue 18's black hole.

    BAYARHOOK_BIN=build/bayarhook bench/stall.py [--hold 30] [--load 200]
        [--senders 40] [--answer-timeout 2 | --answer-timeout 0]

Starts a private PostgreSQL, a bayarhook whose conninfo goes through a
loopback TCP proxy (tests/integration/tcp_proxy.py), holds the proxy (no
byte moves, sockets stay open), sends --load signed callbacks, --senders at
a time, releases the port after --hold seconds, and prints the answers'
statuses and the slowest answer. --answer-timeout 0 leaves the key out of
the config (a build without it refuses the key). The same scenario, with its
assertions, is tests/integration/test_deadline.py.
"""

import argparse
import collections
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

import bh  # noqa: E402
import test_deadline as td  # noqa: E402
from tcp_proxy import TcpProxy  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hold", type=float, default=30)
    ap.add_argument("--load", type=int, default=200)
    ap.add_argument("--senders", type=int, default=40)
    ap.add_argument("--answer-timeout", type=int, default=2)
    a = ap.parse_args()
    td.SENDERS = a.senders
    pg = bh.PgCluster().init().start()
    work = tempfile.mkdtemp(prefix="bayarhook-stall-")
    proxy = TcpProxy(pg.port).start()
    d = None
    try:
        db = pg.create_database()
        config = {"database": {"conninfo": td.via(db, proxy.port)}}
        if a.answer_timeout:
            config["server"] = {"answer_timeout": str(a.answer_timeout)}
        d = bh.Daemon(os.path.join(work, "d"), db.conninfo, config=config).start()
        assert d.callback().status == 200
        invoices = [bh.new_invoice("STALL") for _ in range(a.load)]
        results = td.stalled_run(d, proxy, invoices, hold_for=a.hold)
        times = sorted(r[3] for r in results)
        print(f"binary: {bh.BIN}")
        print(f"held {a.hold:g} s, {a.load} callbacks, {a.senders} senders, answer_timeout "
              f"{a.answer_timeout or 'not set'}")
        print("statuses:", dict(collections.Counter(r[1] for r in results)))
        print("with Retry-After:", sum(1 for r in results if r[2]))
        print(f"answer seconds: median {times[len(times) // 2]:.2f}, "
              f"p99 {times[int(len(times) * 0.99) - 1]:.2f}, slowest {times[-1]:.2f}; "
              f"over 10 s: {sum(1 for t in times if t > 10)}")
    finally:
        proxy.release()
        if d is not None:
            d.stop()
        proxy.stop()
        pg.destroy()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
