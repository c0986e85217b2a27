"""A tiny demo app for paastis: answers every request with a greeting.

Run by the `process` provider as `python3 examples/hello.py`; it listens on $PORT.
"""
import json
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STARTED = time.time()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        name = os.environ.get("APP_NAME", "hello")
        if "application/json" in self.headers.get("Accept", ""):
            body = json.dumps({"app": name, "up_for_s": round(time.time() - STARTED, 1)}) + "\n"
            kind = "application/json"
        else:
            body = f"Hello from {name}! (up for {time.time() - STARTED:.1f}s, served via {self.headers.get('X-Forwarded-Host', '-')})\n"
            kind = "text/plain; charset=utf-8"
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        print(f"{self.address_string()} {fmt % args}", flush=True)


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
    print(f"listening on 127.0.0.1:{os.environ['PORT']}", flush=True)
    server.serve_forever()
