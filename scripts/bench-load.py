#!/usr/bin/env python3
"""Helpers of scripts/bench-load.sh (not meant to be run by hand).

  big-page SRC OUT SIZE         write SRC's head + its body content repeated, SIZE bytes
  check-secure UPSTREAM PROXIED SECRET
                                the proxied page is the upstream page plus exactly one
                                injected script carrying a valid HS256 token
  record-wrk FILE key=value...  parse wrk output, print one JSON result line
  record-rate FILE key=value... wrap loadgen's JSON, print one JSON result line
  median RESULTS PAGE CONNS TARGET
                                median req/s of closed-loop runs
  table RESULTS META            print the comparison table and the targets
  tls-table TLS CLK_TCK         the TLS + HTTP/2 rows
  memory-table MEMORY           KiB per idle keep-alive connection, per target
  idle-busy-table RESULTS META  busy load beside idle connections, against a twin without
  chart RESULTS TLS CLK_TCK MEMORY OUT.svg SUBTITLE
                                draw req/s, CPU per request and memory per connection
"""

import base64
import hashlib
import hmac
import json
import os
import re
import statistics
import sys


def die(msg):
    print(f"bench-load: {msg}", file=sys.stderr)
    sys.exit(1)


# ---------------------------------------------------------------------------
# Inputs


def big_page(src, out, size):
    size = int(size)
    page = open(src, "rb").read()
    body_tag = re.search(rb"<body[^>]*>", page, re.I)
    end_body = page.lower().rfind(b"</body>")
    if not body_tag or end_body < body_tag.end():
        die(f"{src}: no <body>…</body>")
    head = page[: body_tag.end()]
    content = page[body_tag.end() : end_body]
    tail = b"</body></html>\n"
    parts = [head]
    total = len(head) + len(tail)
    while total + len(content) <= size:
        parts.append(content)
        total += len(content)
    # Pad to the exact size with a comment, then close the document.
    pad = size - total
    if pad >= 7:
        parts.append(b"<!--" + b" " * (pad - 7) + b"-->")
    elif pad > 0:
        parts.append(b"\n" * pad)
    parts.append(tail)
    data = b"".join(parts)
    assert len(data) == size, (len(data), size)
    open(out, "wb").write(data)


