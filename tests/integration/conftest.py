"""pytest fixtures for the bayarhook integration tests.

    pg             (session)  bh.PgCluster: a private throw-away cluster;
                              pg.stop("immediate"), pg.start() restart it on
                              the same port
    db             a fresh database in it (bh.Database: .conninfo, .query,
                   .scalar, .callbacks, .payment, .verdicts, .count)
    make_daemon    make_daemon(config={...}, secrets=[...], start=True,
                   gateway_url=None) -> bh.Daemon on db (or db=other);
                   every daemon is stopped at teardown, its log printed when
                   the test failed, and a sanitizer/valgrind report in it
                   fails the test
    daemon         make_daemon() with the defaults, started
    gateway        fake_gateway.FakeGateway, started

See bh.py for the helpers (make_callback, sign, post, get, ...).
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bh  # noqa: E402
from fake_gateway import FakeGateway  # noqa: E402


def pytest_configure(config):
    if not os.access(bh.BIN, os.X_OK):
        # Fail loudly: a missing binary is a broken build, not a skip.
        raise pytest.UsageError(f"bayarhook binary not found at {bh.BIN} "
                                "(set BAYARHOOK_BIN, or build into build/)")


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _failed(request):
    rep = getattr(request.node, "rep_call", None)
    return rep is None or rep.failed


@pytest.fixture(scope="session")
def pg():
    cluster = bh.PgCluster()
    try:
        cluster.init().start()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def db(pg):
    pg.ensure_running()  # a test that stopped it and failed may have left it down
    database = pg.create_database()
    yield database
    try:
        pg.ensure_running()
        pg.drop_database(database.name)
    except Exception as e:  # noqa: BLE001 - cleanup only
        print(f"warning: could not drop {database.name}: {e}")


@pytest.fixture
def make_daemon(request, db, tmp_path):
    daemons = []

    def make(config=None, secrets=(bh.DEFAULT_SECRET,), start=True, database=None,
             gateway_url=None, env=None, name=None):
        workdir = tmp_path / (name or f"d{len(daemons)}")
        d = bh.Daemon(workdir, (database or db).conninfo, secrets=secrets, config=config,
                      gateway_url=gateway_url, env=env)
        daemons.append(d)
        if start:
            d.start()
        return d

    yield make

    problems = []
    for d in daemons:
        code = d.stop()
        bad = bh.sanitizer_errors(d.log())
        if bad:
            problems.append(f"{d.log_path}: sanitizer/valgrind report:\n" + "\n".join(bad[:20]))
        if bh.VALGRIND and code == 99:
            problems.append(f"{d.log_path}: valgrind reported errors (exit 99)")
        if _failed(request) or bad:
            print(f"\n===== bayarhook log {d.log_path} (exit {code}) =====\n{d.log_tail(120)}")
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def daemon(make_daemon):
    return make_daemon()


@pytest.fixture
def gateway():
    g = FakeGateway(api_key=bh.DEFAULT_API_KEY)
    g.start()
    yield g
    g.stop()
