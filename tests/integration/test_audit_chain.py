"""The audit as evidence: the tamper-evident chain (issue 15, SPEC §11).

Every callbacks row written with [audit] key_file carries (lane, lane_seq,
mac); `bayarhook audit verify` walks them and names the first broken row:
an UPDATE of a body, a DELETE, a forged INSERT, two rows swapped. Also:
no key_file (no chain: exit 1), redaction by invoice (verify still passes),
a retention anchor, two daemons (two lanes), the logged checkpoints, the
daemon's redact_after, and the SQL mac against an HMAC computed here.
"""

import hashlib
import hmac
import json
import os
import re
import struct

import bh

KEY = "audit-key-for-tests-0123456789abcdef"


def key_file(tmp_path, name="audit-key", key=KEY):
    path = tmp_path / name
    path.write_text(key + "\n")
    os.chmod(path, 0o600)
    return str(path)


def chained_daemon(make_daemon, tmp_path, db, n_ok=6, n_bad=3, name=None, database=None):
    """A daemon with a key that recorded n_ok callbacks, a duplicate and n_bad refusals."""
    d = make_daemon(config={"audit": {"key_file": key_file(tmp_path)}}, name=name,
                    database=database)
    invoices = []
    for i in range(n_ok):
        inv = bh.new_invoice(f"ch{i}")
        assert d.callback(inv).status == 200
        invoices.append(inv)
    assert d.callback(invoices[0]).status == 200  # a duplicate (ingest()'s second path)
    for i in range(n_bad):
        assert d.callback(bh.new_invoice(f"bad{i}"), secret="whsec_wrong_secret_0123456789").status == 401
    want = n_ok + 1 + n_bad
    target = database or db
    bh.wait_for(lambda: target.count("callbacks") >= want, 10 * bh.SLOW,
                what=f"{want} audit rows")
    return d, invoices


def verify(d, *args):
    p = d.cli("audit", "verify", *args)
    return p.returncode, p.stdout + p.stderr


def rows(db):
    return db.rows("SELECT id, lane, lane_seq FROM bayarhook.callbacks ORDER BY id")


def test_chain_through_the_daemon_verifies(make_daemon, tmp_path, db):
    d, _ = chained_daemon(make_daemon, tmp_path, db)
    rc, out = verify(d)
    assert rc == 0, out
    assert "the audit chain holds" in out
    # Every row is chained: callbacks, the duplicate, the refusals.
    assert db.count("callbacks", "mac IS NULL OR lane IS NULL") == 0
    verdicts = {r[0] for r in db.rows("SELECT DISTINCT verdict FROM bayarhook.callbacks")}
    assert {"accepted", "duplicate", "bad_signature"} <= verdicts
    # Within a lane lane_seq is contiguous from 1 in id order.
    lanes = {}
    for _id, lane, seq in rows(db):
        lanes.setdefault(lane, []).append(seq)
    for seqs in lanes.values():
        assert seqs == list(range(1, len(seqs) + 1))


def test_sql_mac_equals_the_hmac_computed_here(make_daemon, tmp_path, db):
    """Known answer: the mac ingest() stored is HMAC(subkey(lane, seq), digest || prev)."""
    chained_daemon(make_daemon, tmp_path, db, n_ok=3, n_bad=1)
    prev = {}
    for id_, lane, seq, mac, digest in db.rows(
            "SELECT c.id, c.lane, c.lane_seq, c.mac, bayarhook.audit_digest(c.id, c.lane, "
            "c.lane_seq, c.received_at, c.remote_addr, c.peer_addr, c.invoice_id, c.event, "
            "c.status, c.verdict, c.http_status, c.error, c.method, c.headers, c.body, "
            "c.secret_index, c.signature_valid, c.body_length, c.body_sha256, c.repeat, "
            "c.suppressed, c.headers_dropped) FROM bayarhook.callbacks c ORDER BY c.id"):
        sub = hmac.new(KEY.encode(), b"bayarhook-audit-row" + struct.pack(">qq", lane, seq),
                       hashlib.sha256).digest()
        want = hmac.new(sub, bytes(digest) + prev.get(lane, bytes(32)), hashlib.sha256).digest()
        assert bytes(mac) == want, f"row {id_}"
        prev[lane] = want


