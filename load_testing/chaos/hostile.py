#!/usr/bin/env python3
"""Hostile HTTP clients for hostile.sh (Python 3 standard library only; the raw-socket client,
Prometheus parser and /proc figures are load_testing/lib/ctk's).

Every subcommand talks to one router on 127.0.0.0/8, is bounded in time, and prints one JSON
object on stdout (progress on stderr):

  idle        hold N connections that send nothing (or a partial request header), and watch
              when the router closes them
  keepalive   hold N keep-alive connections that each got one answer, and watch when the
              router closes them
  slow        clients that send a request header one byte per interval
  limit       connections from one address beyond router.http.max_connections_per_client,
              and one from another loopback address
  flood       N requests with invalid paths over pipelined keep-alive connections, counting
              every answer by status
  partial     connections that send part of a request header, then close (FIN) or reset (RST)
  oversize    requests over the router's size limits and its hard cap on a head, and
              heads that are not HTTP/1
  xrealip     requests with X-Real-IP / X-Forwarded-For headers
  metric      sum of Prometheus samples matching a name and labels, from a /metrics URL
  rss         VmRSS (kB) and open file descriptors of a PID

Examples:
  hostile.py idle --port 4101 --count 5000 --status /tmp/idle.json --hold-max 120
  hostile.py flood --port 4101 --count 100000 --conns 4 --window 64
  hostile.py keepalive --port 4101 --count 10000 --status /tmp/ka.json --hold-max 50
  hostile.py limit --port 4101 --count 150 --other-source 127.0.0.2
"""

import argparse
import collections
import errno
import json
import os
import random
import resource
import select
import signal
import socket
import string
import struct
import sys
import threading
import time
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
from ctk import procfs, prom, rawhttp  # noqa: E402
from ctk.rawhttp import parse_one  # noqa: E402


def watch_closes(by_fd, since, deadline, poll_ms):
    """Waits until every socket of by_fd is closed by the other side (or deadline, or STOP).
    Returns ({fd: (seconds since since(fd), how)}, sockets that received data), `how` being
    eof, rst, error:ERRNO or data:FIRST-LINE."""
    poller = select.poll()
    for fd in by_fd:
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    closes = {}
    got_data = 0
    while not STOP.is_set() and time.monotonic() < deadline and len(closes) < len(by_fd):
        for fd, _ev in poller.poll(poll_ms):
            how = "eof"
            try:
                data = by_fd[fd].recv(4096)
                if data:
                    got_data += 1
                    how = "data:" + data[:40].decode("latin-1").split("\r\n")[0]
            except ConnectionResetError:
                how = "rst"
            except OSError as e:
                how = f"error:{e.errno}"
            closes[fd] = (time.monotonic() - since(fd), how)
            poller.unregister(fd)
    return closes, got_data


def close_kinds(closes):
    """How many closes of each kind (eof, rst, ...)."""
    return dict(collections.Counter(how for _t, how in closes.values()))


def log(*parts):
    print("[hostile]", *parts, file=sys.stderr, flush=True)


def emit(obj):
    print(json.dumps(obj, sort_keys=True), flush=True)


def raise_nofile(wanted):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def pct(values, q):
    if not values:
        return None
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(q / 100.0 * (len(values) - 1)))))
    return values[k]


def stats(values):
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "min": round(min(values), 3),
        "p50": round(pct(values, 50), 3),
        "max": round(max(values), 3),
    }


# --- one request, one answer ------------------------------------------------------------------


def exchange(host, port, data, timeout=10.0):
    """Sends data (while reading), returns what came back: status, headers, whether the
    router closed or reset the connection, and how much of data was sent before that."""
    x = rawhttp.exchange(host, port, data, timeout=timeout)
    error = x.error
    try:
        resp = x.response()
    except ValueError as e:
        resp, error = None, error or str(e)
    return {
        "status": resp.status if resp else None,
        "headers": resp.headers if resp else {},
        "body": resp.body.decode("latin-1")[:120] if resp else x.data[:120].decode("latin-1"),
        "closed_by_router": x.closed,
        "error": error,
        "request_bytes": len(data),
        "sent_bytes": x.sent,
    }


