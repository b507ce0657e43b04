"""A production host that works the first time (issue 12, SPEC §10).

- The commands that use no secret (migrate, jobs, retry, cancel, replay,
  audit) run when the secret files cannot be read: an operator runs them as
  root or as another user than the service, whose secret files are 0600.
  The commands that do use one (check-config, send-test) still refuse.
- --conninfo STR on every database command overrides [database] conninfo.
- `doctor`: one line per check, ok or FAIL with what to do; exit 0 exactly
  when every line is ok. A healthy setup (the clock may be unsynchronised in
  a VM: either answer, in its format), a gateway refusing the key, a stopped
  database.
- send-test --resolve/--cacert through nginx with a private CA, --insecure
  against a self-signed certificate.
- README as written: the "Which amount" sql example marks a 50000 order paid
  by a 50123 payment; the "Production setup" steps, as root with peer
  authentication and its pg_ident map, end in an accepted callback.
"""

import hashlib
import os
import re
import subprocess

import pytest

import bh
import fake_gateway

CHECKS = ["config", "database", "secrets", "gateway", "clock", "listener"]
LINE = re.compile(r"^(ok   |FAIL ) (\w+): (.+)$")


def _no_secret_files(d):
    """Both *_file secrets gone: what a user who cannot read them sees."""
    os.remove(d.secret_file)
    os.remove(d.api_key_file)


def test_admin_commands_without_readable_secrets(make_daemon):
    # confirm_with_api needs an API key: it must count as given, unread.
    d = make_daemon(start=False, config={"security": {"confirm_with_api": "true"}})
    d.start()
    assert d.callback(bh.new_invoice("adm")).status == 200
    d.stop()
    _no_secret_files(d)

    p = d.cli("migrate")
    assert p.returncode == 0, p.stderr
    p = d.cli("audit", "--limit", "5", check=True)
    assert "paid" in p.stdout
    p = d.cli("jobs", "--json", check=True)
    assert p.stdout.strip().startswith("[")
    assert d.cli("retry", "999999").returncode == 1  # ran, found no such job
    assert d.cli("cancel", "999999").returncode == 1
    p = d.cli("replay", "INV-NOPE")
    assert "cannot open" not in p.stderr and "webhook" not in p.stderr, p.stderr
    for p in (d.cli("retry", "999999"), d.cli("cancel", "999999")):
        assert "cannot open" not in p.stderr, p.stderr
    p = d.cli("payments", "--json", check=True)
    assert p.stdout.strip().startswith("[")
    p = d.cli("reconcile", "--history", check=True)
    assert "cannot open" not in p.stderr, p.stderr

    # The commands that sign or print the secrets still need them.
    p = d.cli("check-config")
    assert p.returncode == 1 and "cannot open" in p.stderr
    p = d.cli("send-test")
    assert p.returncode == 1 and "cannot open" in p.stderr
    p = d.cli("reconcile", "--once")  # a pass asks the gateway: it needs the API key
    assert p.returncode == 1 and "cannot open" in p.stderr, p.stderr


def test_unreadable_secret_mode_000_as_another_user(make_daemon, tmp_path):
    """As a user who is not the files' owner, mode 000 (root reads anything)."""
    d = make_daemon(start=False)
    d.migrate()
    os.chmod(d.secret_file, 0o000)
    os.chmod(d.api_key_file, 0o000)
    if os.geteuid() == 0:
        # Let nobody reach the config and the build; the secrets stay 000.
        for p in (d.workdir, tmp_path, *[x for x in tmp_path.parents if str(x).startswith("/tmp/")]):
            os.chmod(p, os.stat(p).st_mode | 0o005)
        os.chmod(d.config_path, 0o644)
        run = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", bh.BIN]
    else:
        run = [bh.BIN]
    env = dict(d.env)
    p = subprocess.run(run + ["-c", d.config_path, "check-config"], capture_output=True,
                       text=True, env=env, cwd="/")
    assert p.returncode == 1, p.stderr
    assert f"cannot open {d.secret_file}: Permission denied" in p.stderr, p.stderr
    p = subprocess.run(run + ["-c", d.config_path, "jobs", "--conninfo", d.conninfo],
                       capture_output=True, text=True, env=env, cwd="/")
    assert p.returncode == 0, p.stderr


