"""Config validation and the CLI's answer to user mistakes: one line on stderr, exit 2, no traceback."""
import dataclasses
import re

import pytest
import yaml
from conftest import ROOT

from jaxfer import config


def test_catch_dqn_yaml_spells_out_the_embedded_defaults():
    assert yaml.safe_load((ROOT / "configs/catch_dqn.yaml").read_text()) == dataclasses.asdict(config.TrainConfig())


def test_overrides_are_typed():
    cfg = config.load(None, ["seeds=3", "lr=0.01", "double=true", "env=catch/v1", "total_steps=4e4"])
    assert (cfg.seeds, cfg.lr, cfg.double, cfg.env, cfg.total_steps) == (3, 0.01, True, "catch/v1", 40000)


@pytest.mark.parametrize("overrides, needle", [
    (["bogus=1"], "unknown config key 'bogus'"),
    (["lr=fast"], "config key 'lr' expects float"),
    (["seeds=2.5"], "config key 'seeds' expects int"),
    (["seeds=0"], "seeds must be >= 1"),
    (["env=catch/v9"], "unknown env id 'catch/v9'"),
    (["epoch_steps=1001"], "multiple of num_envs"),
    (["novalue"], "not of the form key=value"),
    (["lr=nan"], "lr must be a finite number, got nan"),  # values that were once accepted silently
    (["lr=0"], "lr must be > 0"),
    (["eps_start=5"], "eps_start and eps_end must be in [0, 1]"),
    (["learning_starts=-1"], "learning_starts must be >= 0"),
    (["total_steps=4000000000", "epoch_steps=2000"], "must fit the int32 step counter"),
    (["seed=-3"], "seed must be >= 0"),
    (["tuning=gpu"], "tuning must be one of auto, cpu, accelerator"),
    (["conv_impl=cudnn"], "conv_impl must be one of auto, gemm, xla"),
])
def test_config_errors(overrides, needle):
    with pytest.raises(config.ConfigError, match=re.escape(needle)):
        config.load(None, overrides)


def _one_line_error(proc, needle):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert needle in lines[0], lines[0]


@pytest.mark.parametrize("args, needle", [
    (["train", "bogus_key=1"], "unknown config key 'bogus_key'"),
    (["train", "lr=abc"], "expects float"),
    (["train", "--seeds", "0"], "seeds must be >= 1"),
    (["train", "env=pong/v0"], "unknown env id 'pong/v0'; known: catch/v0"),
    (["train", "configs/does_not_exist.yaml"], "cannot read config"),
    (["train", "env=minatar/Breakout", "obs=pixels84"], "has the observations 'grid', 'grid_common'"),
    (["train", "env=catch/v0", "obs=grid_common"], "unknown obs 'grid_common' for catch/v0"),
])
@pytest.mark.cli
def test_cli_bad_input(cli, tmp_path, args, needle):
    _one_line_error(cli(*args, "--out", tmp_path / "run"), needle)


