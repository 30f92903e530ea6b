"""Processes of one run (``jax.distributed`` on localhost, gloo): two processes equal one, a run
stopped by SIGKILL or SIGTERM resumes to the same end, processes started for different runs, an error on
one process and a process id taken twice all end every process in one line, and the supervisor's split of
jax's C++ log. Apart from test_devices.py so pytest-xdist runs the two long files side by side; the long
kill-and-resume tests run on the development stack only."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import ROOT, forced_devices, run_cli

from jaxfer.runtime import files, supervisor


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


MP_ARGS = ["train", "epoch_steps=200", "learning_starts=100", "buffer_size=500", "target_update=20", "eval_envs=4",
           "eval_steps=12", "seeds=4", "--no-progress"]


def _start(out, processes: int, devices: int, epochs: int, extra: dict | None = None) -> list[subprocess.Popen]:
    """``processes`` processes of ``devices`` forced host devices each; ``extra`` adds arguments per process."""
    port, procs = _free_port(), []
    for i in range(processes):
        flags = ["--coordinator", f"127.0.0.1:{port}", "--num-processes", str(processes), "--process-id", str(i)]
        procs.append(subprocess.Popen([sys.executable, "-m", "jaxfer.cli", *(flags if processes > 1 else []), *MP_ARGS,
                                       f"total_steps={200 * epochs}", *(extra or {}).get(i, []), "--out", out],
                                      cwd=ROOT, env=forced_devices(devices), text=True, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE))
    return procs


def _finish(procs) -> None:
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]


def _metrics(out) -> list[dict]:
    return [{k: float(v) for k, v in r.items()} for r in files.read_csv(out / "metrics.csv")]


def _assert_same(a: list[dict], b: list[dict], epochs: int, what: str) -> None:
    assert len(a) == len(b) == epochs * 4, what
    for ra, rb in zip(a, b):
        for k in ra:
            np.testing.assert_allclose(ra[k], rb[k], rtol=1e-4, atol=1e-5, err_msg=f"{what}: {k} {ra}")


@pytest.mark.stack  # on the accelerator host's stack too (.ci/run)
@pytest.mark.cli
def test_two_processes_equal_one_process_and_one_device(tmp_path):
    """Two processes of 2 forced host devices each (gloo) = 1 process of 4 devices = 1 device, over 2
    epochs (other layouts round differently; RL amplifies that over long runs, as README says)."""
    for name, (processes, devices) in {"two": (2, 2), "four": (1, 4), "one": (1, 1)}.items():
        _finish(_start(tmp_path / name, processes, devices, epochs=2))
    two = _metrics(tmp_path / "two")
    summary = json.loads((tmp_path / "two" / "run.json").read_text())
    assert summary["device"]["processes"] == 2 and summary["device"]["count"] == 4
    _assert_same(two, _metrics(tmp_path / "four"), 2, "2 processes vs 1 process of 4 devices")
    _assert_same(two, _metrics(tmp_path / "one"), 2, "2 processes vs 1 device")


@pytest.fixture(scope="module")
def two_processes_uninterrupted(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("whole")
    _finish(_start(out, 2, 2, epochs=8))
    return _metrics(out)


# SIGTERM's one line and exit 143 in one process: tests/test_rundir.py; here the harder stop, SIGKILL
@pytest.mark.parametrize("sig", ["SIGKILL", pytest.param("SIGTERM", marks=pytest.mark.slow)])
@pytest.mark.cli
def test_two_processes_stopped_after_a_checkpoint_resume_to_the_same_end(tmp_path, two_processes_uninterrupted, sig):
    """Both processes SIGKILLed (a crash) or SIGTERMed (a scheduler's stop, a preemption: one line and exit
    143 from each) once a checkpoint is on disk, then restarted with the same command: the same metrics as
    the uninterrupted two-process run."""
    killed, every_epoch = tmp_path / "killed", {i: ["checkpoint_every_s=0"] for i in range(2)}
    procs = _start(killed, 2, 2, epochs=8, extra=every_epoch)  # a checkpoint after every epoch: one comes early
    deadline = time.time() + 600
    while not (killed / "checkpoint.npz").exists() and time.time() < deadline:
        time.sleep(0.02)
    for p in procs:
        assert p.poll() is None, f"a process ended before it was stopped: {p.communicate()[1][-3000:]}"
    for p in procs:
        p.send_signal(getattr(signal, sig))
    for p in procs:
        _, err = p.communicate(timeout=120)
        if sig == "SIGTERM":
            assert p.returncode == 143 and err.strip().splitlines() == [
                "jaxfer: stopped (SIGTERM); run the same command again to resume from the last checkpoint"], err[-3000:]
    assert not (killed / "run.json").exists(), "the run finished before it could be stopped: lengthen it"
    _finish(_start(killed, 2, 2, epochs=8))  # the default interval: how it checkpoints is not what it computes
    assert json.loads((killed / "run.json").read_text())["resumed_from_epoch"] >= 1
    _assert_same(two_processes_uninterrupted, _metrics(killed), 8, f"{sig} and resumed vs uninterrupted")


@pytest.mark.parametrize("other", [["lr=0.002"], ["--devices", "2"]])
@pytest.mark.cli
def test_processes_started_for_different_runs_all_end_in_one_line(tmp_path, other):
    """Process 1 with another config or seed layout than process 0: every process ends with the same one
    line and exit 2 before any collective (which would mix two runs or abort in gloo), nothing written."""
    procs = _start(tmp_path / "run", 2, 2, epochs=2, extra={1: other})
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 2 and err.strip().splitlines() == [
            "jaxfer: error: process 1 was started with another config than process 0; start every process of a "
            "run with the same command and options"], err[-3000:]
    assert not (tmp_path / "run").exists()


@pytest.mark.stack  # on the accelerator host's stack too (.ci/run)
@pytest.mark.cli
def test_an_error_on_one_process_ends_every_process_in_one_line(tmp_path):
    """Process 1 alone given a bad value: it says so, and process 0 says which process failed and why,
    instead of waiting for it at the first collective."""
    procs = _start(tmp_path / "run", 2, 2, epochs=2, extra={1: ["lr=abc"]})
    (_, err0), (_, err1) = (p.communicate(timeout=300) for p in procs)
    assert [p.returncode for p in procs] == [2, 2], (err0[-3000:], err1[-3000:])
    assert len(err1.strip().splitlines()) == 1 and "lr" in err1, err1[-3000:]
    assert err0.strip().splitlines() == [err1.strip().replace("jaxfer: error: ", "jaxfer: error: process 1: ")]
    assert not (tmp_path / "run").exists()


@pytest.mark.stack  # on the accelerator host's stack too (.ci/run)
@pytest.mark.cli
def test_bad_process_flags_are_one_line_errors(tmp_path):
    res = run_cli("--coordinator", "127.0.0.1:1", "--num-processes", 2, "--process-id", 2, "train", "--out", tmp_path)
    assert res.returncode == 2 and res.stderr.strip().splitlines() == ["jaxfer: error: --process-id must be in [0, 2), "
                                                                       "got 2"]
    start = time.perf_counter()
    res = run_cli("--coordinator", f"127.0.0.1:{_free_port()}", "--num-processes", 2, "--process-id", 1,
                  "--join-timeout", 2, "train", "--out", tmp_path)
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert "did not answer within 2 s" in res.stderr and time.perf_counter() - start < 60
    for address, problem in (("127.0.0.1:0", "with a port in [1, 65535]"), ("127.0.0.1:99999", "with a port in"),
                             ("no-such-host.invalid:1234", "does not resolve")):
        res = run_cli("--coordinator", address, "--num-processes", 2, "--process-id", 1, "--join-timeout", 2,
                      "train", "--out", tmp_path)
        assert res.returncode == 2 and res.stderr.count("\n") == 1 and problem in res.stderr, res.stderr
    res = run_cli("--devices", 3, "train", "--out", tmp_path)  # this process has 1 device
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "--devices must be" in res.stderr


@pytest.mark.cli
def test_two_processes_with_one_process_id_end_in_one_line_each(tmp_path):
    """jax's runtime aborts from C++ on a process id taken twice: each process still ends with one line and
    exit 2, the runtime's reason in it, no stack."""
    port, procs = _free_port(), []
    for i in (0, 1, 1):
        procs.append(subprocess.Popen([sys.executable, "-m", "jaxfer.cli", "--coordinator", f"127.0.0.1:{port}",
                                       "--num-processes", "2", "--process-id", str(i), "--join-timeout", "10",
                                       *MP_ARGS, "--out", tmp_path / "run"], cwd=ROOT, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        time.sleep(0.5)
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 2 and len(err.strip().splitlines()) == 1, err[-3000:]
        assert err.startswith("jaxfer: error: jax's distributed runtime ended this process ("), err[-3000:]


@pytest.mark.stack  # on the accelerator host's stack too (.ci/run)
def test_the_supervisor_holds_back_cpp_log_lines_and_passes_the_rest_as_it_comes():
    read, write = os.pipe()
    written = []
    for chunk in (b"\r 10%|#", b"   | 1/10\r 20%|##", b"  | 2/10\nE1206 09:13:18.01 14323 coordination_service.cc:5",
                  b"18] boom\n\nRPC: /xla.Poll\n*** Check failure stack trace: ***\n    @ 0x7f\nplain line\nE"):
        os.write(write, chunk)
    os.close(write)
    held = supervisor._split(read, written.append)
    os.close(read)
    assert b"".join(written) == b"\r 10%|#   | 1/10\r 20%|##  | 2/10\nplain line\nE"
    assert b"".join(held) == (b"E1206 09:13:18.01 14323 coordination_service.cc:518] boom\n\nRPC: /xla.Poll\n"
                              b"*** Check failure stack trace: ***\n    @ 0x7f\n")