def test_conninfo_overrides_the_config(make_daemon, db):
    wrong = db.conninfo.replace(f"dbname={db.name}", "dbname=bayarhook_none_such")
    d = make_daemon(start=False, config={"database": {"conninfo": wrong}})
    p = d.cli("migrate")
    assert p.returncode == 1 and "bayarhook_none_such" in p.stderr
    for form in (["--conninfo", db.conninfo], [f"--conninfo={db.conninfo}"]):
        p = d.cli("migrate", *form)
        assert p.returncode == 0, p.stderr
    assert db.scalar("select count(*) from bayarhook.schema_version") > 0
    p = d.cli("jobs", "--conninfo", db.conninfo, "--json", check=True)
    assert p.stdout.strip().startswith("[")
    p = d.cli("audit", "--conninfo", db.conninfo, check=True)
    # Before the command too, as --help lists it among the general options.
    p = d.cli("--conninfo", db.conninfo, "jobs", "--json", check=True)
    assert p.stdout.strip().startswith("[")
    # Without its value it is a usage error; a command without a database refuses it.
    assert d.cli("jobs", "--conninfo").returncode == 2
    assert d.cli("check-config", "--conninfo", db.conninfo).returncode == 2

    # serve is a database command: it connects with --conninfo, also after a reload.
    d.start(migrate=False, args=("--conninfo", db.conninfo))
    health = bh.get(d.url("/healthz")).json
    assert health == {"status": "ok", "database": "up"}, health
    inv = bh.new_invoice("conninfo")
    assert d.callback(inv).json == {"success": True}
    assert db.verdicts(inv) == ["accepted"]
    d.reload()
    bh.wait_for(lambda: "configuration reloaded" in d.log(), 10, what="the reload")
    assert "conninfo changed" not in d.log()
    assert d.callback(bh.new_invoice("conninfo2")).json == {"success": True}
    assert d.stop() == 0


def doctor(d, *args):
    """Runs doctor; returns ({check: (ok, text)}, returncode), format asserted."""
    p = d.cli("doctor", *args)
    lines = p.stdout.splitlines()
    assert len(lines) == len(CHECKS), p.stdout + p.stderr
    out = {}
    for line, name in zip(lines, CHECKS):
        m = LINE.match(line)
        assert m and m.group(2) == name, line
        out[name] = (m.group(1) == "ok   ", m.group(3))
    # Exit 0 exactly when every line is ok.
    assert p.returncode == (0 if all(ok for ok, _ in out.values()) else 1), p.stdout
    return out, p.returncode


def assert_clock_line(res):
    ok, text = res["clock"]
    if ok:
        assert text.startswith("synchronised"), text
    else:
        assert "not synchronised" in text and "systemd-timesyncd" in text \
            and "chrony" in text, text


def test_doctor_healthy(make_daemon, gateway):
    d = make_daemon(gateway_url=gateway.base_url)
    res, rc = doctor(d)
    for name in ("config", "database", "secrets", "gateway", "listener"):
        assert res[name][0], (name, res[name])
    fp = hashlib.sha256(bh.DEFAULT_SECRET.encode()).hexdigest()[:8]
    assert f"1 webhook secret(s), fingerprints {fp}" in res["secrets"][1]
    assert bh.DEFAULT_SECRET not in str(res) and bh.DEFAULT_API_KEY not in str(res)
    assert "(current)" in res["database"][1]
    assert_clock_line(res)
    assert rc == (0 if res["clock"][0] else 1)
    asked = gateway.requests_to("get-account-status")
    assert asked and asked[-1]["headers"].get("X-API-Key") == bh.DEFAULT_API_KEY

    # The listener stopped: that line fails, and says how to start it.
    d.stop()
    res, rc = doctor(d)
    assert rc == 1 and not res["listener"][0] and "start" in res["listener"][1]
    assert res["database"][0]