def get(host, port, path, headers=(), timeout=5.0):
    return exchange(host, port, rawhttp.request(path, f"{host}:{port}", headers=headers, close=True), timeout=timeout)


# --- idle ---------------------------------------------------------------------------------------

STOP = threading.Event()


def on_term(_signo, _frame):
    STOP.set()


def open_many(host, port, count, connect_timeout=10.0):
    """Non-blocking connects; returns the connected sockets and the number that failed."""
    pending = {}
    failed = 0
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        rc = s.connect_ex((host, port))
        if rc not in (0, errno.EINPROGRESS):
            failed += 1
            s.close()
            continue
        pending[s.fileno()] = s
    poller = select.poll()
    for fd in pending:
        poller.register(fd, select.POLLOUT)
    connected = []
    deadline = time.monotonic() + connect_timeout
    while pending and time.monotonic() < deadline:
        for fd, _ev in poller.poll(200):
            s = pending.pop(fd, None)
            if s is None:
                continue
            poller.unregister(fd)
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                failed += 1
                s.close()
            else:
                connected.append(s)
    failed += len(pending)
    for s in pending.values():
        s.close()
    return connected, failed


def write_status(path, status):
    if path:
        with open(path + ".tmp", "w") as f:
            json.dump(status, f)
        os.replace(path + ".tmp", path)


def start_holding(a, started, opened_at, limit, **figures):
    """The status while holding: how many were asked for and opened, in how long."""
    status = dict(requested=a.count, **figures, open_secs=round(opened_at - started, 3), nofile_limit=limit,
                  state="holding")
    write_status(a.status, status)
    return status


def done_holding(a, status, socks, closes, opened_at, **figures):
    """Closes the held sockets, writes and prints the final status: how long they were held,
    how many the router closed (and how), how many were still open."""
    held = time.monotonic() - opened_at
    for s in socks:
        s.close()
    status.update(state="done", held_secs=round(held, 3), closed_by_router=len(closes),
                  still_open_at_end=len(socks) - len(closes), close_kinds=close_kinds(closes), **figures)
    write_status(a.status, status)
    emit(status)


def cmd_idle(a):
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    limit = raise_nofile(a.count + a.partial + 256)
    started = time.monotonic()
    socks, failed = open_many(a.host, a.port, a.count + a.partial)
    opened_at = time.monotonic()
    partial_fds = set()
    partial = b"GET /btv/live/hls/epg_0 HTTP/1.1\r\nHost: x\r\nX-Slow: "
    for s in socks[: a.partial]:
        try:
            s.send(partial)
            partial_fds.add(s.fileno())
        except OSError:
            pass
    by_fd = {s.fileno(): s for s in socks}
    status = start_holding(a, started, opened_at, limit, partial_requested=a.partial, connected=len(socks), failed=failed)
    log(f"idle: {len(socks)} connected ({failed} failed) in {status['open_secs']} s; holding")
    closes, got_data = watch_closes(by_fd, lambda _fd: opened_at, opened_at + a.hold_max, 200)
    silent = [t for fd, (t, _h) in closes.items() if fd not in partial_fds]
    part = [t for fd, (t, _h) in closes.items() if fd in partial_fds]
    done_holding(a, status, socks, closes, opened_at, closed_silent=stats(silent), closed_partial=stats(part),
                 answers_received=got_data)


# --- keep-alive connections, idle after one answer ---------------------------------------------


def one_request(path, host):
    return rawhttp.request(path, host, headers=[("User-Agent", "hostile-keepalive")])


