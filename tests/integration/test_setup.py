"""A production host that works the first time (issue 12, SPEC §10).

- The commands that use no secret (migrate, jobs, retry, cancel, replay,
  audit) run when the secret files cannot be read: an operator runs them as
  root or as another user than the service, whose secret files are 0600.
  The commands that do use one (check-config, send-test) still refuse.
- --conninfo STR on every database command overrides [database] conninfo.
"""

import os
import subprocess

import bh


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

    # The commands that sign or print the secrets still need them.
    p = d.cli("check-config")
    assert p.returncode == 1 and "cannot open" in p.stderr
    p = d.cli("send-test")
    assert p.returncode == 1 and "cannot open" in p.stderr


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
    # Without its value it is a usage error; a command without a database refuses it.
    assert d.cli("jobs", "--conninfo").returncode == 2
    assert d.cli("check-config", "--conninfo", db.conninfo).returncode == 2
