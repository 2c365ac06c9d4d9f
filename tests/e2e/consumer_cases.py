"""End-to-end cases for the consumer examples of README "Consuming events"
(docs/consumers/python/consumer.py, docs/consumers/node/consumer.js), each
run against a real bridge, mosquitto and the fake API. Imported by run.py
(every tests/e2e/*_cases.py is), which owns the case registry and runner.

What each example must show, by the lines it prints:
  state     at connect, the retained state topics give the current items
  event     a change made in the API arrives once, with its source and id
  duplicate the same event published again (a QoS 1 redelivery) is dropped
            by source + id
  session   with the same client id, what was published while the consumer
            was away arrives when it comes back (a persistent session)

Python needs paho-mqtt (Debian python3-paho-mqtt, for /usr/bin/python3);
Node needs mqtt.js, installed by .ci/install-deps into
$R2M_CONSUMER_NODE_DIR. Either missing fails its case and says so.
"""

import json
import os
import shutil
import subprocess

from fakeapi import Reply
from harness import MOSQUITTO_PUB, Failure, Proc, check, check_eq, short, wait_for
from ops_cases import launch
from run import case

HERE = os.path.dirname(os.path.abspath(__file__))
DOCS = os.path.join(HERE, "..", "..", "docs", "consumers")
NODE_DIR = os.environ.get("R2M_CONSUMER_NODE_DIR") or os.path.expanduser(
    "~/.cache/rest2mqtt-consumer-node")


def python_with_paho():
    """A python3 that can import paho.mqtt: Debian's module is for
    /usr/bin/python3, which need not be the python3 first on PATH."""
    for py in ("/usr/bin/python3", shutil.which("python3")):
        if py and os.path.exists(py) and subprocess.run(
                [py, "-c", "import paho.mqtt.client"], capture_output=True).returncode == 0:
            return py
    raise Failure("no python3 with paho-mqtt: apt-get install -y python3-paho-mqtt "
                  "(.ci/install-deps installs it)")


def python_consumer():
    return [python_with_paho(), os.path.join(DOCS, "python", "consumer.py")], None


def node_consumer():
    node = shutil.which("node")
    check(node is not None, "node not found: install Node.js 18+ (the Node consumer example)")
    mods = os.path.join(NODE_DIR, "node_modules")
    check(os.path.isfile(os.path.join(mods, "mqtt", "package.json")), "mqtt.js not found in "
          "%s: run .ci/install-deps (it installs the pinned mqtt.js there)", mods)
    return [node, os.path.join(DOCS, "node", "consumer.js")], dict(os.environ, NODE_PATH=mods)


class Consumer:
    """One run of a consumer example, its stdout read line by line."""

    def __init__(self, t, lang, argv, env, port, client_id, run):
        self.proc = Proc("consumer-%s-%d" % (lang, run), argv + [
            "--port", str(port), "--id", client_id], t.tmp, env=env)
        t.procs.append(self.proc)
        t.defer(self.proc.kill)

    def lines(self):
        return self.proc.stdout_text().splitlines()

    def wait_line(self, want, what, timeout=10.0):
        """Waits for a line for which want(line) is true; returns it."""
        def find():
            return next((ln for ln in self.lines() if want(ln)), None)
        try:
            return wait_for(find, timeout, what, alive=(self.proc,))
        except Failure as e:
            raise Failure("%s; the consumer printed:\n%s\nstderr:\n%s" % (
                e, "\n".join(self.lines()[-20:]), "\n".join(self.proc.stderr_lines()[-20:])))


def state_of(lines, name):
    """The last state the consumer printed for name: an item, None
    (deleted) or the string "absent"."""
    last = "absent"
    for ln in lines:
        parts = ln.split(" ", 2)
        if len(parts) == 3 and parts[0] == "state" and parts[1] == name:
            last = None if parts[2] == "(deleted)" else json.loads(parts[2])
    return last


