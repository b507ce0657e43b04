"""Helpers for the bayarhook integration tests.

Only the standard library, pytest and psycopg (3) are used. Every server
binds to loopback and every wait is bounded.

    PgCluster  a throw-away PostgreSQL cluster (initdb into a temp dir)
    Database   one database in it, with query helpers
    Daemon     a bayarhook process: writes its config, runs migrate/serve/CLI
    sign, make_callback, post, get   the bayar.gg wire format and HTTP client

BAYARHOOK_BIN names the binary (default: <source>/build/bayarhook).
BAYARHOOK_VALGRIND=1 runs every bayarhook invocation under valgrind memcheck.
"""

import glob
import hashlib
import hmac
import http.client
import json
import os
import pwd
import re
import secrets as _secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import psycopg

SOURCE_DIR = os.environ.get(
    "BAYARHOOK_SOURCE_DIR",
    os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BIN = os.environ.get("BAYARHOOK_BIN", os.path.join(SOURCE_DIR, "build", "bayarhook"))
VALGRIND = os.environ.get("BAYARHOOK_VALGRIND", "") not in ("", "0")
# Everything is slower under valgrind; waits are scaled by this.
SLOW = 8 if VALGRIND else 1
DEFAULT_SECRET = "whsec_test_current_0123456789abcdef"
DEFAULT_API_KEY = "test_api_key_0123456789"

# Sanitizer and valgrind reports in a log mean the test failed, whatever the
# exit code says.
ERROR_MARKERS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",  # UBSan
    "== ERROR SUMMARY: ",  # valgrind, checked for non-zero below
    "Invalid read of size",
    "Invalid write of size",
    "definitely lost in",
)


def sanitizer_errors(text):
    """The lines of text that report a sanitizer or valgrind error."""
    bad = []
    for line in text.splitlines():
        if "== ERROR SUMMARY: " in line:
            if not re.search(r"ERROR SUMMARY: 0 errors", line):
                bad.append(line)
        elif any(m in line for m in ERROR_MARKERS):
            bad.append(line)
    return bad


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ingest_item(idx, invoice):
    """A verified paid callback for invoice as an item of bayarhook.ingest()'s
    batch (the keys store.c sends), for filling the queue without HTTP."""
    body, _ = make_callback(invoice)
    ev = json.loads(body)
    return {"idx": idx, "invoice_id": invoice, "status": "paid",
            "event_name": "payment.paid", "amount": "50000", "final_amount": "50123",
            "paid_at": ev["paid_at"], "paid_reff_num": ev["paid_reff_num"],
            "source": "callback", "event": ev, "method": "POST", "http_status": 200,
            "remote_addr": "127.0.0.1", "body": body.decode()}


def schema_at(db, version, conn=None):
    """Makes db's schema as the numbered migrations up to `version` left it
    (an older release's database), recorded in schema_version like migrate
    does; on conn (an open connection) when given, to add more in the same
    session. Returns the file names applied."""
    sql_dir = os.path.join(SOURCE_DIR, "sql")
    names = sorted(f for f in os.listdir(sql_dir)
                   if f[:3].isdigit() and f.endswith(".sql") and int(f[:3]) <= version)
    assert names and int(names[-1][:3]) == version, names

    def apply(c):
        c.execute("CREATE SCHEMA bayarhook; CREATE TABLE bayarhook.schema_version ("
                  " version integer PRIMARY KEY, name text NOT NULL,"
                  " applied_at timestamptz NOT NULL DEFAULT now())")
        for name in names:
            with open(os.path.join(sql_dir, name)) as f:
                c.execute(f.read())
            c.execute("INSERT INTO bayarhook.schema_version VALUES (%s, %s)",
                      [int(name[:3]), name])

    if conn is not None:
        apply(conn)
    else:
        with db.connect() as c:
            apply(c)
    return names


