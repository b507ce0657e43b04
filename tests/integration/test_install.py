"""Installing bayarhook (issue 5): the manual pages, `cmake --install`, and
the .deb that `cpack -G DEB` builds.

A separate, non-sanitized build is configured from BAYARHOOK_SOURCE_DIR in
the module's temp dir (about a minute), installed into a DESTDIR and
packaged. The package is checked with dpkg-deb (contents, control fields,
Depends from dpkg-shlibdeps) and extracted with `dpkg-deb -x` to run the
packaged binary. Installing it for real (`dpkg -i`, then `dpkg -r`) changes
the machine, so it happens only as root with BAYARHOOK_TEST_DPKG_INSTALL=1
(CI) and only when no bayarhook package is installed already.

Needs: cmake, cpack, a C toolchain and the -dev packages (scripts/deps),
dpkg-dev (dpkg-shlibdeps), groff and man-db.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import bh

SRC = Path(bh.SOURCE_DIR)
MAN8 = SRC / "man" / "bayarhook.8"
MAN5 = SRC / "man" / "receiver.conf.5"
UNITS = ("bayarhook.service", "bayarhook.socket", "bayarhook@.service")

# The commands of SPEC §2, each documented in bayarhook(8).
SPEC_COMMANDS = {
    "serve": [],
    "check-config": [],
    "migrate": [],
    "reconcile": ["--once"],
    "jobs": ["--state", "--invoice", "--json"],
    "retry": [],
    "replay": ["--action"],
    "audit": ["--invoice", "--verdict", "--since", "--json"],
    "send-test": ["--url", "--real-secret", "--invoice", "--status", "--amount", "--resolve",
                  "--cacert", "--insecure"],
    "doctor": [],  # issue 12
}
# Where `cmake --install` / the .deb put things (prefix /usr).
EXPECTED = [
    "usr/bin/bayarhook",
    "usr/share/bayarhook/sql/001_init.sql",
    "lib/systemd/system/bayarhook.service",
    "lib/systemd/system/bayarhook.socket",
    "lib/systemd/system/bayarhook@.service",
    "usr/share/doc/bayarhook/receiver.conf.example",
    "usr/share/doc/bayarhook/nginx/bayarhook.conf",
    "usr/share/man/man8/bayarhook.8",
    "usr/share/man/man5/receiver.conf.5",
]


def need(tool):
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} not found (scripts/deps installs it)")
    return path


def run(args, timeout=600, check=True, **kw):
    env = dict(os.environ, LC_ALL="C.UTF-8", MANWIDTH="80", MAN_DISABLE_SECCOMP="1")
    env.update(kw.pop("env", {}))
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True, errors="replace",
                       timeout=timeout, env=env, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} exited {p.returncode}:\n"
                             f"{p.stdout[-4000:]}\n{p.stderr[-4000:]}")
    return p


def project_version():
    m = re.search(r"project\(bayarhook\s+VERSION\s+([\d.]+)", (SRC / "CMakeLists.txt").read_text())
    assert m, "project(bayarhook VERSION x.y.z) not found in CMakeLists.txt"
    return m.group(1)


def roman(text):
    """A man page's text with font escapes and \\- removed, for word checks."""
    text = re.sub(r"\\f[BIRP]|\\f\(..|\\&|\\%", "", text)
    return text.replace("\\-", "-")


# ---------------------------------------------------------------------------
# manual pages

@pytest.mark.parametrize("page", [MAN8, MAN5], ids=lambda p: p.name)
def test_man_page_renders_without_warnings(page):
    assert page.is_file(), page
    r = run([need("groff"), "-ww", "-man", "-z", page], check=False)
    assert (r.returncode, r.stderr) == (0, ""), r.stderr
    # As man(1) renders it (its own preprocessors and line length).
    r = run([need("man"), "--warnings", "-l", page], check=False)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert len(r.stdout) > 1000


