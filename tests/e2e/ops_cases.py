"""End-to-end cases for the operations features: SIGHUP reload, /metrics
and /healthz, SIGTERM in the middle of a burst, `state list` / `state
prune`, and JSON logs. Imported by run.py (every tests/e2e/*_cases.py is),
which owns the case registry, the runner and the JSON helpers used here.

Contract under test (the brief of these cases):
  SIGHUP       re-reads the -c file. Added endpoints start, removed ones stop,
               changed ones (any setting) restart from their stored snapshot
               with the new settings (a silent re-baseline only when items,
               key or ignore changed); unchanged ones keep state, schedule
               and a transfer in progress. Logs "reloading configuration",
               then "configuration reloaded added=N changed=N unchanged=N
               removed=N failed=N". An invalid file is rejected ("reload:
               configuration error" lines with FILE:LINE:COL, then
               "configuration reload rejected; the running configuration
               stays") and nothing changes. mqtt/state/metrics/instance
               changes: a warning that they need a restart. log.level and
               log.format apply at reload.
  metrics      metrics: {listen: 127.0.0.1:PORT}: GET /metrics is the
               Prometheus text format 0.0.4; GET /healthz is 200 {"status":
               "ok","broker":"connected",...} or 503 {"status":"unhealthy",
               "reason":...}; / and /status.json are the status page
               (status_cases.py); anything else 404.
  SIGTERM      exit 0; every change delivered before the exit or after a
               restart (the outbox is in state.path); after a graceful stop
               an id is delivered twice only if the broker had not
               acknowledged it.
  state        `state list` prints NAME<TAB>configured | NAME<TAB>not in
               config (prunable), then "outbox: N events waiting"; `state
               prune` prints "pruned NAME" lines and "N endpoints pruned from
               PATH". A pruned endpoint added back starts with a silent
               baseline; an unpruned one resumes.
  log          log.format json: every stderr line is one JSON object with
               ts, level, msg and the record's key/values.
"""

import http.client
import json
import math
import os
import re
import select
import signal
import socket
import threading
import time

from collection_cases import AckHoldProxy  # the PUBACK-withholding proxy
from fakeapi import Reply
from harness import Failure, check, check_eq, free_port, quiesce, short, to_yaml, wait_for
from run import (assert_no_events, case, check_document_event, check_message, doc_endpoint,
                 json_equal, stack)

# ---------------------------------------------------------------------------
# Small helpers


def report(line):
    """A line in the case output (shown by run.py whether or not it passed)."""
    print("  %s" % line, flush=True)


def connections(broker, client_id="e2e"):
    return len(re.findall(r"New client connected from \S+ as %s \(p" % re.escape(client_id),
                          broker.log()))


def launch(t, broker, cfg, name="bridge", timeout=15.0):
    """Start a bridge and wait for its (next) connection to the broker."""
    cid = cfg["mqtt"]["client_id"]
    n = connections(broker, cid)
    br = t.bridge(cfg, name=name)
    broker.wait_client(cid, timeout=timeout, alive=(br,), nth=n + 1)
    return br


def rewrite(t, br, cfg):
    """Atomically replace the bridge's config file (the -c file) with cfg
    (a dict, or YAML text)."""
    text = cfg if isinstance(cfg, str) else to_yaml(cfg) + "\n"
    t.write(os.path.relpath(br.config_path, t.tmp), text)
    return text


def sighup(br):
    br.assert_alive()
    mark = len(br.log_lines())
    br.proc.signal(signal.SIGHUP)
    return mark


def lines_since(br, mark):
    return br.log_lines()[mark:]


def complete_lines(br, mark=0):
    """stderr lines from index mark on, without a last line still being written."""
    try:
        with open(br.proc.stderr_path, "rb") as f:
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    return data[:data.rfind("\n") + 1].splitlines()[mark:]


RELOADED = re.compile(r"configuration reloaded added=(\d+) changed=(\d+) unchanged=(\d+) "
                      r"removed=(\d+) failed=(\d+)")


def reload_counts(line):
    m = RELOADED.search(line)
    check(m is not None, "the reload summary does not read 'configuration reloaded added=N "
          "changed=N unchanged=N removed=N failed=N': %s", line)
    return dict(zip(("added", "changed", "unchanged", "removed", "failed"),
                    (int(x) for x in m.groups())))


def check_json_eq(a, b):
    return json_equal(list(a), list(b))


def started_after(api, path, t0):
    return [r for r in api.requests(path) if r.t > t0]


def wall_of(mono):
    """Wall-clock seconds of a time.monotonic() value."""
    return time.time() - (time.monotonic() - mono)


def events_of(sub, endpoint):
    return [m for m in sub.events() if m.json().get("data", {}).get("endpoint") == endpoint]


def http_get(port, path, method="GET", timeout=5.0):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    except (OSError, http.client.HTTPException) as e:
        raise Failure("GET http://127.0.0.1:%d%s failed: %s" % (port, path, e))
    finally:
        c.close()


def run_state(t, sub, cfg_path):
    """`rest2mqtt state SUB -c FILE`; returns its stdout lines (exit 0 required)."""
    r = t.run_cli(["state", sub, "-c", cfg_path])
    out, err = r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")
    check(r.returncode == 0, "state %s: exit code expected 0, got %d; stdout: %s; stderr: %s",
          sub, r.returncode, short(out), short(err))
    return out.splitlines()


def outbox_waiting(lines, what):
    hits = [re.fullmatch(r"outbox: (\d+) events? waiting", l) for l in lines]
    hits = [m for m in hits if m]
    check(len(hits) == 1, "%s: expected one line 'outbox: N events waiting', got %s", what,
          lines)
    return int(hits[0].group(1))


# ---------------------------------------------------------------------------
# A strict parser of the Prometheus text exposition format 0.0.4

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


class PromError(Failure):
    pass


def prom_float(tok, where):
    if tok in ("+Inf", "Inf"):
        return math.inf
    if tok == "-Inf":
        return -math.inf
    if tok == "NaN":
        return math.nan
    if not FLOAT.fullmatch(tok):
        raise PromError("%s: %r is not a float" % (where, tok))
    return float(tok)


class Family:
    def __init__(self, name):
        self.name = name
        self.type = None
        self.help = None
        self.samples = []  # (sample name, labels dict, value)


class Exposition:
    def __init__(self, families, text):
        self.families = families
        self.text = text

    def samples(self, name, **labels):
        out = []
        for fam in self.families.values():
            for n, lab, v in fam.samples:
                if n == name and all(lab.get(k) == w for k, w in labels.items()):
                    out.append((lab, v))
        return out

    def value(self, name, **labels):
        """The value of the one series name{labels} (the labels exactly)."""
        hits = [v for lab, v in self.samples(name, **labels) if lab == labels]
        check(len(hits) == 1, "/metrics: expected one series %s%s, found %d", name,
              _fmt_labels(labels), len(hits))
        return hits[0]

    def family(self, name, type_):
        check(name in self.families, "/metrics has no metric family %s", name)
        f = self.families[name]
        check_eq(f.type, type_, "# TYPE of %s" % name)
        check(f.help, "/metrics: %s has no # HELP text", name)
        return f


def _fmt_labels(labels):
    return "{%s}" % ",".join('%s="%s"' % kv for kv in sorted(labels.items())) if labels else ""


def _parse_labels(line, i, where):
    """line[i] == '{'; returns (labels, index after '}')."""
    labels = {}
    i += 1
    n = len(line)

    def blanks(i):
        while i < n and line[i] in " \t":
            i += 1
        return i
    while True:
        i = blanks(i)
        if i < n and line[i] == "}":
            return labels, i + 1
        m = LABEL_NAME.match(line, i)
        if not m:
            raise PromError("%s: bad label name at column %d" % (where, i + 1))
        name = m.group(0)
        if name in labels:
            raise PromError("%s: label %s given twice" % (where, name))
        i = blanks(m.end())
        if i >= n or line[i] != "=":
            raise PromError("%s: '=' expected after label %s" % (where, name))
        i = blanks(i + 1)
        if i >= n or line[i] != '"':
            raise PromError("%s: label value of %s must be a quoted string" % (where, name))
        i += 1
        val = []
        while True:
            if i >= n:
                raise PromError("%s: unterminated label value of %s" % (where, name))
            ch = line[i]
            if ch == "\\":
                if i + 1 >= n or line[i + 1] not in '\\"n':
                    raise PromError("%s: invalid escape in the label value of %s" % (
                        where, name))
                val.append({"\\": "\\", '"': '"', "n": "\n"}[line[i + 1]])
                i += 2
            elif ch == '"':
                i += 1
                break
            else:
                val.append(ch)
                i += 1
        labels[name] = "".join(val)
        i = blanks(i)
        if i < n and line[i] == ",":
            i += 1
            continue
        if i < n and line[i] == "}":
            return labels, i + 1
        raise PromError("%s: ',' or '}' expected at column %d" % (where, i + 1))


