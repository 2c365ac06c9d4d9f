#!/usr/bin/env python3
"""A rest2mqtt consumer: persistent session, dedupe on source + id, state
rebuilt from the retained state topics.

    python3 consumer.py [--host H] [--port P] [--id NAME] [--prefix rest2mqtt]

Needs paho-mqtt (Debian: apt install python3-paho-mqtt; or pip install
paho-mqtt); works with paho-mqtt 1.6 and 2.x. Prints one line per message:

    state shipments/42 {"id":42,"stops":1}     a retained state topic (current item)
    state shipments/42 (deleted)               its empty retained message
    event rest2mqtt.item.updated rest2mqtt://edge-1/shipments 42 9f2c6b0e4d1a7c35
    duplicate rest2mqtt://edge-1/shipments 9f2c6b0e4d1a7c35
"""

import argparse
import collections
import json
import sys

import paho.mqtt.client as mqtt


class Consumer:
    def __init__(self, prefix, remember=100_000):
        self.prefix = prefix
        self.state = {}  # "endpoint/key" -> current item, from the state topics
        self.seen = collections.OrderedDict()  # (source, id), oldest first
        self.remember = remember

    def on_message(self, client, userdata, msg):
        if msg.topic == self.prefix + "/status":
            print("status", msg.payload.decode(), flush=True)
        elif msg.topic.endswith("/state"):  # state_topic: {prefix}/{endpoint}/{key}/state
            self.on_state(msg.topic[len(self.prefix) + 1:-len("/state")], msg.payload)
        else:
            self.on_event(json.loads(msg.payload))

    def on_state(self, name, payload):
        # rebuild: the retained message of each state topic is the current
        # item; an empty one means it was deleted
        if payload:
            self.state[name] = json.loads(payload)
            print("state", name, payload.decode(), flush=True)
        else:
            self.state.pop(name, None)
            print("state", name, "(deleted)", flush=True)

    def on_event(self, ev):
        # QoS 1 is at least once: a redelivery carries the same source + id
        key = (ev["source"], ev["id"])
        if key in self.seen:
            print("duplicate", ev["source"], ev["id"], flush=True)
            return
        self.seen[key] = True
        if len(self.seen) > self.remember:
            self.seen.popitem(last=False)
        print("event", ev["type"], ev["source"], ev.get("subject", "-"), ev["id"], flush=True)
        # ... act on ev["data"] here (ev["data"]["after"], ["patch"], ...)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=1883)
    ap.add_argument("--id", default="shipments-consumer", help="client id: names the session")
    ap.add_argument("--prefix", default="rest2mqtt", help="mqtt.topic_prefix of the bridge")
    args = ap.parse_args()
    c = Consumer(args.prefix)

    # a persistent session (clean_session=False + a fixed client id): the
    # broker keeps QoS 1 messages for us while we are away
    try:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=args.id,
                             clean_session=False)
    except AttributeError:  # paho-mqtt 1.x
        client = mqtt.Client(client_id=args.id, clean_session=False)

    def on_connect(client, userdata, flags, rc, properties=None):
        present = flags.session_present if hasattr(flags, "session_present") \
            else flags.get("session present")
        print("connected session_present=%d" % bool(present), flush=True)
        client.subscribe(args.prefix + "/#", qos=1)

    client.on_connect = on_connect
    client.on_message = c.on_message
    client.connect(args.host, args.port, keepalive=30)
    try:
        client.loop_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
