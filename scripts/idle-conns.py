#!/usr/bin/env python3
"""What an idle keep-alive connection costs a server, in memory (used by
scripts/bench-load.sh; std only, runnable by hand).

  idle-conns.py measure --pid PID --url URL [--n 3000] [--proto h1|h2] [--label NAME] [-H 'Name: value']...
      Opens N connections one after another, sends one GET on each, reads the whole
      answer and leaves the connection open and idle. Prints one JSON line: the RSS of
      process PID (the serving process: our proxy, or an nginx worker) before and after,
      and the growth divided by N, in KiB per idle connection. URL is http:// or
      https:// (TLS, certificate not checked; ALPN http/1.1, or h2 with --proto h2).
      With --silent nothing is sent on them.

  idle-conns.py hold --url URL --n N [--seconds 600] [-H ...]
      Opens N idle connections the same way, prints "ready N" on stdout, then holds them
      until SIGTERM or SIGINT, or until SECONDS pass; then says how many the server closed.

The RSS is read from /proc/PID/smaps_rollup once the connections are open and the server has
had a moment to settle; a warm-up of 20 connections (opened, answered, closed) comes
first so that the server's one-off allocations (pools, caches, the first TLS handshake)
are not counted as the connections' cost. The RSS is also read after each tenth of the
connections, and the least-squares growth per connection over those samples ("slope")
is printed beside growth / N: the allocator maps memory in pieces of a few MiB, and
memory it keeps after the first answers (a few MiB for large pages) is a step at the
start that growth / N spreads over the connections but the slope mostly does not.
"""

import argparse
import json
import signal
import socket
import ssl
import struct
import sys
import time
import urllib.parse


def rss_kib(pid):
    """The process's RSS, counted page by page (smaps_rollup): VmRSS in /proc/PID/status
    is kept per thread and synced in batches, off by up to a few MiB."""
    for path, key in ((f"/proc/{pid}/smaps_rollup", "Rss:"), (f"/proc/{pid}/status", "VmRSS:")):
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith(key):
                        return int(line.split()[1])
        except FileNotFoundError:
            continue
    raise RuntimeError(f"no RSS for pid {pid}")


class Target:
    def __init__(self, url, proto, headers, silent=False):
        u = urllib.parse.urlsplit(url)
        self.tls = u.scheme == "https"
        self.host = u.hostname
        self.port = u.port or (443 if self.tls else 80)
        self.path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        self.proto = proto
        self.headers = headers
        self.silent = silent
        if self.tls:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            self.ctx.check_hostname = False
            self.ctx.verify_mode = ssl.CERT_NONE
            self.ctx.set_alpn_protocols(["h2"] if proto == "h2" else ["http/1.1"])
        elif proto == "h2":
            raise SystemExit("h2 needs an https:// URL (ALPN)")

    def open(self):
        """One connection with one request answered in full; returns the open socket."""
        s = socket.create_connection((self.host, self.port), timeout=30)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls:
            s = self.ctx.wrap_socket(s, server_hostname=self.host)
            want = "h2" if self.proto == "h2" else "http/1.1"
            got = s.selected_alpn_protocol()
            if got != want:
                raise RuntimeError(f"ALPN: asked for {want}, got {got}")
        if self.silent:
            pass
        elif self.proto == "h2":
            h2_get(s, self)
        else:
            h1_get(s, self)
        return s


# ---------------------------------------------------------------------------
# HTTP/1.1


class Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise RuntimeError("connection closed before the answer was complete")
        self.buf += data

    def until(self, sep):
        while sep not in self.buf:
            self.fill()
        i = self.buf.index(sep) + len(sep)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def exactly(self, n):
        while len(self.buf) < n:
            self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def h1_get(s, t):
    extra = "".join(f"{h}\r\n" for h in t.headers)
    s.sendall(f"GET {t.path} HTTP/1.1\r\nHost: {t.host}\r\n{extra}\r\n".encode())
    r = Reader(s)
    head = r.until(b"\r\n\r\n").decode("latin-1").lower()
    status = head.split(" ", 2)[1]
    if status != "200":
        raise RuntimeError(f"status {status}")
    if "connection: close" in head:
        raise RuntimeError("the server closes the connection: not a keep-alive measurement")
    if "transfer-encoding: chunked" in head:
        while True:
            size = int(r.until(b"\r\n").split(b";")[0], 16)
            r.exactly(size + 2)
            if size == 0:
                break
    else:
        for line in head.split("\r\n"):
            if line.startswith("content-length:"):
                r.exactly(int(line.split(":", 1)[1]))
    if r.buf:
        raise RuntimeError("bytes after the answer")


# ---------------------------------------------------------------------------
# HTTP/2: just enough for one GET (HPACK literals without Huffman, flow control)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, RST_STREAM = 0, 1, 4, 6, 7, 8, 3
END_STREAM, ACK = 0x1, 0x1


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def hpack_str(s):
    b = s.encode()
    assert len(b) < 127
    return bytes([len(b)]) + b


