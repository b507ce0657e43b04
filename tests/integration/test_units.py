"""Checks of the deployment files in contrib/: the systemd units and the nginx
snippet, with the tools that will read them.

- `systemd-analyze verify` on the unchanged unit files (and an instance of the
  per-shop template bayarhook@.service) inside a throw-away
  root (--root): there /usr/bin/bayarhook and the other Exec*= commands exist
  as stubs, and the host's own units (sysinit.target, ...) are copied in, so
  verify checks our directives instead of failing on the missing binary. It
  exits 0 even for unknown keys or bad values, so any output is a failure.
  --man=no: the man page is installed by the package, not on this machine.
- `systemd-analyze security --offline=true`: exposure level at most 1.5.
- `nginx -t` on a minimal nginx.conf that includes the snippet inside http {},
  with pid, logs and temp paths in a temp dir. The snippet's placeholder
  certificate paths are the only lines changed, pointed at a fresh
  self-signed pair. nginx -t binds its listen sockets, so it runs in a
  private network namespace (unshare -rn) where 443 is free and needs no
  root.

Needs: systemd (systemd-analyze), nginx, openssl, util-linux (unshare).
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

SRC = Path(os.environ.get("BAYARHOOK_SOURCE_DIR", Path(__file__).resolve().parents[2]))
SYSTEMD_DIR = SRC / "contrib" / "systemd"
SERVICE = SYSTEMD_DIR / "bayarhook.service"
SOCKET = SYSTEMD_DIR / "bayarhook.socket"
TEMPLATE = SYSTEMD_DIR / "bayarhook@.service"  # one instance per shop (issue 12)
NGINX_CONF = SRC / "contrib" / "nginx" / "bayarhook.conf"
MAX_EXPOSURE = 1.5
EXEC_KEYS = ("ExecStartPre", "ExecStart", "ExecStartPost", "ExecReload", "ExecStop",
             "ExecStopPost", "ExecCondition")


def need(tool):
    path = shutil.which(tool) or next(
        (p for p in (f"/usr/sbin/{tool}", f"/sbin/{tool}") if os.access(p, os.X_OK)), None)
    if path is None:
        pytest.fail(f"{tool} not found: install it (apt-get install -y systemd nginx openssl)")
    return path


def run(args, **kw):
    env = dict(os.environ, SYSTEMD_COLORS="0", SYSTEMD_PAGER="", LC_ALL="C.UTF-8")
    return subprocess.run(args, capture_output=True, text=True, errors="replace", env=env,
                          timeout=120, **kw)


def unit_directives(path):
    """{(section, key): [values]}; repeated keys keep every value."""
    out, section = {}, None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        out.setdefault((section, key.strip()), []).append(value.strip())
    return out


def exec_paths(path):
    """Absolute program paths of the Exec*= lines, prefixes (-@:+!) removed."""
    paths = set()
    for (section, key), values in unit_directives(path).items():
        if section == "Service" and key in EXEC_KEYS:
            for v in values:
                paths.add(v.lstrip("-@:+!|").split()[0])
    return paths


def make_root(tmp_path, units):
    """A root with the host's system units, our units and stub programs."""
    root = tmp_path / "root"
    host_units = next(p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))
                      if p.is_dir())
    shutil.copytree(host_units, root / "usr/lib/systemd/system", symlinks=True)
    etc = root / "etc/systemd/system"
    etc.mkdir(parents=True)
    for name, text in units.items():
        (etc / name).write_text(text)
    for unit in (SERVICE, SOCKET, TEMPLATE):
        for prog in exec_paths(unit):
            assert prog.startswith("/"), f"{unit.name}: {prog} is not an absolute path"
            stub = root / prog.lstrip("/")
            stub.parent.mkdir(parents=True, exist_ok=True)
            stub.write_text("#!/bin/sh\nexit 0\n")
            stub.chmod(0o755)
    return root


def verify(root, units=("bayarhook.service", "bayarhook.socket")):
    tool = need("systemd-analyze")
    return run([tool, "verify", "--man=no", "--generators=no", f"--root={root}", *units])


