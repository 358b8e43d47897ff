"""Connections per second against one Kafka listener, with a minimal client of its own
(no client library's start-up in the figure): each connection opens a socket (TLS when
asked), authenticates with SCRAM when asked (SaslHandshake v1 + SaslAuthenticate v1,
RFC 5802, the server's signature checked), sends ApiVersions v0, checks the answer and
closes. One connection at a time; the caller reads the servers' CPU around it.

Usage: scram_connect.py HOST:PORT SECONDS [--tls CA.pem] [--scram SHA-512 USER PASSWORD]
Prints: "<n> connections in <s> s: <rate> connections/s".
"""

import base64
import hashlib
import hmac
import os
import socket
import ssl
import struct
import sys
import time


def frame(api_key, version, corr, body):
    client_id = b"scram-bench"
    header = struct.pack(">hhih", api_key, version, corr, len(client_id)) + client_id
    msg = header + body
    return struct.pack(">i", len(msg)) + msg


def read_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by the server")
        buf += chunk
    return buf


def call(sock, api_key, version, corr, body):
    sock.sendall(frame(api_key, version, corr, body))
    (size,) = struct.unpack(">i", read_exact(sock, 4))
    resp = read_exact(sock, size)
    (got,) = struct.unpack(">i", resp[:4])
    if got != corr:
        raise ValueError(f"correlation id {got}, expected {corr}")
    return resp[4:]


def kstring(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def kbytes(b):
    return struct.pack(">i", len(b)) + b


def authenticate(sock, digest, user, password):
    mech = "SCRAM-" + digest
    resp = call(sock, 17, 1, 1, kstring(mech))
    (err,) = struct.unpack(">h", resp[:2])
    if err:
        raise ValueError(f"SaslHandshake error {err}")

    def auth(corr, payload):
        resp = call(sock, 36, 1, corr, kbytes(payload))
        (err,) = struct.unpack(">h", resp[:2])
        (mlen,) = struct.unpack(">h", resp[2:4])
        pos = 4 + max(mlen, 0)
        if err:
            msg = resp[4:pos].decode() if mlen > 0 else ""
            raise ValueError(f"SaslAuthenticate error {err}: {msg}")
        (blen,) = struct.unpack(">i", resp[pos : pos + 4])
        return resp[pos + 4 : pos + 4 + blen]

    h = getattr(hashlib, digest.replace("-", "").lower())
    nonce = base64.b64encode(os.urandom(18)).decode()
    bare = f"n={user},r={nonce}"
    first = auth(2, ("n,," + bare).encode()).decode()
    attrs = dict(kv.split("=", 1) for kv in first.split(","))
    if not attrs["r"].startswith(nonce):
        raise ValueError("server nonce does not extend ours")
    salted = hashlib.pbkdf2_hmac(
        h().name, password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"])
    )
    client_key = hmac.new(salted, b"Client Key", h).digest()
    without_proof = f"c=biws,r={attrs['r']}"
    auth_message = f"{bare},{first},{without_proof}".encode()
    signature = hmac.new(h(client_key).digest(), auth_message, h).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    final = f"{without_proof},p={base64.b64encode(proof).decode()}"
    last = auth(3, final.encode()).decode()
    server_key = hmac.new(salted, b"Server Key", h).digest()
    want = base64.b64encode(hmac.new(server_key, auth_message, h).digest()).decode()
    if last != f"v={want}":
        raise ValueError(f"server signature does not verify: {last}")


def main():
    args = sys.argv[1:]
    host, port = args[0].rsplit(":", 1)
    seconds = float(args[1])
    tls = None
    scram = None
    rest = args[2:]
    while rest:
        if rest[0] == "--tls":
            tls = ssl.create_default_context(cafile=rest[1])
            tls.check_hostname = False
            rest = rest[2:]
        elif rest[0] == "--scram":
            scram = rest[1:4]
            rest = rest[4:]
        else:
            raise SystemExit(f"unknown argument {rest[0]}")
    done = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        sock = socket.create_connection((host, int(port)), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls:
            sock = tls.wrap_socket(sock, server_hostname=host)
        try:
            if scram:
                authenticate(sock, *scram)
            resp = call(sock, 18, 0, 9, b"")
            (err,) = struct.unpack(">h", resp[:2])
            if err:
                raise ValueError(f"ApiVersions error {err}")
        finally:
            sock.close()
        done += 1
    elapsed = time.perf_counter() - start
    print(f"{done} connections in {elapsed:.1f} s: {done / elapsed:.1f} connections/s")


if __name__ == "__main__":
    main()