def answer_all(socks, request, timeout):
    """Sends `request` on every socket and reads one answer from each (poll). Returns
    {fd: status or "closed" / "error:..." / "timeout"}."""
    results = {}
    bufs = {}
    by_fd = {s.fileno(): s for s in socks}
    for fd, s in by_fd.items():
        try:
            s.send(request)
            bufs[fd] = bytearray()
        except OSError as e:
            results[fd] = f"error:{e.__class__.__name__}"
    poller = select.poll()
    for fd in bufs:
        poller.register(fd, select.POLLIN)
    deadline = time.monotonic() + timeout
    while len(results) < len(by_fd) and time.monotonic() < deadline:
        for fd, _ev in poller.poll(200):
            s = by_fd[fd]
            try:
                got = s.recv(65536)
            except OSError as e:
                results[fd] = f"error:{e.__class__.__name__}"
                poller.unregister(fd)
                continue
            if not got:
                results[fd] = "closed"
                poller.unregister(fd)
                continue
            bufs[fd] += got
            parsed = parse_one(bufs[fd])
            if parsed is not None:
                results[fd] = parsed[0].status
                poller.unregister(fd)
    for fd in by_fd:
        results.setdefault(fd, "timeout")
    return results


def cmd_keepalive(a):
    """Opens `count` connections in batches, gets one answer on each (keep-alive), then holds
    them until SIGTERM / hold-max, noting when the router closes them."""
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    limit = raise_nofile(a.count + 256)
    started = time.monotonic()
    request = one_request(a.path, a.host)
    socks, failed = [], 0
    statuses = {}
    answered_at = {}
    while len(socks) + failed < a.count and not STOP.is_set():
        batch, bfailed = open_many(a.host, a.port, min(a.batch, a.count - len(socks) - failed))
        failed += bfailed
        results = answer_all(batch, request, timeout=10.0)
        t = time.monotonic()
        for s in batch:
            st = results[s.fileno()]
            statuses[str(st)] = statuses.get(str(st), 0) + 1
            if isinstance(st, int):
                socks.append(s)
                answered_at[s.fileno()] = t
            else:
                s.close()
    opened_at = time.monotonic()
    status = start_holding(a, started, opened_at, limit, connected_and_answered=len(socks), failed=failed,
                           statuses=statuses)
    log(f"keepalive: {len(socks)} answered and idle ({failed} failed, {statuses}) in {status['open_secs']} s; holding")
    by_fd = {s.fileno(): s for s in socks}
    closes, _ = watch_closes(by_fd, answered_at.__getitem__, opened_at + a.hold_max, 100)
    done_holding(a, status, socks, closes, opened_at, closed_after_answer=stats([t for t, _h in closes.values()]))


# --- connections per client ---------------------------------------------------------------------


def connect_from(host, port, source, timeout=5.0):
    return rawhttp.connect(host, port, timeout, source)


def served(s, host, timeout=5.0):
    """Status of one keep-alive GET on s, or "closed" / "error:..." when there is no answer."""
    return answer_all([s], one_request("/btv/live/hls/epg_0", host), timeout)[s.fileno()]


def served_from(a, source, settle=0.0):
    """Status of one GET on a new connection from source (after settle seconds), or why not."""
    try:
        s = connect_from(a.host, a.port, source)
    except OSError as e:
        return f"error:{e.__class__.__name__}"
    with s:
        time.sleep(settle)
        return served(s, a.host)


