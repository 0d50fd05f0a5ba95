"""Raw-socket HTTP/1.1 client: requests go out byte for byte as given (no client-side path
normalisation, no retry, no proxy), answers are read by hand, and every call has a timeout.

- request / raw_head: request bytes;
- parse_one: the first complete response in a buffer (Content-Length framing), or None;
- read_response / next_status: block until one response is in; a clean EOF first raises
  ConnectionError("EOF") (is_eof tells it from a reset, ConnectionResetError);
- fetch: one request on a new connection with `Connection: close`, read to EOF;
- send_reading / exchange: send while reading (a server may answer and close before it has
  read everything sent), and tell close (EOF) from reset (RST) and timeout;
- url_get: GET/POST of a management URL through urllib, proxies ignored (loopback only).

Header names are lower-cased; when a name repeats, the first value wins.
"""

import re
import select
import socket
import time
import urllib.error
import urllib.request

STATUS_LINE = re.compile(r"HTTP/1\.[01] (\d{3})")
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)


def raw_head(first_line, lines=()):
    """A request head from its first line and header lines, taken as they are (malformed
    ones too), latin-1 encoded."""
    return ("\r\n".join([first_line, *lines]) + "\r\n\r\n").encode("latin-1")


def request(target, host="x", method="GET", headers=(), close=False):
    """`METHOD target HTTP/1.1`, Host, the (name, value) headers, `Connection: close` if
    asked. target may be bytes (sent as they are, e.g. raw non-ASCII)."""
    if isinstance(target, bytes):
        target = target.decode("latin-1")
    lines = [f"Host: {host}"] + [f"{k}: {v}" for k, v in headers] + (["Connection: close"] if close else [])
    return raw_head(f"{method} {target} HTTP/1.1", lines)


def parse_head(head):
    """(status, headers) of a response head (bytes, without the blank line)."""
    lines = bytes(head).decode("latin-1").split("\r\n")
    m = STATUS_LINE.match(lines[0])
    if not m:
        raise ValueError(f"not an HTTP response: {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    return int(m.group(1)), headers


def parse_one(buf, head_request=False):
    """(Response, bytes used) for the first complete response in buf, or None when it is not
    all there yet. The answer to a HEAD request, and 1xx / 204 / 304, have no body. Raises
    ValueError when buf does not start with an HTTP/1 status line."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    status, headers = parse_head(buf[:end])
    bodiless = head_request or status < 200 or status in (204, 304)
    total = end + 4 + (0 if bodiless else int(headers.get("content-length", "0")))
    if len(buf) < total:
        return None
    return Response(status, headers, bytes(buf[end + 4:total])), total


def is_eof(exc):
    """Whether an exception from read_response is the server's clean close (not a reset)."""
    return type(exc) is ConnectionError


def read_response(sock, buf=b"", head_request=False):
    """Reads one response from sock (buf: bytes already received); returns (Response, the
    bytes after it). Raises ConnectionError("EOF" / "EOF mid-response") when the server
    closes first, ConnectionResetError on a reset, socket timeouts as they come."""
    buf = bytearray(buf)
    while True:
        parsed = parse_one(buf, head_request)
        if parsed is not None:
            return parsed[0], bytes(buf[parsed[1]:])
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("EOF mid-response" if buf else "EOF")
        buf += data


def next_status(sock, buf=b""):
    """Status of the next response on sock, or None when the server closes cleanly first."""
    try:
        return read_response(sock, buf)[0].status
    except ConnectionError as e:
        if is_eof(e):
            return None
        raise


def connect(host, port, timeout=5.0, source=None):
    """A TCP connection to host:port (IPv6 when host has a colon), optionally from a given
    local address."""
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        if source:
            s.bind((source, 0))
        s.connect((host, port))
    except OSError:
        s.close()
        raise
    return s


def fetch(host, port, target, method="GET", headers=(), source=None, timeout=5.0, host_header=None,
          max_bytes=4 << 20):
    """One request with `Connection: close` on a new connection (Host: host_header, default
    host), everything read until the server closes. The body is all that follows the head,
    whatever its framing."""
    with connect(host, port, timeout, source) as s:
        s.sendall(request(target, host_header or host, method, headers, close=True))
        data = bytearray()
        while len(data) < max_bytes:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    status, hdrs = parse_head(head)
    return Response(status, hdrs, body)


class Exchange:
    """What send_reading saw: bytes sent, bytes received, whether the server closed (EOF,
    RST, or a failed send), the error ("ECONNRESET", "BrokenPipeError", ...), the timeout."""

    def __init__(self):
        self.sent = 0
        self.data = bytearray()
        self.closed = False
        self.error = None
        self.timed_out = False

    def response(self):
        """The first complete response received, or None (ValueError: not HTTP)."""
        parsed = parse_one(self.data)
        return parsed[0] if parsed else None


def _complete(buf):
    try:
        return parse_one(buf) is not None
    except ValueError:
        return True  # not HTTP: reading on will not make it a response


def _drain(sock, x):
    """After a failed send: what the server answered may already be in the receive buffer."""
    try:
        sock.setblocking(True)
        sock.settimeout(1.0)
        while not _complete(x.data):
            got = sock.recv(65536)
            if not got:
                break
            x.data += got
    except OSError:
        pass


def send_reading(sock, data, timeout, finish_sending=True, chunk=65536):
    """Sends data on sock while reading what comes back, until a complete response is in
    (and, with finish_sending, all of data went out), the server closed or reset the
    connection, or timeout seconds passed. Leaves sock non-blocking; returns an Exchange."""
    sock.setblocking(False)
    x = Exchange()
    deadline = time.monotonic() + timeout
    done = False
    while not done:
        if time.monotonic() >= deadline:
            x.timed_out = True
            return x
        want_write = x.sent < len(data)
        r, w, _ = select.select([sock], [sock] if want_write else [], [], 0.2)
        if r:
            try:
                got = sock.recv(65536)
            except ConnectionResetError:
                x.error, x.closed = "ECONNRESET", True
                return x
            if not got:
                x.closed = True
                return x
            x.data += got
            done = _complete(x.data) and not (finish_sending and want_write)
        if w and want_write:  # (without finish_sending, one more chunk goes out with the answer in)
            try:
                x.sent += sock.send(data[x.sent:x.sent + chunk])
            except (BrokenPipeError, ConnectionResetError) as e:
                x.error, x.closed = type(e).__name__, True
                _drain(sock, x)
                return x
    return x


def exchange(host, port, data, timeout=10.0, linger=0.3):
    """send_reading on a new connection; after a complete answer, watches `linger` seconds
    more for the server's close. Error "timeout" when nothing complete came in time."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        x = send_reading(sock, data, timeout)
        if x.timed_out:
            x.error = x.error or "timeout"
        elif not x.closed:
            try:
                if select.select([sock], [], [], linger)[0]:
                    more = sock.recv(65536)
                    if more:
                        x.data += more
                    else:
                        x.closed = True
            except ConnectionResetError:
                x.closed, x.error = True, "ECONNRESET"
    return x


def url_get(url, timeout=2.0, method="GET"):
    """(status, body) of a GET (or an empty POST) to url; (None, the error as bytes) when
    there is no HTTP answer. Never through a proxy."""
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with _NO_PROXY.open(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (OSError, urllib.error.URLError) as e:
        return None, str(e).encode()