def test_doctor_gateway_refuses_the_key(make_daemon):
    with fake_gateway.FakeGateway(api_key="some_other_key_0123456789") as g:
        d = make_daemon(gateway_url=g.base_url)
        res, rc = doctor(d)
    assert rc == 1
    ok, text = res["gateway"]
    assert not ok and "refused (HTTP 401)" in text and "api_key_file" in text
    assert res["config"][0] and res["database"][0] and res["listener"][0]


def test_doctor_schema_behind(make_daemon, db):
    d = make_daemon(start=False)
    res, rc = doctor(d)  # nothing migrated yet
    assert rc == 1 and not res["database"][0] and "bayarhook migrate" in res["database"][1]


def test_doctor_stopped_database(make_daemon, gateway, pg):
    d = make_daemon(gateway_url=gateway.base_url)
    pg.stop("immediate")
    try:
        bh.wait_for(lambda: bh.get(d.url("/healthz"), timeout=10).status == 503,
                    15 * bh.SLOW, interval=0.3, what="/healthz 503")
        res, rc = doctor(d)
    finally:
        pg.start()
    assert rc == 1
    ok, text = res["database"]
    assert not ok and "cannot connect" in text and "conninfo" in text
    # The daemon is up but degraded without its database.
    assert not res["listener"][0] and "503" in res["listener"][1]
    assert res["config"][0] and res["secrets"][0] and res["gateway"][0]


def test_doctor_unloadable_config_still_checks_the_rest(make_daemon, db):
    d = make_daemon(start=False)
    d.migrate()
    os.remove(d.secret_file)
    res, rc = doctor(d)
    assert rc == 1
    assert not res["config"][0] and "cannot open" in res["config"][1]
    assert res["database"][0]  # read without the secrets
    assert not res["secrets"][0]
    # --conninfo reaches doctor's own connection too.
    wrong = db.conninfo.replace(f"dbname={db.name}", "dbname=bayarhook_none_such")
    res, rc = doctor(d, "--conninfo", wrong)
    assert not res["database"][0] and "bayarhook_none_such" in res["database"][1]


# --- send-test aimed at the public URL through nginx (SPEC §10) ---------------

PUBLIC = "pay.example.test"


def make_private_ca(dirpath):
    """A CA and a certificate for PUBLIC signed by it; returns (ca, cert, key)."""
    from test_nginx import need
    openssl = need("openssl")
    p = lambda name: os.path.join(dirpath, name)  # noqa: E731
    os.makedirs(dirpath, exist_ok=True)

    def run(*args):
        r = subprocess.run([openssl, *args], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
        "/CN=bayarhook test CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout", p("ca.key"), "-out", p("ca.pem"))
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={PUBLIC}",
        "-keyout", p("leaf.key"), "-out", p("leaf.csr"))
    with open(p("leaf.ext"), "w") as f:
        f.write(f"subjectAltName=DNS:{PUBLIC}\nbasicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", p("leaf.csr"), "-CA", p("ca.pem"), "-CAkey", p("ca.key"),
        "-CAcreateserial", "-days", "1", "-extfile", p("leaf.ext"), "-out", p("leaf.pem"))
    return p("ca.pem"), p("leaf.pem"), p("leaf.key")


def test_send_test_through_nginx_private_ca(make_daemon, db, tmp_path):
    from test_nginx import NGINX_ADDR, Nginx
    d = make_daemon(config={"server": {"trusted_proxies": "127.0.0.1/32"}})
    n = Nginx(tmp_path / "nginx", d.port)
    ca, cert, key = make_private_ca(str(tmp_path / "ca"))
    # nginx's config names n.cert and n.key: the private CA's pair takes their place.
    os.replace(cert, n.cert)
    os.replace(key, n.key)
    n.start()
    try:
        url = f"https://{PUBLIC}:{n.port}/callback"
        resolve = f"{PUBLIC}:{n.port}:{NGINX_ADDR}"

        # No DNS for the name: it cannot be reached without --resolve.
        p = d.cli("send-test", "--url", url, "--real-secret", "--cacert", ca)
        assert p.returncode == 1 and "resolve" in p.stderr, p.stderr
        # Reached, but the private CA is not trusted without --cacert.
        p = d.cli("send-test", "--url", url, "--real-secret", "--resolve", resolve)
        assert p.returncode == 1 and "certificate" in p.stderr, p.stderr

        inv = bh.new_invoice("pub")
        p = d.cli("send-test", "--url", url, "--real-secret", "--resolve", resolve,
                  "--cacert", ca, "--invoice", inv)
        assert p.returncode == 0, p.stdout + p.stderr
        assert "HTTP 200" in p.stdout
        rows = db.wait_callbacks(1, invoice=inv)
        assert rows[0]["verdict"] == "accepted", rows
    finally:
        n.stop()


