#!/usr/bin/env python3
"""A billing system's webhook receiver for drover's tests, written apart from drover: it checks
each delivery's Drover-Signature with Python's own hmac and writes one JSON line per request.

Usage: webhook_receiver.py PORT LOG_FILE  (the endpoint's secret in WEBHOOK_SECRET)
"""
import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

SECRET = os.environ["WEBHOOK_SECRET"].encode()
LOG = open(sys.argv[2], "a", buffering=1)


def verified(header, body):
    parts = [p.split("=", 1) for p in header.split(",") if "=" in p]
    stamps = [v for k, v in parts if k == "t"]
    signatures = [v for k, v in parts if k == "v1"]
    if len(stamps) != 1 or not signatures:
        return False
    if abs(time.time() - int(stamps[0])) > 300:
        return False
    expected = hmac.new(SECRET, stamps[0].encode() + b"." + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, s) for s in signatures)


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        valid = verified(self.headers.get("Drover-Signature", ""), body)
        event = json.loads(body) if valid else {}
        LOG.write(json.dumps({
            "header_id": self.headers.get("Drover-Event-Id"),
            "id": event.get("id"),
            "type": event.get("type"),
            "account_id": event.get("account_id"),
            "data": event.get("data"),
            "valid": valid,
        }) + "\n")
        self.send_response(200 if valid else 400)
        self.end_headers()
        self.wfile.write(b"ok" if valid else b"bad signature")

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", int(sys.argv[1])), Receiver).serve_forever()
