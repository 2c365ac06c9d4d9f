"""End-to-end cases for a hostile or flaky broker and an unlucky operator.
Imported by run.py (every tests/e2e/*_cases.py is).

HostileBroker speaks just enough MQTT (3.1.1 and 5) to be scripted: what it
announces in CONNACK (Receive Maximum, Maximum Packet Size), which PUBACK
reason code a topic gets, whether it answers at all, when it drops the
connection. It records every PUBLISH it receives, per connection.
"""

import json
import os
import socket
import struct
import threading
import time

from fakeapi import Reply
from harness import check, check_eq, wait_for
from run import case, doc_endpoint


def report(line):
    print("  %s" % line, flush=True)


def _varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


class Publish:
    def __init__(self, conn, topic, pid, qos, retain, dup, payload, size):
        self.conn = conn
        self.topic = topic
        self.pid = pid
        self.qos = qos
        self.retain = retain
        self.dup = dup
        self.payload = payload
        self.size = size  # the whole packet, fixed header included
        self.time = time.monotonic()

    def json(self):
        return json.loads(self.payload.decode("utf-8"))

    def __repr__(self):
        return "Publish(conn=%d, %s, pid=%d, %dB)" % (self.conn, self.topic, self.pid, self.size)


class HostileBroker:
    """A scripted MQTT broker on a loopback port.

    connack      False: never answer CONNECT
    receive_max  MQTT 5 CONNACK Receive Maximum (None: not sent)
    max_packet   MQTT 5 CONNACK Maximum Packet Size (None: not sent)
    reason_for   fn(Publish) -> PUBACK reason code (MQTT 5), or None: no PUBACK
    drop_after   close the connection after this many PUBLISHes (None: never)
    drop_first   close the first this many connections right after CONNACK
    disconnect_code  MQTT 5: the dropped connections (drop_first) get a
                 DISCONNECT with this reason code first
    stray_pubacks  also PUBACK a packet id that is not in flight, and the
                 same one twice
    """

    def __init__(self, connack=True, receive_max=None, max_packet=None, reason_for=None,
                 drop_after=None, drop_first=0, stray_pubacks=False, disconnect_code=None):
        self.drop_first = drop_first
        self.disconnect_code = disconnect_code
        self.stray_pubacks = stray_pubacks
        self.connack = connack
        self.receive_max = receive_max
        self.max_packet = max_packet
        self.reason_for = reason_for or (lambda p: 0)
        self.drop_after = drop_after
        self.lock = threading.Lock()
        self.publishes = []
        self.connects = []  # (monotonic time, protocol level)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self._conns = []
        self._t = threading.Thread(target=self._accept, daemon=True)
        self._t.start()

    def _accept(self):
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self._conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    @staticmethod
    def _read_packet(c):
        h = c.recv(1)
        if not h:
            return None
        n, mult = 0, 1
        while True:
            b = c.recv(1)
            if not b:
                return None
            n += (b[0] & 0x7F) * mult
            mult *= 128
            if not b[0] & 0x80:
                break
        body = b""
        while len(body) < n:
            chunk = c.recv(n - len(body))
            if not chunk:
                return None
            body += chunk
        return h[0], body, 1 + len(_varint(n)) + n

    def _serve(self, c):
        version = 4
        conn = None
        count = 0
        try:
            while not self._stop:
                p = self._read_packet(c)
                if p is None:
                    break
                typ, body, size = p
                kind = typ >> 4
                if kind == 1:  # CONNECT
                    version = body[6]
                    with self.lock:
                        self.connects.append((time.monotonic(), version))
                        conn = len(self.connects)
                    if not self.connack:
                        continue
                    if version == 5:
                        props = b""
                        if self.receive_max is not None:
                            props += b"\x21" + struct.pack(">H", self.receive_max)
                        if self.max_packet is not None:
                            props += b"\x27" + struct.pack(">I", self.max_packet)
                        v = b"\x00\x00" + _varint(len(props)) + props
                    else:
                        v = b"\x00\x00"
                    c.sendall(b"\x20" + _varint(len(v)) + v)
                    if conn <= self.drop_first:
                        if self.disconnect_code is not None and version == 5:
                            time.sleep(0.2)
                            c.sendall(b"\xe0\x02" + bytes([self.disconnect_code, 0]))
                        break
                elif kind == 3:  # PUBLISH
                    qos = (typ >> 1) & 3
                    tl = struct.unpack(">H", body[:2])[0]
                    topic = body[2:2 + tl].decode("utf-8")
                    i = 2 + tl
                    pid = 0
                    if qos:
                        pid = struct.unpack(">H", body[i:i + 2])[0]
                        i += 2
                    if version == 5:
                        pl, mult = 0, 1
                        while True:
                            b = body[i]
                            i += 1
                            pl += (b & 0x7F) * mult
                            mult *= 128
                            if not b & 0x80:
                                break
                        i += pl
                    pub = Publish(conn, topic, pid, qos, typ & 1, (typ >> 3) & 1, body[i:], size)
                    with self.lock:
                        self.publishes.append(pub)
                    count += 1
                    rc = self.reason_for(pub)
                    if qos and self.stray_pubacks:
                        stray = struct.pack(">H", (pid + 30000) % 65536 or 1)
                        c.sendall((b"\x40\x03" + stray + b"\x00") if version == 5
                                  else (b"\x40\x02" + stray))
                    if qos and rc is not None:
                        if version == 5:
                            c.sendall(b"\x40\x03" + struct.pack(">HB", pid, rc))
                        else:
                            c.sendall(b"\x40\x02" + struct.pack(">H", pid))
                    if self.drop_after is not None and count >= self.drop_after:
                        break
                elif kind == 12:  # PINGREQ
                    c.sendall(b"\xd0\x00")
                elif kind == 14:  # DISCONNECT
                    break
        except OSError:
            pass
        try:
            c.close()
        except OSError:
            pass

    def pubs(self, prefix="rest2mqtt/"):
        with self.lock:
            return [p for p in self.publishes if p.topic.startswith(prefix)]

    def stop(self):
        self._stop = True
        self._t.join(2)
        self.sock.close()
        for c in self._conns:
            try:
                c.close()
            except OSError:
                pass