def test_update_of_a_body_is_found(make_daemon, tmp_path, db):
    d, invoices = chained_daemon(make_daemon, tmp_path, db)
    victim = db.scalar("SELECT id FROM bayarhook.callbacks WHERE invoice_id = %s "
                       "AND verdict = 'accepted'", (invoices[2],))
    db.execute("UPDATE bayarhook.callbacks SET body = replace(body, '50123', '99999') "
               "WHERE id = %s", (victim,))
    rc, out = verify(d)
    assert rc == 1, out
    assert f"row id {victim}: mac does not match" in out


def test_delete_of_a_row_is_found(make_daemon, tmp_path, db):
    d, invoices = chained_daemon(make_daemon, tmp_path, db)
    victim, lane, seq = db.rows("SELECT id, lane, lane_seq FROM bayarhook.callbacks "
                                "WHERE invoice_id = %s", (invoices[3],))[0]
    before = db.scalar("SELECT max(id) FROM bayarhook.callbacks WHERE lane = %s "
                       "AND lane_seq < %s", (lane, seq))
    db.execute("DELETE FROM bayarhook.callbacks WHERE id = %s", (victim,))
    rc, out = verify(d)
    assert rc == 1, out
    after = db.scalar("SELECT min(id) FROM bayarhook.callbacks WHERE lane = %s "
                      "AND lane_seq > %s", (lane, seq))
    if before is not None:
        assert f"row id {after}: lane {lane}: row after id {before} missing" in out
    else:
        assert f"row id {after}: lane {lane}: row(s) before it missing" in out


def test_forged_insert_is_found(make_daemon, tmp_path, db):
    d, _ = chained_daemon(make_daemon, tmp_path, db)
    lane, seq = db.rows("SELECT lane, max(lane_seq) FROM bayarhook.callbacks GROUP BY lane "
                        "ORDER BY 2 DESC LIMIT 1")[0]
    forged = db.scalar(
        "INSERT INTO bayarhook.callbacks (invoice_id, status, verdict, http_status, body, "
        "lane, lane_seq, mac) VALUES ('PAY-forged', 'paid', 'accepted', 200, '{}', %s, %s, "
        "sha256('guess')) RETURNING id", (lane, seq + 1))
    rc, out = verify(d)
    assert rc == 1, out
    assert f"row id {forged}: mac does not match" in out

    # A forged row without any mac is named too.
    db.execute("DELETE FROM bayarhook.callbacks WHERE id = %s", (forged,))
    assert verify(d)[0] == 0
    bare = db.scalar("INSERT INTO bayarhook.callbacks (invoice_id, status, verdict, "
                     "http_status, body) VALUES ('PAY-bare', 'paid', 'accepted', 200, '{}') "
                     "RETURNING id")
    rc, out = verify(d)
    assert rc == 1, out
    assert f"row id {bare} has no mac" in out


def swap_ids(db, a, b):
    db.execute("UPDATE bayarhook.callbacks SET id = -1 WHERE id = %s", (a,))
    db.execute("UPDATE bayarhook.callbacks SET id = %s WHERE id = %s", (a, b))
    db.execute("UPDATE bayarhook.callbacks SET id = %s WHERE id = -1", (b,))


def test_swapping_two_rows_is_found(make_daemon, tmp_path, db):
    d, invoices = chained_daemon(make_daemon, tmp_path, db)
    a = db.scalar("SELECT id FROM bayarhook.callbacks WHERE invoice_id = %s", (invoices[1],))
    b = db.scalar("SELECT id FROM bayarhook.callbacks WHERE invoice_id = %s", (invoices[4],))
    # Their order: each row takes the other's place (id), everything else kept.
    swap_ids(db, a, b)
    rc, out = verify(d)
    assert rc == 1, out
    assert f"first: row id {a}:" in out, out
    assert f"row id {b}:" in out, out

    swap_ids(db, a, b)
    assert verify(d)[0] == 0, "order restored"
    # Their content (bodies) instead: both named.
    db.execute("UPDATE bayarhook.callbacks x SET body = y.body FROM bayarhook.callbacks y "
               "WHERE (x.id, y.id) IN ((%s, %s), (%s, %s))", (a, b, b, a))
    rc, out = verify(d)
    assert rc == 1, out
    assert f"row id {a}: mac does not match" in out
    assert f"row id {b}: mac does not match" in out


