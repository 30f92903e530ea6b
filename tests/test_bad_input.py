"""A catalogue of user mistakes, run through the CLI of every subcommand: each ends with exit 2, at
most 3 lines on stderr, no traceback, and no file that existed before is changed.

Cases run in this process (``jaxfer.cli.main``): a subprocess per case would cost seconds each.
"""
import json
import os
import shutil

import numpy as np
import pytest
import yaml
from conftest import ROOT

from jaxfer import cli

pytestmark = pytest.mark.stack  # also run on the accelerator host's stack (.ci/run)

SWEEP = {"sources": ["catch/v0"], "targets": ["catch/v1"], "modes": ["fine_tune"],
         "train": {"seeds": 1, "total_steps": 400, "epoch_steps": 200, "learning_starts": 100}}
DPTL = {"source": "{run}", "targets": ["catch/v1"], "frames": 20}
COUNTS = ("seeds", "num_envs", "total_steps", "epoch_steps", "buffer_size", "batch_size", "target_update", "eval_envs",
          "eval_steps", "unroll", "n_steps", "eps_decay_steps")  # TrainConfig's counts
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
                            "catch/v0": str(tmp_path / "damaged.npz")}},
                        "sweep_good.yaml": SWEEP,
                        "sweep_source_twice.yaml": SWEEP | {"sources": ["catch/v0", "catch/v1", "catch/v0"]},
                        "sweep_target_twice.yaml": SWEEP | {"targets": ["catch/v1", "catch/v1"]},
                        "sweep_mode_twice.yaml": SWEEP | {"modes": ["fine_tune", "only_head", "fine_tune"]},
                        "sweep_mode_spelt_twice.yaml": SWEEP | {"modes": ["first_n:1:frozen", "first_n:01:frozen"]},
                        "sweep_distill_no_states.yaml": SWEEP | {"distill": {"states": 0}},
                        "sweep_distill_held_out.yaml": SWEEP | {"distill": {"held_out": -1}}}.items():
        put(name, yaml.safe_dump(sweep))
    put("damaged.npz", data=b"PK\x03\x04 half a zip")
    put("key_twice.yaml", "seeds: 1\nlr: 0.01\nseeds: 3\n")
    put("sweep_train_key_twice.yaml", yaml.safe_dump(SWEEP) + "  seeds: 2\n")  # a second seeds in train
    put("dptl_source_int.yaml", yaml.safe_dump(DPTL | {"source": 5}))
    put("dptl_no_run.yaml", yaml.safe_dump(DPTL | {"source": str(tmp_path / "nowhere")}))
    put("dptl_frames_zero.yaml", yaml.safe_dump(DPTL | {"source": str(tmp_path / "nowhere"), "frames": 0}))
    put("dptl_target_twice.yaml", yaml.safe_dump(DPTL | {"targets": ["catch/v1", "catch/v2", "catch/v1"]}))
    put("dptl_no_samples.yaml", yaml.safe_dump(DPTL | {"bootstrap": {"samples": 0}}))
    put("dptl_grid_negative.yaml", yaml.safe_dump(DPTL | {"grid_frames": -1}))
    put("segment_scalar.yaml", "3\n")
    seg = yaml.safe_load((ROOT / "configs/seg_minatar_breakout.yaml").read_text())
    put("segment_huge_frames.yaml", yaml.safe_dump(seg | {"frames": 10**12}))
    put("segment_lr_nan.yaml", yaml.safe_dump(seg | {"fcn": seg["fcn"] | {"lr": float("nan")}}))
    put("segment_unknown.yaml", yaml.safe_dump({"env": "minatar/Breakout", "bogus": 1}))
    put("segment_variant_twice.yaml", yaml.safe_dump(seg | {"ddqn": seg["ddqn"] | {"variants": ["frozen", "frozen"]}}))
    put("segment_no_epochs.yaml", yaml.safe_dump(seg | {"fcn": seg["fcn"] | {"epochs": 0}}))
    put("segment_no_colours.yaml", yaml.safe_dump(seg | {"labels": "palette", "num_colours": 0}))
    put("segment_train_epoch_zero.yaml", yaml.safe_dump(seg | {"ddqn": seg["ddqn"] | {
        "train": seg["ddqn"]["train"] | {"epoch_steps": 0}}}))
    put("segment_never_learns.yaml", yaml.safe_dump(seg | {"ddqn": seg["ddqn"] | {
        "train": seg["ddqn"]["train"] | {"learning_starts": seg["ddqn"]["train"]["total_steps"] + 1}}}))
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
    _damaged_files(tmp_path, f, put)
    return f


