"""Fake servers for the router to talk to: edges (health checks) and the admin API (routing
snapshots). Each is an http.server in a daemon thread that can be stopped, as when the
process behind it dies (listening port closed, every open connection shut down), and started
again.

Loopback only: an address outside 127.0.0.0/8 and ::1 is refused. Bounded: at most
max_connections connections at a time (more are closed at accept), a connection idle for
`timeout` seconds is dropped, slow answers end when the server stops, and stop() joins its
thread with a deadline.
"""

import hashlib
import http.server
import ipaddress
import socket
import socketserver
import threading
import time


def etag_of(body):
    return '"' + hashlib.sha1(body).hexdigest()[:20] + '"'


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self):
        # HTTPServer.server_bind asks socket.getfqdn (a reverse DNS lookup) for a name no
        # handler here uses: skip it, nothing leaves the machine.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def verify_request(self, request, client_address):
        with self.conns_lock:
            if len(self.conns) >= self.max_connections:
                return False
            self.conns.add(request)
        return True

    def shutdown_request(self, request):
        with self.conns_lock:
            self.conns.discard(request)
        super().shutdown_request(request)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 120  # idle seconds before a keep-alive connection is dropped (beyond client pools')

    def log_message(self, *_args):
        pass

    def send(self, status, body, headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        owner = self.server.owner
        mode = owner.mode
        try:
            owner.answer(self, mode)
        except (BrokenPipeError, ConnectionResetError):
            owner.gone(mode)


class Server:
    """The stoppable server of one fake: owner.answer(handler, mode) writes each answer."""

    def __init__(self, addr, owner, max_connections=256):
        if not ipaddress.ip_address(addr[0]).is_loopback:
            raise ValueError(f"{addr[0]}: fake servers listen on loopback addresses only")
        self.addr, self.owner, self.max_connections = addr, owner, max_connections
        self.httpd = self.thread = None
        self.stopping = threading.Event()

    @property
    def running(self):
        return self.httpd is not None

    def start(self):
        if self.httpd:
            return
        cls = type("Srv", (_HTTPServer,), {"address_family": socket.AF_INET6 if ":" in self.addr[0] else socket.AF_INET})
        for attempt in range(50):  # the port of a server just stopped may still be taken
            try:
                httpd = cls(self.addr, _Handler)
                break
            except OSError:
                if attempt == 49:
                    raise
                time.sleep(0.1)
        httpd.owner, httpd.max_connections = self.owner, self.max_connections
        httpd.conns, httpd.conns_lock = set(), threading.Lock()
        self.stopping.clear()
        self.httpd = httpd
        self.thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        self.thread.start()

    def stop(self):
        if not self.httpd:
            return
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        with self.httpd.conns_lock:
            conns = list(self.httpd.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.thread.join(5)
        self.httpd = None


class _Fake:
    """A mode, the server that answers by it, and the mode (DOWN) in which nothing listens."""

    DOWN = "closed"

    def __init__(self, ip, port, mode):
        self.mode = mode
        self.lock = threading.Lock()
        self.server = Server((ip, port), self)

    def set(self, mode):
        if mode == self.DOWN:
            self.server.stop()
        else:
            self.server.start()
        self.mode = mode

    def stop(self):
        self.server.stop()

    def gone(self, _mode):
        pass


class FakeEdge(_Fake):
    """An edge at ip:port answering every GET (the health check) by mode: ok (200 `OK`), 503
    (`DOWN`), badbody (200 `NOT OK`), slow (`OK` after slow_secs), closed (not listening)."""

    def __init__(self, ip, port, slow_secs=1.0):
        super().__init__(ip, port, "ok")
        self.slow_secs, self.checks = slow_secs, 0

    def answer(self, h, mode):
        with self.lock:
            self.checks += 1
        if mode == "slow":
            self.server.stopping.wait(self.slow_secs)
        body, status = {"503": (b"DOWN", 503), "badbody": (b"NOT OK", 200)}.get(mode, (b"OK", 200))
        h.send(status, body)


class FakeAdmin(_Fake):
    """The admin API at ip:port: every GET answered by mode, `seen` counting the answers as
    "mode -> what":

      a key of bodies  200, application/json, its ETag; 304 when If-None-Match matches
      500              500 `internal error`
      slow             the body `slow_body` after slow_secs (past the router's timeout)
      huge-length      200 with Content-Length huge_bytes, spaces until then
      huge-stream      200 without a length (Connection: close), JSON streamed past huge_bytes
      down             not listening
    """

    DOWN = "down"

    def __init__(self, ip, port, bodies, mode, huge_bytes, slow_body, slow_secs=3.5):
        super().__init__(ip, port, mode)
        self.bodies = bodies
        self.etags = {k: etag_of(v) for k, v in bodies.items()}
        self.huge_bytes, self.slow_body, self.slow_secs = huge_bytes, slow_body, slow_secs
        self.seen = {}

    def count(self, mode, what):
        with self.lock:
            key = f"{mode} -> {what}"
            self.seen[key] = self.seen.get(key, 0) + 1

    def gone(self, mode):
        self.count(mode, "client went away")

    def _stream(self, h, first, chunk):
        h.connection.settimeout(5)
        if first:
            h.wfile.write(first)
        sent = 0
        while sent < self.huge_bytes and not self.server.stopping.is_set():
            h.wfile.write(chunk)
            sent += len(chunk)

    def answer(self, h, mode):
        if mode == "500":
            h.send(500, b"internal error\n")
            return self.count(mode, 500)
        if mode == "slow":
            self.server.stopping.wait(self.slow_secs)
            h.send(200, self.bodies[self.slow_body])
            return self.count(mode, f"200 after {self.slow_secs:g} s")
        if mode in ("huge-length", "huge-stream"):
            h.send_response(200)
            if mode == "huge-length":
                h.send_header("Content-Length", str(self.huge_bytes))
            h.send_header("Content-Type", "application/json")
            if mode == "huge-stream":
                h.send_header("Connection", "close")
                h.close_connection = True
            h.end_headers()
            if mode == "huge-length":
                self._stream(h, b"", b" " * 65536)
                return self.count(mode, "200 (huge, Content-Length)")
            self._stream(h, b'{"version": "chaos-huge", "regions": [', b'{"id": 1, "name": "x"},' * 2900)
            return self.count(mode, "200 (huge, streamed)")
        etag = self.etags[mode]
        if h.headers.get("If-None-Match") == etag:
            h.send_response(304)
            h.send_header("ETag", etag)
            h.end_headers()
            return self.count(mode, 304)
        h.send(200, self.bodies[mode], [("Content-Type", "application/json"), ("ETag", etag)])
        self.count(mode, 200)
