"""The audit as evidence (issue 15, SPEC §11): callbacks partitioned by
month (migration 011 converts a populated table), retention that drops whole
months and leaves the chain's anchors, export, and the daemon's
least-privileged role.
"""

import csv
import json
import os
import secrets
import subprocess
import sys
import time

import psycopg
import pytest

import bh

OK = {"success": True}


def at_version_010(db):
    """A database made by the numbered files up to 010: before partitioning."""
    assert bh.schema_at(db, 10)[-1] == "010_http_actions.sql"


def partitions(db):
    """{name: (from, to)} of the monthly partitions, the default as (None, None)."""
    out = {}
    for name, bound in db.rows(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'bayarhook.callbacks'::regclass"):
        out[name] = bound
    return out


def month_name(months_ago):
    """callbacks_yYYYYmMM of the UTC month months_ago before this one."""
    t = time.gmtime()
    y, m = t.tm_year, t.tm_mon - months_ago
    while m < 1:
        y, m = y - 1, m + 12
    while m > 12:
        y, m = y + 1, m - 12
    return f"callbacks_y{y:04d}m{m:02d}"


def month_first(months_ago):
    """The timestamptz literal of the UTC month's beginning, months_ago before this one."""
    n = month_name(months_ago)
    return f"{n[11:15]}-{n[16:18]}-01 00:00:00+00"


def month_start(months_ago):
    """A timestamptz literal a day into the UTC month months_ago before this one."""
    return month_first(months_ago).replace("-01 00:00", "-02 12:00")


def new_role(db, prefix="bh_daemon"):
    name = f"{prefix}_{secrets.token_hex(4)}"
    db.execute(f'CREATE ROLE "{name}" LOGIN')
    return name


def as_role(db, role):
    return db.conninfo.replace(f"user={bh.PgCluster.SUPERUSER}", f"user={role}")


# ---------------------------------------------------------------------------
# 011 converts a populated table

TRICKY = ['quote " comma , semicolon ;', "new\nline\r\nand tab\t", "back\\slash \\N \\.",
          "unicode: Rp 50.000 — ✓ 日本", "ctrl \x01\x02\x1f", "", "\\."]


def fill_old_table(db, n=3000):
    """n rows spread over the last seven months and into the next one."""
    db.execute(
        "INSERT INTO bayarhook.callbacks (received_at, remote_addr, peer_addr, invoice_id,"
        " event, status, verdict, http_status, error, method, headers, body, secret_index,"
        " signature_valid, body_length, body_sha256, repeat, suppressed, headers_dropped)"
        " SELECT now() - make_interval(hours => (i * 53) % (24 * 210)),"
        "  '203.0.113.' || (i % 250), '127.0.0.1', 'INV-' || i, 'payment.paid', 'paid',"
        "  (ARRAY['accepted', 'malformed', 'bad_signature', 'unsigned'])[1 + i % 4],"
        "  200 + i % 3, CASE WHEN i % 5 = 0 THEN 'why ' || i END, 'POST',"
        "  jsonb_build_object('x-webhook-timestamp', i::text), 'body ' || i || E' \"q\",\\\\',"
        "  i % 2, i % 3 = 0, i, sha256(('b' || i)::bytea), 1 + i % 4, i % 7, i % 2"
        f" FROM generate_series(1, {int(n)}) AS i")
    # clock skew: a row from next month, and id gaps (ids lost to rolled-back batches)
    db.execute("INSERT INTO bayarhook.callbacks (received_at, verdict, http_status, body)"
               " VALUES (now() + interval '35 days', 'malformed', 400, %s)", [TRICKY[0]])
    db.execute("SELECT setval('bayarhook.callbacks_id_seq',"
               " nextval('bayarhook.callbacks_id_seq') + 10)")
    for body in TRICKY[1:]:
        db.execute("INSERT INTO bayarhook.callbacks (verdict, http_status, body)"
                   " VALUES ('malformed', 400, %s)", [body])


def snapshot(db):
    return {r[0]: r[1] for r in db.rows(
        "SELECT id, to_jsonb(c) FROM bayarhook.callbacks c ORDER BY id")}


def test_011_converts_a_populated_table(make_daemon, db):
    at_version_010(db)
    fill_old_table(db)
    reader = new_role(db, "bh_reader")
    db.execute(f'GRANT SELECT, INSERT ON bayarhook.callbacks TO "{reader}"')
    before = snapshot(db)
    assert len(before) == 3000 + len(TRICKY)
    # every month from the oldest row's to the newest's, and three ahead
    months = {r[0] for r in db.rows(
        "SELECT to_char(m, '\"callbacks_y\"YYYY\"m\"MM') FROM generate_series("
        " (SELECT date_trunc('month', min(received_at) AT TIME ZONE 'UTC')"
        "  FROM bayarhook.callbacks),"
        " greatest((SELECT max(received_at) AT TIME ZONE 'UTC' FROM bayarhook.callbacks),"
        "          now() AT TIME ZONE 'UTC' + interval '3 months'),"
        " interval '1 month') AS m")}
    assert len(months) >= 10
    last_id = max(before)

    d = make_daemon(start=False)
    p = d.migrate()
    assert "applied 011_audit_partitions.sql" in p.stdout, p.stdout

    # every row, ids and all columns the same (011 only adds columns)
    after = snapshot(db)
    assert sorted(after) == sorted(before)
    for i, row in before.items():
        assert {k: after[i][k] for k in row} == row, i
        assert after[i]["lane"] is None and after[i]["mac"] is None
    # partitioned by month, each row in its month, none left in the default
    assert db.scalar("SELECT relkind FROM pg_class"
                     " WHERE oid = 'bayarhook.callbacks'::regclass") == "p"
    parts = partitions(db)
    assert "callbacks_default" in parts and parts["callbacks_default"] == "DEFAULT"
    assert months <= set(parts), sorted(months - set(parts))
    assert db.count("callbacks_default") == 0
    misplaced = db.scalar(
        "SELECT count(*) FROM bayarhook.callbacks c WHERE c.tableoid::regclass::text <>"
        " 'bayarhook.callbacks_' || to_char(c.received_at AT TIME ZONE 'UTC', '\"y\"YYYY\"m\"MM')")
    assert misplaced == 0
    # the constraints, comments, sequence and grants survived
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("INSERT INTO bayarhook.callbacks (verdict, http_status) VALUES ('bogus', 1)")
    with pytest.raises(psycopg.errors.NotNullViolation):
        db.execute("INSERT INTO bayarhook.callbacks (verdict) VALUES ('accepted')")
    assert "SHA-256" in db.scalar(
        "SELECT col_description(a.attrelid, a.attnum) FROM pg_attribute a"
        " WHERE a.attrelid = 'bayarhook.callbacks'::regclass AND a.attname = 'body_sha256'")
    assert db.scalar("SELECT pg_get_serial_sequence('bayarhook.callbacks', 'id')") \
        == "bayarhook.callbacks_id_seq"
    assert db.rows("SELECT a.attname FROM pg_index i JOIN pg_attribute a"
                   " ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)"
                   " WHERE i.indrelid = 'bayarhook.callbacks'::regclass AND i.indisprimary"
                   " ORDER BY a.attnum") == [("id",), ("received_at",)]
    assert db.scalar("SELECT has_table_privilege(%s, 'bayarhook.callbacks', 'INSERT')",
                     [reader])
    assert not db.scalar("SELECT has_table_privilege(%s, 'bayarhook.callbacks', 'UPDATE')",
                         [reader])
    assert db.scalar("SELECT to_regclass('bayarhook.callbacks_pre011')") is None

    # ingest still works, and goes on from the old ids into this month
    d.start(migrate=False)
    inv = bh.new_invoice("after011")
    assert d.callback(inv).json == OK
    row = db.query("SELECT id, tableoid::regclass::text AS part FROM bayarhook.callbacks"
                   " WHERE invoice_id = %s", [inv])
    assert len(row) == 1 and row[0]["id"] > last_id
    assert row[0]["part"] == "bayarhook." + month_name(0)
    assert d.migrate().stdout.startswith("schema is up to date")


def test_rows_of_a_month_without_partition_wait_in_default(make_daemon, db):
    """Past the months ahead (a daemon that never ran): the default partition
    keeps the row, and audit_partitions_ensure() moves it into its month."""
    d = make_daemon(start=False)
    d.migrate()
    far = time.gmtime(time.time() + 400 * 86400)
    name = f"callbacks_y{far.tm_year:04d}m{far.tm_mon:02d}"
    db.execute("INSERT INTO bayarhook.callbacks (received_at, verdict, http_status, body)"
               " VALUES (now() + interval '400 days', 'malformed', 400, 'far')")
    assert db.scalar("SELECT tableoid::regclass::text FROM bayarhook.callbacks"
                     " WHERE body = 'far'") == "bayarhook.callbacks_default"
    made = [r[0] for r in db.rows("SELECT bayarhook.audit_partitions_ensure(3)")]
    assert made == ["bayarhook." + name]
    assert db.scalar("SELECT tableoid::regclass::text FROM bayarhook.callbacks"
                     " WHERE body = 'far'") == "bayarhook." + name
    assert db.count("callbacks_default") == 0
    # the new partition has the parent's indexes
    indexes = "SELECT count(*) FROM pg_indexes WHERE schemaname = 'bayarhook' AND tablename = %s"
    assert db.scalar(indexes, [name]) == db.scalar(indexes, [month_name(0)]) >= 3
    assert db.rows("SELECT bayarhook.audit_partitions_ensure(3)") == []


# ---------------------------------------------------------------------------
# retention

def add_rows(db, received_at, lanes, per_lane, seq_from=1, tag="r"):
    """per_lane rows for each lane, lane_seq counting up from seq_from, and a
    row without a lane; mac = lane and seq as text, for the anchors' check."""
    db.execute(
        "INSERT INTO bayarhook.callbacks (received_at, verdict, http_status, body, lane,"
        " lane_seq, mac)"
        " SELECT %s::timestamptz + make_interval(secs => s), 'accepted', 200, %s, l, s,"
        "  convert_to(l || ':' || s, 'UTF8')"
        " FROM unnest(%s::bigint[]) AS l, generate_series(%s::bigint, %s::bigint) AS s",
        [received_at, tag, lanes, seq_from, seq_from + per_lane - 1])
    db.execute("INSERT INTO bayarhook.callbacks (received_at, verdict, http_status, body)"
               " VALUES (%s, 'malformed', 400, 'no lane')", [received_at])
    # The month's partition, as if the daemon had run then (the rows move
    # out of the default partition).
    db.execute("SELECT bayarhook.audit_partitions_ensure(3)")


def test_retention_drops_old_months_and_keeps_anchors(make_daemon, db):
    d = make_daemon(start=False)
    d.migrate()
    # The days since month 2 (before this one) began: month 3 is all older
    # than that, month 2 is not, whatever today's date.
    days = db.scalar("SELECT floor(extract(epoch FROM now() - %s::timestamptz) / 86400)::int",
                     [month_first(2)])
    d.update_config({"audit": {"retention": days}})
    add_rows(db, month_start(4), [1, 2], 5, 1, "m4")
    add_rows(db, month_start(3), [1, 3], 5, 6, "m3")
    add_rows(db, month_start(2), [1], 2, 20, "m2")
    add_rows(db, month_start(0), [1, 2, 3], 5, 100, "m0")
    db.execute("INSERT INTO bayarhook.payments (invoice_id, status, source, event)"
               " VALUES ('INV-OLD', 'paid', 'callback', '{}')")
    db.execute("UPDATE bayarhook.payments SET first_seen_at = %s, updated_at = %s",
               [month_start(4), month_start(4)])
    # an anchor from an earlier retention that is ahead of what is dropped now
    db.execute("INSERT INTO bayarhook.audit_anchors (lane, lane_seq, mac, dropped_through)"
               " VALUES (3, 50, 'old', '2000-01-01')")
    # proof that no row is DELETEd: any DELETE of callbacks fails
    db.execute("CREATE FUNCTION public.no_delete() RETURNS trigger LANGUAGE plpgsql AS"
               " $$BEGIN RAISE EXCEPTION 'DELETE of an audit row'; END$$;"
               " CREATE TRIGGER no_delete BEFORE DELETE ON bayarhook.callbacks"
               " FOR EACH ROW EXECUTE FUNCTION public.no_delete()")
    before = db.count("callbacks")

    dry = d.cli("audit", "retain", "--dry-run", check=True).stdout
    assert f"would drop bayarhook.{month_name(4)}" in dry, dry
    assert f"would drop bayarhook.{month_name(3)}" in dry, dry
    assert "11 rows, 2 lane anchor(s)" in dry
    assert month_name(2) not in dry and month_name(0) not in dry
    assert db.count("callbacks") == before and db.count("audit_anchors") == 1

    out = d.cli("audit", "retain", check=True).stdout
    lines = out.splitlines()
    assert lines[0].startswith(f"dropped bayarhook.{month_name(4)} "), out
    assert lines[1].startswith(f"dropped bayarhook.{month_name(3)} "), out
    parts = partitions(db)
    assert month_name(4) not in parts and month_name(3) not in parts
    assert month_name(2) in parts and month_name(0) in parts and "callbacks_default" in parts
    assert db.count("callbacks") == before - 22
    assert db.count("callbacks", "body IN ('m4', 'm3')") == 0
    assert db.count("callbacks", "body = 'm0'") == 15
    assert db.count("callbacks", "body = 'm2'") == 2
    anchors = {r["lane"]: r for r in db.query("SELECT * FROM bayarhook.audit_anchors")}
    assert set(anchors) == {1, 2, 3}
    # lane 1: its last dropped row is from month 3; lane 2 only had month 4
    assert (anchors[1]["lane_seq"], bytes(anchors[1]["mac"])) == (10, b"1:10")
    assert (anchors[2]["lane_seq"], bytes(anchors[2]["mac"])) == (5, b"2:5")
    # lane 3 kept its greater anchor
    assert (anchors[3]["lane_seq"], bytes(anchors[3]["mac"])) == (50, b"old")
    month3_end = db.scalar("SELECT %s::timestamptz", [month_first(2)])
    assert anchors[1]["dropped_through"] == month3_end
    assert anchors[3]["dropped_through"] == month3_end
    # payments are kept
    assert db.payment("INV-OLD")["status"] == "paid"

    again = d.cli("audit", "retain", check=True).stdout
    assert "nothing to drop" in again


def test_retention_refuses_other_roles(make_daemon, db):
    """Dropping the audit is the owner's: the daemon's role is told so."""
    d = make_daemon(start=False, config={"audit": {"retention": "45"}})
    d.migrate()
    add_rows(db, month_start(4), [1], 3)
    role = new_role(db)
    d.cli("grant", "--role", role, check=True)
    p = d.cli("audit", "retain", "--conninfo", as_role(db, role))
    assert p.returncode == 1
    assert "permission denied" in p.stderr and "owns the schema" in p.stderr, p.stderr
    assert month_name(4) in partitions(db)
    assert db.count("audit_anchors") == 0


def test_retention_gives_way_to_a_reader(make_daemon, db):
    """A drop waits for no long reader (an export): it fails after its lock
    bound, and nothing of it happened, anchors included."""
    d = make_daemon(start=False, config={"audit": {"retention": "45"}})
    d.migrate()
    add_rows(db, month_start(4), [1], 3)
    with db.connect() as reader:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM bayarhook.callbacks")
        p = d.cli("audit", "retain")
        assert p.returncode == 1 and "lock timeout" in p.stderr, p.stderr
        reader.execute("ROLLBACK")
    assert month_name(4) in partitions(db)
    assert db.count("audit_anchors") == 0
    assert "dropped bayarhook." + month_name(4) in d.cli("audit", "retain", check=True).stdout
    assert db.count("audit_anchors") == 1


def test_retention_zero_keeps_everything(make_daemon, db):
    d = make_daemon(start=False)
    d.migrate()
    add_rows(db, month_start(5), [1], 3)
    p = d.cli("audit", "retain", check=True)
    assert "kept forever" in p.stdout
    assert month_name(5) in partitions(db)


def test_serve_applies_retention_and_makes_months(make_daemon, db):
    d = make_daemon(start=False, config={"audit": {"retention": "45"}})
    d.migrate()
    add_rows(db, month_start(4), [7], 3)
    ahead = month_name(-3)
    db.execute(f"DROP TABLE bayarhook.{ahead}")
    d.start(migrate=False)
    bh.wait_for(lambda: ahead in partitions(db) and month_name(4) not in partitions(db),
                20 * bh.SLOW, what="serve's first audit round")
    assert db.scalar("SELECT lane_seq FROM bayarhook.audit_anchors WHERE lane = 7") == 3
    bh.wait_for(lambda: f"audit retention: dropped bayarhook.{month_name(4)}" in d.log(),
                10 * bh.SLOW, what="the retention's log line")
    assert f"audit partitions: made bayarhook.{ahead}" in d.log()


# ---------------------------------------------------------------------------
# export

def export(d, *args, out_path, rss=False):
    """Runs audit export into out_path; returns (CompletedProcess, max RSS in KB)."""
    argv = [bh.BIN, "-c", d.config_path, "audit", "export", *args]
    # A child of its own: RUSAGE_CHILDREN of this wrapper is the export alone.
    # ASan keeps freed memory in a quarantine (256 MB by default), which would
    # measure the sanitizer, not the program: a small one for this run.
    env = dict(d.env, ASAN_OPTIONS="detect_leaks=1:quarantine_size_mb=4")
    wrapper = ("import resource, subprocess, sys\n"
               "with open(sys.argv[1], 'wb') as out:\n"
               "    p = subprocess.run(sys.argv[2:], stdout=out, stderr=subprocess.PIPE)\n"
               "sys.stderr.buffer.write(p.stderr)\n"
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
               "sys.exit(p.returncode)\n")
    p = subprocess.run([sys.executable, "-c", wrapper, str(out_path), *bh.wrap(argv)],
                       capture_output=True, text=True, env=env, timeout=600 * bh.SLOW)
    assert not bh.sanitizer_errors(p.stderr), p.stderr
    return p, int(p.stdout.strip() or 0)


N_EXPORT = 100_000


def test_export_round_trip_100k_rows_in_bounded_memory(make_daemon, db, tmp_path):
    d = make_daemon(start=False)
    d.migrate()
    # 100,000 rows over three months, ~1.2 KB of body each (120 MB, more
    # than the memory bound below), every 1000th with a hard body
    db.execute(
        "INSERT INTO bayarhook.callbacks (received_at, remote_addr, invoice_id, verdict,"
        " http_status, headers, body, body_sha256, lane, lane_seq, mac)"
        " SELECT now() - make_interval(secs => (%s - i) * 80), '203.0.113.7', 'INV-' || i,"
        "  'accepted', 200, jsonb_build_object('x-i', i, 'q', 'a\"b'),"
        "  CASE WHEN i %% 1000 = 0 THEN (%s::text[])[1 + (i / 1000) %% %s]"
        "       ELSE repeat('{\"customer_name\":\"Budi\",\"n\":' || i || '}', 30) END,"
        "  sha256(i::text::bytea), 1, i, sha256(('m' || i)::bytea)"
        " FROM generate_series(1, %s) AS i",
        [N_EXPORT, TRICKY, len(TRICKY), N_EXPORT])
    # outside the range: one before, one at --to (excluded)
    to = db.scalar("SELECT to_char((now() + interval '1 day') AT TIME ZONE 'UTC',"
                   " 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
    db.execute("INSERT INTO bayarhook.callbacks (received_at, verdict, http_status, body)"
               " VALUES ('2020-01-01 00:00:00+00', 'malformed', 400, 'before'),"
               " (%s, 'malformed', 400, 'at the end')", [to])
    # the bodies as stored, for the hard ones
    want = {r[0]: r[1] for r in db.rows(
        "SELECT id, body FROM bayarhook.callbacks WHERE invoice_id LIKE 'INV-%%000'")}
    assert len(want) == N_EXPORT // 1000

    rates = {}
    for fmt in ("jsonl", "csv"):
        path = tmp_path / f"export.{fmt}"
        t0 = time.monotonic()
        p, rss_kb = export(d, "--from", "2020-01-02", "--to", to, "--format", fmt,
                           out_path=path)
        took = time.monotonic() - t0
        assert p.returncode == 0, p.stderr
        assert f"{N_EXPORT} rows" in p.stderr
        size = os.path.getsize(path)
        rates[fmt] = (N_EXPORT / took, size, rss_kb)
        # the data is much larger than the process ever was
        assert size > 100 * 1024 * 1024
        if not bh.VALGRIND:  # under valgrind the child measured is valgrind
            assert rss_kb < 64 * 1024, f"{fmt}: max RSS {rss_kb} KB"
        if fmt == "jsonl":
            with open(path, encoding="utf-8") as f:
                rows = [json.loads(line) for line in f]
        else:
            with open(path, encoding="utf-8", newline="") as f:
                r = csv.reader(f)
                header = next(r)
                rows = [dict(zip(header, x)) for x in r]
            assert header[:3] == ["id", "received_at", "remote_addr"]
            assert {"lane", "lane_seq", "mac", "body_sha256"} <= set(header)
        assert len(rows) == N_EXPORT
        ids = [int(x["id"]) for x in rows]
        assert ids == sorted(ids) and len(set(ids)) == N_EXPORT
        got = {int(x["id"]): x["body"] for x in rows if int(x["id"]) in want}
        assert got == want
        first = rows[0]
        assert first["invoice_id"] == "INV-1" and first["verdict"] == "accepted"
        headers = first["headers"] if fmt == "jsonl" else json.loads(first["headers"])
        assert headers == {"x-i": 1, "q": 'a"b'}
    print(f"\nexport of {N_EXPORT} rows: " + ", ".join(
        f"{fmt} {rate:.0f} rows/s, {size / 1e6:.0f} MB, max RSS {rss / 1024:.1f} MB"
        for fmt, (rate, size, rss) in rates.items()))


def test_export_range_and_usage(make_daemon, db, tmp_path):
    d = make_daemon(start=False)
    d.migrate()
    db.execute("INSERT INTO bayarhook.callbacks (received_at, verdict, http_status, body)"
               " VALUES ('2026-03-31 23:59:59.999+07', 'malformed', 400, 'before'),"
               " ('2026-04-01 00:00:00+07', 'malformed', 400, 'first'),"
               " ('2026-04-30 23:59:59+07', 'malformed', 400, 'last'),"
               " ('2026-05-01 00:00:00+07', 'malformed', 400, 'after')")
    p, _ = export(d, "--from", "2026-04-01T00:00+07:00", "--to", "2026-05-01T00:00+07:00",
                  out_path=tmp_path / "april.jsonl")
    assert p.returncode == 0, p.stderr
    rows = [json.loads(x) for x in open(tmp_path / "april.jsonl")]
    assert [r["body"] for r in rows] == ["first", "last"]
    assert rows[0]["received_at"] == "2026-03-31T17:00:00+00:00"  # UTC by default
    p, _ = export(d, "--from", "2026-04-01T00:00+07:00", "--to", "2026-05-01T00:00+07:00",
                  "--format", "csv", "--tz", "Asia/Jakarta", out_path=tmp_path / "april.csv")
    assert p.returncode == 0, p.stderr
    with open(tmp_path / "april.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["body"], r["received_at"]) for r in rows] == [
        ("first", "2026-04-01 00:00:00+07"), ("last", "2026-04-30 23:59:59+07")]
    # usage errors before anything is loaded
    assert d.cli("audit", "export", "--from", "2026-04-01").returncode == 2
    p = d.cli("audit", "export", "--from", "yesterday", "--to", "2026-05-01")
    assert p.returncode == 2 and "cannot read the time" in p.stderr
    p = d.cli("audit", "export", "--from", "2026-04-01", "--to", "2026-05-01", "--format", "xml")
    assert p.returncode == 2 and "jsonl or csv" in p.stderr


# ---------------------------------------------------------------------------
# least privilege

def test_serve_as_the_least_privileged_role(make_daemon, db, tmp_path):
    """The owner migrates and grants; serve logs in as a role that may add
    audit rows but not change them, and takes a callback through its jobs."""
    role = new_role(db)
    owner = make_daemon(start=False, name="owner", config={"audit": {"retention": "45"}})
    owner.migrate()
    grants = owner.cli("grant", "--role", role, check=True).stdout
    assert f"GRANT SELECT, INSERT ON bayarhook.callbacks TO {role};" in grants
    db.execute("CREATE TABLE public.fulfilled (invoice_id text PRIMARY KEY)")
    db.execute(f'GRANT INSERT ON public.fulfilled TO "{role}"')
    add_rows(db, month_start(4), [1], 3)  # an old month the daemon may not drop
    ahead = month_name(-3)
    db.execute(f"DROP TABLE bayarhook.{ahead}")
    out = tmp_path / "delivered"
    out.mkdir()

    d = make_daemon(name="daemon", start=False, config={
        "database": {"conninfo": as_role(db, role)},
        "audit": {"retention": "45"},
        "action.deliver": {"type": "exec", "on": "paid", "command": f"/usr/bin/touch {out}/"
                           "{invoice_id}"},
        "action.mark": {"type": "sql", "on": "paid", "expect_rows": "1",
                        "statement": "INSERT INTO public.fulfilled VALUES (:invoice_id)"},
    })
    d.start(migrate=False)
    inv = bh.new_invoice("leastpriv")
    r = d.callback(inv)
    assert (r.status, r.json) == (200, OK)
    bh.wait_for(lambda: db.count("jobs", "invoice_id = %s AND state = 'succeeded'", [inv]) == 2,
                30 * bh.SLOW, what="both jobs succeeded")
    assert (out / inv).exists()
    assert db.scalar("SELECT invoice_id FROM public.fulfilled") == inv
    assert db.verdicts(inv) == ["accepted"]
    assert d.callback(inv).status == 200  # a duplicate, audited
    assert db.verdicts(inv) == ["accepted", "duplicate"]
    # the months ahead were made through the SECURITY DEFINER function ...
    bh.wait_for(lambda: ahead in partitions(db), 20 * bh.SLOW, what="the months ahead")
    # ... but the old month stays, and the log says once who may drop it
    bh.wait_for(lambda: "run `bayarhook audit retain` from cron as the owner" in d.log(),
                20 * bh.SLOW, what="the retention refusal in the log")
    assert month_name(4) in partitions(db)
    assert d.log().count("from cron as the owner") == 1

    with psycopg.connect(as_role(db, role), autocommit=True) as c:
        for stmt in ("UPDATE bayarhook.callbacks SET body = 'forged'",
                     "DELETE FROM bayarhook.callbacks",
                     "TRUNCATE bayarhook.callbacks",
                     f"UPDATE bayarhook.{month_name(0)} SET body = 'forged'",
                     f"DELETE FROM bayarhook.{month_name(0)}",
                     f"DROP TABLE bayarhook.{month_name(4)}",
                     "DELETE FROM bayarhook.audit_anchors",
                     "INSERT INTO bayarhook.audit_anchors VALUES (1, 1, 'x', now())"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                c.execute(stmt)
        assert c.execute("SELECT count(*) FROM bayarhook.callbacks WHERE invoice_id = %s",
                         [inv]).fetchone()[0] == 2
    assert db.count("callbacks", "body = 'forged'") == 0
    # and the daemon met no other refusal on its path
    assert d.log().count("permission denied") == 1, d.log()


def test_grant_refuses_an_owner_or_superuser(make_daemon, db):
    d = make_daemon(start=False)
    d.migrate()
    p = d.cli("grant", "--role", bh.PgCluster.SUPERUSER)
    assert p.returncode == 1 and "superuser" in p.stderr
    p = d.cli("grant", "--role", "no_such_role_x")
    assert p.returncode == 1 and "does not exist" in p.stderr
    owner = new_role(db, "bh_owner")
    db.execute(f'ALTER TABLE bayarhook.payments OWNER TO "{owner}"')
    p = d.cli("grant", "--role", owner)
    assert p.returncode == 1 and "owns" in p.stderr and "REASSIGN OWNED" in p.stderr
    assert d.cli("grant").returncode == 2
    # --dry-run prints and changes nothing
    role = new_role(db)
    p = d.cli("grant", "--role", role, "--dry-run", check=True)
    assert "GRANT SELECT, INSERT ON bayarhook.callbacks" in p.stdout
    assert not db.scalar("SELECT has_table_privilege(%s, 'bayarhook.callbacks', 'SELECT')",
                         [role])
