"""The benchmark harness's own logic: the like-for-like DQN comparison's step counts and config, and how
it times a peer's training script from its progress lines."""
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from atari_throughput import (  # noqa: E402
    DQN_CONFIG,
    cleanrl_dqn,
    comparison_config,
    comparison_plan,
    progress_line_steps,
    steady_rate,
)

from jaxfer import config  # noqa: E402


def test_steady_rate_counts_steps_between_the_kept_lines():
    # lines 1..4 kept: 3 gaps of 100 steps over 4 s
    assert steady_rate([0.0, 1.0, 2.0, 3.0, 5.0], steps_per_line=100, skip=1) == pytest.approx(75.0)
    with pytest.raises(ValueError, match="at least 3 progress lines"):
        steady_rate([0.0, 1.0], steps_per_line=100, skip=1)


@pytest.mark.parametrize("steady, epochs, envs", [(30_000, 6, 4), (30_000, 7, 4), (1_000, 2, 1), (5_000, 4, 3)])
def test_comparison_plan_times_only_learning_epochs(steady, epochs, envs):
    plan = comparison_plan(steady, epochs, envs)
    e = plan["epoch_steps"]
    assert plan["learning_starts"] == e  # the first (untimed) epoch ends where learning starts
    assert plan["total_steps"] == e * (epochs + 1) and plan["steady_env_steps"] == e * epochs >= steady
    assert e % envs == 0 and e % progress_line_steps(envs) == 0  # whole vector steps, whole CleanRL lines
    assert plan["steady_env_steps"] - steady < epochs * progress_line_steps(envs)  # no more than rounding
    if (steady, epochs, envs) == (30_000, 6, 4):
        assert plan == {"epoch_steps": 5000, "learning_starts": 5000, "total_steps": 35_000,
                        "steady_env_steps": 30_000}


def test_comparison_config_is_the_dqn_config_at_one_seed_with_its_buffer():
    base = config.load(DQN_CONFIG)
    cfg = comparison_config(comparison_plan(30_000, 6, 4), 4, base.buffer_size)
    assert (cfg.seeds, cfg.num_envs, cfg.buffer_size, cfg.learning_starts, cfg.epoch_steps, cfg.num_epochs) == (
        1, 4, 100_000, 5000, 5000, 7)
    for key in ("env", "obs", "network", "batch_size", "target_update", "lr", "gamma", "eps_decay_steps"):
        assert getattr(cfg, key) == getattr(base, key)


FAKE = """import sys, time
print("args", *sys.argv[1:])
print("compiling")
for i in range({lines}):
    print(f"SPS: {{i}}")
    time.sleep(0.002)
time.sleep({then})
"""


def fake_script(tmp_path, lines, then=0.0):
    script = tmp_path / "fake_dqn.py"
    script.write_text(FAKE.format(lines=lines, then=then))
    return script


@pytest.mark.cli
def test_cleanrl_timing_reads_a_window_of_env_steps_and_stops_the_script(tmp_path):
    # 1,000 steps = 10 gaps between lines after 3 skipped lines: 14 lines needed of the 100 it would print,
    # after which it would sleep for a minute; the harness stops it at the 14th
    script = fake_script(tmp_path, lines=100, then=60)
    start = time.perf_counter()
    out = cleanrl_dqn(sys.executable, script, "Pong", learning_starts=5000, steady_steps=1000, skip=3)
    assert time.perf_counter() - start < 30
    assert out["steps_timed"] == 1000 and out["env_steps_per_s"] > 0
    assert out["steady_window_env_steps"] == [5100 + 300, 5100 + 300 + 1000]
    flags = dict(zip(out["args"][::2], out["args"][1::2]))
    assert flags == {"--env-id": "PongNoFrameskip-v4", "--learning-starts": "5000", "--buffer-size": "100000",
                     "--train-frequency": "4", "--target-network-frequency": "1000"}


@pytest.mark.cli
def test_cleanrl_timing_counts_lines_of_the_update_steps(tmp_path):
    # one update per 3 env steps: it prints at multiples of 300, so 1,000 steps take 4 gaps (1,200 steps)
    out = cleanrl_dqn(sys.executable, fake_script(tmp_path, lines=20), "Pong", learning_starts=900,
                      steady_steps=1000, train_frequency=3, target_network_frequency=750, skip=1)
    assert out["steps_timed"] == 1200 and out["steady_window_env_steps"] == [1500, 2700]


@pytest.mark.cli
def test_cleanrl_timing_reports_a_window_it_did_not_finish(tmp_path):
    out = cleanrl_dqn(sys.executable, fake_script(tmp_path, lines=8), "Pong", learning_starts=0,
                      steady_steps=1000, skip=2)
    assert "env_steps_per_s" not in out and "it ended at 8 of 13 progress lines" in out["skipped"]
    assert out["partial_env_steps_per_s"] > 0


@pytest.mark.cli
def test_cleanrl_watchdog_kills_a_stalled_script(tmp_path):
    script = fake_script(tmp_path, lines=3, then=60)
    start = time.perf_counter()
    out = cleanrl_dqn(sys.executable, script, "Pong", learning_starts=0, steady_steps=1000, skip=1, timeout=1.0)
    assert time.perf_counter() - start < 30
    assert "watchdog stopped it after 1 s at 3 of 12" in out["skipped"] and "env_steps_per_s" not in out


@pytest.mark.cli
def test_cleanrl_timing_skips_a_script_that_fails(tmp_path):
    script = tmp_path / "broken.py"
    script.write_text("raise SystemExit('no module named ale_py')\n")
    out = cleanrl_dqn(sys.executable, script, "Pong", learning_starts=0, steady_steps=1000)
    assert "env_steps_per_s" not in out
    assert "no module named ale_py" in out["skipped"]
