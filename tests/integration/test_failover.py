"""Failover of a primary to its streaming standby under load (issue 18, SPEC §12).

The daemon has both hosts in its conninfo (target_session_attrs=read-write);
a sender posts callbacks at a bounded rate and resends every invoice until it
gets a 200, as bayar.gg does; mid-run the primary is stopped -m immediate and
the standby promoted. Two actions dedupe on the idempotency key: an exec
script (mkdir of the key: the effect happens once) and an sql statement.

    synchronous: every invoice acknowledged 200 is on the promoted standby
                 (lost 0) and no invoice is fulfilled twice (doubled 0);
    asynchronous (the standby's WAL receiver cut first): what was acknowledged
                 only on the old primary is missing, `reconcile --once`
                 against the fake gateway recovers it, and every script runs
                 its effect once per invoice.

Each run prints a FAILOVER line (sent / 200 / lost / doubled / seconds
without a 200): run with -s to see it.
"""

import collections
import os
import threading
import time

import pytest

import bh
import replica

RATE = int(os.environ.get("BAYARHOOK_FAILOVER_RATE", "100"))      # callbacks per second
COUNT = int(os.environ.get("BAYARHOOK_FAILOVER_COUNT", "600"))    # invoices
FAIL_AFTER = COUNT // 3                                            # 200s before the failover
RESEND_DELAY = 0.2                                                 # seconds between resends
GIVE_UP = 120                                                      # seconds per invoice

EXEC_SCRIPT = """#!/bin/sh
# Dedupes on the idempotency key: the effect happens once per key.
k="$BAYARHOOK_IDEMPOTENCY_KEY"
[ -n "$k" ] || exit 2
echo "$BAYAR_INVOICE_ID $k $BAYARHOOK_JOB_ID" >> {dir}/runs.log
if mkdir {dir}/keys/"$k" 2>/dev/null; then
    echo "$BAYAR_INVOICE_ID" >> {dir}/effects.log
fi
"""

SQL_DEDUPE = ("INSERT INTO shop_fulfilled (k, invoice)"
              " SELECT :bayarhook_idempotency_key, :invoice_id"
              " WHERE NOT EXISTS (SELECT 1 FROM shop_fulfilled"
              "  WHERE k = :bayarhook_idempotency_key)")


class Target:
    """make_daemon(database=...) takes anything with a conninfo."""

    def __init__(self, conninfo):
        self.conninfo = conninfo


class Sender:
    """Posts each invoice's callback until it is answered 200."""

    def __init__(self, url, invoices, rate, threads=16):
        self.url = url
        self.invoices = invoices
        self.rate = rate
        self.threads = threads
        self.lock = threading.Lock()
        self.next = 0
        self.ok_at = {}                           # invoice -> monotonic time of its 200
        self.tries = collections.Counter()        # invoice -> requests sent
        self.answers = collections.Counter()      # status (or "error") -> count
        self.t0 = None
        self.failed_over_at = None
        self.fixed = {inv: {"paid_at": time.strftime("%Y-%m-%d %H:%M:%S",
                                                     time.gmtime(time.time() + 7 * 3600)),
                            "paid_reff_num": f"TRX{i:09d}"} for i, inv in enumerate(invoices)}

    def _one(self, inv):
        deadline = time.monotonic() + GIVE_UP
        while time.monotonic() < deadline:
            # Each attempt signed anew, as the gateway's resend of the same event.
            body, headers = bh.make_callback(inv, extra=self.fixed[inv])
            self.tries[inv] += 1
            try:
                r = bh.post(self.url, body, headers, timeout=15)
                status = r.status
            except OSError:
                status = "error"
            with self.lock:
                self.answers[status] += 1
                if status == 200:
                    self.ok_at[inv] = time.monotonic()
                    return
            time.sleep(RESEND_DELAY)

    def _worker(self):
        while True:
            with self.lock:
                i = self.next
                self.next += 1
            if i >= len(self.invoices):
                return
            delay = self.t0 + i / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._one(self.invoices[i])

    def start(self):
        self.t0 = time.monotonic()
        self.ts = [threading.Thread(target=self._worker, daemon=True) for _ in range(self.threads)]
        for t in self.ts:
            t.start()
        return self

    def join(self):
        for t in self.ts:
            t.join(GIVE_UP + 60)

    def acked(self):
        with self.lock:
            return len(self.ok_at)

    def longest_gap(self):
        """The longest stretch without a 200 between the first and the last."""
        times = sorted(self.ok_at.values())
        return max((b - a for a, b in zip(times, times[1:])), default=0.0)