def consumer_walkthrough(t, lang, make_argv):
    argv, env = make_argv()  # fails first when the language's tools are missing
    broker = t.broker()
    sub = t.subscriber(broker)
    api = t.api()
    items = [{"id": 1, "stops": 3}, {"id": 2, "stops": 5}]
    api.set("/shipments", Reply.json({"data": items}))
    cfg = t.config(broker.port, [{
        "name": "shipments", "url": api.url("/shipments"), "items": "/data", "key": "/id",
        "state_topic": "{prefix}/{endpoint}/{key}/state"}])
    br = launch(t, broker, cfg)
    sub.wait_events(2, alive=(br,))  # the baseline's retained state topics
    cid = "consumer-e2e-%s-%d" % (lang, os.getpid())

    # 1. state rebuilt from the retained state topics
    c = Consumer(t, lang, argv, env, broker.port, cid, 1)
    c.wait_line(lambda ln: ln == "connected session_present=0", "the consumer to connect")
    for it in items:
        name = "shipments/%d" % it["id"]
        c.wait_line(lambda ln, n=name: ln.startswith("state %s " % n), "state of " + name)
        check_eq(state_of(c.lines(), name), it, "state of %s rebuilt from its retained topic"
                 % name)

    # 2. a change arrives as an event, once
    api.set("/shipments", Reply.json({"data": [{"id": 1, "stops": 1}, items[1]]}))
    ev_msg = wait_for(lambda: next((m for m in sub.events()
                                    if m.topic == "rest2mqtt/shipments/1/updated"), None),
                      10, "the bridge to publish rest2mqtt/shipments/1/updated", alive=(br,))
    ev = ev_msg.json()
    line = "event rest2mqtt.item.updated %s 1 %s" % (ev["source"], ev["id"])
    c.wait_line(lambda ln: ln == line, "the consumer to print %r" % line)
    c.wait_line(lambda ln: ln == 'state shipments/1 {"id":1,"stops":1}',
                "the consumer to print the new state of shipments/1")

    # 3. the same event again (what a QoS 1 redelivery looks like): dropped
    r = subprocess.run([MOSQUITTO_PUB, "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1",
                        "-t", ev_msg.topic, "-s"], input=ev_msg.payload, capture_output=True,
                       timeout=10)
    check(r.returncode == 0, "mosquitto_pub failed: %s", r.stderr)
    dup = "duplicate %s %s" % (ev["source"], ev["id"])
    c.wait_line(lambda ln: ln == dup, "the consumer to print %r" % dup)
    check_eq(c.lines().count(line), 1, "times the consumer acted on event %s" % ev["id"])

    # 4. away and back with the same client id: the session kept the events
    c.proc.kill()
    api.set("/shipments", Reply.json({"data": [{"id": 1, "stops": 1}]}))
    gone = wait_for(lambda: next((m for m in sub.events()
                                  if m.topic == "rest2mqtt/shipments/2/deleted"), None),
                    10, "the bridge to publish rest2mqtt/shipments/2/deleted", alive=(br,))
    gone_ev = gone.json()
    c2 = Consumer(t, lang, argv, env, broker.port, cid, 2)
    c2.wait_line(lambda ln: ln == "connected session_present=1",
                 "the consumer to reconnect to its session")
    line2 = "event rest2mqtt.item.deleted %s 2 %s" % (gone_ev["source"], gone_ev["id"])
    c2.wait_line(lambda ln: ln == line2, "the event published while the consumer was away "
                 "(%r)" % line2)
    c2.wait_line(lambda ln: ln.startswith("state shipments/1 "), "state of shipments/1 again")
    check_eq(state_of(c2.lines(), "shipments/1"), {"id": 1, "stops": 1},
             "state of shipments/1 after the restart")
    check(state_of(c2.lines(), "shipments/2") in (None, "absent"), "shipments/2 was deleted "
          "but the consumer's state has it: %s", short(c2.lines()))
    br.stop()


@case
def consumer_example_python(t):
    consumer_walkthrough(t, "python", python_consumer)


@case
def consumer_example_node(t):
    consumer_walkthrough(t, "node", node_consumer)
