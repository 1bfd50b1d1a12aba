#!/usr/bin/env python3
"""A stand-in for mailpit (step 9 of make proof-deploy): an SMTP sink on :1025 that keeps
each message's envelope and subject in memory, and on :8025 `GET /api/v1/messages`
({"total": N, "messages": [{"To": [...], "Subject": ...}]}) and `GET /readyz`.
`mailpit readyz` exits 0 when the web port answers, as the real binary's subcommand does."""

from __future__ import annotations

import email
import json
import signal
import socketserver
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MESSAGES: list[dict] = []
LOCK = threading.Lock()


class SMTP(socketserver.StreamRequestHandler):
    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self.reply("220 mailpit stand-in ESMTP")
        sender, recipients = "", []
        while line := self.rfile.readline():
            verb = line.decode(errors="replace").strip()
            upper = verb.upper()
            if upper.startswith(("EHLO", "HELO")):
                self.reply("250-mailpit stand-in" if upper.startswith("EHLO") else "250 ok")
                if upper.startswith("EHLO"):
                    self.reply("250 8BITMIME")
            elif upper.startswith("MAIL FROM:"):
                sender, recipients = verb[10:].strip(" <>"), []
                self.reply("250 ok")
            elif upper.startswith("RCPT TO:"):
                recipients.append(verb[8:].strip(" <>"))
                self.reply("250 ok")
            elif upper == "DATA":
                self.reply("354 end with .")
                lines = []
                while (data := self.rfile.readline()) not in (b".\r\n", b".\n", b""):
                    lines.append(data[1:] if data.startswith(b"..") else data)
                message = email.message_from_bytes(b"".join(lines))
                with LOCK:
                    MESSAGES.append({"From": sender, "To": recipients,
                                     "Subject": str(message.get("Subject", ""))})
                self.reply("250 queued")
            elif upper in ("RSET", "NOOP"):
                self.reply("250 ok")
            elif upper == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 not implemented")


class Web(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/api/v1/messages"):
            with LOCK:
                body = json.dumps({"total": len(MESSAGES), "messages": MESSAGES}).encode()
        elif self.path == "/readyz":
            body = b"ok"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def main(argv: list[str]) -> int:
    if argv[:1] == ["readyz"]:
        try:
            return 0 if urllib.request.urlopen("http://127.0.0.1:8025/readyz",
                                               timeout=3).status == 200 else 1
        except OSError:
            return 1
    # PID 1 in its container: SIGTERM has no default action there, so say what it does
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    smtp = socketserver.ThreadingTCPServer(("0.0.0.0", 1025), SMTP)
    smtp.daemon_threads = True
    threading.Thread(target=smtp.serve_forever, daemon=True).start()
    print("mailpit stand-in: SMTP on :1025, API on :8025", flush=True)
    ThreadingHTTPServer(("0.0.0.0", 8025), Web).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
