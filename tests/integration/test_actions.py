"""How an action's failure is classified (SPEC §5): a timeout is decided on
the kind of error (SQLSTATE 57014 for a statement cut off by
statement_timeout, the HTTP client's timeout kind for a forward), never on the
wording of a message. Assertions are on bayarhook.job_attempts.
"""

import socket
import threading
import time

import bh

OK = {"success": True}


def jobs(db, invoice):
    return db.query("SELECT * FROM bayarhook.jobs WHERE invoice_id = %s ORDER BY id", [invoice])


def attempts(db, job_id):
    return db.query("SELECT * FROM bayarhook.job_attempts WHERE job_id = %s ORDER BY id",
                    [job_id])


def dead_job(db, invoice, timeout=30):
    return bh.wait_for(lambda: (lambda js: js[0] if js and js[0]["state"] == "dead" else None)(
        jobs(db, invoice)), timeout * bh.SLOW, what="the job to die")


class SilentServer:
    """Accepts connections and never answers."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self):
        self.stopped = True
        self.sock.close()
        for c in self.conns:
            c.close()


def test_sql_statement_timeout_is_a_timeout(make_daemon, db):
    d = make_daemon(config={
        "fulfillment": {"max_attempts": "1"},
        "action.slow": {"type": "sql", "timeout": "1", "expect_rows": "0",
                        "statement": "SELECT pg_sleep(5) WHERE :invoice_id::text IS NOT NULL"},
    })
    inv = bh.new_invoice("sqlslow")
    t0 = time.monotonic()
    assert d.callback(inv).json == OK
    job = dead_job(db, inv)
    assert time.monotonic() - t0 < 5
    (att,) = attempts(db, job["id"])
    assert att["outcome"] == "timeout"
    assert job["last_error"].startswith("statement failed: ")


def test_sql_error_is_a_failure(make_daemon, db):
    d = make_daemon(config={
        "fulfillment": {"max_attempts": "1"},
        "action.bad": {"type": "sql", "expect_rows": "0",
                       "statement": "SELECT 1 / 0 WHERE :invoice_id::text IS NOT NULL"},
    })
    inv = bh.new_invoice("sqlbad")
    assert d.callback(inv).json == OK
    job = dead_job(db, inv)
    (att,) = attempts(db, job["id"])
    assert att["outcome"] == "failed"
    assert "division by zero" in job["last_error"]


def test_forward_to_a_silent_server_is_a_timeout(make_daemon, db):
    srv = SilentServer()
    try:
        d = make_daemon(config={
            "fulfillment": {"max_attempts": "1"},
            "action.fwd": {"type": "forward", "timeout": "1",
                           "url": f"http://127.0.0.1:{srv.port}/hook"},
        })
        inv = bh.new_invoice("fwdslow")
        assert d.callback(inv).json == OK
        job = dead_job(db, inv)
        (att,) = attempts(db, job["id"])
        assert att["outcome"] == "timeout"
        assert "timed out after 1 s" in job["last_error"]
    finally:
        srv.close()


def test_forward_refused_is_a_failure(make_daemon, db):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    d = make_daemon(config={
        "fulfillment": {"max_attempts": "1"},
        "action.fwd": {"type": "forward", "timeout": "5", "url": f"http://127.0.0.1:{port}/"},
    })
    inv = bh.new_invoice("fwdrefused")
    assert d.callback(inv).json == OK
    job = dead_job(db, inv)
    (att,) = attempts(db, job["id"])
    assert att["outcome"] == "failed"
    assert "refused" in job["last_error"]


def test_forward_bad_url_fails_from_the_loop(make_daemon, db):
    d = make_daemon(config={
        "fulfillment": {"max_attempts": "1"},
        "action.fwd": {"type": "forward", "url": "http://127.0.0.1:0/"},
    })
    inv = bh.new_invoice("fwdbadurl")
    assert d.callback(inv).json == OK
    job = dead_job(db, inv)
    (att,) = attempts(db, job["id"])
    assert att["outcome"] == "failed"
    assert "bad port" in job["last_error"]
    assert d.alive()
