#!/usr/bin/env python3
"""results/PEERS.md from the results compare.sh wrote (usage: table.py OUT_DIR "FLAGS" [CHARTS_DIR]).

Per transport, one row per target: wire bytes per delivered message (up + down, TCP/IP headers
left out as in the main report), latency p50 and p99, server CPU per delivery, server memory per
open connection (RSS growth, or pushlab-server's own figure), errors, lost, and each figure's
ratio to pushlab-server's; with CHARTS_DIR, two SVG charts (CPU per delivery, p99). Then the concurrent WebSockets each target served
(dwebsocket/capacity.py) and what each target could not do. Nothing here is typed by hand: every
figure comes from OUT_DIR's JSON.
"""

import json
import os
import platform
import sys

TARGETS = [
    ("pushlab", "pushlab-server"),
    ("nchan", "nginx-nchan"),
    ("pushpin", "Pushpin (+ origin)"),
    ("channels-memory", "Channels, in-memory layer"),
    ("channels-redis", "Channels, Redis layer (+ redis-server)"),
    ("dwebsocket", "dwebsocket (gunicorn gthread, 64 threads)"),
]
TRANSPORTS = ["poll", "longpoll", "sse", "stream", "ws"]


def load(out, name, suffix=".json"):
    path = os.path.join(out, name + suffix)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f) if suffix.endswith(".json") else f.read().strip()


def figures(t):
    """The row's figures (None where the run has none)."""
    delivered = t["delivered_messages"] or None
    server = t.get("server") or {}
    cpu = t.get("server_cpu_us_per_delivery")
    if cpu is None and t.get("server_cpu_us_per_1k_messages") is not None:
        cpu = t["server_cpu_us_per_1k_messages"] / 1000
    mem = server.get("heap_bytes_per_connection") or server.get("rss_bytes_per_connection")
    return {
        "bytes": (t["wire_bytes_up"] + t["wire_bytes_down"]) / delivered if delivered else None,
        "p50": t["latency_us"]["p50"] / 1000 if t["latency_us"]["count"] else None,
        "p99": t["latency_us"]["p99"] / 1000 if t["latency_us"]["count"] else None,
        "cpu": cpu,
        "mem": mem / 1024 if mem is not None else None,
        "errors": t["errors"],
        "lost": t["lost_messages"],
        "cpu_source": server.get("cpu_source") or "not stated",
    }


def num(x, digits=1):
    if x is None:
        return "-"
    return f"{x:,.{digits}f}"


def ratio(x, base):
    if x is None or base in (None, 0):
        return "-"
    return f"{x / base:.2f}"


COLORS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860"]


