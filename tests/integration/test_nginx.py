"""bayarhook behind a real nginx running contrib/nginx/bayarhook.conf (issue 5).

The snippet is the source of truth: a copy of it is used with only what
cannot work in a test changed, each change asserted to hit exactly once:
the upstream's 127.0.0.1:8080 becomes the test daemon's port, `listen 443
ssl` becomes 127.0.0.2:<free port> (and the [::]:443 line goes: the test
machine may have no IPv6), and the certificate paths point at a fresh
self-signed pair for pay.example.com.

Addresses, all loopback: the client binds 127.0.0.3 as its source, nginx
listens on 127.0.0.2 and reaches bayarhook from 127.0.0.1, the one trusted
proxy (trusted_proxies = 127.0.0.1/32). So the real client (127.0.0.3)
differs from both nginx's address and anything a client can forge.

Needs: nginx, openssl.
"""

import http.client
import hashlib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest

import bh

SNIPPET = os.path.join(bh.SOURCE_DIR, "contrib", "nginx", "bayarhook.conf")
CLIENT = "127.0.0.3"   # the real client
NGINX_ADDR = "127.0.0.2"
FORGED = "203.0.113.66"
SERVER_NAME = "pay.example.com"


def need(tool):
    path = shutil.which(tool) or next(
        (p for p in (f"/usr/sbin/{tool}", f"/sbin/{tool}") if os.access(p, os.X_OK)), None)
    if path is None:
        pytest.fail(f"{tool} not found: install it (apt-get install -y nginx openssl)")
    return path


def free_port(addr):
    with socket.socket() as s:
        s.bind((addr, 0))
        return s.getsockname()[1]


def subst(text, pattern, repl, what):
    out, n = re.subn(pattern, repl, text, flags=re.M)
    assert n == 1, f"{SNIPPET}: expected exactly one {what}, found {n}"
    return out


