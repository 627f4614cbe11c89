"""Episode GIFs drawn from the builtin simulator's snapshots."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="matplotlib is the optional extra dwm-net[viz]")
from PIL import Image

from dwm_net.envs import make_env
from dwm_net.envs.render import draw_frame, render_episode


def random_policy(seed: int = 0):
    rng = np.random.default_rng(seed)

    def act(env) -> list[int]:
        return [int(rng.choice(np.flatnonzero(a))) for a in env.get_avail_actions()]

    return act


def test_render_short_episode_gif(tmp_path):
    env = make_env("2s_vs_1sc", seed=0)
    out = tmp_path / "sub" / "episode.gif"
    summary = render_episode(env, random_policy(), out, seed=0, fps=8, max_steps=12)
    assert out.is_file() and out.stat().st_size > 0
    with Image.open(out) as im:
        assert im.format == "GIF"
        assert im.is_animated and im.n_frames >= 5
    assert summary["steps"] == 12 and summary["frames"] == 13
    assert summary["outcome"] == "stopped" and summary["won"] is False
    assert isinstance(summary["return"], float)


def test_render_full_episode_reports_outcome(tmp_path):
    env = make_env("3m", seed=2)
    out = tmp_path / "3m.gif"
    summary = render_episode(env, random_policy(2), out, fps=10)
    assert summary["outcome"] in {"won", "lost", "draw", "time limit"}
    assert 1 <= summary["steps"] <= env.episode_limit
    with Image.open(out) as im:
        assert im.n_frames >= min(5, summary["steps"])


def test_draw_frame_with_shots_and_dead_units():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    env = make_env("2s3z", seed=0)
    env.reset()
    snap = env.snapshot()
    snap["shots"] = [(0, 5), (6, 1)]
    snap["alive"] = snap["alive"].copy()
    snap["alive"][4] = False
    fig = Figure()
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    draw_frame(ax, snap)
    assert ax.get_title() == "2s3z  step 0"
    assert ax.get_xlim() == (0.0, 32.0) and ax.get_ylim() == (0.0, 32.0)
    assert len(ax.texts) == 9  # ids of the living units
    canvas.draw()  # every artist renders


def test_render_rejects_non_gif(tmp_path):
    with pytest.raises(ValueError, match=r"\.gif"):
        render_episode(make_env("3m"), random_policy(), tmp_path / "x.mp4")


def test_missing_matplotlib_hint(monkeypatch, tmp_path):
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)  # import now fails
    with pytest.raises(ImportError, match=r"pip install 'dwm-net\[viz\]'"):
        render_episode(make_env("3m"), random_policy(), tmp_path / "x.gif")