def hostile(t, **kw):
    b = HostileBroker(**kw)
    t.defer(b.stop)
    return b


# ---------------------------------------------------------------------------
# Bursts: a denied topic, Receive Maximum 1, a broker dropping connections


def burst_endpoints(api, n_eps, n_items, v):
    for e in range(n_eps):
        api.set("/c%d" % e, Reply.json([{"id": i, "v": v} for i in range(n_items)]))


def check_burst(fb, n_eps, n_items, rounds, denied):
    """Every event but the denied topic's arrived; within a connection none
    twice after its PUBACK; per endpoint in commit order."""
    pubs = [p for p in fb.pubs() if p.topic != "rest2mqtt/status"]
    acked_in_conn = {}
    last = {}
    t0 = fb.connects[0][0]
    for p in pubs:
        ev = p.json()
        key = (p.conn, ev["id"])
        first = acked_in_conn.get(key)
        check(first is None, "event %s (%s) sent again on connection %d after its PUBACK "
              "(pid %d at %.3f s, then pid %d dup %d at %.3f s)", ev["id"], p.topic, p.conn,
              first and first.pid, first and first.time - t0, p.pid, p.dup, p.time - t0)
        acked_in_conn[key] = p
        ep = p.topic.split("/")[1]
        order = (ev["data"]["after"]["v"], ev["subject"].encode())
        if p.conn == last.get(ep, (0, None))[0] and not p.dup:
            check(order > last[ep][1], "%s: %s sent after %s on connection %d: %s", ep, order,
                  last[ep][1], p.conn, [(q.topic, q.json()["data"]["after"]["v"], q.pid, q.dup)
                                        for q in pubs if q.conn == p.conn])
        last[ep] = (p.conn, order)
    got = {}
    for p in pubs:
        got.setdefault((p.topic, p.json()["data"]["after"]["v"]), 0)
        got[(p.topic, p.json()["data"]["after"]["v"])] += 1
    want = {("rest2mqtt/c%d/%d/updated" % (e, i), v) for e in range(n_eps)
            for i in range(n_items) for v in range(1, rounds + 1)}
    missing = sorted(w for w in want if w not in got and w[0] != denied)
    check(not missing, "%d events never sent, e.g. %s", len(missing), missing[:5])