def function_defs(db):
    """Every function of the bayarhook schema with its definition, for
    comparing schemas; an aggregate (the audit chain's), which
    pg_get_functiondef refuses, by its step function."""
    return db.rows("""SELECT p.oid::regprocedure::text,
                             CASE WHEN p.prokind = 'a'
                                  THEN 'aggregate of ' || a.aggtransfn::regprocedure::text
                                  ELSE pg_get_functiondef(p.oid) END
                        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                        LEFT JOIN pg_aggregate a ON a.aggfnoid = p.oid
                       WHERE n.nspname = 'bayarhook' ORDER BY 1""")


def wait_for(pred, timeout, interval=0.1, what="condition"):
    """Polls pred() until it returns something truthy; raises after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = pred()
        except Exception as e:  # noqa: BLE001 - keep polling, report the last
            last = e
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


def tail(path, lines=80):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError as e:
        return f"<cannot read {path}: {e}>"
    return "\n".join(data.splitlines()[-lines:])


# ---------------------------------------------------------------------------
# bayar.gg wire format (SPEC §1)

def sign(secret, invoice, status, final_amount_text, ts):
    """Lowercase hex HMAC-SHA256 of invoice|status|final_amount|timestamp."""
    msg = f"{invoice}|{status}|{final_amount_text}|{ts}"
    return hmac.new(secret.encode(), msg.encode(), hashlib.sha256).hexdigest()


def php_amount_text(value):
    """final_amount as PHP's string form after json_decode (for the common cases)."""
    if isinstance(value, bool):
        return "1" if value else ""
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value == int(value) and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    return str(value)


def new_invoice(tag="T"):
    """A fresh invoice id in bayar.gg's shape."""
    return f"PAY-{tag}-{int(time.time())}-{_secrets.token_hex(4).upper()}"


def make_callback(invoice, status="paid", amount=50000, final_amount=50123, ts=None,
                  secret=DEFAULT_SECRET, headers=True, signed_amount=None, event=None,
                  extra=None, drop=(), signature=None):
    """(body_bytes, headers) exactly as bayar.gg sends them.

    headers=True: the X-Webhook-* headers carry signature and timestamp (and the
    body carries them too, as the gateway does); headers=False: only the body
    fields do. signed_amount overrides the final_amount text that is signed
    (default: PHP's text of final_amount). extra adds/overrides body fields,
    drop removes body fields (e.g. drop=("timestamp",)). signature overrides
    the computed signature.
    """
    if ts is None:
        ts = int(time.time())
    if signed_amount is None:
        signed_amount = php_amount_text(final_amount)
    sig = signature if signature is not None else sign(secret, invoice, status, signed_amount, ts)
    body = {
        "event": event or f"payment.{status}",
        "invoice_id": invoice,
        "status": status,
        "amount": amount,
        "final_amount": final_amount,
        "unique_code": 123,
        "paid_at": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() + 7 * 3600))
        if status == "paid" else None,
        "paid_amount": final_amount if status == "paid" else None,
        "paid_reff_num": f"TRX{_secrets.randbelow(10**9):09d}" if status == "paid" else None,
        "customer_name": "John Doe",
        "customer_email": "john@example.com",
        "customer_phone": "08123456789",
        "description": "Pembayaran Produk A",
        "redirect_url": "https://yoursite.com/thank-you",
        "has_file": True,
        "has_content": False,
        "timestamp": ts,
        "signature": sig,
    }
    if extra:
        body.update(extra)
    for k in drop:
        body.pop(k, None)
    raw = json.dumps(body, separators=(",", ":")).encode()
    hdrs = {"Content-Type": "application/json"}
    if headers:
        hdrs.update({
            "X-Webhook-Event": body.get("event") or f"payment.{status}",
            "X-Webhook-Signature": sig,
            "X-Webhook-Timestamp": str(ts),
            "X-Invoice-ID": invoice,
        })
    return raw, hdrs


# ---------------------------------------------------------------------------
# HTTP client

class Response:
    """status, headers (case-insensitive), text, json (None unless JSON)."""

    def __init__(self, status, headers, data):
        self.status = status
        self.headers = headers
        self.data = data
        self.text = data.decode("utf-8", "replace")
        try:
            self.json = json.loads(self.text)
        except ValueError:
            self.json = None

    def __iter__(self):  # status, headers, body = post(...)
        return iter((self.status, self.headers, self.json if self.json is not None else self.text))

    def __repr__(self):
        return f"<Response {self.status} {self.text[:200]!r}>"


