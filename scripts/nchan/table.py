#!/usr/bin/env python3
"""results/NCHAN.md from what compare.sh wrote (usage: table.py OUT_DIR "COMMAND").

Issue 14's goals against nginx-nchan, per transport: server CPU per delivered message and p99
publish-to-deliver of pushlab-server over nginx-nchan's, each ratio taken within one repeat
(the two servers measured back to back on the same transport), then the median and the range
over the repeats. Goals: CPU at most 0.67x nchan's on SSE, chunked stream and WebSocket and at
most 1x on long poll; p99 at most nchan's on every transport. Nothing here is typed by hand:
every figure comes from OUT_DIR's JSON (OUT_DIR/{nchan,pushlab}/TRANSPORT.json for the first
repeat, OUT_DIR/repeats/{nchan,pushlab}/TRANSPORT.N.json for all of them).
"""

import datetime
import glob
import json
import os
import re
import statistics
import sys

TRANSPORTS = ["poll", "longpoll", "sse", "stream", "ws"]
NAMES = {
    "poll": "short poll",
    "longpoll": "long poll",
    "sse": "SSE",
    "stream": "chunked stream",
    "ws": "WebSocket",
}
# Most pushlab/nchan CPU per delivery the goal allows (None: no goal on this transport).
CPU_GOAL = {"poll": None, "longpoll": 1.0, "sse": 0.67, "stream": 0.67, "ws": 0.67}
P99_GOAL = 1.0


def phase(path):
    """The one transport phase of a single-transport run file, or None."""
    try:
        with open(path) as f:
            run = json.load(f)
    except (OSError, ValueError):
        return None, None
    phases = run.get("transports") or []
    return run, (phases[0] if phases else None)


def repeats(out, target, transport):
    """[(repeat number, run, phase)] for one target and transport, in repeat order."""
    found = []
    for path in glob.glob(os.path.join(out, "repeats", target, f"{transport}.*.json")):
        m = re.search(r"\.(\d+)\.json$", path)
        run, p = phase(path)
        if m and p is not None:
            found.append((int(m.group(1)), run, p))
    return sorted(found, key=lambda x: x[0])


def cpu(p):
    v = p.get("server_cpu_us_per_delivery")
    return v if isinstance(v, (int, float)) and v > 0 else None


def p99_ms(p):
    v = (p.get("latency_us") or {}).get("p99")
    return v / 1000.0 if isinstance(v, (int, float)) and v > 0 else None


def lost(p):
    return (p.get("lost_messages") or 0) + (p.get("duplicate_messages") or 0)


def spread(values, fmt):
    """`median (min-max, n=N)`, or `n/a`."""
    vals = [v for v in values if v is not None]
    if not vals:
        return "n/a"
    med = statistics.median(vals)
    if len(vals) == 1:
        return fmt(med)
    return f"{fmt(med)} ({fmt(min(vals))}-{fmt(max(vals))}, n={len(vals)})"


def verdict(ratios, goal):
    vals = [r for r in ratios if r is not None]
    if goal is None:
        return "no goal"
    if not vals:
        return "not measured"
    med = statistics.median(vals)
    return f"{'met' if med <= goal else 'NOT met'} (<= {goal:g})"


def main():
    out, command = sys.argv[1], sys.argv[2]
    rows_cpu, rows_p99 = [], []
    first_env, clients, rate = None, None, None
    for t in TRANSPORTS:
        nchan = {n: p for n, _, p in repeats(out, "nchan", t)}
        mine = {}
        for n, run, p in repeats(out, "pushlab", t):
            mine[n] = p
            first_env = first_env or run.get("environment")
            clients = clients or p.get("clients")
            rate = rate or (p.get("scenario") or {}).get("publish_rate_per_s")
        both = sorted(set(nchan) & set(mine))
        cpu_ratios = [
            cpu(mine[n]) / cpu(nchan[n]) if cpu(mine[n]) and cpu(nchan[n]) else None for n in both
        ]
        p99_ratios = [
            p99_ms(mine[n]) / p99_ms(nchan[n]) if p99_ms(mine[n]) and p99_ms(nchan[n]) else None
            for n in both
        ]
        losses = f"{sum(lost(mine[n]) for n in both)} / {sum(lost(nchan[n]) for n in both)}"
        f2 = lambda v: f"{v:.2f}"
        f1 = lambda v: f"{v:.1f}"
        rows_cpu.append(
            f"| {NAMES[t]} | {spread([cpu(mine[n]) for n in both], f2)} | "
            f"{spread([cpu(nchan[n]) for n in both], f2)} | {spread(cpu_ratios, f2)} | "
            f"{verdict(cpu_ratios, CPU_GOAL[t])} | {losses} |"
        )
        rows_p99.append(
            f"| {NAMES[t]} | {spread([p99_ms(mine[n]) for n in both], f1)} | "
            f"{spread([p99_ms(nchan[n]) for n in both], f1)} | {spread(p99_ratios, f2)} | "
            f"{verdict(p99_ratios, P99_GOAL)} |"
        )
    env = first_env or {}
    versions = env.get("crate_versions") or {}
    load = open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else []
    print("# pushlab-server against nginx-nchan: issue 14's goals\n")
    print(
        f"Written by `scripts/nchan/compare.sh` ({datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC), "
        f"from the runs in `{out}`. Command: `{command}`.\n"
    )
    print(
        f"Machine: {env.get('cpu_model', '?')}, {env.get('cores', '?')} cores, {env.get('kernel', '?')}, "
        f"{env.get('os', '?')}; load average at the end {' '.join(load) or '?'} (a shared machine). "
        f"pushlab-server at commit {os.environ.get('PUSHLAB_COMMIT') or '?'} (the loadgen's "
        f"build: {env.get('git_commit', '?')}), {env.get('rustc', '?')}, "
        f"hyper {versions.get('hyper', '?')}, hyper-util {versions.get('hyper-util', '?')}, "
        f"tokio {versions.get('tokio', '?')}, tungstenite {versions.get('tungstenite', '?')}; "
        f"{os.environ.get('NCHAN_VERSION', 'nginx-nchan (version not given)')}.\n"
    )
    print(
        f"Scenario: {clients or '?'} subscribers per transport, {rate or '?'} msg/s; each transport "
        "on a fresh server process, nchan and pushlab-server back to back, repeated; a ratio is "
        "pushlab-server's figure over nchan's within one repeat, shown as the median (range, "
        "number of repeats). Server CPU is pushlab-server's getrusage and nginx's schedstat "
        "(both in microseconds), per delivered message.\n"
    )
    print("## Server CPU per delivered message\n")
    print("| transport | pushlab-server us | nginx-nchan us | pushlab / nchan | goal | lost+dup pushlab / nchan |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows_cpu))
    print("\n## p99 publish-to-deliver\n")
    print("| transport | pushlab-server ms | nginx-nchan ms | pushlab / nchan | goal |")
    print("|---|---|---|---|---|")
    print("\n".join(rows_p99))
    print(
        "\nThe loadgen runs on the same 2 cores as the server under test: its own saturation "
        "notes are in each run's JSON (`notes`) and in the per-target tables beside this file's "
        "runs (nchan.md, pushlab.md)."
    )


if __name__ == "__main__":
    main()
