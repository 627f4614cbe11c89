"""Bad input to `dwm-net` (flags, config files, run dirs, output paths, key sets) ends with one
line on stderr and exit code 2, never a traceback, and before any process starts.

Every test runs the CLI as users do, in a subprocess; none gets as far as starting a run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dwm_net.config import load_config, to_json

ENV = {**os.environ, "COLUMNS": "200"}  # help text on one line per option


def dwm(*args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "launch", *map(str, args)], capture_output=True,
                          check=False, text=True, timeout=timeout, env=ENV)


def one_line_error(r: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Assert exit 2, no traceback, exactly one `error: ...` line on stderr holding `needles`."""
    assert "Traceback" not in r.stderr + r.stdout, r.stderr
    assert r.returncode == 2, (r.returncode, r.stderr, r.stdout)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def make_run(path: Path, episodes: bytes = b"") -> Path:
    """A run directory as `dwm-net launch` leaves it (config.json, episodes.jsonl), no git."""
    path.mkdir(parents=True)
    record = {"config": json.loads(to_json(load_config("tiny"))), "n_agents": 2}
    (path / "config.json").write_text(json.dumps(record), encoding="utf-8")
    (path / "episodes.jsonl").write_bytes(episodes)
    return path


def make_keys(tmp_path: Path, *delete: str) -> Path:
    """`dwm-net keys generate` into tmp_path/keys, then delete the files named (relative)."""
    keys = tmp_path / "keys"
    r = dwm("keys", "generate", keys)
    assert r.returncode == 0, r.stderr
    for name in delete:
        (keys / name).unlink()
    return keys


# --- 1. negative seeds --------------------------------------------------------------------------

@pytest.mark.parametrize("args", [["env", "play"], ["env", "render"], ["bench", "env"], ["bench", "train"],
                                  ["bench", "memory"], ["eval", "RUN"]])
def test_negative_seed_is_a_one_line_usage_error(args: list[str], tmp_path: Path) -> None:
    args = [str(make_run(tmp_path / "run")) if a == "RUN" else a for a in args]
    one_line_error(dwm(*args, "--seed", "-1"), "--seed", ">= 0", "-1")


# --- 2. output paths that are files or cannot be created --------------------------------------

@pytest.mark.parametrize("command", ["summarize", "plot"])
def test_out_that_is_a_file_is_a_one_line_error(command: str, tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    existing = tmp_path / "existing.json"
    existing.write_text("{}")
    one_line_error(dwm(command, run, "--out", existing), f"--out {existing} is a file", "folder")
    assert existing.read_text() == "{}"


def test_summarize_out_that_cannot_be_created_is_a_one_line_error(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    one_line_error(dwm("summarize", run, "--out", "/proc/nope/summaries"), "cannot create --out folder",
                   "/proc/nope/summaries", "choose another --out")


@pytest.mark.parametrize("where", ["/proc/nope", "FILE"])
def test_launch_run_dir_that_cannot_be_created_is_a_one_line_error(where: str, tmp_path: Path) -> None:
    if where == "FILE":
        where = str(tmp_path / "a-file")
        Path(where).write_text("x")
    r = dwm("launch", "--preset", "tiny", "--steps", "10", "--no-live", "--run-dir", where)
    one_line_error(r, where, "--run-dir")
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize("dry_run", [True, False])
def test_sweep_root_that_is_a_file_is_a_one_line_error(dry_run: bool, tmp_path: Path) -> None:
    root = tmp_path / "a-file"
    root.write_text("x")
    r = dwm("sweep", "--root", root, "--preset", "tiny", "--steps", "10", "--methods", "independent",
            *(["--dry-run"] if dry_run else []))
    one_line_error(r, f"--root {root} is a file")


def test_sweep_root_that_cannot_be_created_is_a_one_line_error() -> None:
    r = dwm("sweep", "--root", "/proc/nope/sweep", "--preset", "tiny", "--steps", "10", "--methods", "independent")
    one_line_error(r, "cannot create --root folder /proc/nope/sweep")


# --- 3. bytes that are not UTF-8 ----------------------------------------------------------------

def test_config_show_of_a_binary_file_is_a_one_line_error(tmp_path: Path) -> None:
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00[env]\n")
    one_line_error(dwm("config", "show", "-f", binary), str(binary), "not UTF-8", "0xff")
    one_line_error(dwm("launch", "--file", binary, "--no-live", "--run-dir", tmp_path / "run"), "not UTF-8")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", [["eval", "RUN"], ["launch", "--resume", "RUN", "--no-live"],
                                     ["agent", "--id", "0", "--config", "RUN/config.json"]])