@pytest.mark.cli
def test_cli_bad_yaml_type(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("env: catch/v0\nnum_envs: four\n")
    _one_line_error(cli("train", bad, "--out", tmp_path / "run"), "config key 'num_envs' expects int")


@pytest.mark.parametrize("command, what", [("train", "config"), ("dptl", "DPTL config"), ("segment", "segment config")])
@pytest.mark.cli
def test_unreadable_or_malformed_yaml_is_one_line(cli, tmp_path, command, what):
    _one_line_error(cli(command, tmp_path / "missing.yaml", "--out", tmp_path / "run"), f"cannot read {what}")
    bad = tmp_path / "bad.yaml"
    bad.write_text("env: [unclosed\n")
    _one_line_error(cli(command, bad, "--out", tmp_path / "run"), f"{what} '{bad}' is not valid YAML")


@pytest.mark.cli
def test_cli_never_overwrites_other_results(cli, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    _one_line_error(cli("train", "--out", out), "not a jaxfer run directory")
    assert (out / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    from jaxfer.transfer import sweep
    raw = yaml.safe_load(path.read_text())
    if "sources" in raw:
        sweep.check_cells(sweep.load(path), checkpoints={})
    elif "source" in raw:
        from jaxfer.dptl import pipeline
        pipeline.load(path)
    elif "fcn" in raw:
        from jaxfer.segment import config as segment_config

        segment_config.load(path)
    else:
        config.load(path)


@pytest.mark.cli
def test_network_that_cannot_take_the_observations_is_one_line(cli, tmp_path):
    out = cli("train", "env=minatar/Breakout", "network=nature_cnn", "--out", tmp_path / "run")
    _one_line_error(out, "network 'nature_cnn' cannot take minatar/Breakout's 'grid' observations of shape (10, 10, 4)")
    assert not (tmp_path / "run").exists()


def _main(capsys, *argv) -> str:
    """stdout of ``jaxfer *argv`` run in this process (help and --version exit through SystemExit)."""
    from jaxfer import cli
    try:
        assert cli.main([str(a) for a in argv]) == 0
    except SystemExit as e:
        assert e.code == 0
    return capsys.readouterr().out


@pytest.mark.cli
def test_help_lists_every_config_key_with_type_default_and_comment(capsys):
    text = _main(capsys, "train", "--help")
    for f in dataclasses.fields(config.TrainConfig):
        assert f"\n  {f.name} (" in text, f.name
    assert "keep_checkpoint (bool, default False): keep checkpoint.npz" in text
    assert "trains every agent" not in text and "DQN / Double DQN agents" not in text
    for command, key in (("transfer", "window (int | None, default None): epochs"),
                         ("dptl", "frames (int, default 1000)"), ("segment", "test_fraction (float, default 0.2)")):
        assert key in _main(capsys, command, "--help"), command


@pytest.mark.parametrize("what, entry", [("envs", "atari/Pong  (nature, ea3c, ea3c_stack4)"), ("agents", "dqv_max"),
                                         ("networks", "nature_ac  (a2c)"), ("modes", "first_n:N:frozen"),
                                         ("cams", "eigencam"), ("configs", "configs/catch_dqn.yaml")])
@pytest.mark.cli
def test_list_names_what_jaxfer_knows(capsys, what, entry):
    assert entry in _main(capsys, "list", what).splitlines()


@pytest.mark.cli
def test_version(capsys):
    from importlib.metadata import version

    assert _main(capsys, "--version").strip() == f"jaxfer {version('jaxfer')}"


@pytest.mark.cli
def test_dry_run_prints_the_config_the_runs_and_memory_and_writes_nothing(capsys, tmp_path):
    text = _main(capsys, "train", "seeds=5", "--dry-run", "--out", tmp_path / "run")
    assert "seeds: 5" in text and "memory:" in text and "dry run: nothing written" in text
    text = _main(capsys, "transfer", ROOT / "configs/catch_distill_transfer.yaml", "--dry-run", "--out", tmp_path / "s")
    assert "cells/catch_v0+distill__catch_v1__fine_tune  <- distill/catch_v0" in text.splitlines()
    assert "scratch/catch_v1" in text.splitlines()
    assert not any(tmp_path.iterdir())


def test_one_parser_for_every_config():
    """config.parse: nested sections, unions with None, tuples from lists, ints as floats, required keys,
    and a one-line error naming where the mistake is."""
    import dataclasses

    from jaxfer.config import parse

    @dataclasses.dataclass(frozen=True)
    class Inner:
        rate: float = 0.5

    @dataclasses.dataclass(frozen=True)
    class Outer:
        name: str
        ids: tuple[str, ...] = ()
        window: int | None = None
        seed: int | str = 0
        inner: Inner = Inner()

    got = parse(Outer, {"name": "x", "ids": ["a", "b"], "window": None, "seed": "all", "inner": {"rate": 1}}, "cfg")
    assert got == Outer("x", ("a", "b"), None, "all", Inner(1.0))
    assert parse(Outer, {"name": "x", "inner": None}, "cfg").inner == Inner()  # an empty section: its defaults
    for raw, needle in [({}, "cfg: 'name' is required"),
                        ({"name": "x", "window": "3"}, "cfg: 'window' expects int | None, got str '3'"),
                        ({"name": "x", "inner": {"rate": "fast"}}, "cfg: 'inner': 'rate' expects float"),
                        ({"name": "x", "inner": {"rat": 1}}, "cfg: 'inner': unknown keys ['rat']"),
                        ({"name": "x", "ids": [1]}, "cfg: 'ids' expects str, got int 1"),
                        ({"name": True}, "cfg: 'name' expects str, got bool True")]:
        with pytest.raises(config.ConfigError) as e:
            parse(Outer, raw, "cfg")
        assert needle in str(e.value), (needle, str(e.value))
