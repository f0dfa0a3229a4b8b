"""The SERVER span of each HTTP request, as a small pure-ASGI middleware.

What the FastAPI/ASGI instrumentation does, less what costs: one span per request with the
stable HTTP semantic-convention attributes, the caller's ``traceparent`` continued (through the
configured propagators), the span current while the app runs (so ``get_current_span()`` and
``propagate.inject`` see it). No span per ASGI message and no per-chunk work: ``send`` is
wrapped only to read the response status. The span is a
:class:`~open_autoglm.telemetry._request_spans.RequestSpan`, exported when the response is done.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import Status, StatusCode
from opentelemetry.util.types import AttributeValue

from open_autoglm.telemetry import _names as n
from open_autoglm.telemetry._request_spans import SpanOutlet

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_Headers = list[tuple[bytes, bytes]]


class _ScopeHeaders(Getter[_Headers]):
    def get(self, carrier: _Headers, key: str) -> list[str] | None:
        wanted = key.encode("latin-1")
        values = [v.decode("latin-1") for k, v in carrier if k == wanted]
        return values or None

    def keys(self, carrier: _Headers) -> list[str]:
        return [k.decode("latin-1") for k, _ in carrier]


_GETTER = _ScopeHeaders()


class ServerSpanMiddleware:
    """Wraps an ASGI app: a SERVER span per HTTP request, except for ``excluded_paths``.

    ``routes``: paths that are their own ``http.route`` (low-cardinality API paths); other paths
    get no route attribute and a span named by the method alone, as the conventions say.
    """

    def __init__(
        self,
        app: ASGIApp,
        outlet: SpanOutlet,
        *,
        routes: Iterable[str] = (),
        excluded_paths: Iterable[str] = ("/metrics", "/health"),
    ) -> None:
        self.app = app
        self.outlet = outlet
        self._routes = frozenset(routes)
        self._excluded = frozenset(excluded_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._excluded:
            await self.app(scope, receive, send)
            return
        headers: _Headers = scope["headers"]
        parent = trace.get_current_span(propagate.extract(headers, getter=_GETTER))
        method: str = scope["method"]
        path: str = scope["path"]
        attributes: dict[str, AttributeValue] = {
            n.HTTP_REQUEST_METHOD: method,
            n.URL_PATH: path,
            n.URL_SCHEME: scope.get("scheme", "http"),
            n.NETWORK_PROTOCOL_VERSION: scope.get("http_version", "1.1"),
        }
        server = scope.get("server")
        if server:
            attributes[n.SERVER_ADDRESS] = server[0]
            if server[1] is not None:
                attributes[n.SERVER_PORT] = server[1]
        client = scope.get("client")
        if client:
            attributes[n.CLIENT_ADDRESS] = client[0]
        for key, value in headers:
            if key == b"user-agent":
                attributes[n.USER_AGENT_ORIGINAL] = value.decode("latin-1")
                break
        if path in self._routes:
            attributes[n.HTTP_ROUTE] = path
            name = f"{method} {path}"
        else:
            name = method
        span = self.outlet.start(name, parent.get_span_context(), attributes)
        status = 0

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                attributes[n.HTTP_RESPONSE_STATUS_CODE] = status  # the sampler reads it
            await send(message)

        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            await self.app(scope, receive, send_status)
        except BaseException as exc:
            if not status:
                status = 500
            span.attributes.setdefault(n.ERROR_TYPE, type(exc).__name__)
            raise
        finally:
            otel_context.detach(token)
            if status:
                attributes[n.HTTP_RESPONSE_STATUS_CODE] = status
            if status >= 500:
                attributes.setdefault(n.ERROR_TYPE, str(status))
                span.set_status(Status(StatusCode.ERROR))
            span.end()
