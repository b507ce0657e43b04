"""The operator's commands (issue 13, SPEC §8): jobs show, jobs --action
--since, bulk retry, payments, reconcile --history, audit --show, usage
errors for unknown values and unreadable times, and times printed with
their zone (--tz).

Everything runs against the real daemon and PostgreSQL; the failing
actions are real scripts, the refused request a real POST.
"""

import hashlib
import json
import re
import stat
import textwrap

import bh

OK = {"success": True}
# A time as every command prints it: with its offset, never cut short.
TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d\d(:\d\d)?"


def script(path, body):
    with open(path, "w") as f:
        f.write("#!/usr/bin/python3 -S\n" + textwrap.dedent(body))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def jobs(db, invoice=None, action=None):
    return db.query("SELECT * FROM bayarhook.jobs WHERE (%s::text IS NULL OR invoice_id = %s)"
                    " AND (%s::text IS NULL OR action = %s) ORDER BY id",
                    [invoice, invoice, action, action])


def wait_states(db, pred, what, timeout=30):
    return bh.wait_for(lambda: (lambda js: js if js and pred(js) else None)(jobs(db)),
                       timeout * bh.SLOW, what=what)


def usage_error(p, *words):
    """Exit 2 with one line saying what was wrong."""
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    for w in words:
        assert w in p.stderr, p.stderr


def failing_daemon(make_daemon, tmp_path, max_attempts="2"):
    fixed = tmp_path / "fixed"
    ship = script(tmp_path / "ship.py", f"""
        import os, sys
        if os.path.exists({str(fixed)!r}):
            print("shipped")
            sys.exit(0)
        print("starting shipment", flush=True)
        print("boom: courier down", file=sys.stderr)
        sys.exit(3)
    """)
    mail = script(tmp_path / "mail.py", """
        import sys
        print("no mail server", file=sys.stderr)
        sys.exit(4)
    """)
    d = make_daemon(config={
        "fulfillment": {"backoff_initial": "1", "backoff_max": "1",
                        "max_attempts": max_attempts},
        "action.ship": {"type": "exec", "command": ship, "timeout": "10"},
        "action.mail": {"type": "exec", "command": mail, "timeout": "10"},
    })
    return d, fixed


def test_jobs_show_prints_every_attempt_and_the_list_filters(make_daemon, db, tmp_path):
    d, _ = failing_daemon(make_daemon, tmp_path)
    inv = bh.new_invoice("show")
    assert d.callback(inv).json == OK
    wait_states(db, lambda js: len(js) == 2 and all(j["state"] == "dead" for j in js),
                "both jobs dead")
    (ship,) = jobs(db, inv, "ship")

    p = d.cli("jobs", "show", ship["id"], check=True)
    out = p.stdout
    assert f"job {ship['id']}" in out and inv in out and "action ship" in out
    assert "state dead" in out and "boom: courier down" in out
    attempts = re.findall(rf"^attempt (\d+)  ({TIME}) -> ({TIME})  failed  exit status 3",
                          out, re.M)
    assert [a[0] for a in attempts] == ["1", "2"], out
    # the script's output, both streams, indented under its attempt
    assert out.count("  | starting shipment") == 2 and out.count("  | boom: courier down") == 2

    doc = json.loads(d.cli("jobs", "show", ship["id"], "--json", check=True).stdout)
    assert doc["job"]["id"] == ship["id"] and doc["job"]["state"] == "dead"
    assert [(a["attempt"], a["outcome"], a["exit_code"]) for a in doc["attempts"]] == \
        [(1, "failed", 3), (2, "failed", 3)]
    assert "boom" in doc["attempts"][0]["output"]

    p = d.cli("jobs", "show", "987654321")
    assert p.returncode == 1 and "no job 987654321" in p.stderr
    assert d.cli("jobs", "show", "abc").returncode == 2
    assert d.cli("jobs", "show").returncode == 2
    assert d.cli("jobs", "show", ship["id"], "--state", "dead").returncode == 2

    # --action and --since beside --state and --invoice
    listed = json.loads(d.cli("jobs", "--action", "ship", "--since", "1h", "--json",
                              check=True).stdout)
    assert [j["id"] for j in listed] == [ship["id"]]
    assert json.loads(d.cli("jobs", "--action", "nope", "--json", check=True).stdout) == []
    assert json.loads(d.cli("jobs", "--since", "2999-01-01", "--json",
                            check=True).stdout) == []
    both = json.loads(d.cli("jobs", "--state", "dead", "--since", "2000-01-01T00:00Z",
                            "--json", check=True).stdout)
    assert len(both) == 2
    table = d.cli("jobs", "--state", "dead", check=True).stdout
    assert re.search(rf"\b{ship['id']}\b.*\bship\b.*dead.*{TIME}  ", table), table

    usage_error(d.cli("jobs", "--since", "15x"), "15x")
    usage_error(d.cli("jobs", "--since", "2026-02-30"), "2026-02-30")
    usage_error(d.cli("jobs", "--state", "finished"), "finished")