def cmd_limit(a):
    """Opens `count` connections from `source`, one after the other, and holds them; then
    finds which were closed by the router without a request (at accept) and which answer a
    request. Meanwhile one more from `source` (over the limit), one from `other_source`; after
    closing them all, one more from `source` (the places come back)."""
    raise_nofile(a.count + 256)
    socks, connect_failed = [], 0
    t0 = time.monotonic()
    for _ in range(a.count):
        try:
            s = connect_from(a.host, a.port, a.source)
            socks.append(s)
        except OSError:
            connect_failed += 1
    opened = time.monotonic() - t0
    time.sleep(a.settle)
    # Closed at accept: readable (EOF / RST) before anything was sent.
    closed_at_accept, open_socks, kinds = [], [], {}
    for s in socks:
        r, _, _ = select.select([s], [], [], 0)
        if r:
            try:
                data = s.recv(4096)
                how = "data" if data else "eof"
            except OSError as e:
                how = f"recv:{e.__class__.__name__}"
            kinds[how] = kinds.get(how, 0) + 1
            closed_at_accept.append(s)
        else:
            open_socks.append(s)
    results = answer_all(open_socks, one_request("/btv/live/hls/epg_0", a.host), timeout=5.0)
    statuses = {}
    for st in results.values():
        statuses[str(st)] = statuses.get(str(st), 0) + 1
    # One more from the same address while all are held, and one from another address.
    extra_status = served_from(a, a.source, settle=0.2)
    other_status = served_from(a, a.other_source)
    for s in socks:
        s.close()
    time.sleep(0.5)
    again_status = served_from(a, a.source)
    emit(
        {
            "count": a.count,
            "source": a.source,
            "connected": len(socks),
            "connect_failed": connect_failed,
            "open_secs": round(opened, 3),
            "closed_at_accept": len(closed_at_accept),
            "closed_at_accept_kinds": kinds,
            "served_statuses": statuses,
            "served": sum(1 for st in results.values() if isinstance(st, int)),
            "one_more_from_source": extra_status,
            "other_source": a.other_source,
            "from_other_source": other_status,
            "from_source_after_closing_all": again_status,
        }
    )


# --- slow headers -------------------------------------------------------------------------------


def cmd_slow(a):
    limit = raise_nofile(a.clients + 256)
    request = f"GET /btv/live/hls/epg_0 HTTP/1.1\r\nHost: {a.host}:{a.port}\r\nUser-Agent: slowloris\r\n\r\n".encode()
    socks, failed = open_many(a.host, a.port, a.clients)
    start = time.monotonic()
    closed_at = {}
    sent = {s.fileno(): 0 for s in socks}
    nbytes = min(a.bytes, len(request) - 1)

    def watch_until(t_end):
        """Notes every close by the router (EOF, RST or an early answer) until t_end."""
        while True:
            open_now = [s for s in socks if s.fileno() not in closed_at]
            left = t_end - time.monotonic()
            if not open_now or left <= 0:
                return
            r, _, _ = select.select(open_now, [], [], min(0.02, left))
            for s in r:
                try:
                    data = s.recv(4096)
                    how = "data:" + data[:30].decode("latin-1").split("\r\n")[0] if data else "eof"
                except OSError as e:
                    how = f"recv:{e.__class__.__name__}"
                closed_at[s.fileno()] = (time.monotonic() - start, how)

    for i in range(nbytes):
        watch_until(start + i * a.interval)
        if len(closed_at) == len(socks):
            break
        for s in socks:
            fd = s.fileno()
            if fd in closed_at:
                continue
            try:
                s.send(request[i:i + 1])
                sent[fd] += 1
            except OSError as e:
                closed_at[fd] = (time.monotonic() - start, f"send:{e.__class__.__name__}")
    # The last byte may have been the one the router cut: look a little longer.
    watch_until(time.monotonic() + a.linger)
    trickle_secs = time.monotonic() - start
    still_open = [s for s in socks if s.fileno() not in closed_at]
    kinds = {}
    for _t, how in closed_at.values():
        kinds[how] = kinds.get(how, 0) + 1
    # Finish the request at once: does the router still answer it?
    statuses = {}
    for s in still_open:
        try:
            s.setblocking(True)
            s.settimeout(5)
            s.sendall(request[nbytes:])
            status = rawhttp.next_status(s)
            key = "no answer" if status is None else str(status)
        except OSError as e:
            key = f"error:{e.__class__.__name__}"
        statuses[key] = statuses.get(key, 0) + 1
    for s in socks:
        s.close()
    emit(
        {
            "clients": a.clients,
            "connected": len(socks),
            "connect_failed": failed,
            "interval_secs": a.interval,
            "bytes_trickled": nbytes,
            "request_bytes": len(request),
            "trickle_secs": round(trickle_secs, 2),
            "closed_by_router_during_trickle": len(closed_at),
            "close_times": stats([t for t, _ in closed_at.values()]),
            "close_kinds": kinds,
            "answers_before_close": sum(1 for _t, how in closed_at.values() if how.startswith("data:")),
            "bytes_sent": stats(list(sent.values())),
            "open_after_trickle": len(still_open),
            "answers_after_completing": statuses,
            "nofile_limit": limit,
        }
    )


