"""The http action (SPEC §9) against a local stand-in shaped like a shop's
REST API: templates escape hostile field values, the headers_file's headers
arrive and appear nowhere else, every attempt carries the same
Idempotency-Key (a replay a new one), 4xx answers that retrying cannot fix
kill the job at once, a private CA is trusted only through ca_file, and a
template naming a field bayar.gg does not send is a config error.
"""

import http.server
import json
import os
import ssl
import subprocess
import threading
import urllib.parse

import bh

OK = {"success": True}
TOKEN = "Bearer s3cr3t-shop-token-9f8e7d"
HOSTILE = "O'Brien \"&\" a/b?c=d\nline2 é 🙂"


class ShopServer:
    """Records each request; answers the statuses of `answers` in turn, then 200."""

    def __init__(self, answers=(), tls=None):
        self.requests = []
        self.answers = list(answers)
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                outer.requests.append({"method": self.command, "path": self.path,
                                       "headers": dict(self.headers.items()), "body": body})
                status = outer.answers.pop(0) if outer.answers else 200
                data = b'{"id": 7}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_PUT = do_PATCH = _any

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def jobs(db, invoice):
    return db.query("SELECT * FROM bayarhook.jobs WHERE invoice_id = %s ORDER BY id", [invoice])


def wait_state(db, invoice, state, n=1):
    return bh.wait_for(lambda: (lambda js: js if len(js) >= n and all(
        j["state"] == state for j in js) else None)(jobs(db, invoice)), 30 * bh.SLOW,
        what=f"{n} job(s) {state}")


def write_headers(tmp_path):
    p = tmp_path / "shop.headers"
    p.write_text(f"Authorization: {TOKEN}\nX-Shop-Tenant: t1\n")
    os.chmod(p, 0o600)
    return str(p)


def test_templates_headers_and_idempotency(make_daemon, db, tmp_path):
    shop = ShopServer(answers=[503])  # the first attempt fails: a retry follows
    try:
        d = make_daemon(config={
            "fulfillment": {"backoff_initial": "1", "max_attempts": "3"},
            "action.shop": {
                "type": "http", "method": "PUT",
                "url": f"http://127.0.0.1:{shop.port}/wp-json/wc/v3/orders/{{description}}"
                       "?note={customer_name}",
                "body": '{"status": "completed", "customer_note": "{customer_name}", '
                        '"meta": {"invoice": "{invoice_id}"}}',
                "headers_file": write_headers(tmp_path)},
        })
        inv = bh.new_invoice("http")
        assert d.callback(inv, extra={"customer_name": HOSTILE,
                                      "description": "12/34"}).json == OK
        (job,) = wait_state(db, inv, "succeeded")
        assert job["attempts"] == 2
        assert len(shop.requests) == 2
        first, second = shop.requests
        # URL: every byte of a value encoded, '/' included; the path stays one segment.
        assert first["method"] == "PUT"
        path, _, query = first["path"].partition("?")
        assert path == "/wp-json/wc/v3/orders/12%2F34"
        assert urllib.parse.parse_qs(query)["note"] == [HOSTILE]
        assert "&" not in query.split("note=", 1)[1]
        # Body: valid JSON, the value back exactly, the template's own braces kept.
        body = json.loads(first["body"])
        assert body == {"status": "completed", "customer_note": HOSTILE,
                        "meta": {"invoice": inv}}
        assert first["headers"]["Authorization"] == TOKEN
        assert first["headers"]["X-Shop-Tenant"] == "t1"
        key = first["headers"]["Idempotency-Key"]
        assert len(key) == 64 and key == second["headers"]["Idempotency-Key"]
        # The secret is on the wire only: not in the log, the attempts, `jobs`.
        atts = db.query("SELECT * FROM bayarhook.job_attempts WHERE job_id = %s", [job["id"]])
        assert TOKEN not in repr(atts) and TOKEN not in repr(jobs(db, inv))
        out = d.cli("jobs", "--invoice", inv, "--json").stdout
        assert inv in out and TOKEN not in out and "s3cr3t" not in out
        assert "s3cr3t" not in d.log()
        # A replay is a new request: a new key.
        d.cli("replay", inv, check=True)
        wait_state(db, inv, "succeeded", n=2)
        assert len(shop.requests) == 3
        assert shop.requests[2]["headers"]["Idempotency-Key"] != key
    finally:
        shop.close()


def test_default_body_is_the_event_and_post(make_daemon, db):
    shop = ShopServer()
    try:
        d = make_daemon(config={"action.tg": {
            "type": "http", "url": f"http://127.0.0.1:{shop.port}/bot/sendMessage"}})
        inv = bh.new_invoice("httpev")
        assert d.callback(inv).json == OK
        wait_state(db, inv, "succeeded")
        (req,) = shop.requests
        assert req["method"] == "POST"
        assert json.loads(req["body"])["invoice_id"] == inv
        assert "Authorization" not in req["headers"]
    finally:
        shop.close()


