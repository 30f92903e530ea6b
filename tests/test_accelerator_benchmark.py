"""The accelerator device check: its --tiny version runs end to end on this CPU, and every config of
the full version is valid, so a typo cannot cost a borrowed accelerator's time."""
import json
import os
import subprocess
import sys
from pathlib import Path

from jaxfer import config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import accelerator  # noqa: E402  (a benchmark script, importable after the path insert)


def test_tiny_device_check_reports_compile_apart_from_steady_rates(tmp_path):
    out = tmp_path / "acc.json"
    proc = subprocess.run([sys.executable, "benchmarks/accelerator.py", "--tiny", "--out", str(out)], cwd=ROOT,
                          env=os.environ.copy(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["device"]["platform"] == "cpu" and result["device_name"].startswith("cpu")
    assert result["wall_s"] > 0
    for name in ("catch_dqn", "atari_dqn", "atari_a2c_nature"):
        rows = result[name]["rows"]
        assert rows, (name, result["skipped"])
        for row in rows:
            assert row["compile_s"] > 0 and row["env_steps_per_s"] > 0, (name, row)
    assert [r["seeds"] for r in result["catch_dqn"]["rows"]] == [1, 2]
    for impl in ("gemm", "xla"):
        assert result["conv_impl"][impl]["env_steps_per_s"] > 0
    assert result["conv_impl"]["auto_means"] == "gemm"
    assert result["dptl"]["compile_s"] > 0 and result["dptl"]["frames_per_s"] > 0
    assert [s["what"] for s in result["skipped"]] == ["atari_a2c"]  # left out of --tiny, with the reason


def test_full_device_check_configs_are_valid():
    todo = accelerator.plan(tiny=False)
    for spec in todo["ladders"].values():
        for seeds in spec["seeds"]:
            config.load(spec["config"], spec["overrides"] + [f"seeds={seeds}"])
    for impl in ("gemm", "xla"):
        config.load(None, todo["conv"] + [f"conv_impl={impl}"])


def test_a_count_that_does_not_fit_or_a_spent_budget_is_recorded_not_run():
    skipped = []
    spec = {"config": None, "overrides": accelerator.short(64), "seeds": [1, 10**6, 10**7], "share": 1.0}
    assert accelerator.fitting("catch_dqn", spec, skipped) == [1]  # 10**6 seeds' replay: terabytes
    assert skipped[0]["what"] == "catch_dqn seeds=[1000000, 10000000]"
    assert skipped[0]["why"].startswith("refused: the run needs")
    ran = []
    assert accelerator.attempt("late", lambda: ran.append(1), accelerator.Clock(0.0), skipped) is None
    assert not ran and skipped[1]["why"].startswith("time budget spent")
