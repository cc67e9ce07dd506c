"""What the fakes of outside services share: a threaded HTTP/1.1 server run in the background, JSON answers."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class JsonHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # one buffered write per response and no Nagle delay: otherwise a kept-alive connection stalls 40 ms on
    # every reply (headers and body as two small segments meet the client's delayed ACK)
    wbufsize = -1
    disable_nagle_algorithm = True

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send_json(self, status: int, obj, headers: dict | None = None) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))


class BackgroundServer:
    """``start()``/``stop()``, a context manager, and ``url`` for a fake whose ``self.server`` is set."""

    server: ThreadingHTTPServer
    thread_name = "fake-server"

    def _make_server(self, host: str, port: int, handler: type[JsonHandler]) -> None:
        owner = self

        class Handler(handler):
            pass

        Handler.owner = owner
        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self):
        self._thread = threading.Thread(target=self.server.serve_forever, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def serve_until_interrupted(self) -> int:
        """For a fake's command line: print the URL, serve in this thread until Ctrl-C."""
        print(self.url, flush=True)
        try:
            self.server.serve_forever()
        except KeyboardInterrupt:
            pass
        return 0

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