# --- flood --------------------------------------------------------------------------------------

ALNUM = string.ascii_lowercase + string.digits


def invalid_path(i, rng):
    if i % 2 == 0:
        return "/scan/" + "".join(rng.choice(ALNUM) for _ in range(12))
    return "/btv/live/bad%zz"


def flood_worker(a, count, seed, result):
    rng = random.Random(seed)
    statuses = {}
    answered = sent_total = reconnects = 0
    unanswered = 0
    errors = []
    remaining = count
    sock = None
    buf = bytearray()
    while remaining > 0 and len(errors) < 50:
        if sock is None:
            try:
                sock = socket.create_connection((a.host, a.port), timeout=10)
            except OSError as e:
                errors.append(f"connect: {e}")
                time.sleep(0.1)
                continue
            buf = bytearray()
        batch = min(a.window, remaining)
        reqs = b"".join(
            f"GET {invalid_path(sent_total + k, rng)} HTTP/1.1\r\nHost: {a.host}\r\nUser-Agent: scanner\r\n\r\n".encode()
            for k in range(batch)
        )
        try:
            sock.sendall(reqs)
        except OSError as e:
            errors.append(f"send: {e}")
            sock.close()
            sock = None
            reconnects += 1
            continue
        sent_total += batch
        got = 0
        closed = False
        while got < batch:
            try:
                parsed = parse_one(buf)
            except ValueError as e:
                errors.append(str(e))
                closed = True
                break
            if parsed is not None:
                resp, used = parsed
                del buf[:used]
                got += 1
                statuses[resp.status] = statuses.get(resp.status, 0) + 1
                if (resp.header("connection") or "").lower() == "close":
                    closed = True
                    break
                continue
            try:
                data = sock.recv(262144)
            except OSError as e:
                errors.append(f"recv: {e}")
                closed = True
                break
            if not data:
                closed = True
                break
            buf += data
        answered += got
        unanswered += batch - got
        remaining -= got  # unanswered ones are sent again on a new connection
        if closed:
            sock.close()
            sock = None
            reconnects += 1
    if sock is not None:
        sock.close()
    result.update(
        {
            "statuses": statuses,
            "answered": answered,
            "sent": sent_total,
            "unanswered": unanswered,
            "reconnects": reconnects,
            "errors": errors[:5],
        }
    )


