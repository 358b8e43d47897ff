"""A recording TCP proxy for seeding the Kafka decoder's fuzz corpus with real client
traffic: every request frame a client sends is written, size prefix removed, to
OUTDIR/<api key>-<version>-<n>.bin.

Usage: capture.py LISTEN_PORT UPSTREAM_HOST:PORT OUTDIR SECONDS
Start the broker with --kafka-advertised-listeners PLAINTEXT://127.0.0.1:LISTEN_PORT so
clients keep talking through the proxy after bootstrap.
"""

import os
import socket
import struct
import sys
import threading
import time

port, upstream, outdir, seconds = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])
host, up_port = upstream.rsplit(":", 1)
os.makedirs(outdir, exist_ok=True)
count = 0
lock = threading.Lock()


def pump(src, dst, record):
    buf = b""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
            if not record:
                continue
            buf += data
            while len(buf) >= 4:
                (n,) = struct.unpack(">i", buf[:4])
                if len(buf) < 4 + n:
                    break
                body, buf = buf[4:4 + n], buf[4 + n:]
                key, version = struct.unpack(">hh", body[:4])
                global count
                with lock:
                    count += 1
                    name = f"{key:02d}-{version:02d}-{count:04d}.bin"
                with open(os.path.join(outdir, name), "wb") as f:
                    f.write(body)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


server = socket.create_server(("127.0.0.1", port))
server.settimeout(0.5)
end = time.time() + seconds
while time.time() < end:
    try:
        client, _ = server.accept()
    except socket.timeout:
        continue
    up = socket.create_connection((host, int(up_port)))
    threading.Thread(target=pump, args=(client, up, True), daemon=True).start()
    threading.Thread(target=pump, args=(up, client, False), daemon=True).start()
print(f"captured {count} request frames into {outdir}")
