#!/usr/bin/env python3
"""Checks the e2e harness itself, without rest2mqtt: the fake API's scripted
behaviours, mosquitto start/stop/restart, the subscriber, the RFC 6902
applier, exact JSON comparison, the YAML writer, and that a sanitizer or
valgrind report in a (fake) bridge's stderr fails the case. Uses curl when
present.

    python3 tests/e2e/selftest.py      # prints "selftest ok" or a traceback
"""

import decimal
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fakeapi import FakeAPI, Reply  # noqa: E402
import run  # noqa: E402
from harness import (MOSQUITTO_PUB, Context, Failure, loads, to_yaml,  # noqa: E402
                     wait_for)
from run import PatchError, apply_patch, json_equal  # noqa: E402

CURL = shutil.which("curl")


def curl(api, path, *extra):
    t = time.monotonic()
    p = subprocess.run([CURL, "-sS", "-o", "/dev/null", "-w", "%{http_code}"] + list(extra)
                       + [api.url(path)], capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout, time.monotonic() - t


def test_fakeapi():
    api = FakeAPI().start()
    try:
        good = api.set("/doc", Reply.json({"a": 1}))
        if CURL:
            assert curl(api, "/doc")[:2] == (0, "200")
            api.queue("/doc", [Reply.status(500, "{}"), Reply.raw("<html/>", content_type="x")])
            assert curl(api, "/doc")[1] == "500"
            assert curl(api, "/doc")[1] == "200"
            assert curl(api, "/doc")[1] == "200"
            assert api.count("/doc", reply=good) == 2
            assert curl(api, "/nope")[1] == "404"

            api.set("/h", Reply.hang())
            rc, code, took = curl(api, "/h", "-m", "0.5")
            assert rc == 28 and 0.4 < took < 2, (rc, took)
            api.wait(lambda: api._count_locked("/h", None, True) == 1, 2, "hang noticed")
            assert api.requests("/h")[0].outcome == "client_closed"

            api.set("/s", Reply.slow(0.3, Reply.json({})))
            rc, code, took = curl(api, "/s")
            assert code == "200" and took >= 0.3

            api.set("/e", Reply.endless(max_bytes=3_000_000))
            assert curl(api, "/e")[1] == "200"
            api.wait_requests("/e", 1, finished=True)
            r = api.requests("/e")[0]
            assert r.outcome == "cap" and r.bytes_sent <= 3_000_000, r
            out = subprocess.run([CURL, "-sS", api.url("/e")], capture_output=True).stdout
            assert loads(out)["pad"].startswith("xxx")  # a complete JSON document

            api.set("/b", Reply.big(2 << 20))
            out = subprocess.run([CURL, "-sS", api.url("/b")], capture_output=True).stdout
            assert len(out) == 2 << 20 and loads(out)["pad"][:3] == "xxx"
            assert curl(api, "/b", "--max-filesize", "1000000")[0] == 63

            api.set("/c", Reply.close())
            assert curl(api, "/c")[0] == 52

            api.refuse()
            assert curl(api, "/doc")[0] == 7
            api.resume()
            assert curl(api, "/doc")[1] == "200"
            rq = api.requests("/doc")[-1]
            assert rq.method == "GET" and rq.headers.get("host")
            try:
                api.wait_requests("/doc", 999, timeout=0.2)
                raise AssertionError("wait_requests did not time out")
            except TimeoutError:
                pass

            # stop() releases hung handlers and does not hang itself
            api.set("/h2", Reply.hang())
            th = threading.Thread(target=curl, args=(api, "/h2"), daemon=True)
            th.start()
            api.wait_requests("/h2", 1)
    finally:
        t = time.monotonic()
        api.stop()
        assert time.monotonic() - t < 2
    if CURL:
        th.join(5)
        assert not th.is_alive()
        # the handler records the outcome after it dropped the connection:
        # curl can finish first
        wait_for(lambda: api.requests("/h2")[0].outcome == "released", 5,
                 "outcome 'released' (have %r)" % api.requests("/h2")[0].outcome)


def test_broker_and_subscriber():
    ctx = Context("/bin/false")
    try:
        broker = ctx.broker(persistence=True)
        sub = ctx.subscriber(broker, persistent=True)

        def pub(topic, msg, *extra):
            subprocess.run([MOSQUITTO_PUB, "-h", "127.0.0.1", "-p", str(broker.port), "-t",
                            topic, "-m", msg, "-q", "1"] + list(extra), check=True, timeout=5)
        pub("a/b", '{"x":1}', "-V", "5", "-D", "publish", "content-type",
            "application/cloudevents+json")
        pub("a/c", "two\nlines")
        evs = sub.wait_events(2, timeout=5)
        assert [(m.topic, m.qos, m.content_type) for m in evs] == [
            ("a/b", 1, "application/cloudevents+json"), ("a/c", 1, "")], evs
        assert evs[0].json() == {"x": 1} and evs[1].payload == b"two\nlines"

        port = broker.port
        broker.stop()
        broker.start()
        assert broker.port == port
        pub("a/d", "queued while the subscriber reconnects")
        evs = sub.wait_events(3, timeout=15)
        assert evs[2].topic == "a/d"
        sub.wait_ready()
        assert len(sub.events()) == 3
        try:
            wait_for(lambda: False, 0.1, "nothing")
            raise AssertionError("wait_for did not fail")
        except Failure:
            pass
        subprocess.run([MOSQUITTO_PUB, "-h", "127.0.0.1", "-p", str(port), "-V", "311",
                        "-i", "e2e", "-t", "x", "-m", "1"], check=True, timeout=5)
        assert broker.wait_client("e2e", timeout=5) == 2
        p = ctx.spawn("sleeper", ["sleep", "60"])
        p.signal(signal.SIGTERM)
        assert p.wait(5) == -signal.SIGTERM
    finally:
        ctx.close(failed=False)
    assert not os.path.exists(ctx.tmp)


def test_patch_and_json():
    doc = {"a": 1, "b": [1, 2, 3], "c": {"d": "e"}}
    assert apply_patch(doc, []) == doc
    assert apply_patch(doc, [{"op": "add", "path": "/b/-", "value": 4},
                             {"op": "remove", "path": "/a"},
                             {"op": "replace", "path": "/c/d", "value": None},
                             {"op": "move", "from": "/b/0", "path": "/first"},
                             {"op": "copy", "from": "/c", "path": "/c2"},
                             {"op": "test", "path": "/b", "value": [2, 3, 4]},
                             {"op": "add", "path": "/~1x~0y", "value": True}]) == {
        "b": [2, 3, 4], "c": {"d": None}, "first": 1, "c2": {"d": None}, "/x~y": True}
    assert apply_patch(None, [{"op": "add", "path": "", "value": {"z": 1}}]) == {"z": 1}
    assert apply_patch(None, [{"op": "replace", "path": "", "value": [1]}]) == [1]
    assert doc == {"a": 1, "b": [1, 2, 3], "c": {"d": "e"}}  # input untouched
    for bad in ([{"op": "remove", "path": "/zz"}], [{"op": "replace", "path": "/zz", "value": 1}],
                [{"op": "test", "path": "/a", "value": 2}], [{"op": "add", "path": "/b/9",
                                                             "value": 1}]):
        try:
            apply_patch(doc, bad)
            raise AssertionError("accepted %r" % bad)
        except PatchError:
            pass
    assert json_equal(loads("[1.0, 1e0, -0, 10e-1]"), [1, 1, 0, 1])
    assert not json_equal(loads("true"), 1)
    assert not json_equal(loads("12345678901234567891"), 12345678901234567892)
    assert json_equal(loads("1.2345678901234567891E19"), 12345678901234567891)
    assert not json_equal({"a": None}, {})
    assert json_equal(loads('{"x":1.5}'), {"x": decimal.Decimal("1.5")})


def test_yaml():
    y = to_yaml({"mqtt": {"url": "mqtt://127.0.0.1:1", "version": "3.1.1", "qos": 1},
                 "defaults": {"interval": "200ms", "jitter": "0%"},
                 "endpoints": [{"name": "a", "ignore": ["/x", "/meta/*"],
                                "topic": "{prefix}/x"}, {"name": "b", "url": "file:///t/d.json"}]})
    assert y == """mqtt:
  url: mqtt://127.0.0.1:1
  version: "3.1.1"
  qos: 1
defaults:
  interval: 200ms
  jitter: 0%
endpoints:
  - name: a
    ignore:
      - /x
      - "/meta/*"
    topic: "{prefix}/x"
  - name: b
    url: file:///t/d.json""", y


def fake_bridge(ctx, name, body):
    """An executable shell script standing in for rest2mqtt."""
    return ctx.write(name, "#!/bin/sh\n" + body)


def test_sanitizer_reports():
    """A planted sanitizer/valgrind line in a bridge's stderr fails the case:
    printed while running, printed at exit after the harness's own SIGTERM
    (as LeakSanitizer does), or printed by a command run to completion."""
    ctx = Context("/bin/false")
    planted = {
        "asan": 'echo "==7==ERROR: AddressSanitizer: heap-use-after-free on address 0x1" >&2',
        "ubsan": 'echo "src/x.c:1:2: runtime error: signed integer overflow" >&2',
        "valgrind": 'echo "==7== ERROR SUMMARY: 2 errors from 2 contexts (suppressed: 0)" >&2',
        "clean": 'echo "==7== ERROR SUMMARY: 0 errors from 0 contexts (suppressed: 0)" >&2',
    }
    bins = {k: fake_bridge(ctx, k + ".sh", line + "\nexec sleep 60\n")
            for k, line in planted.items()}
    bins["lsan"] = fake_bridge(ctx, "lsan.sh", "trap 'echo \"==7==ERROR: LeakSanitizer: "
                               "detected memory leaks\" >&2; exit 23' TERM\n"
                               "echo ready >&2\nwhile :; do sleep 0.05; done\n")
    bins["cli"] = fake_bridge(ctx, "cli.sh", planted["ubsan"] + "\nexit 0\n")
    for b in bins.values():
        os.chmod(b, 0o755)
    try:
        def one_bridge(t):
            br = t.bridge({"endpoints": []})
            wait_for(br.log_lines, 5, "the fake bridge's first stderr line", alive=(br,))

        def cli(t):
            r = t.run_cli(["check"])
            assert r.returncode == 0
        run.CASES["_selftest_bridge"] = one_bridge
        run.CASES["_selftest_cli"] = cli
        for k in ("asan", "ubsan", "valgrind", "lsan", "clean"):
            ok, reason, diag = run.run_case("_selftest_bridge", bins[k])
            if k == "clean":
                assert ok, (k, reason, diag)
            else:
                assert not ok and "sanitizer or valgrind report" in reason, (k, reason)
                assert any("Sanitizer" in d or "runtime error" in d or "ERROR SUMMARY" in d
                           for d in diag), (k, diag)
        ok, reason, diag = run.run_case("_selftest_cli", bins["cli"])
        assert not ok and "runtime error" in "\n".join(diag), (reason, diag)
    finally:
        run.CASES.pop("_selftest_bridge", None)
        run.CASES.pop("_selftest_cli", None)
        ctx.close(failed=False)


def test_metrics_ports():
    """config() turns /metrics on (quiesce() reads the outbox there), one
    port per case; two bridges running at once get different ports."""
    ctx = Context("/bin/false")
    try:
        ctx.bin = fake_bridge(ctx, "sleeper.sh", "exec sleep 60\n")
        os.chmod(ctx.bin, 0o755)
        cfg = ctx.config(1883, [])
        assert ctx.config(1883, [])["metrics"] == cfg["metrics"]
        a = ctx.bridge(cfg, name="a")
        b = ctx.bridge(cfg, name="b")
        assert a.metrics == cfg["metrics"]["listen"] and b.metrics != a.metrics, (a.metrics,
                                                                                 b.metrics)
        a.proc.kill()
        c = ctx.bridge(cfg, name="c")
        assert c.metrics == a.metrics
    finally:
        ctx.close(failed=False)


def main():
    for fn in (test_patch_and_json, test_yaml, test_sanitizer_reports, test_metrics_ports,
               test_fakeapi, test_broker_and_subscriber):
        t = time.monotonic()
        fn()
        print("  %s ok (%.1fs)" % (fn.__name__, time.monotonic() - t))
    print("selftest ok")


if __name__ == "__main__":
    main()
