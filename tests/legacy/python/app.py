#!/usr/bin/env python3
"""A small legacy login app on Python's http.server (stdlib only).

BaseHTTPRequestHandler keeps its default protocol_version, HTTP/1.0: every response
has a Content-Length and the connection closes after it. The page boots Intercom the
insecure way (plain user_id/email, no token).

    python3 app.py PORT

    GET  /login-page            sign-in form
    POST /login (user=NAME)     new session cookie `sid`, 302 to /
    GET|POST /logout            session dropped, `sid` expired, 302 to /login-page
    GET  /api/me                the session's user as JSON, or 401
    GET  /                      dashboard for a user, guest page otherwise
"""
import html
import json
import secrets
import sys
import threading
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

APP_ID = "abc12345"
USERS = {
    "alice": {"id": "u-alice-1001", "email": "alice@example.com", "name": "Alice Liddell"},
    "bob": {"id": "u-bob-2002", "email": "bob@example.org", "name": "Bob Builder"},
}
# The official Intercom loader, as pasted into the app.
LOADER = """(function(){var w=window;var ic=w.Intercom;if(typeof ic==="function"){ic('reattach_activator');ic('update',w.intercomSettings);}else{var d=document;var i=function(){i.c(arguments);};i.q=[];i.c=function(args){i.q.push(args);};w.Intercom=i;var l=function(){var s=d.createElement('script');s.type='text/javascript';s.async=true;s.src='https://widget.intercom.io/widget/abc12345';var x=d.getElementsByTagName('script')[0];x.parentNode.insertBefore(s,x);};if(document.readyState==='complete'){l();}else if(w.attachEvent){w.attachEvent('onload',l);}else{w.addEventListener('load',l,false);}}})();"""

SESSIONS = {}
LOCK = threading.Lock()


def intercom(settings):
    data = dict(api_base="https://api-iam.intercom.io", app_id=APP_ID, **settings)
    js = json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")
    return f"<script>window.intercomSettings = {js};</script>\n<script>{LOADER}</script>\n"


def page(title, head, body):
    rows = "".join(
        f"<tr><td>Invoice #{1000 + n}</td><td>{n * 7 % 100}.00 EUR</td><td>paid</td></tr>\n" for n in range(1, 61)
    )
    t = html.escape(title)
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{t}</title>\n{head}</head>\n'
        f"<body>\n<h1>{t}</h1>\n{body}<table>\n{rows}</table>\n</body>\n</html>\n"
    )


class Handler(BaseHTTPRequestHandler):
    server_version = "LegacyPython/1.0"

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

    def session_id(self):
        cookie = SimpleCookie(self.headers.get("Cookie", ""))
        return cookie["sid"].value if "sid" in cookie else None

    def user(self):
        sid = self.session_id()
        with LOCK:
            name = SESSIONS.get(sid) if sid else None
        return USERS.get(name) if name else None

    def send(self, status, body=b"", content_type="text/html; charset=utf-8", headers=()):
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def form(self):
        n = int(self.headers.get("Content-Length") or 0)
        return parse_qs(self.rfile.read(n).decode("utf-8")) if n else {}

    def route(self):
        url = urlsplit(self.path)
        path = url.path
        if path == "/login-page":
            return self.send(200, page("Sign in", "", '<form action="/login" method="post"><input name="user"><button>Sign in</button></form>\n'))
        if path == "/login":
            fields = self.form() if self.command == "POST" else parse_qs(url.query)
            name = (fields.get("user") or [""])[0]
            if name not in USERS:
                return self.send(403, page("Sign in", "", "<p>Unknown user.</p>\n"))
            sid = secrets.token_hex(16)
            with LOCK:
                SESSIONS[sid] = name
            cookie = f"sid={sid}; Path=/; HttpOnly; SameSite=Lax"
            return self.send(302, "", headers=[("Location", "/"), ("Set-Cookie", cookie)])
        if path == "/logout":
            sid = self.session_id()
            with LOCK:
                SESSIONS.pop(sid, None)
            expired = "sid=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax"
            return self.send(302, "", headers=[("Location", "/login-page"), ("Set-Cookie", expired)])
        if path == "/api/me":
            u = self.user()
            if u is None:
                return self.send(401, '{"error":"not logged in"}', "application/json")
            return self.send(200, json.dumps(u), "application/json")
        if path == "/":
            u = self.user()
            if u is None:
                return self.send(200, page("Welcome", intercom({}), '<p>Hello, visitor. <a href="/login-page">Sign in</a></p>\n'))
            settings = {"user_id": u["id"], "email": u["email"], "name": u["name"]}
            body = f'<p>Hello, {html.escape(u["name"])}. <a href="/logout">Log out</a></p>\n'
            return self.send(200, page("Dashboard", intercom(settings), body))
        return self.send(404, "not found\n", "text/plain")

    do_GET = route
    do_POST = route
    do_HEAD = route


if __name__ == "__main__":
    port = int(sys.argv[1])
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