def parse_exposition(text):
    """Parses and validates a text exposition (format 0.0.4); raises a
    Failure naming the line for anything a Prometheus server would refuse
    or that breaks the format's rules."""
    check(text.endswith("\n"), "/metrics: the exposition must end with a line feed")
    families = {}
    closed = set()
    series = set()
    cur = None

    def enter(name, where):
        nonlocal cur
        if name == cur:
            return families[name]
        if name in closed or (name in families and families[name].samples):
            raise PromError("%s: metric family %s is not contiguous" % (where, name))
        if cur is not None:
            closed.add(cur)
        cur = name
        return families.setdefault(name, Family(name))

    def family_of(sample):
        for suf, kinds in (("_bucket", ("histogram",)), ("_sum", ("histogram", "summary")),
                           ("_count", ("histogram", "summary"))):
            base = sample[:-len(suf)]
            if sample.endswith(suf) and base in families and families[base].type in kinds:
                return base
        return sample

    for no, line in enumerate(text[:-1].split("\n"), 1):
        where = "/metrics line %d (%s)" % (no, short(line, 120))
        if line.strip() == "":
            continue
        if line.startswith("#"):
            m = re.match(r"#[ \t]+(HELP|TYPE)(?:[ \t]+(.*))?$", line)
            if not m:
                continue  # a plain comment
            rest = m.group(2) or ""
            parts = re.split(r"[ \t]+", rest, maxsplit=1)
            name = parts[0]
            if not METRIC_NAME.fullmatch(name):
                raise PromError("%s: bad metric name %r" % (where, name))
            arg = parts[1] if len(parts) > 1 else ""
            fam = enter(name, where)
            if fam.samples:
                raise PromError("%s: %s after the samples of %s" % (where, m.group(1), name))
            if m.group(1) == "HELP":
                if fam.help is not None:
                    raise PromError("%s: second HELP for %s" % (where, name))
                if not re.fullmatch(r"(?:[^\\]|\\[\\n])*", arg):
                    raise PromError("%s: invalid escape in HELP text" % where)
                fam.help = arg
            else:
                if fam.type is not None:
                    raise PromError("%s: second TYPE for %s" % (where, name))
                if arg not in TYPES:
                    raise PromError("%s: unknown metric type %r" % (where, arg))
                fam.type = arg
            continue
        m = METRIC_NAME.match(line)
        if not m:
            raise PromError("%s: a sample must start with a metric name" % where)
        name, i = m.group(0), m.end()
        labels = {}
        if i < len(line) and line[i] == "{":
            labels, i = _parse_labels(line, i, where)
        rest = line[i:]
        m = re.fullmatch(r"[ \t]+(\S+)(?:[ \t]+(-?[0-9]+))?[ \t]*", rest)
        if not m:
            raise PromError("%s: expected ' VALUE [TIMESTAMP]' after the name and labels"
                            % where)
        value = prom_float(m.group(1), where)
        fname = family_of(name)
        fam = enter(fname, where)
        key = (name, tuple(sorted(labels.items())))
        if key in series:
            raise PromError("%s: series %s%s given twice" % (where, name, _fmt_labels(labels)))
        series.add(key)
        if fam.type == "histogram":
            if name == fname + "_bucket":
                if "le" not in labels:
                    raise PromError("%s: histogram bucket without le" % where)
                prom_float(labels["le"], where + " le")
            elif name in (fname + "_sum", fname + "_count"):
                if "le" in labels:
                    raise PromError("%s: le on %s" % (where, name))
            else:
                raise PromError("%s: sample %s in histogram %s" % (where, name, fname))
        elif fam.type == "summary":
            pass
        elif name != fname:
            raise PromError("%s: sample %s in family %s" % (where, name, fname))
        if fam.type == "counter" and not (value >= 0):
            raise PromError("%s: counter value %r (must be >= 0)" % (where, value))
        if fam.type == "histogram" and name != fname + "_sum" and not (
                value >= 0 and value == math.floor(value) and math.isfinite(value)):
            raise PromError("%s: histogram count %r (must be a whole number)" % (where, value))
        fam.samples.append((name, labels, value))

    for fam in families.values():
        if fam.type == "histogram":
            _check_histogram(fam)
    return Exposition(families, text)


def _check_histogram(fam):
    groups = {}
    for name, labels, value in fam.samples:
        rest = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        g = groups.setdefault(rest, {"buckets": [], "sum": None, "count": None})
        if name.endswith("_bucket"):
            g["buckets"].append((prom_float(labels["le"], fam.name), value))
        elif name.endswith("_sum"):
            g["sum"] = value
        else:
            g["count"] = value
    for rest, g in groups.items():
        what = "histogram %s%s" % (fam.name, _fmt_labels(dict(rest)))
        b = g["buckets"]
        check(b, "%s: no buckets", what)
        check(g["sum"] is not None and g["count"] is not None, "%s: _sum and _count are "
              "required", what)
        les = [le for le, _ in b]
        check(all(x < y for x, y in zip(les, les[1:])), "%s: le bounds not increasing: %s",
              what, les)
        check(les[-1] == math.inf, "%s: the last bucket must be le=\"+Inf\", got %s", what,
              les[-1])
        counts = [c for _, c in b]
        check(all(x <= y for x, y in zip(counts, counts[1:])), "%s: buckets are not "
              "cumulative (decreasing counts %s)", what, counts)
        check(counts[-1] == g["count"], "%s: +Inf bucket %s != _count %s", what, counts[-1],
              g["count"])
        # _sum must fit the buckets (observations here are durations >= 0)
        lo = hi = 0.0
        prev_le, prev_c = 0.0, 0
        for le, c in b:
            d = c - prev_c
            lo += d * prev_le
            hi += d * le if d else 0.0
            prev_le, prev_c = le, c
        s = g["sum"]
        check(s >= lo - 1e-5 and s <= hi + 1e-5, "%s: _sum %s does not fit the buckets "
              "(between %s and %s)", what, s, lo, hi)


def scrape(port):
    status, hdrs, body = http_get(port, "/metrics")
    check_eq(status, 200, "status of GET /metrics")
    ctype = hdrs.get("content-type", "")
    check(re.match(r"text/plain\s*;(.*;)?\s*version=0\.0\.4\b", ctype), "Content-Type of "
          "/metrics must be text/plain; version=0.0.4, got %r", ctype)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Failure("/metrics is not UTF-8: %s" % e)
    return parse_exposition(text)


def get_json(port, path):
    status, hdrs, body = http_get(port, path)
    try:
        doc = json.loads(body)
    except ValueError as e:
        raise Failure("GET %s (status %d) is not JSON (%s): %r" % (path, status, e, body[:300]))
    check(isinstance(doc, dict), "GET %s: expected a JSON object, got %s", path, short(doc))
    return status, hdrs, doc


# ---------------------------------------------------------------------------
# SIGHUP


