"""A streaming standby of a bh.PgCluster, on loopback (pg_basebackup -R).

    standby = replica.make_standby(pg)      # started, replaying, read-only
    standby.conninfo(db.name)               # its own port
    standby.promote()                       # becomes a primary
    standby.destroy()

The primary needs nothing set: initdb's defaults (wal_level = replica,
max_wal_senders = 10, trust for replication from 127.0.0.1) allow it.
Databases created on the primary before make_standby() exist on the standby.
"""

import os
import pwd

import bh


class Standby(bh.PgCluster):
    def __init__(self, primary):
        super().__init__()
        self.primary = primary

    def init(self):
        os.makedirs(self.sockdir, exist_ok=True)
        if self.as_root:
            pw = pwd.getpwnam("postgres")
            for d in (self.basedir, self.sockdir):
                os.chown(d, pw.pw_uid, pw.pw_gid)
            os.chmod(self.basedir, 0o755)
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

