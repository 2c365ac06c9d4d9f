"""End-to-end cases for a broker that refuses: dead letters, reconnect
backoff and connection failures in words. Imported by run.py (every
tests/e2e/*_cases.py is), which owns the case registry and the runner.

Contract under test (DESIGN.md invariant 8, README Guarantees/Operations):
  dead letters  An event the broker refuses for good (MQTT 5 PUBACK 0x87 for
                an ACL-denied topic; a PUBLISH packet larger than
                mqtt.max_packet_size or the broker's CONNACK Maximum Packet
                Size, checked before sending) leaves the outbox for the
                dead-letter table in the same transaction, is logged once at
                error level ("event refused by the broker for good" with
                endpoint, topic, size, reason) and counted in
                rest2mqtt_dead_letters_total{endpoint,reason}. Everything
                behind it, of every endpoint, is delivered; nothing is sent
                twice. `state dead-letters` lists it; `state dead-letters
                --requeue` (bridge stopped) puts it back into the outbox and
                the next start delivers it with its original id.
  backoff       A broker that sends CONNACK and closes at once is retried
                with the growing backoff (1 s doubling), not once a second:
                the backoff resets only after 10 s of connection.
  words         A refused CONNECT says why in words ("bad user name or
                password"), never only a number; the password never shows.
"""

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

from fakeapi import Reply
from harness import Broker, check, check_eq, free_port, short, wait_for
from ops_cases import launch, run_state, scrape
from run import case, doc_endpoint

REFUSED = "event refused by the broker for good"


def report(line):
    print("  %s" % line, flush=True)


