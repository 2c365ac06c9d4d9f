"""A scripted fake legacy REST API for the rest2mqtt end-to-end tests.

The server runs in-process (ThreadingHTTPServer on 127.0.0.1, port 0, one
thread per connection, HTTP/1.1 keep-alive). A test scripts it per path:

    api = FakeAPI().start()
    good = api.set("/doc", Reply.json({"id": 1}))   # current reply for /doc
    api.set("/doc", Reply.status(500, b'{"error":1}'))
    api.queue("/doc", [Reply.json(a), Reply.json(b)])  # served first, in order
    api.set("/slow", Reply.hang())                 # accept, never answer
    api.set("/x", Reply.slow(3.0, Reply.json(d)))  # answer after 3 s
    api.set("/x", Reply.endless())                 # 200, chunked, no end
    api.set("/x", Reply.big(2 << 20))              # Content-Length: 2 MiB
    api.set("/x", Reply.close())                   # drop the connection
    api.refuse(); api.resume()                     # connection refused, then back

Every request is recorded (method, path, headers, body, the Reply that served
it and how the response ended), so a test can assert on requests and wait
until a path has been requested -- or served a given reply -- N times.

stop() never hangs: hung and slow handlers wait on an event that stop() sets,
and every open connection is shut down.
"""

import http.server
import json
import os
import select
import socket
import threading
import time
from urllib.parse import urlsplit

# Upper bounds so that every loop here ends by itself.
MAX_HANG_S = 300.0
ENDLESS_MAX_BYTES = 200 * 1024 * 1024
CHUNK = 64 * 1024
# every wait's deadline stretches by this (harness.py: R2M_E2E_SCALE)
SCALE = float(os.environ.get("R2M_E2E_SCALE") or 1)


class Reply:
    """One scripted response. Build with the class methods."""

    _serial = 0
    _serial_lock = threading.Lock()

    def __init__(self, kind, status=200, headers=None, body=b"", seconds=0.0,
                 size=0, then=None, label=None):
        self.kind = kind  # static | hang | slow | endless | big | close
        self.status = status
        self.headers = dict(headers or {})
        self.body = body
        self.seconds = seconds
        self.size = size
        self.then = then
        with Reply._serial_lock:
            Reply._serial += 1
            self.serial = Reply._serial
        self.label = label or "%s#%d" % (kind, self.serial)

    def __repr__(self):
        return "Reply(%s)" % self.label

    @classmethod
    def raw(cls, body, status=200, content_type="application/json", headers=None, label=None):
        if isinstance(body, str):
            body = body.encode("utf-8")
        h = {"Content-Type": content_type} if content_type else {}
        h.update(headers or {})
        return cls("static", status=status, headers=h, body=body, label=label)

    @classmethod
    def json(cls, obj, status=200, headers=None, label=None):
        """obj may be bytes/str (sent verbatim) or a Python value (json.dumps)."""
        if not isinstance(obj, (bytes, str)):
            obj = json.dumps(obj, separators=(",", ":"))
        return cls.raw(obj, status=status, headers=headers, label=label)

    @classmethod
    def status(cls, code, body=b"", content_type="application/json", label=None):
        return cls.raw(body, status=code, content_type=content_type, label=label)

    @classmethod
    def hang(cls, label=None):
        return cls("hang", label=label)

    @classmethod
    def slow(cls, seconds, then, label=None):
        return cls("slow", seconds=seconds, then=then, label=label)

    @classmethod
    def endless(cls, max_bytes=ENDLESS_MAX_BYTES, label=None):
        """200, chunked, no Content-Length. The body is the start of a valid
        JSON document ({"pad":"xxxx...) and is completed ("}) only when
        max_bytes is reached, so a client without a size limit would end up
        with a valid -- and different -- document."""
        return cls("endless", size=max_bytes, label=label)

    @classmethod
    def big(cls, size, label=None):
        """200 with Content-Length: size; the body is a valid JSON document
        of exactly size bytes ({"pad":"xxx...x"})."""
        assert size >= 10
        return cls("big", size=size, label=label)

    @classmethod
    def close(cls, label=None):
        return cls("close", label=label)