@case
def reload_add_remove_change_keeps_state(t):
    broker, sub, api = stack(t)
    docs = {
        "steady": {"n": "steady", "v": 0},
        "idle": {"n": "idle", "v": 0},
        "moved-old": {"n": "moved", "v": 0, "where": "old"},
        "moved-new": {"n": "moved", "v": 1, "where": "new"},
        "retimed": {"n": "retimed", "v": 0},
        "reignored": {"v": 0, "t": 0, "u": 0},
        "dropped": {"n": "dropped", "v": 0},
        "fresh": {"n": "fresh", "v": 0},
    }
    for k, d in docs.items():
        api.set("/" + k, Reply.json(d))
    coll_a = [{"id": 1, "v": 0}, {"id": 2, "v": 0}]
    coll_b = [{"id": 1, "v": 0}, {"id": 2, "v": 1}, {"id": 3, "v": 0}]
    api.set("/coll-a", Reply.json({"data": coll_a}))
    api.set("/coll-b", Reply.json({"data": coll_b}))
    steady = doc_endpoint(api, "steady", interval="300ms")
    idle = doc_endpoint(api, "idle", interval="2s")
    old_eps = [steady, idle, doc_endpoint(api, "moved", path="/moved-old"),
               doc_endpoint(api, "retimed"), doc_endpoint(api, "reignored", ignore=["/t"]),
               doc_endpoint(api, "dropped"),
               doc_endpoint(api, "coll", path="/coll-a", items="/data", key="/id")]
    # a different order, so positions in the list mean nothing
    new_eps = [doc_endpoint(api, "fresh"), doc_endpoint(api, "reignored", ignore=["/u"]),
               doc_endpoint(api, "retimed", interval="300ms", headers={"X-Rev": "2"},
                            topic="{prefix}/retimed-v2"),
               idle, doc_endpoint(api, "moved", path="/moved-new"), steady,
               doc_endpoint(api, "coll", path="/coll-b", items="/data", key="/id")]
    br = launch(t, broker, t.config(broker.port, old_eps))
    alive = (br,)
    fast = ["/steady", "/moved-old", "/retimed", "/reignored", "/dropped", "/coll-a"]
    for p in fast:
        api.wait_requests(p, 2, finished=True)
    api.wait_requests("/idle", 1, finished=True)
    t.settle(api, fast, alive=alive)
    assert_no_events(sub, "first polls (silent baseline)")

    # Reload right after a poll of `idle` (interval 2s) and while a poll of
    # `steady` is in progress (the API answers it after 1.5 s).
    n = api.count("/idle")
    api.wait_requests("/idle", n + 1, finished=True, timeout=5)
    t_idle = api.requests("/idle")[-1].t
    steady_v1 = {"n": "steady", "v": 1}
    slow = api.set("/steady", Reply.slow(1.5, Reply.json(steady_v1), label="slow steady v1"))
    wait_for(lambda: api.requests("/steady", reply=slow), 5, "the slow poll of steady",
             alive=alive)
    rewrite(t, br, t.config(broker.port, new_eps, mqtt={"keepalive": "31s"}))
    t_hup = time.monotonic()
    mark = sighup(br)
    line = br.wait_log("configuration reloaded", after=mark)
    t_done = time.monotonic()
    in_flight = api.requests("/steady", reply=slow)[0]
    check(in_flight.outcome == "open", "the reload was not done while steady's poll was in "
          "progress (took %.2fs): cannot test that a transfer survives it", t_done - t_hup)
    got = reload_counts(line)
    check_eq(got, {"added": 1, "changed": 4, "unchanged": 2, "removed": 1, "failed": 0},
             "reload summary (%s)" % line)
    log = lines_since(br, mark)
    i_start = [i for i, l in enumerate(log) if "reloading configuration" in l]
    i_done = [i for i, l in enumerate(log) if "configuration reloaded" in l]
    check(i_start and i_start[0] < i_done[0], "no 'reloading configuration' line before the "
          "summary:\n%s", "\n".join(log))
    warn = [l for l in log[:i_done[0]] if " warn " in l and "restart" in l]
    check(warn, "a changed mqtt.keepalive must log a warning that it needs a restart; log "
          "since SIGHUP:\n%s", "\n".join(log))
    redo = [l for l in log if "stored snapshot dropped" in l]
    check(len(redo) == 1 and "endpoint=reignored" in redo[0], "expected exactly one "
          "re-baseline line, for reignored (ignore changed); got %s", redo)

    # steady: its transfer completes normally and its result counts (state
    # kept: the event is v0 -> v1); no other poll of it meanwhile
    wait_for(lambda: in_flight.outcome != "open", 5, "steady's slow poll to end", alive=alive)
    wait_for(lambda: events_of(sub, "steady"), 5, "the event of steady", alive=alive)
    check_eq(in_flight.outcome, "complete", "how the in-flight poll of steady ended (a restart "
             "would have aborted it)")
    during = [r for r in api.requests("/steady") if in_flight.t < r.t < in_flight.t_end]
    check(not during, "steady was polled again while its poll was in progress: %s", during)
    api.set("/steady", Reply.json(steady_v1))

    # moved (url changed): restarted from its stored snapshot -> one event
    # old -> new document
    wait_for(lambda: events_of(sub, "moved"), 5, "the event of moved", alive=alive)
    wait_for(lambda: len(events_of(sub, "coll")) >= 2, 5, "the events of coll", alive=alive)
    t.settle(api, ["/steady", "/moved-new", "/retimed", "/reignored", "/fresh", "/coll-b"],
             alive=alive)
    for old in ("/moved-old", "/coll-a"):
        check(not started_after(api, old, t_done), "the old URL %s was polled after the "
              "reload", old)
    check(not started_after(api, "/dropped", t_done), "dropped (removed) was polled after the "
          "reload: %s", started_after(api, "/dropped", t_done))
    check(api.count("/fresh") >= 2, "fresh (added) was not polled after the reload")
    ev = {e: events_of(sub, e) for e in ("steady", "moved", "idle", "retimed", "reignored",
                                          "fresh", "dropped", "coll")}
    check_eq({k: len(v) for k, v in ev.items()},
             {"steady": 1, "moved": 1, "idle": 0, "retimed": 0, "reignored": 0, "fresh": 0,
              "dropped": 0, "coll": 2}, "events per endpoint after the reload")
    # coll (a collection, url changed): restarted from its stored items
    got = [(m.topic, m.json()["type"], m.json()["data"].get("before"),
            m.json()["data"].get("after")) for m in ev["coll"]]
    want = [("rest2mqtt/coll/2/updated", "rest2mqtt.item.updated", coll_a[1], coll_b[1]),
            ("rest2mqtt/coll/3/created", "rest2mqtt.item.created", None, coll_b[2])]
    check(all(check_json_eq(g, w) for g, w in zip(got, want)) and len(got) == 2,
          "events of coll after its url changed: expected %s, got %s", want, got)
    check_message(ev["steady"][0], "rest2mqtt/steady", "steady", docs["steady"], steady_v1)
    check_message(ev["moved"][0], "rest2mqtt/moved", "moved", docs["moved-old"],
                  docs["moved-new"])

    # idle (unchanged, interval 2s): its next poll keeps the old schedule,
    # i.e. 2s after the one before the reload, not at the reload
    api.wait_requests("/idle", n + 2, timeout=5)
    nxt = [r for r in api.requests("/idle") if r.t > t_idle][0]
    gap = nxt.t - t_idle
    check(1.8 <= gap <= 3.0, "idle (unchanged, 2s interval) was polled %.2fs after its poll "
          "before the reload (the reload came %.2fs after it): its schedule was not kept",
          gap, t_hup - t_idle)

    # retimed (headers, interval, topic changed): new settings in force,
    # state kept (the next change is against its old document)
    after = [r for r in api.requests("/retimed") if r.t > t_done]
    check(after and all(r.headers.get("x-rev") == "2" for r in after), "polls of retimed "
          "after the reload must carry the new header X-Rev: 2; got %s",
          [r.headers.get("x-rev") for r in after])
    check(not any(r.headers.get("x-rev") for r in api.requests("/retimed") if r.t < t_hup),
          "X-Rev sent before the reload")
    retimed_v1 = {"n": "retimed", "v": 1}
    api.set("/retimed", Reply.json(retimed_v1))
    wait_for(lambda: events_of(sub, "retimed"), 5, "the event of retimed", alive=alive)
    check_message(events_of(sub, "retimed")[0], "rest2mqtt/retimed-v2", "retimed",
                  docs["retimed"], retimed_v1)

    # reignored (ignore changed): silently re-baselined under the new ignore
    # list; then /t counts and /u does not
    api.set("/reignored", Reply.json({"v": 0, "t": 1, "u": 0}))
    wait_for(lambda: events_of(sub, "reignored"), 5, "the event of reignored", alive=alive)
    check_message(events_of(sub, "reignored")[0], "rest2mqtt/reignored", "reignored",
                  {"v": 0, "t": 0}, {"v": 0, "t": 1})
    api.set("/reignored", Reply.json({"v": 0, "t": 1, "u": 7}))

    # fresh (added): silent baseline, then a change is one event
    fresh_v1 = {"n": "fresh", "v": 1}
    api.set("/fresh", Reply.json(fresh_v1))
    wait_for(lambda: events_of(sub, "fresh"), 5, "the event of fresh", alive=alive)
    check_message(events_of(sub, "fresh")[0], "rest2mqtt/fresh", "fresh", docs["fresh"],
                  fresh_v1)
    t.settle(api, ["/steady", "/moved-new", "/retimed", "/reignored", "/fresh", "/coll-b"],
             alive=alive)
    check_eq(len(sub.events()), 7, "events in total (steady, moved, retimed, reignored, "
             "fresh: one each, coll: two; %s)" % "; ".join(repr(m) for m in sub.events()[:9]))

    # settings outside endpoints: a warning each, every endpoint unchanged,
    # and nothing of it in force before a restart (events keep their source)
    for what, top in (("instance", {"instance": "other"}),
                      ("metrics.listen", {"metrics": {"listen": "127.0.0.1:%d" % free_port()}}),
                      ("state.path", {"state": {"path": t.path("other.db")}}),
                      ("mqtt.topic_prefix", {"mqtt_prefix": "elsewhere"})):
        c = t.config(broker.port, new_eps, mqtt={"keepalive": "31s"})
        if "mqtt_prefix" in top:
            c["mqtt"]["topic_prefix"] = top["mqtt_prefix"]
        elif "state" in top:
            c["state"] = top["state"]
        else:
            c.update(top)
        rewrite(t, br, c)
        m = sighup(br)
        line = br.wait_log("configuration reloaded", after=m)
        check_eq(reload_counts(line), {"added": 0, "changed": 0, "unchanged": 7, "removed": 0,
                                       "failed": 0}, "summary of a reload changing %s" % what)
        log = lines_since(br, m)
        check(any(" warn " in l and "restart" in l for l in log), "changing %s must log a "
              "warning that it needs a restart; log since SIGHUP:\n%s", what, "\n".join(log))
    fresh_v2 = {"n": "fresh", "v": 2}
    api.set("/fresh", Reply.json(fresh_v2))
    wait_for(lambda: len(events_of(sub, "fresh")) >= 2, 5, "the second event of fresh",
             alive=alive)
    check_message(events_of(sub, "fresh")[1], "rest2mqtt/fresh", "fresh", fresh_v1, fresh_v2)
    br.stop()
    rewrite(t, br, t.config(broker.port, new_eps))

    # the removed endpoint keeps its stored state until pruned
    lines = run_state(t, "list", br.config_path)
    want = ["%s\tconfigured" % e for e in ("fresh", "idle", "moved", "reignored", "retimed",
                                           "steady", "coll")]
    want += ["dropped\tnot in config (prunable)", "outbox: 0 events waiting"]
    check_eq(sorted(lines), sorted(want), "state list after the reload")


