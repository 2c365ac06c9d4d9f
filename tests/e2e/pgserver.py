#!/usr/bin/env python3
"""A private PostgreSQL server for the tests (cluster mode, issue 12).

The Debian `postgresql` package's binaries (/usr/lib/postgresql/*/bin) are
run directly: initdb into a temporary directory, then `postgres` itself as
our child (so a test can SIGKILL, SIGSTOP or restart it), listening on a free
port on 127.0.0.1 and on a unix socket in the same temporary directory.
PostgreSQL refuses to run as root: as root, the server runs as the system
user `postgres` (the package creates it; R2M_PG_USER names another one).

    srv = PgServer().start()          # initdb + start; waits until it accepts
    srv.conninfo                      # "host=127.0.0.1 port=N user=r2m dbname=r2m"
    srv.psql("select 1")              # stdout of psql -At; raises PgError
    srv.kill(signal.SIGKILL); srv.start()   # crash and restart, same port and data
    srv.stop(); srv.cleanup()         # fast shutdown; temp dir removed

Every wait is for a condition with a deadline; a server that does not come
up raises PgError with the tail of its log (a test that cannot start its
database fails, it never passes silently).

As a command:
    pgserver.py -- CMD ARGS...    starts a server, runs CMD with R2M_PG_CONNINFO
                                  (and PGHOST/PGPORT/PGUSER/PGDATABASE) set,
                                  stops it; exits with CMD's code (the meson
                                  wrapper of the libpq unit tests)
    pgserver.py --serve           starts a server, prints one line
                                  "R2M_PG_CONNINFO=..." and keeps it until
                                  its stdin closes (a C test starts it so:
                                  valgrind then judges the test, not python)
    pgserver.py --selftest        start, `select 1`, kill -9, restart, data
                                  kept, stop; prints "pgserver selftest ok"

Environment: R2M_PG_BIN (the directory holding initdb and postgres),
R2M_PG_USER (the unprivileged user when running as root), R2M_E2E_KEEP=1
keeps the temporary directory.
"""

import ctypes
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SUPERUSER = "r2m"
DATABASE = "r2m"


class PgError(Exception):
    """The server could not be set up, started, stopped or queried."""


def pg_bindir():
    """The directory with initdb/postgres/pg_isready/psql: $R2M_PG_BIN or the
    newest /usr/lib/postgresql/N/bin."""
    d = os.environ.get("R2M_PG_BIN")
    cands = [d] if d else sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                                 key=lambda p: int(p.split("/")[-2]) if
                                 p.split("/")[-2].isdigit() else 0)
    for c in reversed(cands):
        if os.access(os.path.join(c, "postgres"), os.X_OK) and \
                os.access(os.path.join(c, "initdb"), os.X_OK):
            return c
    raise PgError("PostgreSQL server binaries not found (%s): apt-get install postgresql" %
                  (d or "/usr/lib/postgresql/*/bin"))


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# resolved here, not in the forked child: the harness has threads, and a
# child must not need a lock (dlopen's) another thread may have held at fork
_prctl = ctypes.CDLL(None, use_errno=True).prctl
PR_SET_PDEATHSIG = 1


def _die_with_parent():
    """In the server's child process (Python runs it after the switch to the
    server user, which would clear the setting): if the test process dies,
    even by SIGKILL, the kernel sends the postmaster SIGQUIT (immediate
    shutdown, which also ends its backends), so no server outlives its
    test."""
    _prctl(PR_SET_PDEATHSIG, int(signal.SIGQUIT))


def _tail(path, n=30):
    try:
        with open(path, "rb") as f:
            return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-n:])
    except OSError as e:
        return "(no log: %s)" % e