def h2_get(s, t):
    block = b"\x82\x87"  # :method GET, :scheme https (static table)
    block += b"\x04" + hpack_str(t.path)  # :path, literal without indexing
    block += b"\x01" + hpack_str(f"{t.host}:{t.port}")  # :authority
    for h in t.headers:
        name, value = h.split(":", 1)
        block += b"\x00" + hpack_str(name.strip().lower()) + hpack_str(value.strip())
    s.sendall(PREFACE + frame(SETTINGS, 0, 0) + frame(HEADERS, 0x4 | END_STREAM, 1, block))
    r = Reader(s)
    while True:
        length = int.from_bytes(r.exactly(3), "big")
        kind, flags = r.exactly(2)
        stream = struct.unpack(">I", r.exactly(4))[0] & 0x7FFFFFFF
        payload = r.exactly(length)
        if kind == SETTINGS and not flags & ACK:
            s.sendall(frame(SETTINGS, ACK, 0))
        elif kind == PING and not flags & ACK:
            s.sendall(frame(PING, ACK, 0, payload))
        elif kind in (GOAWAY, RST_STREAM):
            raise RuntimeError(f"h2 frame {kind} from the server")
        elif kind == DATA and length:
            inc = struct.pack(">I", length)
            s.sendall(frame(WINDOW_UPDATE, 0, 0, inc) + frame(WINDOW_UPDATE, 0, 1, inc))
        if stream == 1 and kind in (DATA, HEADERS) and flags & END_STREAM:
            return


# ---------------------------------------------------------------------------


def open_many(t, n):
    conns = []
    for i in range(n):
        try:
            conns.append(t.open())
        except Exception as e:
            raise SystemExit(f"connection {i + 1} of {n}: {e}")
    return conns


STEPS = 10


def slope(samples):
    """Least-squares KiB per connection over (connections, RSS) samples: the growth
    that each connection adds, without the allocator's one-off steps (it maps memory
    in MiB-sized pieces) weighing as much as in the growth / N of a single pair."""
    n = len(samples)
    mx = sum(x for x, _ in samples) / n
    my = sum(y for _, y in samples) / n
    sxx = sum((x - mx) ** 2 for x, _ in samples)
    return sum((x - mx) * (y - my) for x, y in samples) / sxx


def is_closed(s):
    """Whether the server closed the connection (frames it sent since, such as an h2
    SETTINGS acknowledgement, are read and dropped)."""
    s.setblocking(False)
    try:
        while True:
            if not s.recv(65536):
                return True
    except (BlockingIOError, ssl.SSLWantReadError):
        return False
    except OSError:
        return True


def warm(t):
    # Few: the memory of these connections is given back when they close, and the
    # measured ones would reuse it and look cheaper.
    for s in open_many(t, 20):
        s.close()


def measure(a):
    t = Target(a.url, a.proto, a.header, a.silent)
    warm(t)
    time.sleep(0.5)
    before = rss_kib(a.pid)
    t0 = time.monotonic()
    conns, samples = [], [(0, before)]
    for step in range(1, STEPS + 1):
        conns += open_many(t, a.n * step // STEPS - len(conns))
        time.sleep(0.2)  # let the server finish its side of the last answers
        samples.append((len(conns), rss_kib(a.pid)))
    opened = time.monotonic() - t0
    time.sleep(0.8)
    after = rss_kib(a.pid)
    samples[-1] = (a.n, after)
    # Every connection must still be open: a server that closed them would look cheap.
    closed = sum(map(is_closed, conns))
    for s in conns:
        s.close()
    if closed:
        raise SystemExit(f"{closed} of {a.n} connections were closed by the server while idle")
    print(json.dumps({
        "target": a.label, "url": a.url, "proto": a.proto, "silent": a.silent, "n": a.n, "rss_before_kib": before, "rss_after_kib": after,
        "kib_per_conn": round((after - before) / a.n, 2),
        "slope_kib_per_conn": round(slope(samples), 2), "open_seconds": round(opened, 1),
    }))


def hold(a):
    t = Target(a.url, a.proto, a.header)
    conns = open_many(t, a.n)
    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(1))
    print(f"ready {len(conns)}", flush=True)
    deadline = time.monotonic() + a.seconds
    while not stop and time.monotonic() < deadline:
        time.sleep(0.2)
    dropped = sum(map(is_closed, conns))
    print(f"released {len(conns)} ({dropped} closed by the server)", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("measure", "hold"):
        c = sub.add_parser(name)
        c.add_argument("--url", required=True)
        c.add_argument("--n", type=int, default=3000)
        c.add_argument("--proto", choices=["h1", "h2"], default="h1")
        c.add_argument("-H", "--header", action="append", default=[])
        if name == "measure":
            c.add_argument("--pid", type=int, required=True)
            c.add_argument("--label", default="", help="a name for the target, copied to the output")
            c.add_argument("--silent", action="store_true",
                           help="send nothing on the connections (TLS: the handshake only), as a client that "
                                "opens connections and never asks for anything; they must be measured within the "
                                "server's header timeout")
        else:
            c.add_argument("--seconds", type=float, default=600)
    a = p.parse_args()
    measure(a) if a.cmd == "measure" else hold(a)


if __name__ == "__main__":
    main()
