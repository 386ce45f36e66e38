#!/usr/bin/env python3
"""Holds slow peers against a FastCGI app on 127.0.0.1:PORT while `fcgi bench`
measures a normal client, and reports on one line: the bench's machine line
(req/s p50 p99 errors), the threads before and while held, and the RSS KiB
before and while held. The peers: STALLED uploads that send 200 KB of a
400 KB body and stop, and SILENT clients (4 KiB receive buffer) that ask for an
8 MiB page and never read it. A measuring tool for scripts/bench, bounded: the
peers are closed when the bench ends.
usage: slow-peers.py FCGI_BIN PORT APP_PID STALLED SILENT SECONDS"""
import socket
import struct
import subprocess
import sys
import time

fcgi, port, pid, stalled, silent, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]


def status(key):
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith(key)).split()[1])


def record(kind, rid, body=b""):
    pad = -len(body) & 7
    return struct.pack(">BBHHBx", 1, kind, rid, len(body), pad) + body + b"\0" * pad


def params(pairs):
    out = b""
    for k, v in pairs:
        k, v = k.encode(), v.encode()
        for x in (k, v):
            out += bytes([len(x)]) if len(x) < 128 else struct.pack(">I", len(x) | 0x80000000)
        out += k + v
    return out


def begin(pairs):
    return record(1, 1, struct.pack(">HB5x", 1, 0)) + record(4, 1, params(pairs)) + record(4, 1)


threads_before, rss_before = status("Threads:"), status("VmRSS:")
held = []
base = [("REQUEST_METHOD", "POST"), ("SCRIPT_NAME", "/up"), ("REQUEST_URI", "/up")]
for _ in range(stalled):
    c = socket.create_connection(("127.0.0.1", port), timeout=10)
    body = b"a" * 200_000
    data = begin(base + [("CONTENT_LENGTH", "400000")])
    data += b"".join(record(5, 1, body[i:i + 65535]) for i in range(0, len(body), 65535))
    c.sendall(data)
    held.append(c)
for _ in range(silent):
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.connect(("127.0.0.1", port))
    c.sendall(begin([("REQUEST_METHOD", "GET"), ("SCRIPT_NAME", "/"), ("REQUEST_URI", "/"), ("ECHO_PAGE", str(8 << 20))]) + record(5, 1))
    held.append(c)
time.sleep(1)  # let the app read the uploads and write the pages
threads, rss = status("Threads:"), status("VmRSS:")
bench = subprocess.run([fcgi, "bench", f"127.0.0.1:{port}", "-c", "1", "-k", "-d", seconds, "--machine"],
                       capture_output=True, text=True, timeout=float(seconds) + 60)
line = (bench.stdout.strip().splitlines() or ["0 0 0 all"])[-1].split()
for c in held:
    c.close()
print(" ".join(line[:4]), threads_before, threads, rss_before, rss)