def test_without_key_file_there_is_no_chain(make_daemon, db):
    d = make_daemon()
    assert d.callback().status == 200
    bh.wait_for(lambda: db.count("callbacks") >= 1, 10 * bh.SLOW, what="a row")
    assert db.count("callbacks", "mac IS NOT NULL OR lane IS NOT NULL") == 0
    rc, out = verify(d)
    assert rc == 1
    assert "no [audit] key_file" in out
    # With a key but no chained row in the table: also no chain.
    d.update_config({"audit": {"key": KEY}})
    rc, out = verify(d)
    assert rc == 1
    assert "there is no chain" in out


def test_redaction_by_invoice_keeps_the_chain(make_daemon, tmp_path, db):
    d, invoices = chained_daemon(make_daemon, tmp_path, db)
    inv = invoices[0]  # accepted and duplicate: two rows
    p = d.cli("audit", "redact", "--invoice", inv, check=True)
    assert "redacted 2 row(s)" in p.stdout
    for (body,) in db.rows("SELECT body FROM bayarhook.callbacks WHERE invoice_id = %s", (inv,)):
        data = json.loads(body)
        assert data["customer_name"] == "[redacted]"
        assert data["customer_email"] == "[redacted]"
        assert data["customer_phone"] == "[redacted]"
        assert data["invoice_id"] == inv and data["final_amount"] == 50123
        assert "john@example.com" not in body
    # Other invoices keep theirs.
    other = db.scalar("SELECT body FROM bayarhook.callbacks WHERE invoice_id = %s", (invoices[1],))
    assert "john@example.com" in other
    rc, out = verify(d)
    assert rc == 0, out
    # Again: nothing left to do.
    assert "redacted 0 row(s)" in d.cli("audit", "redact", "--invoice", inv, check=True).stdout
    # A change after the redaction is still found.
    victim = db.scalar("SELECT min(id) FROM bayarhook.callbacks WHERE invoice_id = %s", (inv,))
    db.execute("UPDATE bayarhook.callbacks SET body = replace(body, '50123', '1') WHERE id = %s",
               (victim,))
    rc, out = verify(d)
    assert rc == 1
    assert f"row id {victim}: changed after its redaction" in out


def test_redaction_needs_the_key_for_chained_rows(make_daemon, tmp_path, db):
    d, invoices = chained_daemon(make_daemon, tmp_path, db, n_ok=1, n_bad=0)
    d.update_config({"audit": {"key_file": None}})
    p = d.cli("audit", "redact", "--invoice", invoices[0])
    assert p.returncode == 1
    assert "no [audit] key_file" in p.stderr
    assert db.count("callbacks", "body LIKE '%%[redacted]%%'") == 0


def test_verify_honours_a_retention_anchor(make_daemon, tmp_path, db):
    d, _ = chained_daemon(make_daemon, tmp_path, db)
    lane, n = db.rows("SELECT lane, count(*) FROM bayarhook.callbacks GROUP BY lane "
                      "ORDER BY 2 DESC LIMIT 1")[0]
    assert n >= 4
    # Retention dropped this lane's first three rows.
    seq, mac = db.rows("SELECT lane_seq, mac FROM bayarhook.callbacks WHERE lane = %s "
                       "AND lane_seq = 3", (lane,))[0]
    db.execute("DELETE FROM bayarhook.callbacks WHERE lane = %s AND lane_seq <= 3", (lane,))
    rc, out = verify(d)
    assert rc == 1, out
    assert f"lane {lane}: row(s) before it missing" in out
    db.execute("INSERT INTO bayarhook.audit_anchors (lane, lane_seq, mac, dropped_through) "
               "VALUES (%s, %s, %s, now())", (lane, seq, mac))
    rc, out = verify(d)
    assert rc == 0, out
    # An anchor with another mac does not let the lane's next row pass.
    db.execute("UPDATE bayarhook.audit_anchors SET mac = sha256('x') WHERE lane = %s", (lane,))
    rc, out = verify(d)
    assert rc == 1, out


