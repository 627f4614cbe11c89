"""The launcher's live terminal view: run header, per-agent learning and comms tables.

The launcher feeds plain data: `RunState.update(sender, values, now)` for every metrics
message, then `LiveView.refresh(now)` (a terminal) or `plain_line(...)` every few seconds
(a pipe or `--no-live`). Nothing here imports the rest of the project, blocks, or starts a
thread, and no metric value, however malformed, can make rendering raise.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self, TextIO

from rich.console import Console, Group, RenderableType
from rich.constrain import Constrain
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

# Mirror comms.messages (not imported: the view takes plain data and stays dependency-free).
ENV_HOST = -1
LEARNER = -3

VIEW_WIDTH = 80  # the whole view fits an 80-column terminal; wider ones get the same layout
SPARK_CHARS = "▁▂▃▄▅▆▇█"
SPARK_POINTS = 30
EVAL_HISTORY = 500  # enough for any run's evals; bounded so a runaway sender can't grow it
STALE_S = 10.0  # a sender silent this long gets its label in red
DASH = "-"


@dataclass(frozen=True)
class RunInfo:
    """What was launched; fixed for the run."""

    scenario: str
    method: str
    beta: float | None  # None: a method β does not apply to (independent, centralized); not shown
    budget: str
    seed: int
    preset: str
    n_agents: int
    steps: int  # target env steps
    run_dir: str


class RunState:
    """Latest metrics per sender, the eval history and the launcher's per-process info."""

    def __init__(self, now: float | None = None) -> None:
        self.started_at: float = time.monotonic() if now is None else now
        self.values: dict[int, dict[str, Any]] = {}
        self.last_seen: dict[int, float] = {}
        self.eval_history: deque[tuple[int, float]] = deque(maxlen=EVAL_HISTORY)
        self.restarts: dict[int, int] = {}
        self.statuses: dict[int, str] = {}
        # (time, env_steps) of the env host's first and latest reports: the ETA's rate.
        self.first_steps: tuple[float, float] | None = None
        self.last_steps: tuple[float, float] | None = None

    def update(self, sender: int, values: Mapping[str, Any], now: float | None = None) -> None:
        """Merge one metrics message (latest value per key wins)."""
        now = time.monotonic() if now is None else now
        if not isinstance(values, Mapping):
            return
        merged = self.values.setdefault(sender, {})
        merged.update((k, v) for k, v in values.items() if isinstance(k, str))
        self.last_seen[sender] = now
        if sender != ENV_HOST:
            return
        steps = _num(values.get("env_steps"))
        if steps is not None and math.isfinite(steps):
            # A drop means the env host restarted: measure the rate afresh from here.
            if self.first_steps is None or self.last_steps is None or steps < self.last_steps[1]:
                self.first_steps = (now, steps)
            self.last_steps = (now, steps)
        rate, step = _num(values.get("eval_win_rate")), _num(merged.get("eval_step"))
        if (rate is not None and step is not None and math.isfinite(rate) and math.isfinite(step)
                and (not self.eval_history or self.eval_history[-1][0] != step)):
            self.eval_history.append((int(step), float(rate)))

    def set_restarts(self, agent_id: int, n: int) -> None:
        """How many times the launcher restarted this process."""
        self.restarts[agent_id] = n

    def set_status(self, agent_id: int, text: str) -> None:
        """The launcher's view of this process: "running", "restarting", "exited 0", "dead"."""
        self.statuses[agent_id] = text

    def get(self, sender: int, key: str) -> Any:
        """Latest value of `key` from `sender`, or None."""
        return self.values.get(sender, {}).get(key)


# ---------------------------------------------------------------- formatting helpers