def _pos(text, needle):
    """1-based (line, column) of needle in text."""
    i = text.index(needle)
    return text.count("\n", 0, i) + 1, i - (text.rfind("\n", 0, i) + 1) + 1


@case
def reload_invalid_keeps_running(t):
    broker, sub, api = stack(t)
    cur = {"keep": {"k": 0}, "gone": {"g": 0}}
    for k, d in cur.items():
        api.set("/" + k, Reply.json(d))
    cfg = t.config(broker.port, [doc_endpoint(api, "keep"), doc_endpoint(api, "gone")])
    br = launch(t, broker, cfg)
    alive = (br,)
    paths = ["/keep", "/gone"]
    for p in paths:
        api.wait_requests(p, 2, finished=True)
    t.settle(api, paths, alive=alive)
    assert_no_events(sub, "baseline")
    path = br.config_path

    # What each broken file would do if it were applied: drop `gone`, poll
    # `keep` every 5s with a new header.
    would = to_yaml(t.config(broker.port, [doc_endpoint(api, "keep", interval="5s",
                                                         headers={"X-Broken": "1"})])) + "\n"
    syntax = would.replace("interval: 5s", "interval: 5s: 6s")
    unknown = would.replace("interval: 5s", "intervall: 5s")
    badval = would.replace("interval: 5s", "interval: soon")
    cases = [
        # libyaml points at the second ':' of "interval: 5s: 6s"
        ("YAML syntax error", syntax, _pos(syntax, "5s: 6s")[0],
         _pos(syntax, "5s: 6s")[1] + 2),
        ("unknown key", unknown, _pos(unknown, "intervall")[0], _pos(unknown, "intervall")[1]),
        ("invalid duration", badval, _pos(badval, "soon")[0], _pos(badval, "soon")[1]),
    ]
    rejected = 0
    for what, text, line, col in cases:
        rewrite(t, br, text)
        t_hup = time.monotonic()
        mark = sighup(br)
        br.wait_log("configuration reload rejected; the running configuration stays", after=mark)
        log = lines_since(br, mark)
        check(any("reloading configuration" in l for l in log), "%s: no 'reloading "
              "configuration' line", what)
        errs = [l for l in log if "reload: configuration error" in l]
        check(errs, "%s: no 'reload: configuration error' line; log:\n%s", what, "\n".join(log))
        pat = re.compile(re.escape(path) + r":(\d+):(\d+)")
        where = [tuple(int(x) for x in m.groups()) for m in map(pat.search, errs) if m]
        check(where, "%s: the error lines must name %s:LINE:COL; got:\n%s", what, path,
              "\n".join(errs))
        check((line, col) in where, "%s: expected the error at %s:%d:%d, got %s:\n%s",
              what, path, line, col, where, "\n".join(errs))
        check(not any("configuration reloaded" in l for l in log), "%s: a rejected file must "
              "not report 'configuration reloaded'", what)
        # still polling both, every 200ms, without the header of the broken file
        t.settle(api, paths, polls=3, timeout=2.5, alive=alive)
        for p in paths:
            later = started_after(api, p, t_hup)
            check(not any("x-broken" in r.headers for r in later), "%s: %s polled with the "
                  "broken file's header", what, p)
        rejected += 1

    # a missing file is rejected too
    os.unlink(path)
    mark = sighup(br)
    br.wait_log("configuration reload rejected; the running configuration stays", after=mark)
    t.settle(api, paths, polls=2, alive=alive)
    assert_no_events(sub, "after %d rejected reloads" % (rejected + 1))

    # state intact: each change is one event against the old document
    new = {"keep": {"k": 1}, "gone": {"g": 1}}
    for k, d in new.items():
        api.set("/" + k, Reply.json(d))
    sub.wait_events(2, alive=alive)
    t.settle(api, paths, alive=alive)
    evs = sub.events()
    check_eq(len(evs), 2, "events after changing both endpoints")
    for m in evs:
        e = m.json()["data"]["endpoint"]
        check_message(m, "rest2mqtt/" + e, e, cur[e], new[e])

    # and a valid file afterwards is applied
    rewrite(t, br, t.config(broker.port, [doc_endpoint(api, "keep")]))
    mark = sighup(br)
    line = br.wait_log("configuration reloaded", after=mark)
    check_eq(reload_counts(line), {"added": 0, "changed": 0, "unchanged": 1, "removed": 1,
                                   "failed": 0}, "summary of the valid reload")
    t_done = time.monotonic()
    t.settle(api, ["/keep"], polls=3, alive=alive)
    check(not started_after(api, "/gone", t_done), "gone was polled after a valid reload "
          "removed it")
    br.stop()


# ---------------------------------------------------------------------------
# /metrics and /healthz


def quiet_scrape(api, paths, port, alive, timeout=10.0):
    """Scrape /metrics at a moment when no poll is in progress and the last
    one ended at least 60 ms ago (so the bridge has counted it), and no poll
    started during the scrape: the API's counts are then exactly the
    bridge's. Returns (exposition, {path: [finished requests]})."""
    deadline = time.monotonic() + timeout
    while True:
        reqs = {p: api.requests(p) for p in paths}
        allr = [r for rs in reqs.values() for r in rs]
        ends = [r.t_end for r in allr if r.t_end is not None]
        if all(r.outcome != "open" for r in allr) and (
                not ends or time.monotonic() - max(ends) >= 0.06):
            expo = scrape(port)
            if all(api.count(p) == len(reqs[p]) for p in paths):
                return expo, reqs
        for p in alive:
            p.assert_alive()
        if time.monotonic() > deadline:
            raise Failure("no quiet moment to scrape /metrics within %.0fs" % timeout)
        time.sleep(0.005)


def _kind(r):
    s = r.reply.status if r.reply is not None else 404
    return "ok" if s == 200 else "not_modified" if s == 304 else "error"


