"""A webhook receiver for the alert tests and the soak: every POSTed JSON
body, in arrival order; https:// when given a certificate and key."""

import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOST = "127.0.0.1"


class Receiver:
    """A webhook receiver: every POSTed JSON body, in arrival order."""

    def __init__(self, tls=None):
        self.bodies = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(n))
                with outer.lock:
                    outer.bodies.append(body)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        scheme = "http"
        if tls is not None:  # (certificate, key): an https:// receiver
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*map(str, tls))
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://{HOST}:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def of(self, rule, status=None):
        with self.lock:
            return [b for b in self.bodies
                    if b["rule"] == rule and (status is None or b["status"] == status)]

    def close(self):
        self.server.shutdown()
