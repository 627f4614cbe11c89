"""The parts of a run on different 'machines': network namespaces joined by a veth link.

Namespace A runs the env host and agent 0, namespace B runs agent 1; they find each other only
through the link's addresses, with CURVE keys on every socket, exactly as `dwm-net launch
--print-commands` tells users to start them by hand. Needs root and iproute2; skips otherwise.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Link
from dwm_net.runlog import read_jsonl

REPO = Path(__file__).resolve().parents[1]
CONFIG = ["--preset", "tiny", "--method", "both", "--beta", "0.5", "--steps", "300"]


def _in(ns: str, *args: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "launch", *args],
                            cwd=REPO, stdout=log.open("wb"), stderr=subprocess.STDOUT)


@pytest.mark.timeout(150)
def test_env_host_and_agents_in_separate_namespaces(plain_link: Link, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    gen = subprocess.run([sys.executable, "-m", "launch", "keys", "generate", str(keys)],
                         capture_output=True, check=False, text=True, timeout=60)
    assert gen.returncode == 0, gen.stderr
    a, b = plain_link.addr_a, plain_link.addr_b
    host = f"tcp://{a}:5555"
    procs = [
        _in(plain_link.ns_a, "env-host", "--bind", host, "--run-dir", str(tmp_path / "host"),
            "--keys", str(keys), *CONFIG, log=tmp_path / "host.log"),
        _in(plain_link.ns_a, "agent", "--id", "0", "--connect", host, "--bind", f"tcp://{a}:5600",
            "--run-dir", str(tmp_path / "a0"), "--keys", str(keys), *CONFIG, log=tmp_path / "a0.log"),
        _in(plain_link.ns_b, "agent", "--id", "1", "--connect", host, "--bind", f"tcp://{b}:5601",
            "--run-dir", str(tmp_path / "a1"), "--keys", str(keys), *CONFIG, log=tmp_path / "a1.log"),
    ]
    try:
        codes = [p.wait(timeout=120) for p in procs]
    finally:
        for p in procs:
            p.kill()
    logs = {name: (tmp_path / f"{name}.log").read_text() for name in ("host", "a0", "a1")}
    assert codes == [0, 0, 0], logs
    train = [r for r in read_jsonl(tmp_path / "host/episodes.jsonl") if r["mode"] == "train"]
    assert train and train[-1]["env_steps"] >= 300
    last = list(read_jsonl(tmp_path / "a1/agent-1.jsonl"))[-1]
    # Agent 1 (namespace B) got agent 0's rollouts across the link, and sent its own.
    assert last.get("received/rollout", 0) > 0 and last["recv_bytes/rollout"] > 0
    assert last["sent_bytes"] > 0
    ledger = list(read_jsonl(tmp_path / "a1/ledger-1.jsonl"))
    assert sum(r["wire_bytes"] for r in ledger if r["outcome"] == "sent" and r["kind"] != "heartbeat") > 0
    assert "insecure" not in logs["host"].lower()  # keys were in use: no plain-tcp warning