@case
def metrics_prometheus_counters(t):
    broker, sub, api = stack(t)
    port = free_port()
    etag = '"e1"'
    good0 = {"g": 0}
    api.set("/good", Reply.json(good0))
    api.set("/cond", Reply.json({"c": 0}, headers={"ETag": etag}))
    api.set("/bad", Reply.json({"b": 0}))
    api.set("/never", Reply.status(503, b'{"e":1}'))
    items = [{"id": 1, "v": 0}, {"id": 2, "v": 0}]
    api.set("/items", Reply.json({"data": items}))
    eps = [doc_endpoint(api, "good", interval="300ms"),
           doc_endpoint(api, "cond", interval="300ms"),
           doc_endpoint(api, "bad", interval="300ms", max_backoff="300ms"),
           doc_endpoint(api, "never", interval="300ms", max_backoff="300ms"),
           doc_endpoint(api, "items", interval="300ms", items="/data", key="/id")]
    names = [e["name"] for e in eps]
    paths = ["/" + n for n in names]
    br = launch(t, broker, t.config(broker.port, eps, metrics={"listen": "127.0.0.1:%d" % port}))
    alive = (br,)
    for p in paths:
        api.wait_requests(p, 2, finished=True)
    t.settle(api, paths, alive=alive)
    assert_no_events(sub, "baseline")

    # good: two document changes; items: created, updated, deleted
    good1, good2 = {"g": 1}, {"g": 2}
    for d in (good1, good2):
        r = api.set("/good", Reply.json(d))
        api.wait_requests("/good", 2, reply=r, finished=True)
    r = api.set("/items", Reply.json({"data": items + [{"id": 3, "v": 0}]}))
    api.wait_requests("/items", 2, reply=r, finished=True)
    r = api.set("/items", Reply.json({"data": [{"id": 1, "v": 1}, {"id": 3, "v": 0}]}))
    api.wait_requests("/items", 2, reply=r, finished=True)
    # cond: 304 Not Modified from now on; bad: 500 from now on
    nm = api.set("/cond", Reply.raw(b"", status=304, content_type=None,
                                    headers={"ETag": etag}))
    api.wait_requests("/cond", 3, reply=nm, finished=True)
    err = api.set("/bad", Reply.status(500, b'{"error":"boom"}'))
    api.wait_requests("/bad", 3, reply=err, finished=True)
    n_events = 2 + 3  # good: 2 changes; items: 3 created, 1 updated, 2 deleted
    sub.wait_events(n_events, alive=alive)

    for r in api.requests("/cond", reply=nm):
        check_eq(r.headers.get("if-none-match"), etag, "If-None-Match of the conditional GET "
                 "that got 304")

    def verify(expo, reqs, what):
        evs = sub.events()
        check_eq(len(evs), n_events, "%s: events received" % what)
        for name, path in zip(names, paths):
            rs = reqs[path]
            kinds = [_kind(r) for r in rs]
            for result in ("ok", "not_modified", "error"):
                check_eq(expo.value("rest2mqtt_polls_total", endpoint=name, result=result),
                         kinds.count(result), "%s: rest2mqtt_polls_total{endpoint=%s,"
                         "result=%s} vs the %d requests the API answered (%s)" % (
                             what, name, result, len(rs), ",".join(
                                 "%s:%d" % (k, kinds.count(k)) for k in sorted(set(kinds)))))
            mine = [m for m in evs if m.json()["data"]["endpoint"] == name]
            check_eq(expo.value("rest2mqtt_endpoint_events_total", endpoint=name), len(mine),
                     "%s: rest2mqtt_endpoint_events_total{endpoint=%s} vs events received"
                     % (what, name))
            streak = 0
            for k in kinds:
                streak = streak + 1 if k == "error" else 0
            check_eq(expo.value("rest2mqtt_endpoint_consecutive_failures", endpoint=name),
                     streak, "%s: consecutive failures of %s" % (what, name))
            ts = expo.value("rest2mqtt_endpoint_last_success_timestamp_seconds", endpoint=name)
            oks = [r for r in rs if _kind(r) != "error"]
            if not oks:
                check_eq(ts, 0, "%s: last success timestamp of %s (never succeeded)" % (
                    what, name))
            else:
                want = wall_of(oks[-1].t_end)
                check(abs(ts - want) < 1.0, "%s: last success timestamp of %s is %.3f, the "
                      "last good answer was sent at %.3f", what, name, ts, want)
        by_type = {}
        for m in evs:
            by_type[m.json()["type"]] = by_type.get(m.json()["type"], 0) + 1
        for typ in ("rest2mqtt.document.changed", "rest2mqtt.item.created",
                    "rest2mqtt.item.updated", "rest2mqtt.item.deleted"):
            check_eq(expo.value("rest2mqtt_events_total", type=typ), by_type.get(typ, 0),
                     "%s: rest2mqtt_events_total{type=%s}" % (what, typ))
        check_eq(expo.value("rest2mqtt_outbox_events"), 0, "%s: rest2mqtt_outbox_events "
                 "(everything was delivered)" % what)
        check_eq(expo.value("rest2mqtt_broker_connected"), 1, "%s: rest2mqtt_broker_connected"
                 % what)
        check_eq(expo.value("rest2mqtt_publish_latency_seconds_count"), n_events,
                 "%s: rest2mqtt_publish_latency_seconds_count (one per acknowledged event)"
                 % what)
        total = sum(len(rs) for rs in reqs.values())
        answered = sum(1 for rs in reqs.values() for r in rs if _kind(r) != "error")
        hc = expo.value("rest2mqtt_http_request_duration_seconds_count")
        check(answered <= hc <= total, "%s: rest2mqtt_http_request_duration_seconds_count is "
              "%s; the API answered %d requests (%d of them 200/304)", what, hc, total,
              answered)
        return hc, total, answered

    # every event is acknowledged before the counters are compared
    wait_for(lambda: scrape(port).value("rest2mqtt_outbox_events") == 0, 5,
             "rest2mqtt_outbox_events to reach 0", alive=alive)
    expo, reqs = quiet_scrape(api, paths, port, alive)
    fams = {
        "rest2mqtt_polls_total": "counter",
        "rest2mqtt_endpoint_events_total": "counter",
        "rest2mqtt_events_total": "counter",
        "rest2mqtt_endpoint_consecutive_failures": "gauge",
        "rest2mqtt_endpoint_last_success_timestamp_seconds": "gauge",
        "rest2mqtt_outbox_events": "gauge",
        "rest2mqtt_broker_connected": "gauge",
        "rest2mqtt_http_request_duration_seconds": "histogram",
        "rest2mqtt_publish_latency_seconds": "histogram",
    }
    for name, typ in fams.items():
        expo.family(name, typ)
    verify(expo, reqs, "first scrape")
    pl = expo.samples("rest2mqtt_publish_latency_seconds_bucket")
    check(len(pl) >= 3, "publish latency histogram has only %d buckets", len(pl))

    # more of the same, then the counters again (they only grow)
    bad_ok = api.set("/bad", Reply.json({"b": 0}))
    api.wait_requests("/bad", 2, reply=bad_ok, finished=True)
    err2 = api.set("/bad", Reply.status(502, b"<html>bad gateway</html>",
                                        content_type="text/html"))
    api.wait_requests("/bad", 2, reply=err2, finished=True)
    api.set("/good", Reply.json(good0))
    n_events += 1
    sub.wait_events(n_events, alive=alive)
    wait_for(lambda: scrape(port).value("rest2mqtt_outbox_events") == 0, 5,
             "rest2mqtt_outbox_events to reach 0", alive=alive)
    expo2, reqs2 = quiet_scrape(api, paths, port, alive)
    hc, total, answered = verify(expo2, reqs2, "second scrape")
    for fam in expo2.families.values():
        if fam.type not in ("counter", "histogram"):
            continue
        for name, labels, v in fam.samples:
            old = [v0 for lab, v0 in expo.samples(name, **labels) if lab == labels]
            check(not old or v >= old[0], "counter %s%s went down: %s -> %s", name,
                  _fmt_labels(labels), old[0] if old else None, v)

    status, hdrs, body = http_get(port, "/nonexistent")
    check_eq(status, 404, "status of GET /nonexistent")
    report("metrics_prometheus_counters: %d families, %d polls checked; "
           "http_request_duration_seconds_count=%d (requests answered 200/304: %d, all: %d)"
           % (len(expo2.families), total, hc, answered, total))
    br.stop()