def b64u_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def check_secure(upstream, proxied, secret):
    up = open(upstream, "rb").read()
    got = open(proxied, "rb").read()
    marker = got.find(b'"j":"eyJ')
    if marker < 0:
        die(f'{proxied}: no "j":"eyJ token in the proxied page')
    start = got.rfind(b"<script", 0, marker)
    extra = len(got) - len(up)
    script = got[start : start + extra]
    if start < 0 or extra <= 0 or not script.endswith(b"</script>"):
        die(f"{proxied}: the injected script is not one <script> element")
    if got[:start] + got[start + extra :] != up:
        die(f"{proxied}: bytes outside the injected script differ from the upstream page")
    token = got[marker + 5 : got.index(b'"', marker + 5)].decode()
    head, claims, sig = token.split(".")
    want = hmac.new(secret.encode(), f"{head}.{claims}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(want, b64u_decode(sig)):
        die(f"{proxied}: token signature does not verify with the bench secret")
    c = json.loads(b64u_decode(claims))
    if c.get("user_id") != "bench-user" or c.get("email") != "bench@example.com":
        die(f"{proxied}: unexpected claims {c}")
    print(f"script of {extra} bytes at offset {start}, token claims {sorted(c)}")


# ---------------------------------------------------------------------------
# Results


def kv(args):
    out = {}
    for a in args:
        k, v = a.split("=", 1)
        try:
            out[k] = int(v)
        except ValueError:
            try:
                out[k] = float(v)
            except ValueError:
                out[k] = v
    return out


def cpu_and_rss(r):
    ticks = r.pop("cpu_ticks", None)
    hz = r.pop("clk_tck", 100)
    r["cpu_s"] = ticks / hz if isinstance(ticks, (int, float)) and ticks >= 0 else None
    hwm = r.pop("hwm_kib", None)
    r["rss_mib"] = hwm / 1024 if isinstance(hwm, (int, float)) and hwm > 0 else None


def record_wrk(path, args):
    text = open(path, encoding="utf-8", errors="replace").read()
    r = {"kind": "closed", **kv(args)}
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", text)
    rps = re.search(r"Requests/sec:\s*([\d.]+)", text)
    if not m or not rps:
        die(f"cannot parse wrk output:\n{text}")
    r["requests"] = int(m.group(1))
    r["rps"] = float(rps.group(1))
    errors = 0
    non2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
    if non2xx:
        errors += int(non2xx.group(1))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if sock:
        errors += sum(int(x) for x in sock.groups())
    r["errors"] = errors
    cpu_and_rss(r)
    print(json.dumps(r))


def record_rate(path, args):
    text = open(path, encoding="utf-8").read().strip().splitlines()
    if not text:
        die(f"{path}: loadgen printed nothing")
    g = json.loads(text[-1])
    r = {"kind": "fixed", **kv(args)}
    r["requests"] = g["requests"]
    r["rps"] = g["achieved_rate"]
    r["target_rate"] = g["target_rate"]
    r["errors"] = g["non_2xx"] + g["io_errors"] + g["unsent"]
    # The server's CPU was read around the whole run, warm-up included.
    r["cpu_requests"] = g["served_total"]
    for k in ("p50_ms", "p99_ms", "p999_ms", "max_ms"):
        r[k] = g[k]
    cpu_and_rss(r)
    print(json.dumps(r))


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def median_rps(path, page, conns, target):
    rows = [r["rps"] for r in load(path) if r["kind"] == "closed" and r["page"] == page
            and r["conns"] == int(conns) and r["target"] == target]
    if not rows:
        die(f"no closed-loop result for {target} on {page} at {conns} connections")
    print(f"{statistics.median(rows):.0f}")


TARGETS = ["ours-secure", "ours-passthrough", "pingora-bare", "nginx-plain", "nginx-njs"]


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def table(path, meta_path):
    rows = load(path)
    meta = json.load(open(meta_path))
    groups = {}
    for r in rows:
        key = (r["page"], r["kind"], r["conns"], r["target"])
        groups.setdefault(key, []).append(r)

    summary = {}
    for key, runs in groups.items():
        rps = [r["rps"] for r in runs]
        per_k = [r["cpu_s"] / r.get("cpu_requests", r["requests"]) * 1000
                 for r in runs if r.get("cpu_s") is not None and r.get("cpu_requests", r["requests"])]
        s = {
            "n": len(runs),
            "rps": med(rps),
            "spread": (max(rps) - min(rps)) / statistics.median(rps) * 100 if len(rps) > 1 and statistics.median(rps) else None,
            "cpu_per_k": med(per_k),
            "rss": max((r["rss_mib"] for r in runs if r.get("rss_mib")), default=None),
            "errors": sum(r.get("errors", 0) for r in runs),
        }
        if key[1] == "fixed":
            s["target_rate"] = runs[0]["target_rate"]
            for k in ("p50_ms", "p99_ms", "p999_ms"):
                s[k] = med([r.get(k) for r in runs])
        summary[key] = s

    pages = []
    for r in rows:
        if r["page"] not in pages:
            pages.append(r["page"])
    headers = ["page", "load", "target", "req/s", "±%", "p50 ms", "p99 ms", "p99.9 ms",
               "CPU s/1k req", "peak RSS MiB", "errors", "secure/njs", "secure/pass"]
    lines = []
    for page in pages:
        for kind in ("closed", "fixed"):
            conns = sorted({k[2] for k in summary if k[0] == page and k[1] == kind})
            for c in conns:
                for t in TARGETS:
                    s = summary.get((page, kind, c, t))
                    if not s:
                        continue
                    load_label = f"{c}c closed" if kind == "closed" else f"{c}c @{s['target_rate']:.0f}/s"
                    ratio_njs = ratio_pass = ""
                    if t == "ours-secure":
                        njs = summary.get((page, kind, c, "nginx-njs"))
                        pas = summary.get((page, kind, c, "ours-passthrough"))
                        if kind == "closed":
                            if njs and njs["rps"]:
                                ratio_njs = f"{s['rps'] / njs['rps']:.2f}x"
                            if pas and pas["rps"]:
                                ratio_pass = f"{s['rps'] / pas['rps']:.2f}x"
                        else:
                            if njs and njs.get("p99_ms"):
                                ratio_njs = f"{s['p99_ms'] / njs['p99_ms']:.2f}x p99"
                            if pas and pas.get("p99_ms"):
                                ratio_pass = f"{s['p99_ms'] / pas['p99_ms']:.2f}x p99"
                    lines.append([
                        page, load_label, t, fmt(s["rps"], ".0f"), fmt(s["spread"], ".0f"),
                        fmt(s.get("p50_ms"), ".2f"), fmt(s.get("p99_ms"), ".2f"), fmt(s.get("p999_ms"), ".2f"),
                        fmt(s["cpu_per_k"], ".3f"), fmt(s["rss"], ".1f"), str(s["errors"]), ratio_njs, ratio_pass,
                    ])
    widths = [max(len(h), *(len(l[i]) for l in lines)) for i, h in enumerate(headers)]
    numeric = set(range(3, 13))

    def show(cells):
        return "  ".join(c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    print(show(headers))
    print("  ".join("-" * w for w in widths))
    last_page = None
    for l in lines:
        if last_page is not None and l[0] != last_page:
            print()
        last_page = l[0]
        print(show(l))
    print()
    print(f"req/s: median of {meta['repeats']} run(s) ({meta['duration']} s closed-loop wrk, "
          f"{meta['rate_duration']} s fixed-rate loadgen); ±%: (max-min)/median of req/s.")
    print("Fixed-rate rows: open-loop at half the nginx-njs closed-loop peak of that page at "
          f"{meta['rate_conns']} connections; latency from the scheduled send time; req/s = achieved rate; "
          "ratios there are of p99.")
    print("CPU: utime+stime of the server process (nginx: its worker) per 1000 requests. Peak RSS: VmHWM "
          "during the run, reset to the current RSS before each run (so memory the allocator kept from "
          "earlier runs of the same process still counts).")

    # Targets.
    print()
    print("Targets")
    results = []

    def verdict(ok):
        return "    " if ok is None else "PASS" if ok else "MISS"

    def closed(page, c, t):
        return summary.get((page, "closed", c, t))

    for page in pages:
        if page != "app.html":
            continue
        for c in sorted({k[2] for k in summary if k[0] == page and k[1] == "closed"}):
            sec, njs = closed(page, c, "ours-secure"), closed(page, c, "nginx-njs")
            if sec and njs and njs["rps"]:
                r = sec["rps"] / njs["rps"]
                results.append((r >= 1.25, f"ours-secure >= 1.25x nginx-njs req/s, {page}, {c}c: "
                                f"{sec['rps']:.0f} vs {njs['rps']:.0f} = {r:.2f}x"))
                # What forwarding alone reaches, with our code and with none.
                floors = [(t, closed(page, c, t)) for t in ("ours-passthrough", "pingora-bare")]
                shown = [f"{t} {f['rps'] / njs['rps']:.2f}x" for t, f in floors if f and f["rps"]]
                if shown:
                    results.append((None, "  forwarding alone: " + ", ".join(shown)))
    for page in pages:
        for c in sorted({k[2] for k in summary if k[0] == page and k[1] == "closed"}):
            sec, pas = closed(page, c, "ours-secure"), closed(page, c, "ours-passthrough")
            if sec and pas and pas["rps"]:
                r = sec["rps"] / pas["rps"]
                results.append((r >= 0.95, f"ours-secure >= 0.95x ours-passthrough req/s, {page}, {c}c: "
                                f"{sec['rps']:.0f} vs {pas['rps']:.0f} = {r:.2f}x"))
    for page in pages:
        if page != "app.html":
            continue
        for c in sorted({k[2] for k in summary if k[0] == page and k[1] == "closed"}):
            sec, pas = closed(page, c, "ours-secure"), closed(page, c, "ours-passthrough")
            if sec and pas and sec["cpu_per_k"] and pas["cpu_per_k"]:
                r = sec["cpu_per_k"] / pas["cpu_per_k"]
                results.append((r <= 1.15, f"ours-secure CPU per request <= 1.15x ours-passthrough, {page}, {c}c: "
                                f"{sec['cpu_per_k'] * 1000:.1f} vs {pas['cpu_per_k'] * 1000:.1f} ms/1000 req = {r:.2f}x"))
    for page in pages:
        for c in sorted({k[2] for k in summary if k[0] == page and k[1] == "fixed"}):
            sec = summary.get((page, "fixed", c, "ours-secure"))
            njs = summary.get((page, "fixed", c, "nginx-njs"))
            for key, name in (("p99_ms", "p99"), ("p999_ms", "p99.9")):
                if sec and njs and sec.get(key) is not None and njs.get(key) is not None:
                    results.append((sec[key] <= njs[key],
                                    f"{name} at half the nginx-njs peak ({sec['target_rate']:.0f}/s, {c}c), {page}: "
                                    f"ours-secure {sec[key]:.2f} ms vs nginx-njs {njs[key]:.2f} ms"))
    idle = meta.get("idle_rss_mib", {})
    if "ours-secure" in idle:
        results.append((idle["ours-secure"] < 32,
                        f"idle RSS < 32 MiB: ours-secure {idle['ours-secure']:.1f} MiB"
                        + (f" (ours-passthrough {idle['ours-passthrough']:.1f} MiB)" if "ours-passthrough" in idle else "")))
    for ok, text in results:
        print(f"  {verdict(ok)}  {text}")
    errors = sum(s["errors"] for s in summary.values())
    if errors:
        print(f"\nWARNING: {errors} failed requests in total (see the errors column)")


def tls_table(path, clk_tck):
    """The TLS+h2 rows: lines of `target rep req/s done ok failed cpu_ticks`."""
    rows = {}
    for line in open(path):
        t, _rep, rps, done, ok, failed, ticks = line.split()
        r = rows.setdefault(t, {"rps": [], "cpu": [], "failed": 0})
        r["rps"].append(float(rps))
        r["failed"] += int(failed) + int(done) - int(ok)
        # ms of CPU per 1000 requests, as in the main table
        r["cpu"].append(int(ticks) / int(clk_tck) * 1e6 / max(int(done), 1))
    print(f"{'target':<18}{'req/s':>9}{'CPU ms/1000 req':>18}{'failed':>8}")
    for t, r in rows.items():
        print(f"{t:<18}{med(r['rps']):>9.0f}{med(r['cpu']):>18.1f}{r['failed']:>8}")
    if "ours-secure-tls" in rows and "nginx-njs-tls" in rows:
        ratio = med(rows["ours-secure-tls"]["rps"]) / med(rows["nginx-njs-tls"]["rps"])
        print(f"ours-secure-tls / nginx-njs-tls req/s: {ratio:.2f}x")



# ---------------------------------------------------------------------------
# Memory per idle connection, and busy load beside idle connections

MEMORY_TARGETS = {  # label: (what it is, target KiB or None)
    "ours-secure": ("ours, Secure Mode, HTTP/1.1", 8),
    "ours-passthrough": ("ours, --passthrough, HTTP/1.1", 8),
    "ours-secure-tls": ("ours, Secure Mode, TLS + HTTP/1.1", 32),
    "ours-secure-tls-h2": ("ours, Secure Mode, TLS + h2", 32),
    "pingora-bare": ("bare Pingora, HTTP/1.1", None),
    "nginx-plain": ("nginx, HTTP/1.1", None),
    "nginx-njs": ("nginx+njs, HTTP/1.1", None),
    "nginx-njs-tls": ("nginx+njs, TLS + HTTP/1.1", None),
    "nginx-njs-tls-h2": ("nginx+njs, TLS + h2", None),
}


def memory_table(path):
    rows = load(path)
    print("Memory: an idle keep-alive connection (opened, answered once with app.html, left open)")
    print(f"{'target':<20}{'what':<34}{'conns':>7}{'growth/N':>10}{'slope':>8}{'per GiB':>11}  target (slope)")
    for r in rows:
        what, goal = MEMORY_TARGETS.get(r["target"], ("", None))
        per, fit = r["kib_per_conn"], r.get("slope_kib_per_conn", r["kib_per_conn"])
        worst = max(per, fit)
        per_gib = f"{1024 * 1024 / worst:,.0f}" if worst > 0.05 else "-"
        verdict = "" if goal is None else f"{'PASS' if fit <= goal else 'MISS'} <= {goal} KiB"
        print(f"{r['target']:<20}{what:<34}{r['n']:>7}{per:>10.1f}{fit:>8.1f}{per_gib:>11}  {verdict}")
    print("KiB per connection. growth/N: the serving process's RSS growth / connections; slope: least-squares "
          "growth per connection over ten samples (without the allocator's one-off steps of a few MiB, which "
          "growth/N spreads over the connections). per GiB: idle connections a GiB holds at the larger of the "
          "two. nginx: a fresh worker per target, before the load runs; ours and bare Pingora: fresh processes.")


def idle_busy_table(path, meta_path):
    rows = load(path)
    meta = json.load(open(meta_path))
    by = {}
    for r in rows:
        by.setdefault(r["target"], []).append(r)
    stats = {}
    for t, runs in by.items():
        stats[t] = {
            "rps": med([r["rps"] for r in runs]),
            "cpu": med([r["cpu_s"] / r["requests"] * 1e6 for r in runs if r.get("cpu_s") is not None and r["requests"]]),
            "rss": max((r["rss_mib"] for r in runs if r.get("rss_mib")), default=None),
            "errors": sum(r.get("errors", 0) for r in runs),
        }
    n = meta["idle"]
    print(f"Idle plus busy: {n} idle keep-alive connections held on ours-with-idle while wrk drives 32 busy "
          f"ones (app.html, Secure Mode), against a twin process without idle connections, interleaved, "
          f"medians of {len(rows) // max(len(by), 1)}")
    print(f"{'target':<20}{'req/s':>9}{'CPU ms/1000 req':>18}{'peak RSS MiB':>14}{'errors':>8}")
    for t in ("ours-with-idle", "ours-without-idle"):
        s = stats.get(t)
        if s:
            print(f"{t:<20}{fmt(s['rps'], '.0f'):>9}{fmt(s['cpu'], '.1f'):>18}{fmt(s['rss'], '.1f'):>14}{s['errors']:>8}")
    rss_idle = meta["rss_idle_kib"] / 1024
    print(f"RSS of ours-with-idle: {meta['rss_empty_kib'] / 1024:.1f} MiB before the idle connections, "
          f"{rss_idle:.1f} MiB with them ({(meta['rss_idle_kib'] - meta['rss_empty_kib']) / n:.1f} KiB each)")
    w, wo = stats.get("ours-with-idle"), stats.get("ours-without-idle")
    if w and wo and wo["rps"] and wo["cpu"]:
        r_rps, r_cpu = w["rps"] / wo["rps"], w["cpu"] / wo["cpu"]
        print(f"  {'PASS' if r_rps >= 0.95 else 'MISS'}  busy req/s with {n} idle within 5% of without: {r_rps:.2f}x")
        print(f"  {'PASS' if r_cpu <= 1.05 else 'MISS'}  busy CPU per request with {n} idle within 5% of without: {r_cpu:.2f}x")
    peak = max(rss_idle, (w or {}).get("rss") or 0)
    print(f"  {'PASS' if peak < 250 else 'MISS'}  total RSS with {n} idle connections under load < 250 MiB: {peak:.1f} MiB")


# ---------------------------------------------------------------------------
# Chart (SVG, no dependencies)

CHART_COLORS = {
    "ours-secure": "#1f6feb", "ours-passthrough": "#79b8ff", "pingora-bare": "#8250df",
    "nginx-plain": "#9a6700", "nginx-njs": "#d4a72c",
    "ours-secure-tls": "#1f6feb", "nginx-njs-tls": "#d4a72c",
    "ours-secure-tls-h2": "#0a3069", "nginx-njs-tls-h2": "#7d4e00",
}


def esc(text):
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def bar_panel(out, x0, y0, width, height, title, groups, series, unit, fmt_spec):
    """Grouped vertical bars: groups = [(label, {series: value})]; series = [names]."""
    out.append(f'<text x="{x0}" y="{y0 - 8}" class="t">{esc(title)}</text>')
    values = [v for _, vals in groups for v in vals.values() if v is not None]
    top = max(values, default=1) * 1.15 or 1
    base = y0 + height
    out.append(f'<line x1="{x0}" y1="{base}" x2="{x0 + width}" y2="{base}" class="axis"/>')
    for i in range(5):
        v = top * i / 4
        y = base - height * i / 4
        out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x0 + width}" y2="{y:.1f}" class="grid"/>')
        out.append(f'<text x="{x0 - 4}" y="{y + 3:.1f}" class="y">{v:{fmt_spec}}</text>')
    out.append(f'<text x="{x0 - 4}" y="{y0 - 8}" class="y">{esc(unit)}</text>')
    gw = width / max(len(groups), 1)
    bw = gw * 0.8 / max(len(series), 1)
    for gi, (label, vals) in enumerate(groups):
        gx = x0 + gi * gw + gw * 0.1
        for si, name in enumerate(series):
            v = vals.get(name)
            if v is None:
                continue
            h = height * v / top
            x = gx + si * bw
            out.append(f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{bw - 1:.1f}" height="{h:.1f}" '
                       f'fill="{CHART_COLORS.get(name, "#888")}"><title>{esc(name)} {esc(label)}: {v:{fmt_spec}} {esc(unit)}</title></rect>')
            if len(series) * len(groups) <= 24:
                out.append(f'<text x="{x + bw / 2:.1f}" y="{base - h - 3:.1f}" class="v">{v:{fmt_spec}}</text>')
        out.append(f'<text x="{gx + gw * 0.4:.1f}" y="{base + 14}" class="x">{esc(label)}</text>')


def legend(out, x, y, names):
    for i, name in enumerate(names):
        out.append(f'<rect x="{x}" y="{y + i * 16}" width="11" height="11" fill="{CHART_COLORS.get(name, "#888")}"/>')
        out.append(f'<text x="{x + 16}" y="{y + i * 16 + 10}" class="l">{esc(name)}</text>')


def chart(results_path, tls_path, clk_tck, memory_path, out_path, subtitle):
    rows = [r for r in load(results_path) if r["kind"] == "closed"]
    pages = []
    for r in rows:
        if r["page"] not in pages:
            pages.append(r["page"])
    series = [t for t in TARGETS if any(r["target"] == t for r in rows)]
    cells = {}
    for r in rows:
        c = cells.setdefault((r["page"], r["conns"], r["target"]), {"rps": [], "cpu": []})
        c["rps"].append(r["rps"])
        if r.get("cpu_s") is not None and r["requests"]:
            c["cpu"].append(r["cpu_s"] / r["requests"] * 1e6)
    tls = {}
    if os.path.exists(tls_path):
        for line in open(tls_path):
            t, _rep, rps, done, _ok, _failed, ticks = line.split()
            d = tls.setdefault(t, {"rps": [], "cpu": []})
            d["rps"].append(float(rps))
            d["cpu"].append(int(ticks) / int(clk_tck) * 1e6 / max(int(done), 1))
    memory = load(memory_path) if os.path.exists(memory_path) else []

    width, panel_h, left = 1100, 170, 70
    out = []
    y = 60
    for page in pages:
        conns = sorted({k[1] for k in cells if k[0] == page})
        for metric, title, unit, spec in (("rps", "req/s (more is better)", "req/s", ".0f"),
                                          ("cpu", "CPU per 1000 requests (less is better)", "ms", ".0f")):
            groups = [(f"{c} conn", {t: med(cells[(page, c, t)][metric]) for t in series if (page, c, t) in cells})
                      for c in conns]
            if metric == "rps" and page == "app.html" and tls:
                groups.append(("TLS+h2 32", {t.replace("-tls", ""): med(d["rps"]) for t, d in tls.items()}))
            if metric == "cpu" and page == "app.html" and tls:
                groups.append(("TLS+h2 32", {t.replace("-tls", ""): med(d["cpu"]) for t, d in tls.items()}))
            bar_panel(out, left, y + 20, width - left - 190, panel_h, f"{page}: {title}", groups, series, unit, spec)
            y += panel_h + 70
    legend(out, width - 170, 80, series)
    if memory:
        names = [r["target"] for r in memory]
        bar_h = 18
        top = max(r["kib_per_conn"] for r in memory) * 1.1 or 1
        out.append(f'<text x="{left}" y="{y + 12}" class="t">KiB per idle keep-alive connection (less is better; '
                   f'RSS growth / connections)</text>')
        y += 24
        span = width - left - 340
        for i, r in enumerate(memory):
            w = span * r["kib_per_conn"] / top
            yy = y + i * (bar_h + 6)
            color = CHART_COLORS.get(r["target"], "#888")
            out.append(f'<text x="{left + 150}" y="{yy + 13}" class="y">{esc(r["target"])}</text>')
            out.append(f'<rect x="{left + 156}" y="{yy}" width="{max(w, 1):.1f}" height="{bar_h}" fill="{color}"/>')
            per_gib = f", {1024 * 1024 / r['kib_per_conn']:,.0f} per GiB" if r["kib_per_conn"] > 0.05 else ""
            out.append(f'<text x="{left + 160 + w:.1f}" y="{yy + 13}" class="l">{r["kib_per_conn"]:.1f} KiB{per_gib}</text>')
        y += len(names) * (bar_h + 6) + 20
    height = y + 10
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
           'font-family="sans-serif">',
           '<style>.t{font-size:14px;font-weight:bold}.y{font-size:10px;text-anchor:end;fill:#444}'
           '.x{font-size:11px;text-anchor:middle}.v{font-size:9px;text-anchor:middle;fill:#333}'
           '.l{font-size:11px}.axis{stroke:#333}.grid{stroke:#ddd}</style>',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="24" font-size="17" font-weight="bold">make bench-load: one worker thread each, 2 cores</text>',
           f'<text x="{left}" y="42" font-size="11" fill="#555">{esc(subtitle)}; medians of the interleaved runs</text>']
    svg += out
    svg.append("</svg>")
    with open(out_path, "w") as f:
        f.write("\n".join(svg) + "\n")


def main():
    if len(sys.argv) < 2:
        die(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "big-page":
        big_page(*args)
    elif cmd == "check-secure":
        check_secure(*args)
    elif cmd == "record-wrk":
        record_wrk(args[0], args[1:])
    elif cmd == "record-rate":
        record_rate(args[0], args[1:])
    elif cmd == "median":
        median_rps(*args)
    elif cmd == "table":
        table(*args)
    elif cmd == "tls-table":
        tls_table(*args)
    elif cmd == "memory-table":
        memory_table(*args)
    elif cmd == "idle-busy-table":
        idle_busy_table(*args)
    elif cmd == "chart":
        chart(*args)
    else:
        die(f"unknown command {cmd}\n{__doc__}")


if __name__ == "__main__":
    main()