def request(url, method="GET", body=None, headers=None, timeout=30):
    """One HTTP/1.1 request on a fresh connection; returns a Response."""
    m = re.match(r"http://([^/:]+|\[[^\]]+\]):(\d+)(/.*)?$", url)
    if not m:
        raise ValueError(f"bad url {url}")
    host, port, path = m.group(1).strip("[]"), int(m.group(2)), m.group(3) or "/"
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        try:
            conn.request(method, path, body=body, headers=headers or {})
        except (BrokenPipeError, ConnectionResetError):
            # The server may answer (413) and close before reading all of it.
            pass
        resp = conn.getresponse()
        data = resp.read()
        return Response(resp.status, resp.headers, data)
    finally:
        conn.close()


def post(url, body, headers=None, timeout=30):
    """POST body (bytes or str); returns Response, which unpacks as (status, headers, json-or-text)."""
    if isinstance(body, str):
        body = body.encode()
    return request(url, "POST", body, headers, timeout)


def get(url, timeout=30, headers=None):
    return request(url, "GET", None, headers, timeout)


# ---------------------------------------------------------------------------
# PostgreSQL

def _pg_bindir():
    env = os.environ.get("BAYARHOOK_PG_BINDIR")
    if env:
        return env
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                  key=lambda d: int(re.search(r"/(\d+)/bin$", d).group(1))
                  if re.search(r"/(\d+)/bin$", d) else 0)
    for d in reversed(dirs):
        if os.access(os.path.join(d, "initdb"), os.X_OK):
            return d
    found = shutil.which("initdb")
    if found:
        return os.path.dirname(found)
    raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")


