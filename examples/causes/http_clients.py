"""HTTP calls with requests against a local server: one requests.Session per call."""

import http.server
import threading

import requests


class _Hello(http.server.BaseHTTPRequestHandler):
    """A tiny HTTP/1.0 endpoint: each response closes its connection, so one thread serves all."""

    # Headers and body go out in two writes: without this, Nagle and delayed ACKs cost 40 ms.
    disable_nagle_algorithm = True

    def do_GET(self):
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


def start_server():
    """An http.server on 127.0.0.1 (a free port) served by a daemon thread; returns it and its URL."""
    server = http.server.HTTPServer(("127.0.0.1", 0), _Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/status"


# Leaky: sessions "closed at shutdown". Each one keeps its adapters and urllib3 pool manager.
_open_sessions = []


def fetch_leaky(url):
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment: the server is on 127.0.0.1
    _open_sessions.append(session)
    return session.get(url, timeout=5).status_code


def fetch_fixed(url):
    """Fixed: the session is closed (and dropped) when the call is done."""
    with requests.Session() as session:
        session.trust_env = False
        return session.get(url, timeout=5).status_code


def close_all():
    while _open_sessions:
        _open_sessions.pop().close()
