"""A catalogue of user mistakes, run through the CLI of every subcommand: each ends with exit 2, at
most 3 lines on stderr, no traceback, and no file that existed before is changed.

Cases run in this process (``jaxfer.cli.main``): a subprocess per case would cost seconds each.
"""
import os

import pytest
import yaml
from conftest import ROOT

from jaxfer import cli

pytestmark = pytest.mark.stack  # also run on the accelerator host's stack (.ci/run)

SWEEP = {"sources": ["catch/v0"], "targets": ["catch/v1"], "modes": ["fine_tune"],
         "train": {"seeds": 1, "total_steps": 400, "epoch_steps": 200}}
DPTL = {"source": "{run}", "targets": ["catch/v1"], "frames": 20}
TINY_RUN = ["total_steps=400", "epoch_steps=200", "learning_starts=100", "buffer_size=500", "seeds=1",
            "eval_envs=2", "eval_steps=12"]


def _files(tmp_path) -> dict:
    """What the cases point at: configs of the wrong shape or encoding, a file where a directory is
    wanted, damaged checkpoints, a finished tiny run."""
    f = {}

    def put(name, text=None, data=None):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if data is not None else text.encode())
        f[name] = path
        return path

    put("latin1.yaml", data="env: catch/v0  # caf\xe9\n".encode("latin-1"))
    put("scalar.yaml", "5\n")
    put("list.yaml", "- a\n- b\n")
    put("malformed.yaml", "env: [unclosed\n")
    put("a_file", "not a directory\n")
    for name, sweep in {"sweep_scalar_sources.yaml": SWEEP | {"sources": "catch/v0"},
                        "sweep_train_scalar.yaml": SWEEP | {"train": 5},
                        "sweep_bad_train_key.yaml": SWEEP | {"train": {"lr": "fast"}},
                        "sweep_checkpoint_int.yaml": SWEEP | {"source_checkpoints": {"catch/v0": 5}},
                        "sweep_modes_typo.yaml": SWEEP | {"modes": ["first_n:1:frozzen"]},
                        "sweep_window.yaml": SWEEP | {"window": 7},
                        "sweep_damaged_checkpoint.yaml": SWEEP | {"source_checkpoints": {
                            "catch/v0": str(tmp_path / "damaged.npz")}}}.items():
        put(name, yaml.safe_dump(sweep))
    put("damaged.npz", data=b"PK\x03\x04 half a zip")
    put("dptl_source_int.yaml", yaml.safe_dump(DPTL | {"source": 5}))
    put("dptl_no_run.yaml", yaml.safe_dump(DPTL | {"source": str(tmp_path / "nowhere")}))
    put("dptl_frames_zero.yaml", yaml.safe_dump(DPTL | {"source": str(tmp_path / "nowhere"), "frames": 0}))
    put("segment_scalar.yaml", "3\n")
    seg = yaml.safe_load((ROOT / "configs/seg_minatar_breakout.yaml").read_text())
    put("segment_huge_frames.yaml", yaml.safe_dump(seg | {"frames": 10**12}))
    put("segment_lr_nan.yaml", yaml.safe_dump(seg | {"fcn": seg["fcn"] | {"lr": float("nan")}}))
    put("segment_unknown.yaml", yaml.safe_dump({"env": "minatar/Breakout", "bogus": 1}))
    good = tmp_path / "good_run"
    assert cli.main(["train", *TINY_RUN, "--out", str(good), "--no-progress"]) == 0
    f["good_run"] = good
    for name, over in {"dptl_huge_frames.yaml": {"frames": 10**12}, "dptl_huge_size.yaml": {"size": 10**6},
                       "dptl_bad_target.yaml": {"targets": ["minatar/Breakout"]},
                       "dptl_bad_layer.yaml": {"layer": "dense_0"}}.items():
        put(name, yaml.safe_dump(DPTL | {"source": str(good), "cache": str(tmp_path / "frames")} | over))
    run = tmp_path / "damaged_run"  # a run directory whose checkpoint was damaged mid-write
    assert cli.main(["train", *TINY_RUN, "--out", str(run), "--no-progress"]) == 0
    (run / "run.json").unlink()
    (run / "checkpoint.npz").write_bytes(b"PK\x03\x04 half a zip")
    (run / "params.npz").write_bytes(b"garbage")
    f["damaged_run"] = run
    return f


