"""No field can pose as another, or become an option (issue 17, SPEC §13).

Against the real daemon and PostgreSQL, with real scripts and a real HTTP
receiver:

- a genuinely signed callback whose body adds `Invoice_ID`, `STATUS`,
  `FINAL_AMOUNT` (or keys differing only by case, or only by punctuation)
  before the real keys is refused 400 `malformed`, audited, and makes no job;
- a buyer's e-mail `--output=/etc/passwd` substituted as a word of its own
  ends the job after one attempt, without running the command, its
  last_error naming the field; `allow_leading_dash = true` lets it through;
- `env =` limits the BAYAR_* variables; a 200 KiB description does not break
  an exec job that ignores it (E2BIG before);
- a control byte in the unsigned `event` does not kill a forward job;
- `send-test --url` to another listener signs with a throw-away secret
  (401 there), and with `--real-secret` is accepted.
"""

import http.server
import json
import os
import stat
import textwrap
import threading
import time

import bh

OK = {"success": True}


# ---------------------------------------------------------------------------
# helpers

def script(path, body):
    """An executable Python script (python3 -S: nothing of site-packages)."""
    with open(path, "w") as f:
        f.write("#!/usr/bin/python3 -S\n" + textwrap.dedent(body))
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(path)


# Records argv, environment and stdin of each run as one JSON line in argv[1]/runs.jsonl.
RECORDER = """
    import json, os, sys
    env = {}
    with open("/proc/self/environ", "rb") as f:
        for item in f.read().split(b"\\0"):
            if item:
                k, _, v = item.partition(b"=")
                env[k.decode()] = v.decode()
    rec = {"argv": sys.argv[1:], "env": env, "stdin": sys.stdin.read()}
    with open(os.path.join(sys.argv[1], "runs.jsonl"), "a") as f:
        f.write(json.dumps(rec) + "\\n")
    print("recorded")
"""


def recorder(tmp_path):
    out = tmp_path / "rec"
    out.mkdir()
    return script(tmp_path / "record.py", RECORDER), out


def runs(out):
    try:
        with open(out / "runs.jsonl") as f:
            return [json.loads(ln) for ln in f if ln.strip()]
    except FileNotFoundError:
        return []


def jobs(db, invoice):
    return db.query("SELECT * FROM bayarhook.jobs WHERE invoice_id = %s ORDER BY id", [invoice])


def attempts(db, job_id):
    return db.query("SELECT * FROM bayarhook.job_attempts WHERE job_id = %s ORDER BY id",
                    [job_id])


def finished_job(db, invoice, timeout=30):
    """The invoice's one job once it is succeeded or dead."""
    def done():
        js = jobs(db, invoice)
        return js[0] if js and js[0]["state"] in ("succeeded", "dead") else None
    return bh.wait_for(done, timeout * bh.SLOW, what=f"the job of {invoice} to finish")


def aliased_body(invoice, aliases, ts=None):
    """A genuinely signed callback of invoice with the alias keys placed first."""
    body, headers = bh.make_callback(invoice, ts=ts)
    real = json.loads(body)
    return json.dumps({**aliases, **real}, separators=(",", ":")).encode(), headers


# ---------------------------------------------------------------------------
# finding 4: a key posing as another

ALIASES = {
    "case-and-punctuation": {"Invoice_ID": "PAY-OTHER-1", "STATUS": "expired",
                             "FINAL_AMOUNT": 1},
    "case-only": {"Invoice_id": "PAY-OTHER-1"},
    "punctuation-only": {"invoice-id": "PAY-OTHER-1"},
    "unsigned-field-case": {"Customer_Email": "other@example.com"},
}


def test_aliased_keys_are_malformed_and_make_no_job(make_daemon, db, tmp_path):
    rec, out = recorder(tmp_path)
    d = make_daemon(config={"action.fulfill": {"type": "exec", "command": f"{rec} {out}"}})
    for name, aliases in ALIASES.items():
        invoice = bh.new_invoice("alias")
        body, headers = aliased_body(invoice, aliases)
        before = db.scalar("SELECT coalesce(max(id), 0) FROM bayarhook.callbacks")
        r = bh.post(d.callback_url, body, headers)
        assert r.status == 400, (name, r)
        assert r.json["success"] is False
        assert r.json["error"].startswith("ambiguous field names: "), (name, r.json)
        rows = bh.wait_for(lambda: db.query(
            "SELECT * FROM bayarhook.callbacks WHERE id > %s", [before]),
            5 * bh.SLOW, what=f"the audit row of {name}")
        assert len(rows) == 1, (name, rows)
        assert rows[0]["verdict"] == "malformed" and rows[0]["http_status"] == 400, rows[0]
        assert rows[0]["error"].startswith("ambiguous field names: "), rows[0]
        assert db.payment(invoice) is None, name
        assert jobs(db, invoice) == [], name

    # The same genuine callback without aliases is accepted and runs its job.
    invoice = bh.new_invoice("plain")
    r = d.callback(invoice)
    assert (r.status, r.json) == (200, OK)
    job = finished_job(db, invoice)
    assert job["state"] == "succeeded", job
    (run,) = runs(out)
    assert run["env"]["BAYAR_INVOICE_ID"] == invoice
    assert run["env"]["BAYAR_STATUS"] == "paid"
    assert run["env"]["BAYAR_FINAL_AMOUNT"] == "50123"


