#!/usr/bin/env python3
"""The legacy Python app (app.py) without its /api/me: who is logged in shows only on
its HTML account page, /my/details, which the dashboard links to as "My account".

    python3 account_page_app.py PORT

    GET /my/details    the account page (user id in a <meta>, email and name in a
                       <dl>, the name again in the navigation), 302 to /login-page
                       without a session
    GET /api/me        404
    everything else as app.py
"""
import html
import sys
from http.server import ThreadingHTTPServer
from urllib.parse import urlsplit

from app import Handler, intercom, page


class AccountHandler(Handler):
    def route(self):
        path = urlsplit(self.path).path
        if path == "/api/me":
            return self.send(404, "not found\n", "text/plain")
        u = self.user()
        if path == "/my/details":
            if u is None:
                return self.send(302, "", headers=[("Location", "/login-page")])
            e = {k: html.escape(v) for k, v in u.items()}
            head = f'<meta name="user-id" content="{e["id"]}">\n'
            body = (
                f'<nav><span class="who">{e["name"]}</span> <a href="/">Home</a> <a href="/logout">Log out</a></nav>\n'
                f'<main id="account"><h2>Profile</h2>\n<dl><dt>Email</dt><dd>{e["email"]}</dd>'
                f'<dt>Name</dt><dd>{e["name"]}</dd></dl></main>\n'
            )
            return self.send(200, page("Your account", head, body))
        if path == "/" and u is not None:
            settings = {"user_id": u["id"], "email": u["email"], "name": u["name"]}
            body = f'<p>Hello, {html.escape(u["name"])}. <a href="/my/details">My account</a> <a href="/logout">Log out</a></p>\n'
            return self.send(200, page("Dashboard", intercom(settings), body))
        return super().route()

    do_GET = route
    do_POST = route
    do_HEAD = route


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), AccountHandler).serve_forever()
