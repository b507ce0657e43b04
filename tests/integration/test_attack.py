"""Issue 17's attacks on the daemon's own resources, one daemon each.

- pipelining without reading the answers: the reader takes one request at a
  time and reads the next only once the answer has left, so the sender is
  stalled by TCP and the daemon's memory does not grow (finding 6);
- out of descriptors: accepting pauses instead of spinning, libevent's and
  our own lines are rate-limited, and a valid callback is answered within
  1 s once a descriptor is free (finding 7);
- /healthz is degraded while callbacks cannot be committed: a read-only
  database (default_transaction_read_only) gives 503 to callbacks and
  {"status":"degraded","database":"down","reason":"read-only session"}: its
  sessions are dropped and made again until one can write (SPEC §12);
- the store queue has a byte cap: with the database stalled, callbacks past
  it are answered 503 with Retry-After at once instead of held in memory.

RSS bounds (SPEC §13: 64 MB) are asserted on builds without sanitizers; an
ASan build's shadow memory makes absolute figures meaningless, so there the
growth is bounded instead, with ASan's quarantine of freed blocks made small
(it would otherwise hold up to 256 MB of what the daemon freed).
"""

import os
import resource
import select
import socket
import threading
import time

import pytest

import bh

with open(bh.BIN, "rb") as _f:
    SANITIZED = b"__asan_init" in _f.read()
RSS_MAX_KB = 64 * 1024
ASAN_ENV = {"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "detect_leaks=1") +
            ":quarantine_size_mb=4:thread_local_quarantine_size_kb=64"}


def status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def healthz(d):
    r = bh.get(d.url("/healthz"), timeout=5)
    return r.status, r.json


# ---------------------------------------------------------------------------
# finding 6: pipelining without reading

def test_pipelining_without_reading_stays_bounded(make_daemon):
    d = make_daemon(env=ASAN_ENV)
    rss0 = status_kb(d.pid, "VmRSS")
    one = (b"POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 32768\r\n\r\n" + b"\x01" * 32768 +
           b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    chunk = one * 32  # ~1 MiB
    s = socket.create_connection(("127.0.0.1", d.port))
    sent = 0
    peak = rss0
    try:
        s.setblocking(False)
        end = time.monotonic() + 5
        while time.monotonic() < end:
            _, w, _ = select.select([], [s], [], 0.1)
            if w:
                try:
                    sent += s.send(chunk)
                except BlockingIOError:
                    pass
            peak = max(peak, status_kb(d.pid, "VmRSS"))
        peak = max(peak, status_kb(d.pid, "VmRSS"))
    finally:
        s.close()
    # What was taken was answered (small answers fit in the socket buffers) or
    # waits in the kernel: the daemon holds one request of it at a time.
    print(f"pipelining: {sent / 1048576:.1f} MiB sent in 5 s; RSS {rss0} kB -> peak {peak} kB")
    assert sent > 8 * 1024 * 1024, "the attack did not happen"
    assert peak - rss0 < 16 * 1024, (rss0, peak)
    if not SANITIZED:
        assert peak < RSS_MAX_KB, peak
    assert d.callback().status == 200


# ---------------------------------------------------------------------------
# finding 7: out of descriptors

def test_out_of_descriptors_pauses_and_recovers(make_daemon):
    if raise_nofile(400) < 300:
        pytest.skip("cannot open enough sockets (RLIMIT_NOFILE)")
    # Held connections must not be closed by the request clock meanwhile.
    d = make_daemon(config={"server": {"request_timeout": 60}})
    assert d.callback().status == 200
    used = len(os.listdir(f"/proc/{d.pid}/fd"))
    limit = used + 8
    resource.prlimit(d.pid, resource.RLIMIT_NOFILE, (limit, limit))
    held = []
    try:
        for _ in range(60):
            held.append(socket.create_connection(("127.0.0.1", d.port), timeout=5))
        bh.wait_for(lambda: "pausing accepting" in d.log(), 10 * bh.SLOW,
                    what="the daemon to reach its descriptor limit")
        # A window at the limit: no busy loop, no flood of log lines.
        log0, cpu0, t0 = os.path.getsize(d.log_path), cpu_seconds(d.pid), time.monotonic()
        time.sleep(3)
        cpu = (cpu_seconds(d.pid) - cpu0) / (time.monotonic() - t0)
        grown = os.path.getsize(d.log_path) - log0
        print(f"at the fd limit: {cpu * 100:.0f}% CPU, log +{grown} bytes in 3 s")
        assert cpu < 0.3, f"{cpu * 100:.0f}% CPU at the descriptor limit"
        assert grown < 2048, f"log grew {grown} bytes in 3 s at the descriptor limit"
    finally:
        for s in held:
            s.close()
    # Descriptors are free again (the daemon sees the closes): a valid callback in 1 s.
    invoice = bh.new_invoice("emfile")
    body, headers = bh.make_callback(invoice)
    t0 = time.monotonic()
    r = bh.post(d.callback_url, body, headers, timeout=5)
    took = time.monotonic() - t0
    assert r.status == 200, r
    assert took < 1.0 * bh.SLOW, f"answered after {took:.2f}s"
    assert d.alive()


# ---------------------------------------------------------------------------
# SPEC §12: degraded when writes fail

def terminate_sessions(db):
    db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
               "WHERE datname = current_database() AND pid <> pg_backend_pid()")