@pytest.fixture
def pair_factory():
    pairs = []

    def make(sync):
        p = replica.ReplicaPair(sync=sync).start()
        pairs.append(p)
        return p
    yield make
    for p in pairs:
        p.destroy()


def shop_daemon(make_daemon, pair, tmp_path, gateway=None):
    name = "bh_failover"
    shopdb = replica.create_database(pair.primary, name)
    shopdb.execute("CREATE TABLE shop_fulfilled (k text, invoice text,"
                   " at timestamptz DEFAULT clock_timestamp())")
    work = tmp_path / "shop"
    (work / "keys").mkdir(parents=True)
    script = work / "fulfil.sh"
    script.write_text(EXEC_SCRIPT.format(dir=work))
    os.chmod(script, 0o755)
    config = {
        "action.fulfil": {"type": "exec", "command": str(script), "timeout": "5"},
        "action.record": {"type": "sql", "statement": SQL_DEDUPE, "timeout": "5"},
        "fulfillment": {"concurrency": "8", "backoff_initial": "1", "backoff_max": "2"},
    }
    d = make_daemon(config=config, database=Target(pair.multi_host_conninfo(name)),
                    gateway_url=gateway.base_url if gateway else None, start=False)
    d.start()
    pair.wait_caught_up()
    return d, work, name


def effects(work):
    path = work / "effects.log"
    lines = path.read_text().split() if path.exists() else []
    return collections.Counter(lines)


def runs(work):
    path = work / "runs.log"
    return path.read_text().splitlines() if path.exists() else []


def fail_over(pair, sender):
    """Mid-run: the primary stopped -m immediate, the standby promoted."""
    bh.wait_for(lambda: sender.acked() >= FAIL_AFTER, 120, what=f"{FAIL_AFTER} callbacks acknowledged")
    t = time.monotonic()
    pair.primary.stop("immediate")
    pair.promote()
    sender.failed_over_at = t
    return time.monotonic() - t


def after_failover(sender):
    return sum(1 for t in sender.ok_at.values() if t > sender.failed_over_at)


def on_standby(pair, name, invoices):
    db = bh.Database(pair.standby, name)
    rows = db.query("SELECT invoice_id, status FROM bayarhook.payments WHERE invoice_id = ANY(%s)",
                    [list(invoices)])
    return {r["invoice_id"]: r["status"] for r in rows}


def wait_fulfilled(pair, name, work, invoices, timeout=180):
    """Every invoice's exec effect and sql row exist; returns (exec, sql) counters."""
    db = bh.Database(pair.standby, name)

    def done():
        ex = effects(work)
        rows = db.query("SELECT invoice, count(*) AS n FROM shop_fulfilled GROUP BY invoice")
        sq = collections.Counter({r["invoice"]: r["n"] for r in rows})
        if all(ex[i] >= 1 and sq[i] >= 1 for i in invoices):
            return ex, sq
        return None
    return bh.wait_for(done, timeout, interval=0.5, what="every invoice fulfilled by both actions")


