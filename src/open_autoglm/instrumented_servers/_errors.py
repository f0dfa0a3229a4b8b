"""OpenAI-style API errors: ``{"error": {"message", "type", "param", "code"}}`` with a 4xx/5xx."""

from __future__ import annotations

import json

from starlette.responses import Response

from open_autoglm.errors import OpenAutoGLMError


class ServerError(OpenAutoGLMError):
    """Base of every error the instrumented server raises."""


class APIError(ServerError):
    """An error the API reports to the client; raised anywhere in request handling."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",  # the field's name in OpenAI's API
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        counted: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}
        #: True when the request's telemetry already counted this failure (by the backend's
        #: error class), so the error counter must not count it again by HTTP status.
        self.counted = counted

    def body(self) -> dict[str, dict[str, str | None]]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self) -> Response:
        return Response(
            json.dumps(self.body()),
            status_code=self.status,
            media_type="application/json",
            headers=self.headers,
        )


def status_error_type(status: int) -> str:
    """The OpenAI error ``type`` for an HTTP status without a more specific one."""
    if status == 401:
        return "authentication_error"
    if status == 404:
        return "not_found_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"
