"""End-to-end cases for `rest2mqtt probe` and `rest2mqtt asyncapi` (imported
by run.py, which owns the case registry and the runner).

probe runs against json-server (a real REST API nobody here wrote: a list,
a nested resource, a document, its Link pagination) and against the fake
API scripted to answer with timestamps that change on every request; every
entry it prints must pass `rest2mqtt check`. asyncapi's documents are read
by the real AsyncAPI parser, and the payloads a running bridge publishes
must validate against the message schemas of the document generated for
its config. The npm tools come from .ci/install-deps ($R2M_NODE_DIR); a
missing one fails the case, it never skips it.
"""

import glob
import json
import os
import re
import shutil
import subprocess
import time

from fakeapi import Reply
from harness import Failure, check, check_eq, free_port, port_open, quiesce, wait_for
from run import case, stack

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
NODE_DIR = os.environ.get("R2M_NODE_DIR") or os.path.expanduser("~/.cache/rest2mqtt-e2e-node")
VALIDATE = os.path.join(HERE, "asyncapi_validate.mjs")
# the ${env:} values config/examples/check-all gives the examples
EXAMPLE_ENV = {"MQTT_PASSWORD": "dummy-mqtt-password", "WEATHER_API_KEY": "dummy-api-key",
               "CRM_TOKEN": "dummy-token", "SHIPMENTS_TOKEN": "dummy-token"}


def need_node_tool(rel):
    node = shutil.which("node")
    path = os.path.join(NODE_DIR, rel)
    if not node or not os.path.exists(path):
        raise Failure("%s not found (node %s): run .ci/install-deps, which installs the pinned "
                      "npm packages into %s" % (path, node or "missing", NODE_DIR))
    return node, path


def json_server(t):
    """json-server on a free port serving a copy of fixtures/db.json."""
    node, bin_js = need_node_tool("node_modules/json-server/lib/cli/bin.js")
    db = t.path("db.json")
    shutil.copy(os.path.join(HERE, "fixtures", "db.json"), db)
    port = free_port()
    p = t.spawn("json-server", [node, bin_js, "--host", "127.0.0.1", "--port", str(port),
                                "--quiet", db])
    wait_for(lambda: port_open(port), 20, "json-server listening on %d" % port, alive=(p,))
    return "http://127.0.0.1:%d" % port


def probe(t, url, *args, expect=0):
    r = t.run_cli(["probe", url, "--every", "200ms"] + list(args), timeout=30)
    out, err = r.stdout.decode(), r.stderr.decode()
    if r.returncode != expect:
        raise Failure("probe %s exited %d, expected %d; stderr: %s; stdout: %s"
                      % (url, r.returncode, expect, err[-800:], out[-1500:]))
    return out, err


def entry_value(out, key):
    """The value of `key:` in the entry (the first such line)."""
    m = re.search(r"^  (?:- |  )%s: (.*)$" % re.escape(key), out, re.M)
    return m.group(1) if m else None


def check_entry(t, out, name, env=None):
    """The entry under `endpoints:` passes `rest2mqtt check`."""
    path = t.write(name + ".yaml", "state:\n  path: %s\nendpoints:\n%s" % (t.path("s.db"), out))
    r = subprocess.run([t.bin, "check", "-c", path], capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, **(env or {})))
    check(r.returncode == 0, "rest2mqtt check refused the probed entry (exit %d): %s\n%s",
          r.returncode, r.stderr[-1000:], out)
    return r.stdout


