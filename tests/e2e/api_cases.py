"""End-to-end cases for talking to real legacy APIs: authentication (basic,
bearer, header, query, OAuth2 client credentials), secrets hygiene,
conditional GET, POST bodies, pagination (Link, next pointer, cursor, page
number; failures, limits, foreign hosts), accept_status / error_if,
Retry-After and backoff, TLS (self-signed CA, insecure, client
certificates) and compressed responses. Imported by run.py (it imports
every tests/e2e/*_cases.py).

The fake API of fakeapi.py answers per path from a script. These cases also
need answers that depend on the request (credentials, validators, the page
asked for, the encodings accepted) and an HTTPS listener; `Api` below adds
both by subclassing FakeAPI, without changing fakeapi.py:

    api = make_api(t)                        # or make_api(t, tls=ssl_context)
    api.route("/doc", lambda req: Reply.json({...}))   # req: Seen (below)
    api.set("/other", Reply.json({...}))     # the scripted routes still work
"""

import base64
import gzip
import json
import os
import re
import ssl
import subprocess
import threading
import time
import traceback
from email.utils import formatdate
from urllib.parse import parse_qs, quote, urlsplit

import fakeapi
from fakeapi import FakeAPI, Reply, Request
from harness import Failure, check, check_eq, free_port, quiesce, short, wait_for
from run import assert_no_events, case, check_message
from collection_cases import Replica, connections, item_msgs, keyed, report

INTERVAL_S = 0.2  # t.config's default interval


# ---------------------------------------------------------------------------
# The fake API, extended: per-request answers and an HTTPS listener

class Seen:
    """What a dynamic route gets: the request as it arrived."""

    def __init__(self, method, target, headers, raw_headers, body):
        self.method = method
        self.target = target
        parts = urlsplit(target)
        self.path = parts.path
        self.query = parse_qs(parts.query, keep_blank_values=True)
        self.headers = headers  # lower-case name -> last value
        self.raw_headers = raw_headers  # [(name, value)] as sent
        self.body = body

    def q(self, name, default=None):
        v = self.query.get(name)
        return v[0] if v else default

    def header_count(self, name):
        return sum(1 for k, _ in self.raw_headers if k.lower() == name.lower())


class _DynHandler(fakeapi._Handler):
    """fakeapi's handler, but a path with a route function is answered by
    calling it with the request (Seen); everything else as before."""

    def _serve(self):
        fake = self.fake
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n > 0 else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        raw = list(self.headers.items())
        path = urlsplit(self.path).path
        with fake._lock:
            fn = fake._fns.get(path)
        if fn is not None:
            try:
                reply = fn(Seen(self.command, self.path, headers, raw, body))
            except Exception:  # a bug in the case: answer 500 and make the case fail
                fake.route_errors.append(traceback.format_exc())
                reply = Reply.status(500, b'{"route":"error"}')
        else:
            reply = fake._next_reply(path)
        req = Request(self.command, self.path, headers, body, reply)
        req.raw_headers = raw
        fake._record(req)
        outcome = "complete"
        try:
            outcome = self._answer(req, reply)
        except (BrokenPipeError, ConnectionResetError, OSError):
            outcome = "client_closed"
            self.close_connection = True
        finally:
            fake._finish(req, outcome)


class _TLSServer(fakeapi._Server):
    """The TLS handshake runs in the connection's own thread; a failed
    handshake is recorded (tls_errors) and the connection dropped."""

    tls = None
    tls_peers = None  # per connection: the client certificate (a dict) or None

    def finish_request(self, request, client_address):
        try:
            request.settimeout(10)
            conn = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self.tls_errors.append(str(e))
            return
        if self.tls_peers is not None:
            self.tls_peers.append(conn.getpeercert() or None)
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            try:
                conn.close()
            except OSError:
                pass