def cmd_flood(a):
    per = [a.count // a.conns + (1 if i < a.count % a.conns else 0) for i in range(a.conns)]
    results = [{} for _ in per]
    threads = [
        threading.Thread(target=flood_worker, args=(a, n, 1000 + i, results[i]), daemon=True)
        for i, n in enumerate(per)
    ]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(a.timeout)
    took = time.monotonic() - start
    statuses = {}
    for r in results:
        for k, v in r.get("statuses", {}).items():
            statuses[str(k)] = statuses.get(str(k), 0) + v
    emit(
        {
            "requested": a.count,
            "sent": sum(r.get("sent", 0) for r in results),
            "answered": sum(r.get("answered", 0) for r in results),
            "unanswered": sum(r.get("unanswered", 0) for r in results),
            "reconnects": sum(r.get("reconnects", 0) for r in results),
            "statuses": statuses,
            "errors": [e for r in results for e in r.get("errors", [])][:10],
            "secs": round(took, 2),
            "req_per_sec": round(sum(r.get("answered", 0) for r in results) / took, 1) if took else None,
            "conns": a.conns,
            "window": a.window,
            "timed_out": any(t.is_alive() for t in threads),
        }
    )


# --- partial header, then close -----------------------------------------------------------------


def cmd_partial(a):
    raise_nofile(a.count + 256)
    done = {"fin": 0, "rst": 0, "connect_failed": 0}
    for i in range(a.count):
        try:
            s = socket.create_connection((a.host, a.port), timeout=5)
        except OSError:
            done["connect_failed"] += 1
            continue
        s.sendall(b"GET /scan/partial HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.002)
        if a.mode == "rst" or (a.mode == "mixed" and i % 2):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            done["rst"] += 1
        else:
            done["fin"] += 1
        s.close()
    emit(done)


# --- oversize -----------------------------------------------------------------------------------


def raw(method_path, headers, host, close=False):
    return rawhttp.raw_head(method_path, [f"Host: {host}"] + headers + (["Connection: close"] if close else []))


def requests_total(url):
    if not url:
        return None
    return prom.total(prom.scrape(url), "cti_kaltura_requests_total")


CLOSE_REASONS = ("header_timeout", "idle_timeout", "client_limit", "head_too_large")


def closes_total(url):
    """cti_kaltura_client_connections_closed_total by reason."""
    if not url:
        return None
    found = {r: 0.0 for r in CLOSE_REASONS}
    found.update(prom.by_label(prom.scrape(url), "cti_kaltura_client_connections_closed_total", "reason"))
    return found


def cmd_oversize(a):
    h = a.host
    cases = []

    def case(name, data):
        before = requests_total(a.metrics)
        closes_before = closes_total(a.metrics)
        r = exchange_keepalive(a.host, a.port, data, timeout=a.timeout)
        # The router counts a request once its answer is written, and may still be at it.
        time.sleep(0.1)
        after = requests_total(a.metrics)
        closes_after = closes_total(a.metrics)
        r["case"] = name
        r.pop("headers", None)
        # The follow-up request on the same connection (when answered) is counted too.
        followup = 1 if isinstance(r["followup_status"], int) else 0
        r["counted_in_requests_total"] = None if before is None else int(after - before) - followup
        r["closes_counted"] = None if closes_before is None else {
            k: int(closes_after.get(k, 0) - closes_before.get(k, 0))
            for k in closes_after if closes_after.get(k, 0) != closes_before.get(k, 0)}
        cases.append(r)
        log(f"oversize: {name}: {r['status']} counted={r['counted_in_requests_total']} closes={r['closes_counted']} "
            f"connection_reused={r['followup_status']} closed={r['closed_by_router']} error={r['error']}")

    def vod_path(total):
        # /vod/aaaa... of exactly `total` bytes
        return "/vod/" + "a" * (total - len("/vod/"))

    def extra(n):
        return [f"X-H{i}: v" for i in range(n)]

    case("uri 8192 bytes (router limit: allowed)", raw(f"GET {vod_path(8192)} HTTP/1.1", [], h))
    case("uri 8193 bytes", raw(f"GET {vod_path(8193)} HTTP/1.1", [], h))
    case("uri 10 kB (10240 bytes)", raw(f"GET {vod_path(10_240)} HTTP/1.1", [], h))
    case("uri 65534 bytes", raw(f"GET {vod_path(65_534)} HTTP/1.1", [], h))
    case("uri 65535 bytes", raw(f"GET {vod_path(65_535)} HTTP/1.1", [], h))
    case("uri 70000 bytes", raw(f"GET {vod_path(70_000)} HTTP/1.1", [], h))
    case("uri 2 MiB", raw(f"GET {vod_path(2 << 20)} HTTP/1.1", [], h))
    case("64 headers (router limit: allowed)", raw("GET /vod/a/b/c HTTP/1.1", extra(63), h))
    case("65 headers", raw("GET /vod/a/b/c HTTP/1.1", extra(64), h))
    case("100 headers", raw("GET /vod/a/b/c HTTP/1.1", extra(99), h))
    case("256 headers", raw("GET /vod/a/b/c HTTP/1.1", extra(255), h))
    case("257 headers", raw("GET /vod/a/b/c HTTP/1.1", extra(256), h))
    case("300 headers", raw("GET /vod/a/b/c HTTP/1.1", extra(299), h))
    case("header bytes 16 kB (one 16000-byte value: allowed)",
         raw("GET /vod/a/b/c HTTP/1.1", ["X-Big: " + "b" * 16_000], h))
    case("header bytes 20 kB (one 20000-byte value)",
         raw("GET /vod/a/b/c HTTP/1.1", ["X-Big: " + "b" * 20_000], h))
    case("header block 1000 kB (50 values of 20 kB)",
         raw("GET /vod/a/b/c HTTP/1.1", [f"X-Big{i}: " + "b" * 20_000 for i in range(50)], h))
    case("header block 1.1 MiB (55 values of 20 kB)",
         raw("GET /vod/a/b/c HTTP/1.1", [f"X-Big{i}: " + "b" * 20_000 for i in range(55)], h))
    case("header block 2 MiB (128 values of 16 kB)",
         raw("GET /vod/a/b/c HTTP/1.1", [f"X-Big{i}: " + "b" * 16_384 for i in range(128)], h))
    case("header block 4 MiB (one 4 MiB value)",
         raw("GET /vod/a/b/c HTTP/1.1", ["X-Huge: " + "c" * (4 << 20)], h))
    # Not HTTP/1 at all.
    case("malformed: control byte in the method", raw("GET\x01 /vod/a/b/c HTTP/1.1", [], h))
    case("malformed: header line without a colon", raw("GET /vod/a/b/c HTTP/1.1", ["bad header"], h))
    case("malformed: TLS ClientHello to the plain port",
         b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(32)) + b"\x00\x00\x02\x13\x01\x01\x00")
    emit({"cases": cases})


def exchange_keepalive(host, port, data, timeout):
    """Sends data (no `Connection: close`), reads the answer, then sends a normal request on
    the same connection and reads its answer: followup_status is its status, or why not."""
    result = {"status": None, "body": "", "closed_by_router": False, "error": None,
              "request_bytes": len(data), "followup_status": None}
    with socket.create_connection((host, port), timeout=timeout) as sock:
        x = rawhttp.send_reading(sock, data, timeout, finish_sending=False)
        result.update(sent_bytes=x.sent, error=x.error, closed_by_router=x.closed)
        parsed = parse_one(x.data)
        if parsed is None:
            return result
        resp, used = parsed
        result.update(status=resp.status, body=resp.body.decode("latin-1")[:80],
                      connection_header=resp.header("connection"))
        if x.closed or x.sent < len(data):
            result["followup_status"] = "closed"
            return result
        sock.setblocking(True)
        sock.settimeout(3.0)
        try:
            sock.sendall(rawhttp.request("/vod/reuse/check", host, close=True))
            status = rawhttp.next_status(sock, x.data[used:])
            result["followup_status"] = "closed" if status is None else status
            result["closed_by_router"] = status is None
        except OSError as e:
            result["followup_status"] = f"error:{type(e).__name__}"
            result["closed_by_router"] = True
    return result


# --- X-Real-IP ----------------------------------------------------------------------------------


def cmd_xrealip(a):
    out = []
    for spec in a.case:
        name, _, hdrs = spec.partition("=")
        headers = []
        for item in filter(None, hdrs.split(";")):
            k, _, v = item.partition(":")
            headers.append((k, v))
        r = get(a.host, a.port, a.path, headers)
        out.append(
            {
                "case": name,
                "headers": dict(headers),
                "status": r["status"],
                "location": r["headers"].get("location"),
            }
        )
    emit({"path": a.path, "results": out})


# --- metrics and process figures ----------------------------------------------------------------


def cmd_metric(a):
    total = prom.total(prom.scrape(a.url), a.name, a.label)
    print(int(total) if total == int(total) else total)


def cmd_rss(a):
    emit({"pid": a.pid, "rss_kb": procfs.rss_kb(a.pid), "fds": procfs.fd_count(a.pid)})


def cmd_routesum(_a):
    d = json.load(sys.stdin)
    r = d["result"]
    chain = d.get("fallback_chain") or [{}]
    edges = sorted({c["domain_name"].split(".")[0] for c in chain[0].get("candidates", [])
                    if c.get("verdict") == "eligible"})
    print(f"  cti-kaltura-snapshot route {d['client_ip']} /vod/a/b/c: status {r['status']}, "
          f"region {r.get('region_id')}, network {d.get('network')}, eligible edges {edges}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=4101)
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("idle")
    s.add_argument("--count", type=int, default=5000)
    s.add_argument("--partial", type=int, default=0, help="extra connections that send a partial header")
    s.add_argument("--hold-max", type=float, default=120.0)
    s.add_argument("--status", help="JSON status file (written when holding and at the end)")
    s.set_defaults(fn=cmd_idle)

    s = sub.add_parser("keepalive")
    s.add_argument("--count", type=int, default=10000)
    s.add_argument("--batch", type=int, default=1000)
    s.add_argument("--path", default="/btv/live/hls/epg_0")
    s.add_argument("--hold-max", type=float, default=50.0)
    s.add_argument("--status", help="JSON status file (written when holding and at the end)")
    s.set_defaults(fn=cmd_keepalive)

    s = sub.add_parser("limit")
    s.add_argument("--count", type=int, default=150)
    s.add_argument("--source", default="127.0.0.1")
    s.add_argument("--other-source", default="127.0.0.2")
    s.add_argument("--settle", type=float, default=0.5, help="seconds between connecting and looking")
    s.set_defaults(fn=cmd_limit)

    s = sub.add_parser("slow")
    s.add_argument("--clients", type=int, default=1)
    s.add_argument("--interval", type=float, default=1.0)
    s.add_argument("--bytes", type=int, default=20)
    s.add_argument("--linger", type=float, default=0.0,
                   help="after the last byte, seconds to keep watching for the router's close")
    s.set_defaults(fn=cmd_slow)

    s = sub.add_parser("flood")
    s.add_argument("--count", type=int, default=100_000)
    s.add_argument("--conns", type=int, default=4)
    s.add_argument("--window", type=int, default=64)
    s.add_argument("--timeout", type=float, default=300.0)
    s.set_defaults(fn=cmd_flood)

    s = sub.add_parser("partial")
    s.add_argument("--count", type=int, default=1000)
    s.add_argument("--mode", choices=["fin", "rst", "mixed"], default="mixed")
    s.set_defaults(fn=cmd_partial)

    s = sub.add_parser("oversize")
    s.add_argument("--timeout", type=float, default=15.0)
    s.add_argument("--metrics", help="/metrics URL: count each case's change of cti_kaltura_requests_total")
    s.set_defaults(fn=cmd_oversize)

    s = sub.add_parser("xrealip")
    s.add_argument("--path", default="/btv/live/hls/epg_0")
    s.add_argument("--case", action="append", default=[], help="NAME=Header:value;Header:value")
    s.set_defaults(fn=cmd_xrealip)

    s = sub.add_parser("metric")
    s.add_argument("url")
    s.add_argument("name")
    s.add_argument("label", nargs="*", help='label matchers like kind="invalid"')
    s.set_defaults(fn=cmd_metric)

    s = sub.add_parser("rss")
    s.add_argument("pid", type=int)
    s.set_defaults(fn=cmd_rss)

    s = sub.add_parser("routesum", help="one line from `cti-kaltura-snapshot route` JSON on stdin")
    s.set_defaults(fn=cmd_routesum)

    a = p.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