def our_units():
    return {SERVICE.name: SERVICE.read_text(), SOCKET.name: SOCKET.read_text(),
            TEMPLATE.name: TEMPLATE.read_text()}


def test_verify_template_instance_is_clean(tmp_path):
    r = verify(make_root(tmp_path, our_units()), units=("bayarhook@toko1.service",))
    assert r.returncode == 0, r.stdout + r.stderr
    assert (r.stdout + r.stderr).strip() == "", r.stdout + r.stderr


def test_verify_template_would_catch_a_mistake(tmp_path):
    units = our_units()
    units[TEMPLATE.name] = units[TEMPLATE.name].replace(
        "[Service]\n", "[Service]\nProtectSystm=strict\n", 1)
    r = verify(make_root(tmp_path, units), units=("bayarhook@toko1.service",))
    assert "ProtectSystm" in r.stdout + r.stderr


# What an instance changes from bayarhook.service: its name, config, user, credentials.
PER_SHOP = {("Unit", "Description"), ("Service", "ExecStartPre"), ("Service", "ExecStart"),
            ("Service", "LoadCredential"), ("Service", "User"), ("Service", "Group"),
            ("Install", "Also")}


def test_template_has_the_service_hardening():
    svc, tpl = unit_directives(SERVICE), unit_directives(TEMPLATE)
    for key in set(svc) | set(tpl):
        if key not in PER_SHOP:
            assert svc.get(key) == tpl.get(key), f"[{key[0]}] {key[1]}= differs"
    assert tpl[("Service", "ExecStart")] == ["/usr/bin/bayarhook -c /etc/bayarhook/%i.conf serve"]
    assert tpl[("Service", "ExecStartPre")] == [
        "/usr/bin/bayarhook -c /etc/bayarhook/%i.conf check-config"]
    assert tpl[("Service", "User")] == ["bayarhook-%i"]
    creds = {v.split(":", 1)[0] for v in tpl[("Service", "LoadCredential")]}
    assert creds == {"%i.webhook-secret", "%i.api-key"}
    assert ("Install", "Also") not in tpl  # no shared socket: each shop listens itself


def test_template_security_exposure(tmp_path):
    tool = need("systemd-analyze")
    inst = tmp_path / "bayarhook@toko1.service"
    inst.write_text(TEMPLATE.read_text())
    r = run([tool, "security", "--offline=true", "--no-pager", str(inst)])
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"Overall exposure level for bayarhook@toko1\.service: (\d+(?:\.\d+)?)",
                  r.stdout)
    assert m, r.stdout + r.stderr
    assert float(m.group(1)) <= MAX_EXPOSURE, r.stdout


def test_verify_is_clean(tmp_path):
    r = verify(make_root(tmp_path, our_units()))
    assert r.returncode == 0, r.stdout + r.stderr
    assert (r.stdout + r.stderr).strip() == "", r.stdout + r.stderr


def test_verify_would_catch_a_mistake(tmp_path):
    """The harness is not vacuous: a bad key and a missing binary are reported."""
    units = our_units()
    units[SERVICE.name] = units[SERVICE.name].replace(
        "[Service]\n", "[Service]\nProtectSystm=strict\n", 1)
    root = make_root(tmp_path, units)
    (root / "usr/bin/bayarhook").unlink()
    r = verify(root)
    out = r.stdout + r.stderr
    assert "ProtectSystm" in out, out
    assert "/usr/bin/bayarhook" in out, out


def test_security_exposure():
    tool = need("systemd-analyze")
    r = run([tool, "security", "--offline=true", "--no-pager", str(SERVICE)])
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"Overall exposure level for bayarhook\.service: (\d+(?:\.\d+)?)", r.stdout)
    assert m, r.stdout + r.stderr
    assert float(m.group(1)) <= MAX_EXPOSURE, r.stdout


