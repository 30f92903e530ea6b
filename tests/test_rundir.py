"""One writer per run directory: a second command on a held --out is refused in one line and changes
nothing; a lock whose process is gone is taken over."""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, run_cli

from jaxfer.runtime import files, rundir

BASE = ["train", "epoch_steps=200", "learning_starts=100", "buffer_size=500", "eval_envs=4",
       "eval_steps=12", "seeds=2", "--no-progress"]
RUN = [*BASE, "total_steps=12000", "checkpoint_every_s=0"]  # 60 epochs, a checkpoint each: stopped midway
STOPPED = [*BASE, "total_steps=4000", "checkpoint_every_s=0"]  # 20 epochs: four stops, then resumed to the end
SHORT = [*BASE, "total_steps=400"]


def _lock(out, pid: int, host: str | None = None, heartbeat: float | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / rundir.LOCK).write_text(json.dumps({"host": host or socket.gethostname(), "pid": pid,
                                               "started": "2026-11-30 00:00:00", "heartbeat": heartbeat}))


@pytest.mark.cli
def test_a_second_command_on_a_held_directory_is_refused_and_changes_nothing(tmp_path):
    """While a run holds --out, the same command and another config into it are refused in one line; the run
    goes on undisturbed (its claim unchanged, every epoch row once), and a Ctrl-C then stops it as usual."""
    import signal

    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "jaxfer.cli", *RUN, "--out", str(out)], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / rundir.LOCK).exists() and time.time() < deadline:
        time.sleep(0.01)
    for other in ([], ["env=catch/v1"]):  # the same command, and another config into the same --out
        res = run_cli(*RUN, *other, "--out", out)
        assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
        assert f"is in use by pid {first.pid} on {socket.gethostname()}" in res.stderr
    while not _catching(first.pid, signal.SIGTERM) and time.time() < deadline:  # its handlers are set
        time.sleep(0.005)
    assert first.poll() is None, "the run ended before the other commands were refused: lengthen it"
    first.send_signal(signal.SIGINT)  # 60 epochs: no need to wait for the rest
    _, err = first.communicate(timeout=300)
    assert first.returncode == 128 + signal.SIGINT and err.strip().startswith("jaxfer: interrupted"), err[-2000:]
    assert not (out / rundir.LOCK).exists()
    assert "catch/v0" in (out / rundir.CLAIM).read_text() and "catch/v1" not in (out / rundir.CLAIM).read_text()
    rows = files.read_csv(out / "metrics.csv") if (out / "metrics.csv").exists() else []
    epochs = len(rows) // 2
    assert [(int(r["epoch"]), int(r["seed"])) for r in rows] == [(e, s) for e in range(epochs) for s in range(2)]


@pytest.mark.cli
def test_a_lock_whose_process_is_gone_is_taken_over_and_its_temp_files_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "run"
    _lock(out, dead.pid)
    (out / f".checkpoint.npz{files.PARTIAL}x1y2").write_bytes(b"half a checkpoint")  # what a kill -9 leaves
    res = run_cli(*SHORT, "--out", out)
    assert res.returncode == 0, res.stderr
    assert f"took over the lock of pid {dead.pid}" in res.stderr
    assert (out / "run.json").exists() and not (out / rundir.LOCK).exists()
    assert not list(out.glob(".*"))  # the temp file is gone too


@pytest.mark.cli
def test_a_lock_held_elsewhere_is_refused_for_every_writing_command(tmp_path):
    out = tmp_path / "sweep"
    _lock(out, 1, host="another-host")
    before = sorted(p.name for p in out.iterdir())
    for args in ([*RUN, "--out", out], ["transfer", ROOT / "configs/catch_cross_transfer.yaml", "--out", out]):
        res = run_cli(*args)
        assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
        assert "in use by pid 1 on another-host" in res.stderr and "delete" in res.stderr
    assert sorted(p.name for p in out.iterdir()) == before


@pytest.mark.cli
def test_a_lock_from_another_host_is_taken_over_once_its_heartbeat_is_stale(tmp_path):
    """A job requeued on another node finds its old lock: fresh heartbeat, refused; stale, taken over."""
    out = tmp_path / "run"
    _lock(out, 1, host="node-that-died", heartbeat=time.time() - 60)
    res = run_cli(*SHORT, "--out", out)
    assert res.returncode == 2 and "in use by pid 1 on node-that-died" in res.stderr, res.stderr
    _lock(out, 1, host="node-that-died", heartbeat=time.time() - rundir.STALE_S - 60)
    res = run_cli(*SHORT, "--out", out)
    assert res.returncode == 0, res.stderr
    assert "took over the lock of pid 1 (on node-that-died, no heartbeat for" in res.stderr
    assert (out / "run.json").exists() and not (out / rundir.LOCK).exists()


