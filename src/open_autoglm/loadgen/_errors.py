"""The load generator's exceptions: user mistakes (raised before anything is sent) and the
failures of one request (recorded by type, the run goes on)."""

from __future__ import annotations

from open_autoglm.errors import OpenAutoGLMError


class LoadgenError(OpenAutoGLMError):
    """Base of every error the load generator raises."""


class ConfigError(LoadgenError):
    """An impossible profile, a bad URL or option: raised when the config is built."""


class DatasetError(ConfigError):
    """A dataset file that is missing, unreadable or malformed."""


class RequestError(LoadgenError):
    """One request failed; :attr:`error_type` is what records and ``error.type`` carry."""

    @property
    def error_type(self) -> str:
        return type(self).__name__


class HTTPStatusError(RequestError):
    """The server answered with a non-2xx status; its type is the status code."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:200]}")
        self.status = status

    @property
    def error_type(self) -> str:
        return str(self.status)


class ConnectError(RequestError):
    """No connection to the server (refused, unresolvable, reset before the response)."""


class ReadTimeout(RequestError):
    """The request ran past its timeout (a stalled stream included)."""


class StreamDropped(RequestError):
    """The connection broke in the middle of the response."""


class MalformedStream(RequestError):
    """The response was not valid server-sent events carrying JSON."""


class IncompleteStream(RequestError):
    """The stream ended cleanly but without ``[DONE]`` or a finish reason."""


class StreamError(RequestError):
    """The server reported an error: an error object in the stream or in a JSON body, an
    ``event: error`` event, or ``finish_reason: "error"``; the message is the server's."""


class Cancelled(RequestError):
    """The run was interrupted while this request was in flight."""


class AbnormalFinish(RequestError):
    """The stream ended with a finish reason that is not a normal end of generation (normal:
    ``stop``, ``length``, ``tool_calls`` and their spellings in other APIs)."""


class GenerationAborted(AbnormalFinish):
    """The server aborted the generation (``finish_reason: "abort"``, as vLLM and SGLang send
    when the engine drops a request) and then closed the stream as if it were complete."""


class NoOutput(RequestError):
    """The response ended without a single chunk of output."""
