#!/usr/bin/env python3
"""A stand-in "legacy" REST API for the docker-compose demo (python3 stdlib only).

GET /shipments  ->  {"fetchedAt": "<now>", "data": [ {shipment}, ... ]}
GET /healthz    ->  ok

Where the shipments come from, checked on every request:

1. Override file. If $DEMO_FILE (default /data/shipments.json) exists, its
   content is the "data" list (or, when the file holds an object, the whole
   response). Edit it and the next poll sees the change:

     docker compose exec demo-api sh -c \
       'echo "[{\"id\":\"SHP-9\",\"status\":\"lost\"}]" > /data/shipments.json'

   A file that is not valid JSON is served as-is (rest2mqtt then logs a
   failed poll and keeps its previous snapshot). Delete the file to go back
   to the clock.

2. The clock (default). Time is cut into ticks of $DEMO_TICK_SECONDS
   (default 10; 0 freezes the list): tick = floor(unix_time / N). There are
   4 shipments, SHP-1001..SHP-1004, and at each tick exactly one of them
   moves one stop closer, round-robin (tick % 4 picks which):
   stops_away counts down 5, 4, 3, 2, 1, 0 ("delivered") and starts again at
   5 ("in transit"). The list is a pure function of the tick, so every
   replica and every restart serve the same thing at the same time, and a
   poller sees one change (one "updated" event) per tick.

Every item also carries "checkedAt" (the request time, different on each
request) and the response a top-level "fetchedAt": fields a poller must
ignore, as config/docker/rest2mqtt.yaml does.

Environment: DEMO_PORT (8080), DEMO_TICK_SECONDS (10), DEMO_FILE
(/data/shipments.json), DEMO_ACCESS_LOG (0; 1 logs every request).
"""
import json
import os
import signal
import sys
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(os.environ.get("DEMO_PORT", "8080"))
TICK = float(os.environ.get("DEMO_TICK_SECONDS", "10"))
FILE = os.environ.get("DEMO_FILE", "/data/shipments.json")
ACCESS_LOG = os.environ.get("DEMO_ACCESS_LOG", "0") not in ("", "0")
N_SHIPMENTS = 4
STOPS = 6  # stops_away cycles 5..0


def iso(t):
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def generated(now):
    tick = int(now // TICK) if TICK > 0 else 0
    items = []
    for k in range(N_SHIPMENTS):
        # how many ticks in [0, tick] picked shipment k (tick % 4 == k)
        moves = (tick - k) // N_SHIPMENTS + 1 if tick >= k else 0
        stops = (STOPS - 1) - moves % STOPS
        items.append({
            "id": "SHP-%d" % (1001 + k),
            "destination": ["Hamburg", "Lyon", "Porto", "Oslo"][k],
            "status": "delivered" if stops == 0 else "in transit",
            "stops_away": stops,
            "checkedAt": iso(now),
        })
    return items


class Handler(BaseHTTPRequestHandler):
    server_version = "demo-legacy-api/1"

    def reply(self, code, body, ctype="application/json"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            return self.reply(200, b"ok\n", "text/plain")
        if path not in ("/shipments", "/api/shipments"):
            return self.reply(404, b'{"error":"not found"}')
        now = time.time()
        try:
            with open(FILE, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            raw = None
        if raw is None:
            doc = {"fetchedAt": iso(now), "data": generated(now)}
        else:
            try:
                data = json.loads(raw)
            except ValueError:
                return self.reply(200, raw)  # broken on purpose: served as-is
            doc = data if isinstance(data, dict) else {"fetchedAt": iso(now), "data": data}
        self.reply(200, json.dumps(doc, indent=1).encode() + b"\n")

    do_HEAD = do_GET

    def log_message(self, fmt, *args):
        if ACCESS_LOG:
            sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

    def log_error(self, fmt, *args):
        sys.stderr.write("%s error: %s\n" % (self.address_string(), fmt % args))


if __name__ == "__main__":
    # As PID 1 in a container, SIGTERM is ignored unless handled. Stop at once,
    # with status 0 (also on Ctrl-C), so restart: on-failure leaves it stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    src = FILE if os.path.exists(FILE) else "clock, tick %gs" % TICK
    print("demo API on :%d/shipments (source: %s; override file %s)" % (PORT, src, FILE),
          file=sys.stderr, flush=True)
    ThreadingHTTPServer(("", PORT), Handler).serve_forever()
