#!/usr/bin/env python3
"""rest2mqtt end-to-end tests: a real mosquitto on a free loopback port, a
scripted fake legacy API, and the real binary.

    run.py --list                     case names, one per line (meson)
    run.py --bin PATH --case NAME     one case
    run.py --bin PATH                 every case, each in its own process

The binary defaults to $R2M_BIN. Set R2M_E2E_KEEP=1 to keep temp dirs.
Each case reads as a specification: what the API answers, in order, and
exactly which events the broker must (or must not) receive.
"""

import argparse
import copy
import datetime
import decimal
import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fakeapi import Reply  # noqa: E402
from harness import (SCALE, Context, Failure, check, check_eq, free_port,  # noqa: E402
                     loads, quiesce, short, wait_for)

CASE_LIMIT_S = int(55 * SCALE)
CASES = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


# ---------------------------------------------------------------------------
# JSON helpers: exact comparison, RFC 6902, the event contract

def json_equal(a, b):
    """Structural JSON equality; numbers by exact decimal value; true != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, decimal.Decimal)) and isinstance(b, (int, decimal.Decimal)):
        return decimal.Decimal(a) == decimal.Decimal(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    if a is None or b is None:
        return a is None and b is None
    return type(a) is type(b) and a == b


def check_json(got, want, what):
    if not json_equal(got, want):
        raise Failure("%s: expected %s, got %s" % (what, short(want), short(got)))


class PatchError(Exception):
    pass


def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError("bad JSON Pointer %r" % path)
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def _index(arr, tok, allow_end=False):
    if allow_end and tok == "-":
        return len(arr)
    if not re.fullmatch(r"0|[1-9][0-9]*", tok):
        raise PatchError("bad array index %r" % tok)
    i = int(tok)
    if i > len(arr) or (i == len(arr) and not allow_end):
        raise PatchError("array index %d out of range" % i)
    return i


def _get(doc, toks):
    for t in toks:
        if isinstance(doc, dict):
            if t not in doc:
                raise PatchError("no member %r" % t)
            doc = doc[t]
        elif isinstance(doc, list):
            doc = doc[_index(doc, t)]
        else:
            raise PatchError("cannot descend into a scalar at %r" % t)
    return doc


def _add(doc, toks, value):
    if not toks:
        return value
    parent = _get(doc, toks[:-1])
    t = toks[-1]
    if isinstance(parent, dict):
        parent[t] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, t, allow_end=True), value)
    else:
        raise PatchError("add into a scalar")
    return doc


def _remove(doc, toks):
    if not toks:
        raise PatchError("remove of the whole document")
    parent = _get(doc, toks[:-1])
    t = toks[-1]
    if isinstance(parent, dict):
        if t not in parent:
            raise PatchError("remove of missing member %r" % t)
        return doc, parent.pop(t)
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, t))
    raise PatchError("remove from a scalar")


def apply_patch(doc, patch):
    """RFC 6902 JSON Patch (add, remove, replace, move, copy, test)."""
    if not isinstance(patch, list):
        raise PatchError("patch is not an array")
    doc = copy.deepcopy(doc)
    for op in patch:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError("malformed operation %r" % (op,))
        kind, toks = op["op"], _pointer(op["path"])
        if kind == "add":
            doc = _add(doc, toks, copy.deepcopy(op["value"]))
        elif kind == "remove":
            doc, _ = _remove(doc, toks)
        elif kind == "replace":
            if toks:
                _get(doc, toks)  # must exist
                doc, _ = _remove(doc, toks)
            doc = _add(doc, toks, copy.deepcopy(op["value"]))
        elif kind == "move":
            src = _pointer(op["from"])
            if toks[:len(src)] == src and toks != src:
                raise PatchError("move into its own child")
            doc, v = _remove(doc, src)
            doc = _add(doc, toks, v)
        elif kind == "copy":
            doc = _add(doc, toks, copy.deepcopy(_get(doc, _pointer(op["from"]))))
        elif kind == "test":
            if not json_equal(_get(doc, toks), op["value"]):
                raise PatchError("test failed at %r" % op["path"])
        else:
            raise PatchError("unknown op %r" % kind)
    return doc


RFC3339_UTC = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|\+00:00)$")


def check_document_event(ev, endpoint, before, after, instance="e2e"):
    """ev: a parsed CloudEvent for a document endpoint (DESIGN.md section 4)."""
    check(isinstance(ev, dict), "event is not a JSON object: %s", short(ev))
    check_eq(ev.get("specversion"), "1.0", "specversion")
    check(isinstance(ev.get("id"), str) and ev["id"] != "", "id must be a non-empty string, "
          "got %s", short(ev.get("id")))
    check_eq(ev.get("source"), "rest2mqtt://%s/%s" % (instance, endpoint), "source")
    check_eq(ev.get("type"), "rest2mqtt.document.changed", "type")
    check("subject" not in ev, "a document event has no subject, got %s", short(ev.get("subject")))
    ts = ev.get("time")
    m = RFC3339_UTC.match(ts) if isinstance(ts, str) else None
    check(m is not None, "time must be RFC 3339 UTC, got %s", short(ts))
    t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(
        tzinfo=datetime.timezone.utc)
    skew = abs((datetime.datetime.now(datetime.timezone.utc) - t).total_seconds())
    check(skew < 300, "time %s is %.0fs away from now", ts, skew)
    check_eq(ev.get("datacontenttype"), "application/json", "datacontenttype")
    data = ev.get("data")
    check(isinstance(data, dict), "data must be an object, got %s", short(data))
    check_eq(data.get("endpoint"), endpoint, "data.endpoint")
    check_eq(data.get("op"), "changed", "data.op")
    check("before" in data, "data.before missing")
    check_json(data.get("before"), before, "data.before")
    check_json(data.get("after"), after, "data.after")
    patch = data.get("patch")
    check(isinstance(patch, list), "data.patch must be an RFC 6902 array, got %s", short(patch))
    try:
        patched = apply_patch(data["before"], patch)
    except (PatchError, KeyError) as e:
        raise Failure("data.patch does not apply to data.before (%s): %s" % (e, short(patch)))
    check_json(patched, after, "data.before with data.patch applied")
    return ev


def check_message(m, topic, endpoint, before, after, mqtt5=True, instance="e2e"):
    """An MQTT message carrying a document event."""
    check_eq(m.topic, topic, "event topic")
    check_eq(m.qos, 1, "QoS of the event on %s" % topic)
    if mqtt5:
        check_eq(m.content_type, "application/cloudevents+json", "MQTT 5 content type")
    return check_document_event(m.json(), endpoint, before, after, instance)


def without(doc, *keys):
    return {k: v for k, v in doc.items() if k not in keys}


def assert_no_events(sub, what, since=0):
    evs = sub.events()[since:]
    check(not evs, "%s: expected no event, got %d: %s", what, len(evs),
          "; ".join(repr(m) for m in evs[:3]))


def exactly_n_events(t, sub, api, paths, n, what, alive, timeout=10.0):
    """Wait for n events, then for evidence of further polls, then require
    that there are exactly n."""
    sub.wait_events(n, timeout=timeout, alive=alive)
    t.settle(api, paths, polls=2, alive=alive)
    evs = sub.events()
    check(len(evs) == n, "%s: expected exactly %d event(s), got %d: %s", what, n, len(evs),
          "; ".join(repr(m) for m in evs[:6]))
    return evs


def expect_failure_logged(br, sub, mark, what, endpoint="doc"):
    """A failed poll logs a line naming the endpoint; when none comes, say
    whether the bridge took the broken reply for data instead."""
    try:
        br.wait_log("endpoint=" + endpoint, after=mark)
    except Failure as e:
        assert_no_events(sub, what)
        raise Failure("%s: %s" % (what, e))


def stack(t, persistence=False, persistent_sub=False):
    broker = t.broker(persistence=persistence)
    sub = t.subscriber(broker, persistent=persistent_sub)
    api = t.api()
    return broker, sub, api


def doc_endpoint(api, name="doc", path=None, **extra):
    ep = {"name": name, "url": api.url(path or "/" + name)}
    ep.update(extra)
    return ep


def start_bridge(t, broker, config, version_code=5, nth=1):
    br = t.bridge(config)
    proto = broker.wait_client("e2e", timeout=15, alive=(br,), nth=nth)
    check_eq(proto, version_code, "MQTT protocol the bridge connected with (mosquitto code: "
             "2 = 3.1.1, 5 = 5)")
    return br


# ---------------------------------------------------------------------------
# Command line

@case
def cli_version_help(t):
    r = t.run_cli(["--version"])
    check_eq(r.returncode, 0, "exit code of --version")
    out = r.stdout.decode().strip()
    m = re.fullmatch(r"rest2mqtt (\d+\.\d+\.\d+)", out)
    check(m is not None, "--version must print 'rest2mqtt X.Y.Z', got %r", out)
    meson = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "meson.build")
    if os.path.exists(meson):
        pv = re.search(r"\bversion\s*:\s*'([^']+)'", open(meson).read())
        if pv:
            check_eq(m.group(1), pv.group(1), "version vs meson.build project version")

    r = t.run_cli(["--help"])
    check_eq(r.returncode, 0, "exit code of --help")
    out = r.stdout.decode()
    for word in ("run", "check", "once", "-c"):
        check(word in out, "--help output on stdout must mention %r, got %s", word, short(out))


@case
def cli_bad_usage(t):
    usage = re.compile(r"usage|--help", re.I)
    for args in (["frobnicate", "-c", t.path("x.yaml")], ["--frobnicate"],
                 ["check", "-c", t.path("x.yaml"), "--bogus-option"]):
        r = t.run_cli(args)
        err = r.stderr.decode()
        check_eq(r.returncode, 1, "exit code of %s" % " ".join(args))
        check(usage.search(err), "%s: stderr must carry a usage hint, got %s", " ".join(args),
              short(err))

    missing = os.path.join(t.tmp, "no-such-dir", "missing.yaml")
    for cmd in (["check"], ["run"], ["once"], []):
        args = cmd + ["-c", missing]
        r = t.run_cli(args)
        err = r.stderr.decode()
        check_eq(r.returncode, 1, "exit code of %s (missing config)" % " ".join(args))
        check(missing in err, "%s: stderr must name the missing file, got %s", " ".join(args),
              short(err))


@case
def check_ok(t):
    api = t.api()
    eps = [
        doc_endpoint(api, "doc", ignore=["/fetchedAt"]),
        doc_endpoint(api, "flight-lh123", path="/flights/LH123",
                     topic="airport/flights/LH123"),
        doc_endpoint(api, "tmpl_2", path="/t2", topic="{prefix}/x/{endpoint}"),
    ]
    cfg = t.config(free_port(), eps)  # no broker: check must not need one
    path = t.write_config(cfg, "ok.yaml")
    r = t.run_cli(["check", "-c", path])
    out, err = r.stdout.decode(), r.stderr.decode()
    check_eq(r.returncode, 0, "exit code of check on a valid config (stderr: %s)" % short(err))
    check("error" not in err.lower(), "check on a valid config printed errors: %s", short(err))
    for name, url, topic in (("doc", api.url("/doc"), "rest2mqtt/doc"),
                             ("flight-lh123", api.url("/flights/LH123"), "airport/flights/LH123"),
                             ("tmpl_2", api.url("/t2"), "rest2mqtt/x/tmpl_2")):
        for what, s in (("name", name), ("url", url), ("topic", topic)):
            check(s in out, "check output lacks the %s %r of endpoint %s:\n%s", what, s, name, out)
    check_eq(api.count(), 0, "requests made by check")


@case
def check_errors(t):
    text = """\