def report(kind, sender, lost, doubled, extra=""):
    line = (f"FAILOVER {kind}: sent={len(sender.invoices)} requests={sum(sender.tries.values())} "
            f"200={len(sender.ok_at)} lost={lost} doubled={doubled} "
            f"seconds_without_200={sender.longest_gap():.2f} answers={dict(sender.answers)}"
            f" 200_after_failover={after_failover(sender)}{extra}")
    print("\n" + line)
    with open(os.environ.get("BAYARHOOK_FAILOVER_REPORT", "/dev/null"), "a") as f:
        f.write(line + "\n")


def fail_over_under_load(pair, d, name, invoices):
    """Sends every invoice to d at RATE while the primary fails over; each
    must get a 200. Returns the sender, the failover's seconds and the
    invoices acknowledged but not paid on the promoted standby."""
    sender = Sender(d.callback_url, invoices, RATE).start()
    took = fail_over(pair, sender)
    sender.join()
    assert len(sender.ok_at) == COUNT, f"not every invoice got a 200: {dict(sender.answers)}"
    here = on_standby(pair, name, invoices)
    return sender, took, [i for i in invoices if here.get(i) != "paid"]


def test_synchronous_failover_under_load_loses_and_doubles_nothing(make_daemon, pair_factory,
                                                                   tmp_path):
    pair = pair_factory(sync=True)
    d, work, name = shop_daemon(make_daemon, pair, tmp_path)
    invoices = [bh.new_invoice(f"fo{i}") for i in range(COUNT)]
    # lost: acknowledged 200 but not on the promoted standby.
    sender, took, lost = fail_over_under_load(pair, d, name, invoices)
    ex, sq = wait_fulfilled(pair, name, work, invoices)
    doubled_exec = [i for i in invoices if ex[i] > 1]
    doubled_sql = [i for i in invoices if sq[i] > 1]
    report("sync", sender, len(lost), len(doubled_exec) + len(doubled_sql),
           f" failover_s={took:.2f} exec_runs={len(runs(work))}")
    assert after_failover(sender) > 0, "the failover was not under load"
    assert lost == []
    assert doubled_exec == [] and doubled_sql == []
    assert d.alive()
    # The daemon found the new primary by itself.
    assert "database up" in d.log()


def test_asynchronous_failover_recovered_by_reconcile_once(make_daemon, pair_factory, gateway,
                                                           tmp_path):
    pair = pair_factory(sync=False)
    d, work, name = shop_daemon(make_daemon, pair, tmp_path, gateway=gateway)
    invoices = [bh.new_invoice(f"fa{i}") for i in range(COUNT)]
    for inv in invoices:  # the gateway knows every payment, as bayar.gg would
        gateway.add_payment(inv, status="paid")
    # From here on the standby receives nothing: what is committed is on the
    # primary only, as with a standby seconds behind.
    pair.cut_receiver()
    sender, took, lost = fail_over_under_load(pair, d, name, invoices)
    assert lost, "the cut standby should have missed acknowledged callbacks"
    assert after_failover(sender) > 0, "the failover was not under load"
    fulfilled_before = set(effects(work))

    r = d.cli("reconcile", "--once", timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"found {len(lost)}," in r.stdout, r.stdout
    here = on_standby(pair, name, invoices)
    still = [i for i in invoices if here.get(i) != "paid"]
    assert still == []

    ex, sq = wait_fulfilled(pair, name, work, invoices)
    doubled_exec = [i for i in invoices if ex[i] > 1]
    doubled_sql = [i for i in invoices if sq[i] > 1]
    # The recreated jobs ran again (new job ids, same keys) and the script skipped them.
    rerun_keys = collections.Counter(line.split()[1] for line in runs(work))
    reran = sum(1 for n in rerun_keys.values() if n > 1)
    report("async", sender, len(lost), len(doubled_exec) + len(doubled_sql),
           f" recovered_by_reconcile={len(lost)} reran_and_skipped={reran}"
           f" failover_s={took:.2f}")
    assert doubled_exec == [] and doubled_sql == []
    assert reran > 0 and set(lost) & fulfilled_before, (reran, len(fulfilled_before))