def test_retry_state_dead_requeues_many_and_says_how_many(make_daemon, db, tmp_path):
    d, fixed = failing_daemon(make_daemon, tmp_path, max_attempts="1")
    invs = [bh.new_invoice(f"bulk{i}") for i in range(3)]
    for inv in invs:
        assert d.callback(inv).json == OK
    wait_states(db, lambda js: len(js) == 6 and all(j["state"] == "dead" for j in js),
                "six dead jobs")

    p = d.cli("retry", "--state", "dead", "--since", "2999-01-01", check=True)
    assert p.stdout.strip() == "0 dead jobs queued"

    fixed.write_text("yes")
    p = d.cli("retry", "--state", "dead", "--action", "ship", "--since", "1h", check=True)
    assert p.stdout.strip() == "3 dead jobs queued"
    # the daemon is woken and runs them with a fresh budget; mail stays dead
    wait_states(db, lambda js: all(j["state"] == "succeeded" for j in js if j["action"] == "ship"),
                "the retried ship jobs to succeed")
    assert all(j["state"] == "dead" for j in jobs(db, action="mail"))
    assert all(j["attempts"] == 1 for j in jobs(db, action="ship"))

    p = d.cli("retry", "--state", "dead", check=True)
    assert p.stdout.strip() == "3 dead jobs queued"

    usage_error(d.cli("retry", "--state", "pending"), "--state dead")
    usage_error(d.cli("retry", "--state", "bogus"), "bogus")
    usage_error(d.cli("retry", "--state", "dead", "--since", "yesterday"), "yesterday")
    assert d.cli("retry", "--action", "ship").returncode == 2
    assert d.cli("retry", "5", "--state", "dead").returncode == 2


def test_payments_filters_and_json(make_daemon, db):
    d = make_daemon()
    paid, late, pending = (bh.new_invoice(t) for t in ("pay", "late", "pend"))
    assert d.callback(paid, status="paid").json == OK
    assert d.callback(pending, status="pending").json == OK
    assert d.callback(late, status="expired").json == OK
    assert d.callback(late, status="paid").json == OK  # paid after expired: flagged

    def invoices(*args):
        rows = json.loads(d.cli("payments", "--json", *args, check=True).stdout)
        return {r["invoice_id"]: r for r in rows}

    assert set(invoices()) == {paid, late, pending}
    assert set(invoices("--status", "paid")) == {paid, late}
    flagged = invoices("--flagged")
    assert set(flagged) == {late} and flagged[late]["flag"] == "paid after expired"
    assert set(invoices("--status", "pending", "--since", "10m")) == {pending}
    assert invoices("--since", "2999-12-31T23:59:59+07:00") == {}
    assert flagged[late]["jobs"] == 0  # no action configured

    table = d.cli("payments", "--flagged", "--tz", "Asia/Jakarta", check=True).stdout
    (line,) = [x for x in table.splitlines() if late in x]
    assert "paid after expired" in line and re.search(r"\+07\b", line), line
    assert "INVOICE" in table.splitlines()[0]

    usage_error(d.cli("payments", "--status", "refunded"), "refunded")
    usage_error(d.cli("payments", "--since", "15x"), "15x")
    assert d.cli("payments", "--limit", "x").returncode == 2