mqtt:
  url: mqtt://127.0.0.1:%d
  client_id: e2e
  versoin: 5
state:
  path: %s
defaults:
  interval: 200ms
endpoints:
  - name: doc
    url: http://127.0.0.1:9/doc
    intervall: 5s
  - name: other
    url: http://127.0.0.1:9/other
    tpoic: x/y
""" % (free_port(), t.path("state.db"))
    path = t.write("bad.yaml", text)
    lines = text.split("\n")

    def pos(key):
        for i, line in enumerate(lines):
            j = line.find(key + ":")
            if j >= 0:
                return i + 1, j + 1
        raise AssertionError(key)

    expected = [(pos(k), k, hint) for k, hint in
                (("versoin", "version"), ("intervall", "interval"), ("tpoic", "topic"))]
    for cmd in ("check", "run"):
        r = t.run_cli([cmd, "-c", path])
        err = r.stderr.decode()
        check_eq(r.returncode, 1, "exit code of %s on a config with errors" % cmd)
        err_lines = err.splitlines()
        found = []
        for (line, col), key, hint in expected:
            prefix = "%s:%d:%d: error: " % (path, line, col)
            hits = [i for i, l in enumerate(err_lines)
                    if l.startswith(prefix) and "did you mean '%s'" % hint in l]
            check(hits, "%s: no diagnostic '%s...' for unknown key %r with \"did you mean "
                  "'%s'\"; stderr:\n%s", cmd, prefix, key, hint, err)
            found.append(hits[0])
        check(found == sorted(found), "%s: diagnostics are not in file order:\n%s", cmd, err)


# ---------------------------------------------------------------------------
# once

@case
def once_prints_event(t):
    api = t.api()
    doc = {"flight": "LH123", "gate": "A1", "eta": "09:15", "fetchedAt": "2026-01-01T00:00:00Z"}
    other = {"n": 1}
    api.set("/doc", Reply.json(doc))
    api.set("/other", Reply.json(other))
    eps = [doc_endpoint(api, "doc", ignore=["/fetchedAt"]), doc_endpoint(api, "other")]

    def once(name, extra):
        cfg = t.config(free_port(), eps)  # no broker behind this port
        cfg["state"]["path"] = t.path(name + ".db")  # no previous state
        r = t.run_cli(["once", "-c", t.write_config(cfg, name + ".yaml")] + extra)
        check_eq(r.returncode, 0, "exit code of once %s (stderr: %s)" % (
            " ".join(extra), short(r.stderr.decode())))
        return [loads(l) for l in r.stdout.decode().splitlines() if l.strip()]

    evs = once("all", [])
    check_eq(len(evs), 2, "events printed by once for two endpoints")
    by_ep = {e.get("data", {}).get("endpoint"): e for e in evs}
    check_eq(sorted(by_ep), ["doc", "other"], "endpoints of the printed events")
    check_document_event(by_ep["doc"], "doc", None, without(doc, "fetchedAt"))
    check_document_event(by_ep["other"], "other", None, other)
    check_eq((api.count("/doc"), api.count("/other")), (1, 1), "requests per endpoint by once")

    evs = once("one", ["-e", "doc"])
    check_eq(len(evs), 1, "events printed by once -e doc")
    check_document_event(evs[0], "doc", None, without(doc, "fetchedAt"))
    check_eq((api.count("/doc"), api.count("/other")), (2, 1),
             "requests per endpoint after once -e doc (other must not be polled)")


# ---------------------------------------------------------------------------
# Document mode through the broker

def document_flow(t, version, version_code):
    broker, sub, api = stack(t)
    v0 = {"id": 12345678901234567891, "status": "boarding", "gate": "A1", "stops": [1, 2, 3],
          "meta": {"k": "v"}, "fetchedAt": "2026-01-01T00:00:00Z"}
    api.set("/doc", Reply.json(v0))
    br = start_bridge(t, broker, t.config(broker.port, [doc_endpoint(api, "doc",
                      ignore=["/fetchedAt"])], version=version), version_code)
    api.wait_requests("/doc", 2, finished=True)
    t.settle(api, ["/doc"], alive=(br,))
    assert_no_events(sub, "first polls (silent baseline)")

    mqtt5 = version_code == 5
    # 1: several kinds of change at once -> exactly one event
    v1 = {"id": 12345678901234567891, "status": "departed", "stops": [1, 3], "eta": None,
          "meta": {"k": "v", "n": 1}, "fetchedAt": "2026-01-01T00:05:00Z"}
    api.set("/doc", Reply.json(v1))
    evs = exactly_n_events(t, sub, api, ["/doc"], 1, "after change 1", alive=(br,))
    e1 = check_message(evs[0], "rest2mqtt/doc", "doc", without(v0, "fetchedAt"),
                       without(v1, "fetchedAt"), mqtt5)

    # 2: only the 20th digit of a big integer -> a change (exact decimal compare)
    v2 = dict(v1, id=12345678901234567892)
    api.set("/doc", Reply.json(v2))
    evs = exactly_n_events(t, sub, api, ["/doc"], 2, "after change 2 (big integer)",
                           alive=(br,))
    e2 = check_message(evs[1], "rest2mqtt/doc", "doc", without(v1, "fetchedAt"),
                       without(v2, "fetchedAt"), mqtt5)

    # 3: back to the first document -> a third, distinct event
    api.set("/doc", Reply.json(v0))
    evs = exactly_n_events(t, sub, api, ["/doc"], 3, "after change 3 (back to v0)",
                           alive=(br,))
    e3 = check_message(evs[2], "rest2mqtt/doc", "doc", without(v2, "fetchedAt"),
                       without(v0, "fetchedAt"), mqtt5)
    ids = [e1["id"], e2["id"], e3["id"]]
    check_eq(len(set(ids)), 3, "distinct event ids %s" % ids)
    br.stop()


@case
def document_change_one_event(t):
    document_flow(t, 5, 5)


@case
def no_event_without_semantic_change(t):
    broker, sub, api = stack(t)
    base = ('{"id":7,"name":"caf\u00e9","path":"a/b","price":1.0,"zero":0,'
            '"big":12345678901234567891,"tags":["x","y"],"nested":{"a":1,"b":[1,2]},'
            '"fetchedAt":"2026-01-01T00:00:00Z"}')
    api.set("/doc", Reply.json(base))
    br = start_bridge(t, broker, t.config(broker.port, [doc_endpoint(api, "doc",
                      ignore=["/fetchedAt"])]))
    api.wait_requests("/doc", 2, finished=True)
    t.settle(api, ["/doc"], alive=(br,))
    assert_no_events(sub, "baseline")

    variants = [
        ("keys reordered",
         '{"nested":{"b":[1,2],"a":1},"tags":["x","y"],"big":12345678901234567891,"zero":0,'
         '"price":1.0,"path":"a/b","name":"caf\u00e9","fetchedAt":"2026-01-01T00:00:00Z",'
         '"id":7}'),
        ("whitespace",
         '{\n\t"id" : 7,\r\n  "name":\t"caf\u00e9" , "path": "a/b",\n "price": 1.0 ,'
         ' "zero" :0, "big": 12345678901234567891,\n "tags": [ "x" ,\n "y" ],'
         ' "nested": { "a": 1, "b": [ 1 , 2 ] },\n "fetchedAt": "2026-01-01T00:00:00Z"\n}\n'),
        ("string escapes",
         '{"id":7,"name":"caf\\u00e9","path":"a\\/b","price":1.0,"zero":0,'
         '"big":12345678901234567891,"tags":["\\u0078","y"],"nested":{"\\u0061":1,"b":[1,2]},'
         '"fetchedAt":"2026-01-01T00:00:00Z"}'),
        ("numbers 1 / 7.0 / -0",
         '{"id":7.0,"name":"caf\u00e9","path":"a/b","price":1,"zero":-0,'
         '"big":12345678901234567891,"tags":["x","y"],"nested":{"a":1.00,"b":[1,2.0]},'
         '"fetchedAt":"2026-01-01T00:00:00Z"}'),
        ("numbers 1e0 / 0.7e1 / 0.0 / 1.2345678901234567891E19",
         '{"id":0.7e1,"name":"caf\u00e9","path":"a/b","price":1e0,"zero":0.0,'
         '"big":1.2345678901234567891E19,"tags":["x","y"],"nested":{"a":10e-1,"b":[1E0,2e+0]},'
         '"fetchedAt":"2026-01-01T00:00:00Z"}'),
        ("numbers 100e-2 / 70E-1 / -0e3",
         '{"id":70E-1,"name":"caf\u00e9","path":"a/b","price":100e-2,"zero":-0e3,'
         '"big":123456789012345678910e-1,"tags":["x","y"],"nested":{"a":1,"b":[1,2]},'
         '"fetchedAt":"2026-01-01T00:00:00Z"}'),
        ("ignored field changed", base.replace("2026-01-01T00:00:00Z", "2027-12-31T23:59:59Z")),
        ("ignored field removed", base.replace(',"fetchedAt":"2026-01-01T00:00:00Z"', "")),
        ("ignored field became an object",
         base.replace('"2026-01-01T00:00:00Z"', '{"at":"now","n":[1,2]}')),
        ("all of it at once",
         ' { "fetchedAt" : null , "nested" : { "b" : [ 1e0 , 0.2e1 ] , "\\u0061" : 1.0 } ,'
         ' "zero":-0.0, "tags":["x","\\u0079"], "price":0.1e1, "path":"a\\/b",'
         ' "name":"caf\\u00E9", "big":12345678901234567891.000, "id":7 } '),
    ]
    for what, body in variants:
        r = api.set("/doc", Reply.json(body, label=what))
        api.wait_requests("/doc", 2, reply=r, finished=True, timeout=10)
        quiesce(api, ["/doc"], alive=(br,))
        br.assert_alive()
        assert_no_events(sub, "variant '%s'" % what)

    # The bridge is alive and does see real changes: a 1.0 -> 1.5 change.
    changed = base.replace('"price":1.0', '"price":1.5')
    api.set("/doc", Reply.json(changed))
    evs = exactly_n_events(t, sub, api, ["/doc"], 1, "after a real change", alive=(br,))
    before = without(loads(base), "fetchedAt")
    check_message(evs[0], "rest2mqtt/doc", "doc", before, dict(before, price=decimal.Decimal(
        "1.5")))
    br.stop()


# ---------------------------------------------------------------------------
# Failures

def _deep(depth):
    return '{"deep":' + "[" * depth + "1" + "]" * depth + ',"id":1}'


@case
def failed_polls_emit_nothing(t):
    broker, sub, api = stack(t)
    good_doc = {"id": 1, "name": "good", "n": [1, 2, 3], "fetchedAt": "t0"}
    good = api.set("/doc", Reply.json(good_doc, label="good"))
    cfg = t.config(broker.port, [doc_endpoint(api, "doc", ignore=["/fetchedAt"],
                                              max_body="1MiB", timeout="1s")])
    br = start_bridge(t, broker, cfg)
    api.wait_requests("/doc", 2, finished=True)
    t.settle(api, ["/doc"], alive=(br,))
    assert_no_events(sub, "baseline")

    # Bodies of error replies are valid JSON documents that differ from the
    # good one: taking them for data would produce an event.
    other = '{"id":2,"name":"error body"}'
    failures = [
        ("connection refused", None),
        ("timeout (server hangs)", Reply.hang()),
        ("status 500", Reply.status(500, other)),
        ("status 404", Reply.status(404, other)),
        ("200 with an HTML body", Reply.raw(
            "<!DOCTYPE html><html><body><h1>Maintenance</h1></body></html>",
            content_type="text/html")),
        ("truncated JSON", Reply.json('{"id":1,"name":"good","n":[1,2')),
        ("connection closed without a response", Reply.close()),
        ("body over max_body with Content-Length", Reply.big(2 * 1024 * 1024)),
        ("body over max_body, chunked without length", Reply.endless()),
        ("JSON nested deeper than max_depth", Reply.json(_deep(100))),
    ]
    for what, reply in failures:
        mark = len(br.log_lines())
        if reply is None:
            api.refuse()
            try:
                expect_failure_logged(br, sub, mark, what)
            finally:
                api.resume()
        else:
            api.set("/doc", reply)
            api.wait_requests("/doc", 1, reply=reply, finished=True, timeout=10)
            expect_failure_logged(br, sub, mark, what)
        n = api.count("/doc", reply=good)
        api.set("/doc", good)  # the same document as before the failure
        api.wait_requests("/doc", n + 2, reply=good, finished=True, timeout=15)
        quiesce(api, ["/doc"], alive=(br,))
        br.assert_alive()
        assert_no_events(sub, "%s, then the same document again" % what)

    # A failure directly followed by a changed document: the change is
    # reported against the last good document (the failure did not reset it).
    fail = api.set("/doc", Reply.status(503, other))
    api.wait_requests("/doc", 1, reply=fail, finished=True)
    changed = dict(good_doc, name="changed", fetchedAt="t1")
    api.set("/doc", Reply.json(changed))
    evs = exactly_n_events(t, sub, api, ["/doc"], 1, "after a failure and then a change",
                           alive=(br,))
    check_message(evs[0], "rest2mqtt/doc", "doc", without(good_doc, "fetchedAt"),
                  without(changed, "fetchedAt"))
    br.stop()


def _sanitized(path):
    try:
        with open(path, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


def check_cut_off(reqs):
    for r in reqs:
        check(r.outcome == "client_closed", "the endless body was not cut off by the bridge: "
              "outcome %s after %d bytes", r.outcome, r.bytes_sent)
        check(r.bytes_sent < 32 * 1024 * 1024, "the bridge read %d bytes of an endless body "
              "with max_body 1MiB", r.bytes_sent)


@case
def max_body_unsized(t):
    broker, sub, api = stack(t)
    good_doc = {"id": 1, "name": "small"}
    good = api.set("/doc", Reply.json(good_doc))
    cfg = t.config(broker.port, [doc_endpoint(api, "doc", max_body="1MiB")])
    br = start_bridge(t, broker, cfg)
    api.wait_requests("/doc", 2, finished=True)
    t.settle(api, ["/doc"], alive=(br,))
    assert_no_events(sub, "baseline")
    rss0 = br.rss_kb()
    check(rss0 is not None, "cannot read VmRSS of the bridge")

    peak = [rss0]
    stop = threading.Event()

    def sample():
        while not stop.wait(0.01):
            v = br.rss_kb()
            if v:
                peak[0] = max(peak[0], v)
    th = threading.Thread(target=sample, daemon=True)
    th.start()
    try:
        mark = len(br.log_lines())
        endless = api.set("/doc", Reply.endless())
        api.wait_requests("/doc", 3, reply=endless, finished=True, timeout=20)
        check_cut_off(api.requests("/doc", reply=endless))
        expect_failure_logged(br, sub, mark, "endless chunked body")
        n = api.count("/doc", reply=good)
        api.set("/doc", good)
        api.wait_requests("/doc", n + 2, reply=good, finished=True, timeout=15)
        quiesce(api, ["/doc"], alive=(br,))
    finally:
        stop.set()
        th.join(2)
    assert_no_events(sub, "endless body, then the same document again")
    check_cut_off(api.requests("/doc", reply=endless))
    limit_mb = int(os.environ.get("R2M_E2E_RSS_LIMIT_MB", "64"))
    if _sanitized(t.bin):  # shadow memory and quarantine: judge growth only
        check(peak[0] - rss0 < limit_mb * 1024, "VmRSS grew by %d kB (from %d kB) while "
              "reading endless bodies", peak[0] - rss0, rss0)
    else:
        check(peak[0] < limit_mb * 1024, "VmRSS peaked at %d kB (limit %d MB; %d kB before)",
              peak[0], limit_mb, rss0)

    changed = dict(good_doc, name="changed")
    api.set("/doc", Reply.json(changed))
    evs = exactly_n_events(t, sub, api, ["/doc"], 1, "after a real change", alive=(br,))
    check_message(evs[0], "rest2mqtt/doc", "doc", good_doc, changed)
    br.stop()


@case
def slow_endpoint_isolated(t):
    broker, sub, api = stack(t)
    api.set("/slow", Reply.hang())
    api.set("/fast", Reply.json({"n": 0}))
    cfg = t.config(broker.port, [doc_endpoint(api, "slow", timeout="5s"),
                                 doc_endpoint(api, "fast", interval="100ms")])
    br = start_bridge(t, broker, cfg)
    api.wait_requests("/slow", 1)
    api.wait_requests("/fast", 3, finished=True)
    t.settle(api, ["/fast"], alive=(br,))
    assert_no_events(sub, "baseline")
    t_slow = api.requests("/slow")[0].t

    # Change /fast every 0.4 s until well past the slow endpoint's timeout.
    latencies, during_hang, i = [], 0, 0
    while i < 40 and (i < 8 or time.monotonic() < t_slow + 6.0):
        i += 1
        if api.active("/slow") > 0:
            during_hang += 1
        t0 = time.monotonic()
        api.set("/fast", Reply.json({"n": i}))
        sub.wait_events(i, timeout=5, alive=(br,))
        latencies.append(sub.events()[i - 1].t - t0)
        wait_for(lambda: time.monotonic() >= t0 + 0.4, 1, "pacing")
    t.settle(api, ["/fast"], alive=(br,))
    evs = sub.events()
    check_eq(len(evs), i, "events for %d changes of the fast endpoint" % i)
    for k, m in enumerate(evs, 1):
        check_message(m, "rest2mqtt/fast", "fast", {"n": k - 1}, {"n": k})
    worst = max(latencies)
    check(worst < 1.0, "a change of the 100ms endpoint took %.2fs to arrive while the other "
          "endpoint hung (latencies %s)", worst, ["%.2f" % x for x in latencies])
    check(during_hang >= 5, "only %d changes happened while /slow was hanging", during_hang)
    first = api.requests("/slow")[0]
    check(first.t_end is not None, "the bridge did not give up on the hanging request")
    took = first.t_end - first.t
    check(4.5 <= took <= 7.0, "the hanging request (timeout 5s) was dropped after %.2fs", took)
    br.wait_log("endpoint=slow", timeout=2)
    br.stop()


# ---------------------------------------------------------------------------
# Broker, signals, files, topics, scale

@case
def broker_restart_delivers(t):
    # persistence + a persistent subscriber session: messages published while
    # the subscriber is still reconnecting wait for it in the broker.
    broker, sub, api = stack(t, persistence=True, persistent_sub=True)
    docs = [{"v": k, "note": "version %d" % k} for k in range(5)]
    replies = [Reply.json(d, label="v%d" % k) for k, d in enumerate(docs)]
    api.set("/doc", replies[0])
    br = start_bridge(t, broker, t.config(broker.port, [doc_endpoint(api, "doc")]))
    api.wait_requests("/doc", 2, finished=True)
    t.settle(api, ["/doc"], alive=(br,))
    assert_no_events(sub, "baseline")

    api.set("/doc", replies[1])
    exactly_n_events(t, sub, api, ["/doc"], 1, "before the broker restart", alive=(br,))

    broker.stop()
    for k in (2, 3):  # two changes while the broker is away
        api.set("/doc", replies[k])
        api.wait_requests("/doc", 2, reply=replies[k], finished=True, timeout=10)
    br.assert_alive()
    broker.start()
    broker.wait_client("e2e", timeout=30, alive=(br,))
    evs = exactly_n_events(t, sub, api, ["/doc"], 3, "after the broker came back",
                           alive=(br,), timeout=30)
    for k, m in enumerate(evs, 1):
        check_message(m, "rest2mqtt/doc", "doc", docs[k - 1], docs[k])
    check_eq(len({m.json()["id"] for m in evs}), 3, "distinct event ids")

    api.set("/doc", replies[4])
    evs = exactly_n_events(t, sub, api, ["/doc"], 4, "a change after the restart",
                           alive=(br,))
    check_message(evs[3], "rest2mqtt/doc", "doc", docs[3], docs[4])
    br.stop()


@case
def sigterm_exit_zero(t):
    broker, sub, api = stack(t)
    api.set("/doc", Reply.json({"a": 1}))
    cfg = t.config(broker.port, [doc_endpoint(api, "doc")])
    for nth, (sig, args) in enumerate(((signal.SIGTERM, ("run",)), (signal.SIGINT, ())), 1):
        br = t.bridge(cfg, args=args, name="bridge-%s" % sig.name)
        broker.wait_client("e2e", timeout=15, alive=(br,), nth=nth)
        n = api.count("/doc", finished=True)
        api.wait_requests("/doc", n + 2, finished=True)
        took = br.stop(sig, expect=0, timeout=10)
        check(took < 5, "%s: exit took %.1fs", sig.name, took)
    assert_no_events(sub, "two runs over an unchanged document")


@case
def file_url_document(t):
    broker, sub, api = stack(t)
    api.set("/tick", Reply.json({}))  # a clock: proof that the bridge polls
    doc = {"flight": "LH123", "gate": "A1", "eta": "09:15", "fetchedAt": "t0"}
    path = t.write("doc.json", '{"flight":"LH123","gate":"A1","eta":"09:15","fetchedAt":"t0"}')
    eps = [{"name": "doc", "url": "file://" + path, "ignore": ["/fetchedAt"]},
           doc_endpoint(api, "tick")]
    br = start_bridge(t, broker, t.config(broker.port, eps))
    t.settle(api, ["/tick"], polls=4, alive=(br,))
    assert_no_events(sub, "baseline")

    for what, body in (
            ("reordered, whitespace", '{ "eta" : "09:15",\n "gate": "A1", "flight":"LH123",'
                                      '\n"fetchedAt":"t0" }\n'),
            ("ignored field changed", '{"flight":"LH123","gate":"A1","eta":"09:15",'
                                      '"fetchedAt":"t1"}')):
        t.write("doc.json", body)
        t.settle(api, ["/tick"], polls=4, alive=(br,))
        assert_no_events(sub, what)

    mark = len(br.log_lines())
    os.unlink(path)
    expect_failure_logged(br, sub, mark, "file missing")
    t.settle(api, ["/tick"], polls=2, alive=(br,))
    assert_no_events(sub, "file missing")
    t.write("doc.json", '{"flight":"LH123","gate":"A1","eta":"09:15","fetchedAt":"t2"}')
    t.settle(api, ["/tick"], polls=4, alive=(br,))
    assert_no_events(sub, "file back with the same document")

    changed = dict(doc, gate="B7")
    t.write("doc.json", '{"flight":"LH123","gate":"B7","eta":"09:15","fetchedAt":"t3"}')
    sub.wait_events(1, alive=(br,))
    t.settle(api, ["/tick"], polls=4, alive=(br,))
    evs = sub.events()
    check_eq(len(evs), 1, "events after one change of the file")
    check_message(evs[0], "rest2mqtt/doc", "doc", without(doc, "fetchedAt"),
                  without(changed, "fetchedAt"))
    br.stop()


@case
def mqtt_v311(t):
    document_flow(t, "3.1.1", 2)


@case
def topic_override(t):
    broker, sub, api = stack(t)
    eps = [doc_endpoint(api, "a", topic="custom/flights/LH123"),
           doc_endpoint(api, "b", topic="{prefix}/x/{endpoint}/changed"),
           doc_endpoint(api, "c")]
    paths = ["/a", "/b", "/c"]
    for p in paths:
        api.set(p, Reply.json({"v": 0}))
    br = start_bridge(t, broker, t.config(broker.port, eps))
    for p in paths:
        api.wait_requests(p, 2, finished=True)
    t.settle(api, paths, alive=(br,))
    assert_no_events(sub, "baseline")

    for p in paths:
        api.set(p, Reply.json({"v": 1}))
    evs = exactly_n_events(t, sub, api, paths, 3, "one change per endpoint", alive=(br,))
    by_topic = {m.topic: m for m in evs}
    want = {"custom/flights/LH123": "a", "rest2mqtt/x/b/changed": "b", "rest2mqtt/c": "c"}
    check_eq(sorted(by_topic), sorted(want), "event topics")
    for topic, ep in want.items():
        check_message(by_topic[topic], topic, ep, {"v": 0}, {"v": 1})
    br.stop()


@case
def many_endpoints(t):
    broker, sub, api = stack(t)
    n = 200
    names = ["ep-%03d" % i for i in range(n)]
    paths = ["/ep/%03d" % i for i in range(n)]
    for i, p in enumerate(paths):
        api.set(p, Reply.json({"ep": i, "v": 0}))
    eps = [doc_endpoint(api, name, path=p) for name, p in zip(names, paths)]
    br = start_bridge(t, broker, t.config(broker.port, eps, defaults={"interval": "500ms"}))
    for p in paths:
        api.wait_requests(p, 2, finished=True, timeout=20)
    t.settle(api, paths, polls=1, alive=(br,))
    assert_no_events(sub, "baseline of %d endpoints" % n)

    changed = [3, 17, 42, 64, 99, 100, 128, 150, 181, 199]
    for i in changed:
        api.set(paths[i], Reply.json({"ep": i, "v": 1}))
    sub.wait_events(len(changed), timeout=15, alive=(br,))
    t.settle(api, paths, polls=2, timeout=15, alive=(br,))
    evs = sub.events()
    check_eq(len(evs), len(changed), "events after changing %d of %d endpoints"
             % (len(changed), n))
    by_topic = {m.topic: m for m in evs}
    check_eq(sorted(by_topic), sorted("rest2mqtt/" + names[i] for i in changed), "event topics")
    for i in changed:
        check_message(by_topic["rest2mqtt/" + names[i]], "rest2mqtt/" + names[i], names[i],
                      {"ep": i, "v": 0}, {"ep": i, "v": 1})
    br.stop()


# ---------------------------------------------------------------------------
# Keyed collections, durable state, status topic, faults: collection_cases.py
# (it imports the helpers above from this module, also when run as a script)

sys.modules.setdefault("run", sys.modules[__name__])
import collection_cases  # noqa: E402,F401


# ---------------------------------------------------------------------------
# Runner

def run_case(name, bin_path):
    """Run one case in this process; returns (ok, reason, diagnostics)."""
    t = Context(bin_path)

    def alarm(signum, frame):
        raise Failure("case did not finish within %ds" % CASE_LIMIT_S)
    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(CASE_LIMIT_S)
    ok, reason = False, None
    try:
        if not (os.path.isfile(bin_path) and os.access(bin_path, os.X_OK)):
            raise Failure("binary not found or not executable: %s" % bin_path)
        CASES[name](t)
        ok = True
    except Failure as e:
        reason = str(e)
    except TimeoutError as e:  # fake API waits
        reason = str(e)
    except Exception as e:  # a bug in the case or the harness is a failure too
        import traceback
        reason = "%s: %s\n%s" % (type(e).__name__, e, traceback.format_exc())
    finally:
        signal.alarm(0)
        errs = t.close(failed=not ok)
        signal.signal(signal.SIGALRM, old)
    if ok and t.sanitizer_reports:
        ok, reason = False, "a sanitizer or valgrind report in the stderr of %s" % ", ".join(
            name for name, _ in t.sanitizer_reports)
    return ok, reason, errs + t.diagnostics


def load_case_modules():
    """Imports every tests/e2e/*_cases.py. Such a module registers its cases
    with `from run import case`; when this file runs as __main__, that import
    creates a second module object named `run`, so its registry is merged."""
    import glob
    import importlib
    here = os.path.dirname(os.path.abspath(__file__))
    for path in sorted(glob.glob(os.path.join(here, "*_cases.py"))):
        importlib.import_module(os.path.basename(path)[:-3])
    other = sys.modules.get("run")
    if other is not None and other is not sys.modules[__name__]:
        for name, fn in other.CASES.items():
            CASES.setdefault(name, fn)


def main():
    load_case_modules()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--list", action="store_true", help="print case names and exit")
    ap.add_argument("--bin", default=os.environ.get("R2M_BIN"), help="rest2mqtt binary")
    ap.add_argument("--case", help="run only this case")
    args = ap.parse_args()

    if args.list:
        for name in CASES:
            print(name)
        return 0
    if not args.bin:
        ap.error("--bin PATH or R2M_BIN is required")
    bin_path = os.path.abspath(args.bin)

    if args.case:
        if args.case not in CASES:
            print("unknown case %r; see --list" % args.case, file=sys.stderr)
            return 2
        ok, reason, diag = run_case(args.case, bin_path)
        if ok:
            print("ok %s" % args.case)
        else:
            print("FAIL %s: %s" % (args.case, reason))
            for line in diag:
                print("  | " + line)
        sys.stdout.flush()
        return 0 if ok else 1

    passed = failed = 0
    for name in CASES:  # each case in its own process: a hung case cannot stall the rest
        try:
            r = subprocess.run([sys.executable, os.path.abspath(__file__), "--bin", bin_path,
                                "--case", name], stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=CASE_LIMIT_S + 30)
            out = r.stdout.rstrip("\n")
            ok = r.returncode == 0
            if not out:
                out = "%s %s%s" % ("ok" if ok else "FAIL", name,
                                   "" if ok else ": exit %d, stderr: %s" % (
                                       r.returncode, r.stderr[-2000:]))
        except subprocess.TimeoutExpired:
            ok, out = False, "FAIL %s: runner timed out" % name
        print(out)
        sys.stdout.flush()
        passed += ok
        failed += not ok
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
