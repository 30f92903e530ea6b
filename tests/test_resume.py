"""A run killed after a checkpoint and restarted with the same command ends with the same numbers."""
import json

import pytest
from conftest import kill_after_first_checkpoint, run_cli

ARGS = ["train", "total_steps=6000", "epoch_steps=200", "learning_starts=100", "buffer_size=1000",
        "eval_envs=4", "eval_steps=12", "--seeds", "2", "--no-progress"]


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
    different = run_cli(*ARGS, "lr=0.01", "--out", out)
    assert different.returncode == 2 and "made with another config" in different.stderr
    assert (out / "run.json").exists()