class Api(FakeAPI):
    def __init__(self, tls=None):
        super().__init__()
        self._fns = {}
        self.tls = tls
        self.tls_errors = []
        self.tls_peers = []
        self.route_errors = []

    def route(self, path, fn):
        with self._lock:
            self._fns[path] = fn
        return fn

    def _listen(self, port):
        api = self

        class Handler(_DynHandler):
            fake = api

        if self.tls is not None:
            class Server(_TLSServer):
                tls = api.tls
                tls_errors = api.tls_errors
                tls_peers = api.tls_peers
        else:
            Server = fakeapi._Server
        self._server = Server(("127.0.0.1", port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="api-%d" % self.port, daemon=True)
        self._thread.start()

    def url(self, path, host="127.0.0.1"):
        return "%s://%s:%d%s" % ("https" if self.tls is not None else "http", host, self.port,
                                 path)

    def check_routes(self):
        check(not self.route_errors, "a route function of the case failed:\n%s",
              "\n".join(self.route_errors[:2]))


def make_api(t, tls=None):
    a = Api(tls=tls).start()
    t.defer(a.stop)
    t.defer(a.check_routes)  # runs before stop (reverse order); a bug shows as failure
    return a


def stack(t):
    broker = t.broker()
    sub = t.subscriber(broker)
    return broker, sub, make_api(t)


def launch(t, broker, cfg, name="bridge", args=("run",)):
    """Start a bridge and wait for its (next) connection to the broker."""
    n = connections(broker, "e2e")
    br = t.bridge(cfg, args=args, name=name)
    broker.wait_client("e2e", timeout=15, alive=(br,), nth=n + 1)
    return br


def fail_lines(br, endpoint, after=0):
    """The bridge's warn/error lines about a failure ('fail' in the line) of
    endpoint; other warnings (e.g. about tls.insecure) are not counted."""
    pat = re.compile(r"\bendpoint=%s(\s|$)" % re.escape(endpoint))
    return [l for l in br.log_lines()[after:]
            if pat.search(l) and re.search(r"\s(warn|error)\s", l) and "fail" in l.lower()]


def wait_fail_line(br, endpoint, after=0, timeout=10.0, match=None, what="", sub=None):
    """Wait for a warn/error line naming the endpoint (and matching `match`).
    When none comes and `sub` holds events, say so: the bridge probably took
    the broken answer for data."""
    def find():
        ls = [l for l in fail_lines(br, endpoint, after) if not match or re.search(match, l, re.I)]
        return ls[0] if ls else None
    try:
        return wait_for(find, timeout, "a failure line for endpoint=%s%s%s" % (
            endpoint, " matching %r" % match if match else "", " (%s)" % what if what else ""),
            alive=(br,))
    except Failure as e:
        if sub is not None and sub.events():
            raise Failure("%s; meanwhile %d event(s) arrived: %s" % (
                e, len(sub.events()), "; ".join(repr(m) for m in sub.events()[:4])))
        raise


def doc_reply(doc, headers=None, status=200):
    return Reply.json(doc, status=status, headers=headers)


def unauthorized():
    return Reply.status(401, b'{"error":"unauthorized"}')


def settle_count(api, pred, polls=2, timeout=10.0, alive=(), what="polls"):
    """Wait until `polls` more finished requests satisfy pred(req), then for
    proof that what they produced was delivered (quiesce: every endpoint of
    the API polls once more, the outbox drains, a probe comes through)."""
    base = sum(1 for r in api.requests() if r.outcome != "open" and pred(r))
    wait_for(lambda: sum(1 for r in api.requests() if r.outcome != "open" and pred(r))
             >= base + polls, timeout, "%d more %s" % (polls, what), alive=alive)
    quiesce(api, sorted({r.path for r in api.requests() if pred(r)}), alive=alive)


def page_polls(reqs, page_of, first):
    """Split the requests of a paginated endpoint into polls (lists of page
    ids); a poll starts with the page id `first`."""
    polls = []
    for r in reqs:
        p = page_of(r)
        if p == first or not polls:
            polls.append([])
        polls[-1].append(p)
    return polls


def wait_n_items(sub, n, endpoint, alive, timeout=10.0, what=""):
    wait_for(lambda: len(item_msgs(sub, endpoint)) >= n, timeout,
             "%d item event(s) of %s%s (have %d)" % (n, endpoint, " " + what if what else "",
                                                     len(item_msgs(sub, endpoint))),
             alive=alive)


def exactly_items(sub, n, endpoint, what):
    msgs = item_msgs(sub, endpoint)
    check(len(msgs) == n, "%s: expected exactly %d item event(s) of %s in total, got %d: %s",
          what, n, endpoint, len(msgs), "; ".join(repr(m) for m in msgs[-6:]))
    return msgs


def items(lo, hi, tag="v0"):
    return [{"id": k, "name": "item %d" % k, "tag": tag} for k in range(lo, hi)]


# ---------------------------------------------------------------------------
# Authentication

def b64(s):
    return base64.b64encode(s.encode()).decode()


@case
def auth_basic_bearer_header_query(t):
    broker, sub, api = stack(t)
    user, pw = "alice", "pa:ss w0rd!"  # a colon and a space in the password
    token = "tok-3f9a.b_c~"
    key_hdr = "hk-77d1e"
    key_q = "qk/7+x y&z"  # needs URL encoding
    env_name = "R2M_E2E_AUTH_TOKEN"
    os.environ[env_name] = token
    t.defer(lambda: os.environ.pop(env_name, None))
    pw_file = t.write("basic-password", pw + "\n")  # editors add a newline

    docs = {p: {"path": p, "v": 0} for p in ("/basic", "/bearer", "/hdr", "/none")}
    denied = {p: 0 for p in docs}
    denied["/q"] = 0

    def guarded(path, ok):
        def fn(req):
            if not ok(req):
                denied[path] += 1
                return unauthorized()
            return doc_reply(docs[path])
        return fn

    api.route("/basic", guarded("/basic", lambda r: r.headers.get("authorization")
                                == "Basic " + b64("%s:%s" % (user, pw))))
    api.route("/bearer", guarded("/bearer", lambda r: r.headers.get("authorization")
                                 == "Bearer " + token))
    api.route("/hdr", guarded("/hdr", lambda r: r.headers.get("x-api-key") == key_hdr))
    api.route("/none", guarded("/none", lambda r: True))

    # query auth on a paginated collection: page URLs from the server lack the key
    qpages = [items(1, 3), items(3, 5)]

    def qroute(req):
        if req.q("api_key") != key_q or len(req.query["api_key"]) != 1:
            denied["/q"] += 1
            return unauthorized()
        if req.q("page") == "2":
            return Reply.json({"data": qpages[1]})
        return Reply.json({"data": qpages[0]}, headers={"Link": '</q?page=2>; rel="next"'})
    api.route("/q", qroute)

    eps = [
        {"name": "basic", "url": api.url("/basic"),
         "auth": {"type": "basic", "username": user, "password": "${file:%s}" % pw_file}},
        {"name": "bearer", "url": api.url("/bearer"),
         "auth": {"type": "bearer", "token": "${env:%s}" % env_name}},
        {"name": "hdr", "url": api.url("/hdr"),
         "auth": {"type": "header", "name": "X-Api-Key", "value": key_hdr}},
        {"name": "q", "url": api.url("/q?tenant=acme"), "items": "/data", "key": "/id",
         "paginate": {"next": "link"},
         "auth": {"type": "query", "name": "api_key", "value": key_q}},
        {"name": "none", "url": api.url("/none")},
    ]
    br = launch(t, broker, t.config(broker.port, eps))
    alive = (br,)
    for p in ("/basic", "/bearer", "/hdr", "/none"):
        api.wait_requests(p, 3, finished=True)
    wait_for(lambda: sum(1 for r in api.requests("/q") if r.target.find("page=2") >= 0) >= 3,
             10, "3 polls of both pages of /q", alive=alive)
    quiesce(api, ["/basic", "/bearer", "/hdr", "/none", "/q"], alive=alive)
    assert_no_events(sub, "baseline")
    check_eq(denied, {p: 0 for p in denied}, "requests the fake API refused (401) per path")

    # exact credentials, exactly once per request, none where not configured
    for r in api.requests("/basic"):
        check_eq(r.headers.get("authorization"), "Basic " + b64(user + ":" + pw),
                 "Authorization of basic")
    for r in api.requests("/bearer"):
        check_eq([v for k, v in r.raw_headers if k.lower() == "authorization"],
                 ["Bearer " + token], "Authorization header(s) of bearer")
    for r in api.requests("/hdr"):
        check_eq([v for k, v in r.raw_headers if k.lower() == "x-api-key"], [key_hdr],
                 "X-Api-Key header(s) of the header endpoint")
        check("authorization" not in r.headers, "header auth also sent Authorization: %s",
              r.headers.get("authorization"))
    for r in api.requests("/none") + api.requests("/q"):
        check("authorization" not in r.headers and "x-api-key" not in r.headers,
              "%s carries credentials it was not configured with: %s", r.target, r.headers)
    for r in api.requests("/q"):
        qs = parse_qs(urlsplit(r.target).query, keep_blank_values=True)
        check_eq(qs.get("api_key"), [key_q], "api_key in %s (URL-decoded)" % r.target)
        check(key_q not in r.target, "the query value went out unencoded: %s", r.target)
        if "page" not in qs:
            check_eq(qs.get("tenant"), ["acme"], "the endpoint's own query in %s" % r.target)

    # the whole poll works with the credentials: a change of each one is an event
    for p in ("/basic", "/bearer", "/hdr", "/none"):
        docs[p] = {"path": p, "v": 1}
    qpages[1] = items(3, 5, tag="v1")
    wait_for(lambda: len(sub.events()) >= 6, 10, "6 events (4 documents, 2 items)",
             alive=alive)
    t.settle(api, ["/basic", "/bearer", "/hdr", "/none"], alive=alive)
    evs = sub.events()
    check_eq(len(evs), 6, "events after one change per endpoint")
    by_topic = {m.topic: m for m in evs if m.topic.count("/") == 1}
    for name, p in (("basic", "/basic"), ("bearer", "/bearer"), ("hdr", "/hdr"),
                    ("none", "/none")):
        check(("rest2mqtt/" + name) in by_topic, "no event for %s; got %s", name,
              sorted(m.topic for m in evs))
        check_message(by_topic["rest2mqtt/" + name], "rest2mqtt/" + name, name,
                      {"path": p, "v": 0}, {"path": p, "v": 1})
    rep = Replica("q", items=keyed(qpages[0] + items(3, 5))).feed(sub)
    rep.check_equals(keyed(qpages[0] + qpages[1]), "query-auth collection after the change")
    check_eq(denied, {p: 0 for p in denied}, "requests the fake API refused (401) per path")
    br.stop()


class TokenServer:
    """An OAuth2 token endpoint (client credentials) and the API's view of
    which access tokens are valid. Tokens are <prefix>-1, <prefix>-2, ...;
    a new token is valid unless `auto_valid` is off."""

    def __init__(self, prefix, client_id, client_secret, scope, expires_in=3600):
        self.prefix = prefix
        self.client_id, self.client_secret, self.scope = client_id, client_secret, scope
        self.expires_in = expires_in
        self.auto_valid = True
        self.valid = set()
        self.issued = []  # (monotonic time, token)
        self.bad_requests = []
        self.lock = threading.Lock()
        self.fail_next = 0  # answer that many token requests with a 500

    def token_route(self, req):
        want = {"grant_type": ["client_credentials"], "client_id": [self.client_id],
                "client_secret": [self.client_secret]}
        if self.scope is not None:
            want["scope"] = [self.scope]
        got = parse_qs(req.body.decode("utf-8", "replace"), keep_blank_values=True)
        ctype = req.headers.get("content-type", "")
        if req.method != "POST" or got != want or \
                ctype.split(";")[0].strip() != "application/x-www-form-urlencoded":
            with self.lock:
                self.bad_requests.append((req.method, ctype, req.body))
            return Reply.status(400, b'{"error":"invalid_request"}')
        with self.lock:
            if self.fail_next:
                self.fail_next -= 1
                return Reply.status(500, b'{"error":"server_error"}')
            tok = "%s-%d" % (self.prefix, len(self.issued) + 1)
            self.issued.append((time.monotonic(), tok))
            if self.auto_valid:
                self.valid.add(tok)
        return Reply.json({"access_token": tok, "token_type": "Bearer",
                           "expires_in": self.expires_in})

    def authorized(self, req):
        h = req.headers.get("authorization", "")
        with self.lock:
            return h.startswith("Bearer ") and h[7:] in self.valid

    def check_requests(self):
        check(not self.bad_requests, "malformed token request(s) (method, Content-Type, body): "
              "%s", self.bad_requests[:3])


def bearer_of(r):
    h = r.headers.get("authorization", "")
    return h[7:] if h.startswith("Bearer ") else h


@case
def auth_oauth2_refresh_after_401(t):
    broker, sub, api = stack(t)
    ts = TokenServer("atok", "bridge-client", "cs&=/+ x%", "read:shipments write")
    short_ts = TokenServer("stok", "c2", "s2", None, expires_in=31)
    ts.lock = threading.RLock()
    cur = {"doc": {"v": 0}, "phase": 1}

    def data(req):  # phase and answer decided atomically; the phase is the reply's label
        with ts.lock:
            ph = "p%d" % cur["phase"]
            if ts.authorized(req):
                return Reply.json(cur["doc"], label=ph)
            return Reply.status(401, b'{"error":"unauthorized"}', label=ph)
    api.route("/token", ts.token_route)
    api.route("/data", data)
    api.route("/token2", short_ts.token_route)
    api.route("/data2", lambda r: doc_reply({"s": 1}) if short_ts.authorized(r)
              else unauthorized())
    eps = [
        {"name": "data", "url": api.url("/data"), "max_backoff": "1s",
         "auth": {"type": "oauth2", "token_url": api.url("/token"), "client_id": ts.client_id,
                  "client_secret": ts.client_secret, "scope": ts.scope}},
        {"name": "data2", "url": api.url("/data2"),
         "auth": {"type": "oauth2", "token_url": api.url("/token2"),
                  "client_id": short_ts.client_id, "client_secret": short_ts.client_secret}},
    ]
    br = launch(t, broker, t.config(broker.port, eps))
    alive = (br,)

    # 1. one token (expires_in 3600) serves many polls
    api.wait_requests("/data", 8, finished=True)
    t.settle(api, ["/data"], alive=alive)
    ts.check_requests()
    check_eq(api.count("/token"), 1, "token requests for an hour-long token over 8+ polls")
    check_eq([r.reply.status for r in api.requests("/data")],
             [200] * api.count("/data"), "statuses of /data while the token is valid")
    check_eq({bearer_of(r) for r in api.requests("/data")}, {"atok-1"}, "tokens sent")
    check(api.requests("/token")[0].t < api.requests("/data")[0].t,
          "the first API request went out before the token was fetched")
    check_eq(fail_lines(br, "data"), [], "failure lines for data")
    assert_no_events(sub, "baseline")

    # 2. the API revokes token 1 (it "expired early") and the document changes:
    # 401 -> one new token -> the request is retried -> success, in that poll
    mark_log, mark_tok = len(br.log_lines()), api.count("/token")
    with ts.lock:
        ts.valid.clear()
        cur["doc"] = {"v": 1}
        cur["phase"] = 2
    sub.wait_events(1, alive=alive)
    t.settle(api, ["/data"], alive=alive)
    check_eq(len(sub.events()), 1, "events after the token was revoked and the document changed")
    check_message(sub.events()[0], "rest2mqtt/data", "data", {"v": 0}, {"v": 1})
    new = [r for r in api.requests("/data") if r.reply.label == "p2"]
    check_eq((new[0].reply.status, bearer_of(new[0])), (401, "atok-1"),
             "first request after the revocation")
    check_eq(api.count("/token"), mark_tok + 1, "token requests after one 401")
    check_eq((new[1].reply.status, bearer_of(new[1])), (200, "atok-2"),
             "the retried request")
    tok_req = api.requests("/token")[mark_tok]
    check(new[0].t_end <= tok_req.t <= new[1].t, "order: 401, token request, retry")
    check(new[1].t - new[0].t < INTERVAL_S,
          "the retry came %.3fs after the 401: not in the same poll (interval %.1fs)",
          new[1].t - new[0].t, INTERVAL_S)
    check_eq(fail_lines(br, "data", mark_log), [],
             "failure lines: a 401 fixed by a new token is not a failed poll")
    check_eq({bearer_of(r) for r in new[1:]}, {"atok-2"}, "tokens sent after the refresh")

    # 3. the token server hands out tokens the API rejects: per poll exactly one
    # token request and one retry, then the poll fails (logged), no loop
    mark_log, mark_tok = len(br.log_lines()), api.count("/token")
    with ts.lock:
        ts.auto_valid = False
        ts.valid.clear()
        cur["phase"] = 3
    p3 = lambda: [r for r in api.requests("/data") if r.reply.label == "p3"]  # noqa: E731
    api.wait_requests("/token", mark_tok + 3, timeout=10)
    api.wait_requests("/data", api.count("/data") + 1, finished=True)  # finish the poll
    line = wait_fail_line(br, "data", mark_log, match="401")
    with ts.lock:
        ts.auto_valid = True  # the next fetched token works again
    api.wait_requests("/token", api.count("/token") + 1, timeout=10)
    kinds = []
    for r in sorted(p3() + api.requests("/token")[mark_tok:],
                    key=lambda r: r.t):
        kinds.append("T" if r.path == "/token" else ("A" if r.reply.status == 401 else "ok"))
    seq = "".join(k if k != "ok" else "." for k in kinds)
    check(re.fullmatch(r"(ATA)+(ATA?\.?)?", seq) or re.fullmatch(r"(ATA)+AT\.", seq),
          "request pattern while every token is rejected: expected per poll '401, token, "
          "401' (ATA), got %s", seq)
    report(t, "oauth2 401 pattern while tokens are rejected: %s; log: %s" % (seq, line[:160]))
    assert_no_events(sub, "while every token is rejected", since=1)
    wait_for(lambda: any(r.reply.status == 200 for r in p3()),
             10, "a successful poll after the token server recovered", alive=alive)
    br.wait_log("endpoint recovered", after=mark_log)

    # 4. expires_in 31: the token is refreshed 30 s before expiry, i.e. after ~1 s
    t0 = short_ts.issued[0][0]
    wait_for(lambda: time.monotonic() > t0 + 3.3, 5, "3.3 s of polling data2", alive=alive)
    issued = list(short_ts.issued)
    gaps = [b[0] - a[0] for a, b in zip(issued, issued[1:]) if b[0] < t0 + 3.3]
    n2 = sum(1 for r in api.requests("/data2") if r.t < t0 + 3.3)
    report(t, "expires_in 31: token refreshed after %s s; %d API polls in 3.3 s" % (
        ["%.2f" % g for g in gaps], n2))
    check(2 <= len(gaps) <= 4 and all(0.75 <= g <= 1.6 for g in gaps),
          "expires_in 31 with a 30 s margin: expected a new token about every second, got "
          "gaps %s", ["%.2f" % g for g in gaps])
    check(n2 >= 2 * (len(gaps) + 1), "token refetched on (almost) every poll: %d tokens, %d "
          "polls", len(gaps) + 1, n2)
    for r in api.requests("/data2"):
        check_eq(r.reply.status, 200, "status of a data2 request (token %s)" % bearer_of(r))
    short_ts.check_requests()
    ts.check_requests()
    check_eq(len(sub.events()), 1, "events in total")
    br.stop()


# ---------------------------------------------------------------------------
# Secrets

def secret_forms(s):
    """Ways a secret could show up: raw, JSON-escaped, URL-encoded."""
    forms = {s, json.dumps(s)[1:-1], quote(s, safe=""), quote(s, safe="").replace("%20", "+")}
    return {f for f in forms if len(f) >= 6}


def find_secrets(text, secrets):
    hits = []
    for name, s in secrets.items():
        for f in secret_forms(s):
            if f in text:
                i = text.index(f)
                hits.append("%s (as %r) in: ...%s..." % (name, f, text[max(0, i - 80):i + 80]))
    return hits


@case
def secrets_never_logged(t):
    broker, sub, api = stack(t)
    secrets = {
        "basic password": "Pw-9x!Zq-basic",
        "bearer token": "Tk-4Hs8Lq-bearer",
        "header value": "Hv-2Rf7Np-header",
        "query value": "Qv-6Yt3Kw-query",
        "client secret": "Cs-8Bn5Xe-oauth",
        "access token": "At-1Mv6Jd-issued",
    }
    secrets["basic credentials (base64)"] = b64("svc:" + secrets["basic password"])
    env = "R2M_E2E_SECRET_BEARER"
    os.environ[env] = secrets["bearer token"]
    t.defer(lambda: os.environ.pop(env, None))
    sfile = t.write("client-secret", secrets["client secret"] + "\n")

    n = {"tok": 0}
    state = {"v": 0}

    def tok(req):
        n["tok"] += 1
        if n["tok"] == 1:
            return Reply.status(500, b'{"error":"try again"}')
        return Reply.json({"access_token": secrets["access token"], "expires_in": 3600})

    def flaky(path, ok):
        cnt = {"n": 0}

        def fn(req):
            cnt["n"] += 1
            if cnt["n"] <= 2 or not ok(req):  # first two: refused, to provoke error logs
                return unauthorized()
            return doc_reply({"path": path, "v": state["v"]})
        return fn
    api.route("/token", tok)
    api.route("/b", flaky("/b", lambda r: "authorization" in r.headers))
    api.route("/t", flaky("/t", lambda r: "authorization" in r.headers))
    api.route("/h", flaky("/h", lambda r: "x-api-key" in r.headers))
    api.route("/o", flaky("/o", lambda r: "authorization" in r.headers))

    def qroute(req):  # page 2 fails; the next link repeats the key, as some APIs do
        if req.q("page") == "2":
            return Reply.status(500, b'{"error":"page 2 broke"}')
        return Reply.json({"data": [{"id": 1, "v": state["v"]}]}, headers={
            "Link": '</q?page=2&api_key=%s>; rel="next"' % quote(secrets["query value"])})
    api.route("/q", qroute)

    def foreign(req):  # next page on another host, with the key in it
        return Reply.json({"data": [{"id": 1}]}, headers={
            "Link": '<%s>; rel="next"' % api.url("/f?page=2&api_key=%s" % quote(
                secrets["query value"]), host="localhost")})
    api.route("/f", foreign)
    dead = "http://127.0.0.1:%d/dead" % free_port()  # connection refused

    eps = [
        {"name": "b", "url": api.url("/b"),
         "auth": {"type": "basic", "username": "svc", "password": secrets["basic password"]}},
        {"name": "t", "url": api.url("/t"), "auth": {"type": "bearer", "token": "${env:%s}" % env}},
        {"name": "h", "url": api.url("/h"),
         "auth": {"type": "header", "name": "X-Api-Key", "value": secrets["header value"]}},
        {"name": "q", "url": api.url("/q"), "items": "/data", "key": "/id",
         "paginate": {"next": "link"},
         "auth": {"type": "query", "name": "api_key", "value": secrets["query value"]}},
        {"name": "f", "url": api.url("/f"), "items": "/data", "key": "/id",
         "paginate": {"next": "link"},
         "auth": {"type": "query", "name": "api_key", "value": secrets["query value"]}},
        {"name": "dead", "url": dead,
         "auth": {"type": "query", "name": "api_key", "value": secrets["query value"]}},
        {"name": "dead_b", "url": dead,
         "auth": {"type": "bearer", "token": secrets["bearer token"]}},
        {"name": "o", "url": api.url("/o"),
         "auth": {"type": "oauth2", "token_url": api.url("/token"), "client_id": "cid",
                  "client_secret": "${file:%s}" % sfile, "scope": "all"}},
    ]
    cfg = t.config(broker.port, eps)

    # check: valid config, and one with errors around the credentials
    outputs = {}
    r = t.run_cli(["check", "-c", t.write_config(cfg, "check.yaml")])
    check_eq(r.returncode, 0, "exit code of check (stderr: %s)" % short(r.stderr.decode()))
    outputs["check"] = r.stdout.decode() + r.stderr.decode()
    bad = json.loads(json.dumps(cfg))
    bad["endpoints"][0]["auth"]["type"] = "basik"
    bad["endpoints"][1]["auth"]["password"] = secrets["basic password"]
    bad["endpoints"][2]["auth"]["name"] = "X Api Key"  # not a header name
    bad["endpoints"][3]["auth"]["value"] = ["${env:%s}" % env]  # not a string
    r = t.run_cli(["check", "-c", t.write_config(bad, "bad.yaml")])
    check_eq(r.returncode, 1, "exit code of check on a config with auth errors")
    outputs["check (errors)"] = r.stdout.decode() + r.stderr.decode()
    check("basik" in outputs["check (errors)"], "check did not report the bad auth type: %s",
          short(outputs["check (errors)"]))

    # the bridge at debug level, through failures and events
    br = launch(t, broker, cfg, args=("run", "-l", "debug"))
    alive = (br,)
    for p in ("/b", "/t", "/h", "/o"):
        api.wait_requests(p, 5, finished=True, timeout=15)
    api.wait_requests("/f", 2, finished=True)
    wait_fail_line(br, "f", match="host")
    wait_fail_line(br, "q")
    wait_fail_line(br, "dead")
    wait_fail_line(br, "o", match="token")
    state["v"] = 1
    wait_for(lambda: len(sub.events()) >= 4, 15, "4 document events", alive=alive)
    t.settle(api, ["/b", "/t", "/h", "/o"], alive=alive)
    check(not any(r.headers.get("host", "").startswith("localhost")
                  for r in api.requests()),
          "the bridge followed a next link to another host")

    # once: the same config, no broker, prints events
    once_cfg = json.loads(json.dumps(cfg))
    once_cfg["state"]["path"] = t.path("once.db")
    r = t.run_cli(["once", "-l", "debug", "-c", t.write_config(once_cfg, "once.yaml")],
                  timeout=30)
    outputs["once"] = r.stdout.decode() + r.stderr.decode()
    br.stop()
    outputs["bridge stderr+stdout"] = "\n".join(br.log_lines()) + br.proc.stdout_text()
    outputs["MQTT messages"] = "\n".join("%s %s" % (m.topic, m.payload.decode("utf-8", "replace"))
                                         for m in sub.events())
    check(len(outputs["bridge stderr+stdout"]) > 500, "suspiciously little bridge output")
    hits = []
    for where, text in outputs.items():
        hits += ["%s: %s" % (where, h) for h in find_secrets(text, secrets)]
    check(not hits, "secrets leaked (%d):\n%s", len(hits), "\n".join(hits[:8]))
    report(t, "grepped %s for %d secrets in %d forms: clean" % (
        ", ".join("%s (%d bytes)" % (k, len(v)) for k, v in outputs.items()), len(secrets),
        sum(len(secret_forms(s)) for s in secrets.values())))


@case
def secrets_in_url_queries_never_shown(t):
    """A key in a URL's query (Azure-style ?code=, an api_key written into
    url:, a token_url with a secret) is never shown: `check` and log lines
    show the parameter names with the values masked."""
    api = make_api(t)
    secret = "Qs-7Rk2Vb-inurl"
    env = "R2M_E2E_URL_QUERY_SECRET"
    os.environ[env] = secret
    t.defer(lambda: os.environ.pop(env, None))
    api.route("/doc", lambda req: doc_reply({"v": 1}))
    api.route("/token", lambda req: Reply.status(404, b'{"error":"no"}'))
    eps = [{"name": "code", "url": api.url("/doc?status=active&code=${env:%s}" % env)},
           {"name": "o", "url": api.url("/doc"),
            "auth": {"type": "oauth2", "token_url": api.url("/token?code=${env:%s}" % env),
                     "client_id": "cid", "client_secret": "Cs-x"}}]
    cfg = t.config(free_port(), eps)
    path = t.write_config(cfg, "c.yaml")
    outputs = {}
    r = t.run_cli(["check", "-c", path])
    check_eq(r.returncode, 0, "exit code of check (stderr: %s)" % short(r.stderr.decode()))
    outputs["check"] = r.stdout.decode() + r.stderr.decode()
    check("code=*" in outputs["check"] and "status=*" in outputs["check"],
          "check does not show the query names: %s", short(outputs["check"]))
    r = t.run_cli(["once", "-l", "debug", "-c", path], timeout=30)
    outputs["once"] = r.stdout.decode() + r.stderr.decode()
    check("OAuth2 token request to" in outputs["once"], "no line about the token request: %s",
          short(outputs["once"]))
    check_eq(api.count("/token"), 1, "token requests")
    check(secret in api.requests("/token")[0].target, "the token URL lost its query")
    hits = []
    for where, text in outputs.items():
        hits += ["%s: %s" % (where, h) for h in find_secrets(text, {"query secret": secret})]
    check(not hits, "the secret in a URL query leaked:\n%s", "\n".join(hits))


# ---------------------------------------------------------------------------
# Conditional GET

class Conditional:
    """A document with validators: 304 when the request's validator matches."""

    def __init__(self, doc, etag=None, last_modified=None):
        self.doc, self.etag, self.lm = doc, etag, last_modified
        self.lock = threading.Lock()
        self.version = 1  # the label of every reply: "v<version>"

    def set(self, doc, etag=None, last_modified=None):
        with self.lock:
            self.doc, self.etag, self.lm = doc, etag, last_modified
            self.version += 1

    def __call__(self, req):
        with self.lock:
            h = {}
            if self.etag:
                h["ETag"] = self.etag
            if self.lm:
                h["Last-Modified"] = self.lm
            inm, ims = req.headers.get("if-none-match"), req.headers.get("if-modified-since")
            if (self.etag and inm == self.etag) or (not inm and self.lm and ims == self.lm):
                return Reply.raw(b"", status=304, content_type=None, headers=h,
                                 label="v%d" % self.version)
            return Reply.json(self.doc, headers=h, label="v%d" % self.version)


def validators(r):
    return (r.headers.get("if-none-match"), r.headers.get("if-modified-since"))


LM1 = "Wed, 21 Oct 2015 07:28:00 GMT"
LM2 = "Thu, 22 Oct 2015 08:00:00 GMT"
LM3 = "Fri, 23 Oct 2015 09:30:00 GMT"


@case
def conditional_get_304(t):
    broker, sub, api = stack(t)
    et = api.route("/etag", Conditional({"e": 1}, etag='"v1"'))
    lm = api.route("/lm", Conditional({"l": 1}, last_modified=LM1))
    api.set("/plain", Reply.json({"p": 1}))
    eps = [{"name": n, "url": api.url("/" + n)} for n in ("etag", "lm", "plain")]
    br = launch(t, broker, t.config(broker.port, eps))
    alive = (br,)
    paths = ["/etag", "/lm", "/plain"]
    for p in paths:
        api.wait_requests(p, 5, finished=True)
    t.settle(api, paths, alive=alive)
    assert_no_events(sub, "baseline, then 304s")

    e = api.requests("/etag")
    check_eq(validators(e[0]), (None, None), "validators of the first request")
    for r in e[1:]:
        check_eq(validators(r), ('"v1"', None), "validators sent after ETag \"v1\"")
        check_eq(r.reply.status, 304, "status served to a conditional request")
    lr = api.requests("/lm")
    check_eq(validators(lr[0]), (None, None), "validators of the first request (lm)")
    for r in lr[1:]:
        check_eq(validators(r), (None, LM1), "validators sent after Last-Modified")
        check_eq(r.reply.status, 304, "status served (lm)")
    for r in api.requests("/plain"):
        check_eq(validators(r), (None, None), "validators of an endpoint whose API sends none")
    for n in ("etag", "lm", "plain"):
        check_eq(fail_lines(br, n), [], "warn/error lines for %s (a 304 is a success)" % n)

    # a change behind new validators (a weak ETag this time): one event each
    mark = {p: api.count(p) for p in paths}
    et.set({"e": 2}, etag='W/"v2"')
    lm.set({"l": 2}, last_modified=LM2)
    api.set("/plain", Reply.json({"p": 2}))
    wait_for(lambda: len(sub.events()) >= 3, 10, "3 events", alive=alive)
    for p in paths:
        api.wait_requests(p, mark[p] + 5, finished=True)
    t.settle(api, paths, alive=alive)
    evs = {m.topic: m for m in sub.events()}
    check_eq(len(sub.events()), 3, "events after one change per endpoint")
    check_message(evs["rest2mqtt/etag"], "rest2mqtt/etag", "etag", {"e": 1}, {"e": 2})
    check_message(evs["rest2mqtt/lm"], "rest2mqtt/lm", "lm", {"l": 1}, {"l": 2})
    check_message(evs["rest2mqtt/plain"], "rest2mqtt/plain", "plain", {"p": 1}, {"p": 2})
    e = [r for r in api.requests("/etag") if r.reply.label == "v2"]
    check_eq(validators(e[0]), ('"v1"', None), "the request that saw the change")
    check_eq(e[0].reply.status, 200, "the answer to an outdated validator")
    for r in e[1:]:
        check_eq(validators(r), ('W/"v2"', None), "validators after the change (weak ETag)")
        check_eq(r.reply.status, 304, "status after the change")
    lr = [r for r in api.requests("/lm") if r.reply.label == "v2"]
    check_eq(validators(lr[0]), (None, LM1), "the request that saw the change (lm)")
    for r in lr[1:]:
        check_eq(validators(r), (None, LM2), "If-Modified-Since after the change")
    for n in ("etag", "lm", "plain"):
        check_eq(fail_lines(br, n), [], "warn/error lines for %s" % n)
    n304 = sum(1 for r in api.requests() if r.reply and r.reply.status == 304)
    report(t, "%d requests answered 304, no event and no failure for any" % n304)
    br.stop()


@case
def conditional_get_validators_survive_restart(t):
    broker, sub, api = stack(t)
    doc = api.route("/doc", Conditional({"d": 1}, etag='"e1"', last_modified=LM1))
    pg_items = [items(1, 3), items(3, 5), []]

    def pg(req):
        k = int(req.q("page", "0"))
        return Reply.json({"data": pg_items[k - 1] if 1 <= k <= 3 else []},
                          headers={"ETag": '"pg-%d"' % k, "Last-Modified": LM1})
    api.route("/pg", pg)
    eps = [{"name": "doc", "url": api.url("/doc")},
           {"name": "pg", "url": api.url("/pg"), "items": "/data", "key": "/id",
            "paginate": {"param": "page", "start": 1}}]
    cfg = t.config(broker.port, eps)

    br = launch(t, broker, cfg, name="bridge-1")
    api.wait_requests("/doc", 3, finished=True)
    doc.set({"d": 2}, etag='"e2"', last_modified=LM2)
    sub.wait_events(1, alive=(br,))
    wait_for(lambda: validators(api.requests("/doc")[-1]) == ('"e2"', LM2), 10,
             "requests carrying the new validators", alive=(br,))
    t.settle(api, ["/doc"], alive=(br,))
    check_message(sub.events()[0], "rest2mqtt/doc", "doc", {"d": 1}, {"d": 2})
    br.stop()

    # restart: the first request already carries the stored validators
    mark = api.count("/doc")
    br = launch(t, broker, cfg, name="bridge-2")
    api.wait_requests("/doc", mark + 3, finished=True)
    first = api.requests("/doc")[mark]
    check_eq(validators(first), ('"e2"', LM2),
             "validators of the first request after a restart (If-None-Match, "
             "If-Modified-Since)")
    check_eq(first.reply.status, 304, "answer to it")
    t.settle(api, ["/doc"], alive=(br,))
    check_eq(len(sub.events()), 1, "events after the restart (all 304)")
    check_eq(fail_lines(br, "doc"), [], "warn/error lines after the restart")

    # the stored snapshot is the base for the next change
    doc.set({"d": 3}, etag='"e3"', last_modified=LM3)
    sub.wait_events(2, alive=(br,))
    t.settle(api, ["/doc"], alive=(br,))
    check_eq(len(sub.events()), 2, "events after a change following the restart")
    check_message(sub.events()[1], "rest2mqtt/doc", "doc", {"d": 2}, {"d": 3})

    # paginated: validators are never sent, before or after the restart
    for r in api.requests("/pg"):
        check_eq(validators(r), (None, None), "validators on a paginated request %s" % r.target)
    check(api.count("/pg") >= 6, "the paginated endpoint was hardly polled")

    # the API rotates its ETag without a content change: 200, no event; the
    # new validator is what a restart must send (it came with a successful 200)
    doc.set({"d": 3}, etag='"e4"', last_modified=LM3)
    wait_for(lambda: validators(api.requests("/doc")[-1])[0] == '"e4"', 10,
             "requests carrying the rotated ETag", alive=(br,))
    t.settle(api, ["/doc"], alive=(br,))
    check_eq(len(sub.events()), 2, "events after an ETag-only change")
    br.stop()
    mark = api.count("/doc")
    br = launch(t, broker, cfg, name="bridge-3")
    api.wait_requests("/doc", mark + 2, finished=True)
    first = api.requests("/doc")[mark]
    check_eq(validators(first)[0], '"e4"', "If-None-Match of the first request after the "
             "second restart (the ETag of the last successful 200 was \"e4\"; the content had "
             "not changed)")
    for r in api.requests("/pg"):
        check_eq(validators(r), (None, None), "validators on a paginated request %s" % r.target)
    br.stop()


@case
def conditional_get_failed_poll_validators_never_saved(t):
    """Validators saved at a graceful stop are those of the last successful
    poll, never those of a later 200 whose poll failed: a restart sending the
    failed response's ETag gets a 304 and skips it (a change whose commit
    failed - outbox full - would be lost until the next change)."""
    broker, sub, api = stack(t)
    doc = api.route("/doc", Conditional({"d": 1}, etag='"e1"'))
    eps = [{"name": "doc", "url": api.url("/doc"), "interval": "300ms", "max_backoff": "300ms"}]
    cfg = t.config(broker.port, eps)
    br = launch(t, broker, cfg, name="bridge-1")
    alive = (br,)
    api.wait_requests("/doc", 2, finished=True)
    # the ETag rotates without a content change: a success whose new
    # validator waits to be saved at the stop
    doc.set({"d": 1}, etag='"e2"')
    wait_for(lambda: validators(api.requests("/doc")[-1])[0] == '"e2"', 10,
             "requests carrying the rotated ETag", alive=alive)
    # then a 200 the poll cannot use
    mark = len(br.log_lines())
    doc.set(b"<html>maintenance</html>", etag='"bad"')
    wait_fail_line(br, "doc", after=mark, match="invalid JSON", sub=sub)
    br.stop()
    n = api.count("/doc")
    br = launch(t, broker, cfg, name="bridge-2")
    api.wait_requests("/doc", n + 1, finished=True)
    first = api.requests("/doc")[n]
    check_eq(validators(first)[0], '"e2"', "If-None-Match of the first request after the "
             "restart (the last successful poll saw \"e2\"; the poll of \"bad\" failed)")
    check_eq(first.reply.status, 200, "answer to it: the broken body again, not a 304")
    wait_fail_line(br, "doc", match="invalid JSON", sub=sub,
                   what="the broken answer is still a failure after the restart")
    assert_no_events(sub, "an unchanged document and a broken one")
    br.stop()


@case
def conditional_get_dropped_snapshot_sends_no_validators(t):
    """A stored snapshot the bridge cannot use (text that is not valid UTF-8,
    written before such text was refused) is dropped at start; its stored
    validators must go with it. Sent, the API answers 304, no baseline is
    taken, and the next change becomes a silent baseline: a lost event."""
    import sqlite3
    broker, sub, api = stack(t)
    doc = api.route("/doc", Conditional({"d": 1}, etag='"e1"'))
    eps = [{"name": "doc", "url": api.url("/doc")}]
    cfg = t.config(broker.port, eps)
    br = launch(t, broker, cfg, name="bridge-1")
    wait_for(lambda: validators(api.requests("/doc")[-1])[0] == '"e1"', 10,
             "requests carrying the ETag", alive=(br,))
    br.stop()
    db = sqlite3.connect(cfg["state"]["path"])
    with db:
        n = db.execute("UPDATE endpoint SET doc = ? WHERE name = 'doc'",
                       (b'{"d":"\xed\xa0\x80"}',)).rowcount
    db.close()
    check_eq(n, 1, "stored snapshots made unreadable")
    mark = api.count("/doc")
    br = launch(t, broker, cfg, name="bridge-2")
    alive = (br,)
    api.wait_requests("/doc", mark + 2, finished=True)
    first = api.requests("/doc")[mark]
    check_eq(validators(first), (None, None),
             "validators of the first request after the snapshot was dropped")
    check_eq(first.reply.status, 200, "answer to it (the new baseline)")
    doc.set({"d": 2}, etag='"e2"')
    wait_for(lambda: len(sub.events()) >= 1, 10, "the event of the change after the restart",
             alive=alive)
    check_message(sub.events()[0], "rest2mqtt/doc", "doc", {"d": 1}, {"d": 2})
    br.stop()


# ---------------------------------------------------------------------------
# POST

@case
def post_body_and_content_type(t):
    broker, sub, api = stack(t)
    jbody = '{"filter":{"status":"active"},"limit":50}'
    fbody = "status=active&limit=50&q=a%20b"
    docs = {"/pj": {"j": 0}, "/pf": {"f": 0}, "/g": {"g": 0}}
    for p in docs:
        api.route(p, lambda req, p=p: doc_reply(docs[p]))
    eps = [
        {"name": "pj", "url": api.url("/pj"), "method": "POST", "body": jbody},
        {"name": "pf", "url": api.url("/pf"), "method": "POST", "body": fbody,
         "content_type": "application/x-www-form-urlencoded"},
        {"name": "g", "url": api.url("/g"), "method": "GET"},
    ]
    br = launch(t, broker, t.config(broker.port, eps))
    alive = (br,)
    for p in docs:
        api.wait_requests(p, 3, finished=True)
    t.settle(api, list(docs), alive=alive)
    assert_no_events(sub, "baseline")
    for r in api.requests("/pj"):
        check_eq(r.method, "POST", "method of pj")
        check_eq(r.body, jbody.encode(), "body of pj")
        check_eq(r.headers.get("content-type"), "application/json",
                 "Content-Type of pj (default)")
        check_eq(r.headers.get("content-length"), str(len(jbody)), "Content-Length of pj")
    for r in api.requests("/pf"):
        check_eq(r.method, "POST", "method of pf")
        check_eq(r.body, fbody.encode(), "body of pf")
        check_eq(r.headers.get("content-type"), "application/x-www-form-urlencoded",
                 "Content-Type of pf")
    for r in api.requests("/g"):
        check_eq((r.method, r.body, r.headers.get("content-type")), ("GET", b"", None),
                 "method, body and Content-Type of the GET endpoint")

    for p in docs:
        docs[p] = {k: 1 for k in docs[p]}
    sub.wait_events(3, alive=alive)
    t.settle(api, list(docs), alive=alive)
    evs = {m.topic: m for m in sub.events()}
    check_eq(len(sub.events()), 3, "events after one change per endpoint")
    check_message(evs["rest2mqtt/pj"], "rest2mqtt/pj", "pj", {"j": 0}, {"j": 1})
    check_message(evs["rest2mqtt/pf"], "rest2mqtt/pf", "pf", {"f": 0}, {"f": 1})
    check_message(evs["rest2mqtt/g"], "rest2mqtt/g", "g", {"g": 0}, {"g": 1})
    for r in api.requests("/pj"):
        check_eq((r.method, r.body), ("POST", jbody.encode()), "every pj request")
    br.stop()


# ---------------------------------------------------------------------------
# Pagination

class Paged:
    """Pages of a collection, shared with a route function. The case
    changes them with set() at any time; a poll sees one version: the
    request for the first page (k == 0) pins the current pages for the
    pages that follow, so no poll mixes old and new pages."""

    def __init__(self, pages):
        self.lock = threading.Lock()
        self.pages = [list(p) for p in pages]
        self.serving = [list(p) for p in pages]

    def set(self, pages):
        with self.lock:
            self.pages = [list(p) for p in pages]

    def page(self, k):
        """Items of page k (0-based) of the poll in progress."""
        with self.lock:
            if k == 0:
                self.serving = [list(p) for p in self.pages]
            return list(self.serving[k]) if 0 <= k < len(self.serving) else []

    def n(self):
        """Pages of the poll in progress."""
        with self.lock:
            return len(self.serving)

    def all(self):
        with self.lock:
            return [i for p in self.pages for i in p]


def run_pagination(t, broker, sub, api, ep, path, page_of, first, reshuffle, change, n_pages=3,
                   extra=None, other_eps=()):
    """Baseline, a reshuffle across pages (no event), a change (exact events).
    reshuffle(), change(): set the pages; change returns the number of
    events it implies. Returns (bridge, replica)."""
    br = launch(t, broker, t.config(broker.port, [ep] + list(other_eps)))
    alive = (br,)
    name = ep["name"]
    last = lambda r: r.path == path and page_of(r) == n_pages  # noqa: E731
    wait_for(lambda: sum(1 for r in api.requests(path) if last(r) and r.outcome != "open") >= 3,
             10, "3 complete polls of %s" % name, alive=alive)
    quiesce(api, [path], alive=alive)
    check_eq(item_msgs(sub), [], "item events after the baseline polls")
    check_eq(fail_lines(br, name), [], "failure lines")
    polls = page_polls(api.requests(path), page_of, first)
    for p in polls[:-1]:
        check_eq(p, list(range(first, first + n_pages)),
                 "pages requested by one poll (in order)")
    if extra:
        extra(br)
    rep = Replica(name, items=keyed(reshuffle.base))
    reshuffle()
    settle_count(api, last, alive=alive, what="complete polls")
    check_eq(item_msgs(sub), [], "item events after the items moved between pages")
    n = change()
    wait_n_items(sub, n, name, alive)
    settle_count(api, last, alive=alive, what="complete polls")
    exactly_items(sub, n, name, "after the change")
    rep.feed(sub)
    rep.check_equals(keyed(reshuffle.paged.all()), "items rebuilt from the events")
    polls = page_polls(api.requests(path), page_of, first)
    for p in polls[:-1]:
        check_eq(p, list(range(first, first + n_pages)),
                 "pages requested by one poll (in order)")
    return br, rep


def make_steps(paged):
    """The standard scenario: 2+2+2 items; then the same items as 3+1+2 and
    in another order; then item 6 updated (page 3), 1 deleted (page 1), 7
    created (page 2)."""
    base = items(1, 7)

    def reshuffle():
        paged.set([[base[4], base[0], base[2]], [base[1]], [base[5], base[3]]])
    reshuffle.base = base
    reshuffle.paged = paged

    def change():
        upd = dict(base[5], tag="v1")
        paged.set([[base[4], base[2]], [base[1], {"id": 7, "name": "item 7", "tag": "v0"}],
                   [upd, base[3]]])
        return 3
    paged.set([base[0:2], base[2:4], base[4:6]])
    return reshuffle, change


def check_event_ops(sub, name, want):
    got = sorted((m.json()["data"]["key"], m.json()["data"]["op"]) for m in item_msgs(sub, name))
    check_eq(got, sorted(want), "(key, op) of the events of %s" % name)


def run_link_pagination(t, headers_of):
    """The standard scenario over 3 pages with Link pagination:
    headers_of(api, k) gives the response headers of page k (from 1).
    Returns (api, bridge) after checking the events."""
    broker, sub, api = stack(t)
    paged = Paged([])
    reshuffle, change = make_steps(paged)

    def route(req):
        k = int(req.q("page", "1"))
        return Reply.json({"data": paged.page(k - 1)}, headers=headers_of(api, k))
    api.route("/items", route)
    ep = {"name": "items", "url": api.url("/items"), "items": "/data", "key": "/id",
          "paginate": {"next": "link"}}
    br, _ = run_pagination(t, broker, sub, api, ep, "/items",
                           lambda r: int(parse_qs(urlsplit(r.target).query).get("page", ["1"])[0]),
                           1, reshuffle, change)
    check_event_ops(sub, "items", [("1", "deleted"), ("6", "updated"), ("7", "created")])
    return api, br


@case
def paginate_link(t):
    def headers_of(api, k):
        h = {"ETag": '"p%d-%d"' % (k, time.monotonic_ns()), "Last-Modified": LM1}
        if k == 1:  # several links; next is relative to the host, after another relation
            h["Link"] = '<%s>; rel="last", </items?page=2>; rel="next"' % api.url("/items?page=3")
        elif k == 2:  # unquoted rel; a path-relative reference
            h["Link"] = "<items?page=3>; rel=next"
        else:
            h["Link"] = '</items?page=2>; rel="prev", </items>; rel="first"'
        return h
    api, br = run_link_pagination(t, headers_of)
    for r in api.requests("/items"):
        check_eq(validators(r), (None, None), "validators sent on paginated request %s"
                 % r.target)
    br.stop()


@case
def paginate_next_pointer(t):
    broker, sub, api = stack(t)
    paged = Paged([])
    reshuffle, change = make_steps(paged)
    end = {"mode": "null"}

    def route(req):
        k = int(req.q("page", "1"))
        doc = {"data": paged.page(k - 1)}
        if k == 1:
            doc["links"] = {"next": "/api/items?page=2", "self": "/api/items"}
        elif k == 2:
            doc["links"] = {"next": api.url("/api/items?page=3")}
        elif end["mode"] == "null":
            doc["links"] = {"next": None}
        elif end["mode"] == "empty":
            doc["links"] = {"next": ""}
        elif end["mode"] == "no member":
            doc["links"] = {"prev": "/api/items?page=2"}
        return Reply.json(doc)
    api.route("/api/items", route)
    page_of = lambda r: int(parse_qs(urlsplit(r.target).query).get("page", ["1"])[0])  # noqa

    def terminators(br):
        # "", a links object without next, no links object: each ends the list
        for mode in ("empty", "no member", "no links"):
            end["mode"] = mode
            settle_count(api, lambda r: r.path == "/api/items" and page_of(r) == 3,
                         alive=(br,), what="complete polls (last page: %s)" % mode)
            polls = page_polls(api.requests("/api/items"), page_of, 1)
            for p in polls[-3:-1]:
                check_eq(p, [1, 2, 3], "pages of a poll whose last page has next: %s" % mode)
        check_eq(fail_lines(br, "items"), [], "failure lines")
        end["mode"] = "null"

    ep = {"name": "items", "url": api.url("/api/items"), "items": "/data", "key": "/id",
          "paginate": {"next": "/links/next"}}
    br, _ = run_pagination(t, broker, sub, api, ep, "/api/items", page_of, 1, reshuffle, change,
                           extra=terminators)
    check_event_ops(sub, "items", [("1", "deleted"), ("6", "updated"), ("7", "created")])
    br.stop()


@case
def paginate_cursor(t):
    broker, sub, api = stack(t)
    paged = Paged([])
    reshuffle, change = make_steps(paged)
    c2 = "abc/+= x&y"  # needs URL encoding
    cursors = {None: 1, c2: 2, "c3": 3}
    end = {"mode": "null"}
    bad = []

    def route(req):
        q = req.query
        if q.get("limit") != ["2"] or len(q.get("cursor", [])) > 1 or set(q) - {"limit", "cursor"}:
            bad.append(req.target)
            return Reply.status(400, b'{"error":"bad query"}')
        k = cursors.get(req.q("cursor"))
        if k is None:
            bad.append(req.target)
            return Reply.status(400, b'{"error":"unknown cursor"}')
        doc = {"data": paged.page(k - 1)}
        if k == 1:
            doc["next_cursor"] = c2
        elif k == 2:
            doc["next_cursor"] = "c3"
        elif end["mode"] == "null":
            doc["next_cursor"] = None
        elif end["mode"] == "empty":
            doc["next_cursor"] = ""
        return Reply.json(doc)
    api.route("/c", route)
    page_of = lambda r: cursors.get(parse_qs(urlsplit(r.target).query).get(  # noqa: E731
        "cursor", [None])[0], 0)

    def terminators(br):
        for mode in ("empty", "absent"):
            end["mode"] = mode
            settle_count(api, lambda r: r.path == "/c" and page_of(r) == 3, alive=(br,),
                         what="complete polls (last cursor: %s)" % mode)
            polls = page_polls(api.requests("/c"), page_of, 1)
            for p in polls[-3:-1]:
                check_eq(p, [1, 2, 3], "pages of a poll whose last page has cursor %s" % mode)
        end["mode"] = "null"

    ep = {"name": "cur", "url": api.url("/c?limit=2"), "items": "/data", "key": "/id",
          "paginate": {"cursor": "/next_cursor", "param": "cursor"}}
    br, _ = run_pagination(t, broker, sub, api, ep, "/c", page_of, 1, reshuffle, change,
                           extra=terminators)
    check_eq(bad, [], "requests with a wrong query (limit kept, one cursor, value decoded)")
    check_event_ops(sub, "cur", [("1", "deleted"), ("6", "updated"), ("7", "created")])
    t3 = [r.target for r in api.requests("/c") if page_of(r) == 3][0]
    report(t, "a third-page request: %s" % t3)
    br.stop()


@case
def paginate_page_number(t):
    broker, sub, api = stack(t)
    paged = Paged([])
    reshuffle, change = make_steps(paged)
    bad = []

    def route(req):
        if req.q("size") != "2" or len(req.query.get("page", [])) != 1:
            bad.append(req.target)
            return Reply.status(400, b'{"error":"bad query"}')
        return Reply.json({"data": paged.page(int(req.q("page")) - 1), "total": 6})
    api.route("/pn", route)
    zero = Paged([items(100, 103), items(103, 104)])

    def route0(req):
        return Reply.json({"data": zero.page(int(req.q("p")))})
    api.route("/pz", route0)
    page_of = lambda r: int(parse_qs(urlsplit(r.target).query)["page"][0])  # noqa: E731

    def start0(br):
        # a second endpoint, start: 0: p=0, p=1, then the empty p=2 ends it
        polls = page_polls(api.requests("/pz"), lambda r: int(r.target.split("p=")[-1]), 0)
        check(len(polls) >= 2, "the start: 0 endpoint was not polled twice")
        for p in polls[:-1]:
            check_eq(p, [0, 1, 2], "pages of a poll with start: 0")

    # the empty 4th page ends each poll: 3 pages of items + 1
    ep = {"name": "pn", "url": api.url("/pn?size=2"), "items": "/data", "key": "/id",
          "paginate": {"param": "page", "start": 1}}
    pz = {"name": "pz", "url": api.url("/pz"), "items": "/data", "key": "/id",
          "paginate": {"param": "p", "start": 0}}
    br, _ = run_pagination(t, broker, sub, api, ep, "/pn", page_of, 1, reshuffle, change,
                           n_pages=4, extra=start0, other_eps=[pz])
    check_eq(bad, [], "requests with a wrong query")
    check_event_ops(sub, "pn", [("1", "deleted"), ("6", "updated"), ("7", "created")])
    check_eq(item_msgs(sub, "pz"), [], "events of the unchanged start: 0 endpoint")
    br.stop()


@case
def paginate_failing_middle_page(t):
    broker, sub, api = stack(t)
    paged = Paged([items(1, 3), items(3, 5), items(5, 7)])
    page2 = {"mode": "ok"}

    def route(req):
        k = int(req.q("page"))
        if k == 2 and page2["mode"] == "500":
            return Reply.status(500, b'{"error":"internal"}')
        if k == 2 and page2["mode"] == "hang":
            return Reply.hang()
        return Reply.json({"data": paged.page(k - 1)})
    api.route("/items", route)
    ep = {"name": "items", "url": api.url("/items"), "items": "/data", "key": "/id",
          "paginate": {"param": "page", "start": 1}, "timeout": "1s", "max_backoff": "1s"}
    br = launch(t, broker, t.config(broker.port, [ep]))
    alive = (br,)
    page_of = lambda r: int(parse_qs(urlsplit(r.target).query)["page"][0])  # noqa: E731
    last = lambda r: page_of(r) == 4  # noqa: E731
    settle_count(api, last, polls=3, alive=alive, what="complete polls")
    check_eq(item_msgs(sub), [], "baseline")
    rep = Replica("items", items=keyed(items(1, 7)))

    # page 2 of 3 fails (500, then a timeout) while page 1 changed: nothing
    for mode, match in (("500", "500"), ("hang", "time")):
        mark_log = len(br.log_lines())
        page2["mode"] = mode  # first, so that no poll sees the change of page 1 in full
        paged.set([[dict(items(1, 2)[0], tag="v1")] + items(2, 3), items(3, 5), items(5, 7)])
        line = wait_fail_line(br, "items", mark_log, match=match, timeout=10,
                              what="page 2 answers %s" % mode, sub=sub)
        settle_count(api, lambda r: page_of(r) == 2, polls=2, timeout=15, alive=alive,
                     what="page-2 requests (%s)" % mode)
        report(t, "page 2 %s: %s" % (mode, line[:200]))
        check_eq(item_msgs(sub), [], "events while page 2 fails (%s): none, in particular no "
                 "'deleted' for the items of pages 2 and 3" % mode)

    # recovery: the change of page 1 and a delete on page 3, diffed against the
    # state from before the failures
    paged.set([[dict(items(1, 2)[0], tag="v1")] + items(2, 3), items(3, 5), items(5, 6)])
    page2["mode"] = "ok"
    wait_n_items(sub, 2, "items", alive, timeout=15)
    settle_count(api, last, alive=alive, what="complete polls")
    exactly_items(sub, 2, "items", "after recovery")
    rep.feed(sub)
    rep.check_equals(keyed(paged.all()), "items rebuilt from the events")
    check_event_ops(sub, "items", [("1", "updated"), ("6", "deleted")])
    br.stop()


@case
def paginate_link_long_and_quoted(t):
    """Link headers the old parser lost pages on: a next URL over 4 KiB, a
    quoted title with a comma and a semicolon, next and self in separate
    header fields. Every page is read; moving items between pages and a
    change give exactly the events they imply, never a 'deleted' for an item
    of a lost page."""
    state = "s" * 4500  # page 2's URL is over 4 KiB

    def headers_of(api, k):
        if k == 1:
            return {"Link": '</items?page=1>; rel="first", <%s>; title="page 2, the long one"; '
                    'rel="next"' % api.url("/items?page=2&state=" + state)}
        if k == 2:  # two field lines; the quoted title holds "; rel=next,"
            return {"Link": ['</items?page=2>; rel="self"; title="x; rel=next, <no>"',
                             '</items?page=3>; title="three, last"; REL="Next Last"']}
        return {"Link": '</items?page=2>; rel="prev"; title="two, before"'}
    api, br = run_link_pagination(t, headers_of)
    long = [r for r in api.requests("/items") if "page=2" in r.target]
    check(long and all(r.target == "/items?page=2&state=" + state and r.outcome == "complete"
                       for r in long), "page 2 was not requested with its full URL of 4.5 KiB")
    check_eq(fail_lines(br, "items"), [], "failure lines")
    report(t, "page 2 URL: %d bytes" % len(long[0].target))
    br.stop()


@case
def paginate_link_malformed(t):
    """A Link header on page 2 that cannot be parsed completely fails the
    poll with a line that names the endpoint, the problem and the masked page
    URL; nothing is emitted (above all no 'deleted' for page 3) and the next
    good poll diffs against the old snapshot."""
    broker, sub, api = stack(t)
    paged = Paged([items(1, 3), items(3, 5), items(5, 7)])
    bad = {"mode": None}
    links = {
        "unterminated quote": '</items?page=3>; rel="next',
        "unterminated <": '</items?page=3; rel="next"',
        "garbage between links": '</items?page=1>; rel="prev"; junk junk, </items?page=3>; '
                                 'rel="next"',
        "two next links": '</items?page=3>; rel="next", </items?page=4>; rel="next"',
    }
    problems = {"unterminated quote": "unterminated quoted string",
                "unterminated <": "unterminated '<'",
                "garbage between links": "expected ';' or ','",
                "two next links": "two different rel"}

    def route(req):
        k = int(req.q("page", "1"))
        h = {}
        if k < 3:
            h["Link"] = '</items?page=%d>; rel="next"' % (k + 1)
            if k == 2 and bad["mode"]:
                h["Link"] = links[bad["mode"]]
        return Reply.json({"data": paged.page(k - 1)}, headers=h)
    api.route("/items", route)
    ep = {"name": "items", "url": api.url("/items?api_key=k3y-S3cret"), "items": "/data",
          "key": "/id", "paginate": {"next": "link"}, "max_backoff": "1s"}
    br = launch(t, broker, t.config(broker.port, [ep]))
    alive = (br,)
    page_of = lambda r: int(parse_qs(urlsplit(r.target).query).get("page", ["1"])[0])  # noqa
    last = lambda r: page_of(r) == 3  # noqa: E731
    settle_count(api, last, polls=3, alive=alive, what="complete polls")
    check_eq(item_msgs(sub), [], "baseline")
    check_eq(fail_lines(br, "items"), [], "failure lines with good Link headers")
    rep = Replica("items", items=keyed(items(1, 7)))

    for mode in links:
        mark_log = len(br.log_lines())
        bad["mode"] = mode  # first, so that no poll sees the change of page 1 in full
        paged.set([[dict(items(1, 2)[0], tag="v-%d" % len(mode))] + items(2, 3), items(3, 5),
                   items(5, 7)])
        line = wait_fail_line(br, "items", mark_log, match=re.escape(problems[mode]),
                              timeout=10, what="page 2 has a Link header with %s" % mode, sub=sub)
        settle_count(api, lambda r: page_of(r) == 2, polls=2, timeout=15, alive=alive,
                     what="page-2 requests (%s)" % mode)
        page = "page 2, http://127.0.0.1:%d/items?page=*)" % api.port
        check("Link header" in line and page in line,
              "the failure line does not name the Link header and the page: %s", line)
        check("k3y-S3cret" not in "\n".join(br.log_lines()), "the API key is in the log")
        report(t, "%s: %s" % (mode, line[:300]))
        check_eq(item_msgs(sub), [], "events while page 2 has a Link header with %s: none, in "
                 "particular no 'deleted' for the items of page 3" % mode)
    check_eq([r.target for r in api.requests("/items") if page_of(r) > 3], [],
             "requests for a page named only by a broken or ambiguous Link header")

    # a good header again: exactly the change of page 1, against the old snapshot
    bad["mode"] = None
    wait_n_items(sub, 1, "items", alive, timeout=15)
    settle_count(api, last, alive=alive, what="complete polls")
    exactly_items(sub, 1, "items", "after the Link header was fixed")
    check_event_ops(sub, "items", [("1", "updated")])
    rep.feed(sub)
    rep.check_equals(keyed(paged.all()), "items rebuilt from the events")
    br.stop()


@case
def paginate_max_pages_and_foreign_host(t):
    broker, sub, api = stack(t)
    paged = Paged([items(1, 3), items(3, 5), items(5, 7)])

    def route(req):  # Link pagination over however many pages `paged` has
        k = int(req.q("page", "1"))
        data = paged.page(k - 1)
        h = {"Link": '</lim?page=%d>; rel="next"' % (k + 1)} if k < paged.n() else {}
        return Reply.json({"data": data}, headers=h)
    api.route("/lim", route)
    api.route("/endless", lambda req: Reply.json(
        {"data": [{"id": int(req.q("page"))}]}))

    def foreign(req):
        k = int(req.q("page", "1"))
        if k == 1:
            return Reply.json({"data": items(1, 3)}, headers={
                "Link": '<%s>; rel="next"' % api.url("/far?page=2", host="localhost")})
        return Reply.json({"data": items(3, 5)})
    api.route("/far", foreign)
    token = "Tk-far-7Gh2"
    eps = [{"name": "lim", "url": api.url("/lim"), "items": "/data", "key": "/id",
            "paginate": {"next": "link"}, "max_pages": 3, "max_backoff": "1s"},
           {"name": "endless", "url": api.url("/endless"), "items": "/data", "key": "/id",
            "paginate": {"param": "page"}, "interval": "1s", "max_backoff": "1s"},
           {"name": "far", "url": api.url("/far"), "items": "/data", "key": "/id",
            "paginate": {"next": "link"}, "auth": {"type": "bearer", "token": token}}]
    br = launch(t, broker, t.config(broker.port, eps))
    alive = (br,)
    page_of = lambda r: int(parse_qs(urlsplit(r.target).query).get("page", ["1"])[0])  # noqa
    lim3 = lambda r: r.path == "/lim" and page_of(r) == 3  # noqa: E731
    settle_count(api, lim3, polls=3, alive=alive, what="polls of exactly max_pages pages")
    check_eq(fail_lines(br, "lim"), [], "failure lines with exactly max_pages pages")

    # more pages than max_pages: the poll fails, mentions max_pages, nothing emitted
    mark_log = len(br.log_lines())
    paged.set([items(1, 3), items(3, 5), items(5, 7), items(7, 9)])
    line = wait_fail_line(br, "lim", mark_log, match="max_pages")
    settle_count(api, lim3, polls=2, alive=alive, what="polls of /lim")
    check_eq([r.target for r in api.requests("/lim") if page_of(r) > 3], [],
             "requests for pages beyond max_pages")
    check_eq(item_msgs(sub, "lim"), [], "events when the list outgrew max_pages")
    report(t, "max_pages 3, 4 pages: %s" % line[:200])

    # default max_pages (100): a list that never ends
    line = wait_fail_line(br, "endless", match="max_pages")
    pages = sorted({page_of(r) for r in api.requests("/endless")})
    check_eq((pages[0], pages[-1]), (1, 100), "first and last page requested of an endless "
             "list (default max_pages 100)")
    check_eq(item_msgs(sub, "endless"), [], "events of the endless list")
    report(t, "endless list: %s" % line[:200])

    # a next link on another host ("localhost" vs "127.0.0.1"): refused
    line = wait_fail_line(br, "far", match="host")
    api.wait_requests("/far", 3, finished=True)
    hosts = {r.headers.get("host") for r in api.requests("/far")}
    check_eq(hosts, {"127.0.0.1:%d" % api.port}, "Host headers of requests for /far")
    check(all(page_of(r) == 1 for r in api.requests("/far")),
          "the bridge requested page 2 on another host")
    check_eq(item_msgs(sub, "far"), [], "events of the endpoint with a foreign next link")
    check(token not in "\n".join(br.log_lines()), "the bearer token is in the log")
    report(t, "foreign next link: %s" % line[:200])

    # back to 3 pages: the poll works again and diffs against the old state
    paged.set([items(1, 3), items(3, 5), items(5, 6) + [{"id": 9, "name": "n", "tag": "v0"}]])
    wait_n_items(sub, 2, "lim", alive, timeout=10)
    settle_count(api, lim3, polls=2, alive=alive, what="polls of /lim")
    exactly_items(sub, 2, "lim", "after the list shrank back to 3 pages")
    check_event_ops(sub, "lim", [("6", "deleted"), ("9", "created")])
    br.stop()


# ---------------------------------------------------------------------------
# accept_status, error_if

@case
def accept_status_and_error_if(t):
    broker, sub, api = stack(t)
    api.set("/acc", Reply.json({"a": 0}))
    api.set("/err", Reply.json({"status": "ok", "data": items(1, 3)}))
    eps = [{"name": "acc", "url": api.url("/acc"), "accept_status": [200, 203],
            "max_backoff": "1s"},
           {"name": "err", "url": api.url("/err"), "items": "/data", "key": "/id",
            "error_if": {"pointer": "/status", "equals": "error"}, "max_backoff": "1s"}]
    br = launch(t, broker, t.config(broker.port, eps))
    alive = (br,)
    for p in ("/acc", "/err"):
        api.wait_requests(p, 3, finished=True)
    t.settle(api, ["/acc", "/err"], alive=alive)
    assert_no_events(sub, "baseline")

    # 203 is accepted: a change behind it is an event
    r203 = api.set("/acc", Reply.json({"a": 1}, status=203))
    sub.wait_events(1, alive=alive)
    api.wait_requests("/acc", 2, reply=r203, finished=True)
    quiesce(api, ["/acc"], alive=alive)
    check_eq(len(sub.events()), 1, "events after a change served with 203")
    check_message(sub.events()[0], "rest2mqtt/acc", "acc", {"a": 0}, {"a": 1})
    check_eq(fail_lines(br, "acc"), [], "failure lines for 200 and 203")

    # 201 and 202 are 2xx but not in accept_status: failed polls
    for st in (201, 202):
        mark = len(br.log_lines())
        r = api.set("/acc", Reply.json({"a": "status %d" % st}, status=st))
        line = wait_fail_line(br, "acc", mark, match=str(st), sub=sub)
        api.wait_requests("/acc", 2, reply=r, finished=True, timeout=10)
        quiesce(api, ["/acc"], alive=alive)
        check_eq(len(sub.events()), 1, "events while the API answers %d" % st)
        report(t, "status %d: %s" % (st, line[:160]))
    r = api.set("/acc", Reply.json({"a": 2}))
    sub.wait_events(2, alive=alive)
    api.wait_requests("/acc", 2, reply=r, finished=True)
    quiesce(api, ["/acc"], alive=alive)
    check_eq(len(sub.events()), 2, "events after recovery")
    check_message(sub.events()[1], "rest2mqtt/acc", "acc", {"a": 1}, {"a": 2})

    # error_if: a 200 that says "status": "error" fails the poll (no deletes)
    mark = len(br.log_lines())
    r = api.set("/err", Reply.json({"status": "error", "message": "backend down", "data": []}))
    line = wait_fail_line(br, "err", mark, match="error_if|status", sub=sub)
    api.wait_requests("/err", 2, reply=r, finished=True, timeout=10)
    quiesce(api, ["/err"], alive=alive)
    check_eq(item_msgs(sub, "err"), [], "events while the body says status: error")
    report(t, "error_if: %s" % line[:160])
    r = api.set("/err", Reply.json({"status": "ok", "data": items(1, 4)}))
    wait_n_items(sub, 1, "err", alive)
    api.wait_requests("/err", 2, reply=r, finished=True)
    quiesce(api, ["/err"], alive=alive)
    exactly_items(sub, 1, "err", "after the API recovered")
    check_event_ops(sub, "err", [("3", "created")])
    # another value at the pointer is no error
    mark = len(br.log_lines())
    r = api.set("/err", Reply.json({"status": "errors", "data": items(1, 4)}))
    api.wait_requests("/err", 2, reply=r, finished=True)
    check_eq(fail_lines(br, "err", mark), [], "failure lines for status: errors")
    br.stop()


# ---------------------------------------------------------------------------
# Retry-After, backoff

@case
def retry_after_and_backoff(t):
    broker, sub, api = stack(t)
    api.set("/ra", Reply.json({"r": 0}))
    api.set("/bo", Reply.json({"b": 0}))
    eps = [{"name": "ra", "url": api.url("/ra")},
           {"name": "bo", "url": api.url("/bo"), "max_backoff": "1s"}]
    br = launch(t, broker, t.config(broker.port, eps))
    alive = (br,)
    api.wait_requests("/ra", 3, finished=True)
    api.wait_requests("/bo", 3, finished=True)

    # bo fails from now on; meanwhile ra gets a 429 and a 503 with Retry-After: 2
    fail = api.set("/bo", Reply.status(500, b'{"error":"down"}'))
    results = []
    for st in (429, 503):
        n = api.count("/ra")
        rl = Reply.raw(b'{"error":"slow down"}', status=st, headers={"Retry-After": "2"})
        api.queue("/ra", [rl])
        api.wait_requests("/ra", 1, reply=rl, finished=True, timeout=5)
        api.wait_requests("/ra", n + 2, finished=True, timeout=8)
        reqs = api.requests("/ra")
        i = next(k for k, r in enumerate(reqs) if r.reply is rl)
        gap, gap_end = reqs[i + 1].t - reqs[i].t, reqs[i + 1].t - reqs[i].t_end
        results.append((st, gap, gap_end))
        check(gap >= 2.0 - 0.05, "after a %d with Retry-After: 2 the next request came %.3fs "
              "later (%.3fs after the response ended)", st, gap, gap_end)
        check(gap < 3.0, "after a %d with Retry-After: 2 the next request came only after "
              "%.3fs", st, gap)
        api.wait_requests("/ra", i + 4, finished=True, timeout=5)
        reqs = api.requests("/ra")
        g = reqs[i + 2].t - reqs[i + 1].t
        check(g < 0.5, "after the recovery the interval (200ms) should be back, got %.3fs", g)
    check_eq(len(sub.events()), 0, "events")

    # backoff of bo: gaps double per consecutive failure, capped at max_backoff 1s
    wait_for(lambda: api.count("/bo", reply=fail, finished=True) >= 7, 12,
             "7 failed polls of bo", alive=alive)
    ts = [r.t for r in api.requests("/bo", reply=fail)]
    gaps = [b - a for a, b in zip(ts, ts[1:])][:6]
    report(t, "Retry-After gaps (status, after request, after response end): %s" % [
        (s, "%.3f" % a, "%.3f" % b) for s, a, b in results])
    report(t, "backoff gaps (interval 200ms, max_backoff 1s): %s" % ["%.3f" % g for g in gaps])
    check(gaps[0] < 0.7, "first gap after a failure %.3fs: expected a short one", gaps[0])
    for a, b in zip(gaps, gaps[1:]):
        if a < 0.9:
            check(1.6 <= b / a <= 2.6 or 0.9 <= b <= 1.25, "gap %.3f after %.3f: expected "
                  "double the delay (or the 1s cap)", b, a)
        else:
            check(0.9 <= b <= 1.25, "gap %.3f after %.3f: expected the 1s cap", b, a)
    check(all(g <= 1.25 for g in gaps), "a gap beyond max_backoff 1s: %s", gaps)
    check(all(0.9 <= g <= 1.25 for g in gaps[-2:]), "the gaps did not settle at the 1s cap: %s",
          ["%.3f" % g for g in gaps])

    # recovery: back to the interval
    ok = api.set("/bo", Reply.json({"b": 1}))
    api.wait_requests("/bo", 3, reply=ok, finished=True, timeout=5)
    okt = [r.t for r in api.requests("/bo", reply=ok)]
    check(all(b - a < 0.5 for a, b in zip(okt, okt[1:])), "interval after recovery: %s",
          [b - a for a, b in zip(okt, okt[1:])])
    sub.wait_events(1, alive=alive)
    check_message(sub.events()[0], "rest2mqtt/bo", "bo", {"b": 0}, {"b": 1})
    br.stop()


@case
def retry_after_garbage_date_and_overflow(t):
    """Retry-After that is not delay-seconds or an HTTP-date is ignored with a
    warning naming the endpoint (normal backoff applies); an HTTP-date is
    honoured; a delay too large for any integer is clamped to max_backoff."""
    broker, sub, api = stack(t)
    lock = threading.Lock()
    modes = []  # Retry-After values for the next requests (each a 503), then 200s

    def route(req):
        with lock:
            m = modes.pop(0) if modes else None
        if m is None:
            return Reply.json({"r": 0}, label="ok")
        v = formatdate(time.time() + 2, usegmt=True) if m == "date" else m
        return Reply.raw(b'{"error":"busy"}', status=503, headers={"Retry-After": v}, label=m)
    api.route("/ra", route)
    eps = [{"name": "ra", "url": api.url("/ra"), "max_backoff": "3s"}]
    br = launch(t, broker, t.config(broker.port, eps))
    alive = (br,)
    api.wait_requests("/ra", 3, finished=True)
    results = []
    for m, lo, hi in (("soon", 0.0, 1.0), ("date", 0.8, 3.0),
                      ("99999999999999999999999999", 2.5, 3.6)):
        mark_log = len(br.log_lines())
        with lock:
            modes.append(m)
        wait_for(lambda: any(r.reply is not None and r.reply.label == m and r.outcome != "open"
                             for r in api.requests("/ra")), 10, "the 503 (%s)" % m, alive=alive)
        reqs = api.requests("/ra")
        i = next(k for k, r in enumerate(reqs) if r.reply is not None and r.reply.label == m)
        api.wait_requests("/ra", i + 2, finished=True, timeout=10)
        gap = api.requests("/ra")[i + 1].t - reqs[i].t
        results.append((m[:12], "%.3f" % gap))
        check(lo <= gap <= hi, "after a 503 with Retry-After: %s the next request came %.3fs "
              "later; expected %.1f..%.1fs", m, gap, lo, hi)
        warned = [l for l in br.log_lines()[mark_log:] if "Retry-After" in l and "ra" in l]
        if m == "soon":
            check(any("warn" in l and "endpoint=ra" in l and "soon" in l for l in warned),
                  "no warning about the unusable Retry-After: %s", warned)
        else:
            check(not any("ignoring" in l for l in warned), "a warning about a usable "
                  "Retry-After (%s): %s", m, warned)
    report(t, "gaps after Retry-After (max_backoff 3s): %s" % results)
    check_eq(len(sub.events()), 0, "events")
    br.stop()


# ---------------------------------------------------------------------------
# TLS

def openssl(t, *args):
    r = subprocess.run(["openssl"] + list(args), cwd=t.tmp, capture_output=True, timeout=30)
    if r.returncode != 0:
        raise Failure("openssl %s failed: %s" % (" ".join(args[:2]), r.stderr.decode()[-500:]))


def make_pki(t):
    """A CA, a server certificate for IP 127.0.0.1 and a client certificate."""
    d = t.mkdir("pki")
    p = lambda n: os.path.join(d, n)  # noqa: E731
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl(t, "req", "-x509", *ec, "-keyout", p("ca.key"), "-out", p("ca.pem"), "-days", "2",
            "-subj", "/CN=rest2mqtt e2e test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    for name, cn, ext in (
            ("server", "127.0.0.1", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth"),
            ("client", "e2e-client", "extendedKeyUsage=clientAuth")):
        with open(p(name + ".ext"), "w") as f:
            f.write("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n" + ext + "\n")
        openssl(t, "req", *ec, "-keyout", p(name + ".key"), "-out", p(name + ".csr"),
                "-subj", "/CN=" + cn)
        openssl(t, "x509", "-req", "-in", p(name + ".csr"), "-CA", p("ca.pem"), "-CAkey",
                p("ca.key"), "-set_serial", "0x%x" % (int(time.time() * 1000) + len(name)),
                "-days", "2", "-out", p(name + ".pem"), "-extfile", p(name + ".ext"))
    return p


@case
def tls_self_signed(t):
    broker = t.broker()
    sub = t.subscriber(broker)
    pki = make_pki(t)
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(pki("server.pem"), pki("server.key"))
    api = make_api(t, tls=sctx)
    mctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)  # demands a client certificate
    mctx.load_cert_chain(pki("server.pem"), pki("server.key"))
    mctx.verify_mode = ssl.CERT_REQUIRED
    mctx.load_verify_locations(pki("ca.pem"))
    mapi = make_api(t, tls=mctx)
    docs = {}
    for a, p in ((api, "/noca"), (api, "/ca"), (api, "/insecure"), (mapi, "/mtls"),
                 (mapi, "/nocert")):
        docs[p] = {"p": p, "v": 0}
        a.route(p, lambda req, p=p: doc_reply(docs[p]))
    eps = [{"name": "noca", "url": api.url("/noca")},
           {"name": "ca", "url": api.url("/ca"), "tls": {"ca_file": pki("ca.pem")}},
           {"name": "insecure", "url": api.url("/insecure"), "tls": {"insecure": True}},
           {"name": "mtls", "url": mapi.url("/mtls"),
            "tls": {"ca_file": pki("ca.pem"), "cert_file": pki("client.pem"),
                    "key_file": pki("client.key")}},
           {"name": "nocert", "url": mapi.url("/nocert"), "tls": {"ca_file": pki("ca.pem")}}]
    check(eps[0]["url"].startswith("https://127.0.0.1:"), "not an https URL: %s", eps[0]["url"])
    br = launch(t, broker, t.config(broker.port, eps))
    alive = (br,)
    warn = [l for l in br.log_lines() if "insecure" in l and "endpoint=insecure" in l]
    report(t, "tls.insecure at startup: %s" % (warn[0][:200] if warn else "no warning"))
    api.wait_requests("/ca", 3, finished=True)
    api.wait_requests("/insecure", 3, finished=True)
    mapi.wait_requests("/mtls", 3, finished=True)
    line = wait_fail_line(br, "noca", match="certificate")
    report(t, "no ca_file: %s" % line[:220])
    line2 = wait_fail_line(br, "nocert")
    report(t, "no client certificate: %s" % line2[:220])
    t.settle(api, ["/ca", "/insecure"], alive=alive)
    assert_no_events(sub, "baseline")
    check_eq(api.count("/noca"), 0, "HTTP requests that got through without ca_file")
    check_eq(mapi.count("/nocert"), 0, "HTTP requests that got through without a client "
             "certificate")
    check(api.tls_errors, "the server saw no failed handshake (from the endpoint without "
          "ca_file)")

    for p in docs:
        docs[p] = {"p": p, "v": 1}
    wait_for(lambda: len(sub.events()) >= 3, 10, "3 events", alive=alive)
    t.settle(api, ["/ca", "/insecure"], alive=alive)
    mapi.wait_requests("/mtls", mapi.count("/mtls") + 2, finished=True)
    quiesce(mapi, ["/mtls"], alive=alive)
    evs = {m.topic: m for m in sub.events()}
    check_eq(sorted(evs), ["rest2mqtt/ca", "rest2mqtt/insecure", "rest2mqtt/mtls"],
             "topics of the events (none from the endpoints that cannot connect)")
    check_eq(len(sub.events()), 3, "events")
    for n in ("ca", "insecure", "mtls"):
        check_message(evs["rest2mqtt/" + n], "rest2mqtt/" + n, n, {"p": "/" + n, "v": 0},
                      {"p": "/" + n, "v": 1})
        check_eq(fail_lines(br, n), [], "failure lines of %s" % n)
    report(t, "server-side handshake failures: %s" % sorted({e[:80] for e in
                                                              api.tls_errors + mapi.tls_errors}))
    br.stop()


@case
def tls_client_certificate_stays_with_its_origin(t):
    """redirects: any sends no credentials of any kind off the origin: the
    TLS client certificate (cert_file/key_file) neither."""
    broker = t.broker()
    pki = make_pki(t)

    def ctx(mode):
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        c.load_cert_chain(pki("server.pem"), pki("server.key"))
        c.verify_mode = mode
        c.load_verify_locations(pki("ca.pem"))
        return c
    origin = make_api(t, tls=ctx(ssl.CERT_REQUIRED))
    foreign = make_api(t, tls=ctx(ssl.CERT_OPTIONAL))  # asks for one, takes none too
    foreign.route("/landing", lambda req: doc_reply({"v": 1}))
    origin.route("/m", lambda req: redirect(foreign.url("/landing")))
    eps = [{"name": "m", "url": origin.url("/m"), "redirects": "any",
            "tls": {"ca_file": pki("ca.pem"), "cert_file": pki("client.pem"),
                    "key_file": pki("client.key")}}]
    br = launch(t, broker, t.config(broker.port, eps))
    foreign.wait_requests("/landing", 2, finished=True)
    check(origin.count("/m") >= 2, "the origin (which demands the certificate) was not polled")
    sent = [p for p in foreign.tls_peers if p]
    check(not sent, "the foreign origin got the client certificate on %d of %d connections: %s",
          len(sent), len(foreign.tls_peers), sent[:1])
    check_eq(fail_lines(br, "m"), [], "failure lines")
    br.stop()


# ---------------------------------------------------------------------------
# Compression

@case
def gzip_response(t):
    broker, sub, api = stack(t)
    big = {"rows": [{"id": k, "text": "the same words again and again %d" % (k % 7)}
                    for k in range(300)]}
    doc = {"d": dict(big, v=0)}
    plain = []

    def route(req):
        data = json.dumps(doc["d"]).encode()
        if "gzip" not in req.headers.get("accept-encoding", ""):
            plain.append(req.target)
            return Reply.json(data)
        return Reply.raw(gzip.compress(data), headers={"Content-Encoding": "gzip",
                                                       "Vary": "Accept-Encoding"})
    api.route("/gz", route)
    bomb = gzip.compress(json.dumps({"pad": "x" * (4 << 20)}).encode())
    api.route("/bomb", lambda req: Reply.raw(bomb, headers={"Content-Encoding": "gzip"}))
    eps = [{"name": "gz", "url": api.url("/gz")},
           {"name": "bomb", "url": api.url("/bomb"), "max_body": "1MiB"}]
    br = launch(t, broker, t.config(broker.port, eps))
    alive = (br,)
    api.wait_requests("/gz", 3, finished=True)
    t.settle(api, ["/gz"], alive=alive)
    assert_no_events(sub, "baseline")
    for r in api.requests("/gz"):
        check("gzip" in r.headers.get("accept-encoding", ""),
              "Accept-Encoding of a request: %r", r.headers.get("accept-encoding"))
    check_eq(plain, [], "requests without gzip in Accept-Encoding")
    check_eq(fail_lines(br, "gz"), [], "failure lines of the gzip endpoint")
    report(t, "Accept-Encoding sent: %r; gzip body %d bytes for %d bytes of JSON" % (
        api.requests("/gz")[0].headers.get("accept-encoding"),
        len(gzip.compress(json.dumps(doc["d"]).encode())), len(json.dumps(doc["d"]))))

    before = doc["d"]
    after = json.loads(json.dumps(before))
    after["v"] = 1
    after["rows"][17]["text"] = "changed"
    doc["d"] = after
    sub.wait_events(1, alive=alive)
    t.settle(api, ["/gz"], alive=alive)
    check_eq(len(sub.events()), 1, "events after one change")
    check_message(sub.events()[0], "rest2mqtt/gz", "gz", before, after)

    # a 4 MiB document in a 4 KiB gzip body: max_body (1 MiB) bounds the decoded size
    line = wait_fail_line(br, "bomb", match="max_body|large|size")
    report(t, "gzip bomb (%d bytes -> 4 MiB): %s" % (len(bomb), line[:160]))
    check_eq([m.topic for m in sub.events() if "bomb" in m.topic], [], "events of the bomb")
    br.stop()


# ---------------------------------------------------------------------------
# Redirects: credentials stay with their origin

def redirect(location, status=302):
    return Reply.raw(b"", status=status, content_type=None, headers={"Location": location})


def credential_headers(req):
    """The credential and configured headers a request carried."""
    return sorted(k for k in req.headers if k in ("authorization", "x-api-key", "x-tenant",
                                                  "cookie"))


@case
def redirect_cross_origin_refused_by_default(t):
    broker, sub, api = stack(t)
    foreign = make_api(t)  # another port: another origin
    foreign.route("/landing", lambda req: doc_reply({"v": 1}))
    api.set("/doc", redirect(foreign.url("/landing")))
    # a redirect to the same host under another spelling is another origin too
    api.set("/doc2", redirect(foreign.url("/landing", host="localhost")))
    eps = [{"name": "r", "url": api.url("/doc"), "headers": {"X-Tenant": "acme"},
            "auth": {"type": "header", "name": "X-Api-Key", "value": "Hk-redirect-1"}},
           {"name": "r2", "url": api.url("/doc2"),
            "auth": {"type": "bearer", "token": "Tk-redirect-2"}}]
    br = launch(t, broker, t.config(broker.port, eps))
    line = wait_fail_line(br, "r", match="another origin", sub=sub)
    for want in ("http://127.0.0.1:%d" % api.port, "http://127.0.0.1:%d" % foreign.port,
                 "set redirects: any"):
        check(want in line, "the failure line lacks %r: %s", want, line)
    wait_fail_line(br, "r2", match="another origin", sub=sub)
    api.wait_requests("/doc", 3, finished=True)
    api.wait_requests("/doc2", 3, finished=True)
    check_eq(len(foreign.requests()), 0, "requests that reached the foreign origin")
    assert_no_events(sub, "a refused redirect")


@case
def redirect_any_drops_credentials(t):
    broker, sub, api = stack(t)
    foreign = make_api(t)
    doc = {"v": 0}
    for p in ("/h", "/b", "/q", "/o", "/basic", "/p"):
        foreign.route("/landing" + p, lambda req: doc_reply(doc))

    def away(req):  # the Location keeps the query, as many servers do
        q = req.target.split("?", 1)[1] if "?" in req.target else ""
        return redirect(foreign.url("/landing" + req.path + ("?" + q if q else "")),
                        status=307 if req.method == "POST" else 302)
    for p in ("/h", "/b", "/q", "/o", "/basic", "/p"):
        api.route(p, away)
    api.route("/token", lambda req: Reply.json({"access_token": "At-redirect-9",
                                                "expires_in": 3600}))
    d = {"redirects": "any", "headers": {"X-Tenant": "acme"}}
    eps = [{"name": "h", "url": api.url("/h"),
            "auth": {"type": "header", "name": "X-Api-Key", "value": "Hk-any-1"}},
           {"name": "b", "url": api.url("/b"), "auth": {"type": "bearer", "token": "Tk-any-2"}},
           {"name": "q", "url": api.url("/q?x=1"),
            "auth": {"type": "query", "name": "api_key", "value": "Qk-any-3"}},
           {"name": "o", "url": api.url("/o"),
            "auth": {"type": "oauth2", "token_url": api.url("/token"), "client_id": "cid",
                     "client_secret": "Cs-any-4"}},
           {"name": "basic", "url": api.url("/basic"),
            "auth": {"type": "basic", "username": "svc", "password": "Pw-any-5"}},
           {"name": "p", "url": api.url("/p"), "method": "POST", "body": '{"q":1}',
            "auth": {"type": "header", "name": "X-Api-Key", "value": "Hk-any-6"}}]
    br = launch(t, broker, t.config(broker.port, eps, defaults=d))
    paths = ["/landing" + p for p in ("/h", "/b", "/q", "/o", "/basic")]
    t.settle(foreign, paths, alive=(br,))
    # the origin got them with credentials; the foreign server never did
    check(api.requests("/h")[0].headers.get("x-api-key") == "Hk-any-1", "no key at the origin")
    for r in foreign.requests():
        check(not credential_headers(r), "the foreign origin got %s on %s %s",
              credential_headers(r), r.method, r.target)
        check("api_key" not in r.target and "Qk-any-3" not in r.target,
              "the foreign origin got the query key: %s", r.target)
    q = foreign.requests("/landing/q")[0]
    check("x=1" in q.target, "the rest of the query was lost: %s", q.target)
    # a 307 would repeat the POST body (configured, maybe secret) at the
    # foreign origin: not followed, the poll fails and says why
    line = br.wait_log("would repeat the POST with its body")
    check("endpoint=p " in line and "Hk-any-6" not in line and "{\"q\":1}" not in line,
          "the POST's 307 off the origin is refused in words: %s", line)
    check(not foreign.requests("/landing/p"), "the foreign origin got the POST body")
    check(not fail_lines(br, "h"), "polls failed: %s", fail_lines(br, "h"))
    doc["v"] = 1  # the bridge reads the foreign answers: a change is an event
    wait_for(lambda: len(sub.events()) >= 5, 15, "5 document events", alive=(br,))


@case
def redirect_none_fails_the_poll(t):
    broker, sub, api = stack(t)
    api.set("/doc", redirect("/elsewhere", status=301))
    api.set("/elsewhere", doc_reply({"v": 1}))
    eps = [{"name": "n", "url": api.url("/doc"), "redirects": "none"}]
    br = launch(t, broker, t.config(broker.port, eps))
    line = wait_fail_line(br, "n", match="redirects: none", sub=sub)
    check("HTTP status 301" in line, "the line does not name the status: %s", line)
    api.wait_requests("/doc", 3, finished=True)
    check_eq(api.count("/elsewhere"), 0, "requests that followed the redirect")
    assert_no_events(sub, "redirects: none")


@case
def redirect_same_origin_keeps_credentials(t):
    broker, sub, api = stack(t)
    key = "Hk-same-7"
    doc = {"v": 0}

    def guarded(req):
        if req.headers.get("x-api-key") != key or req.headers.get("x-tenant") != "acme":
            return unauthorized()
        return doc_reply(doc)
    api.route("/new", guarded)
    api.set("/old", redirect("/new", status=301))  # relative: same origin
    # the same origin spelled with the default port and another case
    api.set("/abs", redirect("HTTP://127.0.0.1:%d/new" % api.port, status=308))
    api.route("/post-target", lambda req: doc_reply({"m": req.method, "b": req.body.decode(),
                                                     "v": doc["v"]}))
    api.set("/p303", redirect("/post-target", status=303))
    api.set("/p307", redirect("/post-target", status=307))
    common = {"headers": {"X-Tenant": "acme"},
              "auth": {"type": "header", "name": "X-Api-Key", "value": key}}
    eps = [dict(common, name="old", url=api.url("/old")),
           dict(common, name="abs", url=api.url("/abs"), redirects="same-origin"),
           dict(common, name="p303", url=api.url("/p303"), method="POST", body='{"q":3}'),
           dict(common, name="p307", url=api.url("/p307"), method="POST", body='{"q":7}')]
    br = launch(t, broker, t.config(broker.port, eps))
    t.settle(api, ["/new", "/post-target"], alive=(br,))
    for name in ("old", "abs", "p303", "p307"):
        check(not fail_lines(br, name), "endpoint %s failed: %s", name, fail_lines(br, name))
    methods = {(r.method, r.body) for r in api.requests("/post-target")}
    check_eq(methods, {("GET", b""), ("POST", b'{"q":7}')},
             "303 turns the POST into a GET, 307 keeps it")
    doc["v"] = 1
    wait_for(lambda: len(sub.events()) >= 4, 15, "4 document events", alive=(br,))


@case
def mqtt_password_never_logged(t):
    broker = t.broker()
    api = make_api(t)
    api.set("/doc", doc_reply({"v": 1}))
    pw = "Mq-pw-never-8"
    env = "R2M_E2E_MQTT_PW"
    os.environ[env] = pw
    t.defer(lambda: os.environ.pop(env, None))
    eps = [{"name": "d", "url": api.url("/doc")}]
    cfg = t.config(broker.port, eps, mqtt={"username": "bridge", "password": "${env:%s}" % env})
    # connect, a broker restart (lost, reconnect), a graceful stop
    br = launch(t, broker, cfg, args=("run", "-l", "debug"))
    mark = len(br.log_lines())
    broker.restart()
    broker.wait_client("e2e", timeout=30, alive=(br,))
    br.wait_log("mqtt connected", after=mark, timeout=15)
    br.stop()
    logs = {"bridge (password in mqtt.password)": "\n".join(br.log_lines())}
    # the same password in the URL's user part: every line that names the broker
    # (starting, connect failures, stop) must mask it
    cfg2 = json.loads(json.dumps(cfg))
    cfg2["mqtt"]["url"] = "mqtt://bridge:${env:%s}@127.0.0.1:%d" % (env, free_port())
    cfg2["state"]["path"] = t.path("second.db")
    br2 = t.bridge(cfg2, args=("run", "-l", "debug"), name="bridge2")
    br2.wait_log("broker=mqtt://bridge:***@127.0.0.1", timeout=15)
    br2.stop()
    logs["bridge (password in mqtt.url)"] = "\n".join(br2.log_lines())
    r = t.run_cli(["check", "-c", t.write_config(cfg2, "check.yaml")])
    logs["check"] = r.stdout.decode() + r.stderr.decode()
    hits = []
    for where, text in logs.items():
        hits += ["%s: %s" % (where, h) for h in find_secrets(text, {"mqtt password": pw})]
    check(not hits, "the MQTT password leaked:\n%s", "\n".join(hits))
    check(any("broker=" in l for l in br.log_lines()), "no line names the broker")


@case
def oauth2_token_with_control_characters_refused(t):
    broker, sub, api = stack(t)
    bad = {"v": "At-inj-3\rX-Injected: 1"}  # CR alone: LF was refused before
    api.route("/token", lambda req: Reply.json({"access_token": bad["v"], "expires_in": 3600}))
    api.route("/o", lambda req: doc_reply({"v": 1}))
    eps = [{"name": "o", "url": api.url("/o"),
            "auth": {"type": "oauth2", "token_url": api.url("/token"), "client_id": "cid",
                     "client_secret": "Cs-inj-4"}}]
    br = launch(t, broker, t.config(broker.port, eps))
    line = wait_fail_line(br, "o", match="access_token contains CR, LF, NUL", sub=sub)
    check("At-inj-3" not in "\n".join(br.log_lines()), "the token is in the log: %s", line)
    api.wait_requests("/token", 2, finished=True)
    check_eq(api.count("/o"), 0, "requests that carried the bad token")
    bad["v"] = "At-nul-5\u0000x"  # a NUL would cut the header
    mark = len(br.log_lines())
    api.wait_requests("/token", api.count("/token") + 2, finished=True)
    check_eq(api.count("/o"), 0, "requests that carried a token with NUL")
    check(not any("At-nul-5" in l for l in br.log_lines()[mark:]), "the token is in the log")
