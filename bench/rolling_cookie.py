#!/usr/bin/env python3
"""What an app that rewrites its session cookie on every response costs the proxy.

The proxy caches a `current_user_endpoint` answer under a hash of the session cookie's
value, so an app whose every response sets a new value (a rolling signed cookie) makes
every page a cache miss. This starts a small Flask app on loopback in three variants and
the proxy in front of each, logs in, loads PAGES pages one after the other, straight
from the app and through the proxy, and prints how many `/api/me` calls the app got
through the proxy and the mean time per page both ways:

- stable:  `SESSION_REFRESH_EACH_REQUEST = False`: the cookie is set at the login only;
- flask:   Flask's default for permanent sessions: the cookie is re-set on every
           response, its value changing when its timestamp's second does (pages are
           loaded SLOW_GAP apart here, as a person clicks);
- rolling: the session is written on every page (a "last seen" stamp for an idle
           timeout), so every response carries a new value.

Usage: python3 bench/rolling_cookie.py PROXY_BINARY [PAGES]   (needs python3-flask)
"""

import http.client
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

from flask import Flask, jsonify, redirect, session
from werkzeug.serving import make_server

PAGES = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
SLOW_PAGES = 20
SLOW_GAP = 1.1
SECRET = "rolling-cookie-bench-secret"
PAGE = "<!DOCTYPE html><html><head><title>Dashboard</title></head><body>" + "<p>row</p>" * 200 + "</body></html>"


def flask_app(variant, calls):
    app = Flask(variant)
    app.secret_key = "app-secret"
    app.config["SESSION_REFRESH_EACH_REQUEST"] = variant != "stable"

    @app.post("/login")
    def login():
        session.permanent = True
        session["user"] = "u-alice-1001"
        return redirect("/")

    @app.get("/")
    def page():
        if variant == "rolling":
            session["seen"] = time.time()
        return PAGE

    @app.get("/api/me")
    def me():
        calls.append(1)
        if "user" not in session:
            return jsonify(error="not logged in"), 401
        return jsonify(id=session["user"])

    return app


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_proxy(binary, app_port, dir):
    port = free_port()
    config = os.path.join(dir, "proxy.yaml")
    with open(config, "w") as f:
        f.write(
            f'listen: ["127.0.0.1:{port}"]\nupstream:\n  addresses: ["127.0.0.1:{app_port}"]\n'
            f"intercom:\n  app_id: abc12345\n  secret_env: BENCH_SECRET\n"
            f"identity:\n  sources:\n    - type: current_user_endpoint\n      path: /api/me\n      cookies: [session]\n"
            f"log:\n  access: off\n"
        )
    proc = subprocess.Popen([binary, "run", "-c", config], env={**os.environ, "BENCH_SECRET": SECRET},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("the proxy did not start")


class Browser:
    """One keep-alive connection and a cookie jar of one cookie, as a browser keeps it."""

    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port)
        self.cookie = None

    def request(self, method, path):
        headers = {"Accept": "text/html"}
        if self.cookie:
            headers["Cookie"] = self.cookie
        self.conn.request(method, path, headers=headers)
        resp = self.conn.getresponse()
        body = resp.read()
        for value in resp.headers.get_all("Set-Cookie") or []:
            if value.startswith("session="):
                self.cookie = value.split(";", 1)[0]
        return resp.status, body


def load_pages(port, pages, gap):
    """Logs in, then loads the pages; the mean ms per page and how many were signed."""
    browser = Browser(port)
    status, _ = browser.request("POST", "/login")
    assert status == 302, status
    signed, elapsed = 0, 0.0
    for _ in range(pages):
        if gap:
            time.sleep(gap)
        started = time.perf_counter()
        status, body = browser.request("GET", "/")
        elapsed += time.perf_counter() - started
        assert status == 200, status
        signed += b'"j":"' in body
    return elapsed / pages * 1000, signed


def measure(binary, variant, pages, gap):
    """The app's `/api/me` calls through the proxy, the pages signed, and ms per page
    through the proxy and straight from the app."""
    calls = []
    server = make_server("127.0.0.1", 0, flask_app(variant, calls), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as dir:
        proxy, port = start_proxy(binary, server.server_port, dir)
        try:
            direct, _ = load_pages(server.server_port, pages, gap)
            through, signed = load_pages(port, pages, gap)
            return len(calls), signed, through, direct
        finally:
            proxy.kill()
            proxy.wait()
            server.shutdown()


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    binary = sys.argv[1]
    print(f"{'variant':8} {'pages':>6} {'/api/me calls':>14} {'per page':>9} {'signed':>7} {'ms/page':>8} {'direct':>7}")
    for variant, pages, gap in [("stable", PAGES, 0), ("flask", SLOW_PAGES, SLOW_GAP), ("rolling", PAGES, 0)]:
        calls, signed, through, direct = measure(binary, variant, pages, gap)
        print(f"{variant:8} {pages:6} {calls:14} {calls / pages:9.2f} {signed:7} {through:8.2f} {direct:7.2f}")


if __name__ == "__main__":
    main()