class Nginx:
    """nginx in the foreground with its own prefix, config and logs in workdir."""

    def __init__(self, workdir, upstream_port, worker_connections=256):
        self.dir = str(workdir)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port(NGINX_ADDR)
        self.cert = os.path.join(self.dir, "cert.pem")
        self.key = os.path.join(self.dir, "key.pem")
        r = subprocess.run([need("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                            "-days", "1", "-subj", f"/CN={SERVER_NAME}",
                            "-addext", f"subjectAltName=DNS:{SERVER_NAME}",
                            "-keyout", self.key, "-out", self.cert],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr

        with open(SNIPPET) as f:
            text = f.read()
        text = subst(text, r"^(\s*server\s+)127\.0\.0\.1:8080;",
                     rf"\g<1>127.0.0.1:{upstream_port};", "upstream server 127.0.0.1:8080")
        text = subst(text, r"^(\s*listen\s+)443 ssl;", rf"\g<1>{NGINX_ADDR}:{self.port} ssl;",
                     "listen 443 ssl")
        text = subst(text, r"^\s*listen\s+\[::\]:443 ssl;\n", "", "listen [::]:443 ssl")
        text = subst(text, r"^(\s*ssl_certificate)\s+\S+;", rf"\1 {self.cert};", "ssl_certificate")
        text = subst(text, r"^(\s*ssl_certificate_key)\s+\S+;", rf"\1 {self.key};",
                     "ssl_certificate_key")
        self.snippet = os.path.join(self.dir, "bayarhook.conf")
        with open(self.snippet, "w") as f:
            f.write(text)

        temp = "\n".join(f"    {d}_temp_path {self.dir}/{d};"
                         for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        user = "user root root;\n" if os.geteuid() == 0 else ""
        self.conf = os.path.join(self.dir, "nginx.conf")
        self.error_log = os.path.join(self.dir, "error.log")
        self.access_log = os.path.join(self.dir, "access.log")
        with open(self.conf, "w") as f:
            f.write(f"""{user}daemon off;
worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {self.error_log} info;
events {{ worker_connections {worker_connections}; }}
http {{
    log_format bh '$remote_addr "$request" $status $upstream_addr "$http_x_forwarded_for"';
    access_log {self.access_log} bh;
{temp}
    include {self.snippet};
}}
""")
        self.nginx = need("nginx")
        self.proc = None

    def start(self):
        argv = [self.nginx, "-p", self.dir, "-c", self.conf, "-e", self.error_log]
        r = subprocess.run(argv + ["-t"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited {self.proc.returncode}:\n{self.log()}")
            try:
                socket.create_connection((NGINX_ADDR, self.port), timeout=1).close()
                return True
            except OSError:
                return False
        bh.wait_for(up, 20, what="nginx to listen")
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log(self):
        out = []
        for p in (self.error_log, self.access_log):
            out.append(f"--- {p}\n{bh.tail(p, 40)}")
        return "\n".join(out)

    def request(self, method, path, body=None, headers=None, source=CLIENT, timeout=30):
        """One HTTPS request to nginx from `source`; returns bh.Response."""
        ctx = ssl.create_default_context(cafile=self.cert)
        raw = socket.create_connection((NGINX_ADDR, self.port), timeout=timeout,
                                       source_address=(source, 0))
        sock = ctx.wrap_socket(raw, server_hostname=SERVER_NAME)
        conn = http.client.HTTPSConnection(SERVER_NAME, self.port, context=ctx, timeout=timeout)
        conn.sock = sock
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return bh.Response(resp.status, resp.headers, resp.read())
        finally:
            conn.close()


def direct(d, method, path, body=None, headers=None, source=CLIENT, timeout=30):
    """A plain HTTP request straight to bayarhook from `source`."""
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=timeout,
                                      source_address=(source, 0))
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return bh.Response(resp.status, resp.headers, resp.read())
    finally:
        conn.close()


@pytest.fixture
def stack(make_daemon, tmp_path, request):
    d = make_daemon(config={"server": {"trusted_proxies": "127.0.0.1/32"}})
    n = Nginx(tmp_path / "nginx", d.port).start()
    yield d, n
    n.stop()
    if getattr(request.node, "rep_call", None) is None or request.node.rep_call.failed:
        print(n.log())


def only(rows):
    assert len(rows) == 1, rows
    return rows[0]


def test_through_nginx_the_real_client_is_recorded(stack, db):
    d, n = stack
    inv = bh.new_invoice("nginx")
    body, headers = bh.make_callback(inv)
    # A client that claims to be someone else, in both headers bayarhook reads.
    headers["X-Forwarded-For"] = FORGED
    headers["X-Real-IP"] = FORGED
    r = n.request("POST", "/callback", body, headers)
    assert (r.status, r.json) == (200, {"success": True}), (r, n.log())
    row = only(db.callbacks(inv))
    assert row["verdict"] == "accepted"
    # nginx appended the address it saw: "<forged>, 127.0.0.3"; the rightmost
    # hop that is not a trusted proxy is the client.
    assert row["remote_addr"] == CLIENT, row
    assert row["peer_addr"] == "127.0.0.1", row
    assert FORGED not in str(row["remote_addr"])
    access = open(n.access_log).read()
    assert f'{CLIENT} "POST /callback' in access and FORGED in access, access

    # Without any forwarding header from the client: the same.
    inv2 = bh.new_invoice("nginx")
    body, headers = bh.make_callback(inv2)
    r = n.request("POST", "/callback", body, headers)
    assert r.status == 200, r
    assert only(db.callbacks(inv2))["remote_addr"] == CLIENT

    # A refused callback is audited with the same address.
    inv3 = bh.new_invoice("nginx")
    body, headers = bh.make_callback(inv3, secret="whsec_wrong")
    headers["X-Forwarded-For"] = FORGED
    r = n.request("POST", "/callback", body, headers)
    assert r.status == 401, r
    row = only(db.wait_callbacks(1, inv3))  # a refusal's row follows its answer
    assert (row["verdict"], row["remote_addr"]) == ("bad_signature", CLIENT), row


def test_direct_request_with_forged_headers_records_the_peer(stack, db):
    d, _ = stack
    inv = bh.new_invoice("direct")
    body, headers = bh.make_callback(inv)
    headers["X-Forwarded-For"] = f"{FORGED}, 127.0.0.1"
    headers["X-Real-IP"] = FORGED
    r = direct(d, "POST", "/callback", body, headers)
    assert r.status == 200, r
    row = only(db.callbacks(inv))
    assert row["remote_addr"] == CLIENT, row
    assert row["peer_addr"] == CLIENT, row


def test_nginx_limits_and_locations(stack, db):
    d, n = stack
    # /metrics is not published through nginx, /healthz only to this host.
    assert n.request("GET", "/metrics").status == 404
    assert n.request("GET", "/healthz", source=CLIENT).status == 403
    r = n.request("GET", "/healthz", source="127.0.0.1")
    assert (r.status, r.json) == (200, {"status": "ok", "database": "up"}), r

    # Between bayarhook's max_body_bytes and nginx's client_max_body_size:
    # refused by bayarhook (413) so that the attempt is audited.
    inv = bh.new_invoice("big")
    body, headers = bh.make_callback(inv, extra={"description": "x" * 70000})
    assert 65536 < len(body) < 128 * 1024
    r = n.request("POST", "/callback", body, headers)
    assert r.status == 413, r
    # The request reader answers 413 itself; the audit row is written beside it.
    rows = bh.wait_for(lambda: db.query("SELECT verdict, remote_addr FROM bayarhook.callbacks "
                                        "WHERE verdict = 'too_large'"), 10 * bh.SLOW,
                       what="the too_large audit row")
    assert [r["remote_addr"] for r in rows] == [CLIENT], rows

    # Over nginx's own limit: nginx refuses it.
    r = n.request("POST", "/callback", b"{" + b" " * (129 * 1024) + b"}",
                  {"Content-Type": "application/json"})
    assert r.status == 413, r


def test_bayarhook_down_is_503_with_retry_after(stack):
    d, n = stack
    assert d.stop() == 0
    inv = bh.new_invoice("down")
    body, headers = bh.make_callback(inv)
    t0 = time.monotonic()
    r = n.request("POST", "/callback", body, headers)
    print(f"answered in {time.monotonic() - t0:.3f}s with bayarhook down")
    assert r.status == 503, r
    assert r.headers.get("Retry-After") == "30", dict(r.headers)
    assert r.json == {"success": False, "error": "temporarily unavailable"}, r


# ---------------------------------------------------------------------------
# issue 17 through nginx

PHANTOM = (b"POST /callback HTTP/1.1\r\nHost: pay.example.com\r\nX-Forwarded-For: " +
           FORGED.encode() + b"\r\nX-Phantom: 1\r\nContent-Length: 99999999\r\n\r\n")
PHANTOM_BODY_LEN = 16384


def phantom_body(pad):
    body = b" " * pad + PHANTOM
    return body + b" " * (PHANTOM_BODY_LEN - len(body))


def phantom_request(n, pad):
    """A refused callback whose body holds a request of its own, pad bytes in."""
    body = phantom_body(pad)
    headers = {"Content-Type": "application/json", "X-Webhook-Signature": "0" * 64,
               "X-Webhook-Timestamp": "1700000000"}
    return n.request("POST", "/callback", body, headers)


def test_phantom_request_in_a_body_through_nginx(stack, db):
    """Finding 3: a body that starts with (or, through nginx, is aligned to a
    4,096-byte read at) `POST /callback ... Content-Length: 99999999` leaves
    exactly one audit row, the real one."""
    d, n = stack
    # The head nginx sends upstream, measured on a probe: its audit row holds
    # every header as received, and the body's length is the same each time.
    r = phantom_request(n, 0)
    assert r.status == 400, r
    probe = only(bh.wait_for(lambda: db.callbacks() or None, 10 * bh.SLOW, what="the probe row"))
    head = len("POST /callback HTTP/1.1\r\n") + 2 + sum(
        len(k) + 2 + len(v) + 2 for k, v in probe["headers"].items())
    assert head < 4096 - 64, probe["headers"]
    # The phantom at each 4,096-byte boundary of the upstream stream (and a
    # little either side), and of the body alone (nginx may send it apart).
    pads = sorted({4096 * k - head + j for k in (1, 2, 3) for j in (-2, 0, 2)} |
                  {4096 * k for k in (1, 2, 3)})
    for pad in pads:
        assert phantom_request(n, pad).status == 400
    rows = bh.wait_for(lambda: (lambda r: r if len(r) >= 1 + len(pads) else None)(
        db.callbacks()), 10 * bh.SLOW, what="the audit rows")
    time.sleep(0.3)  # a phantom row would come right behind its real one
    rows = db.callbacks()
    assert len(rows) == 1 + len(pads), [(r["verdict"], r["headers"]) for r in rows]
    # The phantom is in the body of the real row: the rows' digests are those
    # of the bodies sent (their stored prefix is the first 2 KiB, SPEC 13).
    sent = {hashlib.sha256(phantom_body(p)).digest() for p in [0] + pads}
    for row in rows:
        assert (row["verdict"], row["http_status"]) == ("malformed", 400), row
        assert row["remote_addr"] == CLIENT, row
        assert "x-phantom" not in bh.header_names(row["headers"]), row
        assert bytes(row["body_sha256"]) in sent, row
    assert {bytes(r["body_sha256"]) for r in rows} == sent


@pytest.fixture
def gated(make_daemon, tmp_path, request):
    """nginx in front of a daemon that allows callbacks from GATEWAY only."""
    d = make_daemon(config={"server": {"trusted_proxies": "127.0.0.1/32",
                                       "allow_from": f"{GATEWAY}/32"}})
    n = Nginx(tmp_path / "nginx", d.port).start()
    yield d, n
    n.stop()
    if getattr(request.node, "rep_call", None) is None or request.node.rep_call.failed:
        print(n.log())


GATEWAY = "127.0.0.4"


@pytest.mark.parametrize("forged_hops", [1, 63, 64, 65, 300])
def test_allow_from_cannot_be_bypassed_with_a_long_forged_chain(gated, db, forged_hops):
    """Finding 2: with 64+ X-Forwarded-For entries (or 2+ KiB) the parser kept
    the left end; the right end, which nginx appended, must decide."""
    d, n = gated
    inv = bh.new_invoice("xff")
    body, headers = bh.make_callback(inv)
    headers["X-Forwarded-For"] = ", ".join([GATEWAY] * forged_hops)
    r = n.request("POST", "/callback", body, headers, source=CLIENT)
    assert r.status == 403, (forged_hops, r)
    # Refused before the body is read: the row has no invoice id. A refusal's
    # row follows its answer (SPEC 13).
    row = only(bh.wait_for(lambda: db.callbacks(verdict="forbidden") or None, 5 * bh.SLOW,
                           what="the forbidden row"))
    assert row["remote_addr"] == CLIENT, row
    # The gateway itself, with the same forged prefix, is let in.
    inv2 = bh.new_invoice("xff")
    body, headers = bh.make_callback(inv2)
    headers["X-Forwarded-For"] = ", ".join(["203.0.113.1"] * forged_hops)
    r = n.request("POST", "/callback", body, headers, source=GATEWAY)
    assert r.status == 200, r
    assert only(db.callbacks(inv2))["remote_addr"] == GATEWAY


def test_allow_from_long_forged_bytes(gated, db):
    d, n = gated
    inv = bh.new_invoice("xffkb")
    body, headers = bh.make_callback(inv)
    headers["X-Forwarded-For"] = GATEWAY + ", " + "a" * 3000 + ", " + GATEWAY
    r = n.request("POST", "/callback", body, headers, source=CLIENT)
    assert r.status == 403, r
    row = only(bh.wait_for(lambda: db.callbacks(verdict="forbidden") or None, 5 * bh.SLOW,
                           what="the forbidden row"))
    assert row["remote_addr"] == CLIENT


def daemon_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_many_large_control_character_bodies_through_nginx(make_daemon, tmp_path, db):
    """Finding 6: 700 concurrent 64 KiB bodies of control characters through
    nginx (from 20 addresses, under limit_conn) must leave the daemon within
    its memory bound and answer every one."""
    import resource
    from test_attack import ASAN_ENV, RSS_MAX_KB, SANITIZED
    total, sources = 700, [f"127.0.1.{i}" for i in range(1, 21)]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4 * total:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4 * total, hard), hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < 2 * total + 100:
        pytest.skip("cannot open enough sockets (RLIMIT_NOFILE)")
    d = make_daemon(config={"server": {"trusted_proxies": "127.0.0.1/32"}}, env=ASAN_ENV)
    n = Nginx(tmp_path / "nginx", d.port, worker_connections=4 * total).start()
    try:
        body = bytes(range(1, 32)) * (65536 // 31) + b"\x01" * (65536 % 31)
        assert len(body) == 65536
        rss0 = daemon_rss_kb(d.pid)
        peak = [rss0]
        statuses = []
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], daemon_rss_kb(d.pid))
                time.sleep(0.01)

        def one(i):
            try:
                r = n.request("POST", "/callback", body, {"Content-Type": "application/json"},
                              source=sources[i % len(sources)], timeout=60)
                statuses.append(r.status)
            except Exception as e:  # noqa: BLE001 - counted below
                statuses.append(repr(e))

        sampler = threading.Thread(target=sample)
        sampler.start()
        threads = [threading.Thread(target=one, args=(i,)) for i in range(total)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        stop.set()
        sampler.join()
        print(f"700 x 64 KiB control characters: RSS {rss0} kB -> peak {peak[0]} kB")
        assert len(statuses) == total
        assert all(s == 400 for s in statuses), {repr(s) for s in statuses}
        assert d.alive()
        if not SANITIZED:
            assert peak[0] < RSS_MAX_KB, peak[0]
            # ... and falls back under 32 MB within seconds after (SPEC §13).
            bh.wait_for(lambda: daemon_rss_kb(d.pid) < 32 * 1024, 10, what="RSS under 32 MB")
        else:
            assert peak[0] - rss0 < 128 * 1024, (rss0, peak[0])
        assert d.callback().status == 200
    finally:
        n.stop()
