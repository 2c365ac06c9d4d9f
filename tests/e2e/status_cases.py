"""End-to-end cases for the status page: GET / (HTML) and GET /status.json
on the metrics listener, loaded in a real browser. Imported by run.py (every
tests/e2e/*_cases.py is), which owns the case registry and the runner.

Contract under test (issue 13, part 3):
  GET /             200 text/html; one self-contained page (no script, no
                    external asset) that reloads itself; every endpoint with
                    its kind, masked URL, interval, last poll and result,
                    last error and since when, failures in a row, last
                    change, events sent, next poll; broker, outbox, dead
                    letters, uptime, version. Failing endpoints first. Every
                    string is escaped: an error holding markup shows as text.
  GET /status.json  200 application/json; the same data, same order.

The browser is Debian's `chromium`, headless (`--dump-dom` prints the DOM
after parsing). Without it the case fails and says what to install.
docs/screenshot-status.sh uses scene() below to take the README picture.
"""

import html.parser
import os
import shutil
import subprocess
import time

from fakeapi import Reply
from harness import Failure, check, check_eq, short, wait_for
from ops_cases import get_json, http_get, launch
from run import case, doc_endpoint

# An API value that is also markup: it reaches the endpoint's error text
# through the "duplicate key" message.
NASTY = '<b>"x"&'
SECRET = "s3cret-api-key"


def chromium():
    """Path of the browser, or a Failure that says how to get one."""
    for name in ("chromium", "chromium-browser"):
        p = shutil.which(name)
        if p:
            return p
    raise Failure("chromium not found: the status page is tested in a real browser; "
                  "apt-get install -y chromium (.ci/install-deps installs it)")