def test_bayarhook_8_documents_the_command_line():
    text = roman(MAN8.read_text())
    sections = set(re.findall(r"(?m)^\.SH\s+\"?([^\"\n]+)", MAN8.read_text()))
    for s in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "COMMANDS", "SIGNALS", "EXIT STATUS",
              "ENVIRONMENT", "FILES", "SEE ALSO"):
        assert s in sections, f"bayarhook.8 has no {s} section"
    for cmd, opts in SPEC_COMMANDS.items():
        assert re.search(rf"(?m)^(\.TP\n)?(\.B[RI]?\s+)?\"?{re.escape(cmd)}\b", text), \
            f"command {cmd} is not an entry of bayarhook.8"
        for opt in opts:
            assert opt in text, f"{cmd} {opt} is not in bayarhook.8"
    # What the binary says it has is documented too.
    help_text = run([bh.BIN, "--help"]).stdout
    for cmd in re.findall(r"(?m)^  ([a-z][a-z-]+)\b", help_text):
        assert cmd in text, f"`bayarhook --help` lists {cmd}, bayarhook.8 does not"
    for opt in re.findall(r"(--[a-z][a-z-]+)", help_text):
        assert opt in text, f"`bayarhook --help` mentions {opt}, bayarhook.8 does not"
    for word in ("SIGHUP", "SIGTERM", "BAYARHOOK_CONFIG", "CREDENTIALS_DIRECTORY",
                 "NOTIFY_SOCKET", "LISTEN_FDS", "WATCHDOG_USEC", "/etc/bayarhook/receiver.conf",
                 "receiver.conf (5)", "RELOADING=1", "STOPPING=1", "READY=1"):
        assert word in text, f"{word} is not in bayarhook.8"
    for status in ("200", "400", "401", "403", "405", "413", "503", "/healthz", "/metrics"):
        assert re.search(rf"(?m)^\.B {re.escape(status)}$|GET {re.escape(status)}", text), \
            f"HTTP answer {status} is not in bayarhook.8"


def test_receiver_conf_5_documents_every_example_key():
    """Each key of receiver.conf.example is an entry in receiver.conf(5)."""
    page = roman(MAN5.read_text())
    entries = set(re.findall(r"(?m)^\.TP\n\.BR? (\S+)", page))
    keys = set()
    for line in (SRC / "receiver.conf.example").read_text().splitlines():
        m = re.match(r"^[;#]?\s*([a-z_]+)\s*=", line)
        if m:
            keys.add(m.group(1))
    assert len(keys) > 20, keys
    missing = sorted(k for k in keys if k not in entries and not re.search(rf"\b{k}\b", page))
    assert not missing, f"receiver.conf.5 does not document: {missing}"


# ---------------------------------------------------------------------------
# cmake --install and cpack

@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """A non-sanitized build of the source tree under test, prefix /usr."""
    for tool in ("cmake", "cpack"):
        need(tool)
    base = tmp_path_factory.mktemp("install")
    b = base / "build"
    run(["cmake", "-S", SRC, "-B", b, "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
         "-DBAYARHOOK_SANITIZE=OFF", "-DBAYARHOOK_TESTS=OFF"])
    cache = (b / "CMakeCache.txt").read_text()
    # The default prefix is /usr: the units name /usr/bin/bayarhook.
    assert "CMAKE_INSTALL_PREFIX:PATH=/usr\n" in cache, \
        re.findall(r"CMAKE_INSTALL_PREFIX.*", cache)
    run(["cmake", "--build", b, "-j", str(os.cpu_count() or 2)], timeout=900)
    return base, b


def test_cmake_install_into_destdir(build):
    base, b = build
    dest = base / "destdir"
    r = run(["cmake", "--install", b], env={"DESTDIR": str(dest)})
    installed = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    print("\n".join(installed))
    for path in EXPECTED:
        assert (dest / path).is_file(), f"{path} not installed:\n{r.stdout}"
    # Every migration, every unit, byte for byte.
    for sql in (SRC / "sql").glob("[0-9]*.sql"):
        assert (dest / "usr/share/bayarhook/sql" / sql.name).read_bytes() == sql.read_bytes()
    for unit in UNITS:
        assert (dest / "lib/systemd/system" / unit).read_bytes() == \
            (SRC / "contrib/systemd" / unit).read_bytes()
    assert os.access(dest / "usr/bin/bayarhook", os.X_OK)
    # Nothing outside the usual places (no /usr/local, no /etc).
    stray = [p for p in installed if not p.startswith(("usr/bin/", "usr/share/", "lib/systemd/"))]
    assert not stray, stray
    r = run([dest / "usr/bin/bayarhook", "--version"])
    assert r.stdout.strip() == f"bayarhook {project_version()}"


