#!/usr/bin/env python3
"""The stand-in's kafka-broker-api-versions.sh, as compose's health check calls it
(`--bootstrap-server HOST:PORT`): a real ApiVersions request (v0) to the broker; exit 0
when it answers with no error. The stand-in has Kafka's server jars, not its tools."""

import socket
import struct
import sys


def main(argv: list[str]) -> int:
    server = argv[argv.index("--bootstrap-server") + 1] if "--bootstrap-server" in argv \
        else "localhost:9092"
    host, port = server.rsplit(":", 1)
    client = b"healthcheck"
    # header v1: api_key 18 (ApiVersions), version 0, correlation id, client id
    body = struct.pack(">hhih", 18, 0, 1, len(client)) + client
    try:
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            head = sock.recv(4)
            size = struct.unpack(">i", head)[0]
            data = b""
            while len(data) < size:
                chunk = sock.recv(size - len(data))
                if not chunk:
                    break
                data += chunk
    except OSError as exc:
        print(f"{server}: {exc}", file=sys.stderr)
        return 1
    correlation, error = struct.unpack(">ih", data[:6])
    print(f"{server}: ApiVersions error code {error}")
    return 0 if correlation == 1 and error == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
