"""Alerts (issue 13, SPEC §8): every kind raised where it happens, kept in
bayarhook.alerts and delivered at least once to [alert] command (a script
recording its stdin and environment) and [alert] url (a local HTTP server
recording the POSTs); retried while the command fails; min_interval merges
and counts; a hanging alert command never slows a callback.

Real PostgreSQL, the real binary, the fake bayar.gg (fake_gateway.py).
"""

import http.server
import json
import stat
import threading
import time

import pytest

import bh

OK = {"success": True}

RECORDER = """#!/usr/bin/python3 -S
import json, os, sys
data = sys.stdin.read()
with open({out!r}, "a") as f:
    f.write(json.dumps({{"env": os.environ.get("BAYARHOOK_ALERT"),
                        "path": os.environ.get("PATH"),
                        "home": os.environ.get("HOME"),
                        "alert": json.loads(data)}}) + "\\n")
"""


class Hook:
    """A local HTTP server recording every POST (path, headers, JSON body)."""

    def __init__(self, status=200):
        self.posts = []
        self.status = status
        hook = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                hook.posts.append({"path": self.path, "headers": dict(self.headers),
                                   "body": json.loads(body)})
                self.send_response(hook.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.close()


def executable(path, text):
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(path)


def make_alerting(make_daemon, tmp_path, hook=None, config=None, gateway=None, start=True,
                  command=True):
    """A daemon with [alert] command = the recorder and/or url = the hook."""
    out = tmp_path / "alerts.jsonl"
    alert = {"min_interval": "0", "timeout": "10"}
    if command:
        alert["command"] = executable(tmp_path / "alert.py", RECORDER.format(out=str(out)))
    if hook is not None:
        alert["url"] = hook.url
    cfg = {"alert": alert, "fulfillment": {"backoff_initial": "1", "backoff_max": "2"}}
    for sec, keys in (config or {}).items():
        cfg.setdefault(sec, {}).update(keys)
    d = make_daemon(config=cfg, gateway_url=gateway.base_url if gateway else None,
                    start=start)
    d.alerts_path = out
    return d


def recorded(d, kind=None):
    try:
        lines = d.alerts_path.read_text().splitlines()
    except FileNotFoundError:
        return []
    got = [json.loads(line) for line in lines if line.strip()]
    return [g for g in got if kind is None or g["alert"]["kind"] == kind]


def wait_recorded(d, kind, n=1, timeout=30):
    return bh.wait_for(lambda: (lambda r: r if len(r) >= n else None)(recorded(d, kind)),
                       timeout * bh.SLOW, what=f"{n} {kind} alert(s) run through the command")


def wait_posted(hook, kind, timeout=30):
    return bh.wait_for(lambda: [p for p in hook.posts if p["body"]["kind"] == kind],
                       timeout * bh.SLOW, what=f"a {kind} alert POSTed")


def metric(d, kind):
    text = bh.get(d.url("/metrics")).data.decode()
    want = f'bayarhook_alerts_total{{kind="{kind}"}}'
    for line in text.splitlines():
        if line.split(" ")[0] == want:
            return line.split(" ")[1]
    return None


def alert_rows(db, kind=None):
    return db.query("SELECT * FROM bayarhook.alerts WHERE %s::text IS NULL OR kind = %s"
                    " ORDER BY id", [kind, kind])


def check_shape(alert, kind, subject):
    assert set(alert) >= {"kind", "subject", "detail", "created_at", "suppressed"}, alert
    assert alert["kind"] == kind and alert["subject"] == subject, alert
    assert isinstance(alert["detail"], dict) and alert["suppressed"] == 0, alert
    assert alert["created_at"][:2] == "20", alert


def failing_action(tmp_path):
    return {"action.ship": {"type": "exec", "on": "paid", "max_attempts": "1",
                            "command": executable(tmp_path / "ship.sh",
                                                  "#!/bin/sh\necho out of stock\nexit 3\n")}}


# ---------------------------------------------------------------------------
# each kind, to a command and to a URL

def test_job_dead_reaches_the_command_and_the_url(make_daemon, db, tmp_path, hook):
    d = make_alerting(make_daemon, tmp_path, hook, config=failing_action(tmp_path))
    inv = bh.new_invoice("dead")
    assert d.callback(inv).json == OK
    got = wait_recorded(d, "job_dead")[0]
    check_shape(got["alert"], "job_dead", "ship")
    assert got["env"] == "job_dead" and got["path"] and got["home"] is None
    det = got["alert"]["detail"]
    job = db.query("SELECT * FROM bayarhook.jobs WHERE invoice_id = %s", [inv])[0]
    assert det["invoice"] == inv and det["job_id"] == job["id"]
    assert "exit" in det["last_error"] or "3" in det["last_error"], det
    post = wait_posted(hook, "job_dead")[0]
    assert post["body"] == got["alert"]
    assert post["headers"]["Content-Type"] == "application/json"
    row = bh.wait_for(lambda: [r for r in alert_rows(db, "job_dead") if r["delivered_at"]], 10,
                      what="delivered_at")[0]
    assert row["state"] == "sent" and row["subject"] == "ship" and row["attempts"] == 1
    assert bh.wait_for(lambda: metric(d, "job_dead") == "1", 10, what="the metric")


def test_payment_flagged_by_a_late_paid(make_daemon, db, tmp_path, hook):
    d = make_alerting(make_daemon, tmp_path, hook)
    inv = bh.new_invoice("late")
    assert d.callback(inv, status="expired").json == OK
    assert d.callback(inv, status="paid").json == OK
    got = wait_recorded(d, "payment_flagged")[0]["alert"]
    check_shape(got, "payment_flagged", inv)
    assert got["detail"]["invoice"] == inv and "paid after expired" in got["detail"]["reason"]
    assert wait_posted(hook, "payment_flagged")[0]["body"]["subject"] == inv
    assert len(alert_rows(db, "payment_flagged")) == 1


def test_confirm_disagreed(make_daemon, db, tmp_path, hook, gateway):
    inv = bh.new_invoice("disagree")
    gateway.add_payment(inv, status="paid", final_amount=60000)
    d = make_alerting(make_daemon, tmp_path, hook, gateway=gateway,
                      config={"security": {"confirm_with_api": "true"},
                              "action.ship": {"type": "exec", "on": "paid",
                                              "command": "/bin/true"}})
    assert d.callback(inv, final_amount=50123).json == OK
    got = wait_recorded(d, "confirm_disagreed")[0]["alert"]
    check_shape(got, "confirm_disagreed", inv)
    assert "final_amount differs" in got["detail"]["reason"]
    assert got["detail"]["gateway_final_amount"] == "60000"
    assert wait_posted(hook, "confirm_disagreed")[0]["body"]["subject"] == inv
    # The refused job is dead too, and says so on its own.
    assert wait_recorded(d, "job_dead")[0]["alert"]["detail"]["invoice"] == inv


def test_missed_callback(make_daemon, db, tmp_path, hook, gateway):
    inv = bh.new_invoice("missed")
    gateway.add_payment(inv, status="paid", final_amount=50123)
    d = make_alerting(make_daemon, tmp_path, hook, gateway=gateway,
                      config={"reconciler": {"enabled": "true", "interval": "1",
                                             "min_age": "60", "lookback": "172800",
                                             "max_requests_per_minute": "6000"}})
    got = wait_recorded(d, "missed_callback")[0]["alert"]
    check_shape(got, "missed_callback", inv)
    assert got["detail"]["invoice"] == inv
    assert wait_posted(hook, "missed_callback")[0]["body"]["subject"] == inv
    assert [r["subject"] for r in alert_rows(db, "missed_callback")] == [inv]


def test_missed_callback_found_by_reconcile_once(make_daemon, db, tmp_path, hook, gateway):
    # The command has no delivery of its own: it records the alert, and the
    # daemon (reconciler off, so it cannot have found it itself) delivers it.
    inv = bh.new_invoice("missed-cli")
    gateway.add_payment(inv, status="paid", final_amount=50123)
    d = make_alerting(make_daemon, tmp_path, hook, gateway=gateway,
                      config={"reconciler": {"enabled": "false", "min_age": "60",
                                             "lookback": "172800"}})
    p = d.cli("reconcile", "--once", timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "1 alert(s) recorded for serve to deliver" in p.stdout, p.stdout
    got = wait_recorded(d, "missed_callback")[0]["alert"]
    check_shape(got, "missed_callback", inv)
    assert got["detail"]["invoice"] == inv
    assert wait_posted(hook, "missed_callback")[0]["body"]["subject"] == inv
    assert [r["subject"] for r in alert_rows(db, "missed_callback")] == [inv]


def test_reconcile_failing_after_three_failed_passes(make_daemon, db, tmp_path, hook, gateway):
    gateway.api_key = "a_different_key"  # every pass fails at once
    d = make_alerting(make_daemon, tmp_path, hook, gateway=gateway,
                      config={"reconciler": {"enabled": "true", "interval": "1"},
                              "alert": {"min_interval": "300"}})
    got = wait_recorded(d, "reconcile_failing", timeout=60)[0]["alert"]
    check_shape(got, "reconcile_failing", "")
    assert "pass_id" in got["detail"]
    failed = db.query("SELECT id FROM bayarhook.reconcile_passes WHERE result = 'failed'"
                      " ORDER BY id")
    assert len(failed) >= 3
    # Raised on the third failure, not before.
    first = alert_rows(db, "reconcile_failing")[0]
    assert first["detail"]["pass_id"] == failed[2]["id"]
    assert wait_posted(hook, "reconcile_failing")[0]["body"]["subject"] == ""


def test_database_down_is_sent_while_it_is_down(make_daemon, db, pg, tmp_path, hook):
    d = make_alerting(make_daemon, tmp_path, hook,
                      config={"alert": {"database_down_after": "1"}})

    def db_up():
        text = bh.get(d.url("/metrics")).data.decode()
        return [ln for ln in text.splitlines() if ln.startswith("bayarhook_database_up ")][0]

    pg.stop("immediate")
    try:
        bh.wait_for(lambda: db_up().endswith(" 0"), 30, what="the daemon to see it down")
        # Sent straight, while the database is still away.
        got = wait_recorded(d, "database_down", timeout=30)[0]["alert"]
        assert got["id"] is None
        check_shape(got, "database_down", "")
        assert got["detail"]["seconds"] >= 1 and got["detail"]["down_since"].endswith("Z")
        assert wait_posted(hook, "database_down")[0]["body"] == got
    finally:
        pg.start()
    # Back: the row is written for the record, as sent, and not sent again.
    row = bh.wait_for(lambda: alert_rows(db, "database_down"), 60, what="the row")[0]
    assert row["state"] == "sent" and row["delivered_at"] is not None
    assert row["detail"]["down_since"] == got["detail"]["down_since"]
    db.execute("SELECT bayarhook.alert_raise('job_dead', 'after', '{}')")
    wait_recorded(d, "job_dead")  # a later alert went through: the queue is past it
    assert len(recorded(d, "database_down")) == 1
    assert len([p for p in hook.posts if p["body"]["kind"] == "database_down"]) == 1
    assert metric(d, "database_down") == "1"


def test_database_down_when_it_was_never_up(make_daemon, db, pg, tmp_path, hook):
    # Started while the database is away: no up-to-down change is ever seen,
    # yet the outage counts from the start and database_down is sent.
    d = make_alerting(make_daemon, tmp_path, hook, start=False,
                      config={"alert": {"database_down_after": "1"}})
    d.migrate()
    pg.stop("immediate")
    try:
        d.start(migrate=False)
        bh.wait_for(lambda: "database not reachable yet" in d.log(), 30,
                    what="the daemon to serve without its database")
        got = wait_recorded(d, "database_down", timeout=30)[0]["alert"]
        check_shape(got, "database_down", "")
        assert got["detail"]["seconds"] >= 1
        text = bh.get(d.url("/metrics")).data.decode()
        assert "bayarhook_database_up 0" in text.splitlines()
    finally:
        pg.start()
    row = bh.wait_for(lambda: alert_rows(db, "database_down"), 60, what="the row")[0]
    assert row["state"] == "sent"


def test_database_down_without_a_receiver_is_written_once_it_is_back(make_daemon, db, pg,
                                                                     tmp_path):
    # Nowhere to send it meanwhile (kinds leaves it out of direct delivery too):
    # the row is written when the database is back, pending like any other.
    d = make_alerting(make_daemon, tmp_path,
                      config={"alert": {"database_down_after": "1", "kinds": "job_dead"}})
    pg.stop("immediate")
    try:
        bh.wait_for(lambda: "database down pool=ingest" in d.log(), 30,
                    what="the daemon to see it down")
        time.sleep(1.5)  # the outage itself must outlast database_down_after
    finally:
        pg.start()
    row = bh.wait_for(lambda: alert_rows(db, "database_down"), 60, what="the row")[0]
    assert row["detail"]["seconds"] >= 1
    bh.wait_for(lambda: alert_rows(db, "database_down")[0]["state"] == "ignored", 10,
                what="set aside by kinds")
    assert recorded(d, "database_down") == []


def test_a_short_outage_raises_nothing(make_daemon, db, tmp_path, hook):
    # database_down_after (default 60) not reached: the rows say so.
    d = make_alerting(make_daemon, tmp_path, hook, config=failing_action(tmp_path))
    assert d.callback(bh.new_invoice("x")).json == OK
    wait_recorded(d, "job_dead")
    assert alert_rows(db, "database_down") == []


# ---------------------------------------------------------------------------
# delivery

def test_a_failing_command_is_retried_until_it_succeeds(make_daemon, db, tmp_path):
    count = tmp_path / "tries"
    out = tmp_path / "alerts.jsonl"
    flaky = executable(tmp_path / "flaky.py", f"""#!/usr/bin/python3 -S
import os, sys
data = sys.stdin.read()
n = int(open({str(count)!r}).read()) if os.path.exists({str(count)!r}) else 0
open({str(count)!r}, "w").write(str(n + 1))
if n < 2:
    print("mail server down")
    sys.exit(75)
open({str(out)!r}, "a").write(data + "\\n")
""")
    d = make_daemon(config={"alert": {"command": flaky, "min_interval": "0"},
                            "fulfillment": {"backoff_initial": "1", "backoff_max": "2"}})
    db.execute("SELECT bayarhook.alert_raise('job_dead', 'ship', '{\"invoice\": \"INV1\"}')")
    row = bh.wait_for(lambda: [r for r in alert_rows(db) if r["delivered_at"]], 30,
                      what="delivery after two failures")[0]
    assert row["attempts"] == 3 and row["state"] == "sent"
    assert row["last_error"] is None  # cleared once sent; the log keeps the failures
    assert count.read_text() == "3"
    sent = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(sent) == 1 and sent[0]["detail"] == {"invoice": "INV1"}
    log = d.log()
    assert "not delivered (attempt 1" in log and "not delivered (attempt 2" in log
    assert "command exited with 75: mail server down" in log


def test_a_failing_url_is_retried(make_daemon, db, tmp_path):
    h = Hook(status=503)
    try:
        make_alerting(make_daemon, tmp_path, h, command=False)
        db.execute("SELECT bayarhook.alert_raise('payment_flagged', 'INV2', '{}')")
        bh.wait_for(lambda: len(h.posts) >= 2, 30, what="a retried POST")
        row = alert_rows(db)[0]
        assert row["delivered_at"] is None and "HTTP 503" in row["last_error"]
        h.status = 200
        row = bh.wait_for(lambda: [r for r in alert_rows(db) if r["delivered_at"]], 30,
                          what="delivered once the URL answers 200")[0]
        assert row["state"] == "sent" and row["attempts"] >= 3
    finally:
        h.close()


def test_min_interval_holds_back_and_counts_suppressed(make_daemon, db, tmp_path):
    d = make_alerting(make_daemon, tmp_path, config={"alert": {"min_interval": "3"}})
    raise_ = "SELECT bayarhook.alert_raise('job_dead', 'ship', %s::jsonb)"
    db.execute(raise_, [json.dumps({"n": 1})])
    wait_recorded(d, "job_dead", 1)
    db.execute(raise_, [json.dumps({"n": 2})])
    db.execute(raise_, [json.dumps({"n": 3})])
    # Another subject is not held back by ship's interval.
    db.execute("SELECT bayarhook.alert_raise('job_dead', 'mail', '{}')")
    bh.wait_for(lambda: [r for r in recorded(d) if r["alert"]["subject"] == "mail"], 10,
                what="the other subject at once")
    assert [r["alert"]["detail"] for r in recorded(d) if r["alert"]["subject"] == "ship"] == \
        [{"n": 1}]
    got = wait_recorded(d, "job_dead", 3, timeout=20)
    ship = [g["alert"] for g in got if g["alert"]["subject"] == "ship"]
    assert [a["suppressed"] for a in ship] == [0, 1] and ship[1]["detail"] == {"n": 3}
    rows = {r["detail"].get("n"): r for r in alert_rows(db) if r["subject"] == "ship"}
    assert rows[2]["state"] == "merged" and rows[2]["merged_into"] == rows[3]["id"]
    assert rows[2]["delivered_at"] is not None
    gap = (rows[3]["delivered_at"] - rows[1]["delivered_at"]).total_seconds()
    assert gap >= 3, gap


def test_kinds_filters(make_daemon, db, tmp_path):
    d = make_alerting(make_daemon, tmp_path, config={"alert": {"kinds": "job_dead"}})
    db.execute("SELECT bayarhook.alert_raise('payment_flagged', 'INV3', '{}')")
    db.execute("SELECT bayarhook.alert_raise('job_dead', 'ship', '{}')")
    wait_recorded(d, "job_dead")
    bh.wait_for(lambda: alert_rows(db, "payment_flagged")[0]["state"] == "ignored", 10,
                what="the unwanted kind set aside")
    assert recorded(d, "payment_flagged") == []


def test_unknown_kind_is_a_config_error(make_daemon, tmp_path):
    d = make_daemon(config={"alert": {"kinds": "job_dead, jobdead"}}, start=False)
    p = d.cli("check-config")
    assert p.returncode != 0 and "unknown kind 'jobdead'" in (p.stderr + p.stdout)


def test_a_hanging_alert_command_never_blocks_callbacks_or_jobs(make_daemon, db, tmp_path):
    started = tmp_path / "started"
    hang = executable(tmp_path / "hang.sh",
                      f"#!/bin/sh\ntouch {started}\nexec sleep 60\n")
    runs = tmp_path / "runs"
    act = executable(tmp_path / "act.sh", f"#!/bin/sh\necho $BAYAR_INVOICE_ID >> {runs}\n")
    d = make_daemon(config={"alert": {"command": hang, "timeout": "60"},
                            "action.ship": {"type": "exec", "on": "paid", "command": act}})
    db.execute("SELECT bayarhook.alert_raise('job_dead', 'x', '{}')")
    bh.wait_for(started.exists, 20, what="the alert command to hang")
    invs = [bh.new_invoice("fast") for _ in range(20)]
    for inv in invs:
        t0 = time.monotonic()
        r = d.callback(inv)
        assert r.json == OK and r.status == 200
        assert time.monotonic() - t0 < 1.0
    bh.wait_for(lambda: runs.exists() and len(runs.read_text().split()) == 20, 30,
                what="every job run while the alert hangs")
    assert started.exists() and alert_rows(db)[0]["delivered_at"] is None


def test_telegram_body_and_url_from_a_secret_file(make_daemon, db, tmp_path, hook):
    secret_url = hook.url.replace("/hook", "/bot123456:SECRET-token/sendMessage")
    url_file = tmp_path / "telegram-url"
    url_file.write_text(secret_url + "\n")
    url_file.chmod(0o600)
    d = make_daemon(config={"alert": {"url_file": str(url_file),
                                      "telegram_chat_id": "987654321"}})
    db.execute("SELECT bayarhook.alert_raise('missed_callback', 'INV4', '{\"invoice\": \"INV4\"}')")
    post = bh.wait_for(lambda: hook.posts, 20, what="the sendMessage POST")[0]
    assert post["path"] == "/bot123456:SECRET-token/sendMessage"
    assert post["body"]["chat_id"] == "987654321"
    text = post["body"]["text"]
    assert text.startswith("bayarhook alert: missed_callback\n")
    alert = json.loads(text.split("\n", 1)[1])
    assert alert["kind"] == "missed_callback" and alert["subject"] == "INV4"
    bh.wait_for(lambda: alert_rows(db)[0]["delivered_at"], 10, what="delivered_at")
    # The token never reaches the log or check-config's summary.
    p = d.cli("check-config")
    assert p.returncode == 0, p.stderr
    assert "SECRET-token" not in p.stdout + p.stderr and "SECRET-token" not in d.log()


def test_url_file_must_hold_a_url(make_daemon, tmp_path):
    bad = tmp_path / "telegram-url"
    bad.write_text("123456:SECRET-token\n")  # the bare token, a usual mistake
    bad.chmod(0o600)
    d = make_daemon(config={"alert": {"url_file": str(bad)}}, start=False)
    p = d.cli("check-config")
    out = p.stdout + p.stderr
    assert p.returncode != 0 and "url_file" in out and "http:// or https://" in out, out
    assert "SECRET-token" not in out
