#!/usr/bin/env python3
"""Cross-check a loadgen result against a packet capture (independent of the loadgen).

Sums TCP payload bytes and segments per transport and direction from a pcap of the server
port, classifying each TCP connection by the first request line its client sent
(GET /sse/... -> sse, POST /publish/... -> publish, GET /metrics -> other), then prints them
beside the result's wire_bytes_up/down and tcp_segments.

    tcpdump -i lo -s 256 -w run.pcap 'tcp port 18080'    # while the run goes
    python3 loadgen/tools/pcap_bytes.py run.pcap 18080 result.json

Only the Python standard library; reads classic pcap (tcpdump -w), Ethernet or loopback
link types, IPv4.
"""

import json
import struct
import sys
from collections import defaultdict


def packets(path):
    with open(path, "rb") as f:
        head = f.read(24)
        magic = struct.unpack("<I", head[:4])[0]
        endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
        linktype = struct.unpack(endian + "I", head[20:24])[0]
        link_len = {1: 14, 0: 4, 113: 16, 276: 20}.get(linktype)
        if link_len is None:
            sys.exit(f"unsupported link type {linktype}")
        while True:
            rec = f.read(16)
            if len(rec) < 16:
                return
            _, _, incl, _orig = struct.unpack(endian + "IIII", rec)
            data = f.read(incl)
            yield data[link_len:]


def main():
    pcap, port, result = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    streams = {}  # (client ip, client port) -> {"kind", "up", "down", "segs"}
    for ip in packets(pcap):
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 6:
            continue
        ihl = (ip[0] & 15) * 4
        total = struct.unpack(">H", ip[2:4])[0]
        tcp = ip[ihl:]
        sport, dport = struct.unpack(">HH", tcp[:4])
        doff = (tcp[12] >> 4) * 4
        payload_len = total - ihl - doff
        src, dst = ip[12:16], ip[16:20]
        if dport == port:
            key, up = (src, sport), True
        elif sport == port:
            key, up = (dst, dport), False
        else:
            continue
        s = streams.setdefault(key, {"kind": None, "up": 0, "down": 0, "segs": 0})
        s["segs"] += 1
        s["up" if up else "down"] += payload_len
        if up and payload_len > 0 and s["kind"] is None:
            first = bytes(tcp[doff:doff + 64]).split(b" ")
            path = first[1].decode(errors="replace") if len(first) > 1 else "?"
            seg = path.strip("/").split("/")[0].split("?")[0]
            s["kind"] = seg if seg in ("poll", "longpoll", "sse", "stream", "ws", "publish") else "other"
    per = defaultdict(lambda: {"up": 0, "down": 0, "segs": 0, "conns": 0})
    for s in streams.values():
        p = per[s["kind"] or "no-request"]
        p["up"] += s["up"]
        p["down"] += s["down"]
        p["segs"] += s["segs"]
        p["conns"] += 1
    r = json.load(open(result))
    print("| transport | capture up | loadgen up | capture down | loadgen down | equal | capture segments | loadgen TCP_INFO segments | connections |")
    print("|---|---:|---:|---:|---:|---|---:|---:|---:|")
    for t in r["transports"]:
        name = t["transport"]
        p = per.get(name, {"up": 0, "down": 0, "segs": 0, "conns": 0})
        equal = p["up"] == t["wire_bytes_up"] and p["down"] == t["wire_bytes_down"]
        print(f"| {name} | {p['up']} | {t['wire_bytes_up']} | {p['down']} | {t['wire_bytes_down']} | {'yes' if equal else 'NO'} | {p['segs']} | {t.get('tcp_segments')} | {p['conns']} |")
    for k, p in sorted(per.items()):
        if k not in {t["transport"] for t in r["transports"]}:
            print(f"| ({k}) | {p['up']} | | {p['down']} | | | {p['segs']} | | {p['conns']} |")


if __name__ == "__main__":
    main()