def _num(v: Any) -> float | int | None:
    """`v` if it is a real number (bools and strings are not), else None."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return v


def _scaled(x: float, units: Sequence[str], step: float) -> tuple[float, str]:
    """`x` divided down until it rounds below 1000, with the unit it ended on."""
    i = 0
    while i < len(units) - 1 and round(abs(x), 1 if abs(x) < 100 else 0) >= 1000:
        x /= step
        i += 1
    return x, units[i]


def _sig3(x: float) -> str:
    """One decimal below 100 (as rounded: 99.96 is "100", not "100.0"), none above."""
    return f"{x:.1f}" if abs(round(x, 1)) < 100 else f"{x:.0f}"


def fmt_bytes(n: Any) -> str:
    """Bytes in SI units, 2-3 significant digits: "512 B", "1.2 KB", "12.3 MB", "120 GB"."""
    n = _num(n)
    if n is None or not math.isfinite(n):
        return DASH
    if abs(n) < 1000:
        return f"{int(n)} B"
    x, unit = _scaled(float(n), ("B", "KB", "MB", "GB", "TB", "PB"), 1000.0)
    return f"{_sig3(x)} {unit}"


def fmt_count(n: Any) -> str:
    """A count, compact: "999", "1.2k", "12.3k", "123k", "4.5M"."""
    n = _num(n)
    if n is None or not math.isfinite(n):
        return DASH
    if abs(n) < 1000:
        return f"{n:.0f}" if isinstance(n, float) else str(n)
    x, unit = _scaled(float(n), ("", "k", "M", "G", "T"), 1000.0)
    return f"{_sig3(x)}{unit}"


def fmt_num(x: Any) -> str:
    """A loss-like float in at most ~6 characters: "1.23", "12.3", "0.012", "1.2e-4", "nan"."""
    x = _num(x)
    if x is None:
        return DASH
    if not math.isfinite(x):
        return str(float(x))  # nan / inf are worth seeing, not hiding
    a = abs(x)
    if a == 0:
        return "0"
    if a >= 1000:
        return fmt_count(x)
    if a >= 100:
        return f"{x:.0f}"
    if a >= 10:
        return f"{x:.1f}"
    if a >= 1:
        return f"{x:.2f}"
    if a >= 0.01:
        return f"{x:.3f}".rstrip("0")
    mantissa, exp = f"{x:.1e}".split("e")
    return f"{mantissa}e{int(exp)}"


def fmt_duration(seconds: Any) -> str:
    """Seconds as h:mm:ss ("0:01:23", "26:00:00"); "-" when unknown."""
    s = _num(seconds)
    if s is None or not math.isfinite(s) or s < 0:
        return DASH
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def fmt_pct(frac: Any, digits: int = 0) -> str:
    """A 0..1 fraction as a percentage: 0.347 -> "35%"."""
    f = _num(frac)
    if f is None or not math.isfinite(f):
        return DASH
    return f"{100 * f:.{digits}f}%"


def fmt_text(v: Any) -> str:
    """A scalar as one line of text; anything else (None, lists, dicts) is "-"."""
    if isinstance(v, str):
        return " ".join(v.split()) or DASH  # no newlines or tabs inside a table cell
    if isinstance(v, (bool, int, float)):
        return str(v)
    return DASH


def sparkline(values: Sequence[float], lo: float = 0.0, hi: float = 1.0) -> str:
    """One block character per value on a fixed lo..hi scale (win rates: 0..1)."""
    span = hi - lo
    out = []
    for v in values:
        f = 0.0 if span <= 0 else (min(max(v, lo), hi) - lo) / span
        out.append(SPARK_CHARS[round(f * (len(SPARK_CHARS) - 1))])
    return "".join(out)


def eta_seconds(state: RunState, target: int, now: float) -> float | None:
    """Seconds to `target` env steps at the env host's rate since its first report, or None."""
    first, last = state.first_steps, state.last_steps
    if first is None or last is None or target <= 0:
        return None
    if last[1] >= target:
        return 0.0
    dt, ds = last[0] - first[0], last[1] - first[1]
    if dt <= 0 or ds <= 0:
        return None
    return max(0.0, (target - last[1]) / (ds / dt) - (now - last[0]))


def _progress(state: RunState, target: int) -> tuple[float | None, float | None]:
    """(env steps, fraction of the target) from the env host, each None when unknown."""
    steps = _num(state.get(ENV_HOST, "env_steps"))
    if steps is None or not math.isfinite(steps):
        return None, None
    return steps, (min(max(steps / target, 0.0), 1.0) if target > 0 else None)


def _row_ids(info: RunInfo, state: RunState) -> list[int]:
    """Agents 0..N-1, then the centralized learner once it has reported."""
    return list(range(info.n_agents)) + ([LEARNER] if LEARNER in state.values else [])


def _label(sender: int) -> str:
    return "learner" if sender == LEARNER else f"a{sender}"


def _status_style(status: str) -> str:
    """Colour for a process or env-host status: trouble in red, waiting in yellow."""
    if status in ("running", "eval"):
        return "green"
    if status in ("exited 0", "done", DASH):
        return "dim"
    if status.startswith(("restarting", "waiting")):
        return "yellow"
    if status.startswith(("dead", "exited", "killed", "failed")):
        return "red"
    return ""


# ---------------------------------------------------------------- the view


def _beta(info: RunInfo, prefix: str) -> str:
    """`prefix` and β, or nothing for a method without one."""
    return "" if info.beta is None else f"{prefix}{info.beta:g}"


