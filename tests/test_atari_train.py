"""DQN on real Atari: frame-once replay against envpool's stacks, and a short run end to end."""
import json

import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("envpool")

from conftest import ROOT, kill_after_first_checkpoint, pool_rollout, run_cli  # noqa: E402

from jaxfer import envs  # noqa: E402
from jaxfer.replay import stacked_frames  # noqa: E402
from jaxfer.runtime import files  # noqa: E402


def test_frame_replay_rebuilds_observed_atari_stacks_across_lost_lives():
    env = envs.make("atari/Breakout", "nature")
    num_envs, steps, rows = 2, 300, 128  # random Breakout loses lives every ~40 steps; the ring wraps
    pool = envs.pool(env, 1, num_envs, seed=3)
    state, obs0 = pool.reset(None)
    acts = np.random.default_rng(0).integers(0, env.num_actions, (steps, 1, num_envs)).astype(np.int32)
    _, (obs, reward, done, info) = pool_rollout(pool, state, jnp.asarray(acts))
    observed = np.concatenate([np.asarray(obs0)[None], np.asarray(obs)])[:, 0]  # obs_t, (steps + 1, E, 84, 84, 4)
    first = np.concatenate([np.ones((1, num_envs), bool), np.asarray(done)[:-1, 0]])  # obs_t restarts after a done
    assert first[1:].sum() >= 4
    buf = stacked_frames.init(rows * num_envs, num_envs, env.obs_shape, np.uint8)
    zeros = jnp.zeros((steps, num_envs))
    buf = stacked_frames.add(buf, observed[:steps], zeros.astype(jnp.int32), zeros, zeros.astype(bool), first)
    for t in range(steps - rows + 3, steps):  # every step whose 4-frame history is still stored
        got = stacked_frames.stacks(buf, jnp.full(num_envs, t % rows), jnp.arange(num_envs), 4, env.frame_stack_fill)
        np.testing.assert_array_equal(got, observed[t], err_msg=f"step {t}")


@pytest.mark.cli
def test_short_dqn_run_on_pong_end_to_end(tmp_path):
    out = tmp_path / "pong"
    res = run_cli("train", ROOT / "configs/atari_dqn.yaml", "seeds=2", "num_envs=2", "total_steps=160",
                  "epoch_steps=80", "buffer_size=200", "learning_starts=40", "target_update=10", "eval_envs=1",
                  "eval_steps=8", "--no-progress", "--out", out)
    assert res.returncode == 0, res.stderr
    summary = json.loads((out / "run.json").read_text())
    assert summary["env_options"]["preset"] == "nature" and summary["env_options"]["episodic_life"] is True
    assert summary["memory_bytes"]["per_seed"]["replay"] < 200 * 84 * 84 * 1.1  # one frame per transition
    assert summary["final"]["mean"]["loss"] > 0 and summary["final"]["mean"]["env_steps"] == 160


@pytest.mark.cli
def test_short_a2c_ea3c_run_on_pong_end_to_end(tmp_path):
    """Two seeds: vmapped LSTM inits (LAPACK QR) once deadlocked XLA CPU here; the loop inits seeds in turn."""
    out = tmp_path / "pong_a2c"
    res = run_cli("train", ROOT / "configs/atari_a2c_ea3c.yaml", "env=atari/Pong", "seeds=2", "num_envs=2",
                  "n_steps=4", "total_steps=32", "epoch_steps=16", "eval_envs=2", "eval_steps=4", "--no-progress",
                  "--out", out)
    assert res.returncode == 0, res.stderr
    summary = json.loads((out / "run.json").read_text())
    assert summary["env_options"]["preset"] == "ea3c" and summary["config"]["core"] == "lstm"
    assert summary["final"]["mean"]["env_steps"] == 32 and np.isfinite(summary["final"]["mean"]["value_loss"])


@pytest.mark.optimised
@pytest.mark.cli
def test_killed_atari_run_resumes_its_agents(tmp_path):
    """Emulators cannot be checkpointed: a resumed Atari run restores agents, step counts and metrics
    and plays fresh games; it ends at the configured step count with every epoch recorded once."""
    args = ["train", ROOT / "configs/atari_dqn.yaml", "seeds=1", "num_envs=2", "total_steps=4000", "epoch_steps=100",
            "buffer_size=400", "learning_starts=4000", "eval_envs=1", "eval_steps=4", "checkpoint_every_s=0",
            "--no-progress"]
    out = tmp_path / "pong"
    kill_after_first_checkpoint(args, out)
    res = run_cli(*args, "--out", out)
    assert res.returncode == 0, res.stderr
    summary = json.loads((out / "run.json").read_text())
    assert summary["resumed_from_epoch"] >= 1 and summary["final"]["mean"]["env_steps"] == 4000
    rows = files.read_csv(out / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == list(range(40))
    assert [int(float(r["env_steps"])) for r in rows] == [100 * (i + 1) for i in range(40)]
