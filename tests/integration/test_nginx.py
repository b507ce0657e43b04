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
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
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

    def __init__(self, workdir, upstream_port):
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
events {{ worker_connections 256; }}
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
    row = only(db.callbacks(inv3))
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
    # evhttp answers 413 itself; the audit row is written beside it.
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
