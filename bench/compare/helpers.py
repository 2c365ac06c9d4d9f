#!/usr/bin/env python3
"""Helpers of bench/compare/run: test data, configs, the Node-RED flow, log analysis and the
final table. Standard library only. Each subcommand prints plain text for the bash script.

nginx's access log format (set by run):  $msec $request_time $status $body_bytes_sent
$request_uri "$http_user_agent"   ($msec: wall clock, ms resolution, written when the
response has been sent; $request_time: seconds since the first byte of the request)
"""
import argparse
import json
import math
import os
import random
import sys
import time


# ---- test data -------------------------------------------------------------------------

def doc_text(i, rev):
    """A ~0.5 KB JSON document; `rev` is the field that changes."""
    d = {
        "id": i,
        "name": "sensor-%05d" % i,
        "site": "plant-%d" % (i % 17),
        "status": "ok",
        "rev": rev,
        "unit": "celsius",
        "reading": {"value": round(20 + (i % 100) / 10, 1), "min": 12.5, "max": 31.25,
                    "samples": 3600 + i % 60},
        "location": {"lat": 48.137154, "lon": 11.576124, "floor": i % 9,
                     "room": "R-%03d" % (i % 400)},
        "tags": ["bench", "static", "loopback", "json", "rest2mqtt"],
        "firmware": "1.4.2",
        "updated": "2024-01-01T00:00:00Z",
    }
    s = json.dumps(d, separators=(",", ":"))
    pad = 500 - len(s) - len(',"notes":""')
    d["notes"] = "x" * max(pad, 0)
    return json.dumps(d, separators=(",", ":")) + "\n"


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)  # nginx never serves half a file


def cmd_docs(a):
    d = os.path.join(a.root, "d")
    os.makedirs(d, exist_ok=True)
    for i in range(1, a.n + 1):
        write_atomic(os.path.join(d, "%d.json" % i), doc_text(i, 0))
    print(len(doc_text(1, 0)))


