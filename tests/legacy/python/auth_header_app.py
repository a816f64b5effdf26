#!/usr/bin/env python3
"""An app behind an authenticating proxy: it has no login of its own and boots the
Messenger (the insecure way) with whoever the proxy in front says, in clear headers
(X-Forwarded-User, X-Forwarded-Email, X-Forwarded-Name) or in a signed assertion
(Pomerium's, Cloudflare Access's), whose claims it reads trusting the proxy.

    python3 auth_header_app.py PORT

$ASSERTION_JWKS, when set, is served at /.well-known/pomerium/jwks.json, as Pomerium
answers that path on every route it fronts.
"""
import base64
import html
import json
import os
import sys
from http.server import ThreadingHTTPServer
from urllib.parse import urlsplit

from app import Handler, intercom, page

ASSERTIONS = ("X-Pomerium-Jwt-Assertion", "Cf-Access-Jwt-Assertion")
JWKS = os.environ.get("ASSERTION_JWKS")


class HeaderHandler(Handler):
    def user(self):
        uid = self.headers.get("X-Forwarded-User")
        if uid:
            return {"id": uid, "email": self.headers.get("X-Forwarded-Email"), "name": self.headers.get("X-Forwarded-Name")}
        for name in ASSERTIONS:
            token = self.headers.get(name)
            if token:
                claims = token.split(".")[1]
                claims = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
                return {"id": claims["sub"], "email": claims.get("email"), "name": claims.get("name")}
        return None

    def route(self):
        path = urlsplit(self.path).path
        if path == "/.well-known/pomerium/jwks.json" and JWKS:
            return self.send(200, JWKS, "application/json")
        if path != "/":
            return self.send(404, "not found\n", "text/plain")
        u = self.user()
        if u is None:
            return self.send(200, page("Welcome", intercom({}), "<p>Nobody is signed in.</p>\n"))
        fields = (("user_id", u["id"]), ("email", u["email"]), ("name", u["name"]))
        settings = {k: v for k, v in fields if v}
        return self.send(200, page("Dashboard", intercom(settings), f"<p>Hello, {html.escape(u['name'] or u['id'])}.</p>\n"))

    do_GET = route
    do_POST = route
    do_HEAD = route


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), HeaderHandler).serve_forever()
