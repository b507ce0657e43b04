"""Secrets: rotation and their hardening (issue 11 SPEC §7, issue 17 SPEC §13).

- SIGHUP re-reads the secret file: outside systemd a new secret added as the
  first line works at once, the old one still does; start, reload and
  check-config give the count and each fingerprint (first 8 hex digits of
  the SHA-256), never the secret.
- Under $CREDENTIALS_DIRECTORY a reload says that a secret change needs a
  restart.
- A secret under 8 bytes is refused, one under 16 bytes and a secret file
  readable by group or others are warned about.
- serve is not dumpable: a process of the same user cannot read its memory.
"""

import hashlib
import os
import re
import shutil
import subprocess
import time

import bh

OLD = bh.DEFAULT_SECRET
NEW = "whsec_rotated_new_secret_0123456789"


def fp(secret):
    return hashlib.sha256(secret.encode()).hexdigest()[:8]


def wait_log(d, pattern, timeout=10):
    return bh.wait_for(lambda: re.search(pattern, d.log(), re.M), timeout * bh.SLOW,
                       what=f"log line {pattern!r}")


def test_rotation_by_sighup_outside_systemd(make_daemon):
    d = make_daemon(secrets=[OLD])
    wait_log(d, rf"notice: start: 1 webhook secret\(s\), fingerprints {fp(OLD)} ")
    assert d.callback(bh.new_invoice("rot0"), secret=OLD).status == 200

    # Step 1 and 2 of the runbook: the new secret first, the old one kept.
    d.write_secrets([NEW, OLD])
    d.reload()
    wait_log(d, rf"notice: reload: 2 webhook secret\(s\), fingerprints {fp(NEW)}, {fp(OLD)} ")
    assert d.callback(bh.new_invoice("rotn"), secret=NEW).status == 200
    assert d.callback(bh.new_invoice("roto"), secret=OLD).status == 200
    assert d.callback(bh.new_invoice("rotx"), secret="whsec_neither_of_them_0123").status == 401
    p = d.cli("check-config", check=True)
    assert f"# 2 webhook secret(s), fingerprints (SHA-256, current first): {fp(NEW)}, " \
           f"{fp(OLD)}" in p.stdout

    # Step 4: the old line goes.
    d.write_secrets([NEW])
    d.reload()
    wait_log(d, rf"notice: reload: 1 webhook secret\(s\), fingerprints {fp(NEW)} ")
    assert d.callback(bh.new_invoice("rot2"), secret=OLD).status == 401
    assert d.callback(bh.new_invoice("rot3"), secret=NEW).status == 200

    log = d.log()
    assert NEW not in log and OLD not in log
    # Not from $CREDENTIALS_DIRECTORY: nothing to restart for.
    assert "CREDENTIALS_DIRECTORY" not in log


def test_reload_under_credentials_directory_says_restart(make_daemon, tmp_path):
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "webhook-secret").write_text(OLD + "\n")
    os.chmod(creds / "webhook-secret", 0o400)
    d = make_daemon(config={"security": {"webhook_secret_file": "webhook-secret"}},
                    env={"CREDENTIALS_DIRECTORY": str(creds)}, start=False)
    os.remove(d.secret_file)  # only the credential can be read
    d.start()
    assert d.callback(bh.new_invoice("cred"), secret=OLD).status == 200
    assert "systemctl restart" not in d.log()
    d.reload()
    line = wait_log(d, r"^.*warning: reload: secrets are read from \$CREDENTIALS_DIRECTORY.*$")
    assert "a changed secret takes effect after systemctl restart" in line.group(0)


