#!/usr/bin/env python3
"""A minimal OTLP/HTTP trace sink for the benchmarks: takes `POST /v1/traces`, answers 200
with an empty body, and keeps a count of exports and bytes in a file (so a run can show that
spans were sent). It decodes nothing: the tests' collector checks the payloads.

    otlp_sink.py PORT COUNT_FILE
"""

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(sys.argv[1])
COUNT_FILE = sys.argv[2]
exports = 0
received = 0


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        global exports, received
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        exports += 1
        received += length
        with open(COUNT_FILE, "w") as out:
            out.write(f"{exports} {received}\n")
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Sink).serve_forever()
