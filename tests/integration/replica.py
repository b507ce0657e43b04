"""A PostgreSQL primary and a streaming standby for the failover tests.

    pair = ReplicaPair(sync=True).start()   # primary, then pg_basebackup -R
    pair.primary, pair.standby              # bh.PgCluster each
    pair.multi_host_conninfo(dbname)        # both hosts, target_session_attrs=read-write
    pair.wait_caught_up()                   # the standby replayed everything sent so far
    pair.cut_receiver()                     # the standby stops receiving WAL
    pair.primary.stop("immediate"); pair.promote()
    pair.destroy()

As root, every PostgreSQL program runs as the postgres user (bh.PgCluster's
rule): initdb, pg_ctl and pg_basebackup refuse to run as root.

make_standby(pg) adds a standby to the session's own cluster instead (the
deadline tests: a standby-only conninfo, two hosts with the standby first):

    standby = replica.make_standby(pg)      # started, replaying, read-only
    standby.conninfo(db.name)               # its own port
    standby.promote()                       # becomes a primary
    standby.destroy()
"""

import os
import subprocess
import tempfile
import time

import psycopg

import bh

STANDBY_NAME = "bh_standby"


class ReplicaPair:
    def __init__(self, sync=True):
        self.sync = sync
        self.basedir = tempfile.mkdtemp(prefix="bayarhook-repl-")
        os.chmod(self.basedir, 0o755)
        self.primary = bh.PgCluster(basedir=os.path.join(self.basedir, "primary"))
        self.standby = bh.PgCluster(basedir=os.path.join(self.basedir, "standby"))
        self.promoted = False

    # --- setup -------------------------------------------------------------
    def start(self):
        os.makedirs(self.primary.basedir)
        self.primary.init()
        with open(os.path.join(self.primary.datadir, "postgresql.conf"), "a") as f:
            f.write("wal_level = replica\nmax_wal_senders = 5\nwal_keep_size = '256MB'\n"
                    "hot_standby = on\n")
            if self.sync:
                # A commit returns once the standby has flushed it: what a 200
                # acknowledged is on the standby when the primary dies.
                f.write(f"synchronous_standby_names = '{STANDBY_NAME}'\n"
                        "synchronous_commit = on\n")
        self.primary.start()
        self._basebackup()
        self.standby.start()
        bh.wait_for(self._streaming, 60, what="the standby to stream from the primary")
        return self

    def _basebackup(self):
        s = self.standby
        os.makedirs(s.basedir)
        s.prepare_dirs()
        # -R writes standby.signal and primary_conninfo from this connection
        # string, application_name included (synchronous_standby_names).
        src = (f"host={self.primary.host} port={self.primary.port} user=postgres "
               f"application_name={STANDBY_NAME}")
        s._run("pg_basebackup", "-D", s.datadir, "-d", src, "-R", "-X", "stream",
               "-c", "fast", timeout=300)
        # The copied postgresql.conf names the primary's port and socket: the
        # lines appended last win.
        with open(os.path.join(s.datadir, "postgresql.conf"), "a") as f:
            # Promoted, it has no standby of its own: a copied
            # synchronous_standby_names would make every commit wait for ever.
            f.write(f"\n# standby\nport = {s.port}\nunix_socket_directories = '{s.sockdir}'\n"
                    "synchronous_standby_names = ''\n")

    def _streaming(self):
        with psycopg.connect(self.primary.conninfo("postgres"), autocommit=True) as c:
            row = c.execute("SELECT state FROM pg_stat_replication WHERE application_name = %s",
                            [STANDBY_NAME]).fetchone()
        return row is not None and row[0] == "streaming"

    # --- what tests use ----------------------------------------------------
    def multi_host_conninfo(self, dbname, **extra):
        p, s = self.primary, self.standby
        kw = {"host": f"{p.host},{s.host}", "port": f"{p.port},{s.port}", "dbname": dbname,
              "user": "postgres", "connect_timeout": "2",
              "target_session_attrs": "read-write"}
        kw.update(extra)
        return " ".join(f"{k}={v}" for k, v in kw.items())

    def primary_lsn(self):
        with psycopg.connect(self.primary.conninfo("postgres"), autocommit=True) as c:
            return c.execute("SELECT pg_current_wal_lsn()").fetchone()[0]

    def wait_caught_up(self, timeout=60):
        """Until the standby has replayed what the primary has written now."""
        target = self.primary_lsn()

        def replayed():
            with psycopg.connect(self.standby.conninfo("postgres"), autocommit=True) as c:
                return c.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn",
                                 [target]).fetchone()[0]
        bh.wait_for(replayed, timeout, what="the standby to replay the primary's WAL")

    def cut_receiver(self, timeout=30):
        """The standby stops receiving WAL: its walreceiver is pointed at a
        port nobody listens on (primary_conninfo reloads since PostgreSQL
        13). What the primary commits from here on is on the primary only."""
        dead = f"host=127.0.0.1 port={bh.free_port()} user=postgres connect_timeout=1"
        with psycopg.connect(self.standby.conninfo("postgres"), autocommit=True) as c:
            c.execute("ALTER SYSTEM SET primary_conninfo = %s" % _literal(dead))
            c.execute("SELECT pg_reload_conf()")

        def cut():
            with psycopg.connect(self.primary.conninfo("postgres"), autocommit=True) as c:
                return c.execute("SELECT count(*) FROM pg_stat_replication").fetchone()[0] == 0
        bh.wait_for(cut, timeout, what="the standby's walreceiver to stop")

    def pause_replay(self):
        with psycopg.connect(self.standby.conninfo("postgres"), autocommit=True) as c:
            c.execute("SELECT pg_wal_replay_pause()")

    def promote(self, timeout=60):
        self.standby._run("pg_ctl", "promote", "-D", self.standby.datadir, "-w", "-t",
                          str(timeout), timeout=timeout + 30)
        self.promoted = True

        def writable():
            with psycopg.connect(self.standby.conninfo("postgres"), autocommit=True) as c:
                return not c.execute("SELECT pg_is_in_recovery()").fetchone()[0]
        bh.wait_for(writable, timeout, what="the promoted standby to accept writes")

    def destroy(self):
        for c in (self.standby, self.primary):
            try:
                if os.path.isdir(c.datadir) and c.is_running():
                    c.stop("immediate")
            except (RuntimeError, subprocess.SubprocessError) as e:
                print(f"warning: could not stop {c.datadir}: {e}")
        subprocess.run(["rm", "-rf", self.basedir], check=False)


