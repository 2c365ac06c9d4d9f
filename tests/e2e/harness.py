"""Harness for the rest2mqtt end-to-end tests: a real mosquitto on a free
loopback port, a mosquitto_sub subscriber, the bridge process, a scripted
fake API (fakeapi.py), and condition waits with deadlines.

Everything a case starts is registered with its Context and torn down by
Context.close(), in reverse order, whether the case passed or failed.
Every wait and every loop has a deadline.

A case never sleeps for a fixed time before asserting that nothing (more)
happened: Context.quiesce() waits for proof instead (see there).

Every bridge's stderr is kept, and a sanitizer or valgrind report in it fails
the case, also when the harness stopped the bridge itself (with SIGTERM, so
that LeakSanitizer and valgrind's leak check run).

Environment:
  R2M_E2E_WRAPPER  command prepended to every bridge command line, e.g.
                   "valgrind --leak-check=full --errors-for-leak-kinds=definite"
  R2M_E2E_SCALE    factor for every wait's deadline, the fake API's too
                   (default 1; tests/run --valgrind uses 8)
"""

import decimal
import http.client
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

from fakeapi import FakeAPI

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_SUB = shutil.which("mosquitto_sub") or "/usr/bin/mosquitto_sub"
MOSQUITTO_PUB = shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub"

PROBE_PREFIX = "e2e-probe/"

WRAPPER = shlex.split(os.environ.get("R2M_E2E_WRAPPER", ""))
SCALE = float(os.environ.get("R2M_E2E_SCALE", "1") or 1)

# Lines in a bridge's stderr that fail the case whatever else happened.
SANITIZER_REPORT = re.compile(
    r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:"
    r"|ERROR SUMMARY: [1-9][0-9]* errors")

# The Context of the case running in this process (one case per process),
# for helpers that are not handed one: see quiesce().
CURRENT = None


class Failure(Exception):
    """A case failed; the message says what was expected and what happened."""


def check(cond, msg, *args):
    if not cond:
        raise Failure(msg % args if args else msg)


def check_eq(got, want, what):
    if got != want:
        raise Failure("%s: expected %s, got %s" % (what, short(want), short(got)))


