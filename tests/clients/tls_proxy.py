#!/usr/bin/env python3
"""A TLS-terminating reverse proxy for tests: https://127.0.0.1:PORT -> http://UPSTREAM.

    tls_proxy.py PORT UPSTREAM_HOST:PORT CERT KEY

Forwards each POST with its headers and body, returns the upstream response, and records
whether every request carried a SigV4 Authorization header (printed as `unsigned N` on
stderr when one did not).
"""
import http.client
import http.server
import ssl
import sys


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if not self.headers.get("authorization", "").startswith("AWS4-HMAC-SHA256 Credential="):
            sys.stderr.write(f"unsigned {self.path}\n")
        conn = http.client.HTTPConnection(self.server.upstream, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        conn.request("POST", self.path, body, headers)
        r = conn.getresponse()
        data = r.read()
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(k, v)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        conn.close()

    def log_message(self, *args):
        pass


def main():
    port, upstream, cert, key = sys.argv[1:5]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), Proxy)
    server.upstream = upstream
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
