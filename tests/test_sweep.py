"""Transfer sweeps end to end on a tiny budget: outputs, surgery inside a real run, resume, bad input,
checkpointed and distilled sources."""
import json
import re

import numpy as np
import pytest
import yaml
from conftest import run_cli

from jaxfer import config
from jaxfer.errors import ConfigError
from jaxfer.runtime import files, run, rundir
from jaxfer.transfer import sweep

TINY = {"seeds": 2, "total_steps": 400, "epoch_steps": 200, "learning_starts": 100, "buffer_size": 500,
        "eval_envs": 4, "eval_steps": 12}


def _config(tmp_path, **over):
    spec = {"sources": ["catch/v0", "catch/v3"], "targets": ["catch/v0"], "modes": ["only_head", "first_n:1"],
            "train": TINY} | over
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.cli
def test_sweep_outputs_surgery_and_resume(tmp_path):
    out = tmp_path / "out"
    proc = run_cli("transfer", _config(tmp_path), "--out", out, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "MiB on disk" in proc.stdout.splitlines()[0]  # the sweep's disk use, checkpoints dropped
    assert not list(out.rglob("checkpoint.npz"))
    ratios = files.read_csv(out / "area_ratios.csv")
    assert {(r["source"], r["target"], r["mode"]) for r in ratios} == {
        ("catch/v0", "catch/v0", "only_head"), ("catch/v3", "catch/v0", "only_head"),
        ("catch/v0", "catch/v0", "first_n:1"), ("catch/v3", "catch/v0", "first_n:1")}
    for r in ratios:
        assert float(r["ci_low"]) <= float(r["area_ratio"]) <= float(r["ci_high"])
    for name in ("curves.csv", "area_ratio_only_head.png", "area_ratio_first_n-1.png", "curves_catch_v0.png"):
        assert (out / name).stat().st_size > 0, name
    # only_head: the copied body stayed the source's weights through training, bit for bit.
    cfg = sweep.load(_config(tmp_path))
    like = run.init_params(cfg.train)
    source, _ = files.load_tree(out / "scratch/catch_v3/params.npz", like)
    cell, _ = files.load_tree(out / "cells/catch_v3__catch_v0__only_head/params.npz", like)
    for layer in ("conv_0", "conv_1", "dense_0"):
        np.testing.assert_array_equal(cell["params"][layer]["kernel"], source["params"][layer]["kernel"])
    assert not np.array_equal(cell["params"]["head"]["kernel"], source["params"]["head"]["kernel"])

    mtime = (out / "cells/catch_v3__catch_v0__only_head/params.npz").stat().st_mtime
    again = run_cli("transfer", _config(tmp_path), "--out", out, "--no-progress")
    assert again.returncode == 0, again.stderr
    assert (out / "cells/catch_v3__catch_v0__only_head/params.npz").stat().st_mtime == mtime  # not redone


@pytest.mark.parametrize("over, needle", [
    ({"modes": ["half"]}, "unknown transfer mode 'half'"),
    ({"modes": ["first_n"]}, "needs a layer count"),
    ({"modes": ["first_n:1:frozzen"]}, "only ':frozen' may follow, got ':frozzen'"),  # never trained unfrozen
    ({"targets": ["catch/v9"]}, "unknown env id 'catch/v9'"),
    ({"pairs": "self", "sources": ["catch/v1"]}, "no (source, target) cell"),
    ({"source_checkpoints": {"catch/v2": "x.npz"}}, "source_checkpoints names ['catch/v2'], not in sources"),
    ({"distill": {"schedule": "slow"}}, "unknown schedule 'slow'"),
    ({"distill": {"states": 16}}, "states (16) must be at least batch_size (32)"),
    ({"window": 3}, "window must be null or a whole number of epochs in [2, 2]"),  # before any training
    ({"window": 1.5}, "'window' expects int | None, got float 1.5"),
    ({"train": TINY | {"agent": "dqv"}, "distill": {}}, "distill makes single Q-network students"),
])
def test_sweep_config_errors(tmp_path, over, needle):
    with pytest.raises(ConfigError, match=re.escape(needle)):
        sweep.load(_config(tmp_path, **over))


@pytest.mark.cli
def test_layer_count_too_large_is_one_line_from_the_cli(tmp_path):
    proc = run_cli("transfer", _config(tmp_path, modes=["first_n:9"]), "--out", tmp_path / "o", "--no-progress")
    assert proc.returncode == 2 and "1 <= n <= 4" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def _checkpoint(path, **over):
    """A params.npz like a finished run's (fresh weights: the tests check where weights go, not their quality)."""
    cfg = config.from_dict(TINY | over)
    files.save_tree(path, run.init_params(cfg))
    return path


@pytest.mark.cli
def test_source_checkpoint_replaces_the_source_run(tmp_path):
    """Seed i of the cell starts from seed i of the checkpoint (3 seeds held, the first 2 used); the
    checkpointed source is not trained."""
    _checkpoint(tmp_path / "v3run" / "params.npz", env="catch/v3", seeds=3)
    config = _config(tmp_path, sources=["catch/v3"], modes=["only_head"],
                     source_checkpoints={"catch/v3": str(tmp_path / "v3run")})
    out = tmp_path / "out"
    proc = run_cli("transfer", config, "--out", out, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (out / "scratch").iterdir()) == ["catch_v0"]
    like = run.init_params(sweep.load(config).train)
    cell, _ = files.load_tree(out / "cells/catch_v3__catch_v0__only_head/params.npz", like)
    with np.load(tmp_path / "v3run" / "params.npz") as source:
        for layer in ("conv_0", "conv_1", "dense_0"):
            np.testing.assert_array_equal(cell["params"][layer]["kernel"], source[f"params/{layer}/kernel"][:2])
    ratios = files.read_csv(out / "area_ratios.csv")
    assert [(r["source"], r["mode"]) for r in ratios] == [("catch/v3", "only_head")]


@pytest.mark.parametrize("checkpoint, mode, needle", [
    (None, "only_head", "source checkpoint '{tmp}/missing.npz' for catch/v3 does not exist"),
    ({"obs": "pixels84"}, "fine_tune", "layer 'dense_0' does not fit"),
    ({"seeds": 1}, "only_head", "holds 1 seeds but the sweep trains 2"),
    ("garbage", "only_head", "is not a .npz file of parameters"),
    ({}, "halfway", "unknown transfer mode 'halfway'"),
    ({}, "last_n:5:frozen", "last_n needs 1 <= n <= 4"),
])
@pytest.mark.cli
def test_bad_sources_and_modes_are_one_line_from_the_cli(tmp_path, checkpoint, mode, needle):
    """Each mistake ends the CLI with one line and exit 2, before anything is trained."""
    path = tmp_path / "missing.npz"
    if checkpoint == "garbage":
        path.write_text("not numpy")
    elif checkpoint is not None:
        _checkpoint(path, env="catch/v3", **checkpoint)
    config = _config(tmp_path, sources=["catch/v3"], modes=[mode], source_checkpoints={"catch/v3": str(path)})
    out = tmp_path / "out"
    proc = run_cli("transfer", config, "--out", out, "--no-progress")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("jaxfer: error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert needle.format(tmp=tmp_path) in proc.stderr, proc.stderr
    assert not out.exists()


@pytest.mark.cli
def test_distilled_students_are_sources(tmp_path):
    """Each source's student (varying schedule, seeds vmapped) is a source named '<game>+distill': its
    held-out KL to the teacher drops for every seed (measured 0.047 -> 0.032 and 0.053 -> 0.038: a
    400-step teacher's Q-values are nearly flat), its cells start from it, and a rerun reuses it."""
    config = _config(tmp_path, sources=["catch/v0"], modes=["only_head"],
                     distill={"schedule": "varying", "states": 1024, "held_out": 256})
    out = tmp_path / "out"
    proc = run_cli("transfer", config, "--out", out, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    ratios = files.read_csv(out / "area_ratios.csv")
    assert [r["source"] for r in ratios] == ["catch/v0", "catch/v0+distill"]
    student = json.loads((out / "distill/catch_v0/run.json").read_text())
    assert len(student["kl_after"]) == 2 and len(student["loss_per_pass"][0]) == 5
    for before, after in zip(student["kl_before"], student["kl_after"]):
        assert after < before, (student["kl_before"], student["kl_after"])
    like = run.init_params(sweep.load(config).train)
    teacher, _ = files.load_tree(out / "scratch/catch_v0/params.npz", like)
    distilled, _ = files.load_tree(out / "distill/catch_v0/params.npz", like)
    cell, _ = files.load_tree(out / "cells/catch_v0+distill__catch_v0__only_head/params.npz", like)
    for layer in ("conv_0", "conv_1", "dense_0"):  # frozen in the cell: still the student's, not the teacher's
        np.testing.assert_array_equal(cell["params"][layer]["kernel"], distilled["params"][layer]["kernel"])
        assert not np.array_equal(distilled["params"][layer]["kernel"], teacher["params"][layer]["kernel"])
    mtime = (out / "distill/catch_v0/params.npz").stat().st_mtime
    again = run_cli("transfer", config, "--out", out, "--no-progress")
    assert again.returncode == 0, again.stderr
    assert (out / "distill/catch_v0/params.npz").stat().st_mtime == mtime


# DQV-Max copies and freezes the same two networks as DQV: slow
@pytest.mark.parametrize("agent", ["dqv", pytest.param("dqv_max", marks=pytest.mark.slow)])
@pytest.mark.cli
def test_dqv_sweeps_copy_and_freeze_both_networks(tmp_path, agent):
    """DQV's agent holds two networks (q and v): each gets the same surgery. only_head copies and freezes
    every layer but the heads, so after training the cell's bodies still equal the source's."""
    out = tmp_path / "out"
    path = _config(tmp_path, sources=["catch/v3"], modes=["only_head"], train=TINY | {"agent": agent})
    proc = run_cli("transfer", path, "--out", out, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    with np.load(out / "scratch/catch_v3" / rundir.PARAMS) as source, \
            np.load(out / "cells/catch_v3__catch_v0__only_head" / rundir.PARAMS) as cell:
        assert {k.split("/")[0] for k in cell.files} == {"q", "v"}
        for key in cell.files:
            assert np.array_equal(cell[key], source[key]) == ("/head/" not in key), key