def test_a_held_lock_s_heartbeat_is_refreshed(tmp_path, monkeypatch):
    monkeypatch.setattr(rundir, "HEARTBEAT_S", 0.05)
    with rundir.held(tmp_path / "run"):
        first = json.loads((tmp_path / "run" / rundir.LOCK).read_text())["heartbeat"]
        time.sleep(0.5)
        later = json.loads((tmp_path / "run" / rundir.LOCK).read_text())
    assert later["heartbeat"] > first and later["pid"] == os.getpid()
    assert not (tmp_path / "run").exists()  # released, and the empty directory it made removed


def _catching(pid: int, signum: int) -> bool:
    """Has process ``pid`` a handler for ``signum`` (its SigCgt mask in /proc)?"""
    status = Path(f"/proc/{pid}/status").read_text()
    caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(caught >> (signum - 1) & 1)


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


@pytest.mark.cli
def test_ctrl_c_or_sigterm_at_any_moment_is_one_line_and_the_run_resumes(tmp_path):
    """SIGINT (Ctrl-C) or SIGTERM (a scheduler's stop, a preemption) as soon as the CLI handles them (jax
    still importing), while the run is set up and compiled, and after a checkpoint: exit 128 + signal,
    one line, no traceback, the lock released; the same command then finishes the run with every epoch
    recorded once."""
    import signal

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "jaxfer.cli", *STOPPED, "--out", str(out)]
    lines = {signal.SIGINT: "interrupted", signal.SIGTERM: "stopped (SIGTERM)"}
    for moment, sig in (("handled", signal.SIGINT), (2.0, signal.SIGTERM), ("checkpoint", signal.SIGINT),
                        ("checkpoint", signal.SIGTERM)):
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 300
        while not _catching(proc.pid, signal.SIGTERM) and time.time() < deadline:  # the CLI's handlers are set
            # (Python's own SIGINT handler is there from the start: SIGTERM's, set after it, tells)
            time.sleep(0.005)
        if moment == "checkpoint":  # one this process writes: a file replaced atomically is a new inode
            before = _inode(out / "checkpoint.npz")
            while _inode(out / "checkpoint.npz") in (before, None) and time.time() < deadline:
                time.sleep(0.01)
        elif moment != "handled":
            time.sleep(moment)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 128 + sig, (moment, err[-2000:])
        assert err.strip().splitlines() == [f"jaxfer: {lines[sig]}; run the same command again to resume from the "
                                            "last checkpoint"], (moment, err[-2000:])
        assert not (out / rundir.LOCK).exists()
    res = run_cli(*STOPPED, "--out", out)
    assert res.returncode == 0, res.stderr
    assert json.loads((out / "run.json").read_text())["resumed_from_epoch"] >= 2
    rows = files.read_csv(out / "metrics.csv")
    assert [(int(r["epoch"]), int(r["seed"])) for r in rows] == [(e, s) for e in range(20) for s in range(2)]


@pytest.mark.parametrize("keep", [False, True])
@pytest.mark.cli
def test_a_finished_run_drops_its_checkpoint_unless_asked_to_keep_it(tmp_path, keep):
    out = tmp_path / "run"
    res = run_cli(*SHORT, f"keep_checkpoint={str(keep).lower()}", "--out", out)
    assert res.returncode == 0, res.stderr
    assert (out / "params.npz").exists() and (out / "run.json").exists()
    assert (out / "checkpoint.npz").exists() == keep
    if keep:  # a kept checkpoint is the last epoch's, whatever checkpoint_every_s skipped before it
        assert int(files.load_npz(out / "checkpoint.npz")["__epoch"]) == 2
    again = run_cli(*SHORT, f"keep_checkpoint={str(keep).lower()}", "--out", out)
    assert again.returncode == 0 and "already finished" in again.stdout  # finished without its checkpoint


def _scalars(events_dir) -> dict:
    """tag -> [(step, value)] from TensorBoard event files (TFRecord framing around Event protos)."""
    import struct

    from tensorboardX.proto import event_pb2

    found: dict = {}
    for path in sorted(events_dir.glob("events.out.tfevents.*")):
        data, at = path.read_bytes(), 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at:at + 8])
            event = event_pb2.Event.FromString(data[at + 12:at + 12 + length])
            at += 12 + length + 4
            for v in event.summary.value:
                found.setdefault(v.tag, []).append((event.step, v.simple_value))
    return found


@pytest.mark.cli
def test_every_run_writes_tensorboard_events_per_seed_and_mean(tmp_path):
    out = tmp_path / "run"
    res = run_cli(*SHORT, "--out", out)
    assert res.returncode == 0, res.stderr
    scalars = _scalars(out / "tensorboard")
    rows = files.read_csv(out / "metrics.csv")
    for seed in (0, 1):
        got = scalars[f"eval_catch_rate/seed_{seed}"]
        assert got == [(int(float(r["env_steps"])), pytest.approx(float(r["eval_catch_rate"])))
                       for r in rows if int(r["seed"]) == seed]
    assert [s for s, _ in scalars["loss/mean"]] == [200, 400] and len(scalars["perf/env_steps_per_s"]) == 2
    off = tmp_path / "off"
    assert run_cli(*SHORT, "tensorboard=false", "--out", off).returncode == 0
    assert not (off / "tensorboard").exists()
