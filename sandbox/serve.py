"""Run a sandbox (or any WSGI app) on a real loopback port, in a thread or in the foreground."""

from __future__ import annotations

import threading
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        """Access lines would drown test output; the sandboxes keep their own request log."""


class ServerThread:
    """A threaded HTTP server on 127.0.0.1 serving `app` until `stop()`; usable as a context manager."""

    def __init__(self, app: Any, port: int = 0) -> None:
        self.app = app
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", port, app, threaded=True, request_handler=_QuietHandler
        )
        self._server.daemon_threads = True
        self.port = self._server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        # a short poll: stop() waits for the loop to notice, and tests stop servers often
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def start(self) -> ServerThread:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