@case
def probe_json_server(t):
    base = json_server(t)
    # a root array of objects: items "", key /id; nothing changes
    out, _ = probe(t, base + "/posts")
    check_eq(entry_value(out, "name"), "posts", "endpoint name from the URL")
    check_eq(entry_value(out, "items"), '""', "items of /posts")
    check_eq(entry_value(out, "key"), '"/id"', "key of /posts")
    check("ignore:" not in out, "nothing is volatile in /posts, yet: %s", out)
    check("holds 5 objects" in out, "the comment counts the items: %s", out)
    check("ETag" in out and "If-None-Match" in out, "json-server sends ETags: %s", out)
    check_entry(t, out, "posts")
    # a nested resource
    out, _ = probe(t, base + "/posts/1/comments", "--samples", "2")
    check_eq(entry_value(out, "name"), "comments", "name of the nested resource")
    check_eq(entry_value(out, "key"), '"/id"', "key of the nested resource")
    check("holds 2 objects" in out, "two comments of post 1: %s", out)
    check_entry(t, out, "comments")
    # a document: no list, no key
    out, _ = probe(t, base + "/profile")
    check(entry_value(out, "items") is None and entry_value(out, "key") is None,
          "/profile is a document: %s", out)
    check("a document" in out, "the entry says why it is a document: %s", out)
    check_entry(t, out, "profile")
    # json-server paginates with Link rel="next"
    out, _ = probe(t, base + "/posts?_page=1&_limit=2", "--name", "paged")
    check_eq(entry_value(out, "paginate"), "{ next: link }", "pagination of ?_page")
    check("rel=\"next\"" in out, "the entry says what it saw: %s", out)
    check_entry(t, out, "paged")


@case
def probe_volatile_and_paginated_fake_api(t):
    api = t.api()

    def page(n):
        items = [{"id": i, "name": "item %d" % i, "stock": i * 3, "seenAt": "2026-12-02T10:00:0%dZ" % n,
                  "meta": {"requestId": "r-%d-%d" % (n, i), "region": "eu"}} for i in (1, 2, 3, 4)]
        return Reply.json({"generatedAt": n, "data": {"items": items},
                           "links": {"next": "/stock?page=2", "self": "/stock?page=1"}})

    api.queue("/stock", [page(1), page(2), page(3)])
    out, _ = probe(t, api.url("/stock"))
    check_eq(entry_value(out, "items"), '"/data/items"', "items pointer")
    check_eq(entry_value(out, "key"), '"/id"', "key")
    ignore = re.findall(r'^      - "([^"]+)"', out, re.M)
    check_eq(sorted(ignore), ["/meta/requestId", "/seenAt"], "ignore patterns (inside the item)")
    check("/data/items/*/seenAt changed in 100% of items in 2 of 2 samples" in out,
          "the entry says what it saw: %s", out)
    check_eq(entry_value(out, "paginate"), '{ next: "/links/next" }', "pagination from the body")
    check_eq(api.count("/stock"), 3, "requests (--samples 3)")
    check_entry(t, out, "stock")
    # the entry, run by the bridge: the timestamps alone make no events
    broker, sub, api2 = stack(t)
    api2.set("/stock", page(1))
    api2.set("/stock?page=2", Reply.json({"data": {"items": []}}))
    entry = out.replace(api.url("/stock"), api2.url("/stock"))
    cfg = ("mqtt:\n  url: mqtt://127.0.0.1:%d\n  client_id: e2e\nmetrics:\n  listen: 127.0.0.1:%d\n"
           "state:\n  path: %s\ndefaults:\n  interval: 200ms\n  jitter: 0%%\n"
           "endpoints:\n%s" % (broker.port, free_port(), t.path("state.db"), entry))
    br = t.bridge(cfg)
    api2.wait_requests("/stock", 2, finished=True)
    api2.set("/stock", page(2))
    api2.wait_requests("/stock", 3, finished=True)
    api2.set("/stock", page(3))
    quiesce(api2, ["/stock"], alive=(br,))
    check_eq([m.topic for m in sub.events()], [], "events while only ignored fields changed")


