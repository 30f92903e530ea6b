"""A run killed after a checkpoint and restarted with the same command ends with the same numbers."""
import json
import signal
import subprocess
import sys
import time

from conftest import ROOT, run_cli

ARGS = ["train", "total_steps=6000", "epoch_steps=200", "learning_starts=100", "buffer_size=1000",
        "eval_envs=4", "eval_steps=12", "--seeds", "2", "--no-progress"]


def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path):
    full = run_cli(*ARGS, "--out", tmp_path / "full")
    assert full.returncode == 0, full.stderr

    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "jaxfer.cli", *ARGS, "--out", str(out)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (out / "checkpoint.npz").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "run.json").exists(), "the run finished before it could be killed: lengthen it"

    resumed = run_cli(*ARGS, "--out", out)
    assert resumed.returncode == 0, resumed.stderr


    summary = json.loads((out / "run.json").read_text())
    assert summary["resumed_from_epoch"] >= 1
    assert (out / "metrics.csv").read_text() == (tmp_path / "full" / "metrics.csv").read_text()

    again = run_cli(*ARGS, "--out", out)  # a finished run is reported, never overwritten
    assert again.returncode == 0 and "already finished" in again.stdout
    different = run_cli(*ARGS, "lr=0.01", "--out", out)
    assert different.returncode == 2 and "different config" in different.stderr
    assert (out / "run.json").exists()
