"""A shop's site for the browser tests: fixed pages served over real HTTP on 127.0.0.1, in a thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

# a path to its body and content type, or None (404)
Route = Callable[[str], tuple[bytes, str] | None]


def serve(route: Route | dict[str, tuple[bytes, str]], headers: dict[str, str] | None = None) -> ThreadingHTTPServer:
    """Start a server answering GET by ``route`` (a function of the path, or a dict of paths); ``headers`` go on
    every page. ``shutdown()`` it when done."""
    find = route.get if isinstance(route, dict) else route
    extra = headers or {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            found = find(urlsplit(self.path).path)
            if found is None:
                self.send_error(404)
                return
            body, kind = found
            self.send_response(200)
            self.send_header("Content-Type", kind)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
