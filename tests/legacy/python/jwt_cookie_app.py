#!/usr/bin/env python3
"""The legacy Python app (app.py) with its session in a JWT cookie instead of a
server-side session, and no /api/me: who is logged in is only in the token the app
signs into its cookie.

    python3 jwt_cookie_app.py PORT MODE

MODE:
  hs256     cookie `session`: HS256, keyed with $APP_JWT_SECRET (stdlib hmac)
  rs256     cookie `session`: RS256 (PyJWT + cryptography), its key at /.well-known/jwks.json
  es256     cookie `session`: ES256, its key at the jwks_uri of /.well-known/openid-configuration
  supabase  Supabase's SSR cookies `sb-127-auth-token.0`, `.1`, ...: `base64-` + the
            session JSON, whose access_token is HS256, keyed with $APP_JWT_SECRET

RS256 and ES256 need PyJWT and cryptography (Debian's python3-jwt, python3-cryptography).

    GET  /login-page            sign-in form
    POST /login (user=NAME)     the signed session cookie(s), 302 to /
    GET|POST /logout            the cookie(s) expired, 302 to /login-page
    GET  /                      dashboard for a user, guest page otherwise
"""
import base64
import hashlib
import hmac
import json
import os
import sys
import time
from http.cookies import SimpleCookie
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from app import USERS, Handler

PORT = int(sys.argv[1])
MODE = sys.argv[2]
ORIGIN = f"http://127.0.0.1:{PORT}"
AUDIENCE = "legacy-app"
SUPABASE = "sb-127-auth-token"
# Small chunks, so that the session spans several cookies as a long one does at Supabase.
CHUNK = 200


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hs256(claims, key):
    signing = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + b64(json.dumps(claims).encode())
    return signing + "." + b64(hmac.new(key, signing.encode(), hashlib.sha256).digest())


def hs256_claims(token, key):
    signing, _, signature = token.rpartition(".")
    if not hmac.compare_digest(b64(hmac.new(key, signing.encode(), hashlib.sha256).digest()), signature):
        return None
    claims = json.loads(unb64(signing.split(".")[1]))
    return claims if claims.get("exp", 0) > time.time() else None


class Keys:
    """The app's own key pair for RS256 or ES256, made at start."""

    def __init__(self, alg):
        import jwt
        from cryptography.hazmat.primitives.asymmetric import ec, rsa
        from jwt.algorithms import ECAlgorithm, RSAAlgorithm

        self.jwt, self.alg, self.kid = jwt, alg, f"legacy-{alg.lower()}-1"
        if alg == "RS256":
            self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        else:
            self.key = ec.generate_private_key(ec.SECP256R1())
            jwk = json.loads(ECAlgorithm.to_jwk(self.key.public_key()))
            # PyJWT 2.6 drops leading zero bytes of x and y; RFC 7518 wants all 32.
            numbers = self.key.public_key().public_numbers()
            jwk["x"] = b64(numbers.x.to_bytes(32, "big"))
            jwk["y"] = b64(numbers.y.to_bytes(32, "big"))
        jwk.update(kid=self.kid, alg=alg, use="sig")
        self.jwks = json.dumps({"keys": [jwk]})

    def sign(self, claims):
        return self.jwt.encode(claims, self.key, algorithm=self.alg, headers={"kid": self.kid})

    def claims(self, token):
        try:
            return self.jwt.decode(token, self.key.public_key(), algorithms=[self.alg], audience=AUDIENCE, issuer=ORIGIN)
        except self.jwt.PyJWTError:
            return None


KEYS = Keys(MODE.upper()) if MODE in ("rs256", "es256") else None
SECRET = os.environ.get("APP_JWT_SECRET", "").encode()


def claims_for(u):
    now = int(time.time())
    claims = {"sub": u["id"], "email": u["email"], "iat": now, "exp": now + 3600}
    if MODE == "supabase":
        claims.update(aud="authenticated", role="authenticated", iss=ORIGIN + "/auth/v1", user_metadata={"full_name": u["name"]})
    else:
        claims["name"] = u["name"]
    if KEYS:
        claims.update(iss=ORIGIN, aud=AUDIENCE)
    return claims


class JwtHandler(Handler):
    def cookies(self):
        jar = SimpleCookie(self.headers.get("Cookie", ""))
        return {name: morsel.value for name, morsel in jar.items()}

    def user(self):
        jar = self.cookies()
        if MODE == "supabase":
            joined = "".join(jar.get(f"{SUPABASE}.{i}", "") for i in range(16))
            if not joined.startswith("base64-"):
                return None
            try:
                token = json.loads(unb64(joined[len("base64-"):]))["access_token"]
            except (ValueError, KeyError):
                return None
        else:
            token = jar.get("session")
        if not token:
            return None
        claims = KEYS.claims(token) if KEYS else hs256_claims(token, SECRET)
        if not claims:
            return None
        name = claims.get("name") or claims.get("user_metadata", {}).get("full_name")
        return {"id": claims["sub"], "email": claims["email"], "name": name}

    def session_cookies(self, u):
        """The Set-Cookie values that log `u` in."""
        attrs = "Path=/; HttpOnly; SameSite=Lax"
        if MODE == "supabase":
            session = json.dumps({"access_token": hs256(claims_for(u), SECRET), "token_type": "bearer", "refresh_token": b64(os.urandom(12))})
            value = "base64-" + b64(session.encode())
            chunks = [value[i : i + CHUNK] for i in range(0, len(value), CHUNK)]
            return [f"{SUPABASE}.{i}={chunk}; {attrs}" for i, chunk in enumerate(chunks)]
        token = KEYS.sign(claims_for(u)) if KEYS else hs256(claims_for(u), SECRET)
        return [f"session={token}; {attrs}"]

    def route(self):
        url = urlsplit(self.path)
        path = url.path
        if path == "/login":
            fields = self.form() if self.command == "POST" else parse_qs(url.query)
            u = USERS.get((fields.get("user") or [""])[0])
            if u is None:
                return self.send(403, "unknown user\n", "text/plain")
            return self.send(302, "", headers=[("Location", "/")] + [("Set-Cookie", c) for c in self.session_cookies(u)])
        if path == "/logout":
            expired = "=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax"
            names = [n for n in self.cookies() if n == "session" or n.startswith(SUPABASE + ".")]
            return self.send(302, "", headers=[("Location", "/login-page")] + [("Set-Cookie", n + expired) for n in names])
        if path == "/api/me":
            # No current-user endpoint: the token is where the app keeps who is logged in.
            return self.send(404, "not found\n", "text/plain")
        if MODE == "rs256" and path == "/.well-known/jwks.json":
            return self.send(200, KEYS.jwks, "application/json")
        if MODE == "es256" and path == "/.well-known/openid-configuration":
            return self.send(200, json.dumps({"issuer": ORIGIN, "jwks_uri": ORIGIN + "/oauth/keys"}), "application/json")
        if MODE == "es256" and path == "/oauth/keys":
            return self.send(200, KEYS.jwks, "application/json")
        return super().route()

    do_GET = route
    do_POST = route
    do_HEAD = route


if __name__ == "__main__":
    if MODE not in ("hs256", "rs256", "es256", "supabase"):
        sys.exit(f"unknown mode {MODE}")
    if MODE in ("hs256", "supabase") and not SECRET:
        sys.exit("set APP_JWT_SECRET")
    ThreadingHTTPServer(("127.0.0.1", PORT), JwtHandler).serve_forever()