def _literal(text):
    return "'" + text.replace("'", "''") + "'"


def create_database(cluster, name):
    with psycopg.connect(cluster.conninfo("postgres"), autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    return bh.Database(cluster, name)


def now():
    return time.monotonic()


class Standby(bh.PgCluster):
    def __init__(self, primary):
        super().__init__()
        self.primary = primary

    def init(self):
        self.prepare_dirs()
        self._run("pg_basebackup", "-h", self.primary.host, "-p", str(self.primary.port),
                  "-U", self.SUPERUSER, "-D", self.datadir, "-R", "-X", "stream",
                  "-c", "fast")
        # The copy carries the primary's port and socket directory: the last line wins.
        with open(os.path.join(self.datadir, "postgresql.conf"), "a") as f:
            f.write(f"\nport = {self.port}\nunix_socket_directories = '{self.sockdir}'\n"
                    "hot_standby = on\n")
        return self

    def promote(self, timeout=60):
        self._run("pg_ctl", "promote", "-D", self.datadir, "-w", "-t", str(timeout),
                  timeout=timeout + 30)

    def in_recovery(self):
        with bh.psycopg.connect(self.conninfo("postgres"), connect_timeout=3) as c:
            return c.execute("SELECT pg_is_in_recovery()").fetchone()[0]


def make_standby(primary):
    """A started standby of primary, replaying (pg_is_in_recovery() is true)."""
    s = Standby(primary)
    try:
        s.init().start()
    except Exception:
        s.destroy()
        raise
    return s

