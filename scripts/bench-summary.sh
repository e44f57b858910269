#!/usr/bin/env bash
# Turns criterion's output (target/criterion/**/new/estimates.json, median point estimates)
# into results/bench.md: a header with the machine, versions, commit, date and command, then
# one table per group (encode, fanout, e2e) with each bench's median and its ratio to the
# floor (e2e) or to the fastest comparable bench (same message size / same subscriber count).
#
#   scripts/bench-summary.sh                 summarize the last `cargo bench` (runs nothing)
#   scripts/bench-summary.sh --run [ARGS]    run `cargo bench [ARGS]` first, then summarize
#                                            only what that run measured
#   OUT=path scripts/bench-summary.sh        write somewhere else than results/bench.md
set -euo pipefail
cd "$(dirname "$0")/.."

out="${OUT:-results/bench.md}"
run=0
if [[ "${1:-}" == "--run" ]]; then
    run=1
    shift
fi
bench_args=("$@")

started_epoch=0
elapsed_s=""
command_line="cargo bench (run before this summary; scripts/bench-summary.sh read its output)"
load_before="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
if [[ $run == 1 ]]; then
    command_line="scripts/bench-summary.sh --run${bench_args[*]:+ ${bench_args[*]}}  (= cargo bench${bench_args[*]:+ ${bench_args[*]}}, then this summary)"
    started_epoch="$(date +%s)"
    # Criterion's own data stays in target/criterion; its log goes beside it.
    mkdir -p target/criterion
    cargo bench "${bench_args[@]}" 2>&1 | tee target/criterion/last-run.log
    elapsed_s="$(($(date +%s) - started_epoch))"
fi
load_after="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"

cpu="$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || true)"
[[ -n "$cpu" ]] || cpu="$(uname -m)"
criterion_version="$(awk '/^name = "criterion"$/ {getline; gsub(/[^0-9.]/, ""); print; exit}' Cargo.lock 2>/dev/null || true)"
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git status --porcelain -- benches server proto Cargo.toml 2>/dev/null)" ]]; then
    commit="$commit (benches, server, proto or Cargo.toml had uncommitted changes)"
fi

mkdir -p "$(dirname "$out")"
CPU="$cpu" CORES="$(nproc)" KERNEL="$(uname -sr)" RUSTC="$(rustc --version)" \
CRITERION="${criterion_version:-?}" COMMIT="$commit" COMMAND="$command_line" \
STARTED="$started_epoch" ELAPSED="$elapsed_s" LOAD_BEFORE="$load_before" LOAD_AFTER="$load_after" \
OUT="$out" python3 - <<'PY'
import datetime
import json
import os
import re
from pathlib import Path

root = Path("target/criterion")
started = int(os.environ["STARTED"])
env = os.environ

TRANSPORT_ORDER = ["floor", "message", "poll", "longpoll", "sse", "stream", "ws"]
GROUP_ORDER = ["encode", "fanout", "e2e", "e2e_cpu"]


def fmt_time(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}" if ns / scale < 100 else f"{ns / scale:.0f} {unit}"
    return f"{ns:.3g} ns"


def fmt_rate(per_s, unit):
    for prefix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if per_s >= scale:
            return f"{per_s / scale:.3g} {prefix}{unit}/s"
    return f"{per_s:.3g} {unit}/s"


benches = []
for est in root.glob("*/*/new/estimates.json"):
    if started and est.stat().st_mtime < started:
        continue  # left over from an earlier run
    meta_path = est.parent / "benchmark.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    e = json.loads(est.read_text())
    name = meta.get("function_id") or est.parent.parent.name
    group = meta.get("group_id") or est.parent.parent.parent.name
    m = e["median"]
    benches.append({
        "group": group,
        "name": name,
        "median_ns": m["point_estimate"],
        "lo_ns": m["confidence_interval"]["lower_bound"],
        "hi_ns": m["confidence_interval"]["upper_bound"],
        "throughput": meta.get("throughput") or {},
        "mtime": est.stat().st_mtime,
    })

if not benches:
    raise SystemExit("no criterion estimates found under target/criterion: run `cargo bench` "
                     "or pass --run")


def transport_of(name):
    if "_floor_" in name:
        return 0
    for i, t in enumerate(TRANSPORT_ORDER):
        if name == t or name.startswith(t + "_"):
            return i
    return len(TRANSPORT_ORDER)


def num(pattern, name, default=0):
    m = re.search(pattern, name)
    return int(m.group(1)) if m else default


def sort_key(b):
    n = b["name"]
    return (num(r"_(\d+)b$", n), num(r"_c(\d+)_", n), transport_of(n), num(r"batch(\d+)", n), n)


lines = []
when = datetime.datetime.fromtimestamp(max(b["mtime"] for b in benches), datetime.timezone.utc)
lines += [
    "# pushlab benchmarks",
    "",
    "Written by `scripts/bench-summary.sh` from criterion's output (median of each bench, with "
    "its 95% confidence interval). Regenerate with `scripts/bench-summary.sh --run`.",
    "",
    f"- **Command:** `{env['COMMAND']}`",
    f"- **Machine:** {env['CPU']}, {env['CORES']} cores, {env['KERNEL']}",
    f"- **Toolchain:** {env['RUSTC']}, criterion {env['CRITERION']}",
    f"- **Commit:** {env['COMMIT']}",
    f"- **Date:** {when:%Y-%m-%d %H:%M} UTC (last estimate written)",
]
if env.get("ELAPSED"):
    secs = int(env["ELAPSED"])
    lines.append(f"- **Whole `cargo bench`:** {secs // 60} min {secs % 60} s "
                 "(including the build)")
