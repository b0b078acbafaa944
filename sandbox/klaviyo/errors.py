"""Klaviyo's error body: `{"errors": [{id, status, code, title, detail, source, meta}]}`."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Response, jsonify


class ApiError(Exception):
    """A refusal the sandbox answers with Klaviyo's status, code and error body."""

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str,
        *,
        pointer: str | None = None,
        parameter: str | None = None,
        meta: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.pointer = pointer
        self.parameter = parameter
        self.meta = meta or {}
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        source: dict[str, str] = {}
        if self.pointer is not None:
            source["pointer"] = self.pointer
        if self.parameter is not None:
            source["parameter"] = self.parameter
        error = {
            "id": str(uuid.uuid4()),
            "status": self.status,
            "code": self.code,
            "title": self.title,
            "detail": self.detail,
            "source": source,
            "links": {},
            "meta": self.meta,
        }
        return {"errors": [error]}

    def response(self) -> Response:
        response = jsonify(self.body())
        response.status_code = self.status
        response.content_type = "application/vnd.api+json"
        response.headers.update(self.headers)
        return response


def invalid(detail: str, pointer: str | None = None, parameter: str | None = None) -> ApiError:
    """A 400 `invalid` naming the member (pointer) or query parameter at fault."""
    return ApiError(400, "invalid", "Invalid input.", detail, pointer=pointer, parameter=parameter)


def not_found(detail: str = "Not found.") -> ApiError:
    return ApiError(404, "not_found", "Not found.", detail)
