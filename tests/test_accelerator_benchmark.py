"""The accelerator device check: its --tiny version runs end to end on this CPU, from a checkout (it
imports this checkout's jaxfer itself), keeps every finished row when killed, holds its time budget,
and every config of the full version is valid, so a typo cannot cost a borrowed accelerator's time."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jaxfer import config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import accelerator  # noqa: E402  (a benchmark script, importable after the path insert)

pytestmark = pytest.mark.stack  # the device check runs on the accelerator host's stack
SCRIPT = [sys.executable, "benchmarks/accelerator.py", "--tiny"]


def result_of(out_dir: Path) -> dict:
    return json.loads((out_dir / "accelerator_cpu_tiny.json").read_text())


@pytest.mark.cli
def test_tiny_device_check_reports_compile_apart_from_steady_rates(tmp_path):
    # a budget no row can reach: this test checks the rows, and a loaded machine must not budget them out
    # --out as a file (the GPU kit's form), and the peers' quick run given too little time to get anywhere
    out = tmp_path / "device.json"
    proc = subprocess.run(SCRIPT + ["--budget-s", "100000", "--out", str(out), "--peers-quick", "2"], cwd=ROOT,
                          env=os.environ.copy(), capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["peers_quick"]["ended"] == "stopped after 2 s (--peers-quick)"
    assert result["peers_quick"]["json"] == "peers_quick_cpu.json" and result["peers_quick"]["jaxfer_over_peer"] == {}
    assert result["finished"] and result["wall_s"] > 0
    assert result["device"]["platform"] == "cpu" and result["device_name"].startswith("cpu")
    assert result["jaxfer_source"][0] == str(ROOT / "jaxfer")  # this checkout's, first on sys.path
    assert {"jax", "jaxlib", "flax", "envpool"} <= set(result["packages"]) and "driver" in result
    for name in ("catch_dqn", "atari_dqn", "atari_a2c_nature"):
        rows = result[name]["rows"]
        assert rows, (name, result["skipped"])
        for row in rows:
            assert row["compile_s"] > 0 and row["env_steps_per_s"] > 0 and row["predicted_s"] > 0, (name, row)
    assert [r["seeds"] for r in result["catch_dqn"]["rows"]] == [1, 2]
    assert result["envpool_probe"]["steps"] == 8 and "cpu" in result["envpool_probe"]["device"].lower()
    for impl in ("gemm", "xla"):
        assert result["conv_impl"][impl]["env_steps_per_s"] > 0
    assert result["conv_impl"]["auto_means"] == "gemm"
    assert result["dptl"]["compile_s"] > 0 and result["dptl"]["frames_per_s"] > 0
    assert [s["what"] for s in result["skipped"]] == ["atari_a2c"]  # left out of --tiny, with the reason


@pytest.mark.cli
def test_a_kill_at_any_moment_leaves_every_finished_row(tmp_path):
    proc = subprocess.Popen(SCRIPT + ["--budget-s", "3000", "--out", str(tmp_path)], cwd=ROOT, env=os.environ.copy(),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    printed = []
    try:
        for line in proc.stdout:  # a row is written before it is printed; the last line is "wrote ..."
            printed.append(json.loads(line) if line.startswith("{") else {})
            if "catch_dqn.rows" in printed[-1]:
                break
    finally:
        proc.send_signal(signal.SIGKILL)  # mid-run: the next row is under way
        proc.wait()
    rows = [p["catch_dqn.rows"] for p in printed if "catch_dqn.rows" in p]
    assert [len(r) for r in rows] == [1], printed
    result = result_of(tmp_path)
    assert result["catch_dqn"]["rows"] == rows[-1] and not result["finished"]
    assert result["skipped"] == [{"what": "atari_a2c", "why": printed[0]["why"]}]


@pytest.mark.optimised
@pytest.mark.cli
def test_the_budget_ends_the_check_within_one_row_of_its_prediction(tmp_path):
    start = time.perf_counter()
    proc = subprocess.run(SCRIPT + ["--budget-s", "60", "--out", str(tmp_path)], cwd=ROOT, env=os.environ.copy(),
                          capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - start
    todo = accelerator.plan(tiny=True)
    longest = max([s["first_s"] for s in todo["ladders"].values()]
                  + [todo["conv_s"], todo["envpool_s"], todo["dptl_s"]])
    result = result_of(tmp_path)
    predicted = [r["predicted_s"] for name in todo["ladders"] for r in result.get(name, {}).get("rows", [])]
    assert wall <= 60 + max(predicted + [longest]) + 10, (wall, result["skipped"])  # 10 s: interpreter start, exit
    assert proc.returncode in (0, 1, 3), proc.stderr[-2000:]
    assert result["finished"] or result["skipped"][-1]["why"].startswith("cut off"), result["skipped"]


@pytest.mark.cli
def test_a_row_past_the_budget_plus_its_prediction_is_cut_off_and_recorded(tmp_path):
    code = ("import sys, time; sys.path.insert(0, 'benchmarks'); import accelerator as a; "
            "clock = a.Clock(1.0, time.perf_counter()); "
            f"rec = a.Record(a.Path({str(tmp_path)!r}) / 'r.json', clock, {{}}); "
            "rec.put(('done',), 1); a.attempt('slow row', lambda: time.sleep(60), clock, rec, 1.0, 0.5)")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert time.perf_counter() - start < 50
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["done"] == 1 and result["skipped"][0]["what"] == "slow row"
    assert result["skipped"][0]["why"].startswith("cut off")


def test_full_device_check_configs_are_valid():
    todo = accelerator.plan(tiny=False)
    for spec in todo["ladders"].values():
        assert spec["first_s"] > 0 and spec["check_s"] > 0
        for seeds in spec["seeds"]:
            config.load(spec["config"], spec["overrides"] + [f"seeds={seeds}"])
    for impl in ("gemm", "xla"):
        config.load(None, todo["conv"] + [f"conv_impl={impl}"])
    longest = max([s["first_s"] for s in todo["ladders"].values()]
                  + [todo["conv_s"], todo["envpool_s"], todo["dptl_s"]])
    assert accelerator.DEFAULT_BUDGET_S + longest <= 420  # the defaults' hard limit: 7 minutes


def test_a_count_that_does_not_fit_or_a_spent_budget_is_recorded_not_run(tmp_path):
    clock = accelerator.Clock(0.0)
    record = accelerator.Record(tmp_path / "r.json", clock, {})
    spec = {"config": None, "overrides": accelerator.short(64), "seeds": [1, 10**6, 10**7], "share": 1.0}
    assert accelerator.fitting("catch_dqn", spec, record) == [1]  # 10**6 seeds' replay: terabytes
    skipped = json.loads((tmp_path / "r.json").read_text())["skipped"]
    assert skipped[0]["what"] == "catch_dqn seeds=[1000000, 10000000]"
    assert skipped[0]["why"].startswith("refused: the run needs")
    ran = []
    assert accelerator.attempt("late", lambda: ran.append(1), clock, record) is None
    assert not ran and record.data["skipped"][1]["why"].startswith("time budget spent")