class Request:
    """What the fake API saw, and how it answered."""

    def __init__(self, method, target, headers, body, reply):
        self.method = method
        self.target = target  # path?query as sent
        self.path = urlsplit(target).path
        self.headers = headers  # dict, lower-case names
        self.body = body
        self.reply = reply  # Reply or None (no route: 404)
        self.t = time.monotonic()  # arrival
        self.t_end = None  # when the response ended (monotonic)
        self.bytes_sent = 0  # body bytes written
        # open | complete | client_closed | released | cap
        self.outcome = "open"

    def __repr__(self):
        return "Request(%s %s -> %s, %s, %d bytes)" % (
            self.method, self.target, self.reply, self.outcome, self.bytes_sent)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # A client dropping a keep-alive connection is normal here.
        import sys
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class FakeAPI:
    def __init__(self):
        self._lock = threading.Condition()
        self._routes = {}  # path -> Reply
        self._queues = {}  # path -> [Reply]
        self._requests = []
        self._conns = set()
        self._active = {}  # path -> number of requests being answered
        self._stopping = threading.Event()
        self._server = None
        self._thread = None
        self.port = None

    # ---- lifecycle -----------------------------------------------------

    def start(self):
        self._listen(0)
        return self

    def _listen(self, port):
        api = self

        class Handler(_Handler):
            fake = api

        self._server = _Server(("127.0.0.1", port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="fakeapi-%d" % self.port, daemon=True)
        self._thread.start()

    def _close_listener(self):
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
        self._server = None

    def _drop_connections(self):
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def refuse(self):
        """Close the listening socket and every open connection: from now on
        connecting to the port is refused, until resume()."""
        self._close_listener()
        self._drop_connections()

    def resume(self, timeout=5.0):
        """Listen again on the same port."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._listen(self.port)
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self):
        self._stopping.set()
        self._close_listener()
        self._drop_connections()
        with self._lock:
            self._lock.notify_all()

    @property
    def stopping(self):
        return self._stopping

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    # ---- scripting -----------------------------------------------------

    def set(self, path, reply):
        """Make reply the current answer for path (after any queued ones)."""
        with self._lock:
            self._routes[path] = reply
        return reply

    def queue(self, path, replies):
        """Serve these replies first, one per request, in order."""
        with self._lock:
            self._queues.setdefault(path, []).extend(replies)
        return replies

    def _next_reply(self, path):
        with self._lock:
            q = self._queues.get(path)
            if q:
                return q.pop(0)
            return self._routes.get(path)

    # ---- inspection ----------------------------------------------------

    def _record(self, req):
        with self._lock:
            self._requests.append(req)
            self._active[req.path] = self._active.get(req.path, 0) + 1
            self._lock.notify_all()

    def _finish(self, req, outcome):
        with self._lock:
            req.outcome = outcome
            req.t_end = time.monotonic()
            self._active[req.path] -= 1
            self._lock.notify_all()

    def requests(self, path=None, reply=None):
        with self._lock:
            return [r for r in self._requests
                    if (path is None or r.path == path)
                    and (reply is None or r.reply is reply)]

    def count(self, path=None, reply=None, finished=False):
        with self._lock:
            return sum(1 for r in self._requests
                       if (path is None or r.path == path)
                       and (reply is None or r.reply is reply)
                       and (not finished or r.outcome != "open"))

    def active(self, path):
        """Requests for path being answered right now (e.g. hanging)."""
        with self._lock:
            return self._active.get(path, 0)

    def wait(self, predicate, timeout, what):
        """Wait until predicate() (called under the lock) is true."""
        timeout *= SCALE
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("fake API: timed out after %.1fs waiting for %s"
                                       % (timeout, what))
                self._lock.wait(min(left, 0.1))

    def wait_requests(self, path, n, timeout=10.0, reply=None, finished=False):
        """Wait until path has been requested at least n times in total (only
        counting requests served by `reply`, when given; only finished
        responses, when finished=True). Returns the count."""
        def pred():
            return self._count_locked(path, reply, finished) >= n
        self.wait(pred, timeout, "%d requests for %s%s" % (
            n, path, " served %s" % reply if reply else ""))
        return self.count(path, reply, finished)

    def _count_locked(self, path, reply, finished):
        return sum(1 for r in self._requests
                   if (path is None or r.path == path)
                   and (reply is None or r.reply is reply)
                   and (not finished or r.outcome != "open"))


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake = None  # set by FakeAPI._listen
    server_version = "fakeapi/1"

    def setup(self):
        super().setup()
        # A client that stops reading must not block a handler forever.
        self.connection.settimeout(30)
        with self.fake._lock:
            self.fake._conns.add(self.connection)

    def finish(self):
        with self.fake._lock:
            self.fake._conns.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        self._serve()

    def do_POST(self):
        self._serve()

    def do_HEAD(self):
        self._serve()

    def _serve(self):
        fake = self.fake
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n > 0 else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        path = urlsplit(self.path).path
        reply = fake._next_reply(path)
        req = Request(self.command, self.path, headers, body, reply)
        fake._record(req)
        outcome = "complete"
        try:
            outcome = self._answer(req, reply)
        except (BrokenPipeError, ConnectionResetError, socket.timeout, OSError):
            outcome = "client_closed"
            self.close_connection = True
        finally:
            fake._finish(req, outcome)

    def _answer(self, req, reply):
        fake = self.fake
        if reply is None:
            return self._static(req, 404, {"Content-Type": "text/plain"}, b"no route\n")
        if reply.kind == "slow":
            if fake.stopping.wait(reply.seconds):
                self.close_connection = True
                return "released"
            reply = reply.then
        if reply.kind == "static":
            return self._static(req, reply.status, reply.headers, reply.body)
        if reply.kind == "close":
            self._drop()
            return "complete"
        if reply.kind == "hang":
            return self._hang()
        if reply.kind == "big":
            return self._big(req, reply.size)
        if reply.kind == "endless":
            return self._endless(req, reply.size)
        raise ValueError("unknown reply kind %r" % reply.kind)

    def _static(self, req, status, headers, body):
        self.send_response(status)
        for k, v in headers.items():
            for one in v if isinstance(v, (list, tuple)) else [v]:  # a list: one field line each
                self.send_header(k, one)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
            req.bytes_sent = len(body)
        self.wfile.flush()
        return "complete"

    def _drop(self):
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _client_gone(self):
        """True when the peer closed its end (readable with EOF)."""
        r, _, _ = select.select([self.connection], [], [], 0)
        if not r:
            return False
        try:
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _hang(self):
        deadline = time.monotonic() + MAX_HANG_S
        while time.monotonic() < deadline:
            if self.fake.stopping.wait(0.05):
                break
            if self._client_gone():
                self.close_connection = True
                return "client_closed"
        self._drop()
        return "released"

    def _big(self, req, size):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        head, tail = b'{"pad":"', b'"}'
        pad = size - len(head) - len(tail)
        self.wfile.write(head)
        req.bytes_sent = len(head)
        block = b"x" * CHUNK
        while pad > 0:
            if self.fake.stopping.is_set():
                self._drop()
                return "released"
            n = min(pad, CHUNK)
            self.wfile.write(block[:n])
            req.bytes_sent += n
            pad -= n
        self.wfile.write(tail)
        req.bytes_sent += len(tail)
        self.wfile.flush()
        return "complete"

    def _endless(self, req, max_bytes):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def chunk(data):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            req.bytes_sent += len(data)

        head, tail = b'{"pad":"', b'"}'
        chunk(head)
        block = b"x" * CHUNK
        while req.bytes_sent + CHUNK + len(tail) <= max_bytes:
            if self.fake.stopping.is_set():
                self._drop()
                return "released"
            chunk(block)
        chunk(tail)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        return "cap"