def test_send_test_insecure_self_signed(make_daemon, db, tmp_path):
    from test_nginx import NGINX_ADDR, SERVER_NAME, Nginx
    d = make_daemon(config={"server": {"trusted_proxies": "127.0.0.1/32"}})
    n = Nginx(tmp_path / "nginx", d.port).start()  # its own self-signed certificate
    try:
        url = f"https://{SERVER_NAME}:{n.port}/callback"
        resolve = f"{SERVER_NAME}:{n.port}:{NGINX_ADDR}"
        p = d.cli("send-test", "--url", url, "--real-secret", "--resolve", resolve)
        assert p.returncode == 1 and "certificate" in p.stderr, p.stderr
        inv = bh.new_invoice("ins")
        p = d.cli("send-test", "--url", url, "--real-secret", "--resolve", resolve,
                  "--insecure", "--invoice", inv)
        assert p.returncode == 0, p.stdout + p.stderr
        assert db.wait_callbacks(1, invoice=inv)[0]["verdict"] == "accepted"
    finally:
        n.stop()


def test_send_test_aiming_options_need_url(make_daemon):
    d = make_daemon(start=False)
    assert d.cli("send-test", "--insecure").returncode == 2
    assert d.cli("send-test", "--url", "https://x.test/callback", "--resolve",
                 "nonsense").returncode == 2
    p = d.cli("send-test", "--url", "https://x.test:443/callback", "--resolve",
              "x.test:443:not-an-address", "--real-secret")
    assert p.returncode == 1 and "HOST:PORT:ADDR" in p.stderr, p.stderr


# --- README's "Which amount" example, as written ------------------------------

def readme_action(heading):
    """The first ```ini block under README's `## heading`, as {key: value}."""
    text = open(os.path.join(bh.SOURCE_DIR, "README.md")).read()
    part = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    block = part.split("```ini\n", 1)[1].split("```", 1)[0]
    keys = {}
    for line in block.splitlines():
        if "=" in line and not line.startswith(("[", ";")):
            k, v = line.split("=", 1)
            keys[k.strip()] = v.strip()
    return keys


def test_readme_which_amount_example_marks_the_order_paid(make_daemon, db):
    action = readme_action("Which amount")
    assert ":amount" in action["statement"] and ":final_amount" not in action["statement"]
    db.execute("CREATE TABLE orders (invoice_id text PRIMARY KEY, total integer NOT NULL, "
               "state text NOT NULL DEFAULT 'new')")
    d = make_daemon(config={"action.mark_paid": action})
    inv = bh.new_invoice("amt")
    db.execute("INSERT INTO orders (invoice_id, total) VALUES (%s, 50000)", [inv])
    # The shop asked for 50000; bayar.gg added its unique code: 50123 to pay.
    assert d.callback(inv, amount=50000, final_amount=50123).status == 200
    bh.wait_for(lambda: db.scalar("SELECT state FROM orders WHERE invoice_id = %s",
                                  [inv]) == "paid", 15 * bh.SLOW, what="order paid")
    job = bh.wait_for(lambda: (lambda r: r if r and r[0]["state"] == "succeeded" else None)(
        db.query("SELECT state FROM bayarhook.jobs WHERE invoice_id = %s", [inv])),
        15 * bh.SLOW, what="job succeeded")
    assert job[0]["state"] == "succeeded"


# --- README's production setup, step by step, as root with peer authentication ---

def readme_blocks(heading):
    """The fenced code blocks under README's `## heading`, in order."""
    text = open(os.path.join(bh.SOURCE_DIR, "README.md")).read()
    part = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return [b.split("\n", 1)[1] for b in part.split("```")[1::2]]