def test_units_keep_what_the_daemon_relies_on():
    svc = unit_directives(SERVICE)
    sock = unit_directives(SOCKET)

    def one(d, section, key):
        values = d.get((section, key), [])
        assert len(values) == 1, f"[{section}] {key}= {values}"
        return values[0]

    assert one(svc, "Service", "Type") == "notify"
    assert one(svc, "Service", "NotifyAccess") == "main"
    assert one(svc, "Service", "ExecStart").endswith(" serve")
    assert one(svc, "Service", "ExecStartPre").endswith(" check-config")
    assert "-HUP $MAINPID" in one(svc, "Service", "ExecReload")
    assert one(svc, "Service", "WatchdogSec")
    assert one(svc, "Service", "Restart") == "on-failure"
    creds = {v.split(":", 1)[0] for v in svc.get(("Service", "LoadCredential"), [])}
    assert {"webhook-secret", "api-key"} <= creds
    families = " ".join(svc.get(("Service", "RestrictAddressFamilies"), [])).split()
    assert {"AF_UNIX", "AF_INET", "AF_INET6"} <= set(families)
    assert svc.get(("Service", "PrivateNetwork"), ["no"]) == ["no"]
    # SPEC §13: a bound on memory, above bayarhook's own 64 MB.
    assert size_bytes(one(svc, "Service", "MemoryMax")) >= 64 * 1024 * 1024

    assert one(sock, "Socket", "Accept") == "no"
    listen = one(sock, "Socket", "ListenStream")
    assert listen == "127.0.0.1:8080"
    upstream = re.search(r"upstream\s+bayarhook\s*\{[^}]*?server\s+(\S+?);",
                         NGINX_CONF.read_text())
    assert upstream and upstream.group(1) == listen, "nginx upstream != ListenStream"


def size_bytes(text):
    m = re.fullmatch(r"(\d+)([kKmM]?)", text)
    assert m, text
    return int(m.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[m.group(2).lower()]


def test_nginx_accepts_the_snippet(tmp_path):
    nginx = need("nginx")
    openssl = need("openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    r = run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=bayarhook-test", "-keyout", str(key), "-out", str(cert)])
    assert r.returncode == 0, r.stderr

    text = NGINX_CONF.read_text()
    text, n_cert = re.subn(r"(?m)^(\s*ssl_certificate)\s+\S+;", rf"\1 {cert};", text)
    text, n_key = re.subn(r"(?m)^(\s*ssl_certificate_key)\s+\S+;", rf"\1 {key};", text)
    assert (n_cert, n_key) == (1, 1), "expected one ssl_certificate and one ssl_certificate_key"
    snippet = tmp_path / "bayarhook.conf"
    snippet.write_text(text)

    temp = "\n".join(f"    {d}_temp_path {tmp_path}/{d};"
                     for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf = tmp_path / "nginx.conf"
    # "user root": inside `unshare -rn` that is the caller, so nginx can
    # chown its temp dirs; outside it, as non-root, nginx ignores it.
    conf.write_text(f"""user root root;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log;
events {{}}
http {{
    access_log {tmp_path}/access.log;
{temp}
    include {snippet};
}}
""")
    # nginx -t binds the listen sockets: in a private network namespace
    # port 443 is free and needs no privilege.
    args = [nginx, "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "error.log")]
    unshare = shutil.which("unshare")
    if unshare and run([unshare, "-rn", "true"]).returncode == 0:
        args = [unshare, "-rn"] + args
    r = run(args + ["-t"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "test is successful" in r.stderr, r.stderr

    # -T dumps what was parsed: the snippet really was included.
    r = run(args + ["-T"])
    assert r.returncode == 0, r.stderr
    assert "location = /callback" in r.stdout
    # Issue 17: per-address limits on the callback path (values explained in the snippet).
    assert re.search(r"limit_req zone=bayarhook_req burst=\d+ nodelay;", r.stdout)
    assert re.search(r"limit_conn bayarhook_conn \d+;", r.stdout)
    body = re.search(r"client_max_body_size\s+(\S+);", text)
    assert body and size_bytes(body.group(1)) >= 65536, "below max_body_bytes' default"