@case
def probe_errors_and_secrets(t):
    api = t.api()
    api.set("/down", Reply.status(503, b'{"error":"maintenance"}'))
    _, err = probe(t, api.url("/down"), expect=2)
    check("503" in err, "the HTTP status is named: %s", err)
    api.set("/html", Reply.raw(b"<html>login</html>", content_type="text/html"))
    _, err = probe(t, api.url("/html"), expect=2)
    check("did not answer JSON" in err and "byte 0" in err, "not JSON, with where: %s", err)
    api.set("/big", Reply.json({"items": [{"id": i, "pad": "x" * 100} for i in range(100)]}))
    _, err = probe(t, api.url("/big"), "--max-body", "1KiB", expect=2)
    check("failed" in err and ("max_body" in err or "larger" in err or "limit" in err),
          "too big is said: %s", err)
    # secrets given on the command line are sent, never printed back
    api.set("/secure", Reply.json([{"id": 1}, {"id": 2}]))
    out, err = probe(t, api.url("/secure"), "--samples", "1", "-H", "X-Api-Key: k3y-s3cr3t",
                     "-H", "X-Tenant: acme", "--auth", "{ type: bearer, token: t0k-s3cr3t }")
    req = api.requests("/secure")[0]
    check_eq(req.headers.get("authorization"), "Bearer t0k-s3cr3t", "bearer token sent")
    check_eq(req.headers.get("x-api-key"), "k3y-s3cr3t", "secret header sent")
    for s in ("k3y-s3cr3t", "t0k-s3cr3t"):
        check(s not in out and s not in err, "secret %s printed: %s %s", s, out, err)
    check('"${env:SECURE_X_API_KEY}"' in out and '"${env:SECURE_TOKEN}"' in out,
          "secrets become ${env:} references: %s", out)
    check('"X-Tenant": "acme"' in out, "other headers are kept: %s", out)
    check_entry(t, out, "secure", env={"SECURE_X_API_KEY": "k", "SECURE_TOKEN": "t"})
    # a password in the URL's user part: sent as basic auth, shown as a reference
    out, err = probe(t, api.url("/secure").replace("://", "://bob:pa55-s3cr3t@"), "--samples", "1")
    check_eq(api.requests("/secure")[-1].headers.get("authorization"), "Basic Ym9iOnBhNTUtczNjcjN0",
             "basic auth from the URL's user part")
    check("pa55-s3cr3t" not in out + err, "URL password printed: %s %s", out, err)
    check("bob:${env:SECURE_URL_PASSWORD}@" in out, "URL password as a reference: %s", out)
    check_entry(t, out, "secure-url", env={"SECURE_URL_PASSWORD": "p"})
    # usage errors are exit 1
    probe(t, api.url("/secure"), "--samples", "0", expect=1)


def validate(t, docs, payloads=None):
    """Runs asyncapi_validate.mjs on docs (a path or a list, one node
    process: the parser takes seconds to load)."""
    node, _ = need_node_tool("node_modules/@asyncapi/parser/package.json")
    docs = [docs] if isinstance(docs, str) else list(docs)
    argv = [node, VALIDATE] + docs + (["--payloads", payloads] if payloads else [])
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, R2M_NODE_DIR=NODE_DIR))
    return r.returncode, r.stdout + r.stderr