@case
def healthz_follows_broker(t):
    broker, sub, api = stack(t)
    port = free_port()
    api.set("/doc", Reply.json({"a": 1}))
    cfg = t.config(broker.port, [doc_endpoint(api, "doc")],
                   metrics={"listen": "127.0.0.1:%d" % port})
    br = launch(t, broker, cfg)
    alive = (br,)
    api.wait_requests("/doc", 2, finished=True)

    def health():
        status, hdrs, doc = get_json(port, "/healthz")
        return status, hdrs, doc

    wait_for(lambda: health()[0] == 200, 5, "/healthz to answer 200", alive=alive)
    status, hdrs, doc = health()
    check(hdrs.get("content-type", "").startswith("application/json"), "Content-Type of "
          "/healthz: %r", hdrs.get("content-type"))
    check_eq(doc.get("status"), "ok", "/healthz status while connected (%s)" % short(doc))
    check_eq(doc.get("broker"), "connected", "/healthz broker while connected")
    check_eq(scrape(port).value("rest2mqtt_broker_connected"), 1, "broker_connected while up")

    t_down = time.monotonic()
    broker.stop()
    got = wait_for(lambda: (lambda h: h if h[0] == 503 else None)(health()), 5,
                   "/healthz to answer 503 after the broker stopped", alive=alive)
    took_down = time.monotonic() - t_down
    status, hdrs, doc = got
    check_eq(doc.get("status"), "unhealthy", "/healthz status without a broker (%s)"
             % short(doc))
    check(isinstance(doc.get("reason"), str) and doc["reason"].strip(), "/healthz without a "
          "broker must give a reason, got %s", short(doc))
    check(doc.get("broker") != "connected", "/healthz says broker connected while it is down")
    check_eq(scrape(port).value("rest2mqtt_broker_connected"), 0, "broker_connected while down")
    # the loop keeps polling meanwhile
    t.settle(api, ["/doc"], polls=2, alive=alive)
    check_eq(health()[0], 503, "/healthz still 503 while the broker is down")

    broker.start()
    t_up = time.monotonic()
    wait_for(lambda: health()[0] == 200, 15, "/healthz to answer 200 after the broker "
             "restarted", interval=0.05, alive=alive)
    took_up = time.monotonic() - t_up
    status, hdrs, doc = health()
    check_eq((doc.get("status"), doc.get("broker")), ("ok", "connected"),
             "/healthz after the broker came back")
    check(took_up <= 6.0, "/healthz was back to 200 only %.1fs after the broker restarted "
          "(outage %.1fs; reconnect backoff 1s doubling)", took_up, t_up - t_down)
    check_eq(scrape(port).value("rest2mqtt_broker_connected"), 1, "broker_connected after")
    check_eq(http_get(port, "/nope")[0], 404, "status of GET /nope")
    check_eq(http_get(port, "/healthz/x")[0], 404, "status of GET /healthz/x")
    report("healthz_follows_broker: 503 %.2fs after the broker stopped; 200 again %.2fs after "
           "it restarted (outage %.1fs)" % (took_down, took_up, t_up - t_down))
    br.stop()


# ---------------------------------------------------------------------------
# SIGTERM during a burst


class Chains:
    """Per endpoint, the events must form a chain v0 -> v1 -> ... (each
    event's before is the previous event's after): a gap is a lost change.
    A repeated id is a redelivery: byte-identical, not applied again."""

    def __init__(self, start):
        self.state = dict(start)  # endpoint -> doc
        self.first = {}  # id -> (payload, first arrival time)
        self.dups = []  # (id, arrival time of the first copy)
        self.consumed = 0
        self.applied = 0

    def feed(self, sub):
        evs = sub.events()
        for m in evs[self.consumed:]:
            ev = m.json()
            eid = ev.get("id")
            if eid in self.first:
                check(m.payload == self.first[eid][0], "redelivered event %s differs from its "
                      "first copy", eid)
                self.dups.append((eid, self.first[eid][1]))
                continue
            ep = ev.get("data", {}).get("endpoint")
            check(ep in self.state, "event for an unknown endpoint: %r", m)
            check_document_event(ev, ep, self.state[ep], ev["data"].get("after"))
            check_eq(m.topic, "rest2mqtt/" + ep, "topic")
            check(ev["data"]["after"]["v"] > self.state[ep]["v"], "event for %s goes back "
                  "from v%s to v%s", ep, self.state[ep]["v"], ev["data"]["after"]["v"])
            self.first[eid] = (m.payload, m.t)
            self.state[ep] = ev["data"]["after"]
            self.applied += 1
        self.consumed = len(evs)
        return self

    def at(self, want):
        return all(self.state[k]["v"] == want[k]["v"] for k in want)


@case
def sigterm_during_burst_loses_nothing(t):
    broker, sub, api = stack(t)
    n = 50
    names = ["b%02d" % i for i in range(n)]
    paths = ["/burst/%02d" % i for i in range(n)]
    lock = threading.Lock()
    cur = {e: {"ep": e, "v": 0} for e in names}
    for e, p in zip(names, paths):
        api.set(p, Reply.json(cur[e]))
    # jitter spreads the first connections: the fake API listens with a
    # backlog of 5, and 50 simultaneous connects would time out
    eps = [doc_endpoint(api, e, path=p, jitter="100%") for e, p in zip(names, paths)]
    chains = Chains(cur)
    stop = threading.Event()

    def bump_all():
        with lock:
            for e, p in zip(names, paths):
                cur[e] = {"ep": e, "v": cur[e]["v"] + 1}
                # answered after 150 ms: at any moment most polls are in
                # progress, so a stop always has changes in flight
                api.set(p, Reply.slow(0.15, Reply.json(cur[e])))

    def mutator():
        while not stop.wait(0.12):
            bump_all()

    def burst(br, until):
        """Change all 50 endpoints every 120 ms until until() holds."""
        stop.clear()
        th = threading.Thread(target=mutator, daemon=True, name="mutator")
        th.start()
        t.defer(stop.set)
        try:
            wait_for(until, 15, "events to flow", interval=0.005, alive=(br,))
        except Failure:
            stop.set()
            raise
        return th

    # Phase 1: straight to the broker. The stop must acknowledge everything.
    cfg = t.config(broker.port, eps)
    br = launch(t, broker, cfg, "bridge-1")
    for p in paths:
        api.wait_requests(p, 1, finished=True, timeout=15)
    t.settle(api, paths, polls=1, alive=(br,))
    assert_no_events(sub, "baseline of %d endpoints" % n)
    th = burst(br, lambda: len(sub.events()) >= 120)
    t0 = time.monotonic()
    br.proc.signal(signal.SIGTERM)
    at_term = len(sub.events())
    stop.set()
    th.join(2)
    br.stop(signal.SIGTERM, expect=0, timeout=15)
    took = time.monotonic() - t0
    with lock:
        final1 = {e: dict(d) for e, d in cur.items()}
    log = "\n".join(br.log_lines())
    check("shutdown_timeout reached" not in log, "a graceful stop with a healthy broker left "
          "events unacknowledged:\n%s", log[-2000:])
    quiesce()  # what the broker acknowledged reaches the subscriber
    before1 = len(sub.events())
    check(before1 > at_term, "no event was delivered between SIGTERM and the exit: nothing "
          "was in flight, the case tests nothing")
    chains.feed(sub)
    waiting = outbox_waiting(run_state(t, "list", br.config_path), "state list after stop 1")
    check_eq(waiting, 0, "outbox after a graceful stop with a healthy broker")
    br = launch(t, broker, cfg, "bridge-2")
    wait_for(lambda: chains.feed(sub).at(final1), 15, "the chains to reach the API's "
             "documents after the restart", interval=0.05, alive=(br,))
    t.settle(api, paths, polls=1, alive=(br,))
    chains.feed(sub)
    check(not chains.dups, "phase 1: %d event ids delivered twice after a graceful stop that "
          "had everything acknowledged: %s", len(chains.dups), chains.dups[:5])
    report("sigterm_during_burst_loses_nothing: phase 1 (healthy broker): %d events before "
           "SIGTERM, %d between SIGTERM and the exit (%.2fs), %d after the restart, "
           "0 duplicates" % (at_term, before1 - at_term, took, len(sub.events()) - before1))
    br.stop()

    # Phase 2: the broker's PUBACKs are held back during the burst, and
    # shutdown_timeout is 1s: unacknowledged events stay in the outbox.
    proxy = AckHoldProxy(t, broker.port)
    cfg2 = t.config(proxy.port, eps, shutdown_timeout="1s")
    br = launch(t, broker, cfg2, "bridge-3")
    t.settle(api, paths, polls=1, alive=(br,))
    mark = len(sub.events())
    th = burst(br, lambda: len(sub.events()) >= mark + 60)
    proxy.hold.set()
    t_hold = time.monotonic()
    try:
        wait_for(lambda: sum(1 for m in sub.events()[mark:] if m.t > t_hold) >= 10, 10,
                 "10 events published while PUBACKs are held back", interval=0.005,
                 alive=(br,))
    finally:
        t0 = time.monotonic()
        br.proc.signal(signal.SIGTERM)
        stop.set()
        th.join(2)
    br.stop(signal.SIGTERM, expect=0, timeout=15)
    took = time.monotonic() - t0
    check(took < 5, "exit took %.1fs with shutdown_timeout 1s", took)
    with lock:
        final2 = {e: dict(d) for e, d in cur.items()}
    proxy.hold.clear()
    log = br.log_lines()
    warn = [l for l in log if "shutdown_timeout reached" in l]
    check(warn, "no 'shutdown_timeout reached' warning although PUBACKs were held back; "
          "log tail:\n%s", "\n".join(log[-15:]))
    m = re.search(r"count=(\d+)", warn[0])
    quiesce()
    chains.feed(sub)
    before2 = len(sub.events())
    waiting = outbox_waiting(run_state(t, "list", br.config_path), "state list after stop 2")
    check(waiting > 0, "outbox empty although PUBACKs were held back")
    if m:
        check_eq(waiting, int(m.group(1)), "outbox: state list vs the shutdown warning")
    held = {eid for eid, (_, at) in chains.first.items() if at >= t_hold - 0.2}
    br = launch(t, broker, cfg2, "bridge-4")
    line = br.wait_log("resuming", timeout=5)
    check("count=%d" % waiting in line, "the resume line must count the %d events of the "
          "outbox: %s", waiting, line)
    wait_for(lambda: chains.feed(sub).at(final2), 15, "the chains to reach the API's "
             "documents after the restart", interval=0.05, alive=(br,))
    t.settle(api, paths, polls=1, alive=(br,))
    chains.feed(sub)
    p2 = list(chains.dups)
    bad = [(eid, at - t_hold) for eid, at in p2 if eid not in held]
    check(not bad, "%d event ids delivered twice although their first copy arrived more than "
          "0.2s before PUBACKs were held back, i.e. acknowledged (id, arrival - hold): %s",
          len(bad), bad[:5])
    report("sigterm_during_burst_loses_nothing: phase 2 (PUBACKs held): %d events before exit "
           "(%.2fs), outbox %d, %d after the restart, %d redelivered (all unacknowledged); "
           "%d distinct events in all" % (before2, took, waiting, len(sub.events()) - before2,
                                          len(p2), chains.applied))
    br.stop()