class PgCluster:
    """A private PostgreSQL cluster on 127.0.0.1:port (trust auth, fsync on).

    As root the cluster belongs to the postgres user and its programs run
    through `runuser -u postgres --`.
    """

    SUPERUSER = "postgres"

    def __init__(self, basedir=None, port=None):
        self.bindir = _pg_bindir()
        self.basedir = basedir or tempfile.mkdtemp(prefix="bayarhook-pg-")
        self.datadir = os.path.join(self.basedir, "data")
        self.sockdir = os.path.join(self.basedir, "run")
        self.logfile = os.path.join(self.basedir, "postgres.log")
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.as_root = os.geteuid() == 0
        self.running = False

    def _cmd(self, *args):
        cmd = [os.path.join(self.bindir, args[0]), *args[1:]]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return cmd

    def _run(self, *args, timeout=120):
        p = subprocess.run(self._cmd(*args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout, cwd=self.basedir)
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed ({p.returncode}):\n"
                               f"{p.stdout.decode(errors='replace')}\n{tail(self.logfile)}")
        return p

    def prepare_dirs(self):
        """The socket directory, and as root both it and basedir the postgres user's."""
        os.makedirs(self.sockdir, exist_ok=True)
        if self.as_root:
            pw = pwd.getpwnam("postgres")
            for d in (self.basedir, self.sockdir):
                os.chown(d, pw.pw_uid, pw.pw_gid)
            os.chmod(self.basedir, 0o755)

    def init(self):
        self.prepare_dirs()
        self._run("initdb", "-D", self.datadir, "-U", self.SUPERUSER, "--auth=trust",
                  "--encoding=UTF8", "--locale=C", "--no-instructions")
        conf = os.path.join(self.datadir, "postgresql.conf")
        with open(conf, "a") as f:
            f.write(f"""
# bayarhook integration tests
listen_addresses = '127.0.0.1'
port = {self.port}
unix_socket_directories = '{self.sockdir}'
fsync = on
max_connections = 200
log_min_messages = warning
log_line_prefix = '%m [%p] %d '
""")
        return self

    def start(self, timeout=60):
        self._run("pg_ctl", "start", "-D", self.datadir, "-l", self.logfile, "-w",
                  "-t", str(timeout), timeout=timeout + 30)
        self.running = True
        wait_for(self._accepts, timeout, what="PostgreSQL to accept connections")
        return self

    def _accepts(self):
        with psycopg.connect(self.conninfo("postgres"), connect_timeout=3):
            return True

    def stop(self, mode="fast", timeout=60):
        """mode: smart | fast | immediate."""
        self._run("pg_ctl", "stop", "-D", self.datadir, "-m", mode, "-w", "-t", str(timeout),
                  timeout=timeout + 30)
        self.running = False

    def is_running(self):
        p = subprocess.run(self._cmd("pg_ctl", "status", "-D", self.datadir),
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, cwd=self.basedir, timeout=30)
        return p.returncode == 0

    def ensure_running(self):
        if not self.is_running():
            self.start()

    def destroy(self):
        try:
            if self.is_running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.basedir, ignore_errors=True)

    def conninfo(self, dbname):
        return (f"host={self.host} port={self.port} dbname={dbname} "
                f"user={self.SUPERUSER} connect_timeout=5")

    def create_database(self, name=None):
        name = name or "bh_" + _secrets.token_hex(6)
        with psycopg.connect(self.conninfo("postgres"), autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return Database(self, name)

    def drop_database(self, name):
        with psycopg.connect(self.conninfo("postgres"), autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Database:
    """One database of a PgCluster. Each helper uses a short-lived connection."""

    def __init__(self, cluster, name):
        self.cluster = cluster
        self.name = name
        self.conninfo = cluster.conninfo(name)

    def connect(self, **kw):
        return psycopg.connect(self.conninfo, autocommit=True, **kw)

    def query(self, sql, params=None):
        """All rows as dicts."""
        with self.connect(row_factory=psycopg.rows.dict_row) as c:
            return c.execute(sql, params).fetchall()

    def rows(self, sql, params=None):
        """All rows as tuples."""
        with self.connect() as c:
            return c.execute(sql, params).fetchall()

    def scalar(self, sql, params=None):
        with self.connect() as c:
            row = c.execute(sql, params).fetchone()
            return row[0] if row else None

    def execute(self, sql, params=None):
        with self.connect() as c:
            c.execute(sql, params)

    # --- SPEC §6 names ---------------------------------------------------
    def callbacks(self, invoice=None, verdict=None):
        sql = "SELECT * FROM bayarhook.callbacks WHERE true"
        params = []
        if invoice is not None:
            sql += " AND invoice_id = %s"
            params.append(invoice)
        if verdict is not None:
            sql += " AND verdict = %s"
            params.append(verdict)
        return self.query(sql + " ORDER BY id", params)

    def wait_callbacks(self, n, invoice=None, timeout=5):
        """The callbacks rows once there are at least n (of invoice, or all).

        A 200 is durable before it is sent, so its row is checked at once; a
        refusal's audit row may be written just after the answer.
        """
        return wait_for(lambda: (lambda rows: rows if len(rows) >= n else None)(
            self.callbacks(invoice)), timeout * SLOW, interval=0.05,
            what=f"{n} callbacks rows" + (f" for {invoice}" if invoice else ""))

    def verdicts(self, invoice=None):
        """The verdicts of the callbacks rows, in order (optionally for one invoice)."""
        return [r["verdict"] for r in self.callbacks(invoice)]

    def payment(self, invoice):
        rows = self.query("SELECT * FROM bayarhook.payments WHERE invoice_id = %s", [invoice])
        return rows[0] if rows else None

    def count(self, table, where="true", params=None):
        return self.scalar(f"SELECT count(*) FROM bayarhook.{table} WHERE {where}", params)


def header_names(headers_json):
    """Lower-cased header names of a callbacks.headers value (object or list form)."""
    h = headers_json
    if isinstance(h, str):
        h = json.loads(h)
    names = set()
    if isinstance(h, dict):
        names = {k.lower() for k in h}
    elif isinstance(h, list):
        for item in h:
            if isinstance(item, (list, tuple)) and item:
                names.add(str(item[0]).lower())
            elif isinstance(item, dict):
                n = item.get("name") or item.get("key")
                if n:
                    names.add(str(n).lower())
                else:
                    names |= {k.lower() for k in item}
    return names


# ---------------------------------------------------------------------------
# The daemon

def _clean_env(extra=None):
    env = dict(os.environ)
    for k in ("NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "WATCHDOG_USEC",
              "WATCHDOG_PID", "CREDENTIALS_DIRECTORY", "BAYARHOOK_CONFIG", "JOURNAL_STREAM"):
        env.pop(k, None)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    env.setdefault("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
    if extra:
        env.update(extra)
    return env


def wrap(argv):
    """argv, under valgrind when BAYARHOOK_VALGRIND=1."""
    if VALGRIND:
        return ["valgrind", "-q", "--error-exitcode=99", "--leak-check=full",
                "--errors-for-leak-kinds=definite", "--track-fds=no",
                "--trace-children=no", *argv]
    return list(argv)


def default_config(port, conninfo, secret_file, api_key_file, gateway_url):
    """The config sections a test daemon starts from (SPEC §3 keys)."""
    return {
        "server": {
            "listen": f"127.0.0.1:{port}",
            "callback_path": "/callback",
            "max_body_bytes": "65536",
            "request_timeout": "10",
            "trusted_proxies": "127.0.0.1/32, ::1/128",
        },
        "security": {
            "webhook_secret_file": secret_file,
            "replay_window": "300",
            "confirm_with_api": "false",
        },
        "database": {"conninfo": conninfo},
        "gateway": {
            "base_url": gateway_url,
            "api_key_file": api_key_file,
            "timeout": "10",
        },
        "reconciler": {"enabled": "false"},
        "fulfillment": {
            "max_attempts": "10",
            "backoff_initial": "5",
            "backoff_max": "3600",
            "concurrency": "4",
        },
    }


def render_ini(sections):
    out = []
    for sec, keys in sections.items():
        out.append(f"[{sec}]")
        for k, v in keys.items():
            if v is None:
                continue
            out.append(f"{k} = {v}")
        out.append("")
    return "\n".join(out)


class Daemon:
    """A bayarhook with its own config in workdir.

    config: {section: {key: value}} merged over default_config(); a value of
    None removes the key, a section value of None removes the section.
    secrets: the lines of the webhook secret file (current first).
    """

    def __init__(self, workdir, conninfo, secrets=(DEFAULT_SECRET,), config=None,
                 api_key=DEFAULT_API_KEY, gateway_url=None, env=None):
        self.workdir = str(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.conninfo = conninfo
        self.secrets = list(secrets)
        self.port = free_port()
        self.secret_file = os.path.join(self.workdir, "webhook-secret")
        self.api_key_file = os.path.join(self.workdir, "api-key")
        self.config_path = os.path.join(self.workdir, "receiver.conf")
        self.log_path = os.path.join(self.workdir, "bayarhook.log")
        self.env = _clean_env(env)
        self.proc = None
        self._log = None
        self.exit_code = None
        with open(self.secret_file, "w") as f:
            f.write("\n".join(self.secrets) + "\n")
        os.chmod(self.secret_file, 0o600)
        with open(self.api_key_file, "w") as f:
            f.write(api_key + "\n")
        os.chmod(self.api_key_file, 0o600)
        # A port nobody listens on: no test reaches the real gateway.
        gateway_url = gateway_url or f"http://127.0.0.1:{free_port()}/api"
        self.sections = default_config(self.port, conninfo, self.secret_file,
                                       self.api_key_file, gateway_url)
        self.update_config(config or {})

    # --- config ----------------------------------------------------------
    def update_config(self, config):
        for sec, keys in config.items():
            if keys is None:
                self.sections.pop(sec, None)
                continue
            cur = self.sections.setdefault(sec, {})
            for k, v in keys.items():
                if v is None:
                    cur.pop(k, None)
                else:
                    cur[k] = str(v)
        self.write_config()

    def write_config(self, text=None):
        with open(self.config_path, "w") as f:
            f.write(text if text is not None else render_ini(self.sections))

    def write_secrets(self, secrets):
        self.secrets = list(secrets)
        with open(self.secret_file, "w") as f:
            f.write("\n".join(self.secrets) + "\n")

    @property
    def secret(self):
        return self.secrets[0]

    @property
    def window(self):
        return int(self.sections["security"].get("replay_window", 300))

    # --- URLs ------------------------------------------------------------
    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.port}"

    def url(self, path=None):
        if path is None:
            path = self.sections["server"].get("callback_path", "/callback")
        return self.base_url + path

    @property
    def callback_url(self):
        return self.url()

    # --- CLI -------------------------------------------------------------
    def cli(self, *args, timeout=60, check=False, config=True, input=None):
        """Runs `bayarhook -c conf ARGS`; returns CompletedProcess (text)."""
        argv = [BIN]
        if config:
            argv += ["-c", self.config_path]
        argv += [str(a) for a in args]
        p = subprocess.run(wrap(argv), input=input, stdin=None if input is not None else subprocess.DEVNULL,
                           capture_output=True, text=True, env=self.env, cwd=self.workdir,
                           timeout=timeout * SLOW)
        with open(self.log_path, "a") as f:
            f.write(f"--- $ {' '.join(argv)} -> {p.returncode}\n{p.stdout}{p.stderr}")
        bad = sanitizer_errors(p.stderr)
        if bad:
            raise AssertionError(f"{' '.join(args)}: sanitizer/valgrind errors:\n" + p.stderr)
        if check and p.returncode != 0:
            raise AssertionError(f"bayarhook {' '.join(map(str, args))} exited {p.returncode}:\n"
                                 f"stdout: {p.stdout}\nstderr: {p.stderr}")
        return p

    def migrate(self):
        return self.cli("migrate", check=True, timeout=120)

    # --- serve -----------------------------------------------------------
    def start(self, migrate=True, wait=True, timeout=20, args=()):
        """args: serve's own (e.g. --conninfo STR)."""
        if migrate:
            self.migrate()
        self._log = open(self.log_path, "ab")
        self._log.write(b"--- serve\n")
        self._log.flush()
        self.proc = subprocess.Popen(wrap([BIN, "-c", self.config_path, "serve", *args]),
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, env=self.env, cwd=self.workdir,
                                     start_new_session=True)
        if wait:
            self.wait_ready(timeout)
        return self

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout=20):
        """Until GET /healthz answers at all (any status)."""
        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"bayarhook serve exited with {self.proc.returncode}:\n"
                                   f"{tail(self.log_path)}")
            try:
                get(self.url("/healthz"), timeout=2)
                return True
            except (OSError, http.client.HTTPException):
                return False

        deadline = time.monotonic() + timeout * SLOW
        while not ready():
            if time.monotonic() > deadline:
                raise TimeoutError(f"bayarhook did not answer /healthz within {timeout * SLOW}s:\n"
                                   f"{tail(self.log_path)}")
            time.sleep(0.1)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def reload(self):
        self.signal(signal.SIGHUP)

    def stop(self, timeout=10):
        """SIGTERM, wait up to timeout (scaled), then SIGKILL. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                with open(self.log_path, "a") as f:
                    f.write(f"--- killed: no exit {timeout * SLOW}s after SIGTERM\n")
        self.exit_code = self.proc.returncode
        if self._log:
            self._log.close()
            self._log = None
        return self.exit_code

    def log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, lines=80):
        return tail(self.log_path, lines)

    # --- callbacks -------------------------------------------------------
    def callback(self, invoice=None, secret=None, **kw):
        """make_callback(...) signed with the current secret and POSTed; returns Response."""
        invoice = invoice or new_invoice()
        body, headers = make_callback(invoice, secret=secret or self.secret, **kw)
        return post(self.callback_url, body, headers)



def child_processes(pid):
    """[(child pid, state letter)] of the processes whose parent is pid (/proc)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                data = f.read()
        except OSError:
            continue
        rest = data[data.rindex(")") + 2:].split()
        if int(rest[1]) == pid:
            out.append((int(d), rest[0]))
    return out