def test_reconcile_history_lists_past_passes(make_daemon, db):
    d = make_daemon(start=False)
    d.migrate()
    db.execute("INSERT INTO bayarhook.reconcile_passes (started_at, finished_at, checked, found,"
               " errors, requests, pages, result, trigger, runner, note) VALUES"
               " ('2026-12-01 01:00+00', '2026-12-01 01:00:02.5+00', 4, 1, 0, 6, 1,"
               "  'completed', 'serve', 'h:1', NULL),"
               " ('2026-12-01 02:00+00', '2026-12-01 02:00:30+00', 0, 0, 1, 3, 0,"
               "  'failed', 'cli', 'h:2', 'gateway answered 503')")
    out = d.cli("reconcile", "--history", "--tz", "UTC", check=True).stdout.splitlines()
    assert out[0].split()[:3] == ["PASS", "STARTED", "SECS"]
    first = [x for x in out if "completed" in x][0]
    assert "2026-12-01 01:00:00+00" in first and "2.5" in first and "serve" in first
    assert re.search(r"\b6\s+4\s+1\s+0\b", first), first  # requests checked found errors
    failed = [x for x in out if "failed" in x][0]
    assert "gateway answered 503" in failed

    out = d.cli("reconcile", "--history", "--limit", "1", "--tz", "Asia/Jakarta",
                check=True).stdout
    assert "failed" in out and "completed" not in out and "2026-12-01 09:00:00+07" in out
    rows = json.loads(d.cli("reconcile", "--history", "--json", check=True).stdout)
    assert [(r["result"], r["requests"], r["found"]) for r in rows] == \
        [("completed", 6, 1), ("failed", 3, 0)]

    assert d.cli("reconcile", "--history", "--once").returncode == 2
    assert d.cli("reconcile", "--history", "--limit", "x").returncode == 2
    assert d.cli("reconcile").returncode == 2
    usage_error(d.cli("reconcile", "--history", "--tz", "Mars/Olympus"), "Mars/Olympus")


def test_audit_show_prints_one_row_whole(make_daemon, db):
    d = make_daemon()
    inv = bh.new_invoice("forged")
    body, headers = bh.make_callback(inv, secret="not-the-secret-at-all-0123456789")
    r = bh.post(d.callback_url, body, headers)
    assert r.status == 401
    (row,) = db.wait_callbacks(1, inv)

    out = d.cli("audit", "--show", row["id"], "--tz", "Asia/Jakarta", check=True).stdout
    fields = dict(re.findall(r"^(\w+) +(.*)$", out, re.M))
    assert fields["verdict"] == "bad_signature" and fields["http_status"] == "401"
    assert fields["invoice_id"] == inv and fields["error"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+07", fields["received"])
    raw = body if isinstance(body, bytes) else body.encode()
    assert fields["body_length"] == str(len(raw))
    assert fields["body_sha256"] == hashlib.sha256(raw).hexdigest()
    assert fields["repeat"] == "1" and fields["suppressed"] == "0"
    sig = headers.get("X-Webhook-Signature")
    assert "headers:" in out and f"\n  X-Webhook-Signature: {sig}\n" in out, out
    assert out.endswith("body:\n" + raw.decode() + "\n")

    doc = json.loads(d.cli("audit", "--show", row["id"], "--json", check=True).stdout)
    assert doc["verdict"] == "bad_signature" and doc["body_sha256"] == fields["body_sha256"]

    p = d.cli("audit", "--show", "987654321")
    assert p.returncode == 1 and "no audit row" in p.stderr
    assert d.cli("audit", "--show", "x").returncode == 2
    assert d.cli("audit", "--show", row["id"], "--verdict", "accepted").returncode == 2


def test_audit_usage_errors_and_zones(make_daemon, db):
    d = make_daemon()
    inv = bh.new_invoice("zone")
    assert d.callback(inv).json == OK

    usage_error(d.cli("audit", "--verdict", "nope"), "nope")
    usage_error(d.cli("audit", "--verdict", "unavailable"), "unavailable")  # never stored
    usage_error(d.cli("audit", "--since", "15x"), "15x")
    usage_error(d.cli("audit", "--tz", "Nowhere/Land"), "Nowhere/Land")

    utc = d.cli("audit", "--invoice", inv, "--tz", "UTC", check=True).stdout
    wib = d.cli("audit", "--invoice", inv, "--tz", "Asia/Jakarta", check=True).stdout
    t_utc = re.search(rf"({TIME})", utc).group(1)
    t_wib = re.search(rf"({TIME})", wib).group(1)
    assert t_utc.endswith("+00") and t_wib.endswith("+07"), (utc, wib)
    assert int(t_wib[11:13]) == (int(t_utc[11:13]) + 7) % 24
    # the whole time, then the client: nothing cut off mid-zone
    assert re.search(rf"{TIME} +127\.0\.0\.1", utc), utc
    (row,) = json.loads(d.cli("audit", "--since", "1h", "--json", check=True).stdout)
    assert row["invoice_id"] == inv and "received" not in row
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+\+00:00",
                        json.loads(d.cli("audit", "--json", "--tz", "UTC",
                                         check=True).stdout)[0]["received_at"])
    assert json.loads(d.cli("audit", "--since", "2999-01-01", "--json",
                            check=True).stdout) == []