def test_two_daemons_two_lanes(make_daemon, tmp_path, db):
    d1, _ = chained_daemon(make_daemon, tmp_path, db, name="a")
    d2 = make_daemon(config={"audit": {"key_file": key_file(tmp_path, "k2")}}, name="b")
    for i in range(4):
        assert d2.callback(bh.new_invoice(f"two{i}")).status == 200
        assert d1.callback(bh.new_invoice(f"one{i}")).status == 200
    bh.wait_for(lambda: db.count("callbacks") >= 18, 10 * bh.SLOW, what="rows")
    assert db.scalar("SELECT count(DISTINCT lane) FROM bayarhook.callbacks") >= 2
    rc, out = verify(d1)
    assert rc == 0, out
    rc, out = verify(d1, "--since", "1h")
    assert rc == 0, out


def test_checkpoints_in_the_log_catch_a_cut_tail(make_daemon, tmp_path, db):
    d, _ = chained_daemon(make_daemon, tmp_path, db)
    d.stop()
    heads = re.findall(r"audit checkpoint \(shutdown\).* checkpoint=(\d+:\d+:[0-9a-f]{64})",
                       d.log())
    assert heads, d.log_tail()
    rc, out = verify(d, "--checkpoint", ",".join(heads))
    assert rc == 0, out
    assert out.count(": ok") == len(heads)
    # Deleting a lane's last rows leaves a chain that holds; its checkpoint does not.
    lane, seq, _mac = heads[0].split(":")
    db.execute("DELETE FROM bayarhook.callbacks WHERE lane = %s AND lane_seq = %s",
               (int(lane), int(seq)))
    assert verify(d)[0] == 0
    rc, out = verify(d, "--checkpoint", heads[0])
    assert rc == 1
    assert f"checkpoint {lane}:{seq}: the row is gone" in out
    assert verify(d, "--checkpoint", "1:2:zz")[0] == 2


def test_daemon_redact_after_on_old_rows(make_daemon, db):
    """redact_after by the daemon's timer (rows made old by hand: unchained ones)."""
    d = make_daemon(config={"audit": {"redact_after": "1", "checkpoint_interval": "1"}})
    inv = bh.new_invoice("old")
    assert d.callback(inv).status == 200
    bh.wait_for(lambda: db.count("callbacks") >= 1, 10 * bh.SLOW, what="a row")
    db.execute("UPDATE bayarhook.callbacks SET received_at = now() - interval '2 days'")
    bh.wait_for(lambda: db.count("callbacks", "body LIKE '%%[redacted]%%'") == 1,
                20 * bh.SLOW, what="the old row redacted")
    body = db.scalar("SELECT body FROM bayarhook.callbacks")
    assert "john@example.com" not in body and "08123456789" not in body
    assert re.search(r"redacted personal data in 1 row", d.log())


def test_reconcile_once_with_the_key_keeps_the_chain(make_daemon, gateway, tmp_path, db):
    """reconcile --once goes through the same store: its findings carry a chain
    parameter too and write no audit row (SPEC §6), so nothing unchained appears."""
    d, _ = chained_daemon(make_daemon, tmp_path, db, n_ok=2, n_bad=1)
    d.stop()
    d.update_config({"gateway": {"base_url": gateway.base_url}})
    inv = bh.new_invoice("recon")
    gateway.add_payment(inv, status="paid")
    p = d.cli("reconcile", "--once", check=True, timeout=120)
    assert inv in p.stdout
    assert db.payment(inv)["source"] == "reconciler"
    # A callback for it afterwards (a daemon again): a duplicate, chained.
    d.start(migrate=False)
    assert d.callback(inv).status == 200
    bh.wait_for(lambda: db.count("callbacks", "invoice_id = %s", (inv,)) == 1, 10 * bh.SLOW,
                what="the duplicate's row")
    assert db.scalar("SELECT verdict FROM bayarhook.callbacks WHERE invoice_id = %s",
                     (inv,)) == "duplicate"
    rc, out = verify(d)
    assert rc == 0, out