def test_secret_files_default_to_their_names_in_spec(make_daemon, tmp_path):
    """SPEC §3's block: webhook_secret_file = webhook-secret, api_key_file =
    api-key. A config that names neither reads those files, from
    $CREDENTIALS_DIRECTORY first, then beside the config; without them the
    webhook secret is required and there is no API key."""
    d = make_daemon(config={"security": {"webhook_secret_file": None},
                            "gateway": {"api_key_file": None}}, start=False)
    # Beside the config (bh.Daemon writes both files there).
    p = d.cli("check-config")
    assert p.returncode == 0, p.stderr
    assert "1 webhook secret" in p.stdout + p.stderr, p.stdout + p.stderr
    assert "api_key = (none" not in p.stdout, p.stdout
    d.start(migrate=True)
    assert d.callback(bh.new_invoice("dflt")).status == 200
    d.stop()
    # From $CREDENTIALS_DIRECTORY, where systemd's LoadCredential= puts them.
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "webhook-secret").write_text(NEW + "\n")
    os.chmod(creds / "webhook-secret", 0o400)
    os.remove(d.secret_file)
    os.remove(d.api_key_file)
    d.env["CREDENTIALS_DIRECTORY"] = str(creds)
    p = d.cli("check-config")
    del d.env["CREDENTIALS_DIRECTORY"]
    assert p.returncode == 0, p.stderr
    assert fp(NEW) in p.stdout + p.stderr
    assert "api_key = (none" in p.stdout, p.stdout
    # Neither: the webhook secret is required, named with its file and line.
    p = d.cli("check-config")
    assert p.returncode == 1
    assert "webhook_secret_file: required (or webhook_secret)" in p.stderr, p.stderr


def test_short_secret_refused_weak_and_readable_warned(make_daemon):
    d = make_daemon(secrets=["abc1234"], start=False)
    p = d.cli("check-config")
    assert p.returncode == 1
    assert re.search(r"receiver\.conf:\d+: webhook_secret_file: \S+webhook-secret: secret 1: "
                     r"a secret of 7 byte\(s\); at least 8 are needed", p.stderr), p.stderr
    assert "abc1234" not in p.stderr
    # serve refuses to start with it.
    r = subprocess.run([bh.BIN, "-c", d.config_path, "serve"], capture_output=True, text=True,
                       env=d.env, timeout=30 * bh.SLOW)
    assert r.returncode == 1 and "at least 8 are needed" in r.stderr

    # 12 bytes, and the file readable by everyone: loaded, with two warnings.
    d.write_secrets(["whsec_12byte"])
    os.chmod(d.secret_file, 0o644)
    p = d.cli("check-config")
    assert p.returncode == 0, p.stderr
    assert re.search(r"warning: \S+receiver\.conf:\d+: webhook_secret_file: .*a secret of 12 "
                     r"bytes is weak; use 16 or more", p.stderr), p.stderr
    assert "readable by others (mode 0644); chmod 600 it" in p.stderr
    d.start(migrate=True)
    wait_log(d, r"warning: start: \S+receiver\.conf:\d+: webhook_secret_file: .*readable by "
             r"others")
    assert d.callback(bh.new_invoice("weak"), secret="whsec_12byte").status == 200

    # Fixed by a reload: nothing more to say.
    os.chmod(d.secret_file, 0o600)
    d.write_secrets([NEW])
    n = d.log().count("readable by others")
    d.reload()
    wait_log(d, rf"reload: 1 webhook secret\(s\), fingerprints {fp(NEW)} ")
    assert d.log().count("readable by others") == n


def _readable_without_caps(pid):
    """Whether a process of the same user, with no capabilities, can read pid's environ."""
    r = subprocess.run(["setpriv", "--bounding-set=-all", "--inh-caps=-all", "head", "-c", "1",
                        f"/proc/{pid}/environ"], capture_output=True)
    return r.returncode == 0


def test_serve_is_not_dumpable(make_daemon, tmp_path):
    if shutil.which("setpriv") is None:
        raise AssertionError("setpriv (util-linux) is needed for this test")
    d = make_daemon(start=False)
    d.migrate()
    # The method works: a capability-less sleep is readable by another.
    sleeper = subprocess.Popen(["setpriv", "--bounding-set=-all", "--inh-caps=-all", "sleep",
                                "30"])
    # serve without capabilities too (so that only dumpability can refuse).
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen(["setpriv", "--bounding-set=-all", "--inh-caps=-all", bh.BIN, "-c",
                             d.config_path, "serve"], stdout=log, stderr=subprocess.STDOUT,
                            env=d.env, cwd=d.workdir)
    try:
        bh.wait_for(lambda: "listening on" in (tmp_path / "serve.log").read_text(), 20 * bh.SLOW,
                    what="serve to listen")
        time.sleep(0.2)
        assert _readable_without_caps(sleeper.pid)
        assert not _readable_without_caps(proc.pid)
        assert d.callback(bh.new_invoice("dump")).status == 200
    finally:
        proc.terminate()
        proc.wait(20)
        sleeper.kill()
        sleeper.wait()
        log.close()
    assert proc.returncode == 0
    assert not bh.sanitizer_errors((tmp_path / "serve.log").read_text())