@case
def asyncapi_examples_parse(t):
    files = sorted(glob.glob(os.path.join(ROOT, "config", "examples", "*.yaml")))
    check(files, "no config/examples/*.yaml")
    env = dict(os.environ, **EXAMPLE_ENV)
    docs = []
    for f in files:
        for fmt in ([], ["--json"]):
            r = subprocess.run([t.bin, "asyncapi", "-c", f] + fmt, capture_output=True,
                               timeout=30, env=env)
            check(r.returncode == 0, "asyncapi -c %s exited %d: %s", f, r.returncode,
                  r.stderr.decode()[-500:])
            docs.append(t.write(os.path.basename(f) + (".json" if fmt else ".out.yaml"),
                                r.stdout))
    # and a hostile one: a password with '@' '/' '#' in mqtt.url, pointers
    # that map to one parameter name, a placeholder twice, {op} in a state
    # topic, an endpoint named like another's state channel
    hostile = t.write("hostile.yaml", (
        'mqtt:\n  url: "wss://bridge:pw@s3/cr#3t@127.0.0.1:8883/mqtt"\n  status_topic: "{prefix}/st"\n'
        'state:\n  path: %s\nendpoints:\n'
        '  - name: x\n    url: http://127.0.0.1:1/x\n'
        '    topic: "{prefix}/{/a_b}/{/a/b}/{/a~1b}/{/a~0b}/{/a}/{/a}"\n'
        '    state_topic: "{prefix}/x/{op}"\n'
        '  - name: x-state\n    url: http://127.0.0.1:1/y\n    items: /data\n    key: /id\n'
        '    topic: "{prefix}/{key}/{op}/{key}"\n    state_topic: "{prefix}/y/{key}/{op}"\n'
        % t.path("h.db")))
    for fmt in ([], ["--json"]):
        r = subprocess.run([t.bin, "asyncapi", "-c", hostile] + fmt, capture_output=True, timeout=30)
        check(r.returncode == 0, "asyncapi of the hostile config exited %d: %s", r.returncode,
              r.stderr.decode()[-500:])
        check(b"s3/cr" not in r.stdout and b"cr#3t" not in r.stdout, "password in the document")
        docs.append(t.write("hostile" + (".json" if fmt else ".out.yaml"), r.stdout))
    rc, text = validate(t, docs)
    check(rc == 0, "the AsyncAPI parser reports errors:\n%s", text[-3000:])
    for d in docs:
        check("%s: valid AsyncAPI 3.0.0" % d in text, "%s not reported valid: %s", d, text[-2000:])


@case
def asyncapi_published_payloads_validate(t):
    broker, sub, api = stack(t)
    items = lambda *xs: Reply.json({"data": list(xs)})  # noqa: E731
    api.set("/things", items({"id": 1, "v": "a"}, {"id": 2, "v": "b"}))
    api.set("/slim", Reply.json([{"sku": "x", "n": 1}]))
    api.set("/flight", Reply.json({"number": "LH123", "gate": "A1"}))
    cfg = t.config(broker.port, [
        {"name": "things", "url": api.url("/things"), "items": "/data", "key": "/id",
         "state_topic": "{prefix}/{endpoint}/{key}/state"},
        {"name": "slim", "url": api.url("/slim"), "items": "", "key": "/sku",
         "payload": "patch"},
        {"name": "flight", "url": api.url("/flight"), "topic": "{prefix}/flights/{/number}"},
    ], mqtt={"status_topic": "{prefix}/status"})
    path = t.write_config(cfg, "bridge.yaml")
    r = t.run_cli(["asyncapi", "-c", path, "--json"])
    check(r.returncode == 0, "asyncapi exited %d: %s", r.returncode, r.stderr.decode())
    doc = t.write("asyncapi.json", r.stdout)
    br = t.bridge(cfg)
    api.wait_requests("/things", 2, finished=True)
    api.set("/things", items({"id": 1, "v": "A"}, {"id": 3, "v": "c"}))  # updated, deleted, created
    api.set("/slim", Reply.json([{"sku": "x", "n": 2}, {"sku": "y", "n": 1}]))
    api.set("/flight", Reply.json({"number": "LH123", "gate": "B7"}))
    sub.wait_events(9, alive=(br,))
    quiesce(api, ["/things", "/slim", "/flight"], alive=(br,))
    msgs = [m for m in sub.events()]
    lines = [json.dumps({"topic": m.topic, "payload": m.payload.decode(), "retain": m.retain})
             for m in msgs]
    payloads = t.write("payloads.jsonl", "\n".join(lines) + "\n")
    rc, text = validate(t, doc, payloads)
    check(rc == 0, "published payloads do not validate against the document:\n%s", text[-4000:])
    seen = json.loads([ln for ln in text.splitlines() if ln.startswith("{")][-1])
    for want in ("ep-things/created", "ep-things/updated", "ep-things/deleted", "ep-slim/created",
                 "ep-slim/updated", "ep-flight/changed", "ep-things.state/state", "status/status"):
        check(seen.get(want), "no published message was validated as %s: %s", want, seen)
    # the check can fail: a member the bridge never sends is refused
    ev = next(m for m in msgs if m.topic.endswith("/updated"))
    bad = ev.json()
    bad["data"]["extra"] = 1
    payloads = t.write("bad.jsonl", json.dumps({"topic": ev.topic, "payload": json.dumps(bad)}))
    rc, text = validate(t, doc, payloads)
    check(rc == 1 and "matches no message" in text, "a tampered payload validated: %s", text)