def test_late_paid_is_flagged_in_a_header(make_daemon, db):
    """SPEC §7: every action sees the flag; forward/http as the header
    X-Bayarhook-Flagged: <reason>, absent when none."""
    shop = ShopServer()
    try:
        d = make_daemon(config={"action.tg": {
            "type": "http", "on": "expired, paid",
            "url": f"http://127.0.0.1:{shop.port}/orders"}})
        inv = bh.new_invoice("httpflag")
        assert d.callback(inv, status="expired").json == OK
        wait_state(db, inv, "succeeded")
        assert d.callback(inv, status="paid").json == OK
        wait_state(db, inv, "succeeded", n=2)
        by = {json.loads(r["body"])["status"]: r["headers"] for r in shop.requests}
        assert set(by) == {"expired", "paid"}
        assert "X-Bayarhook-Flagged" not in by["expired"]
        assert by["paid"]["X-Bayarhook-Flagged"] == "paid after expired"
    finally:
        shop.close()


def test_permanent_4xx_is_dead_at_once(make_daemon, db):
    shop = ShopServer(answers=[404])
    try:
        d = make_daemon(config={
            "fulfillment": {"max_attempts": "5"},
            "action.shop": {"type": "http", "url": f"http://127.0.0.1:{shop.port}/o"}})
        inv = bh.new_invoice("http404")
        assert d.callback(inv).json == OK
        (job,) = wait_state(db, inv, "dead")
        assert job["attempts"] == 1 and len(shop.requests) == 1
        assert job["last_error"] == "HTTP 404 to POST"
    finally:
        shop.close()


def make_ca(tmp_path):
    """A private CA and a certificate for 127.0.0.1 it signed, by the openssl CLI."""
    def ossl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=tmp_path)
    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
         "-days", "2", "-subj", "/CN=bayarhook test CA")
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr",
         "-subj", "/CN=127.0.0.1")
    (tmp_path / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    ossl("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "srv.pem", "-days", "2", "-extfile", "ext.cnf")
    return str(tmp_path / "ca.pem"), (str(tmp_path / "srv.pem"), str(tmp_path / "srv.key"))


def test_tls_private_ca(make_daemon, db, tmp_path):
    ca, chain = make_ca(tmp_path)
    shop = ShopServer(tls=chain)
    try:
        url = f"https://127.0.0.1:{shop.port}/o/{{invoice_id}}"
        d = make_daemon(config={
            "fulfillment": {"max_attempts": "1"},
            "action.with_ca": {"type": "http", "url": url, "ca_file": ca},
            "action.fwd_ca": {"type": "forward", "url": url.replace("{invoice_id}", "f"),
                              "ca_file": ca},
            "action.without": {"type": "http", "url": url}})
        inv = bh.new_invoice("tls")
        assert d.callback(inv).json == OK
        bh.wait_for(lambda: len([j for j in jobs(db, inv) if j["state"] in
                                 ("succeeded", "dead")]) == 3, 30 * bh.SLOW, what="3 jobs done")
        by = {j["action"]: j for j in jobs(db, inv)}
        assert by["with_ca"]["state"] == "succeeded"
        assert by["fwd_ca"]["state"] == "succeeded"
        assert by["without"]["state"] == "dead"
        assert sorted(r["path"] for r in shop.requests) == sorted([f"/o/{inv}", "/o/f"])
        assert "Idempotency-Key" in [r for r in shop.requests if r["path"] == "/o/f"][0]["headers"]
    finally:
        shop.close()


def test_config_errors(make_daemon, tmp_path):
    d = make_daemon(start=False, config={"action.shop": {
        "type": "http", "url": "http://127.0.0.1:1/orders/{order_id}"}})
    r = d.cli("check-config")
    assert r.returncode != 0
    assert "url: unknown field {order_id}: bayar.gg does not send it" in r.stderr
    assert ":" in r.stderr.split("url:")[0]  # file:line: first
    bad = tmp_path / "bad.headers"
    bad.write_text("Authorization Bearer s3cr3t-no-colon\n")
    os.chmod(bad, 0o600)
    d.update_config({"action.shop": {"url": "http://127.0.0.1:1/", "headers_file": str(bad),
                                     "body": '{"x": "{nope}"}'}})
    r = d.cli("check-config")
    assert r.returncode != 0 and "body: unknown field {nope}" in r.stderr
    d.update_config({"action.shop": {"body": None}})
    r = d.cli("check-config")
    assert r.returncode != 0 and 'headers_file: line 1 is not "Name: value"' in r.stderr
    assert "s3cr3t" not in r.stderr + r.stdout
    d.update_config({"action.shop": {"headers_file": None, "ca_file": "/nonexistent/ca.pem"}})
    r = d.cli("check-config")
    assert r.returncode != 0 and "ca_file: cannot open /nonexistent/ca.pem" in r.stderr


def test_idempotency_key_for_exec_and_sql(make_daemon, db, tmp_path):
    """SPEC §12: one key per invoice, action and status, whatever the type."""
    import hashlib
    out = tmp_path / "key.txt"
    db.execute("CREATE TABLE idem (invoice text, k text)")
    d = make_daemon(config={
        "action.script": {"type": "exec",
                          "command": f"/bin/sh -c 'printf %s \"$BAYARHOOK_IDEMPOTENCY_KEY\" > {out}'"},
        "action.row": {"type": "sql", "statement":
                       "INSERT INTO idem VALUES (:invoice_id, :bayarhook_idempotency_key)"}})
    inv = bh.new_invoice("idem")
    assert d.callback(inv).json == OK
    wait_state(db, inv, "succeeded", n=2)
    want = {a: hashlib.sha256(f"{inv}|{a}|paid".encode()).hexdigest() for a in ("script", "row")}
    assert out.read_text() == want["script"]
    assert db.scalar("SELECT k FROM idem WHERE invoice = %s", [inv]) == want["row"]