def timeline(fb):
    if not os.environ.get("R2M_TIMELINE"):
        return
    t0 = fb.connects[0][0]
    for i, (ct, _) in enumerate(fb.connects):
        ps = [p for p in fb.publishes if p.conn == i + 1]
        report("conn %d at %.2f: %d publishes %s" % (
            i + 1, ct - t0, len(ps), ["%.2f" % (p.time - t0) for p in ps]))


def burst_case(t, n_eps=4, n_items=250, rounds=2, denied="rest2mqtt/c1/7/updated", timeout=30,
               **kw):
    fb = hostile(t, reason_for=lambda p: 0x87 if p.topic == denied else 0, **kw)
    api = t.api()
    burst_endpoints(api, n_eps, n_items, 0)
    eps = [{"name": "c%d" % e, "url": api.url("/c%d" % e), "items": "", "key": "/id"}
           for e in range(n_eps)]
    cfg = t.config(fb.port, eps, mqtt={"status_topic": "{prefix}/status"})
    br = t.bridge(cfg)
    paths = ["/c%d" % e for e in range(n_eps)]
    t.settle(api, paths, alive=(br,))
    for v in range(1, rounds + 1):
        burst_endpoints(api, n_eps, n_items, v)
        t.settle(api, paths, alive=(br,))
    want = n_eps * n_items * rounds
    try:
        wait_for(lambda: len({(p.topic, p.payload) for p in fb.pubs()
                              if p.topic != "rest2mqtt/status"}) >= want, timeout,
                 "%d distinct events" % want, alive=(br,))
    finally:
        timeline(fb)
    br.stop()
    check_burst(fb, n_eps, n_items, rounds, denied)
    refused = [l for l in br.log_lines() if "refused by the broker for good" in l]
    check_eq(len(refused), rounds, "refusal lines: %s" % refused)
    report("%d publishes over %d connections" % (len(fb.pubs()), len(fb.connects)))
    return fb, br


@case
def broker_denies_one_topic_in_a_burst(t):
    # 1000 events of 4 endpoints; one topic gets PUBACK 0x87 each round
    burst_case(t, n_items=125)


@case
def broker_denies_one_topic_receive_maximum_1(t):
    burst_case(t, n_eps=3, n_items=60, receive_max=1)


@case
def broker_sends_stray_pubacks(t):
    # a PUBACK for a packet id not in flight before every real one
    burst_case(t, n_eps=2, n_items=50, stray_pubacks=True)


@case
def broker_drops_connection_every_60_publishes(t):
    # the broker PUBACKs and closes after every 60th PUBLISH: paho keeps the
    # publishes it had not written yet and would send them on the next
    # connection too, besides the bridge's own resend of them
    fb, br = burst_case(t, n_eps=2, n_items=25, drop_after=60, timeout=40)
    # a dropped connection is one line (rate limited), not one per message
    # that was in flight, nor "refused by client library"
    lines = br.log_lines()
    noise = [l for l in lines if "will resend" in l and ("code=-11" in l or "code=-3" in l)
             or "refused by client library" in l]
    check(not noise, "%d lines about messages of a dropped connection, e.g. %s", len(noise),
          noise[:3])
    lost = [l for l in lines if "mqtt connection lost" in l]
    check(lost and len(lost) <= len(fb.connects),
          "one (rate limited) line per dropped connection: %d lines, %d connections", len(lost),
          len(fb.connects))


# ---------------------------------------------------------------------------
# The status message