def _header(info: RunInfo, state: RunState, now: float) -> Panel:
    """Run identity, progress bar with ETA, host status, train and eval results."""
    host = state.values.get(ENV_HOST, {})
    ident = Text.assemble(
        (info.scenario, "bold"), " · ", (info.method, "bold cyan"),
        f"{_beta(info, ' · β ')} · budget {info.budget} · seed {info.seed}",
        f" · preset {info.preset}  ",
        (info.run_dir, "dim"),
        overflow="fold",
    )
    steps, frac = _progress(state, info.steps)
    done = "-" if steps is None else f"{int(steps):,}"
    pct = "" if frac is None else f" {100 * frac:.1f}%"
    eta = eta_seconds(state, info.steps, now)
    bar = Table.grid(padding=(0, 1))
    bar.add_column(no_wrap=True)
    bar.add_column(ratio=1)
    bar.add_column(no_wrap=True)
    total = max(info.steps, 1)
    bar.add_row(
        Text(fmt_duration(now - state.started_at), "bold"),
        ProgressBar(total=total, completed=min(max(steps or 0, 0), total)),
        Text(f"{done}/{info.steps:,}{pct}  ETA {fmt_duration(eta)}"),
    )
    host_status = fmt_text(host.get("status"))
    proc = state.statuses.get(ENV_HOST)
    status = Text.assemble("host ", (host_status, _status_style(host_status)), overflow="fold")
    if proc is not None and proc != "running":
        status.append(f" (process {fmt_text(proc)})", _status_style(fmt_text(proc)))
    if state.restarts.get(ENV_HOST):
        status.append(f" restarts {state.restarts[ENV_HOST]}", "yellow")
    status.append(
        f" · episodes {fmt_count(host.get('episodes'))}"
        f" · train {fmt_pct(host.get('train_win_rate'))} ret {fmt_num(host.get('train_return'))}"
    )
    history = list(state.eval_history)[-SPARK_POINTS:]
    evals = Text.assemble(
        "eval ", (fmt_pct(host.get("eval_win_rate")), "bold"),
        f" ret {fmt_num(host.get('eval_return'))}",
        f" @{fmt_count(host['eval_step'])} steps  " if "eval_step" in host else "  ",
        (sparkline([r for _, r in history]), "cyan"),
    )
    return Panel(Group(ident, bar, status, evals), title="dwm-net", title_align="left",
                 padding=(0, 1))


def _table(title: str, columns: Sequence[str], left: int = 1) -> Table:
    """A borderless table: the first column and the last `left - 1` are text, left-aligned;
    numbers between them are right-aligned. Cells fold, never cut with an ellipsis."""
    table = Table(title=title, title_justify="left", title_style="bold", box=None,
                  padding=(0, 1), pad_edge=False, header_style="bold dim")
    for i, name in enumerate(columns):
        text = i == 0 or i > len(columns) - left
        table.add_column(name, justify="left" if text else "right", overflow="fold")
    return table


def _label_cell(sender: int, state: RunState, now: float) -> Text:
    """The row label, red once a sender that did report has gone quiet."""
    seen = state.last_seen.get(sender)
    return Text(_label(sender), "red" if seen is not None and now - seen > STALE_S else "bold")


def _learning(info: RunInfo, state: RunState, now: float) -> Table:
    table = _table("learning", ("agent", "steps", "eps", "upd wm/ac", "obs", "rew", "term",
                                "avail", "kl", "critic"))
    for sender in _row_ids(info, state):
        v = state.values.get(sender, {})
        table.add_row(
            _label_cell(sender, state, now),
            Text(fmt_count(v.get("env_steps"))),
            Text(fmt_count(v.get("episodes"))),
            Text(f"{fmt_count(v.get('wm_updates'))}/{fmt_count(v.get('ac_updates'))}"),
            *(Text(fmt_num(v.get(k))) for k in ("wm/obs", "wm/reward", "wm/term", "wm/avail",
                                                  "wm/kl", "ac/critic_loss")),
        )
    return table


def _comms(info: RunInfo, state: RunState, now: float) -> Table:
    table = _table("comms", ("agent", "sent", "recv", "budget", "drops", "rej", "rst", "peers",
                             "process"), left=3)
    for sender in _row_ids(info, state):
        v = state.values.get(sender, {})
        peers = fmt_text(v.get("peers"))
        status = fmt_text(state.statuses.get(sender))
        restarts = state.restarts.get(sender)
        table.add_row(
            _label_cell(sender, state, now),
            Text(fmt_bytes(v.get("sent_bytes"))),
            Text(fmt_bytes(v.get("recv_bytes"))),
            Text(fmt_pct(v.get("budget_use"))),
            Text(fmt_count(v.get("drops")), "yellow" if _num(v.get("drops")) else ""),
            Text(fmt_count(v.get("rejected")), "red" if _num(v.get("rejected")) else ""),
            Text(fmt_count(restarts), "yellow" if restarts else ""),
            Text(peers, "red" if "lost" in peers else ""),
            Text(status, _status_style(status)),
        )
    return table