def chart_svg(rows, metric, title):
    """A grouped bar chart (SVG text), log scale: one group per transport, one bar per target.
    `rows`: {transport: [(label, figures)]}."""
    import math

    values = [f[metric] for group in rows.values() for _, f in group if f[metric]]
    if not values:
        return None
    lo = 10 ** math.floor(math.log10(min(values)))
    hi = 10 ** math.ceil(math.log10(max(values)))
    w, h, left, top, plot_h = 760, 360, 60, 40, 250
    group_w = (w - left - 20) / len(TRANSPORTS)
    labels = [label for name, label in TARGETS]
    bar_w = group_w * 0.8 / len(labels)

    def y(v):
        return top + plot_h * (1 - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">',
             f'<text x="{w / 2}" y="20" text-anchor="middle" font-size="14">{title}</text>']
    decade = lo
    while decade <= hi:
        parts.append(f'<line x1="{left}" x2="{w - 20}" y1="{y(decade):.1f}" y2="{y(decade):.1f}" stroke="#ddd"/>'
                     f'<text x="{left - 4}" y="{y(decade) + 4:.1f}" text-anchor="end">{decade:g}</text>')
        decade *= 10
    for gi, tr in enumerate(TRANSPORTS):
        x0 = left + gi * group_w + group_w * 0.1
        parts.append(f'<text x="{x0 + group_w * 0.4:.1f}" y="{top + plot_h + 16}" text-anchor="middle">{tr}</text>')
        for label, f in rows.get(tr, []):
            v = f[metric]
            if not v:
                continue
            i = labels.index(label)
            parts.append(f'<rect x="{x0 + i * bar_w:.1f}" y="{y(v):.1f}" width="{bar_w - 1:.1f}" '
                         f'height="{top + plot_h - y(v):.1f}" fill="{COLORS[i]}"><title>{label}: {v:.1f}</title></rect>')
    for i, label in enumerate(labels):
        lx, ly = left + (i % 3) * 230, top + plot_h + 34 + (i // 3) * 16
        parts.append(f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" fill="{COLORS[i]}"/>'
                     f'<text x="{lx + 14}" y="{ly}">{label}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def main():
    out, flags = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""
    charts = sys.argv[3] if len(sys.argv) > 3 else None
    runs = {name: load(out, name) for name, _ in TARGETS}
    lines = [
        "# Peer servers beside pushlab-server",
        "",
        "Written by `scripts/peers/compare.sh` (never by hand): one scenario, each target a "
        "fresh process on loopback, driven by the same loadgen with the same checks (every "
        "message delivered once and in order, the byte split summing exactly to the wire).",
        "",
        f"- scenario: `pushlab-loadgen run {flags}` per target",
        f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, Linux {platform.release()}",
        "- bytes/msg: wire bytes up + down per delivered message (TCP/IP headers left out); "
        "p50/p99: publish to receipt; CPU: server CPU microseconds per delivered message; "
        "memory: server memory growth per open connection (pushlab-server: its allocator's "
        "bytes in use; the others: RSS of the whole process tree, from /proc); "
        "xN: ratio to pushlab-server on the same transport.",
        "- Pushpin's figures include its origin's; Channels (Redis)'s include redis-server's "
        "(all in the process tree of the run script).",
        "",
    ]
    base_runs = runs.get("pushlab")
    rows = {}
    for tr in TRANSPORTS:
        lines += [
            f"## {tr}",
            "",
            "| target | bytes/msg | p50 ms | p99 ms | CPU us/delivery | memory KiB/conn | errors | lost | x bytes | x p50 | x p99 | x CPU | x memory | CPU source |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        base = None
        if base_runs:
            bt = [t for t in base_runs["transports"] if t["transport"] == tr]
            base = figures(bt[0]) if bt else None
        for name, label in TARGETS:
            run = runs.get(name)
            t = [x for x in run["transports"] if x["transport"] == tr] if run else []
            if not t:
                continue
            f = figures(t[0])
            rows.setdefault(tr, []).append((label, f))
            b = base or {}
            lines.append(
                f"| {label} | {num(f['bytes'])} | {num(f['p50'])} | {num(f['p99'])} | "
                f"{num(f['cpu'])} | {num(f['mem'])} | {f['errors']} | {f['lost']} | "
                f"{ratio(f['bytes'], b.get('bytes'))} | {ratio(f['p50'], b.get('p50'))} | "
                f"{ratio(f['p99'], b.get('p99'))} | {ratio(f['cpu'], b.get('cpu'))} | "
                f"{ratio(f['mem'], b.get('mem'))} | {f['cpu_source']} |"
            )
        lines.append("")
    if charts:
        os.makedirs(charts, exist_ok=True)
        for metric, title, file in [
            ("cpu", "Server CPU per delivered message, microseconds (log scale)", "peers_cpu_per_delivery.svg"),
            ("p99", "Latency p99, milliseconds (log scale)", "peers_p99_latency.svg"),
        ]:
            svg = chart_svg(rows, metric, title)
            if svg:
                with open(os.path.join(charts, file), "w") as f:
                    f.write(svg + "\n")
                lines += [f"![{title}](charts/{file})", ""]
    lines += [
        "## Concurrent WebSockets",
        "",
        "`scripts/peers/dwebsocket/capacity.py PORT --max 200 --timeout 3`: WebSockets opened one "
        "at a time and kept open until one gets no `101` within 3 s; then one is closed and the "
        "waiting one timed.",
        "",
        "| target | served at once | limit reached | the next one |",
        "|---|---:|---|---|",
    ]
    for name, label in TARGETS:
        cap = load(out, name, ".capacity.json")
        if not cap:
            continue
        nxt = cap.get("next", "-")
        if "next_served_after_close_s" in cap:
            nxt += f" (answered {cap['next_served_after_close_s']} s after a close)"
        limit = "yes" if cap["limit_reached"] else "no (bound of 200)"
        lines.append(f"| {label} | {cap['served_concurrently']} | {limit} | {nxt} |")
    lines += ["", "## What each target could not do", ""]
    for name, label in TARGETS:
        missing = load(out, name, ".missing")
        run = runs.get(name)
        if missing:
            lines.append(f"- {missing}")
        elif run is None:
            lines.append(f"- {label}: no result")
        else:
            served = {t["transport"] for t in run["transports"]}
            absent = [tr for tr in TRANSPORTS if tr not in served]
            if absent:
                lines.append(f"- {label}: does not serve {', '.join(absent)}")
            for t in run["transports"]:
                if t["lost_messages"] or t["errors"] or t["duplicate_messages"]:
                    lines.append(
                        f"- {label}, {t['transport']}: {t['lost_messages']} lost, "
                        f"{t['duplicate_messages']} duplicates, {t['errors']} errors"
                    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
