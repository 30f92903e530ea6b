"""The benchmark harness's own logic: how it times a peer's training script from its progress lines."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from atari_throughput import cleanrl_dqn, steady_rate  # noqa: E402


def test_steady_rate_counts_steps_between_the_kept_lines():
    # lines 1..4 kept: 3 gaps of 100 steps over 4 s
    assert steady_rate([0.0, 1.0, 2.0, 3.0, 5.0], steps_per_line=100, skip=1) == pytest.approx(75.0)
    with pytest.raises(ValueError, match="at least 3 progress lines"):
        steady_rate([0.0, 1.0], steps_per_line=100, skip=1)


def test_cleanrl_timing_reads_a_scripts_progress_lines(tmp_path):
    script = tmp_path / "fake_dqn.py"
    script.write_text("import time\nprint('compiling')\n"
                      "for _ in range(15):\n    print('SPS: 1')\n    time.sleep(0.01)\n")
    out = cleanrl_dqn(sys.executable, script, "Pong", seconds=60)
    assert out["steps_timed"] == 100 * (15 - 11)
    assert out["env_steps_per_s"] > 0


def test_cleanrl_timing_skips_a_script_that_fails(tmp_path):
    script = tmp_path / "broken.py"
    script.write_text("raise SystemExit('no module named ale_py')\n")
    out = cleanrl_dqn(sys.executable, script, "Pong", seconds=60)
    assert "env_steps_per_s" not in out
    assert "no module named ale_py" in out["skipped"]
