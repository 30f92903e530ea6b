"""A run killed after a checkpoint and restarted with the same command ends with the same numbers."""
import json
import types

import pytest
from conftest import kill_after_first_checkpoint, run_cli

from jaxfer.runtime import host_loop

# a checkpoint each second or so: the kill comes after the first, epochs ran since are replayed on resume
ARGS = ["train", "total_steps=3000", "epoch_steps=200", "learning_starts=100", "buffer_size=1000",
        "eval_envs=4", "eval_steps=12", "checkpoint_every_s=1", "--seeds", "2", "--no-progress"]


@pytest.mark.cli
def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path):
    full = run_cli(*ARGS, "--out", tmp_path / "full")
    assert full.returncode == 0, full.stderr

    out = tmp_path / "killed"
    kill_after_first_checkpoint(ARGS, out)

    resumed = run_cli(*ARGS, "--out", out)
    assert resumed.returncode == 0, resumed.stderr


    summary = json.loads((out / "run.json").read_text())
    assert summary["resumed_from_epoch"] >= 1
    assert (out / "metrics.csv").read_text() == (tmp_path / "full" / "metrics.csv").read_text()

    again = run_cli(*ARGS, "--out", out)  # a finished run is reported, never overwritten
    assert again.returncode == 0 and "already finished" in again.stdout
    every_epoch = [a for a in ARGS if not a.startswith("checkpoint_every_s")] + ["checkpoint_every_s=0"]
    how = run_cli(*every_epoch, "--out", out)  # how it checkpoints is not what it computes
    assert how.returncode == 0 and "already finished" in how.stdout, how.stderr
    different = run_cli(*ARGS, "lr=0.01", "--out", out)
    assert different.returncode == 2 and "made with another config" in different.stderr
    assert (out / "run.json").exists()


@pytest.mark.parametrize("every_s, keeps_last, expected", [
    (60, True, [False, False, True, False, False, True]),  # 60 s after the start, 60 s after that, the kept last
    (60, False, [False, False, True, False, False, False]),
    (0, False, [True] * 6),
    (1e9, False, [False] * 6),
])
def test_checkpoints_come_by_the_clock(tmp_path, monkeypatch, every_s, keeps_last, expected):
    clock = [0.0]
    monkeypatch.setattr(host_loop, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))
    loop = host_loop.HostLoop(tmp_path, 0, 6, [], "t", False, checkpoint_every_s=every_s, keeps_last=keeps_last)
    due = []
    for epoch, seconds in enumerate((1, 30, 62, 100, 120, 121)):  # when each epoch ends
        clock[0] = seconds
        due.append(loop.checkpoint_due(epoch))
    assert due == expected