# ---------------------------------------------------------------------------
# state list / state prune


@case
def state_list_and_prune(t):
    broker, sub, api = stack(t)
    docs = {e: {"ep": e, "v": 0} for e in ("a", "b", "c")}
    for e, d in docs.items():
        api.set("/" + e, Reply.json(d))

    def cfg_of(*names):
        return t.config(broker.port, [doc_endpoint(api, e) for e in names])
    state = t.path("state.db")

    br = launch(t, broker, cfg_of("a", "b", "c"), "bridge-abc")
    for e in docs:
        api.wait_requests("/" + e, 2, finished=True)
    t.settle(api, ["/a", "/b", "/c"], alive=(br,))
    assert_no_events(sub, "baseline")
    br.stop()
    cfg_abc = br.config_path

    def listing(cfg_path, want_cfg, want_prunable, what):
        lines = run_state(t, "list", cfg_path)
        want = ["%s\tconfigured" % e for e in want_cfg]
        want += ["%s\tnot in config (prunable)" % e for e in want_prunable]
        want.append("outbox: 0 events waiting")
        check_eq(sorted(lines), sorted(want), "state list %s" % what)

    listing(cfg_abc, "abc", "", "(all configured)")
    cfg_a = t.write_config(cfg_of("a"), "only-a.yaml")
    listing(cfg_a, "a", "bc", "with a config of only a")
    # listing changes nothing
    listing(cfg_abc, "abc", "", "again with the full config")

    # b and c change while the bridge runs without them
    br = launch(t, broker, cfg_of("a"), "bridge-a")
    n = {e: api.count("/" + e) for e in docs}
    for e in "bc":
        api.set("/" + e, Reply.json({"ep": e, "v": 1}))
    t.settle(api, ["/a"], polls=3, alive=(br,))
    check_eq({e: api.count("/" + e) for e in "bc"}, {e: n[e] for e in "bc"},
             "polls of b and c while they are not in the config")
    assert_no_events(sub, "a runs alone")
    br.stop()

    # prune with a config of a and b: only c goes
    cfg_ab = t.write_config(cfg_of("a", "b"), "a-b.yaml")
    lines = run_state(t, "prune", cfg_ab)
    check("pruned c" in lines, "state prune must print 'pruned c', got %s", lines)
    check(not any(l.startswith("pruned ") and l != "pruned c" for l in lines),
          "state prune pruned more than c: %s", lines)
    summary = [l for l in lines if re.fullmatch(r"\d+ endpoints? pruned from .*", l)]
    check(summary, "state prune must print 'N endpoints pruned from PATH', got %s", lines)
    check(re.fullmatch(r"1 endpoints? pruned from %s" % re.escape(state), summary[0]),
          "prune summary: expected '1 endpoint(s) pruned from %s', got %r", state, summary[0])
    check_eq(outbox_waiting(lines, "state prune"), 0, "outbox count printed by prune")
    listing(cfg_ab, "ab", "", "after pruning c (config a, b)")
    listing(cfg_a, "a", "b", "after pruning c (config a)")
    lines = run_state(t, "prune", cfg_ab)
    check(any(re.fullmatch(r"0 endpoints? pruned from %s" % re.escape(state), l)
              for l in lines), "a second prune must report 0 endpoints pruned, got %s", lines)
    check(not any(l.startswith("pruned ") for l in lines), "a second prune pruned: %s", lines)

    # all three back: b resumes (its change arrives as one event), c starts
    # over with a silent baseline (its change happened before it was pruned)
    br = launch(t, broker, cfg_of("a", "b", "c"), "bridge-abc-2")
    wait_for(lambda: events_of(sub, "b"), 5, "the event of b", alive=(br,))
    t.settle(api, ["/a", "/b", "/c"], alive=(br,))
    evs = sub.events()
    check_eq(len(evs), 1, "events after a, b, c came back (only b's change: %s)"
             % "; ".join(repr(m) for m in evs[:4]))
    check_message(evs[0], "rest2mqtt/b", "b", docs["b"], {"ep": "b", "v": 1})
    api.set("/c", Reply.json({"ep": "c", "v": 2}))
    wait_for(lambda: events_of(sub, "c"), 5, "the event of c", alive=(br,))
    check_message(events_of(sub, "c")[0], "rest2mqtt/c", "c", {"ep": "c", "v": 1},
                  {"ep": "c", "v": 2})
    t.settle(api, ["/a", "/b", "/c"], alive=(br,))
    check_eq(len(sub.events()), 2, "events in total")
    br.stop()
    listing(cfg_abc, "abc", "", "at the end")


# ---------------------------------------------------------------------------
# JSON logs


TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z (error|warn|info|debug) ")


def json_records(lines, what, stray=None):
    """The records of JSON log lines, checked. A line that is not JSON
    fails, or is appended to `stray` when that list is given."""
    recs = []
    for i, line in enumerate(lines):
        try:
            rec = json.loads(line)
        except ValueError as e:
            if stray is not None:
                if line not in stray:
                    stray.append(line)
                continue
            raise Failure("%s: stderr line %d is not JSON (%s): %r" % (what, i + 1, e, line))
        check(isinstance(rec, dict), "%s: stderr line %d is not a JSON object: %r", what,
              i + 1, line)
        for k in ("ts", "level", "msg"):
            check(k in rec, "%s: stderr line %d has no %r: %r", what, i + 1, k, line)
        check(isinstance(rec["ts"], str) and TS.match(rec["ts"]), "%s: ts of line %d is not "
              "RFC 3339: %r", what, i + 1, rec["ts"])
        check(rec["level"] in ("error", "warn", "info", "debug"), "%s: level of line %d: %r",
              what, i + 1, rec["level"])
        check(isinstance(rec["msg"], str) and rec["msg"], "%s: msg of line %d: %r", what,
              i + 1, rec["msg"])
        recs.append(rec)
    return recs


