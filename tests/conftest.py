"""Fixtures shared by the socket tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import zmq


@pytest.fixture
def ctx() -> Iterator[zmq.Context]:
    """A fresh context per test, destroyed with linger=0; no thread may outlive the test."""
    threads = threading.active_count()
    context = zmq.Context()
    yield context
    context.destroy(linger=0)
    assert context.closed
    assert threading.active_count() <= threads, "a test left a thread running"
