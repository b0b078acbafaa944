"""Fault injection: server errors, slow answers, dropped connections, throttling and outages."""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time
from dataclasses import asdict, dataclass, fields
from typing import Any

from flask import request

from sandbox.klaviyo.errors import ApiError
from sandbox.klaviyo.limits import throttled


class DroppedConnection(Exception):
    """Raised to close the client's connection without an answer."""


@dataclass
class Faults:
    """What goes wrong, and how often; all zero means a healthy Klaviyo."""

    error_rate: float = 0.0
    error_statuses: tuple[int, ...] = (500, 502, 503)
    drop_rate: float = 0.0
    drop_after_rate: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 0.0
    throttle_until: float = 0.0
    outage: bool = False

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def update(self, settings: dict[str, Any]) -> None:
        """Apply `settings`; `throttle_seconds` throttles every request for that long from now."""
        names = {field.name for field in fields(self)}
        with self._lock:
            for name, value in settings.items():
                if name == "throttle_seconds":
                    self.throttle_until = time.time() + float(value)
                elif name == "error_statuses":
                    self.error_statuses = tuple(int(status) for status in value)
                elif name in names:
                    setattr(self, name, type(getattr(self, name))(value))
                else:
                    raise ValueError(f"unknown fault {name!r}")

    def clear(self) -> None:
        self.update({field.name: field.default for field in fields(self) if field.name != "error_statuses"})
        self.error_statuses = (500, 502, 503)

    def describe(self) -> dict[str, Any]:
        return asdict(self)

    def before_request(self) -> None:
        """Inject the configured faults that strike before Klaviyo has done anything."""
        if self.slow_rate and random.random() < self.slow_rate:
            time.sleep(self.slow_seconds)
        if self.outage:
            raise server_error(503)
        remaining = self.throttle_until - time.time()
        if remaining > 0:
            raise throttled(int(remaining) + 1)
        if self.drop_rate and random.random() < self.drop_rate:
            raise DroppedConnection
        if self.error_rate and random.random() < self.error_rate:
            raise server_error(random.choice(self.error_statuses))

    def drop_after(self) -> bool:
        """True when the work is done but the answer should be lost on the way back."""
        return bool(self.drop_after_rate) and random.random() < self.drop_after_rate


def server_error(status: int) -> ApiError:
    titles = {
        500: "A server error occurred.",
        502: "Bad gateway.",
        503: "Service unavailable.",
        504: "Gateway timeout.",
    }
    title = titles.get(status, "A server error occurred.")
    return ApiError(status, "error", title, title)


def drop_connection() -> None:
    """Shut the client's socket so it sees a connection reset or an empty reply."""
    sock = request.environ.get("werkzeug.socket") or request.environ.get("gunicorn.socket")
    if sock is not None:
        with contextlib.suppress(OSError):  # the client may have gone already
            sock.shutdown(socket.SHUT_RDWR)