@case
def status_online_once_after_flapping_connections(t):
    """A broker that drops the first connections right after CONNACK: each
    connection queues the retained "online" status message; the ones that
    never went out must not pile up (one per reconnect), count as events
    waiting in the outbox, hold up a graceful stop or be published in a
    heap once the broker works."""
    from harness import free_port
    from ops_cases import scrape
    fb = hostile(t, drop_first=3)
    api = t.api()
    api.set("/doc", Reply.json({"v": 0}))
    port = free_port()
    cfg = t.config(fb.port, [doc_endpoint(api)], mqtt={"status_topic": "{prefix}/status"},
                   metrics={"listen": "127.0.0.1:%d" % port}, shutdown_timeout="8s")
    br = t.bridge(cfg)
    wait_for(lambda: len(fb.connects) >= 3, 20, "3 dropped connections", alive=(br,))
    check_eq(scrape(port).value("rest2mqtt_outbox_events"), 0,
             "rest2mqtt_outbox_events while no event was committed (status messages are not "
             "events of the outbox)")
    wait_for(lambda: fb.pubs("rest2mqtt/status"), 20, "the status message", alive=(br,))
    t.settle(api, ["/doc"], alive=(br,))
    api.set("/doc", Reply.json({"v": 1}))
    wait_for(lambda: fb.pubs("rest2mqtt/doc"), 10, "the event", alive=(br,))
    status = [(p.conn, p.payload) for p in fb.pubs("rest2mqtt/status")]
    check_eq(status, [(4, b"online")], "status messages published (connection, payload)")
    took = br.stop(timeout=15)
    check(took < 5, "a graceful stop with nothing to deliver took %.1f s", took)
    check(not any("shutdown_timeout reached" in l for l in br.log_lines()),
          "no event waited at the stop: %s",
          [l for l in br.log_lines() if "shutdown_timeout" in l])
    check_eq([(p.conn, p.payload) for p in fb.pubs("rest2mqtt/status")],
             [(4, b"online"), (4, b"offline")], "status messages at the end")


@case
def status_message_does_not_hold_up_stop_while_broker_down(t):
    """The broker drops every connection: the queued "online" is not an
    event; a graceful stop must not wait shutdown_timeout for it nor claim
    that events stay in the outbox."""
    fb = hostile(t, drop_first=1000)
    api = t.api()
    api.set("/doc", Reply.json({"v": 0}))
    cfg = t.config(fb.port, [doc_endpoint(api)], mqtt={"status_topic": "{prefix}/status"},
                   shutdown_timeout="8s")
    br = t.bridge(cfg)
    wait_for(lambda: len(fb.connects) >= 2, 20, "2 dropped connections", alive=(br,))
    took = br.stop(timeout=15)
    lies = [l for l in br.log_lines() if "shutdown_timeout reached" in l]
    check(not lies, "the stop claims events stay in the outbox: %s", lies)
    check(took < 5, "a graceful stop with nothing in the outbox took %.1f s", took)


if __name__ == "__main__":
    raise SystemExit("run through run.py: run.py --bin PATH --case NAME")


# ---------------------------------------------------------------------------
# The operator


@case
def poll_with_more_events_than_outbox_max_says_so(t):
    """One poll whose change is more events than state.outbox_max can ever
    hold: it cannot be committed, now or later, whatever the broker does.
    The log must say that and what to change - not "outbox full ... will be
    delivered by a later poll" - and after a restart with a larger
    outbox_max the change is delivered."""
    from harness import Broker
    from ops_cases import launch
    broker = Broker(t).start()
    sub = t.subscriber(broker)
    api = t.api()
    items = lambda v: [{"id": i, "v": v} for i in range(5)]  # noqa: E731
    api.set("/items", Reply.json(items(0)))
    cfg = t.config(broker.port, [{"name": "items", "url": api.url("/items"), "items": "",
                                  "key": "/id"}],
                   state={"path": t.path("state.db"), "outbox_max": 3})
    br = launch(t, broker, cfg)
    t.settle(api, ["/items"], alive=(br,))
    api.set("/items", Reply.json(items(1)))
    line = br.wait_log("poll failed")
    report(line)
    check("state.outbox_max" in line and "5 events" in line and "later poll" not in line,
          "the failed poll must say that its 5 events exceed state.outbox_max (and not that "
          "a later poll delivers them): %s", line)
    check(not any("outbox full:" in l for l in br.log_lines()),
          "nothing waits for the broker, yet 'outbox full' was logged: %s",
          [l for l in br.log_lines() if "outbox full:" in l])
    br.stop()
    check_eq(sub.events(), [], "events while the change cannot be committed")
    cfg["state"]["outbox_max"] = 10
    br = launch(t, broker, cfg, name="bridge-2")
    sub.wait_events(5, alive=(br,))
    br.stop()


