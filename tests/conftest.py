"""Fixtures shared by the socket tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass

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


# --- network namespaces (tests/test_netns.py, tests/test_machines.py) ---------------------------

SKIP_NETNS = "needs root and iproute2 (ip, tc)"


def _ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, check=False, text=True, timeout=10)


@dataclass(frozen=True)
class Link:
    ns_a: str
    ns_b: str
    dev_a: str
    addr_b: str
    addr_a: str


def _ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, check=False, text=True, timeout=10)


def _veth(shape: bool, tag: str) -> Iterator[Link]:
    """Namespaces A and B joined by a veth pair (A's side shaped by tbf if `shape`); always
    torn down. Skips without root or iproute2."""
    if os.geteuid() != 0:
        pytest.skip(f"{SKIP_NETNS}: not running as root")
    missing = [tool for tool in ("ip", "tc") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{SKIP_NETNS}: {', '.join(missing)} not found")
    pid = os.getpid()
    net = f"10.{201 if shape else 202}.{pid % 250 + 1}"  # only inside the test namespaces
    ns_a, ns_b = f"dwmA{tag}{pid}", f"dwmB{tag}{pid}"
    dev_a, dev_b = f"dwa{tag}{pid}"[:15], f"dwb{tag}{pid}"[:15]
    created: list[str] = []
    try:
        for ns in (ns_a, ns_b):
            r = _ip("ip", "netns", "add", ns)
            if r.returncode != 0:
                pytest.skip(f"{SKIP_NETNS}: `ip netns add` failed: {r.stderr.strip()}")
            created.append(ns)
        steps = [
            ("ip", "link", "add", dev_a, "netns", ns_a, "type", "veth", "peer", "name", dev_b,
             "netns", ns_b),
            ("ip", "-n", ns_a, "addr", "add", f"{net}.1/24", "dev", dev_a),
            ("ip", "-n", ns_b, "addr", "add", f"{net}.2/24", "dev", dev_b),
            ("ip", "-n", ns_a, "link", "set", dev_a, "up"),
            ("ip", "-n", ns_b, "link", "set", dev_b, "up"),
            # A process reaching its own namespace's address goes through lo, down by default.
            ("ip", "-n", ns_a, "link", "set", "lo", "up"),
            ("ip", "-n", ns_b, "link", "set", "lo", "up"),
        ]
        if shape:
            steps.append(("ip", "netns", "exec", ns_a, "tc", "qdisc", "add", "dev", dev_a, "root",
                          "tbf", "rate", "200kbit", "burst", "16kb", "latency", "50ms"))
        for step in steps:
            r = _ip(*step)
            if r.returncode != 0:
                pytest.skip(f"{SKIP_NETNS}: `{' '.join(step)}` failed: {r.stderr.strip()}")
        yield Link(ns_a, ns_b, dev_a, f"{net}.2", f"{net}.1")
    finally:
        for ns in created:  # deleting a namespace deletes its end of the veth pair too
            _ip("ip", "netns", "del", ns)



@pytest.fixture
def link() -> Iterator[Link]:
    """A and B over a tbf-shaped veth pair (200 kbit/s from A)."""
    yield from _veth(True, "s")


@pytest.fixture
def plain_link() -> Iterator[Link]:
    """A and B over an unshaped veth pair: two 'machines'."""
    yield from _veth(False, "p")


