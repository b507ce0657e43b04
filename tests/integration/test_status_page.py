"""The status page (issue 13, SPEC §8): [admin] listen, off unless set; a
token unless loopback or a unix socket; GET / (HTML), GET /api/summary
(JSON) after real callbacks and a real dead job (an exec action that
fails); the retry button with its CSRF token; the database down; and the
page in a real browser: headless Chromium loads it, the DOM shows the dead
job's invoice, a mouse click on Retry (DevTools protocol over a websocket,
python3 stdlib only) requeues it, and a phone-sized screenshot is saved.

Real PostgreSQL, the real binary, Debian's chromium.
"""

import base64
import http.client
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import time
import urllib.parse

import pytest

import bh

OK = {"success": True}
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Where the phone screenshot is written (the test's tmp dir unless set);
# docs/status-page.png is one of these.
SCREENSHOT = os.environ.get("BAYARHOOK_STATUS_SCREENSHOT")


def executable(path, text):
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(path)


def admin_daemon(make_daemon, tmp_path, admin=None, fail=True, config=None, start=True):
    """A daemon with [admin] listen on a free loopback port and, with fail, an
    exec action on paid that fails once and is dead (max_attempts 1)."""
    port = bh.free_port()
    cfg = {"admin": {"listen": f"127.0.0.1:{port}", **(admin or {})}}
    if fail:
        cfg["action.ship"] = {
            "type": "exec", "on": "paid", "max_attempts": "1",
            "command": executable(tmp_path / "ship.sh",
                                  "#!/bin/sh\necho 'courier API: 500 <b>down</b>' >&2\nexit 3\n")}
    for sec, keys in (config or {}).items():
        cfg.setdefault(sec, {}).update(keys)
    d = make_daemon(config=cfg, start=start)
    d.admin_url = "http://127.0.0.1:" + cfg["admin"]["listen"].rsplit(":", 1)[1]
    return d


def summary(d, headers=None):
    r = bh.get(d.admin_url + "/api/summary", headers=headers)
    assert r.json is not None, r
    return r


def wait_dead(db, inv):
    return bh.wait_for(lambda: db.query("SELECT * FROM bayarhook.jobs WHERE invoice_id = %s"
                                        " AND state = 'dead'", [inv]), 30 * bh.SLOW,
                       what=f"the job of {inv} dead")[0]


def form_of(html, job_id):
    """The retry form of job_id in the page: (action, {field: value})."""
    m = re.search(r"<form method='post' action='(/jobs/%d/retry)'>(.*?)</form>" % job_id, html,
                  re.S)
    assert m, html
    fields = dict(re.findall(r"<input type='hidden' name='([^']+)' value='([^']*)'>",
                             m.group(2)))
    return m.group(1), fields


def post_form(d, action, fields, headers=None):
    body = urllib.parse.urlencode(fields)
    h = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
    return bh.post(d.admin_url + action, body, h)


# ---------------------------------------------------------------------------
# config

def test_off_by_default(make_daemon):
    d = make_daemon()
    assert "status page on" not in d.log()
    p = d.cli("check-config")
    assert p.returncode == 0, p.stderr
    assert "[admin]\nlisten = (off)\n" in p.stdout, p.stdout


def test_token_required_unless_loopback_or_unix(make_daemon, tmp_path):
    d = make_daemon(config={"admin": {"listen": f"0.0.0.0:{bh.free_port()}"}}, start=False)
    p = d.cli("check-config")
    out = p.stdout + p.stderr
    line = [i + 1 for i, text in enumerate(open(d.config_path).read().splitlines())
            if text.startswith("listen = 0.0.0.0")][0]
    assert p.returncode != 0, out
    assert f"receiver.conf:{line}: listen:" in out and "token_file" in out, out
    # serve refuses to start on it too.
    r = subprocess.run([bh.BIN, "-c", d.config_path, "serve"], capture_output=True, text=True,
                       env=d.env, timeout=30 * bh.SLOW)
    assert r.returncode == 1 and "token_file" in r.stderr, r.stderr
    # A unix socket or a loopback address needs none.
    for listen in (f"unix:{tmp_path}/admin.sock", f"127.0.0.1:{bh.free_port()}",
                   f"[::1]:{bh.free_port()}", f"localhost:{bh.free_port()}"):
        d.update_config({"admin": {"listen": listen}})
        p = d.cli("check-config")
        assert p.returncode == 0, (listen, p.stdout + p.stderr)
    d.update_config({"admin": {"listen": "unix:relative.sock"}})
    p = d.cli("check-config")
    assert p.returncode != 0 and "absolute path" in p.stdout + p.stderr


def test_token_bearer_cookie_and_query(make_daemon, tmp_path):
    token = "status-token-0123456789abcdef"
    tf = tmp_path / "admin-token"
    tf.write_text(token + "\n")
    tf.chmod(0o600)
    port = bh.free_port()
    d = admin_daemon(make_daemon, tmp_path, fail=False,
                     admin={"listen": f"0.0.0.0:{port}", "token_file": str(tf)})
    for h in ({}, {"Authorization": "Bearer wrong-token-0123456789abcdef"},
              {"Authorization": "Bearer " + token[:-1]},
              {"Cookie": "bayarhook_token=" + token + "x"}):
        r = bh.get(d.admin_url + "/", headers=h)
        assert r.status == 401 and "token required" in r.json["error"], (h, r)
        assert r.headers["WWW-Authenticate"] == "Bearer"
    r = summary(d, {"Authorization": "Bearer " + token})
    assert r.status == 200 and r.json["database"] == "up", r
    r = bh.get(d.admin_url + "/", headers={"Cookie": "a=b; bayarhook_token=" + token})
    assert r.status == 200 and "<!DOCTYPE html>" in r.text
    # ?token= once: a cookie, and the token taken out of the address.
    r = bh.get(d.admin_url + "/?token=" + urllib.parse.quote(token))
    assert r.status == 303 and r.headers["Location"] == "/", r
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert bh.get(d.admin_url + "/?token=nope").status == 401
    # The token never reaches the log or check-config's summary.
    assert token not in d.log() and token not in d.cli("check-config").stdout

    # SIGHUP reads the token again: a new one works, the old one no more.
    new = "rotated-token-0123456789abcdef"
    tf.write_text(new + "\n")
    d.reload()
    bh.wait_for(lambda: summary(d, {"Authorization": "Bearer " + new}).status == 200,
                20 * bh.SLOW, what="the new token taken")
    assert summary(d, {"Authorization": "Bearer " + token}).status == 401
    # A reload without [admin] cannot open the running wide listener to everyone.
    d.update_config({"admin": None})
    d.reload()
    bh.wait_for(lambda: "token_file is gone" in d.log(), 20 * bh.SLOW, what="the warning")
    assert summary(d).status == 401
    assert summary(d, {"Authorization": "Bearer " + new}).status == 200


# ---------------------------------------------------------------------------
# the summary after real callbacks

def test_summary_after_callbacks(make_daemon, db, tmp_path):
    d = admin_daemon(make_daemon, tmp_path)
    paid, pend = bh.new_invoice("paid"), bh.new_invoice("pend")
    assert d.callback(paid).json == OK
    assert d.callback(pend, status="pending").json == OK
    assert d.callback(bh.new_invoice("bad"), secret="whsec_wrong_0123456789abcdef").status == 401
    job = wait_dead(db, paid)

    r = summary(d)
    s = r.json
    assert r.status == 200 and s["database"] == "up", s
    assert s["callbacks_today"]["accepted"] == 2 and s["callbacks_today"]["bad_signature"] == 1
    assert s["paid_today"] == {"paid": 1, "fulfilled": 0, "in_progress": 0, "failed": 1}
    assert s["jobs"] == {"dead": 1}
    assert s["orders_needing_attention"] == 1
    dead = s["dead_jobs"]
    assert len(dead) == 1 and dead[0]["id"] == job["id"] and dead[0]["invoice_id"] == paid
    assert dead[0]["action"] == "ship" and "exit" in (dead[0]["last_error"] or ""), dead
    assert s["held_jobs"] == [] and s["flagged_payments"] == [] and s["flagged_total"] == 0
    assert s["last_reconcile"] is None
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d\d", s["now"]) and s["time_zone"]

    # The page says the same, every value escaped.
    page = bh.get(d.admin_url + "/")
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "1 order needs attention" in page.text and paid in page.text
    assert "<b>down</b>" not in page.text
    assert "name='viewport'" in page.text and "<script" not in page.text
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    # Nothing fetched from elsewhere: no URL with a scheme or a protocol-relative one.
    assert not re.search(r"(src|href|action)=['\"]?(https?:)?//", page.text)
    # No token, loopback: a name that is not loopback (DNS rebinding) is refused.
    for host in ("evil.example:80", "127.0.0.1.evil.example", "localhost.evil.example",
                 "[::1].evil.example", "127.1.2.3x"):
        r = bh.get(d.admin_url + "/api/summary", headers={"Host": host})
        assert r.status == 403, (host, r)
    for host in ("127.0.0.1", "LOCALHOST:8081", "[::1]:8081", "127.1.2.3:1"):
        assert bh.get(d.admin_url + "/api/summary", headers={"Host": host}).status == 200


def test_the_page_escapes_what_strangers_wrote(make_daemon, db, tmp_path):
    d = admin_daemon(make_daemon, tmp_path)
    inv = "INV<script>alert(1)</script>&'\""
    assert d.callback(inv).json == OK
    wait_dead(db, inv)
    page = bh.get(d.admin_url + "/").text
    assert "<script>" not in page
    assert "INV&lt;script&gt;alert(1)&lt;/script&gt;&amp;&#39;&quot;" in page


# ---------------------------------------------------------------------------
# retry with the CSRF token

def test_retry_needs_the_csrf_token(make_daemon, db, tmp_path):
    d = admin_daemon(make_daemon, tmp_path)
    inv = bh.new_invoice("csrf")
    assert d.callback(inv).json == OK
    job = wait_dead(db, inv)
    action, fields = form_of(bh.get(d.admin_url + "/").text, job["id"])
    assert set(fields) == {"csrf"} and len(fields["csrf"]) == 64

    attempts = lambda: db.scalar("SELECT count(*) FROM bayarhook.job_attempts WHERE job_id = %s",
                                 [job["id"]])
    assert attempts() == 1
    r = post_form(d, action, {})
    assert r.status == 403 and "CSRF" in r.json["error"], r
    r = post_form(d, action, {"csrf": "0" * 64})
    assert r.status == 403, r
    # Another job's token does not fit this one.
    _, other = form_of(bh.get(d.admin_url + "/").text, job["id"])
    r = post_form(d, f"/jobs/{job['id'] + 1}/retry", other)
    assert r.status == 403, r
    r = bh.get(d.admin_url + action)
    assert r.status == 405
    assert db.scalar("SELECT state FROM bayarhook.jobs WHERE id = %s", [job["id"]]) == "dead"
    assert attempts() == 1

    r = post_form(d, action, fields)
    assert r.status == 303 and r.headers["Location"] == f"/?retried={job['id']}", r
    # Requeued like `bayarhook retry`: it runs again (and fails again here).
    bh.wait_for(lambda: attempts() == 2, 30 * bh.SLOW, what="the retried job run again")
    page = bh.get(d.admin_url + r.headers["Location"]).text
    assert f"Job {job['id']} is queued again" in page
    # A job that is not dead: refused by job_retry()'s answer.
    wait_dead(db, inv)
    d.cli("cancel", job["id"], check=True)
    r = post_form(d, action, fields)
    assert r.status == 409 and "cancelled" in r.json["error"], r


def test_unix_socket(make_daemon, tmp_path):
    sock = str(tmp_path / "admin.sock")
    d = make_daemon(config={"admin": {"listen": "unix:" + sock}})
    assert stat.S_ISSOCK(os.stat(sock).st_mode)
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o660

    class UnixConn(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(30)
            self.sock.connect(sock)

    c = UnixConn("status.example.com")  # a proxy's name: no Host check on a unix socket
    c.request("GET", "/api/summary")
    r = c.getresponse()
    body = json.loads(r.read())
    c.close()
    assert r.status == 200 and body["database"] == "up", body
    d.stop()
    assert not os.path.exists(sock)


def test_database_down(make_daemon, pg, tmp_path):
    d = admin_daemon(make_daemon, tmp_path, fail=False)
    # Its own connection may still be on its way when /healthz answers.
    bh.wait_for(lambda: summary(d).json["database"] == "up", 20 * bh.SLOW,
                what="the status connection")
    pg.stop("immediate")
    try:
        r = bh.wait_for(lambda: (lambda r: r if r.status == 503 else None)(summary(d)),
                        30 * bh.SLOW, what="the summary saying the database is down")
        assert r.json["database"] == "down" and r.json["error"], r.json
        page = bh.get(d.admin_url + "/")
        assert page.status == 200 and "Cannot check orders right now" in page.text
        assert "Database <b>down</b>" in page.text
        # The callback listener still answers on its own.
        assert bh.get(d.url("/healthz")).status == 503
    finally:
        pg.start()
    bh.wait_for(lambda: summary(d).status == 200, 30 * bh.SLOW, what="the page back up")


# ---------------------------------------------------------------------------
# a real browser: Chromium headless, driven over the DevTools protocol

class DevTools:
    """A minimal Chrome DevTools Protocol client over a stdlib websocket."""

    def __init__(self, ws_url):
        u = urllib.parse.urlparse(ws_url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=60 * bh.SLOW)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {u.path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
                          .encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += self._exact(1)
        assert head.split(b"\r\n")[0].split()[1] == b"101", head
        self.next_id = 0
        self.events = []

    def _exact(self, n):
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise EOFError("devtools websocket closed")
            out += chunk
        return out

    def _send(self, text):
        data, mask = text.encode(), os.urandom(4)
        n = len(data)
        head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else
                                bytes([0x80 | 126]) + n.to_bytes(2, "big") if n < 65536 else
                                bytes([0x80 | 127]) + n.to_bytes(8, "big"))
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _recv(self):
        msg = b""
        while True:
            b0, b1 = self._exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = int.from_bytes(self._exact(2), "big")
            elif n == 127:
                n = int.from_bytes(self._exact(8), "big")
            payload = self._exact(n)
            op = b0 & 0x0F
            if op == 8:
                raise EOFError("devtools websocket closed")
            if op in (9, 10):
                continue
            msg += payload
            if b0 & 0x80:
                return json.loads(msg)

    def call(self, method, **params):
        self.next_id += 1
        self._send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            m = self._recv()
            if m.get("id") == self.next_id:
                assert "error" not in m, m
                return m["result"]
            self.events.append(m)

    def wait_event(self, method, timeout=60):
        deadline = time.monotonic() + timeout * bh.SLOW
        while time.monotonic() < deadline:
            for i, e in enumerate(self.events):
                if e.get("method") == method:
                    return self.events.pop(i)
            self.events.append(self._recv())
        raise TimeoutError(method)

    def js(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True)
        return r["result"].get("value")

    def close(self):
        self.sock.close()


@pytest.fixture
def chromium(tmp_path):
    """(devtools, the chromium process); both ended at teardown."""
    profile = tmp_path / "chromium-profile"
    proc = subprocess.Popen([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                             "--no-first-run", "--disable-extensions",
                             f"--user-data-dir={profile}", "--remote-debugging-port=0",
                             "--remote-debugging-address=127.0.0.1",
                             "--window-size=412,915", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        port_file = profile / "DevToolsActivePort"
        bh.wait_for(lambda: port_file.exists() and port_file.read_text().strip(), 60 * bh.SLOW,
                    what="chromium's DevTools port")
        port = int(port_file.read_text().split()[0])
        pages = json.loads(bh.get(f"http://127.0.0.1:{port}/json/list").text)
        page = [p for p in pages if p["type"] == "page"][0]
        dt = DevTools(page["webSocketDebuggerUrl"])
        try:
            yield dt
        finally:
            dt.close()
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(10)


def test_in_a_browser(make_daemon, db, tmp_path, chromium):
    # A day as a shop sees it: three orders delivered, one whose courier
    # call fails for good, one paid after it had expired (flagged).
    ship = executable(tmp_path / "ship.sh",
                      "#!/bin/sh\ncase \"$BAYAR_INVOICE_ID\" in *FAIL*)\n"
                      "  echo 'courier API answered 503: service unavailable' >&2; exit 3;;\n"
                      "esac\n")
    d = admin_daemon(make_daemon, tmp_path, fail=False,
                     config={"action.ship": {"type": "exec", "on": "paid", "max_attempts": "1",
                                             "command": ship}})
    bad = bh.new_invoice("FAIL")
    for _ in range(3):
        assert d.callback(bh.new_invoice("ok")).json == OK
    late = bh.new_invoice("late")
    assert d.callback(late, status="expired").json == OK
    assert d.callback(late, ts=int(time.time()) + 1).json == OK
    assert d.callback(bad).json == OK
    job = wait_dead(db, bad)
    bh.wait_for(lambda: db.scalar("SELECT count(*) FROM bayarhook.jobs WHERE state = 'succeeded'")
                == 4, 30 * bh.SLOW, what="the other orders delivered")
    assert d.callback(bh.new_invoice("x"), secret="whsec_wrong_0123456789abcdef").status == 401

    # --dump-dom: the DOM as Chromium built it shows the dead job's invoice.
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                          f"--user-data-dir={tmp_path / 'dump-profile'}", "--dump-dom",
                          d.admin_url + "/"], capture_output=True, text=True,
                         timeout=120 * bh.SLOW).stdout
    assert bad in dom and "2 orders need attention" in dom, dom[:2000]
    assert late in dom and "paid after expired" in dom

    dt = chromium
    dt.call("Page.enable")
    dt.call("Emulation.setDeviceMetricsOverride", width=412, height=915, deviceScaleFactor=1,
            mobile=True)
    dt.call("Page.navigate", url=d.admin_url + "/")
    dt.wait_event("Page.loadEventFired")
    assert dt.js("document.querySelector('#dead .inv').textContent") == bad
    assert dt.js("document.querySelector('h1').textContent") == "2 orders need attention"
    # Readable on a phone: nothing wider than the screen.
    assert dt.js("document.documentElement.scrollWidth") <= 412

    # The phone screenshot, the whole page long.
    height = dt.call("Page.getLayoutMetrics")["cssContentSize"]["height"]
    dt.call("Emulation.setDeviceMetricsOverride", width=412, height=int(height) + 1,
            deviceScaleFactor=1, mobile=True)
    png = base64.b64decode(dt.call("Page.captureScreenshot", format="png")["data"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    shot = SCREENSHOT or str(tmp_path / "status-page.png")
    with open(shot, "wb") as f:
        f.write(png)
    dt.call("Emulation.setDeviceMetricsOverride", width=412, height=915, deviceScaleFactor=1,
            mobile=True)

    # A real click on Retry: the mouse pressed and released on the button.
    rect = dt.js("(() => { const b = document.querySelector('#dead form button');"
                 " b.scrollIntoView({block: 'center'}); const r = b.getBoundingClientRect();"
                 " return [r.x + r.width / 2, r.y + r.height / 2]; })()")
    for kind in ("mousePressed", "mouseReleased"):
        dt.call("Input.dispatchMouseEvent", type=kind, x=rect[0], y=rect[1], button="left",
                clickCount=1)
    dt.wait_event("Page.loadEventFired")
    assert dt.js("location.pathname + location.search") == f"/?retried={job['id']}"
    assert f"Job {job['id']} is queued again" in dt.js("document.body.innerText")
    bh.wait_for(lambda: db.scalar("SELECT count(*) FROM bayarhook.job_attempts"
                                  " WHERE job_id = %s", [job["id"]]) == 2, 30 * bh.SLOW,
                what="the job run again after the click")


def test_browser_token_by_address_then_cookie(make_daemon, tmp_path):
    token = "browser-token-0123456789abcdef"
    tf = tmp_path / "admin-token"
    tf.write_text(token + "\n")
    tf.chmod(0o600)
    d = admin_daemon(make_daemon, tmp_path, fail=False, admin={"token_file": str(tf)})
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                          f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
                          d.admin_url + "/?token=" + token], capture_output=True, text=True,
                         timeout=120 * bh.SLOW).stdout
    assert "All paid orders delivered" in dom and "No payments yet today." in dom, dom[:2000]