@pytest.fixture(scope="module")
def deb(build):
    base, b = build
    out = base / "pkg"
    out.mkdir()
    run(["cpack", "-G", "DEB", "-B", out, "--config", b / "CPackConfig.cmake"], cwd=b,
        timeout=600)
    debs = sorted(out.glob("*.deb"))
    assert len(debs) == 1, list(out.iterdir())
    return debs[0]


def test_deb_contents_and_control(deb, tmp_path):
    listing = run([need("dpkg-deb"), "-c", deb]).stdout
    print(listing)
    files = {}
    for line in listing.splitlines():
        parts = line.split(None, 5)
        # -rw-r--r-- root/root 5654 2026-11-25 11:48 ./lib/systemd/system/x.service
        files[parts[5].split(" -> ")[0].lstrip("./").rstrip("/")] = (parts[0], parts[1])
    for path in EXPECTED:
        assert path in files, f"{path} not in the package:\n{listing}"
        assert files[path][1] == "root/root", (path, files[path])
    assert files["usr/bin/bayarhook"][0] == "-rwxr-xr-x"
    for path in EXPECTED[1:]:
        assert files[path][0] == "-rw-r--r--", (path, files[path])

    info = run(["dpkg-deb", "-I", deb]).stdout
    print(info)
    fields = dict(re.findall(r"(?m)^ ([A-Za-z-]+): (.*)$", info))
    assert fields.get("Package") == "bayarhook"
    assert fields.get("Version") == project_version()
    depends = fields.get("Depends", "")
    for lib in ("libevent-2.1", "libevent-openssl", "libpq5", "libssl", "libsystemd0",
                "libcjson"):
        assert lib in depends, f"Depends lacks {lib}: {depends}"
    # The config reader is our own: nothing links inih any more.
    assert "libinih" not in depends, depends

    # The packaged binary runs from an extracted tree.
    root = tmp_path / "x"
    run(["dpkg-deb", "-x", deb, root])
    r = run([root / "usr/bin/bayarhook", "--version"])
    assert r.stdout.strip() == f"bayarhook {project_version()}"
    r = run([root / "usr/bin/bayarhook", "--help"])
    assert "serve" in r.stdout
    # Stripped: no debug sections in the shipped binary.
    sections = run(["readelf", "-S", root / "usr/bin/bayarhook"], check=False).stdout
    if sections:
        assert ".debug_info" not in sections


def test_deb_installs_for_real(deb):
    if os.geteuid() != 0 or os.environ.get("BAYARHOOK_TEST_DPKG_INSTALL") != "1":
        pytest.skip("changes this machine: runs as root with BAYARHOOK_TEST_DPKG_INSTALL=1")
    st = run(["dpkg-query", "-W", "-f=${db:Status-Status}", "bayarhook"], check=False)
    if st.stdout.strip() not in ("", "not-installed", "config-files"):
        pytest.skip(f"a bayarhook package is already installed ({st.stdout.strip()})")
    run(["dpkg", "-i", deb])
    try:
        r = run(["/usr/bin/bayarhook", "--version"])
        assert r.stdout.strip() == f"bayarhook {project_version()}"
        # (Container images often path-exclude /usr/share/man and /usr/share/doc.)
        listed = run(["dpkg", "-L", "bayarhook"]).stdout.split()
        for path in EXPECTED[:4]:
            assert "/" + path in listed, path
            assert os.path.exists("/" + path), path
    finally:
        run(["dpkg", "--purge", "bayarhook"])
    assert not os.path.exists("/usr/bin/bayarhook")