lines += [
    f"- **Load average** (1, 5, 15 min) before: {env['LOAD_BEFORE']}; after: {env['LOAD_AFTER']}. "
    "The machine is shared: other work ran beside this one, so absolute figures are noisy; "
    "quote the ratios, which were measured side by side in one run.",
    "",
]

groups = sorted({b["group"] for b in benches},
                key=lambda g: (GROUP_ORDER.index(g) if g in GROUP_ORDER else 99, g))
for group in groups:
    rows = sorted((b for b in benches if b["group"] == group), key=sort_key)
    lines.append(f"## {group}")
    lines.append("")
    if group == "encode":
        lines += [
            "One message into each transport's bytes, in the bench thread's CPU time (message "
            "JSON encoding included; `message_encode` is that shared part alone; long poll has "
            "poll's body). "
            "Ratio: per-message time over the fastest transport framing of the same size.",
            "",
            "| bench | median (95% CI) | per message | bytes out | throughput | × fastest |",
            "|---|---|---|---:|---:|---:|",
        ]
        per_msg = {b["name"]: b["median_ns"] / max(1, num(r"batch(\d+)", b["name"], 1))
                   for b in rows}
        fastest = {}
        for b in rows:
            if b["name"].startswith("message_"):
                continue
            size = num(r"_(\d+)b$", b["name"])
            fastest[size] = min(fastest.get(size, float("inf")), per_msg[b["name"]])
        for b in rows:
            n = b["name"]
            size = num(r"_(\d+)b$", n)
            out_bytes = b["throughput"].get("Bytes") or b["throughput"].get("BytesDecimal") or 0
            ratio = "" if n.startswith("message_") else f"{per_msg[n] / fastest[size]:.2f}"
            tput = fmt_rate(out_bytes / (b["median_ns"] / 1e9), "B") if out_bytes else ""
            lines.append(
                f"| `{n}` | {fmt_time(b['median_ns'])} ({fmt_time(b['lo_ns'])} – "
                f"{fmt_time(b['hi_ns'])}) | {fmt_time(per_msg[n])} | {out_bytes} | {tput} | "
                f"{ratio} |")
    elif group == "fanout":
        lines += [
            "One publish delivered to c subscribers through the real server stack (hyper, "
            "router, transport, feed) into in-memory sockets on one thread, in that thread's "
            "CPU time; poll and long poll "
            "include each subscriber's request. Ratio: per-delivery time over the fastest "
            "transport at the same c.",
            "",
            "| bench | median per publish (95% CI) | per delivered message | delivered/s "
            "| × fastest at same c |",
            "|---|---|---|---:|---:|",
        ]
        per = {b["name"]: b["median_ns"] / max(1, b["throughput"].get("Elements", 1))
               for b in rows}
        fastest = {}
        for b in rows:
            c = num(r"_c(\d+)_", b["name"])
            fastest[c] = min(fastest.get(c, float("inf")), per[b["name"]])
        for b in rows:
            n = b["name"]
            c = num(r"_c(\d+)_", n)
            lines.append(
                f"| `{n}` | {fmt_time(b['median_ns'])} ({fmt_time(b['lo_ns'])} – "
                f"{fmt_time(b['hi_ns'])}) | {fmt_time(per[n])} | "
                f"{fmt_rate(1e9 / per[n], 'msg')} | {per[n] / fastest[c]:.2f} |")
    elif group in ("e2e", "e2e_cpu"):
        floor = next((b for b in rows if "_floor_" in b["name"]), None)
        what = ("wall-clock time (latency)" if group == "e2e" else
                "CPU time of the whole process (client, server and the kernel's loopback work "
                "on their behalf): what a message costs, whatever else the machine runs")
        lines += [
            "Publish to receive of one message over 127.0.0.1 with a real client, in " + what +
            ". The floor is a raw TCP ping-pong of the same message (one round trip). Poll is "
            "publish, then a poll request (two round trips); long poll is a held request "
            "completed by the publish.",
            "",
            "| bench | median (95% CI) | × floor | messages/s |",
            "|---|---|---:|---:|",
        ]
        for b in rows:
            ratio = f"{b['median_ns'] / floor['median_ns']:.2f}" if floor else "?"
            lines.append(
                f"| `{b['name']}` | {fmt_time(b['median_ns'])} ({fmt_time(b['lo_ns'])} – "
                f"{fmt_time(b['hi_ns'])}) | {ratio} | {fmt_rate(1e9 / b['median_ns'], 'msg')} |")
    else:
        fastest = min(b["median_ns"] for b in rows)
        lines += ["| bench | median (95% CI) | × fastest |", "|---|---|---:|"]
        for b in rows:
            lines.append(
                f"| `{b['name']}` | {fmt_time(b['median_ns'])} ({fmt_time(b['lo_ns'])} – "
                f"{fmt_time(b['hi_ns'])}) | {b['median_ns'] / fastest:.2f} |")
    lines.append("")

Path(env["OUT"]).write_text("\n".join(lines))
print(f"wrote {env['OUT']} ({len(benches)} benches)")
PY
