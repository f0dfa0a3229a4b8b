"""Fixtures of the proxy's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from proxy_upstream import ThreadServer, Upstream, crafted_app


@pytest.fixture
def crafted_upstream() -> Iterator[tuple[Upstream, ThreadServer]]:
    state = Upstream()
    server = ThreadServer(crafted_app(state))
    state.url = server.start()
    yield state, server
    server.stop()