def set_read_only(db, on):
    with db.connect() as c:
        # This session too would be read-only once the database is.
        c.execute("SET default_transaction_read_only = off")
        c.execute(f'ALTER DATABASE "{db.name}" ' +
                  ("SET default_transaction_read_only = on" if on else
                   "RESET default_transaction_read_only"))


READ_ONLY = {"status": "degraded", "database": "down", "reason": "read-only session"}


def test_read_only_database_is_degraded(make_daemon, db):
    d = make_daemon()
    assert healthz(d) == (200, {"status": "ok", "database": "up"})
    set_read_only(db, True)
    try:
        terminate_sessions(db)

        def refused():
            r = d.callback()
            return r if r.status == 503 and healthz(d)[1] == READ_ONLY else None
        # The pool reconnects (its sessions now read-only); callbacks get 503 meanwhile.
        r = bh.wait_for(refused, 20 * bh.SLOW, interval=0.2, what="503 and degraded")
        assert r.headers.get("Retry-After"), dict(r.headers)
        assert healthz(d) == (503, READ_ONLY)
        # Still degraded with nothing arriving: a read-only session stays read-only.
        r = d.callback()
        assert r.status == 503, r
    finally:
        set_read_only(db, False)
    terminate_sessions(db)
    bh.wait_for(lambda: d.callback().status == 200, 20 * bh.SLOW, interval=0.2,
                what="callbacks accepted again")
    assert healthz(d) == (200, {"status": "ok", "database": "up"})


# ---------------------------------------------------------------------------
# the store queue's byte cap

def test_store_byte_cap_answers_503_with_retry_after(make_daemon, db):
    d = make_daemon()
    n = 220  # x ~60 KiB: well past the 8 MiB cap
    if raise_nofile(n + 100) < n + 50:
        pytest.skip("cannot open enough sockets (RLIMIT_NOFILE)")
    reqs = []
    for i in range(n):
        invoice = bh.new_invoice("cap")
        body, headers = bh.make_callback(invoice, extra={"description": "x" * 60000})
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        reqs.append((invoice, (f"POST /callback HTTP/1.1\r\nHost: x\r\n{head}"
                               f"Content-Length: {len(body)}\r\n\r\n").encode() + body))
    lock = db.connect()
    lock.autocommit = False
    lock.execute("LOCK TABLE bayarhook.callbacks IN ACCESS EXCLUSIVE MODE")
    socks = []
    answers = {}
    try:
        for invoice, data in reqs:
            s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
            s.sendall(data)
            socks.append((invoice, s))

        def read_ready(timeout):
            ready, _, _ = select.select([s for _, s in socks if s.fileno() not in answers], [],
                                        [], timeout)
            for s in ready:
                answers[s.fileno()] = s.recv(65536)
        # With the table locked nothing commits: every answer now is the cap's 503.
        t_end = time.monotonic() + 3
        while time.monotonic() < t_end:
            read_ready(0.2)
        early_fds = set(answers)
        early = list(answers.values())
        assert early, "no callback was refused while the database was stalled"
        assert "refusing items until they are written" in d.log(), "not the store's cap"
        for a in early:
            assert a.startswith(b"HTTP/1.1 503 "), a[:200]
            assert b"\r\nRetry-After: " in a, a[:300]
        assert len(early) < n - 50, f"{len(early)} of {n} refused: the cap is far too low"
    finally:
        lock.rollback()
        lock.close()
    t_end = time.monotonic() + 20 * bh.SLOW
    while len(answers) < n and time.monotonic() < t_end:
        read_ready(0.5)
    late = [a for fd, a in answers.items() if fd not in early_fds]
    for _, s in socks:
        s.close()
    assert len(answers) == n
    assert all(a.startswith(b"HTTP/1.1 200 ") for a in late), [a[:100] for a in late][:3]
    print(f"store cap: {len(early)} of {n} 60 KiB callbacks refused 503 while stalled")
    assert db.count("callbacks") == n - len(early)
