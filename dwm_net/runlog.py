"""Run-directory records: append-only JSONL metrics and small atomic JSON state files.

Every figure of a run is recomputed from these files, so they are written the safe way:
JSONL is appended one whole line per `write` call (a crash can cut only the last line, which
readers skip), and state files go through a temp file and `os.replace` (never half-written).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, Self


def _clean(value: Any) -> Any:
    """JSON-safe scalars: numpy numbers become Python ones, inf/NaN become None."""
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class JsonlWriter:
    """Appends one JSON object per line to `path` (created with its parent directories)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (kept open)

    def write(self, record: Mapping[str, Any]) -> None:
        line = json.dumps({k: _clean(v) for k, v in record.items()}, separators=(",", ":"))
        self._file.write(line + "\n")
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TensorBoardLog:
    """Scalars to TensorBoard event files under `directory` (tensorboardX: no TensorFlow).

    A mirror of the JSONL records for people who live in TensorBoard; the JSONL files stay
    the source of truth. Non-numeric and non-finite values are skipped.
    """

    def __init__(self, directory: str | Path) -> None:
        from tensorboardX import SummaryWriter

        self._writer = SummaryWriter(logdir=str(directory), flush_secs=30)

    def scalars(self, values: Mapping[str, Any], step: int, prefix: str = "") -> None:
        for key, value in values.items():
            value = _clean(value)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self._writer.add_scalar(prefix + key, value, global_step=step)

    def close(self) -> None:
        self._writer.close()


class Stopwatch:
    """Cumulative wall-clock seconds per named phase: ``with watch("train"): ...``.

    Where a process's time goes (acting, training, comms, waiting), from its own clock, for
    `dwm-net bench learn` and the records. Phases do not nest.
    """

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self._name: str | None = None
        self._t0 = 0.0

    def __call__(self, name: str) -> Stopwatch:
        self._name = name
        return self

    def __enter__(self) -> Self:
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._name is not None
        self.totals[self._name] = self.totals.get(self._name, 0.0) + time.perf_counter() - self._t0
        self._name = None

    def as_metrics(self, prefix: str = "time/") -> dict[str, float]:
        return {prefix + k: v for k, v in self.totals.items()}


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """The records of a JSONL file; a cut or corrupt line (a crash mid-write, bytes that are not
    UTF-8) is skipped. Read as bytes and decoded line by line: decoding the whole file as text,
    one bad byte ended the read with a UnicodeDecodeError."""
    p = Path(path)
    if not p.exists():
        return
    with open(p, "rb") as fh:
        for line in fh:
            try:
                record = json.loads(line.decode("utf-8"))
            except ValueError:  # JSONDecodeError, UnicodeDecodeError
                continue
            if isinstance(record, dict):
                yield record


def write_atomic(path: str | Path, write: Callable[[IO[bytes]], object]) -> None:
    """``write(fh)`` into a temp file in ``path``'s directory, fsync, then `os.replace`: the
    file is either the old one or the whole new one, never half-written."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | Path, data: Mapping[str, Any]) -> None:
    """Write `data` as indented JSON with `write_atomic`."""
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    write_atomic(path, lambda fh: fh.write(text.encode("utf-8")))


def now() -> float:
    """Wall-clock seconds since the epoch, the time base of every run-dir record."""
    return time.time()


__all__ = ["JsonlWriter", "Stopwatch", "TensorBoardLog", "now", "read_jsonl", "write_atomic", "write_json_atomic"]
