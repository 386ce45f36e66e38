#!/usr/bin/env python3
"""Holds N idle connections to a FastCGI app on 127.0.0.1:PORT and reports, on one
line: threads before, threads while held, RSS KiB before, RSS KiB while held, and the
milliseconds a fresh request (a new connection, BEGIN, empty PARAMS and STDIN) takes
while they are held. A measuring tool for scripts/bench, bounded: it connects N
times, sends one request, closes everything."""
import socket
import struct
import sys
import time

port, count, pid = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])


def status(key):
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith(key)).split()[1])


def record(kind, request_id, content=b""):
    return struct.pack(">BBHHBB", 1, kind, request_id, len(content), 0, 0) + content


threads_before, rss_before = status("Threads:"), status("VmRSS:")
held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(count)]
time.sleep(0.5)  # let the server accept and park them
threads, rss = status("Threads:"), status("VmRSS:")
start = time.monotonic()
fresh = socket.create_connection(("127.0.0.1", port), timeout=10)
fresh.sendall(record(1, 1, struct.pack(">HB5x", 1, 0)) + record(4, 1) + record(5, 1))
reply = b""
while len(reply) < 16 or reply[-16:-15] != b"\x01" or reply[-15] != 3:
    chunk = fresh.recv(65536)
    if not chunk:
        break
    reply += chunk
elapsed = (time.monotonic() - start) * 1000
fresh.close()
for s in held:
    s.close()
print(threads_before, threads, rss_before, rss, f"{elapsed:.2f}")
