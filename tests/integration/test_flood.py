"""An unauthenticated flood against the audit (issue 17, finding 1; SPEC §13).

Before, every refused request was a full audit row: 64 KiB junk at 1,200
requests/s wrote 84 MB/s of table and as much WAL until the disk filled.
Here FLOOD_REQUESTS junk requests of ~64 KiB, each body different (nothing
to collapse) and built to be incompressible, with 4 KiB of random header
values (the largest row a refusal can make), come from a few client
addresses in parallel, directly to the daemon. Meanwhile genuine signed
callbacks are sent. Asserted:

- the callbacks table (pg_total_relation_size: heap, TOAST, indexes) grows
  by at most 2 MB in any second of the flood, and 2 MB/s over the whole of
  it, after the store has drained;
- a refusal row costs at most the AUDIT_ROW_MAX_BYTES the README's
  arithmetic uses;
- every refusal is answered (400/401), every genuine callback is answered
  200 and recorded whole (body, length, SHA-256, headers);
- what the limits kept out is in bayarhook_audit_suppressed_total and in the
  suppressed column of the clients' later rows; identical refusals share a
  row with repeat > 1.

The figures (requests/s absorbed, audit and WAL bytes/s, daemon RSS) are
printed; run with -s to see them (BAYARHOOK_BIN picks the binary).
"""

import base64
import hashlib
import os
import re
import socket
import threading
import time

import bh

FLOOD_REQUESTS = 5000
SOURCES = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]
SENDERS_PER_SOURCE = 2
BODY_BYTES = 64000  # under max_body_bytes (65536): read whole and refused as malformed
GENUINE = 40
BOUND = 2_000_000  # bytes per second (SPEC §13)
ROW_MAX = 12288  # AUDIT_ROW_MAX_BYTES (src/audit_limit.h)
PAGE = 8192


