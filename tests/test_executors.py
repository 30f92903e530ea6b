"""A sweep's runs shared out: two local workers on one sweep, the Ray executor (killed and restarted), one
run at a time for a scheduler (--run, --list-runs), and the mistakes around them."""
import collections
import re
import signal
import subprocess
import sys
import time

import pytest
import yaml
from conftest import ROOT, run_cli

from jaxfer.runtime import files

TINY = {"seeds": 2, "total_steps": 400, "epoch_steps": 200, "learning_starts": 100, "buffer_size": 500,
        "eval_envs": 4, "eval_steps": 12}
RUNS = ["scratch/catch_v0", "scratch/catch_v3", "cells/catch_v0__catch_v3__fine_tune",
        "cells/catch_v3__catch_v0__fine_tune"]


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    """Two Catch games transferred into each other: two scratch runs, then two cells that need them."""
    path = tmp_path_factory.mktemp("config") / "sweep.yaml"
    path.write_text(yaml.safe_dump({"sources": ["catch/v0", "catch/v3"], "targets": ["catch/v0", "catch/v3"],
                                    "pairs": "cross", "modes": ["fine_tune"], "train": TINY}))
    return path


def _start(*args):
    return subprocess.Popen([sys.executable, "-m", "jaxfer.cli", "transfer", *map(str, args), "--no-progress"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _trained(stderr: str) -> list[str]:
    """The runs a worker trained, from its log."""
    return re.findall(r"^jaxfer: (\S+): trained in ", stderr, re.M)


@pytest.fixture(scope="module")
def two_workers(config, tmp_path_factory):
    """Two local workers started at once on one sweep directory: (directory, each one's stderr)."""
    out = tmp_path_factory.mktemp("workers") / "sweep"
    workers = [_start(config, "--out", out) for _ in range(2)]
    logs = [w.communicate(timeout=600) for w in workers]
    for w, (_, err) in zip(workers, logs):
        assert w.returncode == 0, err[-3000:]
    return out, [err for _, err in logs]


@pytest.mark.cli
def test_two_workers_on_one_sweep_train_every_run_exactly_once(two_workers):
    out, logs = two_workers
    trained = [_trained(err) for err in logs]
    assert collections.Counter(trained[0] + trained[1]) == collections.Counter(RUNS), logs
    assert trained[0] and trained[1], logs  # the work was shared, not done by one while the other waited
    for err in logs:  # every run a worker did not train, it met finished (or waited for it)
        assert set(re.findall(r"^jaxfer: (\S+): (?:trained in|done already)", err, re.M)) == set(RUNS), err
    assert len(files.read_csv(out / "area_ratios.csv")) == 2


@pytest.mark.cli
def test_ray_driver_killed_and_restarted_redoes_no_run_and_matches_the_local_executor(config, two_workers,
                                                                                      tmp_path):
    """On a local Ray cluster of 2 CPUs: the driver is SIGKILLed once a run has finished; the restarted
    driver trains only what was unfinished, and the results equal the local workers' (same files, same
    numbers: every run is deterministic)."""
    out = tmp_path / "sweep"
    driver = _start(config, "--out", out, "--executor", "ray", "--ray-cpus", "2")
    deadline = time.time() + 900  # a loaded machine starts Ray and trains the first run slowly
    while not list(out.glob("*/*/run.json")) and time.time() < deadline and driver.poll() is None:
        time.sleep(0.05)
    driver.send_signal(signal.SIGKILL)
    _, err = driver.communicate()
    done = {str(p.parent.relative_to(out)): p.stat().st_mtime_ns for p in out.glob("*/*/run.json")}
    assert done and len(done) < len(RUNS), f"kill the driver mid-sweep: {sorted(done)} finished; {err[-2000:]}"

    again = run_cli("transfer", config, "--out", out, "--no-progress", "--executor", "ray", "--ray-cpus", "2")
    assert again.returncode == 0, again.stderr[-3000:]
    assert not set(_trained(again.stderr)) & set(done), again.stderr
    assert {run: (out / run / "run.json").stat().st_mtime_ns for run in done} == done
    assert all((out / run / "run.json").exists() for run in RUNS)
    local = two_workers[0]
    for name in ("area_ratios.csv", "curves.csv"):
        assert files.read_csv(out / name) == files.read_csv(local / name), name


@pytest.mark.cli
def test_one_run_at_a_time_for_a_scheduler(config, tmp_path):
    """--run trains one run once the runs it needs have finished; --list-runs shows where the sweep stands."""
    out = tmp_path / "sweep"
    early = run_cli("transfer", config, "--out", out, "--run", RUNS[2])
    assert early.returncode == 2 and early.stderr.count("\n") == 1, early.stderr
    assert f"{RUNS[2]} needs scratch/catch_v0 to finish first" in early.stderr
    one = run_cli("transfer", config, "--out", out, "--run", RUNS[0], "--no-progress")
    assert one.returncode == 0 and _trained(one.stderr) == [RUNS[0]], one.stderr
    listed = run_cli("transfer", config, "--out", out, "--list-runs")
    assert listed.returncode == 0, listed.stderr
    states = {line.split()[0]: line.split()[1:] for line in listed.stdout.splitlines()}
    assert states == {RUNS[0]: ["stage", "0", "done"], RUNS[1]: ["stage", "0", "ready"],
                      RUNS[2]: ["stage", "1", "ready", "<-", RUNS[0]],
                      RUNS[3]: ["stage", "1", "waiting", "<-", RUNS[1]]}
    assert not (out / "area_ratios.csv").exists()  # results come from a plain `jaxfer transfer` at the end


@pytest.mark.parametrize("args, fake_ray, needle", [
    (["--run", "cells/nothing"], False, "the sweep has no run 'cells/nothing'; --list-runs lists them"),
    (["--executor", "ray", "--ray-address", "127.0.0.1:1"], False, "no Ray cluster answers at 127.0.0.1:1"),
    (["--executor", "ray", "--ray-address", "nowhere"], False, "--ray-address must be HOST:PORT"),
    (["--executor", "ray", "--ray-address", "127.0.0.1:1", "--ray-cpus", "2"], False, "--ray-cpus sizes a cluster"),
    (["--executor", "ray"], True, "--executor ray needs Ray: pip install 'jaxfer[ray]'"),
])
@pytest.mark.cli
def test_executor_mistakes_are_one_line(config, tmp_path, args, fake_ray, needle):
    env = {}
    if fake_ray:  # a Ray that is not installed
        (tmp_path / "ray").mkdir()
        (tmp_path / "ray" / "__init__.py").write_text("raise ImportError('No module named ray')\n")
        env = {"PYTHONPATH": str(tmp_path)}
    proc = run_cli("transfer", config, "--out", tmp_path / "sweep", *args, env=env)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("jaxfer: error: ") and needle in proc.stderr, proc.stderr
    assert not (tmp_path / "sweep").exists()
