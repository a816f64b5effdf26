#!/usr/bin/python3
"""Independent token maker for tests/jwt_sources.rs: PyJWT + cryptography (Debian's
python3-jwt and python3-cryptography), never the proxy's own code.

Reads a JSON spec on stdin:
  {"keys": {"KID": "RSA" | "EC" | "Ed25519", ...},
   "tokens": {"NAME": {"key": KID, "alg": "RS256", "claims": {...},
                       "kid": KID-or-null (default: key), "mode": MODE, "signer": ARN}, ...}}
MODE: "jwt" (default), "none" (alg none, no signature), "hs_with_public" (HS256 keyed
with the key's public PEM), "tamper" (payload swapped after signing), "alb" (AWS ALB's
format: padded base64url, exp/signer/kid in the header, ES256 r||s signature),
"alb_tamper".
Writes {"jwks": {"keys": [...]}, "pem": {KID: PEM}, "tokens": {NAME: token}}.
"""
import base64
import hashlib
import hmac
import json
import sys

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm


def b64(data, pad=False):
    out = base64.urlsafe_b64encode(data).decode()
    return out if pad else out.rstrip("=")


def part(obj, pad=False):
    return b64(json.dumps(obj, separators=(",", ":")).encode(), pad)


spec = json.load(sys.stdin)
private, jwks, pems = {}, [], {}
for kid, kind in spec.get("keys", {}).items():
    if kind == "RSA":
        key, alg = rsa.generate_private_key(public_exponent=65537, key_size=2048), RSAAlgorithm
    elif kind == "EC":
        key, alg = ec.generate_private_key(ec.SECP256R1()), ECAlgorithm
    elif kind == "Ed25519":
        key, alg = ed25519.Ed25519PrivateKey.generate(), OKPAlgorithm
    else:
        sys.exit(f"unknown key kind {kind}")
    private[kid] = key
    jwk = json.loads(alg.to_jwk(key.public_key()))
    if kind == "EC":
        # PyJWT 2.6 (Debian 12) drops leading zero bytes of x and y, about one key in
        # ninety; RFC 7518 section 6.2.1.2 wants the full 32 bytes, and verifiers refuse
        # the short form.
        numbers = key.public_key().public_numbers()
        jwk["x"] = b64(numbers.x.to_bytes(32, "big"))
        jwk["y"] = b64(numbers.y.to_bytes(32, "big"))
    jwk["kid"] = kid
    jwks.append(jwk)
    pems[kid] = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()

tokens = {}
for name, t in spec.get("tokens", {}).items():
    mode = t.get("mode", "jwt")
    claims = t.get("claims", {})
    key_id = t.get("key")
    kid = t.get("kid", key_id)
    headers = {"kid": kid} if kid is not None else {}
    if mode in ("jwt", "tamper"):
        secret = t.get("secret")
        key = secret.encode() if secret is not None else private[key_id]
        token = jwt.encode(claims, key, algorithm=t["alg"], headers=headers)
        if mode == "tamper":
            h, _, s = token.split(".")
            forged = dict(claims, sub=t.get("tamper_sub", "mallory"))
            token = ".".join([h, part(forged), s])
    elif mode == "none":
        token = part(dict({"alg": "none", "typ": "JWT"}, **headers)) + "." + part(claims) + "."
    elif mode == "hs_with_public":
        # PyJWT refuses a PEM as an HMAC secret (rightly), so this is HMAC by hand.
        head = part(dict({"alg": "HS256", "typ": "JWT"}, **headers)) + "." + part(claims)
        mac = hmac.new(pems[key_id].encode(), head.encode(), hashlib.sha256).digest()
        token = head + "." + b64(mac)
    elif mode in ("alb", "alb_tamper"):
        header = {"typ": "JWT", "kid": kid, "alg": "ES256", "iss": t.get("iss", "https://idp.example.com"),
                  "client": "client-id", "signer": t["signer"], "exp": t["exp"]}
        head = part(header, pad=True) + "." + part(claims, pad=True)
        der = private[key_id].sign(head.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        sig = b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"), pad=True)
        if mode == "alb_tamper":
            head = part(header, pad=True) + "." + part(dict(claims, sub="mallory"), pad=True)
        token = head + "." + sig
    else:
        sys.exit(f"unknown mode {mode}")
    tokens[name] = token

json.dump({"jwks": {"keys": jwks}, "pem": pems, "tokens": tokens}, sys.stdout)