def test_aliased_keys_are_refused_before_the_signature(make_daemon, db):
    """A wrong signature too: still 400 malformed, not 401 — the body is not an event."""
    d = make_daemon()
    invoice = bh.new_invoice("aliasbad")
    body, headers = aliased_body(invoice, {"STATUS": "expired"})
    headers["X-Webhook-Signature"] = "0" * 64
    r = bh.post(d.callback_url, body, headers)
    assert r.status == 400 and r.json["error"] == "ambiguous field names: STATUS, status", r


# ---------------------------------------------------------------------------
# finding 5: a buyer's text as an option

DASH_EMAIL = "--output=/etc/passwd"


def dash_callback(d, tag):
    invoice = bh.new_invoice(tag)
    r = d.callback(invoice, extra={"customer_email": DASH_EMAIL})
    assert (r.status, r.json) == (200, OK)
    return invoice


def test_leading_dash_ends_the_job_at_once(make_daemon, db, tmp_path):
    rec, out = recorder(tmp_path)
    d = make_daemon(config={
        "fulfillment": {"max_attempts": "10", "backoff_initial": "1", "backoff_max": "1"},
        "action.mail": {"type": "exec", "command": f"{rec} {out} --to {{customer_email}}"},
    })
    invoice = dash_callback(d, "dash")
    job = finished_job(db, invoice)
    assert job["state"] == "dead", job
    assert job["attempts"] == 1, job  # not max_attempts: retrying cannot help
    assert "customer_email" in job["last_error"], job
    assert "allow_leading_dash" in job["last_error"], job
    (att,) = attempts(db, job["id"])
    assert att["outcome"] == "failed" and att["exit_code"] is None, att
    assert runs(out) == [], "the command ran with the buyer's option"
    # It stays dead: no second attempt after the backoff would have passed.
    time.sleep(2.5 * bh.SLOW)
    assert len(attempts(db, job["id"])) == 1
    # A value that does not start with '-' runs as before, in the same daemon.
    ok = bh.new_invoice("nodash")
    assert d.callback(ok).status == 200
    assert finished_job(db, ok)["state"] == "succeeded"
    assert runs(out)[0]["argv"] == [str(out), "--to", "john@example.com"]


def test_allow_leading_dash_lets_it_through(make_daemon, db, tmp_path):
    rec, out = recorder(tmp_path)
    d = make_daemon(config={
        "action.mail": {"type": "exec", "allow_leading_dash": "true",
                        "command": f"{rec} {out} -- {{customer_email}}"},
    })
    invoice = dash_callback(d, "dashok")
    job = finished_job(db, invoice)
    assert job["state"] == "succeeded", job
    (run,) = runs(out)
    assert run["argv"] == [str(out), "--", DASH_EMAIL]


# ---------------------------------------------------------------------------
# the exec environment

def test_env_limits_the_variables(make_daemon, db, tmp_path):
    rec, out = recorder(tmp_path)
    d = make_daemon(config={
        "action.few": {"type": "exec", "command": f"{rec} {out}",
                       "env": "invoice_id, status,final_amount"},
    })
    invoice = bh.new_invoice("envlist")
    assert d.callback(invoice).status == 200
    assert finished_job(db, invoice)["state"] == "succeeded"
    (run,) = runs(out)
    bayar = {k: v for k, v in run["env"].items() if k.startswith("BAYAR_")}
    assert bayar == {"BAYAR_INVOICE_ID": invoice, "BAYAR_STATUS": "paid",
                     "BAYAR_FINAL_AMOUNT": "50123"}, bayar
    assert run["env"]["BAYARHOOK_ATTEMPT"] == "1"
    assert json.loads(run["stdin"])["customer_email"] == "john@example.com"