@case
def state_commands_on_a_missing_state_file(t):
    """`state list/prune/dead-letters` read a state file; pointed at one
    that does not exist (a wrong -c, a typo in state.path) they must say so
    and fail, not create an empty file and report "0 dead letters"."""
    api = t.api()
    path = t.path("missing.db")
    cfg = t.config(1, [doc_endpoint(api)], state={"path": path})
    cfg_path = t.write_config(cfg, "missing.yaml")
    for args in (["dead-letters"], ["dead-letters", "--requeue"], ["dead-letters", "--json"],
                 ["list"], ["prune"]):
        r = t.run_cli(["state"] + args + ["-c", cfg_path])
        err = r.stderr.decode()
        check_eq(r.returncode, 2, "exit code of state %s on a missing file" % " ".join(args))
        check("does not exist" in err and path in err,
              "state %s must say that %s does not exist: %s", " ".join(args), path, err)
        check(not os.path.exists(path), "state %s created %s", " ".join(args), path)


def small_disk(t, size="2M"):
    """A tmpfs of `size` (root only); None if it cannot be mounted."""
    import subprocess
    d = t.mkdir("smalldisk")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", d],
                       capture_output=True)
    if r.returncode:
        return None
    t.defer(lambda: subprocess.run(["umount", "-l", d], capture_output=True))
    return d


@case
def disk_full_while_events_commit(t):
    """The state file's disk fills up while endpoints change: polls fail
    (rate limited), acknowledged events cannot be deleted (rate limited),
    nothing is lost, and everything flows again once there is space."""
    from harness import Broker
    from ops_cases import launch
    d = small_disk(t)
    if d is None:
        report("cannot mount a tmpfs here; skipped")
        return
    broker = Broker(t).start()
    sub = t.subscriber(broker)
    api = t.api()
    items = lambda v: [{"id": i, "v": v, "pad": "x" * 200} for i in range(40)]  # noqa: E731
    api.set("/items", Reply.json(items(0)))
    api.set("/doc", Reply.json({"v": 0}))
    cfg = t.config(broker.port, [{"name": "items", "url": api.url("/items"), "items": "",
                                  "key": "/id"}, doc_endpoint(api)],
                   state={"path": os.path.join(d, "state.db")},
                   defaults={"interval": "200ms", "timeout": "2s", "jitter": "0%",
                             "max_backoff": "1s"})
    br = launch(t, broker, cfg)
    t.settle(api, ["/items", "/doc"], alive=(br,))
    filler = os.path.join(d, "filler")
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    api.set("/items", Reply.json(items(5)))
    api.set("/doc", Reply.json({"v": 5}))
    wait_for(lambda: len([l for l in br.log_lines() if "disk is full" in l]) >= 6, 20,
             "polls failing on the full disk", alive=(br,))
    full = [l for l in br.log_lines() if "disk is full" in l]
    counts = [int(l.rsplit("consecutive=", 1)[1].split()[0]) for l in full]
    check(all(c & (c - 1) == 0 for c in counts), "repeats are rate limited (1, 2, 4, ...): %s",
          counts)
    os.unlink(filler)
    wait_for(lambda: any(m.topic == "rest2mqtt/doc" and m.json()["data"]["after"]["v"] == 5
                         for m in sub.events()), 20, "the last doc event", alive=(br,))
    wait_for(lambda: {(m.topic, m.json()["data"]["after"]["v"]) for m in sub.events()} >=
             {("rest2mqtt/items/%d/updated" % i, 5) for i in range(40)}, 20,
             "the last items events", alive=(br,))
    t.settle(api, ["/items", "/doc"], alive=(br,))
    br.stop()
    ids = [m.json()["id"] for m in sub.events()]
    check_eq(len(ids), len(set(ids)), "events (each id once)")
    check_eq(len(ids), 41, "events: 40 items and the document, each once")


