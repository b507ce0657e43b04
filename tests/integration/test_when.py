"""`when =` (SPEC §9): an event that does not match an action's conditions
gets no job of it — for a callback, a reconciler finding and a replay
alike — and a bad expression is a config error naming file:line.
"""

import bh

OK = {"success": True}
SQL_ACTION = {"type": "sql", "expect_rows": "0",
              "statement": "SELECT 1 WHERE :invoice_id::text IS NOT NULL"}


def actions_of(db, invoice):
    return sorted(r["action"] for r in db.query(
        "SELECT action FROM bayarhook.jobs WHERE invoice_id = %s", [invoice]))


def when_config(**extra):
    cfg = {
        "reconciler": {"enabled": "false", "min_age": "60", "max_requests_per_minute": "6000"},
        # One action per operator; the callback below matches exactly those marked yes.
        "action.eq_yes": {**SQL_ACTION, "when": "payment_method = QRIS"},
        "action.eq_no": {**SQL_ACTION, "when": "payment_method = VA"},
        "action.ne_yes": {**SQL_ACTION, "when": "payment_method != VA"},
        "action.prefix_yes": {**SQL_ACTION, "when": "description ^= KEY-"},
        "action.prefix_no": {**SQL_ACTION, "when": "description ^= PHYS-"},
        "action.re_yes": {**SQL_ACTION, "when": "description ~ ^KEY-[a-z]{2,9}-[0-9]+$"},
        "action.re_no": {**SQL_ACTION, "when": "description ~ ^PHYS"},
        "action.lt_yes": {**SQL_ACTION, "when": "final_amount < 60000"},
        "action.le_yes": {**SQL_ACTION, "when": "final_amount <= 50123"},
        "action.gt_no": {**SQL_ACTION, "when": "final_amount > 50123"},
        "action.ge_yes": {**SQL_ACTION, "when": "final_amount >= 50123"},
        "action.all_no": {**SQL_ACTION, "when": "payment_method = QRIS, final_amount > 99999"},
        "action.always": dict(SQL_ACTION),
    }
    cfg.update(extra)
    return cfg


YES = sorted(["eq_yes", "ne_yes", "prefix_yes", "re_yes", "lt_yes", "le_yes", "ge_yes",
              "always"])


def test_callback_and_replay(make_daemon, db):
    d = make_daemon(config=when_config())
    inv = bh.new_invoice("when")
    assert d.callback(inv, final_amount=50123,
                      extra={"payment_method": "QRIS", "description": "KEY-steam-42"}).json == OK
    bh.wait_for(lambda: actions_of(db, inv) == YES, 20 * bh.SLOW, what="the matching jobs")
    # A replay makes jobs for the same actions only.
    d.cli("replay", inv, check=True)
    bh.wait_for(lambda: actions_of(db, inv) == sorted(YES + YES), 20 * bh.SLOW,
                what="the replayed jobs")
    # Another event of another product line: only its own.
    inv2 = bh.new_invoice("when2")
    assert d.callback(inv2, final_amount=120000,
                      extra={"payment_method": "VA", "description": "PHYS-shirt"}).json == OK
    bh.wait_for(lambda: actions_of(db, inv2) == sorted(["eq_no", "prefix_no", "re_no", "gt_no", "ge_yes",
                                                        "always"]),
                20 * bh.SLOW, what="the other line's jobs")


def test_reconciler_finding(make_daemon, gateway, db):
    inv = bh.new_invoice("whenrec")
    gateway.add_payment(inv, status="paid", amount=50000, final_amount=50123,
                        payment_method="QRIS", description="KEY-game-7")
    d = make_daemon(config=when_config(), gateway_url=gateway.base_url, start=False)
    d.migrate()
    p = d.cli("reconcile", "--once", timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert actions_of(db, inv) == YES


def test_bad_expression_is_a_config_error(make_daemon):
    d = make_daemon(start=False, config={
        "action.x": {**SQL_ACTION, "when": "description ~ ([a-z"}})
    r = d.cli("check-config")
    assert r.returncode != 0
    # [server], [security], ... precede it: the line is the when key's own.
    lines = open(d.config_path).read().splitlines()
    line = next(i + 1 for i, t in enumerate(lines) if t.startswith("when = "))
    assert f"receiver.conf:{line}: when: condition 1: bad regular expression" in r.stderr
    d.update_config({"action.x": {"when": "final_amount > lots"}})
    r = d.cli("check-config")
    assert r.returncode != 0 and "when: condition 1: final_amount needs a number" in r.stderr