class PgServer:
    """One private server. ctx (an e2e harness Context, optional) provides the
    temporary directory and stops the server when the case ends."""

    def __init__(self, ctx=None, keep=None):
        self.bindir = pg_bindir()
        self.keep = os.environ.get("R2M_E2E_KEEP") == "1" if keep is None else keep
        if ctx is not None:
            # the case's temp dir is 0700 root: the server user must pass it
            os.chmod(ctx.tmp, os.stat(ctx.tmp).st_mode | 0o711)
            self.dir = ctx.mkdir("postgres")
        else:
            self.dir = tempfile.mkdtemp(prefix="r2m-pg-")
        self._own_dir = ctx is None
        # the server user must reach the data dir and the socket dir
        os.chmod(self.dir, 0o755)
        p = os.path.dirname(self.dir)
        while p not in ("/", ""):
            if not os.stat(p).st_mode & 0o001:
                raise PgError("%s is not traversable by others: the server user cannot "
                              "reach %s" % (p, self.dir))
            p = os.path.dirname(p)
        self.data = os.path.join(self.dir, "data")
        self.sock = os.path.join(self.dir, "sock")
        self.log_path = os.path.join(self.dir, "postgres.log")
        self.port = None
        self.proc = None
        self.starts = 0
        self.user = None
        if os.geteuid() == 0:
            name = os.environ.get("R2M_PG_USER", "postgres")
            try:
                self.user = pwd.getpwnam(name)
            except KeyError:
                raise PgError("running as root and user %r does not exist: PostgreSQL refuses "
                              "root (apt-get install postgresql creates `postgres`, or set "
                              "R2M_PG_USER)" % name) from None
        if ctx is not None:
            ctx.defer(self.close)

    # -- processes ---------------------------------------------------------

    def _run(self, argv, timeout=60, check=True, input=None):
        """Runs a PostgreSQL tool as the server user; CompletedProcess."""
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                               input=input, stdin=None if input is not None else
                               subprocess.DEVNULL, **self._as_user())
        except subprocess.TimeoutExpired:
            raise PgError("%s did not finish within %ds" % (argv[0], timeout)) from None
        if check and r.returncode != 0:
            raise PgError("%s failed (exit %d):\n%s%s" % (
                " ".join(argv), r.returncode, r.stdout, r.stderr))
        return r

    def _as_user(self):
        if self.user is None:
            return {}
        return {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": [],
                "env": dict(os.environ, HOME=self.dir)}

    def _tool(self, name):
        return os.path.join(self.bindir, name)

    def _initdb(self):
        os.makedirs(self.data, mode=0o700)
        os.makedirs(self.sock, mode=0o755, exist_ok=True)
        if self.user is not None:
            for d in (self.data, self.sock):
                os.chown(d, self.user.pw_uid, self.user.pw_gid)
        self._run([self._tool("initdb"), "-D", self.data, "-A", "trust", "-U", SUPERUSER,
                   "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"], timeout=120)

    def start(self, timeout=30.0):
        """initdb on the first start; then start postgres on a free port (the
        same port on a restart) and wait until it accepts connections."""
        if self.proc is not None and self.proc.poll() is None:
            raise PgError("PostgreSQL is already running (pid %d)" % self.proc.pid)
        first = not os.path.exists(self.data)
        if first:
            self._initdb()
        fixed = self.port is not None
        deadline = time.monotonic() + timeout
        while True:
            if not fixed:
                self.port = free_port()
            self._spawn()
            why = self._wait_ready(deadline)
            if why is None:
                break
            self._reap()
            if time.monotonic() >= deadline or "could not bind" not in why:
                raise PgError("PostgreSQL did not start on 127.0.0.1:%d: %s; log:\n%s" % (
                    self.port, why, _tail(self.log_path)))
            time.sleep(0.1)  # the port was taken meanwhile (parallel tests): again
        if first:
            self.psql("CREATE DATABASE %s" % DATABASE, dbname="postgres")
        return self

    def _spawn(self):
        self.starts += 1
        argv = [self._tool("postgres"), "-D", self.data, "-p", str(self.port),
                "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=" + self.sock,
                # throwaway data: no fsync (a postgres crash still loses
                # nothing committed, only an OS crash would)
                "-c", "fsync=off", "-c", "full_page_writes=off",
                "-c", "shared_buffers=16MB", "-c", "max_connections=60",
                "-c", "logging_collector=off", "-c", "log_min_messages=warning"]
        with open(self.log_path, "ab") as log:
            log.write(b"--- start %d\n" % self.starts)
            log.flush()
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True, preexec_fn=_die_with_parent,
                                         **self._as_user())

    def _wait_ready(self, deadline):
        """None when the server accepts connections, else why not (it exited,
        or the deadline passed)."""
        isready = [self._tool("pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port),
                   "-U", SUPERUSER, "-d", "postgres", "-t", "1"]
        while True:
            if self.proc.poll() is not None:
                log = _tail(self.log_path, 10)
                return "postgres exited with code %d%s" % (
                    self.proc.returncode, " (could not bind)" if "could not bind" in log
                    else "")
            r = subprocess.run(isready, stdin=subprocess.DEVNULL, capture_output=True)
            if r.returncode == 0:
                return None
            if time.monotonic() >= deadline:
                return "not accepting connections before the deadline (pg_isready %d)" % (
                    r.returncode)
            time.sleep(0.05)

    def _reap(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._kill_group()

    def _kill_group(self):
        """Backends left behind by a killed postmaster exit on their own when
        they notice; make sure of it (they are in its process group)."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig=signal.SIGKILL):
        """Sends sig to the postmaster (SIGKILL: a crash; SIGSTOP/SIGCONT: a
        stall). After SIGKILL, start() restarts it with crash recovery."""
        if not self.running():
            raise PgError("PostgreSQL is not running")
        self.proc.send_signal(sig)
        if sig == signal.SIGKILL:
            self.proc.wait(10)
            self._kill_group()
            # the dead postmaster's pid file would stop the next start
            deadline = time.monotonic() + 10
            while self._group_alive() and time.monotonic() < deadline:
                time.sleep(0.02)

    def _group_alive(self):
        try:
            os.killpg(self.proc.pid, 0)
            return True
        except OSError:
            return False

    def stop(self, timeout=30.0):
        """Fast shutdown (SIGINT: active sessions are disconnected); PgError
        if it does not exit within timeout (it is then killed)."""
        if not self.running():
            self.proc = None
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._reap()
            raise PgError("PostgreSQL did not stop on SIGINT within %.0fs; log:\n%s" % (
                timeout, _tail(self.log_path)))
        self._kill_group()
        self.proc = None

    def restart(self):
        self.stop()
        return self.start()

    def close(self):
        """Stop (killing if need be) and remove the temporary directory."""
        try:
            if self.running():
                self.proc.send_signal(signal.SIGCONT)  # a stopped server cannot shut down
                self.stop()
        finally:
            self._reap()
            if self._own_dir and not self.keep:
                shutil.rmtree(self.dir, ignore_errors=True)

    cleanup = close

    # -- clients -----------------------------------------------------------

    @property
    def conninfo(self):
        return "host=127.0.0.1 port=%d user=%s dbname=%s" % (self.port, SUPERUSER, DATABASE)

    @property
    def uri(self):
        return "postgresql://%s@127.0.0.1:%d/%s" % (SUPERUSER, self.port, DATABASE)

    def env(self):
        """Environment for a client: libpq's PG* variables and R2M_PG_CONNINFO."""
        return {"R2M_PG_CONNINFO": self.conninfo, "PGHOST": "127.0.0.1",
                "PGPORT": str(self.port), "PGUSER": SUPERUSER, "PGDATABASE": DATABASE}

    def psql(self, sql, dbname=DATABASE, timeout=30, check=True):
        """Runs sql through psql (-At, stop at the first error) over TCP;
        returns stdout. PgError on failure (when check)."""
        argv = [self._tool("psql"), "-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                "-p", str(self.port), "-U", SUPERUSER, "-d", dbname, "-f", "-"]
        try:
            r = subprocess.run(argv, input=sql, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise PgError("psql did not finish within %ds: %s" % (timeout, sql[:200])) from None
        if check and r.returncode != 0:
            raise PgError("psql failed (exit %d): %s\n%s" % (r.returncode, sql[:200],
                                                             r.stderr.strip()))
        return r.stdout if check else r


def selftest():
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    srv = PgServer()
    try:
        srv.start()
        assert srv.psql("select 1").strip() == "1"
        # the server does not run as root, and listens where we said
        if os.geteuid() == 0:
            who = srv.psql("select pg_read_file('postmaster.pid')").split("\n")[0].strip()
            assert int(who) == srv.proc.pid, (who, srv.proc.pid)
            assert os.stat("/proc/%d" % srv.proc.pid).st_uid == srv.user.pw_uid
        assert os.path.exists(os.path.join(srv.sock, ".s.PGSQL.%d" % srv.port))
        port = srv.port
        # a committed row survives kill -9 of the server and the restart
        srv.psql("CREATE TABLE t(x int); INSERT INTO t VALUES (42);")
        srv.kill(signal.SIGKILL)
        assert not srv.running()
        r = subprocess.run([srv._tool("pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                           capture_output=True)
        assert r.returncode != 0, "a killed server still answers"
        srv.start()
        assert srv.port == port
        assert srv.psql("select x from t").strip() == "42"
        # a failing statement fails loudly
        try:
            srv.psql("select * from no_such_table")
            raise AssertionError("psql on a missing table did not fail")
        except PgError as e:
            assert "no_such_table" in str(e), e
        srv.stop()
        assert not srv.running()
        # a server that cannot start fails loudly, with its log
        bad = PgServer()
        try:
            bad.start()
            os.unlink(os.path.join(bad.data, "PG_VERSION"))
            bad.stop()
            try:
                bad.start(timeout=10)
                raise AssertionError("a broken data directory started")
            except PgError as e:
                assert "did not start" in str(e), e
        finally:
            bad.close()
    finally:
        srv.close()
    assert not os.path.exists(srv.dir), "temp dir left behind"
    # inside an e2e case: the case's Context stops it
    from harness import Context
    ctx = Context(None)
    try:
        pg = PgServer(ctx).start()
        assert pg.psql("select 2").strip() == "2"
        pid = pg.proc.pid
    finally:
        assert ctx.close(False) == []
    assert not os.path.exists("/proc/%d" % pid) or \
        open("/proc/%d/stat" % pid).read().split()[2] == "Z", "server outlived its case"
    assert not os.path.exists(ctx.tmp)
    print("pgserver selftest ok")


def main(argv):
    if argv[:1] == ["--selftest"]:
        selftest()
        return 0
    serve = argv[:1] == ["--serve"]
    if not serve and (argv[:1] != ["--"] or len(argv) < 2):
        sys.stderr.write(__doc__)
        return 2
    # meson's timeout sends SIGTERM: stop the server on the way out
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    srv = PgServer()
    try:
        srv.start()
        if serve:
            print("R2M_PG_CONNINFO=" + srv.conninfo, flush=True)
            sys.stdin.read()  # until the client exits or closes it
            return 0
        env = dict(os.environ, **srv.env())
        return subprocess.run(argv[1:], env=env).returncode
    finally:
        srv.close()


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except PgError as e:
        sys.stderr.write("pgserver: error: %s\n" % e)
        sys.exit(1)
