"""The shipped monitoring (issue 13, SPEC §8): the metrics an operator's
alerts need, contrib/prometheus/bayarhook.rules.yml accepted by promtool,
a live daemon's /metrics accepted by `promtool check metrics`, and the
Grafana dashboard naming only metrics bayarhook exposes.
"""

import json
import os
import re
import shutil
import stat
import subprocess
import textwrap

import pytest

import bh

RULES = os.path.join(bh.SOURCE_DIR, "contrib", "prometheus", "bayarhook.rules.yml")
DASHBOARD = os.path.join(bh.SOURCE_DIR, "contrib", "grafana", "bayarhook.json")
ALERT_KINDS = ("job_dead", "payment_flagged", "missed_callback", "confirm_disagreed",
               "reconcile_failing", "database_down")
# A metric name in a PromQL expression (functions and labels are lower case too,
# so only our prefixes count).
METRIC_NAME = re.compile(r"\b(bayarhook_[a-z_]+|process_start_time_seconds)\b")


def promtool():
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found (scripts/deps installs Debian's prometheus)")
    return path


def metrics_text(d):
    return bh.get(d.url("/metrics")).data.decode()


def samples(text):
    """{(name, labels text): value text} of the exposition's sample lines."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            m = re.fullmatch(r"([a-zA-Z_:][\w:]*)(\{[^}]*\})? (\S+)", line)
            assert m, line
            out[(m.group(1), m.group(2) or "")] = m.group(3)
    return out


def families(text):
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))


def exposed(name, fams):
    """Whether a name in an expression is a family or a histogram's series."""
    base = re.sub(r"_(bucket|sum|count)$", "", name)
    return name in fams or (base in fams and fams[base] == "histogram")


def test_rules_pass_promtool_and_name_real_metrics(daemon):
    p = subprocess.run([promtool(), "check", "rules", RULES], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "SUCCESS" in p.stdout
    text = open(RULES).read()
    fams = families(metrics_text(daemon))
    names = set(METRIC_NAME.findall(text))
    assert {"bayarhook_jobs", "bayarhook_jobs_oldest_pending_seconds",
            "bayarhook_payments_flagged_total", "bayarhook_missed_callbacks_total",
            "bayarhook_reconcile_last_success_timestamp_seconds", "bayarhook_database_up",
            "bayarhook_audit_suppressed_total", "bayarhook_http_requests_total"} <= names
    assert [n for n in names if not exposed(n, fams)] == []


def test_dashboard_parses_and_names_only_exposed_metrics(daemon):
    with open(DASHBOARD) as f:
        dash = json.load(f)
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 10
    fams = families(metrics_text(daemon))
    names = {n for e in exprs for n in METRIC_NAME.findall(e)}
    assert "bayarhook_jobs_oldest_pending_seconds" in names
    assert "bayarhook_reconcile_last_success_timestamp_seconds" in names
    assert [n for n in names if not exposed(n, fams)] == []


def test_live_metrics_pass_promtool_and_carry_the_operator_gauges(make_daemon, db, tmp_path):
    fail = tmp_path / "fail.py"
    fail.write_text("#!/usr/bin/python3 -S\n" + textwrap.dedent("""
        import sys
        print("courier down", file=sys.stderr)
        sys.exit(3)
    """))
    fail.chmod(fail.stat().st_mode | stat.S_IXUSR)
    d = make_daemon(config={
        "fulfillment": {"backoff_initial": "60", "backoff_max": "60", "max_attempts": "5"},
        "action.ship": {"type": "exec", "command": str(fail), "timeout": "10"},
    })
    db.execute("INSERT INTO bayarhook.reconcile_passes (started_at, finished_at, result, trigger)"
               " VALUES ('2026-12-01 01:00+00', '2026-12-01 01:00:05+00', 'completed', 'serve'),"
               "        ('2026-12-01 02:00+00', '2026-12-01 02:00:05+00', 'failed', 'serve')")
    inv, late = bh.new_invoice("mon"), bh.new_invoice("late")
    assert d.callback(inv).status == 200
    assert d.callback(late, status="expired").status == 200
    assert d.callback(late, status="paid").status == 200  # flagged

    # the worker's gauges refresh every few seconds: wait for a failed, pending job
    # to be counted and aged
    def aged():
        s = samples(metrics_text(d))
        age = float(s[("bayarhook_jobs_oldest_pending_seconds", "")])
        return s if age >= 1 and s[("bayarhook_jobs", '{state="pending"}')] != "0" else None

    s = bh.wait_for(aged, 30 * bh.SLOW, interval=0.5, what="the oldest pending job's age")
    created = db.scalar("SELECT extract(epoch FROM min(created_at)) FROM bayarhook.jobs"
                        " WHERE state = 'pending'")
    now = db.scalar("SELECT extract(epoch FROM now())")
    assert 1 <= float(s[("bayarhook_jobs_oldest_pending_seconds", "")]) <= float(now - created) + 1
    # the last completed pass, not the later failed one
    assert s[("bayarhook_reconcile_last_success_timestamp_seconds", "")] == "1796086805"
    for kind in ALERT_KINDS:
        assert s[("bayarhook_alerts_total", f'{{kind="{kind}"}}')] == "0"
    # counters print as integers
    assert s[("bayarhook_payments_flagged_total", "")] == "1"
    fams = families(metrics_text(d))
    for (name, _), value in s.items():
        base = re.sub(r"_(bucket|count)$", "", name)
        if fams.get(name) == "counter" or (name.endswith("_count") and base in fams):
            assert re.fullmatch(r"\d+", value), (name, value)

    # no job: the age is 0 again
    db.execute("UPDATE bayarhook.jobs SET state = 'cancelled', finished_at = now()"
               " WHERE state = 'pending'")
    bh.wait_for(lambda: samples(metrics_text(d))[("bayarhook_jobs_oldest_pending_seconds", "")]
                == "0", 30 * bh.SLOW, interval=0.5, what="the age back at 0")

    p = subprocess.run([promtool(), "check", "metrics"], input=metrics_text(d),
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