def browser(t, url, *args, timeout=60.0):
    """Runs headless Chromium on url with args; returns its stdout (text).
    As root it needs --no-sandbox; its own profile dir keeps parallel runs
    apart."""
    argv = [chromium(), "--headless", "--no-sandbox", "--disable-gpu",
            "--no-first-run", "--user-data-dir=" + t.mkdir("chromium-profile")] + list(args)
    try:
        r = subprocess.run(argv + [url], stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Failure("chromium did not finish within %.0fs: %s" % (timeout, " ".join(argv)))
    out = r.stdout.decode("utf-8", "replace")
    check(r.returncode == 0, "chromium exited with %d; stderr tail:\n%s", r.returncode,
          "\n".join(r.stderr.decode("utf-8", "replace").splitlines()[-15:]))
    return out


def scene(t, broker, api, extra_healthy=()):
    """A bridge with one healthy document endpoint (its URL carries a
    secret query value), one collection endpoint that fails because two
    items share the key NASTY, and optionally more healthy ones. Returns
    (bridge, metrics port) once both endpoints have been polled."""
    api.set("/healthy", Reply.json({"temperature": 21}))
    api.set("/broken", Reply.json({"data": [{"id": NASTY, "n": 1}, {"id": NASTY, "n": 2}]}))
    eps = [doc_endpoint(api, "healthy", path="/healthy?api_key=" + SECRET),
           dict(doc_endpoint(api, "broken"), items="/data", key="/id")]
    for name, doc in extra_healthy:
        api.set("/" + name, Reply.json(doc))
        eps.append(doc_endpoint(api, name))
    cfg = t.config(broker.port, eps)
    port = int(cfg["metrics"]["listen"].rsplit(":", 1)[1])
    br = launch(t, broker, cfg)

    def ready():
        status, _, doc = get_json(port, "/status.json")
        by = {e["name"]: e for e in doc.get("endpoints", [])}
        ok = (status == 200 and by.get("broken", {}).get("consecutive_failures", 0) >= 1
              and by.get("healthy", {}).get("last_poll"))
        return doc if ok else None
    wait_for(ready, 10, "/status.json to show 'broken' failing and 'healthy' polled",
             interval=0.1, alive=(br,))
    # a change, so that 'healthy' has sent an event and has a last change
    api.set("/healthy", Reply.json({"temperature": 22}))

    def changed():
        doc = ready()
        by = {e["name"]: e for e in (doc or {}).get("endpoints", [])}
        return doc if by.get("healthy", {}).get("last_change") else None
    doc = wait_for(changed, 10, "/status.json to show a last change of 'healthy'",
                   interval=0.1, alive=(br,))
    return br, port, doc


class Dom(html.parser.HTMLParser):
    """The parts of the status page the case reads: each endpoint row's
    cells (text and <time datetime>), and every element's tag name."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags = []
        self.rows = []  # (endpoint, row class, {cell class: {"text", "datetime"}})
        self._row = None
        self._cell = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "tr" and "data-endpoint" in a:
            self._row = (a["data-endpoint"], a.get("class", ""), {})
            self.rows.append(self._row)
        elif tag == "td" and self._row is not None:
            self._cell = {"text": "", "datetime": None}
            self._row[2][(a.get("class") or "").split()[0]] = self._cell
        elif tag == "time" and self._cell is not None:
            self._cell["datetime"] = a.get("datetime")

    def handle_endtag(self, tag):
        if tag == "td":
            self._cell = None
        elif tag == "tr":
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data


def parse_rfc3339(s):
    check(isinstance(s, str) and s.endswith("Z"), "not an RFC 3339 UTC time: %s", short(s))
    return time.mktime(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone


@case
def status_page_in_a_browser(t):
    broker = t.broker()
    api = t.api()
    br, port, _ = scene(t, broker, api)

    status, hdrs, body = http_get(port, "/")
    check_eq(status, 200, "status of GET /")
    check(hdrs.get("content-type", "").startswith("text/html"), "Content-Type of GET /: %r",
          hdrs.get("content-type"))
    page = body.decode("utf-8")
    check("<script" not in page and "<link" not in page and "src=" not in page,
          "the status page must be self-contained (no script, link or src): %s", short(page))
    check('http-equiv="refresh"' in page, "the status page must refresh itself: %s",
          short(page))

    t0 = time.time()
    dom_text = browser(t, "http://127.0.0.1:%d/" % port, "--dump-dom")
    dom = Dom()
    dom.feed(dom_text)
    check("b" not in dom.tags, "the endpoint error became markup: a <b> element is in the "
          "rendered DOM:\n%s", short(dom_text, 3000))
    rows = {name: (cls, cells) for name, cls, cells in dom.rows}
    check(set(rows) == {"healthy", "broken"}, "endpoint rows in the DOM: %s", sorted(rows))
    check_eq([name for name, _, _ in dom.rows], ["broken", "healthy"],
             "row order (failing endpoints first)")

    cls, cells = rows["broken"]
    check_eq(cls, "failing", "class of the failing endpoint's row")
    err = cells.get("error", {}).get("text", "")
    check(NASTY in err, "the failing endpoint's error must show %r as text, got %r", NASTY, err)
    check("duplicate key" in err, "the failing endpoint's error: %r", err)
    check(cells.get("error-since", {}).get("datetime"), "'failing since' of 'broken': %s",
          short(cells.get("error-since")))
    check(int(cells["failures"]["text"]) >= 1, "failures in a row of 'broken': %r",
          cells["failures"]["text"])

    cls, cells = rows["healthy"]
    check_eq(cls, "ok", "class of the healthy endpoint's row")
    check_eq(cells["result"]["text"].strip(), "ok", "last result of 'healthy'")
    polled = cells["last-poll"]["datetime"]
    when = parse_rfc3339(polled)
    check(t0 - 30 <= when <= time.time() + 1, "last poll of 'healthy' (%s) is not within "
          "the last 30 s of the page load", polled)
    check("ago" in cells["last-poll"]["text"], "last poll shows how long ago: %r",
          cells["last-poll"]["text"])
    check(cells["kind"]["text"] == "document" and cells["interval"]["text"] == "200ms",
          "kind and interval of 'healthy': %r, %r", cells["kind"]["text"],
          cells["interval"]["text"])
    url = cells["url"]["text"]
    check("api_key=*" in url and SECRET not in dom_text, "the URL must be masked, got %r", url)
    check(int(cells["events"]["text"]) >= 1, "events sent by 'healthy' after a change: %r",
          cells["events"]["text"])
    check(cells["last-change"]["datetime"], "last change of 'healthy': %s",
          short(cells["last-change"]))

    # the same data as JSON, the same order, the error text exact
    status, hdrs, doc = get_json(port, "/status.json")
    check_eq(status, 200, "status of GET /status.json")
    check(hdrs.get("content-type", "").startswith("application/json"),
          "Content-Type of /status.json: %r", hdrs.get("content-type"))
    check_eq([e["name"] for e in doc["endpoints"]], ["broken", "healthy"],
             "/status.json endpoint order")
    broken = doc["endpoints"][0]
    check(NASTY in (broken.get("last_error") or ""), "/status.json last_error: %s",
          short(broken))
    check_eq((broken["state"], doc["endpoints"][1]["state"]), ("failing", "ok"), "states")
    check_eq(doc["broker"], {"connected": True}, "/status.json broker")
    check_eq(doc.get("version"), dom_version(dom_text), "version on the page and in JSON")
    br.stop()


def dom_version(dom_text):
    start = dom_text.find('<dd id="version">')
    check(start >= 0, "the page shows no version")
    return dom_text[start + len('<dd id="version">'):dom_text.find("</dd>", start)]


def take_screenshot(bin_path, out_png):
    """docs/screenshot-status.sh: the scene with a few more endpoints,
    photographed at 1200x700."""
    from harness import Context
    t = Context(bin_path)
    try:
        broker = t.broker()
        api = t.api()
        extra = [("weather", {"t": 4.5}), ("orders", {"open": 12}), ("stock", {"sku": 3})]
        scene(t, broker, api, extra_healthy=extra)
        time.sleep(1.5)  # a picture, not a test: let "ago" and counters look alive
        port = int(t.bridges[0].metrics.rsplit(":", 1)[1])
        out_png = os.path.abspath(out_png)
        browser(t, "http://127.0.0.1:%d/" % port, "--screenshot=" + out_png,
                "--window-size=1200,700", "--hide-scrollbars")
        check(os.path.getsize(out_png) > 1000, "no screenshot written to %s", out_png)
    finally:
        errors = t.close(failed=False)
        if errors:
            print("\n".join(errors))
    return out_png


if __name__ == "__main__":
    import sys
    if len(sys.argv) != 4 or sys.argv[1] != "--screenshot":
        sys.exit("usage: status_cases.py --screenshot PNG BIN")
    print(take_screenshot(sys.argv[3], sys.argv[2]))