def junk_request(port):
    """A refused request of the largest kind: random text body and headers."""
    body = base64.b64encode(os.urandom(BODY_BYTES * 3 // 4))[:BODY_BYTES]
    hdrs = "".join(f"X-Junk-{i}: {base64.b64encode(os.urandom(1000)).decode()}\r\n"
                   for i in range(4))
    head = (f"POST /callback HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\n{hdrs}"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode() + body


def send_raw(port, data, source, timeout=30):
    """Sends one request on its own connection; returns the status (or None)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        buf = b""
        while b"\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        m = re.match(rb"HTTP/1\.[01] (\d{3})", buf)
        return int(m.group(1)) if m else None
    except (ConnectionResetError, socket.timeout):
        return None
    finally:
        s.close()


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def metric(d, name):
    text = bh.get(d.url("/metrics")).text
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


class Sampler(threading.Thread):
    """(time, table bytes, WAL position, daemon RSS KiB) every 0.2 s."""

    def __init__(self, db, pid):
        super().__init__(daemon=True)
        self.conn = db.connect()
        self.conn.autocommit = True
        self.pid = pid
        self.samples = []
        self.stop = threading.Event()

    def sample(self):
        with self.conn.cursor() as cur:
            cur.execute("SELECT pg_total_relation_size('bayarhook.callbacks'), "
                        "pg_current_wal_lsn() - '0/0'::pg_lsn")
            size, wal = cur.fetchone()
        self.samples.append((time.monotonic(), size, int(wal), rss_kib(self.pid)))

    def run(self):
        while not self.stop.is_set():
            self.sample()
            time.sleep(0.2)
        self.sample()


def test_flood_of_junk_is_bounded_and_genuine_callbacks_pass(make_daemon, db):
    d = make_daemon()
    base_rows = db.count("callbacks")
    suppressed0 = metric(d, "bayarhook_audit_suppressed_total") or 0
    sampler = Sampler(db, d.pid)
    sampler.sample()
    sampler.start()

    statuses, genuine = [], []
    lock = threading.Lock()
    per_sender = FLOOD_REQUESTS // (len(SOURCES) * SENDERS_PER_SOURCE)

    def flood(source):
        got = []
        for _ in range(per_sender):
            got.append(send_raw(d.port, junk_request(d.port), source))
        with lock:
            statuses.extend(got)

    def callbacks():
        # Spread over the flood; each its own invoice, signed with the real secret.
        for i in range(GENUINE):
            inv = bh.new_invoice(f"FL{i}")
            body, hdrs = bh.make_callback(inv)
            r = bh.post(d.callback_url, body, hdrs)
            genuine.append((inv, body, r.status))
            time.sleep(0.05)

    # One identical refusal repeated from its own address: collapsed into few rows.
    same = junk_request(d.port)

    def repeat():
        for _ in range(200):
            with lock:
                statuses.append(send_raw(d.port, same, "127.0.0.6"))

    threads = [threading.Thread(target=flood, args=(src,))
               for src in SOURCES for _ in range(SENDERS_PER_SOURCE)]
    threads.append(threading.Thread(target=callbacks))
    threads.append(threading.Thread(target=repeat))
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    t1 = time.monotonic()
    assert not any(t.is_alive() for t in threads), "the flood did not end within 300 s"

    # The store drains: wait until the table stops growing for a second.
    def settled():
        n = db.count("callbacks")
        time.sleep(1.0)
        return db.count("callbacks") == n
    bh.wait_for(settled, 30, what="the audit writes to settle")
    sampler.stop.set()
    sampler.join(timeout=10)
    samples = sampler.samples

    duration = t1 - t0
    grown = samples[-1][1] - samples[0][1]
    wal = samples[-1][2] - samples[0][2]
    rows = db.count("callbacks") - base_rows
    refusal_rows = db.count("callbacks", "verdict <> 'accepted'")
    suppressed = (metric(d, "bayarhook_audit_suppressed_total") or 0) - suppressed0
    peak_rss = max(s[3] for s in samples)
    # The worst second: growth between samples at least 1 s apart, per second.
    worst = 0.0
    for i, (ti, si, _, _) in enumerate(samples):
        for tj, sj, _, _ in samples[i + 1:]:
            if tj - ti >= 1.0:
                worst = max(worst, (sj - si) / (tj - ti))
                break
    sent = len(statuses)
    print(f"\nflood: {sent} refused requests in {duration:.1f} s = {sent / duration:.0f}/s absorbed; "
          f"audit table +{grown / 1e6:.2f} MB ({grown / duration / 1e6:.3f} MB/s, worst second "
          f"{worst / 1e6:.3f} MB/s), WAL +{wal / 1e6:.2f} MB ({wal / duration / 1e6:.3f} MB/s); "
          f"{rows} rows ({refusal_rows} refusals, {grown / max(refusal_rows, 1):.0f} B/row), "
          f"{suppressed:.0f} suppressed; daemon peak RSS {peak_rss / 1024:.1f} MiB")

    # Every request answered with its refusal, every genuine callback 200.
    assert len(statuses) == len(SOURCES) * SENDERS_PER_SOURCE * per_sender + 200
    assert set(statuses) <= {400, 401}, {s: statuses.count(s) for s in set(statuses)}
    assert [g[2] for g in genuine] == [200] * GENUINE, genuine

    # The bound: per second of the flood, and over all of it after the drain.
    assert grown <= BOUND * max(duration, 1.0) + 64 * PAGE, (grown, duration)
    assert worst <= BOUND + 64 * PAGE, worst
    assert grown <= ROW_MAX * max(refusal_rows, 1) + 64 * PAGE + GENUINE * 4 * PAGE

    # Genuine callbacks recorded whole, whatever the flood.
    for inv, body, _ in genuine:
        rows_inv = db.callbacks(inv)
        assert len(rows_inv) == 1, (inv, rows_inv)
        r = rows_inv[0]
        assert r["verdict"] == "accepted"
        assert r["body"].encode() == body
        assert r["body_length"] == len(body)
        assert bytes(r["body_sha256"]) == hashlib.sha256(body).digest()
        assert r["repeat"] == 1 and r["headers_dropped"] == 0
        assert r["headers"]["X-Webhook-Signature"], r["headers"]

    # Refusals: bounded rows, the whole body's length and digest, counts kept.
    junk = db.query("SELECT * FROM bayarhook.callbacks WHERE verdict <> 'accepted' "
                    "AND remote_addr <> '127.0.0.6' ORDER BY id")
    assert junk, "no refusal row at all: the flood must still be audited"
    for r in junk:
        assert r["body_length"] == BODY_BYTES
        assert len(r["body"].encode()) <= 2048
        assert r["body_sha256"] is not None and len(bytes(r["body_sha256"])) == 32
    assert suppressed > 0
    assert suppressed >= sent - 200 - sum(r["repeat"] for r in junk) - 1
    # Some client's later row says how many of its refusals were kept out.
    assert sum(r["suppressed"] for r in junk) > 0
    same_rows = db.query("SELECT * FROM bayarhook.callbacks WHERE remote_addr = '127.0.0.6'")
    assert 1 <= len(same_rows) <= 1 + int(duration / 10) + 1, len(same_rows)
    assert bytes(same_rows[0]["body_sha256"]) == hashlib.sha256(same.split(b"\r\n\r\n", 1)[1]).digest()
    assert d.alive()