CASES = [
    # train: sizes, values, paths, files
    ("train", ["num_envs=100000000", "epoch_steps=100000000", "total_steps=100000000"], "GiB"),
    ("train", ["eval_envs=100000000"], "GiB"),
    ("train", ["buffer_size=1000000000000"], "GiB"),
    ("train", ["seeds=10000000"], "GiB"),
    ("train", ["total_steps=0"], "total_steps must be >= 1"),
    ("train", ["batch_size=0"], "batch_size must be >= 1"),
    ("train", ["lr=nan"], "lr must be a finite number"),
    ("train", ["gamma=2"], "gamma must be in [0, 1]"),
    ("train", ["eps_end=-0.5"], "eps_start and eps_end must be in [0, 1]"),
    ("train", ["network=nature_cnn"], "cannot take"),
    ("train", ["{latin1.yaml}"], "is not UTF-8"),
    ("train", ["{scalar.yaml}"], "must be a mapping"),
    ("train", ["{list.yaml}"], "must be a mapping"),
    ("train", ["{malformed.yaml}"], "is not valid YAML"),
    ("train", ["{a_file}/x.yaml"], "cannot read config"),
    ("train", ["--out", "{a_file}"], "is not a directory"),
    ("train", ["--out", "{a_file}/run"], "cannot create"),
    ("train", [*TINY_RUN, "--out", "{damaged_run}"], "delete it to start over"),
    # transfer: sweep files of the wrong shape
    ("transfer", ["{scalar.yaml}"], "must be a mapping"),
    ("transfer", ["{list.yaml}"], "must be a mapping"),
    ("transfer", ["{malformed.yaml}"], "is not valid YAML"),
    ("transfer", ["{latin1.yaml}"], "is not UTF-8"),
    ("transfer", ["{sweep_scalar_sources.yaml}"], "'sources' must be a non-empty list"),
    ("transfer", ["{sweep_train_scalar.yaml}"], "'train' must be a mapping"),
    ("transfer", ["{sweep_bad_train_key.yaml}"], "config key 'lr' expects float"),
    ("transfer", ["{sweep_checkpoint_int.yaml}"], "'source_checkpoints' must map env ids to paths"),
    ("transfer", ["{sweep_modes_typo.yaml}"], "only ':frozen' may follow"),
    ("transfer", ["{sweep_window.yaml}"], "window must be null or a whole number of epochs in [2, 2]"),
    ("transfer", ["{sweep_damaged_checkpoint.yaml}"], "is not a .npz file of parameters"),
    # dptl, segment, gradcam
    ("dptl", ["{scalar.yaml}"], "must be a mapping"),
    ("dptl", ["{latin1.yaml}"], "is not UTF-8"),
    ("dptl", ["{dptl_source_int.yaml}"], "source"),
    ("dptl", ["{dptl_no_run.yaml}"], "no checkpoint at"),
    ("dptl", ["{dptl_frames_zero.yaml}"], "frames must be an integer >= 1"),
    ("segment", ["{segment_scalar.yaml}"], "must be a mapping"),
    ("segment", ["{segment_unknown.yaml}"], "unknown keys ['bogus']"),
    ("segment", ["{latin1.yaml}"], "is not UTF-8"),
    ("segment", ["{segment_huge_frames.yaml}"], "GiB"),
    ("segment", ["{segment_lr_nan.yaml}"], "fcn.lr must be > 0"),
    ("dptl", ["{dptl_huge_frames.yaml}"], "GiB"),
    ("dptl", ["{dptl_huge_size.yaml}"], "GiB"),
    ("dptl", ["{dptl_bad_target.yaml}"], "target 'minatar/Breakout'"),
    ("dptl", ["{dptl_bad_layer.yaml}"], "dense_0"),
    ("gradcam", ["{a_file}", "catch/v0"], "no checkpoint at"),
    ("gradcam", ["{good_run}", "catch/v0", "--steps", "0"], "--steps"),
    ("gradcam", ["{good_run}", "catch/v0", "--seed-index", "9"], "seed"),
    ("gradcam", ["{good_run}", "catch/v0", "--layer", "dense_0"], "dense_0"),
    ("gradcam", ["{good_run}", "catch/v0", "--method", "bogus"], "bogus"),
    ("gradcam", ["{good_run}", "catch/v9"], "catch/v9"),
    ("gradcam", ["{damaged_run}", "catch/v0"], "params.npz"),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return _files(tmp_path_factory.mktemp("bad_input"))


def _snapshot(root) -> dict:
    return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("command, args, needle", CASES, ids=[f"{c}-{' '.join(a)}" for c, a, _ in CASES])
def test_a_user_mistake_is_one_line_and_changes_nothing(files, command, args, needle, capsys, tmp_path):
    root = next(iter(files.values())).parent
    for name, path in files.items():
        args = [a.replace("{" + name + "}", str(path)) for a in args]
    out = [] if "--out" in args else ["--out", str(tmp_path / "out")]
    before = _snapshot(root)
    os.chdir(ROOT)
    code = cli.main([command, *args, *out] + (["--no-progress"] if command != "gradcam" else []))
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert 1 <= len(lines) <= 3 and "Traceback" not in err, err
    assert needle in err, err
    assert _snapshot(root) == before
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