def test_readme_production_setup_as_root_with_peer(make_daemon):
    if os.geteuid() != 0:
        pytest.skip("the README's steps run as root")
    blocks = readme_blocks("Production setup")
    roles, ident, hba = blocks[0], blocks[1], blocks[2]
    text = open(os.path.join(bh.SOURCE_DIR, "README.md")).read()
    conninfo = re.search(r"`conninfo = (postgresql:///bayarhook\?user=bayarhook)`",
                         text).group(1)

    cluster = bh.PgCluster()  # its own, with the README's authentication
    cluster.init()
    try:
        # The README's pg_ident.conf lines and its pg_hba.conf line, first.
        with open(os.path.join(cluster.datadir, "pg_ident.conf"), "a") as f:
            f.write(ident)
        path = os.path.join(cluster.datadir, "pg_hba.conf")
        old = open(path).read()
        with open(path, "w") as f:
            f.write(hba + old)
        cluster.start()
        # Step 1: the role and the database, as the README's commands say.
        env = dict(os.environ, PGHOST=cluster.sockdir, PGPORT=str(cluster.port))
        ran = 0
        for line in roles.splitlines():
            m = re.match(r"runuser -u postgres -- (createuser|createdb) (.*)$", line)
            if m:
                r = subprocess.run(["runuser", "-u", "postgres", "--", "env",
                                    f"PGHOST={cluster.sockdir}", f"PGPORT={cluster.port}",
                                    os.path.join(cluster.bindir, m.group(1)),
                                    *m.group(2).split()],
                                   capture_output=True, text=True, timeout=60)
                assert r.returncode == 0, r.stderr
                ran += 1
        assert ran == 3, roles  # the owner, the service's role, the database

        # Steps 3 and 4: the config's conninfo as written; libpq finds the
        # test cluster's socket through PGHOST/PGPORT instead of /run/postgresql.
        d = make_daemon(start=False, config={"database": {"conninfo": conninfo}},
                        env={"PGHOST": cluster.sockdir, "PGPORT": str(cluster.port)})
        # Without the role named, root is root: the catch-22 the README solves.
        p = d.cli("jobs", "--conninfo", "dbname=bayarhook")
        assert p.returncode == 1 and 'role "root" does not exist' in p.stderr, p.stderr
        # Step 4: the owner migrates and grants, as written.
        owner_conninfo = re.search(r"(?m)^OWNER='([^']+)'$", text).group(1)
        step4 = next(b for b in blocks if b.startswith("OWNER="))
        for line in step4.splitlines():
            m = re.match(r'bayarhook (migrate|grant .*) --conninfo "\$OWNER"', line)
            if m:
                d.cli(*m.group(1).split(), "--conninfo", owner_conninfo, check=True)
                ran += 1
        assert ran == 5, step4
        d.start(migrate=False)
        inv = bh.new_invoice("prod")
        assert d.callback(inv).status == 200
        p = d.cli("audit", "--invoice", inv, check=True)
        assert "accepted" in p.stdout, p.stdout
        owner = subprocess.run(
            ["runuser", "-u", "postgres", "--", os.path.join(cluster.bindir, "psql"), "-XAtq",
             "-d", "bayarhook", "-c",
             "SELECT tableowner FROM pg_tables WHERE schemaname = 'bayarhook' LIMIT 1"],
            capture_output=True, text=True, env=env, timeout=60)
        assert owner.stdout.strip() == "bayarhook_owner", owner.stdout + owner.stderr
        # The service's role may add audit rows but not change them.
        forged = subprocess.run(
            ["runuser", "-u", "postgres", "--", os.path.join(cluster.bindir, "psql"), "-XAtq",
             "-d", "bayarhook", "-c",
             "SET ROLE bayarhook; UPDATE bayarhook.callbacks SET body = ''"],
            capture_output=True, text=True, env=env, timeout=60)
        assert "permission denied for table callbacks" in forged.stderr, forged.stderr
        d.stop()
    finally:
        cluster.destroy()
