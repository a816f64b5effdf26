"""A CGI app that echoes the HTTP_* variables its server set from the request's headers.

tests/header_folding.rs runs it under lighttpd's mod_cgi, which names a header HTTP_ +
its name uppercased with every byte that is not a letter or digit as `_`. The variables
are read from /proc/self/environ, not os.environ, so that two headers folded to one name
both show. The pairs are JSON, hex-encoded so that no value can break out of the page.
"""

import json

with open("/proc/self/environ", "rb") as f:
    entries = [e.decode("latin-1").split("=", 1) for e in f.read().split(b"\0") if e.startswith(b"HTTP_")]

print("Content-Type: text/html; charset=utf-8")
print()
print(
    "<!DOCTYPE html><html><head><title>headers</title>"
    "<script>window.intercomSettings={app_id:'abc12345'};</script></head>"
    '<body><pre id="http-vars">' + json.dumps(entries).encode().hex() + "</pre></body></html>"
)