@case
def requeue_while_running_and_while_still_denied(t):
    """--requeue while the bridge holds the file: a clear refusal, nothing
    changed. Requeued while the broker still denies the topic: refused
    again once at the next start (one log line, one row), not in a loop."""
    from broker_cases import dead_letter_rows
    denied = "rest2mqtt/doc"
    fb = hostile(t, reason_for=lambda p: 0x87 if p.topic == denied else 0)
    api = t.api()
    api.set("/doc", Reply.json({"v": 0}))
    cfg = t.config(fb.port, [doc_endpoint(api)])
    br = t.bridge(cfg)
    t.settle(api, ["/doc"], alive=(br,))
    api.set("/doc", Reply.json({"v": 1}))
    br.wait_log("refused by the broker for good")
    r = t.run_cli(["state", "dead-letters", "--requeue", "-c", br.config_path])
    err = r.stderr.decode()
    check(r.returncode == 2 and "another rest2mqtt process" in err,
          "--requeue while the bridge runs: exit 2 and who holds the file, got %d: %s",
          r.returncode, err)
    br.stop()
    check_eq(len(dead_letter_rows(t, br.config_path)), 1, "dead letters after the refusal")
    for n in (1, 0):
        r = t.run_cli(["state", "dead-letters", "--requeue", "-c", br.config_path])
        check("requeued %d dead letter" % n in r.stdout.decode(), "--requeue must say %d: %s",
              n, r.stdout.decode())
    sent = len(fb.pubs(denied))
    br = t.bridge(cfg, name="bridge-2")
    br.wait_log("refused by the broker for good")
    t.settle(api, ["/doc"], alive=(br,))
    check_eq(len([l for l in br.log_lines() if "refused by the broker for good" in l]), 1,
             "refusals of the requeued event")
    check_eq(len(fb.pubs(denied)), sent + 1, "sends of the requeued event")
    br.stop()
    check_eq(len(dead_letter_rows(t, br.config_path)), 1, "dead letters at the end")


@case
def broker_disconnect_reason_said_in_words(t):
    """MQTT 5: a broker says why it closes a connection (DISCONNECT with a
    reason code; 0x8E: another client with the same mqtt.client_id took
    the session over - a classic deployment mistake). The bridge must see
    the connection is gone and reconnect, even with nothing to publish
    (paho 1.3.12 does not call connectionLost after a server DISCONNECT),
    and the log must say why. (mosquitto 2.0.11 closes without DISCONNECT
    on a takeover, but sends one for a packet over max_packet_size, and
    other brokers send 0x8E; a scripted broker does here.)"""
    fb = hostile(t, drop_first=1, disconnect_code=0x8E)
    api = t.api()
    api.set("/doc", Reply.json({"v": 0}))
    cfg = t.config(fb.port, [doc_endpoint(api)])
    br = t.bridge(cfg)
    line = br.wait_log("mqtt connection")
    report(line)
    check("session taken over" in line and "mqtt.client_id" in line and "code=142" in line,
          "the log must say that another client took the session over (0x8E): %s", line)
    wait_for(lambda: len(fb.connects) >= 2, 10, "the reconnection", alive=(br,))
    br.stop()


@case
def broker_normal_disconnect_is_noticed(t):
    """MQTT 5 DISCONNECT with reason 0 from the broker: the connection is
    over; an idle bridge must notice and reconnect, not report itself
    connected to a closed socket."""
    fb = hostile(t, drop_first=1, disconnect_code=0)
    api = t.api()
    api.set("/doc", Reply.json({"v": 0}))
    cfg = t.config(fb.port, [doc_endpoint(api)])
    br = t.bridge(cfg)
    wait_for(lambda: len(fb.connects) >= 2, 10, "the reconnection", alive=(br,))
    check(any("normal disconnection" in l for l in br.log_lines()),
          "the log must say that the broker ended the connection: %s", br.log_lines())
    br.stop()


@case
def v311_broker_dropping_an_oversized_event_is_explained(t):
    """MQTT 3.1.1 has no way to announce or refuse a packet size: mosquitto
    with max_packet_size just closes the connection, on every resend, and
    delivery stops behind that event until mqtt.max_packet_size is set
    (README). The log must point there, naming the event, instead of only
    "the broker closed the connection soon after accepting it"."""
    from broker_cases import conf_broker
    broker = conf_broker(t, ["max_packet_size 3000"])
    api = t.api()
    api.set("/big", Reply.json({"v": 0, "blob": ""}))
    cfg = t.config(broker.port, [doc_endpoint(api, "big")], version="3.1.1",
                   shutdown_timeout="1s")
    br = t.bridge(cfg)
    t.settle(api, ["/big"], alive=(br,))
    api.set("/big", Reply.json({"v": 1, "blob": "x" * 8000}))
    line = br.wait_log("oldest unacknowledged", timeout=20)
    report(line)
    check("mqtt.max_packet_size" in line and "topic=rest2mqtt/big" in line
          and int(line.split(" size=")[1].split()[0]) > 8000,
          "the hint must name mqtt.max_packet_size, the topic and the size: %s", line)
    br.stop()