def _by_kind(info: RunInfo, state: RunState) -> Table:
    kinds = ("experience", "rollout", "params")
    table = _table("bytes by kind", ("agent", "sent exp", "roll", "params", "recv exp", "roll",
                                     "params"))
    for sender in _row_ids(info, state):
        v = state.values.get(sender, {})
        table.add_row(Text(_label(sender), "bold"),
                      *(Text(fmt_bytes(v.get(f"{d}_bytes/{k}"))) for d in ("sent", "recv")
                        for k in kinds))
    return table


def render(info: RunInfo, state: RunState, now: float, *, by_kind: bool = True) -> RenderableType:
    """The whole view, at most 80 columns wide; `by_kind=False` drops the bytes-by-kind table."""
    parts: list[RenderableType] = [_header(info, state, now), _learning(info, state, now),
                                   _comms(info, state, now)]
    if by_kind:
        parts.append(_by_kind(info, state))
    return Constrain(Group(*parts), width=VIEW_WIDTH)


def plain_line(info: RunInfo, state: RunState, now: float) -> str:
    """One greppable line without markup, for `--no-live` or a non-terminal stdout."""
    host = state.values.get(ENV_HOST, {})
    steps, frac = _progress(state, info.steps)
    done = "-" if steps is None else f"{int(steps):,}"
    pct = "" if frac is None else f" ({100 * frac:.1f}%)"
    parts = [
        (f"[{fmt_duration(now - state.started_at)}] {info.scenario} {info.method}{_beta(info, ' b=')}"
        f" steps {done}/{info.steps:,}{pct} eta {fmt_duration(eta_seconds(state, info.steps, now))}"
        f" eval {fmt_pct(host.get('eval_win_rate'))} train {fmt_pct(host.get('train_win_rate'))}"
        f" ret {fmt_num(host.get('train_return'))}")
    ]
    host_status = fmt_text(host.get("status"))
    if host_status not in ("running", DASH):
        parts[0] += f" host {host_status}"
    for sender in _row_ids(info, state):
        v = state.values.get(sender, {})
        name = "L" if sender == LEARNER else _label(sender)
        item = (f"{name} wm {fmt_count(v.get('wm_updates'))}"
                f" ac {fmt_count(v.get('ac_updates'))}"
                f" sent {fmt_bytes(v.get('sent_bytes')).replace(' ', '')}"
                f" drop {fmt_count(v.get('drops'))}")
        status = state.statuses.get(sender)
        if status is not None and status != "running":
            item += f" {fmt_text(status)}"
        parts.append(item)
    return " | ".join(parts)


def use_live(stream: TextIO) -> bool:
    """True only when `stream` is a terminal (a pipe, file or closed stream gets plain lines)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class LiveView:
    """`rich.live.Live` driven by the launcher's loop: refreshed only when asked, rate-limited."""

    def __init__(self, info: RunInfo, state: RunState, console: Console | None = None,
                 refresh_per_second: float = 2) -> None:
        self.info, self.state = info, state
        self.console = console if console is not None else Console()
        self._interval = 1.0 / refresh_per_second if refresh_per_second > 0 else 0.0
        self._last: float | None = None
        # auto_refresh=False: no refresh thread; the launcher's loop calls refresh().
        self._live = Live(console=self.console, auto_refresh=False, transient=False)

    def _renderable(self, now: float) -> RenderableType:
        """The full view, or without the bytes-by-kind table when the terminal is too short."""
        full = render(self.info, self.state, now)
        height = len(self.console.render_lines(full, self.console.options, pad=False))
        return full if height <= self.console.height else render(self.info, self.state, now,
                                                                  by_kind=False)

    def refresh(self, now: float | None = None, force: bool = False) -> bool:
        """Redraw unless the last redraw was under 1/refresh_per_second ago; True if drawn."""
        now = time.monotonic() if now is None else now
        if not force and self._last is not None and 0 <= now - self._last < self._interval:
            return False
        self._last = now
        self._live.update(self._renderable(now), refresh=True)
        return True

    def __enter__(self) -> Self:
        self._live.start()
        self.refresh(force=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.refresh(force=True)  # the final frame stays on screen
        self._live.stop()