def test_key_rotation_by_sighup(make_daemon, tmp_path, db):
    """A new key first in key_file (SIGHUP) ends the lanes and starts new ones
    under it; verify accepts each lane under whichever listed key it was written."""
    d, _ = chained_daemon(make_daemon, tmp_path, db, n_ok=2, n_bad=1)
    path = tmp_path / "audit-key"
    new = "audit-key-rotated-0123456789abcdef"
    path.write_text(f"{new}\n{KEY}\n")
    d.reload()
    bh.wait_for(lambda: "configuration reloaded" in d.log(), 10 * bh.SLOW, what="the reload")
    assert re.search(r"audit checkpoint \(key changed, lane ended\)", d.log())
    for i in range(3):
        assert d.callback(bh.new_invoice(f"rot{i}")).status == 200
    bh.wait_for(lambda: db.count("callbacks") >= 7, 10 * bh.SLOW, what="rows")
    assert db.scalar("SELECT count(DISTINCT lane) FROM bayarhook.callbacks") >= 2
    rc, out = verify(d)
    assert rc == 0, out
    # Redacting now vouches with the new key; verify still passes.
    inv = db.scalar("SELECT invoice_id FROM bayarhook.callbacks ORDER BY id LIMIT 1")
    d.cli("audit", "redact", "--invoice", inv, check=True)
    assert verify(d)[0] == 0
    # Without the old key, the old lane's rows no longer verify.
    path.write_text(f"{new}\n")
    rc, out = verify(d)
    assert rc == 1
    assert "mac does not match" in out


def test_verify_since_starts_each_lane_from_the_row_before(make_daemon, tmp_path, db):
    d, _ = chained_daemon(make_daemon, tmp_path, db, n_ok=3, n_bad=0)
    # A positive barrier, not a sleep: the database's clock is past the
    # second of every row so far, so the rows after it start a later second.
    bh.wait_for(lambda: db.scalar("SELECT date_trunc('second', clock_timestamp()) > "
                                  "max(received_at) FROM bayarhook.callbacks"),
                5 * bh.SLOW, what="the next second")
    since = db.scalar("SELECT to_char(date_trunc('second', clock_timestamp()) AT TIME ZONE "
                      "'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"+00:00\"')")
    for i in range(3):
        assert d.callback(bh.new_invoice(f"late{i}")).status == 200
    bh.wait_for(lambda: db.count("callbacks") >= 7, 10 * bh.SLOW, what="rows")
    first = db.rows("SELECT id, lane, lane_seq FROM bayarhook.callbacks "
                    "WHERE received_at >= %s::timestamptz ORDER BY id LIMIT 1", (since,))[0]
    assert first[2] > 1  # the lane began before --since
    rc, out = verify(d, "--since", since)
    assert rc == 0, out
    assert "3 row(s)" in out
    # The row before the range is gone: the first row in it is named.
    db.execute("DELETE FROM bayarhook.callbacks WHERE lane = %s AND lane_seq = %s",
               (first[1], first[2] - 1))
    rc, out = verify(d, "--since", since)
    assert rc == 1
    assert f"row id {first[0]}: lane {first[1]}: row(s) before it missing" in out


def test_verify_and_redact_need_only_the_audit_key(make_daemon, tmp_path, db):
    """SPEC §10: commands that need no secret, audit among them, run when a
    secret file cannot be read. verify and redact need the chain's key, and
    no other secret: without the webhook secret's file they still run."""
    d, invoices = chained_daemon(make_daemon, tmp_path, db)
    d.stop()
    os.unlink(d.secret_file)
    assert d.cli("check-config").returncode == 1  # the daemon itself needs it
    rc, out = verify(d)
    assert rc == 0, out
    p = d.cli("audit", "redact", "--invoice", invoices[1])
    assert p.returncode == 0 and "redacted 1 row(s)" in p.stdout, p.stderr
    rc, out = verify(d)
    assert rc == 0, out