def test_huge_field_does_not_break_an_exec_job_that_ignores_it(make_daemon, db, tmp_path):
    rec, out = recorder(tmp_path)
    d = make_daemon(config={
        "server": {"max_body_bytes": str(1024 * 1024)},
        "action.fulfill": {"type": "exec", "command": f"{rec} {out} {{invoice_id}}"},
    })
    invoice = bh.new_invoice("huge")
    desc = "d" * (200 * 1024)
    assert d.callback(invoice, extra={"description": desc}).status == 200
    job = finished_job(db, invoice)
    assert job["state"] == "succeeded", job  # was: E2BIG, every attempt
    (att,) = attempts(db, job["id"])
    first = att["output"].splitlines()[0]
    assert "left out" in first and "BAYAR_DESCRIPTION (204800 bytes)" in first, att["output"]
    assert "recorded" in att["output"]
    (run,) = runs(out)
    assert "BAYAR_DESCRIPTION" not in run["env"]
    assert run["env"]["BAYAR_INVOICE_ID"] == invoice
    assert json.loads(run["stdin"])["description"] == desc  # stdin keeps every field
    assert "BAYAR_DESCRIPTION" in d.log()  # and the operator hears of it


# ---------------------------------------------------------------------------
# a control byte bound for a forward header

class Receiver:
    """Records the headers of every POST and answers 200."""

    def __init__(self):
        self.got = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(n)
                outer.got.append({"headers": dict(self.headers), "body": body})
                data = b'{"success":true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def test_control_byte_in_event_does_not_kill_a_forward_job(make_daemon, db):
    rcv = Receiver()
    try:
        d = make_daemon(config={
            "action.fwd": {"type": "forward", "url": f"http://127.0.0.1:{rcv.port}/hook",
                           "sign": "bayar"},
        })
        invoice = bh.new_invoice("ctl")
        body, headers = bh.make_callback(invoice, event="payment.paid\x01\r\nX-Evil: 1")
        headers["X-Webhook-Event"] = "payment.paid"  # the header we send ourselves stays clean
        r = bh.post(d.callback_url, body, headers)
        assert (r.status, r.json) == (200, OK)
        job = finished_job(db, invoice)
        assert job["state"] == "succeeded" and job["attempts"] == 1, job
        (got,) = rcv.got
        assert got["headers"]["X-Webhook-Event"] == "payment.paid???X-Evil: 1", got["headers"]
        assert "X-Evil" not in got["headers"]
        assert got["headers"]["X-Invoice-ID"] == invoice
        # The body still carries the field as sent.
        assert json.loads(got["body"])["event"] == "payment.paid\x01\r\nX-Evil: 1"
    finally:
        rcv.close()


# ---------------------------------------------------------------------------
# send-test --url elsewhere

def test_send_test_elsewhere_signs_with_a_throwaway_secret(make_daemon, db):
    target = make_daemon(name="target")
    # Another config with the same secret, whose own listener is another port.
    other = make_daemon(name="other", start=False)
    assert other.port != target.port

    p = other.cli("send-test", "--url", target.callback_url, "--invoice", "PAY-st-throwaway")
    assert p.returncode == 1, p
    assert "throw-away secret" in p.stderr, p.stderr
    assert "HTTP 401" in p.stdout, p.stdout
    assert db.verdicts("PAY-st-throwaway") == ["bad_signature"]

    p = other.cli("send-test", "--url", target.callback_url, "--real-secret",
                  "--invoice", "PAY-st-real")
    assert p.returncode == 0, p
    assert "throw-away" not in p.stderr
    assert db.verdicts("PAY-st-real") == ["accepted"]

    # Its own listener, however the URL spells loopback: the real secret.
    p = target.cli("send-test", "--url", f"http://localhost:{target.port}/callback",
                   "--invoice", "PAY-st-own")
    assert p.returncode == 0, p
    assert "throw-away" not in p.stderr
    assert db.verdicts("PAY-st-own") == ["accepted"]


def test_env_and_allow_leading_dash_are_exec_keys(make_daemon):
    d = make_daemon(start=False, config={
        "action.a": {"type": "exec", "command": "/bin/true", "env": "invoice_id,,status"}})
    p = d.cli("check-config")
    assert p.returncode == 1 and "env: an empty field name in the list" in p.stderr, p
    d.update_config({"action.a": {"env": "invoice_id, status", "allow_leading_dash": "true"}})
    p = d.cli("check-config")
    assert p.returncode == 0, p
    d.update_config({"action.a": None,
                     "action.s": {"type": "sql", "statement": "SELECT 1",
                                  "allow_leading_dash": "true"}})
    p = d.cli("check-config")
    assert p.returncode == 1 and "allow_leading_dash" in p.stderr, p
