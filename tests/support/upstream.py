"""Upstream app used by the tests: a real HTTP/1.1 server run by the `process` provider.

Listens on 127.0.0.1:$PORT. Environment:
  APP_NAME          name echoed in answers
  STARTS_FILE       if set, one line is appended per start (counts starts across processes)
  STARTUP_DELAY_MS  sleep this long before listening (a slow boot)
  IDLE_TIMEOUT_S    close keep-alive connections idle this long (as Node does after 5 s)
Routes:
  GET  /            "hello from <APP_NAME>"
  GET  /pid         this process id
  GET  /conn        the client port of this connection (tells connections apart)
  GET  /headers     the request headers as JSON
  GET  /slow?ms=N   answers after N milliseconds
  GET  /sse?n=N&gap_ms=M  N server-sent events, M ms apart (chunked, flushed one by one)
  GET  /bytes?mib=N N MiB of zeros, streamed with a Content-Length
  GET  /redirect    302 to its own absolute URL (http://<Host>/target), as apps often do
  GET  /most-waiting  the most connections open at once before their first request came
  POST /echo        {"length": n, "sha256": hex} of the request body (Content-Length or chunked)
"""
import hashlib
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


# Connections open now before their first request came, and the most at once.
WAITING = {"now": 0, "most": 0}
WAITING_LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.waiting = True
        with WAITING_LOCK:
            WAITING["now"] += 1
            WAITING["most"] = max(WAITING["most"], WAITING["now"])

    def came(self):
        """The connection's first request came (or it closed without one)."""
        if self.waiting:
            self.waiting = False
            with WAITING_LOCK:
                WAITING["now"] -= 1

    def parse_request(self):
        self.came()
        return super().parse_request()

    def finish(self):
        self.came()
        super().finish()

    def answer(self, status, body, kind="text/plain"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/pid":
            self.answer(200, str(os.getpid()))
        elif url.path == "/sse":
            query = parse_qs(url.query)
            count = int(query.get("n", ["3"])[0])
            gap = int(query.get("gap_ms", ["300"])[0]) / 1000
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for n in range(count):
                event = f"data: event {n}\n\n".encode()
                self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
                self.wfile.flush()
                time.sleep(gap)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        elif url.path == "/bytes":
            mib = int(parse_qs(url.query).get("mib", ["1"])[0])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(mib * 1024 * 1024))
            self.end_headers()
            chunk = bytes(1024 * 1024)
            for _ in range(mib):
                self.wfile.write(chunk)
        elif url.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", f"http://{self.headers.get('Host')}/target")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif url.path == "/most-waiting":
            with WAITING_LOCK:
                most = WAITING["most"]
            self.answer(200, str(most))
        elif url.path == "/conn":
            self.answer(200, str(self.client_address[1]))
        elif url.path == "/hop-by-hop":
            # Fields for this connection only, one of them named by `Connection`: none may
            # reach the client. The port says which upstream connection answered.
            data = str(self.client_address[1]).encode()
            self.send_response(200)
            self.send_header("Connection", "keep-alive, X-Private")
            self.send_header("Keep-Alive", "timeout=5")
            self.send_header("X-Private", "for the proxy only")
            self.send_header("X-Public", "yes")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif url.path == "/as-written":
            # A head written byte by byte: names in mixed case, two spaces after a colon,
            # an empty value, a field twice, and a hop-by-hop field; no `Date`.
            self.wfile.write(
                b"HTTP/1.1 200 OK\r\n"
                b"Content-Type:  text/plain\r\n"
                b"Set-Cookie: a=1\r\n"
                b"X-Empty:\r\n"
                b"set-cookie: b=2\r\n"
                b"Keep-Alive: timeout=5\r\n"
                b"Content-Length: 7\r\n"
                b"\r\n"
                b"written"
            )
        elif url.path == "/headers":
            headers = {}
            for key, value in self.headers.items():
                headers.setdefault(key.lower(), []).append(value)
            self.answer(200, json.dumps(headers), "application/json")
        elif url.path == "/slow":
            ms = int(parse_qs(url.query).get("ms", ["1000"])[0])
            time.sleep(ms / 1000)
            self.answer(200, f"slow {ms}")
        else:
            self.answer(200, f"hello from {os.environ.get('APP_NAME', '?')}")

    def do_HEAD(self):
        # The head of the default answer, without its body.
        data = f"hello from {os.environ.get('APP_NAME', '?')}".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()

    def do_POST(self):
        digest = hashlib.sha256()
        length = 0
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunk = self.rfile.read(size)
                self.rfile.readline()
                digest.update(chunk)
                length += len(chunk)
        else:
            remaining = int(self.headers.get("Content-Length", "0"))
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 65536))
                if not chunk:
                    break
                digest.update(chunk)
                length += len(chunk)
                remaining -= len(chunk)
        self.answer(200, json.dumps({"length": length, "sha256": digest.hexdigest()}), "application/json")

    def log_message(self, fmt, *args):
        pass


class Server(ThreadingHTTPServer):
    request_queue_size = 1024
    daemon_threads = True


if __name__ == "__main__":
    if os.environ.get("IDLE_TIMEOUT_S"):
        Handler.timeout = float(os.environ["IDLE_TIMEOUT_S"])
    delay = int(os.environ.get("STARTUP_DELAY_MS", "0"))
    if delay:
        time.sleep(delay / 1000)
    starts = os.environ.get("STARTS_FILE")
    if starts:
        with open(starts, "a") as f:
            f.write(f"{os.getpid()}\n")
    server = Server(("127.0.0.1", int(os.environ["PORT"])), Handler)
    print(f"upstream {os.environ.get('APP_NAME', '?')} listening", flush=True)
    sys.stdout.flush()
    server.serve_forever()