def test_non_utf8_run_config_is_a_one_line_error(command: list[str], tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_bytes(b'{"config": "\xff\xfe"}')
    r = dwm(*[a.replace("RUN", str(run)) for a in command])
    one_line_error(r, str(run / "config.json"), "not UTF-8")


def test_summarize_skips_non_utf8_lines_of_episodes_jsonl(tmp_path: Path) -> None:
    good = [json.dumps({"mode": "eval", "env_steps": s, "won": True, "return": 1.0}).encode() for s in (100, 200)]
    lines = [good[0], b'{"mode": "eval", "env_steps": 150, "\xff\xfe": 1}', good[1]]
    run = make_run(tmp_path / "run", b"\n".join(lines) + b"\n")
    r = dwm("summarize", run, "--out", tmp_path / "out")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    summary = json.loads(Path(r.stdout.strip()).read_text())
    assert [e[0] for e in summary["eval"]] == [100, 200]  # the line that is not UTF-8 skipped


# --- 4. config files that are not TOML ----------------------------------------------------------

@pytest.mark.parametrize("command", [["launch", "--no-live"], ["config", "show"]])
def test_a_runs_config_json_given_as_toml_names_resume(command: list[str], tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    extra = ["--run-dir", str(tmp_path / "new")] if command[0] == "launch" else []
    err = one_line_error(dwm(*command, "--file", run / "config.json", *extra), "looks like a run's config.json",
                         f"--resume {run}", "--config")
    assert "Invalid statement" not in err
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("command", [["launch", "--no-live"], ["config", "show"]])
def test_toml_with_a_byte_order_mark_says_remove_it(command: list[str], tmp_path: Path) -> None:
    bom = tmp_path / "bom.toml"
    bom.write_bytes(b'\xef\xbb\xbfpreset = "tiny"\n')
    extra = ["--run-dir", str(tmp_path / "new")] if command[0] == "launch" else []
    one_line_error(dwm(*command, "--file", bom, *extra), str(bom), "byte-order mark", "remove")


# --- 5. sweep values that would share run directories -----------------------------------------

@pytest.mark.parametrize("flags, needles", [
    (["--methods", "independent,independent"], ["--methods", "independent", "more than once"]),
    (["--scenarios", "3m,3m"], ["--scenarios", "3m", "more than once"]),
    (["--betas", "0.1,0.1"], ["--betas", "0.1", "more than once"]),
    (["--betas", "0.1,0.10"], ["--betas", "0.1", "more than once"]),
    (["--betas", "0.1234567,0.1234568"], ["0.1234567 and 0.1234568", "-b0.123457"]),
])
def test_sweep_rejects_values_that_share_a_run_directory(flags: list[str], needles: list[str],
                                                         tmp_path: Path) -> None:
    r = dwm("sweep", "--root", tmp_path / "sweep", "--dry-run", *flags)
    one_line_error(r, *needles)


def test_sweep_dry_run_lists_distinct_betas(tmp_path: Path) -> None:
    r = dwm("sweep", "--root", tmp_path / "sweep", "--dry-run", "--methods", "experience", "--betas", "0.1,0.2")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 2 and len(set(r.stdout.splitlines())) == 2


# --- 6. square brackets in help -----------------------------------------------------------------

def test_help_keeps_square_brackets() -> None:
    r = dwm("config", "show", "--help")
    assert r.returncode == 0 and "[env]/[model]/[train]/[share]/[comms]/[run]" in r.stdout, r.stdout
    r = dwm("keys", "generate", "--help")
    assert r.returncode == 0 and "[default: 2]" in r.stdout, r.stdout


def test_no_help_text_holds_unescaped_rich_markup() -> None:
    """A `[word...]` in a help string is a Rich tag and vanishes from --help; escape it `\\[`."""
    import typer

    from launch.cli import app

    tag = re.compile(r"(?<!\\)\[[a-z#/@][^\[]*?\]")
    found = []

    def walk(cmd, path: str) -> None:
        texts = [cmd.help or ""] + [getattr(p, "help", None) or "" for p in cmd.params]
        found.extend(f"{path}: {m.group()}" for t in texts for m in tag.finditer(t))
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, f"{path} {name}")

    walk(typer.main.get_command(app), "dwm-net")
    assert not found, found


# --- 7. empty lists -----------------------------------------------------------------------------

@pytest.mark.parametrize("budgets, needle", [("", "--budgets is empty"), (" , ", "--budgets is empty"),
                                             ("2KB/step", "bytes-per-second"), ("5XB/s", "bad budget")])
def test_bench_comms_rejects_bad_budget_lists_before_running(budgets: str, needle: str) -> None:
    one_line_error(dwm("bench", "comms", "--budgets", budgets, timeout=30), needle)


# --- 8. key sets missing a key ------------------------------------------------------------------

def test_launch_with_a_missing_secret_key_fails_before_starting(tmp_path: Path) -> None:
    keys = make_keys(tmp_path, "private/agent-1.key_secret")
    run = tmp_path / "run"
    r = dwm("launch", "--preset", "tiny", "--steps", "10", "--no-live", "--run-dir", run, "--keys", keys)
    one_line_error(r, "no secret key", "agent-1.key_secret", "keys generate")
    assert not run.exists()  # nothing started


def test_launch_needs_a_key_per_agent_of_the_scenario(tmp_path: Path) -> None:
    keys = make_keys(tmp_path)  # agent-0 and agent-1 only; 3m has three agents
    run = tmp_path / "run"
    r = dwm("launch", "--preset", "tiny", "--scenario", "3m", "--steps", "10", "--no-live", "--run-dir", run,
            "--keys", keys)
    one_line_error(r, "agent-2")
    assert not run.exists()


@pytest.mark.parametrize("part, deleted, needle", [
    (["env-host"], "private/env-host.key_secret", "env-host.key_secret"),
    (["agent", "--id", "1"], "private/agent-1.key_secret", "agent-1.key_secret"),
    (["agent", "--id", "0"], "env-host.key", "no public key for 'env-host'"),  # cannot connect to it
    (["learner", "--method", "centralized"], "private/learner.key_secret", "learner.key_secret"),
])
def test_parts_with_a_missing_key_fail_in_one_line(part: list[str], deleted: str, needle: str,
                                                   tmp_path: Path) -> None:
    keys = make_keys(tmp_path, deleted)
    run = tmp_path / "run"
    r = dwm(*part, "--preset", "tiny", "--run-dir", run, "--keys", keys, "--connect" if part[0] != "env-host"
            else "--bind", "tcp://127.0.0.1:1", timeout=30)
    one_line_error(r, needle, "keys generate")
    assert not run.exists()