@case
def probe_hostile_answers_and_careless_secrets(t):
    api, other = t.api(), t.api()
    # an endless chunked body stops at --max-body: exit 2, said
    api.set("/endless", Reply.endless())
    _, err = probe(t, api.url("/endless"), "--max-body", "64KiB", "--samples", "1", expect=2)
    check("larger than max_body" in err, "an endless body is stopped at --max-body: %s", err)
    # a server that never answers: the timeout, exit 2
    api.set("/hang", Reply.hang())
    _, err = probe(t, api.url("/hang"), "--timeout", "500ms", "--samples", "1", expect=2)
    check("timed out" in err, "a hanging server times out: %s", err)
    # a redirect to another origin is not followed with the credential
    other.set("/steal", Reply.json([{"id": 1}]))
    api.set("/moved", Reply.raw(b"", status=302, headers={"Location": other.url("/steal")}))
    _, err = probe(t, api.url("/moved"), "--samples", "1", "-H", "Authorization: Bearer r3d-s3cr3t",
                   expect=2)
    check_eq(other.count("/steal"), 0, "requests that followed the redirect to another origin")
    check("another origin" in err and "r3d-s3cr3t" not in err, "the redirect is refused: %s", err)
    # secrets in the query string and a URL password next to an ${env:} reference
    api.set("/q", Reply.json([{"id": 1}, {"id": 2}]))
    url = api.url("/q").replace("://", "://bob:pw-s3cr3t@") + \
        "?api_key=q-s3cr3t&page=2&access_token=a-s3cr3t&sig=${env:PROBE_SIG}&passwd=pd-s3cr3t"
    r = subprocess.run([t.bin, "probe", url, "--samples", "1"], capture_output=True, text=True,
                       timeout=30, env=dict(os.environ, PROBE_SIG="fine"))
    out, err = r.stdout, r.stderr
    check(r.returncode == 0, "probe exited %d: %s", r.returncode, err)
    req = api.requests("/q")[-1]
    check("api_key=q-s3cr3t" in req.target and "sig=fine" in req.target, "query sent: %s",
          req.target)
    for s in ("q-s3cr3t", "a-s3cr3t", "pw-s3cr3t", "pd-s3cr3t"):
        check(s not in out and s not in err, "secret %s printed: %s %s", s, out, err)
    check("api_key=${env:Q_API_KEY}&page=2&access_token=${env:Q_ACCESS_TOKEN}&sig=${env:PROBE_SIG}"
          in out and "bob:${env:Q_URL_PASSWORD}@" in out, "query secrets as references: %s", out)
    check_entry(t, out, "q", env={"Q_API_KEY": "k", "Q_ACCESS_TOKEN": "a", "Q_URL_PASSWORD": "p",
                                  "PROBE_SIG": "s", "Q_PASSWD": "d"})
    # what the probe needed to get an answer, the bridge needs too
    out, _ = probe(t, api.url("/q"), "--samples", "1", "--timeout", "3s", "--max-body", "2MiB")
    check(entry_value(out, "timeout") == "3000ms" and entry_value(out, "max_body") == "2097152",
          "--timeout and --max-body go into the entry: %s", out)
    check_entry(t, out, "limits")
    # -n is the name, never more YAML
    probe(t, api.url("/q"), "--samples", "1", "-n", "x\n    redirects: any", expect=1)
    _, err = probe(t, api.url("/q"), "--samples", "1", "-n", "n" * 65, expect=1)
    check("at most 64" in err, "a long name is refused, not cut: %s", err)