class ConfBroker(Broker):
    """The harness's mosquitto with extra config lines (ACL, limits,
    passwords). Files it reads live in its own directory."""

    def __init__(self, ctx, extra=(), anonymous=True, files=None):
        super().__init__(ctx)
        self.extra = [l.replace("{dir}", self.dir) for l in extra]
        self.anonymous = anonymous
        for name, text in (files or {}).items():
            self.file(name, text)

    def _write_conf(self):
        path = super()._write_conf()
        with open(path) as f:
            text = f.read()
        if not self.anonymous:
            text = text.replace("allow_anonymous true", "allow_anonymous false")
        with open(path, "w") as f:
            f.write(text + "\n".join(self.extra) + "\n")
        return path

    def file(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def reload(self, what):
        """SIGHUP: mosquitto re-reads its ACL and password files."""
        n = self.log().count("Reloading config")
        self.proc.signal(signal.SIGHUP)
        wait_for(lambda: self.log().count("Reloading config") > n, 10,
                 "mosquitto to reload (%s)" % what)


def conf_broker(t, extra=(), anonymous=True, files=None):
    """A broker whose extra config lines may name files in its directory
    ({dir}); files are written before it starts."""
    b = ConfBroker(t, extra, anonymous, files)
    b.start()
    return b


def refused_lines(br):
    return [l for l in br.log_lines() if REFUSED in l]


def field(line, key):
    m = re.search(r'\b%s=("(?:[^"\\]|\\.)*"|\S*)' % re.escape(key), line)
    return m.group(1).strip('"') if m else None


def ids_once(sub, what):
    """Every event id arrived exactly once; returns {id: message}."""
    seen = {}
    for m in sub.events():
        i = m.json().get("id")
        check(i not in seen, "%s: event %s arrived twice (on %s)", what, i, m.topic)
        seen[i] = m
    return seen


def dead_letter_rows(t, cfg_path):
    """`state dead-letters` rows (header and summary left out) as field lists."""
    lines = run_state(t, "dead-letters", cfg_path)
    check(lines and lines[0].split()[:2] == ["ID", "REFUSED"],
          "state dead-letters must start with a header line, got %s", lines[:2])
    summary = [l for l in lines if re.fullmatch(r"\d+ dead letters? in .*", l)]
    check(len(summary) == 1, "state dead-letters must end with 'N dead letters in PATH': %s",
          lines)
    rows = [l.split() for l in lines[1:] if re.match(r"\d+ ", l) and l not in summary]
    check_eq(len(rows), int(summary[0].split()[0]), "rows of state dead-letters vs its summary")
    return rows


# ---------------------------------------------------------------------------
# ACL: one item's topic is denied


@case
def dead_letter_denied_topic_flows_on(t):
    deny = "topic readwrite #\ntopic deny rest2mqtt/items/2/#\n"
    broker = conf_broker(t, ["acl_file {dir}/acl"], files={"acl": deny})
    sub = t.subscriber(broker)
    api = t.api()
    items = lambda v: [{"id": i, "v": v} for i in (1, 2, 3)]  # noqa: E731
    api.set("/items", Reply.json(items(0)))
    api.set("/doc", Reply.json({"v": 0}))
    port = free_port()
    cfg = t.config(broker.port, [
        {"name": "items", "url": api.url("/items"), "items": "", "key": "/id"},
        doc_endpoint(api)], metrics={"listen": "127.0.0.1:%d" % port})
    br = launch(t, broker, cfg)
    t.settle(api, ["/items", "/doc"], alive=(br,))

    # item 2's event is refused (PUBACK 0x87); 1 and 3 arrive
    api.set("/items", Reply.json(items(1)))
    wait_for(lambda: len(refused_lines(br)) >= 1, 10, "the refused event to be logged",
             alive=(br,))
    wait_for(lambda: {m.topic for m in sub.events()} >= {
        "rest2mqtt/items/1/updated", "rest2mqtt/items/3/updated"}, 10,
        "the events of items 1 and 3", alive=(br,))
    # later events of the same and of another endpoint flow on
    api.set("/items", Reply.json(items(2)))
    api.set("/doc", Reply.json({"v": 1}))
    wait_for(lambda: len(sub.events()) >= 5 and len(refused_lines(br)) >= 2, 10,
             "4 item events, the document event and a second refusal", alive=(br,))
    t.settle(api, ["/items", "/doc"], alive=(br,))
    seen = ids_once(sub, "while item 2 is refused")
    topics = sorted(m.topic for m in seen.values())
    check_eq(topics, ["rest2mqtt/doc"] + ["rest2mqtt/items/%d/updated" % i
                                          for i in (1, 1, 3, 3)], "topics delivered")
    lines = refused_lines(br)
    check_eq(len(lines), 2, "refusal log lines (one per refused event): %s" % lines)
    for l in lines:
        check(" error " in l, "a refusal is logged at error level: %s", l)
        check_eq(field(l, "endpoint"), "items", "endpoint of the refusal log line")
        check_eq(field(l, "topic"), "rest2mqtt/items/2/updated", "topic of the refusal")
        check_eq(field(l, "reason"), "not_authorized", "reason of the refusal")
        check(int(field(l, "size") or 0) > 100, "the size in the refusal line: %s", l)
        check("--requeue" in l, "the refusal line says what to do: %s", l)
    refused_ids = [field(l, "event_id") for l in lines]
    check(all(refused_ids) and len(set(refused_ids)) == 2, "event ids of the refusals: %s",
          refused_ids)
    expo = scrape(port)
    check_eq(expo.value("rest2mqtt_dead_letters_total", endpoint="items",
                        reason="not_authorized"), 2, "rest2mqtt_dead_letters_total")
    check_eq(expo.value("rest2mqtt_outbox_events"), 0, "rest2mqtt_outbox_events")
    check(not any("will resend" in l for l in br.log_lines()),
          "a refused event must not be resent: %s",
          [l for l in br.log_lines() if "will resend" in l][:3])
    br.stop()

    rows = dead_letter_rows(t, br.config_path)
    check_eq(len(rows), 2, "dead letters listed")
    for r in rows:
        check_eq((r[2], r[3], r[6]), ("items", "not_authorized", "rest2mqtt/items/2/updated"),
                 "endpoint, reason and topic of a listed dead letter (%s)" % r)
    check_eq(sorted(r[5] for r in rows), sorted(refused_ids), "event ids listed")
    out = t.run_cli(["state", "dead-letters", "--json", "-c", br.config_path])
    check_eq(out.returncode, 0, "exit code of state dead-letters --json")
    recs = [json.loads(l) for l in out.stdout.decode().splitlines()]
    check_eq(sorted(r["event_id"] for r in recs), sorted(refused_ids), "ids in --json")

    # the operator fixes the ACL and requeues: the next start delivers them
    broker.file("acl", "topic readwrite #\n")
    broker.reload("ACL allowing everything")
    r = t.run_cli(["state", "dead-letters", "--requeue", "-c", br.config_path])
    out = r.stdout.decode()
    check(r.returncode == 0 and re.search(r"requeued 2 dead letters", out),
          "--requeue must say it requeued 2, got exit %d: %s %s", r.returncode, out,
          r.stderr.decode())
    check_eq(dead_letter_rows(t, br.config_path), [], "dead letters after --requeue")
    n = len(sub.events())
    br = launch(t, broker, cfg, name="bridge-2")
    wait_for(lambda: len(sub.events()) >= n + 2, 10, "the two requeued events", alive=(br,))
    t.settle(api, ["/items", "/doc"], alive=(br,))
    seen = ids_once(sub, "after --requeue")
    late = [m for m in sub.events()[n:]]
    check_eq([m.topic for m in late], ["rest2mqtt/items/2/updated"] * 2, "requeued topics")
    check_eq([m.json()["id"] for m in late], refused_ids, "requeued ids, in order")
    check_eq([m.json()["data"]["after"]["v"] for m in late], [1, 2], "requeued changes")
    br.stop()
    check_eq(dead_letter_rows(t, br.config_path), [], "dead letters at the end")


# ---------------------------------------------------------------------------
# Packets larger than the broker takes


def too_large_flow(t, broker, cfg, version_code):
    """Endpoint big: one change whose event is ~8 KB (over the 3000-byte
    limit), then a small one; endpoint small changes meanwhile."""
    api = t.api()
    api.set("/big", Reply.json({"v": 0, "blob": ""}))
    api.set("/small", Reply.json({"v": 0}))
    sub = t.subscriber(broker)
    cfg["endpoints"] = [doc_endpoint(api, "big", payload="patch"), doc_endpoint(api, "small")]
    br = launch(t, broker, cfg)
    conns = broker.log().count("as e2e (p%d," % version_code)
    t.settle(api, ["/big", "/small"], alive=(br,))
    api.set("/big", Reply.json({"v": 1, "blob": "x" * 8000}))
    wait_for(lambda: refused_lines(br), 10, "the refusal of the big event", alive=(br,))
    api.set("/small", Reply.json({"v": 1}))
    wait_for(lambda: len(sub.events()) >= 1, 10, "the event of small", alive=(br,))
    api.set("/big", Reply.json({"v": 2, "blob": "x" * 8000}))
    wait_for(lambda: len(sub.events()) >= 2, 10, "big's next (small) event", alive=(br,))
    t.settle(api, ["/big", "/small"], alive=(br,))
    seen = ids_once(sub, "after the big event")
    check_eq(sorted(m.topic for m in seen.values()), ["rest2mqtt/big", "rest2mqtt/small"],
             "topics delivered")
    big = [m for m in seen.values() if m.topic == "rest2mqtt/big"][0]
    check_eq(big.json()["data"]["patch"], [{"op": "replace", "path": "/v", "value": 2}],
             "the patch of big's later event")
    lines = refused_lines(br)
    check_eq(len(lines), 1, "refusal lines: %s" % lines)
    check_eq(field(lines[0], "reason"), "packet_too_large", "reason")
    check_eq(field(lines[0], "endpoint"), "big", "endpoint")
    check(int(field(lines[0], "size")) > 8000, "size in the refusal line: %s", lines[0])
    check_eq(broker.log().count("as e2e (p%d," % version_code), conns,
             "connections of the bridge (the big packet must never be sent, so the broker "
             "never drops the connection)")
    br.stop()
    rows = dead_letter_rows(t, br.config_path)
    check_eq([(r[2], r[3]) for r in rows], [("big", "packet_too_large")], "dead letters")
    return br


@case
def dead_letter_over_max_packet_size_v311(t):
    # a 3.1.1 broker announces no limit and drops the connection instead:
    # mqtt.max_packet_size tells the bridge
    broker = conf_broker(t, ["max_packet_size 3000"])
    cfg = t.config(broker.port, [], version="3.1.1", mqtt={"max_packet_size": "3000B"})
    too_large_flow(t, broker, cfg, 2)  # mosquitto's protocol code for 3.1.1


@case
def dead_letter_over_connack_maximum_packet_size_v5(t):
    # MQTT 5: mosquitto announces max_packet_size in CONNACK; no config needed
    broker = conf_broker(t, ["max_packet_size 3000"])
    cfg = t.config(broker.port, [])
    br = too_large_flow(t, broker, cfg, 5)
    check(any("mqtt connected" in l and "max_packet_size=3000" in l for l in br.log_lines()),
          "the connected line must show the broker's Maximum Packet Size 3000")


# ---------------------------------------------------------------------------
# A broker that accepts and drops every connection


class DroppingBroker:
    """Speaks just enough MQTT 3.1.1: reads CONNECT, answers CONNACK
    (accepted), closes. Records the time of each connection."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.times = []
        self._stop = False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            t = time.monotonic()
            try:
                c.settimeout(2)
                if c.recv(4096)[:1] == b"\x10":  # a CONNECT: an attempt
                    self.times.append(t)
                    c.sendall(b"\x20\x02\x00\x00")
            except OSError:
                pass
            c.close()

    def stop(self):
        self._stop = True
        self._t.join(2)
        self.sock.close()


@case
def reconnect_backs_off_when_broker_drops_after_connack(t):
    fb = DroppingBroker()
    t.defer(fb.stop)
    api = t.api()
    api.set("/doc", Reply.json({"v": 0}))
    cfg = t.config(fb.port, [doc_endpoint(api)], version="3.1.1")
    br = t.bridge(cfg)
    wait_for(lambda: fb.times, 10, "the first connection attempt", alive=(br,))
    window = 9.0
    end = fb.times[0] + window
    wait_for(lambda: time.monotonic() >= end, window + 1, "the observation window",
             alive=(br,))
    n = len([x for x in fb.times if x < end])
    gaps = ["%.1f" % (b - a) for a, b in zip(fb.times, fb.times[1:])]
    report("%d connection attempts in %.0f s; gaps %s" % (n, window, gaps))
    # with the backoff: 0, ~0.5-1, ~1.5-3, ~3.5-7 s -> at most 5 in 9 s;
    # without it (reset at every CONNACK) one every 0.5-1 s -> 9 or more
    check(2 <= n <= 5, "connection attempts to a broker that drops every connection within "
          "%.0f s: expected 2 to 5 (backing off), got %d (gaps %s)", window, n, gaps)
    lost = [l for l in br.log_lines() if "mqtt connection lost" in l]
    check(lost and "closed the connection soon after accepting it" in lost[0],
          "the lost-connection line must say the broker closed it right after accepting: %s",
          lost[:1])
    check(len(lost) <= 3, "lost-connection lines are rate limited (1st, 2nd, 4th...): %s",
          lost)
    br.stop()


# ---------------------------------------------------------------------------
# Connection failures in words


@case
def bad_credentials_said_in_words(t):
    pw = os.path.join(t.mkdir("passwd"), "passwd")
    r = subprocess.run(["mosquitto_passwd", "-c", "-b", pw, "bridge", "right-one"],
                       capture_output=True, timeout=10)
    check(r.returncode == 0, "mosquitto_passwd failed: %s", r.stderr)
    with open(pw) as f:
        broker = conf_broker(t, ["password_file {dir}/passwd"], anonymous=False,
                             files={"passwd": f.read()})
    api = t.api()
    api.set("/doc", Reply.json({"v": 0}))
    # mosquitto answers a wrong password with "not authorized" (0x87 / 5)
    for version, want in (("5", "not authorized"), ("3.1.1", "not authorized")):
        secret = "wrong-secret-%s" % version
        cfg = t.config(broker.port, [doc_endpoint(api)], version=version,
                       mqtt={"username": "bridge", "password": secret})
        br = t.bridge(cfg, name="bridge-%s" % version)
        line = br.wait_log("mqtt connect failed", timeout=20)
        report(line)
        check(want in line and "mqtt.password" in line,
              "MQTT %s: the failure must say %r in words and point at mqtt.password: %s",
              version, want, line)
        check(" error " in line, "a failed connect is logged at error level: %s", line)
        check(not any(secret in l for l in br.log_lines()), "the password shows in the log")
        br.stop()
    # and the right password connects
    cfg = t.config(broker.port, [doc_endpoint(api)],
                   mqtt={"username": "bridge", "password": "right-one"})
    br = launch(t, broker, cfg, name="bridge-ok")
    br.stop()


@case
def connection_refused_said_in_words(t):
    port = free_port()  # nothing listens there
    api = t.api()
    api.set("/doc", Reply.json({"v": 0}))
    cfg = t.config(port, [doc_endpoint(api)],
                   mqtt={"url": "mqtt://user:pa55word@127.0.0.1:%d" % port})
    br = t.bridge(cfg)
    line = br.wait_log("mqtt connect failed")
    report(line)
    check("connection refused" in line, "the failure must say 'connection refused': %s", line)
    check(not any("pa55word" in l for l in br.log_lines()),
          "the URL's password shows in the log: %s",
          short([l for l in br.log_lines() if "pa55word" in l]))
    br.stop()
    bad = t.config(port, [doc_endpoint(api)],
                   mqtt={"url": "mqtt://no-such-host.invalid:%d" % port})
    br = t.bridge(bad, name="bridge-dns")
    line = br.wait_log("mqtt connect failed", timeout=30)
    report(line)
    check("DNS" in line, "an unknown host must be reported as a DNS failure: %s", line)
    br.stop()


@case
def tls_failures_said_in_words(t):
    d = t.mkdir("tls")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        os.path.join(d, "key.pem"), "-out", os.path.join(d, "cert.pem"),
                        "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost"],
                       capture_output=True, timeout=30)
    check(r.returncode == 0, "openssl could not make a certificate: %s", r.stderr[-300:])
    files = {}
    for name in ("cert.pem", "key.pem"):
        with open(os.path.join(d, name)) as f:
            files[name] = f.read()
    tls_port = free_port()
    broker = conf_broker(t, ["listener %d 127.0.0.1" % tls_port, "certfile {dir}/cert.pem",
                             "keyfile {dir}/key.pem"], files=files)
    wait_for(lambda: broker.log().count("Opening ipv4 listen socket") >= 2, 10,
             "the TLS listener")
    api = t.api()
    api.set("/doc", Reply.json({"v": 0}))
    ca = os.path.join(broker.dir, "cert.pem")
    for name, url, tls, want in (
            ("untrusted", "mqtts://localhost:%d" % tls_port, {},
             "certificate not trusted"),
            ("name", "mqtts://127.0.0.1:%d" % tls_port, {"ca_file": ca},
             "does not match the host name"),
            ("plain", "mqtts://127.0.0.1:%d" % broker.port, {"ca_file": ca},
             "did not answer with TLS but with plain MQTT")):
        mqtt = {"url": url}
        if tls:
            mqtt["tls"] = tls
        br = t.bridge(t.config(broker.port, [doc_endpoint(api)], mqtt=mqtt), name="bridge-" + name)
        line = br.wait_log("mqtt connect failed", timeout=20)
        report(line)
        check("TLS handshake failed" in line and want in line,
              "%s: the failure must say 'TLS handshake failed' and %r: %s", name, want, line)
        br.stop()
    # and with the right name and CA it connects
    br = t.bridge(t.config(broker.port, [doc_endpoint(api)],
                           mqtt={"url": "mqtts://localhost:%d" % tls_port, "tls": {"ca_file": ca}}),
                  name="bridge-ok")
    br.wait_log("mqtt connected", timeout=20)
    br.stop()


if __name__ == "__main__":
    raise SystemExit("run through run.py: run.py --bin PATH --case NAME")