def _copy(f: dict, source: str, name: str, damage: dict):
    """A copy of the directory ``f[source]`` as ``f[name]`` with files replaced (bytes), deleted (None), or a
    directory replaced by a file ("a file")."""
    path = shutil.copytree(f[source], f[source].parent / name)
    for rel, data in damage.items():
        if data is None:
            (path / rel).unlink()
        elif data == "a file":  # where a directory was
            shutil.rmtree(path / rel)
            (path / rel).write_text("not a directory\n")
        else:
            (path / rel).write_bytes(data)
    f[name] = path


def _cut(path, keep: int) -> bytes:
    """The first ``keep`` bytes of a file (negative: all but the last ones), as a copy cut short leaves it."""
    return path.read_bytes()[:keep]


def _first_row(table: bytes, column: str, value: bytes) -> bytes:
    """A CSV table with ``column`` of its first row set to ``value``."""
    head, first, *rest = table.splitlines(True)
    cells = first.rstrip(b"\r\n").split(b",")
    cells[head.rstrip(b"\r\n").split(b",").index(column.encode())] = value
    return b"".join([head, b",".join(cells) + first[len(first.rstrip(b"\r\n")):], *rest])


def _damaged_files(tmp_path, f: dict, put) -> None:
    """Directories jaxfer wrote, then damaged: cut short, emptied, edited, or replaced by another kind."""
    good, metrics = f["good_run"], (f["good_run"] / "metrics.csv").read_bytes()
    header = metrics[:metrics.index(b"\n") + 1]
    for name, damage in {"run_metrics_empty": {"metrics.csv": b""}, "run_metrics_header": {"metrics.csv": header},
                         "run_metrics_cut": {"metrics.csv": metrics[:-7]},
                         "run_config_scalar": {"config.yaml": b"5\n"},
                         "run_config_bad_yaml": {"config.yaml": b"env: [unclosed\n"},
                         "run_config_latin1": {"config.yaml": "env: caf\xe9\n".encode("latin-1")},
                         "run_json_empty": {"run.json": b""},
                         "run_json_cut": {"run.json": _cut(good / "run.json", -40)},
                         "run_other_network": {"config.yaml": (good / "config.yaml").read_bytes().replace(
                             b"network: catch_cnn", b"network: mlp")},
                         "run_metrics_text": {"metrics.csv": _first_row(metrics, "env_steps", b"abc")}}.items():
        _copy(f, "good_run", name, damage)
    unfinished = tmp_path / "unfinished_run"  # killed after its last checkpoint: no params.npz, no run.json yet
    assert cli.main(["train", *TINY_RUN, "keep_checkpoint=true", "--out", str(unfinished), "--no-progress"]) == 0
    (unfinished / "run.json").unlink()
    (unfinished / "params.npz").unlink()
    f["unfinished_run"] = unfinished
    with np.load(unfinished / "checkpoint.npz") as data:  # as an older jaxfer wrote it: no copy of the rows
        older = {k: data[k] for k in data.files if k != "__metrics"}
    np.savez(tmp_path / "older.npz", **older)
    older = (tmp_path / "older.npz").read_bytes()
    for name, damage in {"unfinished_bad_yaml": {"config.yaml": b"env: [unclosed\n"},
                         "unfinished_latin1": {"config.yaml": "seeds: caf\xe9\n".encode("latin-1")},
                         "unfinished_tensorboard_file": {"tensorboard": "a file"},
                         "older_no_metrics": {"checkpoint.npz": older, "metrics.csv": None},
                         "older_metrics_header": {"checkpoint.npz": older, "metrics.csv": header}}.items():
        _copy(f, "unfinished_run", name, damage)

    sweep = tmp_path / "sweep"  # a finished one-cell sweep
    spec = SWEEP | {"train": SWEEP["train"] | {"learning_starts": 100, "buffer_size": 500, "eval_envs": 2,
                                                "eval_steps": 12}}
    assert cli.main(["transfer", str(put("sweep.yaml", yaml.safe_dump(spec))), "--out", str(sweep),
                     "--no-progress"]) == 0
    f["sweep"] = sweep
    put("sweep_other.yaml", yaml.safe_dump(spec | {"targets": ["catch/v2"]}))
    curves, ratios = (sweep / "curves.csv").read_bytes(), (sweep / "area_ratios.csv").read_bytes()
    for name, damage in {"sweep_ratios_empty": {"area_ratios.csv": b""},
                         "sweep_curves_cut": {"curves.csv": curves[:len(curves) // 2]},
                         "sweep_curves_no_cell": {"curves.csv": b"".join(
                             line for line in curves.splitlines(True) if b"fine_tune" not in line)},
                         "sweep_ratios_header": {"area_ratios.csv": ratios[:ratios.index(b"\n") + 1]},
                         "sweep_run_config_cut": {"scratch/catch_v0/config.yaml": b"env: [catch\n"},
                         "sweep_ratios_text": {"area_ratios.csv": _first_row(ratios, "ci_low", b"low")},
                         "sweep_curves_text": {"curves.csv": _first_row(curves, "value", b"")}}.items():
        _copy(f, "sweep", name, damage)

    dptl = {"source": {"run": "r", "env": "catch/v0"}, "scores": [{"rank": 1, "target": "catch/v1", "score": 0.5,
                                                                   "ci_low": 0.4, "ci_high": 0.6, "frames": 20}]}
    for name, summary in {"dptl_summary_empty": b"", "dptl_summary_cut": json.dumps(dptl).encode()[:-30],
                          "dptl_summary_list": b"[1, 2]\n",
                          "dptl_summary_no_rank": json.dumps(dptl | {"scores": [{"target": "x"}]}).encode()}.items():
        put(f"{name}/scores.csv", "rank,target\n1,catch/v1\n")
        put(f"{name}/summary.json", data=summary)
        f[name] = tmp_path / name
    put("user_folder/report.md", "# my own notes\n")
    put("dptl_good.yaml", yaml.safe_dump(DPTL | {"source": str(good), "cache": str(tmp_path / "frames")}))
    put("dptl_other/dptl.yaml", yaml.safe_dump(DPTL | {"source": str(good), "frames": 30}))
    put("segment_other/segment.yaml", "env: minatar/Breakout\nframes: 10\n")
    f["dptl_other"], f["segment_other"] = tmp_path / "dptl_other", tmp_path / "segment_other"
    f["user_folder"] = tmp_path / "user_folder"
    put("dptl_source_bad_yaml.yaml", yaml.safe_dump(DPTL | {"source": str(f["run_config_bad_yaml"])}))


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
    ("dptl", ["{dptl_no_run.yaml}"], "no finished run at"),
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
    ("gradcam", ["{a_file}", "catch/v0"], "no finished run at"),
    ("gradcam", ["{good_run}", "catch/v0", "--steps", "0"], "--steps"),
    ("gradcam", ["{good_run}", "catch/v0", "--seed-index", "9"], "seed"),
    ("gradcam", ["{good_run}", "catch/v0", "--layer", "dense_0"], "dense_0"),
    ("gradcam", ["{good_run}", "catch/v0", "--method", "bogus"], "bogus"),
    ("gradcam", ["{good_run}", "catch/v9"], "catch/v9"),
    ("gradcam", ["{damaged_run}", "catch/v0"], "params.npz"),
    # counts: zero or negative, in every config (once ZeroDivisionError tracebacks in validate)
    *[("train", [f"{key}={value}"], f"{key} must be >= 1") for key in COUNTS for value in (0, -3)],
    ("train", ["agent=a2c", "network=minatar_ac", "n_steps=0"], "n_steps must be >= 1"),
    ("train", ["seed=-1"], "seed must be >= 0"),
    ("transfer", ["{sweep_distill_no_states.yaml}"], "distill: states (0) must be at least batch_size"),
    ("transfer", ["{sweep_distill_held_out.yaml}"], "distill: batch_size and held_out must be >= 1"),
    ("transfer", ["{sweep_good.yaml}", "epoch_steps=0"], "epoch_steps must be >= 1"),
    ("dptl", ["{dptl_no_samples.yaml}"], "bootstrap.samples must be an integer >= 1"),
    ("dptl", ["{dptl_grid_negative.yaml}"], "grid_frames must be an integer >= 1"),
    ("segment", ["{segment_no_epochs.yaml}"], "fcn.epochs must be an integer >= 1"),
    ("segment", ["{segment_no_colours.yaml}"], "num_colours must be an integer >= 1"),
    ("segment", ["{segment_train_epoch_zero.yaml}"], "ddqn.train: epoch_steps must be >= 1"),
    # learning that could never start: the first update comes once learning_starts env steps are done
    ("train", ["learning_starts=40001"], "learning_starts (40001) exceeds total_steps (40000)"),
    ("train", ["total_steps=400", "epoch_steps=200"], "the agent would never learn"),  # the default 1000
    ("transfer", ["{sweep_good.yaml}", "learning_starts=401"], "the agent would never learn"),
    ("segment", ["{segment_never_learns.yaml}"], "ddqn.train: learning_starts (100001) exceeds"),
    # settings given twice or in conflict: none may silently win
    ("train", ["seeds=1", "seeds=3"], "'seeds' is given twice (seeds=1 and seeds=3)"),
    ("train", ["--seeds", "2", "seeds=3"], "--seeds 2 and seeds=3 both set seeds"),
    ("train", ["seeds=3", "--seeds", "2"], "--seeds 2 and seeds=3 both set seeds"),
    ("train", ["--seeds", "1", "--seeds", "2"], "--seeds is given twice"),
    ("train", ["{key_twice.yaml}"], "key 'seeds' is given twice (lines 1 and 3)"),
    ("train", ["agent=dqv", "double=true"], "agent 'dqv' cannot take double: true"),
    ("transfer", ["{sweep_good.yaml}", "lr=0.1", "lr=0.2"], "'lr' is given twice"),
    ("transfer", ["{sweep_train_key_twice.yaml}"], "key 'seeds' is given twice"),
    ("transfer", ["{sweep_good.yaml}", "--list-runs", "--run", "scratch/catch_v1"], "give one of them"),
    ("transfer", ["{sweep_good.yaml}", "--ray-address", "auto"], "are for --executor ray"),
    # sweeps that name an entry twice
    ("transfer", ["{sweep_source_twice.yaml}"], "'sources' lists catch/v0 more than once"),
    ("transfer", ["{sweep_target_twice.yaml}"], "'targets' lists catch/v1 more than once"),
    ("transfer", ["{sweep_mode_twice.yaml}"], "'modes' lists fine_tune more than once"),
    ("transfer", ["{sweep_mode_spelt_twice.yaml}"], "modes 'first_n:1:frozen' and 'first_n:01:frozen' are the same"),
    ("dptl", ["{dptl_target_twice.yaml}"], "'targets' lists catch/v1 more than once"),
    ("segment", ["{segment_variant_twice.yaml}"], "ddqn.variants lists frozen more than once"),
    # the command line itself: argparse's errors in one line
    ("train", ["--devices", "abc"], "argument --devices: invalid int value: 'abc'"),
    ("train", ["--num-processes", "abc"], "argument --num-processes: invalid int value: 'abc'"),
    ("train", ["--join-timeout", "-5"], "argument --join-timeout: must be a whole number >= 1, got '-5'"),
    ("train", ["--join-timeout", "0"], "argument --join-timeout: must be a whole number >= 1, got '0'"),
    ("list", ["envs", "extra"], "unrecognized arguments: extra"),
    ("list", ["everything"], "argument what: invalid choice: 'everything'"),
    ("transfer", ["{sweep_good.yaml}", "--executor", "nonsense"], "argument --executor: invalid choice: 'nonsense'"),
    ("transfer", ["{sweep_good.yaml}", "--ray-cpus", "0"], "argument --ray-cpus: must be a whole number >= 1"),
    ("transfer", ["{sweep_good.yaml}", "--run-cpus", "nan"], "--run-cpus and --run-gpus must be finite numbers >= 0"),
    ("transfer", ["{sweep_good.yaml}", "--list-runs", "--out", "{a_file}"], "is not a directory"),
    ("play", ["{good_run}", "--episodes", "two"], "argument --episodes: invalid int value"),
    ("train", ["--no-such-option"], "unrecognized arguments: --no-such-option"),
    ("train", ["--devices", "0"], "--devices must be"),
    # a directory is claimed for one purpose: a sweep's, a report's
    ("transfer", ["{sweep_other.yaml}", "--out", "{sweep}"], "holds a sweep made with another config"),
    ("transfer", ["{sweep.yaml}", "--out", "{good_run}"], "and no sweep.yaml: not a jaxfer sweep directory"),
    ("report", ["{good_run}", "--out", "{user_folder}"], "holds files of its own and no earlier jaxfer report"),
    ("report", ["{good_run}", "--out", "{sweep}"], "holds files of its own"),
    ("dptl", ["{dptl_good.yaml}", "--out", "{user_folder}"], "and no dptl.yaml: not a jaxfer DPTL directory"),
    ("dptl", ["{dptl_good.yaml}", "--out", "{dptl_other}"], "holds a DPTL made with another config"),
    ("segment", [str(ROOT / "configs/seg_minatar_breakout.yaml"), "--out", "{user_folder}"],
     "and no segment.yaml: not a jaxfer segmentation directory"),
    ("segment", [str(ROOT / "configs/seg_minatar_breakout.yaml"), "--out", "{segment_other}"],
     "holds a segmentation made with another config"),
    ("train", ["n_steps=10"], "n_steps is an a2c setting: agent 'dqn' does not use it"),
    ("train", ["agent=dqv", "core=lstm"], "core is an a2c setting: agent 'dqv' does not use it"),
    # files jaxfer wrote, damaged: every reader names the file in one line
    ("report", ["{run_metrics_empty}"], "metrics.csv is damaged (empty)"),
    ("report", ["{run_metrics_header}"], "metrics.csv is damaged (no rows)"),
    ("report", ["{run_metrics_cut}"], "metrics.csv is damaged (its last line is cut short)"),
    ("report", ["{run_config_scalar}"], "config.yaml is damaged (a YAML int, not a mapping)"),
    ("report", ["{run_config_bad_yaml}"], "config.yaml is damaged (not valid YAML"),
    ("report", ["{run_config_latin1}"], "config.yaml is damaged (not UTF-8 text)"),
    ("report", ["{run_json_empty}"], "run.json is damaged (not JSON"),
    ("report", ["{run_json_cut}"], "run.json is damaged (not JSON"),
    ("report", ["{sweep_ratios_empty}"], "area_ratios.csv is damaged (empty)"),
    ("report", ["{sweep_ratios_header}"], "area_ratios.csv is damaged (no rows)"),
    ("report", ["{sweep_curves_cut}"], "curves.csv is damaged (its last line is cut short)"),
    ("report", ["{run_metrics_text}"], "metrics.csv is damaged (row 1: env_steps is 'abc', not a number)"),
    ("report", ["{sweep_ratios_text}"], "area_ratios.csv is damaged (row 1: ci_low is 'low', not a number)"),
    ("report", ["{sweep_curves_text}"], "curves.csv is damaged (row 1 is incomplete)"),
    ("report", ["{sweep_curves_no_cell}"], "curves.csv is damaged (no curve of catch/v0 catch/v1 fine_tune)"),
    ("report", ["{dptl_summary_empty}"], "summary.json is damaged (not JSON"),
    ("report", ["{dptl_summary_cut}"], "summary.json is damaged (not JSON"),
    ("report", ["{dptl_summary_list}"], "summary.json is damaged (a JSON list, not an object)"),
    ("report", ["{dptl_summary_no_rank}"], "summary.json is damaged ('scores' is not a list of rank"),
    ("train", [*TINY_RUN, "--out", "{run_json_cut}"], "run.json is damaged (not JSON"),
    ("train", [*TINY_RUN, "keep_checkpoint=true", "--out", "{unfinished_bad_yaml}"],
     "config.yaml is damaged (not valid YAML"),
    ("train", [*TINY_RUN, "keep_checkpoint=true", "--out", "{unfinished_latin1}"], "config.yaml is damaged (not UTF-8"),
    ("train", [*TINY_RUN, "keep_checkpoint=true", "--out", "{unfinished_tensorboard_file}"],
     "tensorboard is not a directory"),
    ("train", [*TINY_RUN, "keep_checkpoint=true", "--out", "{older_no_metrics}"],
     "metrics.csv is missing and"),
    ("train", [*TINY_RUN, "keep_checkpoint=true", "--out", "{older_metrics_header}"],
     "metrics.csv is damaged (0 of the 2 rows before epoch 2); restore it from a copy, or delete"),
    ("transfer", ["{sweep.yaml}", "--out", "{sweep_run_config_cut}"], "config.yaml is damaged (not valid YAML"),
    ("dptl", ["{dptl_source_bad_yaml.yaml}"], "is not valid YAML"),
    ("play", ["{good_run}", "--gif", "{good_run}"], "is a directory"),
    ("play", ["{good_run}", "--gif", "{a_file}/game.gif"], "a_file is a file"),
    ("play", ["{run_other_network}"], "does not fit the mlp network"),
    ("play", ["{run_config_bad_yaml}"], "is not valid YAML"),
    ("play", ["{damaged_run}"], "params.npz cannot be read"),
]
WRITES = ("train", "transfer", "dptl", "segment", "gradcam", "report")  # the commands with --out


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return _files(tmp_path_factory.mktemp("bad_input"))


def _snapshot(root) -> dict:
    return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("command, args, needle", CASES, ids=[f"{c}-{' '.join(a)}" for c, a, _ in CASES])
@pytest.mark.cli
def test_a_user_mistake_is_one_line_and_changes_nothing(files, command, args, needle, capsys, tmp_path):
    root = next(iter(files.values())).parent
    for name, path in files.items():
        args = [a.replace("{" + name + "}", str(path)) for a in args]
    assert not [a for a in args if "{" in a], f"a placeholder names no file of the fixture: {args}"
    out = [] if "--out" in args or command not in WRITES else ["--out", str(tmp_path / "out")]
    before = _snapshot(root)
    os.chdir(ROOT)
    try:
        code = cli.main([command, *args, *out] + (["--no-progress"] if command in WRITES[:4] else []))
    except SystemExit as e:  # argparse's errors exit from inside the parser
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert 1 <= len(lines) <= 3 and "Traceback" not in err, err
    assert needle in err, err
    assert _snapshot(root) == before
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.cli
def test_help_still_prints_the_usage(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("usage: jaxfer")
