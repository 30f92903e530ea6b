"""Transfer sweeps end to end on a tiny budget: outputs, surgery inside a real run, resume, bad input."""
import numpy as np
import pytest
import yaml

from conftest import run_cli
from jaxfer import io, run, sweep
from jaxfer.config import ConfigError

TINY = {"seeds": 2, "total_steps": 400, "epoch_steps": 200, "learning_starts": 100, "buffer_size": 500,
        "eval_envs": 4, "eval_steps": 12}


def _config(tmp_path, **over):
    spec = {"sources": ["catch/v0", "catch/v3"], "targets": ["catch/v0"], "modes": ["only_head", "first_n:1"],
            "train": TINY} | over
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_sweep_outputs_surgery_and_resume(tmp_path):
    out = tmp_path / "out"
    proc = run_cli("transfer", _config(tmp_path), "--out", out, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    ratios = io.read_csv(out / "area_ratios.csv")
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
    source, _ = io.load_tree(out / "scratch/catch_v3/params.npz", like)
    cell, _ = io.load_tree(out / "cells/catch_v3__catch_v0__only_head/params.npz", like)
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
    ({"targets": ["catch/v9"]}, "unknown env id 'catch/v9'"),
    ({"pairs": "self", "sources": ["catch/v1"]}, "no (source, target) cell"),
])
def test_sweep_config_errors(tmp_path, over, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        sweep.load(_config(tmp_path, **over))


def test_layer_count_too_large_is_one_line_from_the_cli(tmp_path):
    proc = run_cli("transfer", _config(tmp_path, modes=["first_n:9"]), "--out", tmp_path / "o", "--no-progress")
    assert proc.returncode == 2 and "1 <= n <= 4" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