def short(v, n=300):
    s = v if isinstance(v, str) else json.dumps(v, default=str, ensure_ascii=False) \
        if not isinstance(v, bytes) else repr(v)
    return s if len(s) <= n else s[:n] + "...(%d chars)" % len(s)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_for(cond, timeout, what, interval=0.02, alive=()):
    """Poll cond() until it returns a truthy value (returned) or the deadline
    passes (Failure). Each process in `alive` must keep running meanwhile."""
    timeout *= SCALE
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        for p in alive:
            p.assert_alive()
        if time.monotonic() >= deadline:
            raise Failure("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def loads(b):
    """Parse JSON with exact numbers (Decimal for non-integers, int otherwise)."""
    if isinstance(b, bytes):
        b = b.decode("utf-8")
    return json.loads(b, parse_float=decimal.Decimal)


def tail(path, n=25):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return []
    return lines[-n:]


# ---------------------------------------------------------------------------
# YAML writer (block style; enough for the bridge config)

_PLAIN = re.compile(r"^[A-Za-z0-9_./%][A-Za-z0-9_./:%?=&+@-]*$")
_RESERVED = {"true", "false", "yes", "no", "on", "off", "null", "~", "y", "n"}


def yaml_scalar(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    s = str(v)
    if _PLAIN.match(s) and s.lower() not in _RESERVED and not re.match(r"^[0-9.+-]+$", s):
        return s
    return json.dumps(s)  # a JSON string is a valid YAML double-quoted scalar


def to_yaml(obj, indent=0):
    pad = " " * indent
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                out.append("%s%s:" % (pad, k))
                out.append(to_yaml(v, indent + 2))
            elif isinstance(v, (dict, list)):
                out.append("%s%s: %s" % (pad, k, "{}" if isinstance(v, dict) else "[]"))
            else:
                out.append("%s%s: %s" % (pad, k, yaml_scalar(v)))
    elif isinstance(obj, list):
        for v in obj:
            if isinstance(v, dict) and v:
                sub = to_yaml(v, indent + 2).split("\n")
                sub[0] = pad + "- " + sub[0][indent + 2:]
                out.append("\n".join(sub))
            elif isinstance(v, list):
                raise ValueError("nested lists are not needed")
            else:
                out.append("%s- %s" % (pad, yaml_scalar(v)))
    else:
        out.append(pad + yaml_scalar(obj))
    return "\n".join(out)


# ---------------------------------------------------------------------------
# Processes

class Proc:
    """A child process in its own process group, stdout/stderr to files."""

    is_bridge = False

    def __init__(self, name, argv, workdir, env=None):
        self.name = name
        self.argv = argv
        self.stdout_path = os.path.join(workdir, name + ".stdout")
        self.stderr_path = os.path.join(workdir, name + ".stderr")
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                      start_new_session=True, env=env)
        self.pid = self.p.pid

    def running(self):
        return self.p.poll() is None

    def assert_alive(self):
        if self.p.poll() is not None:
            raise Failure("%s exited unexpectedly with code %s; stderr tail:\n%s" % (
                self.name, self.p.returncode, "\n".join(tail(self.stderr_path))))

    def signal(self, sig):
        if self.p.poll() is None:
            self.p.send_signal(sig)

    def wait(self, timeout):
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self, grace=3.0):
        """Make sure it is gone (SIGTERM, then SIGKILL after `grace` s)."""
        if self.p.poll() is None:
            self.p.terminate()
            if self.wait(grace) is None:
                self.p.kill()
                self.wait(3)
        try:  # anything it left in its process group
            os.killpg(self.pid, signal.SIGKILL)
        except OSError:
            pass

    def sanitizer_report(self):
        """The first sanitizer/valgrind error in stderr and what follows
        (up to 40 lines), or None."""
        lines = self.stderr_lines()
        for i, line in enumerate(lines):
            if SANITIZER_REPORT.search(line):
                return lines[i:i + 40]
        return None

    def stderr_lines(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return []

    def stdout_text(self):
        with open(self.stdout_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


class Broker:
    """mosquitto on 127.0.0.1:port with a generated config."""

    def __init__(self, ctx, persistence=False):
        self.ctx = ctx
        self.persistence = persistence
        self.dir = ctx.mkdir("broker")
        self.port = None
        self.proc = None
        self.starts = 0

    def _write_conf(self):
        conf = [
            "listener %d 127.0.0.1" % self.port,
            "allow_anonymous true",
            "persistence %s" % ("true" if self.persistence else "false"),
            "persistence_location %s/" % self.dir,
            "log_dest stderr",
            "log_type all",
            "connection_messages true",
            "log_timestamp true",
        ]
        if os.geteuid() == 0:
            conf.append("user root")
        path = os.path.join(self.dir, "mosquitto.conf")
        with open(path, "w") as f:
            f.write("\n".join(conf) + "\n")
        return path

    def start(self, timeout=10.0):
        """Start on a free port (first time) or on the same port (restart)."""
        fixed = self.port is not None
        deadline = time.monotonic() + timeout
        while True:
            if not fixed:
                self.port = free_port()
            conf = self._write_conf()
            self.starts += 1
            self.proc = self.ctx.spawn("mosquitto-%d" % self.starts, [MOSQUITTO, "-c", conf])
            ok = wait_until(lambda: port_open(self.port) or not self.proc.running(),
                            max(0.1, deadline - time.monotonic()))
            if ok and self.proc.running():
                return self
            self.proc.kill()
            if time.monotonic() >= deadline:
                raise Failure("mosquitto did not start on port %d; log:\n%s" % (
                    self.port, "\n".join(tail(self.proc.stderr_path))))
            time.sleep(0.1)  # port taken (parallel tests): try again

    def stop(self, timeout=10.0):
        if self.proc is None:
            return
        self.proc.signal(signal.SIGTERM)
        if self.proc.wait(timeout) is None:
            self.proc.kill()
            raise Failure("mosquitto did not stop on SIGTERM within %.0fs" % timeout)
        self.proc = None

    def restart(self):
        self.stop()
        return self.start()

    def log(self):
        return "\n".join(self.proc.stderr_lines()) if self.proc else ""

    def wait_client(self, client_id, timeout=10.0, alive=(), nth=1):
        """Wait until client_id has connected to the current broker instance
        (for the nth time); returns mosquitto's protocol code for that
        connection (2 = MQTT 3.1.1, 5 = MQTT 5)."""
        pat = re.compile(r"New client connected from \S+ as %s \(p(\d+)," % re.escape(client_id))

        def find():
            ms = pat.findall(self.log())
            return len(ms) >= nth and int(ms[nth - 1])
        return wait_for(find, timeout, "client %r to connect to the broker%s" % (
            client_id, "" if nth == 1 else " (connection %d)" % nth),
            interval=0.05, alive=alive)

    def url(self):
        return "mqtt://127.0.0.1:%d" % self.port


def wait_until(cond, timeout, interval=0.02):
    deadline = time.monotonic() + timeout * SCALE
    while not cond():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


class Message:
    def __init__(self, qos, retain, topic, content_type, payload):
        self.qos = qos
        self.retain = retain
        self.topic = topic
        self.content_type = content_type
        self.payload = payload  # bytes
        self.t = time.monotonic()
        self._json = None

    def json(self):
        if self._json is None:
            try:
                self._json = loads(self.payload)
            except ValueError as e:
                raise Failure("payload on %s is not JSON (%s): %r" % (self.topic, e,
                                                                    self.payload[:200]))
        return self._json

    def __repr__(self):
        return "Message(%s q%d %s)" % (self.topic, self.qos, short(self.payload.decode(
            "utf-8", "replace"), 200))


class Subscriber:
    """mosquitto_sub on '#' at QoS 1 (MQTT 5, so the content type shows),
    collecting every message with a reader thread. `persistent` uses a fixed
    client id and a session that survives reconnects and broker restarts (the
    broker then needs persistence to keep it across a restart)."""

    FMT = "%q\t%r\t%t\t%C\t%x"

    def __init__(self, ctx, broker, persistent=False):
        self.ctx = ctx
        self.broker = broker
        self.client_id = "e2e-sub-%d" % os.getpid()
        self.persistent = persistent
        self._lock = threading.Lock()
        self._msgs = []
        self._probes = 0
        self.proc = None

    def start(self, timeout=10.0):
        argv = [MOSQUITTO_SUB, "-h", "127.0.0.1", "-p", str(self.broker.port), "-t", "#",
                "-q", "1", "-V", "5", "-i", self.client_id, "-F", self.FMT]
        if self.persistent:
            argv += ["-c", "-x", "3600"]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        self.ctx.defer(self.stop)
        self.ctx.subscribers.append(self)
        self._thread = threading.Thread(target=self._read, daemon=True, name="sub")
        self._thread.start()
        self.wait_ready(timeout)
        return self

    def _read(self):
        for line in self.proc.stdout:
            line = line.rstrip(b"\n").decode("utf-8", "replace")
            parts = line.split("\t", 4)
            if len(parts) != 5:
                continue
            q, r, topic, ct, hx = parts
            try:
                payload = bytes.fromhex(hx)
            except ValueError:
                continue
            m = Message(int(q), r == "1", topic, ct, payload)
            with self._lock:
                self._msgs.append(m)

    def listening(self):
        """mosquitto_sub and its broker both run."""
        return (self.proc is not None and self.proc.poll() is None
                and self.broker.proc is not None and self.broker.proc.running())

    def wait_ready(self, timeout=10.0):
        """Publish probes until one comes back: the subscription is active,
        and everything the broker accepted before the probe has arrived
        (mosquitto delivers to one subscriber in the order it accepted)."""
        self._probes += 1
        topic = "%s%d/%d" % (PROBE_PREFIX, os.getpid(), self._probes)
        deadline = time.monotonic() + timeout * SCALE
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Failure("mosquitto_sub exited with %s" % self.proc.returncode)
            subprocess.run([MOSQUITTO_PUB, "-h", "127.0.0.1", "-p", str(self.broker.port),
                            "-t", topic, "-m", "probe", "-q", "1"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=5)
            if wait_until(lambda: any(m.topic == topic for m in self.all()), 0.5):
                return
        raise Failure("subscriber not receiving probes within %.0fs" % timeout)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(3)

    def all(self):
        with self._lock:
            return list(self._msgs)

    def events(self):
        """Everything but our readiness probes."""
        return [m for m in self.all() if not m.topic.startswith(PROBE_PREFIX)]

    def wait_events(self, n, timeout=10.0, alive=()):
        """Wait until at least n events arrived; returns all events."""
        wait_for(lambda: len(self.events()) >= n, timeout,
                 "%d event(s) (have %d)" % (n, len(self.events())), alive=alive)
        return self.events()


class Bridge:
    """The rest2mqtt process under test."""

    def __init__(self, ctx, config, args=("run",), name="bridge"):
        self.ctx = ctx
        busy = {b.metrics for b in ctx.bridges if b.metrics and b.proc.running()}
        if isinstance(config, dict) and ctx.default_metrics(config) and metrics_listen(
                config) in busy:
            # the harness's own /metrics port, and another bridge of this case
            # runs on it: this one gets its own
            config = dict(config, metrics={"listen": "127.0.0.1:%d" % free_port()})
        self.config = config
        self.config_path = ctx.write_config(config, name + ".yaml")
        self.proc = ctx.spawn(name, WRAPPER + [ctx.bin] + list(args) + ["-c", self.config_path],
                              bridge=True)
        self.pid = self.proc.pid
        self.metrics = metrics_listen(config)
        ctx.bridges.append(self)

    def scrape(self):
        """{series: value} from GET /metrics, or None (not listening yet)."""
        host, port = self.metrics.rsplit(":", 1)
        try:
            c = http.client.HTTPConnection(host, int(port), timeout=2 * SCALE)
            c.request("GET", "/metrics")
            r = c.getresponse()
            body = r.read().decode("utf-8", "replace")
            c.close()
        except OSError:
            return None
        if r.status != 200:
            return None
        out = {}
        for line in body.splitlines():
            if line and not line.startswith("#"):
                k, _, v = line.rpartition(" ")
                try:
                    out[k] = float(v)
                except ValueError:
                    pass
        return out

    def outbox_drained(self):
        """True when the broker acknowledged every event the bridge committed
        (or the bridge is not connected, so nothing can arrive meanwhile)."""
        m = self.scrape()
        if m is None:
            return False
        return (m.get("rest2mqtt_broker_connected") == 0
                or m.get("rest2mqtt_outbox_events") == 0)

    def assert_alive(self):
        self.proc.assert_alive()

    def stop(self, sig=signal.SIGTERM, expect=0, timeout=10.0):
        """Send sig; the bridge must exit within timeout with code `expect`."""
        self.proc.assert_alive()
        t0 = time.monotonic()
        self.proc.signal(sig)
        rc = self.proc.wait(timeout * SCALE)
        if rc is None:
            self.proc.kill()
            raise Failure("bridge did not exit within %.0fs of %s" % (
                timeout, signal.Signals(sig).name))
        check(rc == expect, "bridge exit code after %s: expected %d, got %d; stderr tail:\n%s",
              signal.Signals(sig).name, expect, rc, "\n".join(tail(self.proc.stderr_path)))
        return time.monotonic() - t0

    def log_lines(self):
        return self.proc.stderr_lines()

    def wait_log(self, substring, after=0, timeout=10.0):
        """Wait for a stderr line (index >= after) containing substring."""
        def find():
            lines = self.log_lines()
            for i in range(after, len(lines)):
                if substring in lines[i]:
                    return lines[i]
            return None
        return wait_for(find, timeout, "a bridge log line containing %r" % substring,
                        alive=(self,))

    def rss_kb(self):
        try:
            with open("/proc/%d/status" % self.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None


def metrics_listen(config):
    """HOST:PORT of the config's metrics listener, or None."""
    if isinstance(config, dict):
        m = config.get("metrics")
        return m.get("listen") if isinstance(m, dict) else None
    m = re.search(r"^metrics:\s*\n\s+listen:\s*\"?([0-9.]+:[0-9]+)", config, re.M)
    return m.group(1) if m else None


def quiesce(api=None, paths=(), alive=(), timeout=10.0):
    """Context.quiesce() of the running case (for helpers without a Context)."""
    CURRENT.quiesce(api, paths, alive=alive, timeout=timeout)


# ---------------------------------------------------------------------------

class Context:
    """Per-case resources: temp dir, processes, fake APIs; close() frees all."""

    def __init__(self, bin_path, keep=False):
        self.bin = bin_path
        self.keep = keep
        self.tmp = tempfile.mkdtemp(prefix="r2m-e2e-")
        self._cleanup = []
        self.procs = []
        self.bridges = []
        self.subscribers = []
        self.sanitizer_reports = []  # (what, lines) from bridges that ran
        self.diagnostics = []  # extra lines shown when the case fails
        self._metrics_port = None
        global CURRENT
        CURRENT = self

    def defer(self, fn):
        self._cleanup.append(fn)

    def mkdir(self, name):
        d = os.path.join(self.tmp, name)
        os.makedirs(d, exist_ok=True)
        return d

    def path(self, name):
        return os.path.join(self.tmp, name)

    def write(self, name, data):
        p = self.path(name)
        mode = "wb" if isinstance(data, bytes) else "w"
        with open(p + ".tmp", mode) as f:
            f.write(data)
        os.replace(p + ".tmp", p)  # atomic: a reader never sees half a file
        return p

    def write_config(self, config, name):
        text = config if isinstance(config, str) else to_yaml(config) + "\n"
        return self.write(name, text)

    def spawn(self, name, argv, bridge=False):
        p = Proc(name, argv, self.tmp)
        p.is_bridge = bridge
        self.procs.append(p)
        # a bridge gets time for a graceful exit, so LeakSanitizer and
        # valgrind's leak check run and their reports are seen
        self.defer(lambda: p.kill(grace=10 * SCALE if bridge else 3))
        return p

    def api(self):
        a = FakeAPI().start()
        self.defer(a.stop)
        return a

    def broker(self, persistence=False):
        b = Broker(self, persistence=persistence)
        b.start()
        return b

    def subscriber(self, broker, persistent=False):
        return Subscriber(self, broker, persistent=persistent).start()

    def bridge(self, config, args=("run",), name="bridge"):
        b = Bridge(self, config, args=args, name=name)
        return b

    def run_cli(self, args, timeout=15.0):
        """Run the binary to completion; returns CompletedProcess (text)."""
        return self.run_wrapped([self.bin] + list(args), timeout)

    def run_wrapped(self, argv, timeout=15.0):
        """Run argv (a bridge command line, possibly behind other commands
        such as setpriv) under R2M_E2E_WRAPPER to completion; its stderr is
        checked for sanitizer reports like a running bridge's."""
        i = argv.index(self.bin) if self.bin in argv else 0
        argv = list(argv[:i]) + WRAPPER + list(argv[i:])
        try:
            r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=timeout * SCALE)
        except subprocess.TimeoutExpired:
            raise Failure("%s did not finish within %.0fs" % (
                " ".join(["rest2mqtt"] + list(argv[i + len(WRAPPER) + 1:])), timeout * SCALE))
        lines = r.stderr.decode("utf-8", "replace").splitlines()
        for k, line in enumerate(lines):
            if SANITIZER_REPORT.search(line):
                self.sanitizer_reports.append((" ".join(argv[-3:]), lines[k:k + 40]))
                break
        return r

    def config(self, broker_port, endpoints, version=5, defaults=None, mqtt=None, **top):
        """The usual bridge config (see DESIGN.md section 3)."""
        m = {"url": "mqtt://127.0.0.1:%d" % broker_port, "client_id": "e2e", "qos": 1,
             "version": version}
        m.update(mqtt or {})
        d = {"interval": "200ms", "timeout": "2s", "jitter": "0%"}
        d.update(defaults or {})
        cfg = {"mqtt": m, "state": {"path": self.path("state.db")}, "defaults": d}
        # /metrics lets quiesce() see the outbox drain; one port per case, so
        # a reloaded config does not differ in it
        if self._metrics_port is None:
            self._metrics_port = free_port()
        cfg["metrics"] = {"listen": "127.0.0.1:%d" % self._metrics_port}
        cfg.update(top)
        cfg["endpoints"] = endpoints
        return cfg

    def default_metrics(self, config):
        """Whether config's /metrics address is the one config() chose."""
        return (self._metrics_port is not None
                and metrics_listen(config) == "127.0.0.1:%d" % self._metrics_port)

    def settle(self, api, paths, polls=2, timeout=10.0, alive=()):
        """Evidence that the bridge has polled: each path gets `polls` more
        finished requests; then quiesce() proves that whatever those polls
        produced has reached the subscribers."""
        base = {p: api.count(p, finished=True) for p in paths}
        for p in paths:
            wait_for(lambda p=p: api.count(p, finished=True) >= base[p] + polls, timeout,
                     "%d more polls of %s" % (polls, p), alive=alive)
        self.quiesce(api, paths, alive=alive, timeout=timeout)

    def quiesce(self, api=None, paths=(), alive=(), timeout=10.0):
        """Wait for proof, not for time, that every event the bridge will
        produce from what the API has answered so far has reached the
        subscribers; then "nothing (more) arrived" is a real assertion:
          1. each path in `paths` gets a request that starts after this call:
             a bridge polls an endpoint one poll at a time and schedules the
             next one only after it has committed the last one's events;
          2. each running bridge with /metrics (Context.config() turns it on)
             reports rest2mqtt_outbox_events 0: the broker acknowledged every
             committed event (skipped while the bridge is disconnected);
          3. each listening subscriber receives a new probe, published after
             that: mosquitto delivers to a subscriber in the order it
             accepted, so the events arrived before it, and the subscriber
             is still listening."""
        if api is not None:
            base = {p: api.count(p) for p in paths}
            for p in paths:
                wait_for(lambda p=p: api.count(p) > base[p], timeout,
                         "a poll of %s that starts after the last one was processed" % p,
                         alive=alive)
        for b in self.bridges:
            if b.metrics and b.proc.running():
                wait_for(lambda b=b: b.outbox_drained() or not b.proc.running(), timeout,
                         "%s: rest2mqtt_outbox_events 0 on %s/metrics (every committed event "
                         "acknowledged)" % (b.proc.name, b.metrics), alive=alive)
        for s in self.subscribers:
            if s.listening():
                s.wait_ready(timeout)

    def stop_bridges(self):
        """SIGTERM every bridge still running and wait (so LeakSanitizer and
        valgrind finish their reports), then collect sanitizer reports."""
        for p in self.procs:
            if p.is_bridge:
                p.kill(grace=10 * SCALE)
        for p in self.procs:
            if p.is_bridge:
                r = p.sanitizer_report()
                if r and all(name != p.name for name, _ in self.sanitizer_reports):
                    self.sanitizer_reports.append((p.name, r))

    def close(self, failed):
        """Tear everything down. Returns a list of problems: cleanup errors
        and sanitizer/valgrind reports; a report fails the case (run.py)."""
        self.stop_bridges()
        if failed or self.sanitizer_reports:
            for p in self.procs:
                lines = tail(p.stderr_path, 30)
                if lines:
                    self.diagnostics.append("--- %s stderr (last %d lines) ---" % (
                        p.name, len(lines)))
                    self.diagnostics.extend(lines)
        errors = []
        for name, lines in self.sanitizer_reports:
            errors.append("sanitizer/valgrind report in the stderr of %s:" % name)
            errors.extend("    " + line for line in lines)
        for fn in reversed(self._cleanup):
            try:
                fn()
            except Exception as e:  # keep cleaning up
                errors.append("cleanup: %s" % e)
        if self.keep or os.environ.get("R2M_E2E_KEEP"):
            self.diagnostics.append("kept %s" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
        return errors