@case
def log_format_json(t):
    broker, sub, api = stack(t)
    port = free_port()
    api.set("/good", Reply.json({"g": 0}))
    api.set("/bad", Reply.status(500, b'{"error":"boom"}'))

    def cfg(log, *extra):
        eps = [doc_endpoint(api, "good"), doc_endpoint(api, "bad", max_backoff="200ms")]
        eps += [doc_endpoint(api, e) for e in extra]
        for e in extra:
            api.set("/" + e, Reply.json({"e": e}))
        return t.config(broker.port, eps, log=log, metrics={"listen": "127.0.0.1:%d" % port})

    # a config path that needs escaping in JSON
    name = 'bridge "json\\log"'
    br = launch(t, broker, cfg({"format": "json", "level": "info"}), name=name)
    alive = (br,)
    stray = []  # non-JSON lines: reported at the end, after every other check
    api.wait_requests("/bad", 2, finished=True)
    wait_for(lambda: any(r.get("endpoint") == "bad" for r in
                         json_records(complete_lines(br), "json at start", stray)), 5,
             "a JSON record of bad's failure", alive=alive)

    # Odd clients of the metrics server must not put non-JSON lines on
    # stderr either: garbage, and a scraper that gives up in the middle of
    # its request (the pause lets the server read the partial request before
    # the connection closes; nothing to wait for on our side).
    for raw, pause in ((b"BLAH\r\n\r\n", 0), (b"\x00\x01\x02\r\n\r\n", 0),
                       (b"GET /metrics HTTP/1.1\r\nHost: x\r\n", 0.2)):
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(raw)
            time.sleep(pause)
            s.shutdown(socket.SHUT_WR)
            try:
                while s.recv(4096):
                    pass
            except OSError:
                pass
    check_eq(http_get(port, "/healthz")[0], 200, "/healthz")

    # a rejected reload: its error records are JSON objects too
    text = to_yaml(cfg({"format": "json", "level": "info"})) + "\n"
    rewrite(t, br, text.replace("max_backoff:", "max_bakcoff:"))
    mark0 = sighup(br)
    rejected = "configuration reload rejected; the running configuration stays"
    wait_for(lambda: any(r["msg"] == rejected for r in
                         json_records(complete_lines(br, mark0), "json, rejected reload",
                                      stray)),
             5, "the JSON record of the rejected reload", alive=alive)
    errs = [r for r in json_records(complete_lines(br, mark0), "json, rejected", stray)
            if r["msg"] == "reload: configuration error"]
    pat = re.escape(br.config_path) + r":\d+:\d+: error: unknown key 'max_bakcoff'"
    check(errs and re.match(pat, errs[0].get("error", "")), "the JSON record of the reload "
          "error must carry error=\"%s:LINE:COL: error: unknown key ...\", got %s",
          br.config_path, short(errs))

    # reload 1: still json, level warn, one endpoint added
    rewrite(t, br, cfg({"format": "json", "level": "warn"}, "extra"))
    mark1 = sighup(br)
    api.wait_requests("/extra", 2, finished=True)
    # bad recovers (an info record: not logged at warn), then fails again (warn)
    ok = api.set("/bad", Reply.json({"b": 1}))
    api.wait_requests("/bad", 2, reply=ok, finished=True)
    fail = api.set("/bad", Reply.status(404, b"<html>gone</html>", content_type="text/html"))
    api.wait_requests("/bad", 1, reply=fail, finished=True)
    wait_for(lambda: any(r.get("endpoint") == "bad" and r["level"] == "warn" for r in
                         json_records(complete_lines(br, mark1), "json after reload 1",
                                      stray)), 5,
             "the warn record of bad failing again", alive=alive)
    recs = json_records(br.log_lines(), "json log", stray)
    start = [r for r in recs if r["msg"] == "starting"]
    check(start, "no 'starting' record: %s", short(recs[:3]))
    failed = [r for r in recs if r.get("endpoint") == "bad" and r["level"] == "warn"]
    check(failed and isinstance(failed[0].get("error"), str) and failed[0]["error"],
          "the record of a failed poll must carry endpoint and error: %s", short(failed[:1]))
    check(all(isinstance(v, str) for r in recs for v in r.values()), "non-string values")
    r1 = json_records(lines_since(br, mark1), "json after reload 1", stray)
    check(r1 and r1[0]["msg"] == "reloading configuration" and r1[0].get("file") ==
          br.config_path, "the first record after SIGHUP must be 'reloading configuration' "
          "with file=%s, got %s", br.config_path, short(r1[:1]))
    check(not [r for r in r1 if "restart" in r["msg"]], "a reload that changes only log: "
          "and endpoints: must not warn about a restart: %s", short(r1))
    info = [r for r in r1[1:] if r["level"] == "info" and r["msg"] != "configuration reloaded"]
    check(not info, "info records (bad recovered meanwhile) after a reload to log.level warn: "
          "%s", short(info))

    # reload 2: text format, level info; bad recovers -> an info line in text
    rewrite(t, br, cfg({"format": "text", "level": "info"}, "extra"))
    mark2 = sighup(br)
    line = br.wait_log("configuration reloaded", after=mark2)
    check(TEXT_LINE.match(line), "after a reload to log.format text the lines must be text, "
          "got %r", line)
    check_eq(reload_counts(line), {"added": 0, "changed": 0, "unchanged": 3, "removed": 0,
                                   "failed": 0}, "summary of a log-only reload")
    check(not [l for l in lines_since(br, mark2) if "restart" in l], "a reload that changes "
          "only log: must not warn about a restart: %s", lines_since(br, mark2))
    api.set("/bad", Reply.json({"b": 1}))
    rec = br.wait_log("endpoint recovered", after=mark2)
    check(TEXT_LINE.match(rec) and "endpoint=bad" in rec, "recovery line in text format: %r",
          rec)
    br.stop()
    tail_lines = lines_since(br, mark2)
    json_records(br.log_lines()[:mark2], "every line before the switch to text", stray)
    first_text = [i for i, l in enumerate(tail_lines) if TEXT_LINE.match(l)]
    check(first_text, "no text lines after the switch")
    bad = [l for l in tail_lines[first_text[0]:] if not TEXT_LINE.match(l)]
    check(not bad, "lines after the switch to text that are not text records: %s", bad[:3])
    check(not stray, "log.format json: %d stderr line(s) that are not JSON objects: %s",
          len(stray), stray[:5])
    report("log_format_json: %d JSON records, then %d text lines"
           % (mark2, len(tail_lines)))


# ---------------------------------------------------------------------------
# max_concurrent


@case
def max_concurrent_limits_requests_in_flight(t):
    """max_concurrent: 2 with six slow endpoints: never more than two requests
    are open at the API at once, and every endpoint is still polled (due
    polls wait their turn in due order)."""
    api = t.api()
    broker = t.broker()
    broker.start()
    names = ["s%d" % i for i in range(6)]
    for n in names:
        api.set("/" + n, Reply.slow(0.3, Reply.json({"n": n})))
    eps = [doc_endpoint(api, n) for n in names]
    cfg = t.config(broker.port, eps, max_concurrent=2,
                   defaults={"interval": "100ms", "timeout": "5s", "jitter": "0%"})
    br = t.bridge(cfg)
    for n in names:
        api.wait_requests("/" + n, 2, timeout=20, finished=True)
    br.assert_alive()
    # the largest number of requests open at one moment, from the API's log
    marks = []
    for r in api.requests():
        if r.t_end is not None:
            marks += [(r.t, 1), (r.t_end, -1)]
    open_now = peak = 0
    for _, d in sorted(marks, key=lambda m: (m[0], m[1])):
        open_now += d
        peak = max(peak, open_now)
    check(peak <= 2, "max_concurrent 2, yet %d requests were open at once", peak)
    check(peak == 2, "two requests should run in parallel (peak %d)", peak)
    br.stop()