def cmd_changes(a):
    """Rewrites documents at known times; prints "unix_time index" per change (the time
    taken right after the rename that made the new content visible)."""
    rng = random.Random(a.seed)
    ids = rng.sample(range(1, a.n + 1), a.count)
    out = open(a.out, "a")
    t_start = time.time()
    for k, i in enumerate(ids):
        due = t_start + a.start + (k // a.burst) * a.every
        delay = due - time.time()
        if delay > 0:
            time.sleep(delay)
        write_atomic(os.path.join(a.root, "d", "%d.json" % i), doc_text(i, a.rev))
        out.write("%.6f %d\n" % (time.time(), i))
        out.flush()
    out.close()


def cmd_config(a):
    lines = [
        "instance: bench",
        "mqtt:",
        "  url: mqtt://127.0.0.1:%d" % a.mqtt_port,
        "  client_id: r2m-bench-%d" % os.getpid(),
        "  qos: 1",
        "  topic_prefix: r2m",
        "state:",
        "  path: %s" % a.state,
        "log:",
        "  level: warn",
        "shutdown_timeout: 3s",
        # every endpoint is on one nginx: keep the whole max_concurrent (256)
        # open to it, as when the figures in README.md were measured
        "max_per_host: 256",
        "defaults:",
        "  interval: %s" % a.interval,
        "  timeout: 10s",
        "  jitter: %s" % a.jitter,
        "endpoints:",
    ]
    for i in range(1, a.n + 1):
        lines.append("  - name: ep-%d" % i)
        lines.append("    url: http://127.0.0.1:%d%s%d.json" % (a.http_port, a.path, i))
    with open(a.out, "w") as f:
        f.write("\n".join(lines) + "\n")


def cmd_flow(a):
    """Node-RED flow equivalent to the rest2mqtt config: per endpoint inject (repeat) ->
    http request (parsed JSON) -> filter "block unless value changes (ignore initial
    value)" on payload -> mqtt out QoS 1."""
    flow = [
        {"id": "tab", "type": "tab", "label": "bench", "disabled": False, "info": ""},
        {"id": "broker", "type": "mqtt-broker", "name": "bench", "broker": "127.0.0.1",
         "port": str(a.mqtt_port), "clientid": "nodered-bench-%d" % os.getpid(),
         "autoConnect": True, "usetls": False, "protocolVersion": "4", "keepalive": "60",
         "cleansession": True, "autoUnsubscribe": True,
         "birthTopic": "", "closeTopic": "", "willTopic": ""},
    ]
    for i in range(1, a.n + 1):
        inj, req, rbe, out = ("i%d" % i, "h%d" % i, "r%d" % i, "m%d" % i)
        flow += [
            {"id": inj, "type": "inject", "z": "tab", "name": "", "props": [{"p": "payload"}],
             "repeat": str(a.interval), "crontab": "", "once": True, "onceDelay": "0.1",
             "topic": "", "payload": "", "payloadType": "date", "x": 100, "y": 40 * i,
             "wires": [[req]]},
            {"id": req, "type": "http request", "z": "tab", "name": "", "method": "GET",
             "ret": "obj", "paytoqs": "ignore",
             "url": "http://127.0.0.1:%d%s%d.json" % (a.http_port, a.path, i), "tls": "",
             "persist": True, "proxy": "", "insecureHTTPParser": False, "authType": "",
             "senderr": False, "headers": [], "x": 300, "y": 40 * i, "wires": [[rbe]]},
            {"id": rbe, "type": "rbe", "z": "tab", "name": "", "func": "rbei", "gap": "",
             "start": "", "inout": "out", "septopics": True, "property": "payload",
             "topi": "topic", "x": 500, "y": 40 * i, "wires": [[out]]},
            {"id": out, "type": "mqtt out", "z": "tab", "name": "", "topic": "nr/ep-%d" % i,
             "qos": "1", "retain": "false", "respTopic": "", "contentType": "",
             "userProps": "", "correl": "", "expiry": "", "broker": "broker", "x": 700,
             "y": 40 * i, "wires": []},
        ]
    with open(a.out, "w") as f:
        json.dump(flow, f)


def cmd_nrsettings(a):
    s = {
        "uiHost": "127.0.0.1", "uiPort": a.ui_port,
        "userDir": a.user_dir, "flowFile": a.flow,
        "httpAdminRoot": False, "httpNodeRoot": False, "disableEditor": True,
        "credentialSecret": False,
        "logging": {"console": {"level": "info", "metrics": False, "audit": False}},
        "diagnostics": {"enabled": False},
        "telemetry": {"enabled": False, "updateNotification": False},
        "runtimeState": {"enabled": False},
        "externalModules": {"autoInstall": False, "palette": {"allowInstall": False}},
    }
    with open(a.out, "w") as f:
        f.write("module.exports = " + json.dumps(s, indent=1) + ";\n")


# ---- log analysis ----------------------------------------------------------------------

def read_log(path):
    with open(path, errors="replace") as f:
        for line in f:
            p = line.split(" ", 5)
            if len(p) < 5:
                continue
            try:
                yield float(p[0]), float(p[1]), p[2], p[4]
            except ValueError:
                continue


def cmd_count(a):
    """Requests logged with t0 <= $msec < t1: prints "count non200"."""
    n = bad = 0
    other = {}
    for msec, _rt, status, _uri in read_log(a.log):
        if a.t0 <= msec < a.t1:
            n += 1
            if status != "200":
                bad += 1
                other[status] = other.get(status, 0) + 1
    print(n, bad, ",".join("%s:%d" % kv for kv in sorted(other.items())) or "-")


def cmd_round(a):
    """Waits until the access log (truncated when the client started) holds requests for
    N distinct paths, i.e. one full round of polls; exits 1 on timeout or when PID ends."""
    seen, off, end = set(), 0, time.time() + a.timeout
    while time.time() < end:
        try:
            with open(a.log, "rb") as f:
                if os.fstat(f.fileno()).st_size < off:
                    off = 0  # truncated
                f.seek(off)
                chunk = f.read()
                cut = chunk.rfind(b"\n") + 1  # a partial last line waits for the next read
                off += cut
                for line in chunk[:cut].splitlines():
                    p = line.split(b" ", 5)
                    if len(p) >= 5:
                        seen.add(p[4])
        except FileNotFoundError:
            pass
        if len(seen) >= a.n:
            return 0
        if not os.path.exists("/proc/%d" % a.pid):
            break
        time.sleep(0.3)
    print("only %d of %d paths polled" % (len(seen), a.n), file=sys.stderr)
    return 1


def pct(sorted_vals, p):
    if not sorted_vals:
        return float("nan")
    k = max(0, min(len(sorted_vals) - 1, math.ceil(p / 100 * len(sorted_vals)) - 1))
    return sorted_vals[k]


def cmd_latency(a):
    """Latency from poll completion to arrival at the subscriber.
    changes: "t index" lines; events: mosquitto_sub -F '%U %t' lines; topic PREFIX<index>.
    For each event of a changed document, the poll that saw the change is the last request
    for its path that nginx completed before the event arrived (request start + request
    time = $msec); latency = arrival - that completion. Prints
    "events expected dup unmatched p50_ms p99_ms max_ms n change_to_event_p50_ms"."""
    changes = {}
    for line in open(a.changes):
        t, i = line.split()
        changes[int(i)] = float(t)
    paths = {"%s%d.json" % (a.path, i): i for i in changes}
    polls = {i: [] for i in changes}
    for msec, rt, status, uri in read_log(a.log):
        i = paths.get(uri)
        if i is not None:
            start = msec - rt
            polls[i].append(start + rt)
    events, seen, dup, unmatched = [], {}, 0, 0
    for line in open(a.events):
        p = line.split()
        if len(p) < 2 or not p[1].startswith(a.prefix):
            continue
        try:
            i = int(p[1][len(a.prefix):])
        except ValueError:
            continue
        seen[i] = seen.get(i, 0) + 1
        if seen[i] > 1:
            dup += 1
            continue
        if i not in changes:
            unmatched += 1
            continue
        events.append((i, float(p[0])))
    lat, c2e = [], []
    for i, arr in events:
        ends = [e for e in polls[i] if e <= arr + 0.0005]
        # the poll that saw the new content ended after the change ($msec has ms
        # resolution, hence the slack)
        if not ends or max(ends) < changes[i] - 0.0015:
            unmatched += 1
            continue
        lat.append(max(0.0, arr - max(ends)) * 1000)
        c2e.append((arr - changes[i]) * 1000)
    lat.sort()
    c2e.sort()
    n_events = sum(seen.values())
    print(n_events, len(changes), dup, unmatched, "%.2f %.2f %.2f" % (
        pct(lat, 50), pct(lat, 99), lat[-1] if lat else float("nan")), len(lat),
        "%.1f" % pct(c2e, 50))


def cmd_events(a):
    """Counts events on topics starting with PREFIX: prints "total distinct"."""
    n, topics = 0, set()
    for line in open(a.events):
        p = line.split()
        if len(p) >= 2 and p[1].startswith(a.prefix):
            n += 1
            topics.add(p[1])
    print(n, len(topics))


# ---- the final table -------------------------------------------------------------------

def cmd_table(a):
    # results.tsv: benchmark figure value unit baseline baseline-value ratio target verdict
    rows = []
    for line in open(a.results):
        if not line.strip():
            continue
        f = line.rstrip("\n").split("\t") + [""] * 9
        base = f[4] if f[5] in ("", "-") else "%s %s %s" % (f[4], f[5], f[3])
        rows.append([f[0], f[1], "%s %s" % (f[2], f[3]), base, f[6], f[7], f[8]])
    head = ["benchmark", "figure", "rest2mqtt", "baseline", "ratio", "target", "verdict"]
    w = [max(len(head[k]), *(len(r[k]) for r in rows)) if rows else len(head[k])
         for k in range(len(head))]
    fmt = "  ".join("%%-%ds" % x for x in w)
    print(fmt % tuple(head))
    print(fmt % tuple("-" * x for x in w))
    for r in rows:
        print(fmt % tuple(r[:len(head)]))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("docs"); p.add_argument("root"); p.add_argument("n", type=int)
    p.set_defaults(f=cmd_docs)
    p = sub.add_parser("changes"); p.add_argument("root"); p.add_argument("n", type=int)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--start", type=float, default=0.0)
    p.add_argument("--every", type=float, required=True)
    p.add_argument("--burst", type=int, default=1)
    p.add_argument("--rev", type=int, required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", required=True)
    p.set_defaults(f=cmd_changes)
    p = sub.add_parser("config"); p.add_argument("out")
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--http-port", type=int, required=True)
    p.add_argument("--mqtt-port", type=int, required=True)
    p.add_argument("--interval", required=True); p.add_argument("--jitter", required=True)
    p.add_argument("--state", required=True)
    p.add_argument("--path", default="/d/")
    p.set_defaults(f=cmd_config)
    p = sub.add_parser("flow"); p.add_argument("out")
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--http-port", type=int, required=True)
    p.add_argument("--mqtt-port", type=int, required=True)
    p.add_argument("--interval", type=float, required=True)
    p.add_argument("--path", default="/d/")
    p.set_defaults(f=cmd_flow)
    p = sub.add_parser("nrsettings"); p.add_argument("out")
    p.add_argument("--ui-port", type=int, required=True)
    p.add_argument("--user-dir", required=True); p.add_argument("--flow", required=True)
    p.set_defaults(f=cmd_nrsettings)
    p = sub.add_parser("count"); p.add_argument("log")
    p.add_argument("t0", type=float); p.add_argument("t1", type=float)
    p.set_defaults(f=cmd_count)
    p = sub.add_parser("round"); p.add_argument("log"); p.add_argument("n", type=int)
    p.add_argument("timeout", type=float); p.add_argument("pid", type=int)
    p.set_defaults(f=cmd_round)
    p = sub.add_parser("latency"); p.add_argument("log"); p.add_argument("changes")
    p.add_argument("events"); p.add_argument("prefix")
    p.add_argument("--path", default="/d/")
    p.set_defaults(f=cmd_latency)
    p = sub.add_parser("events"); p.add_argument("events"); p.add_argument("prefix")
    p.set_defaults(f=cmd_events)
    p = sub.add_parser("table"); p.add_argument("results")
    p.set_defaults(f=cmd_table)
    a = ap.parse_args()
    return a.f(a)


if __name__ == "__main__":
    sys.exit(main())
