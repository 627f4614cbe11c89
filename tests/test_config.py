"""The config tree: presets, resolution order, parsing, one-line errors, JSON, and `config` CLI."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dwm_net import config as C
from dwm_net.config import (
    DEFAULT_PRESET,
    PRESETS,
    Config,
    ConfigError,
    ModelConfig,
    ShareConfig,
    TrainConfig,
    from_json,
    load_config,
    load_json,
    parse_budget,
    preset_names,
    replace,
    save_json,
    to_dict,
    to_json,
)
from launch.config_cli import config_app


def one_line_error(**kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(**kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def write(tmp_path: Path, text: str, name: str = "run.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- presets ----------------------------------------------------------------------------------


def test_preset_names_and_descriptions():
    assert preset_names() == ["paper", "mamba", "cpu", "explore", "tiny"]
    for spec in PRESETS.values():
        assert spec.description and "\n" not in spec.description


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_loads_and_validates(name):
    cfg = load_config(name)
    assert cfg.preset == name
    assert isinstance(cfg.model, ModelConfig)
    # Rebuilding from the plain dict re-runs every validator.
    assert from_json(json.dumps(to_dict(cfg))) == cfg


def test_default_preset_is_explore_and_the_dataclass_defaults_are_cpu():
    assert load_config() == load_config("explore") == load_config(C.DEFAULT_PRESET)
    assert C.DEFAULT_PRESET == "explore" and C.BASE_PRESET == "cpu"
    assert load_config("cpu") == Config() and Config().preset == "cpu"
    # A config JSON without a preset key is the dataclass defaults plus its values: cpu's.
    assert from_json(json.dumps({"model": {"hidden": 64}})).preset == "cpu"


def test_explore_preset_is_cpu_plus_the_measured_options():
    """`explore` is `cpu` with exactly the overrides of the bench in docs/PERFORMANCE.md, and a
    run length that covers the env steps those seeds took (bench learn sets its own), and
    bfloat16 products where the CPU has AMX or AVX512-BF16 (docs/PERFORMANCE.md, "bfloat16 products")."""
    bench = ["model.precision=auto", "train.explore_eps=0.1", "train.explore_repeat=0.5", "train.reward_priority=0.5",
             "train.horizon=25", "train.explore_episodes=0.5", "train.plain_policy=greedy",
             "train.self_imitation=3.0", "train.priority_lead=20", "run.steps=100000"]
    assert load_config("explore") == dataclasses.replace(load_config("cpu", overrides=bench), preset="explore")


def test_paper_preset_has_section_5_values():
    cfg = load_config("paper")
    m, t, s = cfg.model, cfg.train, cfg.share
    assert (m.hidden, m.n_categoricals, m.n_classes) == (256, 32, 32)
    assert (t.seq_len, t.horizon, t.capacity, s.window) == (20, 15, 250_000, 1500)
    assert (t.wm_epochs, t.ac_epochs, t.batch_size) == (5, 4, 40)
    assert (t.entropy, t.entropy_decay) == (0.01, 0.99998)
    assert (t.grad_clip_wm, t.grad_clip_policy) == (100.0, 20.0)
    assert (t.lr_actor, t.lr_critic, t.lr_wm) == (1e-6, 1e-4, 3e-4)


def test_mamba_preset_has_published_values():
    t = load_config("mamba").train
    assert (t.seq_len, t.batch_size, t.horizon, t.capacity) == (50, 40, 15, 500_000)
    assert (t.lr_wm, t.lr_actor, t.lr_critic) == (2e-4, 5e-4, 5e-4)
    assert (t.wm_epochs, t.ac_epochs, t.ppo_epochs, t.prefill) == (1, 1, 5, 100)
    assert (t.entropy, t.grad_clip_policy) == (0.001, 100.0)


def test_actor_critic_warmup_is_cpu_only():
    """Neither the paper nor MAMBA trains the world model alone before the actor."""
    assert load_config("paper").train.ac_warmup == 0 and load_config("mamba").train.ac_warmup == 0
    assert load_config("tiny").train.ac_warmup == 0 and load_config("cpu").train.ac_warmup == 600


def test_tiny_is_minimal():
    tiny, cpu = load_config("tiny"), load_config("cpu")
    m = tiny.model
    assert (m.hidden, m.deter, m.n_categoricals, m.n_classes) == (16, 16, 4, 4)
    assert (tiny.train.seq_len, tiny.train.batch_size, tiny.train.horizon) == (8, 4, 4)
    assert (tiny.train.capacity, tiny.share.window, tiny.train.wm_epochs) == (2000, 50, 1)
    assert tiny.run.steps < cpu.run.steps < load_config("paper").train.capacity


def test_scenarios_mirror_the_env_package():
    from dwm_net.envs import SCENARIOS

    assert set(C.SCENARIOS) == set(SCENARIOS)


def test_loading_config_imports_no_torch_or_upper_layers():
    code = (
        "import sys, dwm_net.config, dwm_net.seeding; "
        "bad = [m for m in ('torch', 'agents', 'comms', 'launch', 'dwm_net.envs') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- resolution: file and overrides -------------------------------------------------------------


def test_toml_file_layers_over_preset(tmp_path):
    path = write(tmp_path, '[model]\nhidden = 64\n[train]\nlr_wm = 1e-3\ngamma = 1\n'
                           '[comms]\nfloat16 = true\nbudget = "50KB/s"\n')
    cfg = load_config("tiny", path)
    assert cfg.preset == "tiny" and cfg.model.deter == 16  # preset kept where the file is silent
    assert (cfg.model.hidden, cfg.train.lr_wm, cfg.comms.float16) == (64, 1e-3, True)
    assert cfg.train.gamma == 1.0 and isinstance(cfg.train.gamma, float)
    assert cfg.comms.budget == "50KB/s"


def test_file_preset_key_is_used_unless_caller_names_one(tmp_path):
    path = write(tmp_path, 'preset = "tiny"\n[run]\nseed = 7\n')
    assert load_config(file=path).preset == "tiny"
    cfg = load_config("paper", path)
    assert cfg.preset == "paper" and cfg.model.hidden == 256 and cfg.run.seed == 7


def test_overrides_beat_file(tmp_path):
    path = write(tmp_path, "[model]\nhidden = 64\n")
    assert load_config("cpu", path, ["model.hidden=32"]).model.hidden == 32


@pytest.mark.parametrize(
    ("override", "attr", "expected"),
    [
        ("model.hidden=64", ("model", "hidden"), 64),
        ("run.steps=1e6", ("run", "steps"), 1_000_000),
        ("train.capacity=250_000", ("train", "capacity"), 250_000),
        ("train.lr_wm=3e-4", ("train", "lr_wm"), 3e-4),
        ("share.beta=1", ("share", "beta"), 1.0),
        ("share.beta = 0.05 ", ("share", "beta"), 0.05),
        ("comms.float16=true", ("comms", "float16"), True),
        ("comms.float16=YES", ("comms", "float16"), True),
        ("comms.float16=1", ("comms", "float16"), True),
        ("comms.float16=no", ("comms", "float16"), False),
        ("comms.float16=0", ("comms", "float16"), False),
        ("comms.budget=2KB/step", ("comms", "budget"), "2KB/step"),
        ("share.method=rollout", ("share", "method"), "rollout"),
        ("env.backend=sc2", ("env", "backend"), "sc2"),
        ("env.scenario=2s3z", ("env", "scenario"), "2s3z"),
    ],
)
def test_override_of_each_type(override, attr, expected):
    value = getattr(getattr(load_config("tiny", overrides=[override]), attr[0]), attr[1])
    assert value == expected and type(value) is type(expected)


# --- errors: one line, naming the key and what is valid -----------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "needles"),
    [
        ({"overrides": ["model.hiden=3"]},
         ["'model.hiden'", "did you mean 'model.hidden'?", "valid keys in model:", "layers"]),
        ({"overrides": ["modle.hidden=3"]},
         ["'modle.hidden'", "did you mean 'model.hidden'?", "valid sections:"]),
        ({"overrides": ["share.beta=1.5"]}, ["bad value for share.beta: '1.5'", "must be a float in [0, 1]"]),
        ({"overrides": ["model.hidden=0"]}, ["model.hidden", "must be an int > 0"]),
        ({"overrides": ["train.batch_size=4.5"]}, ["train.batch_size", "'4.5'", "an int"]),
        ({"overrides": ["train.gamma=nan"]}, ["train.gamma", "[0, 1]"]),
        ({"overrides": ["train.lr_wm=fast"]}, ["train.lr_wm", "a float > 0"]),
        ({"overrides": ["comms.float16=maybe"]}, ["comms.float16", "true/false/1/0/yes/no"]),
        ({"overrides": ["share.method=all"]},
         ["share.method", "independent, centralized, experience, rollout, both"]),
        ({"overrides": ["env.scenario=5m"]}, ["env.scenario", "2s_vs_1sc, 2m_vs_1z, 3m, 2s3z"]),
        ({"overrides": ["comms.budget=50Kb/s"]}, ["comms.budget", "'50KB/s'", "'2KB/step'", "unlimited"]),
        ({"overrides": ["model.hidden"]}, ["override 'model.hidden' must look like key.path=value"]),
        ({"overrides": ["=3"]}, ["key.path=value"]),
        ({"overrides": ["preset=paper"]}, ["preset", "--preset"]),
        ({"overrides": ["train.capacity=10"]}, ["train.capacity", "train.seq_len = 20"]),
        ({"preset": "fast"}, ["unknown preset 'fast' (choose from: paper, mamba, cpu, explore, tiny)"]),
    ],
)
def test_errors_are_one_line_and_name_key_and_choices(kwargs, needles):
    message = one_line_error(**kwargs)
    for needle in needles:
        assert needle in message, message


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("[model]\nhidden = \n", ["invalid TOML in", "run.toml", "line 2"]),
        ("[model]\nhidden = 'big'\n", ["model.hidden", "'big'", "an int > 0"]),
        ("[model]\nhidden = true\n", ["model.hidden", "an int"]),
        ("[train]\nbatch_size = 4.5\n", ["train.batch_size", "4.5"]),
        ("[modle]\nhidden = 3\n", ["'modle'", "did you mean 'model'?", "valid sections: env, model"]),
        ("[model]\nwidth = 3\n", ["'model.width'", "valid keys in model: hidden"]),
        ("hidden = 3\n", ["'hidden'", "run.toml", "did you mean 'hidden' under [model]?", "valid: preset"]),
        ("preset = 'fast'\n", ["unknown preset 'fast'"]),
        ("model = 3\n", ["section 'model'", "run.toml", "must be a table"]),
    ],
)
def test_toml_errors(tmp_path, text, needles):
    message = one_line_error(file=write(tmp_path, text))
    for needle in needles:
        assert needle in message, message


def test_missing_file_is_a_config_error(tmp_path):
    assert "config file not found" in one_line_error(file=tmp_path / "nope.toml")


def test_direct_construction_validates():
    with pytest.raises(ConfigError, match=r"model\.hidden"):
        ModelConfig(hidden=0)
    with pytest.raises(ConfigError, match=r"share\.beta: 1\.5 \(must be a float in \[0, 1\]\)"):
        ShareConfig(beta=1.5)
    with pytest.raises(ConfigError, match=r"share\.method"):
        ShareConfig(method="all")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"train\.capacity"):
        Config(train=TrainConfig(capacity=5))
    with pytest.raises(ConfigError, match=r"model\.layers"):
        ModelConfig(layers=2.0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"train\.lr_wm"):
        TrainConfig(lr_wm=10**400)  # type: ignore[arg-type]


def test_frozen():
    cfg = load_config("tiny")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.model.hidden = 3  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.preset = "paper"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("unlimited", (None, None)),
        ("50KB/s", (50_000.0, "s")),
        ("2KB/step", (2_000.0, "step")),
        ("1.5MB/s", (1_500_000.0, "s")),
        ("512B/step", (512.0, "step")),
        (" 10 KB/s ", (10_000.0, "s")),
    ],
)
def test_parse_budget(text, expected):
    assert parse_budget(text) == expected


@pytest.mark.parametrize(
    "text", ["", "50", "50KB", "50kb/s", "50Mb/s", "0KB/s", "-1KB/s", "50KB/min", "fast"]
)
def test_parse_budget_rejects(text):
    with pytest.raises(ConfigError) as info:
        parse_budget(text)
    assert "\n" not in str(info.value) and "comms.budget" in str(info.value)


# --- derived configs and JSON -------------------------------------------------------------------


def test_replace_derives_and_validates():
    base = load_config("tiny")
    cfg = replace(base, **{"model.hidden": 64, "share.method": "both"})
    assert (cfg.model.hidden, cfg.share.method, cfg.preset) == (64, "both", "tiny")
    assert base.model.hidden == 16
    with pytest.raises(ConfigError, match="did you mean 'model.hidden'"):
        replace(base, **{"model.hiden": 64})
    with pytest.raises(ConfigError, match=r"share\.beta"):
        replace(base, **{"share.beta": -0.1})


@pytest.mark.parametrize("name", preset_names())
def test_json_round_trip_is_exact(name):
    cfg = load_config(name)
    assert from_json(to_json(cfg)) == cfg
    tweaked = load_config(name, overrides=[
        "train.lr_wm=0.30000000000000004", "share.beta=1e-7", "comms.budget=2.5KB/step",
        "comms.float16=true", "run.seed=123456789",
    ])
    back = from_json(to_json(tweaked))
    assert back == tweaked and back.train.lr_wm == 0.1 + 0.2
    assert to_json(back) == to_json(tweaked)


def test_save_and_load_json(tmp_path):
    cfg = load_config("tiny", overrides=["run.seed=5"])
    path = tmp_path / "sub" / "config.json"
    save_json(cfg, path)
    save_json(cfg, path)  # replaces in place
    assert load_json(path) == cfg
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.json"]  # no temp files left


def test_from_json_errors_are_one_line():
    for text, needle in [("{", "invalid config JSON"), ("[]", "top level"),
                         ('{"model": {"hiden": 3}}', "did you mean 'model.hidden'")]:
        with pytest.raises(ConfigError) as info:
            from_json(text)
        assert needle in str(info.value) and "\n" not in str(info.value)


# --- CLI -------------------------------------------------------------------------------------------


def test_cli_show_prints_resolved_json():
    args = ["show", "--preset", "tiny", "--set", "model.hidden=32", "-s", "run.seed=3"]
    result = CliRunner().invoke(config_app, args)
    assert result.exit_code == 0, result.output
    assert from_json(result.stdout) == load_config("tiny", overrides=["model.hidden=32", "run.seed=3"])


def test_cli_show_with_file(tmp_path):
    path = write(tmp_path, 'preset = "tiny"\n[model]\nhidden = 24\n')
    result = CliRunner().invoke(config_app, ["show", "--file", str(path)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["model"]["hidden"] == 24


@pytest.mark.parametrize("args", [["show", "--set", "model.hiden=3"], ["show", "--preset", "fast"],
                                  ["show", "--set", "share.beta=2"]])
def test_cli_bad_input_exits_2_with_one_line(args):
    result = CliRunner().invoke(config_app, args)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "Traceback" not in result.output


def test_cli_presets_lists_each_with_description():
    result = CliRunner().invoke(config_app, ["presets"])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == preset_names()
    assert all(len(line.split()) > 2 for line in lines)
    # exactly one line, the default preset's, is marked
    assert [line.split()[0] for line in lines if line.split()[1] == "default:"] == [DEFAULT_PRESET]
