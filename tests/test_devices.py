"""Seeds over devices and processes: no collective inside an epoch, every device used, seed i of any
layout equal to seed i alone, two processes equal to one (and resumable), and the XLA-CPU and
accelerator code paths computing the same thing."""
import json
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ROOT, forced_devices
from seed_mesh_probe import fcn_probe, probe

from jaxfer import agents, config, envs
from jaxfer.agents.loop import Rollout
from jaxfer.code_path import CodePath
from jaxfer.replay import uniform

pytestmark = pytest.mark.stack  # also run on the accelerator host's stack (.ci/run)

SHORT = ["total_steps=400", "epoch_steps=200", "learning_starts=100", "buffer_size=500", "target_update=20",
         "eval_envs=4", "eval_steps=12"]
CATCH = [None, SHORT + ["seeds=5"]]  # 5 seeds on 2 devices: padded to 6
A2C_LSTM = [None, SHORT + ["agent=a2c", "network=minatar_ac", "core=lstm", "n_steps=5", "seeds=2"]]
PONG = [str(ROOT / "configs/atari_dqn.yaml"), ["seeds=2", "num_envs=2", "total_steps=160", "epoch_steps=80",
                                               "buffer_size=200", "learning_starts=40", "target_update=10",
                                               "eval_envs=1", "eval_steps=8"]]
RUNS = {"catch": CATCH, "a2c_lstm": A2C_LSTM, "pong": PONG}


@pytest.fixture(scope="module")
def two_devices():
    out = subprocess.run([sys.executable, "tests/seed_mesh_probe.py", json.dumps(list(RUNS.values()))], cwd=ROOT,
                         env=forced_devices(2), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return dict(zip(RUNS, json.loads(out.stdout.strip().splitlines()[-1])))


@pytest.mark.cli
def test_compiled_epoch_holds_no_collective(two_devices):
    for name, result in two_devices.items():
        assert result["devices"] == 2
        assert result["collectives"] == [], name


@pytest.mark.cli
def test_five_seeds_use_both_devices_and_report_five(two_devices):
    catch = two_devices["catch"]
    assert catch["seeds_per_device"] == {"0": 3, "1": 3}  # 5 real seeds + 1 padded
    assert all(len(values) == 5 for epoch in catch["history"] for values in epoch.values())


@pytest.mark.cli
def test_fcn_training_over_two_devices_holds_no_collective_and_seed_i_equals_seed_i_alone():
    out = subprocess.run([sys.executable, "tests/seed_mesh_probe.py", "--fcn", "3"], cwd=ROOT, env=forced_devices(2),
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    together = json.loads(out.stdout.strip().splitlines()[-1])
    assert together["devices"] == 2 and together["collectives"] == []
    assert len(together["losses"][0]) == 3  # 3 real seeds of 4 (padded)
    for i in (0, 2):  # seed 2 shares device 1 with a padded seed
        alone = fcn_probe(1, first_seed=i)
        np.testing.assert_allclose(np.array(together["losses"])[:, i], np.array(alone["losses"])[:, 0], rtol=1e-5)
        np.testing.assert_allclose(together["kernel"][i], alone["kernel"][0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,seeds", [("catch", [0, 4]), ("a2c_lstm", [0, 1]), ("pong", [0, 1])])
@pytest.mark.cli
def test_seed_i_on_two_devices_equals_seed_i_alone(two_devices, name, seeds):
    path, overrides = RUNS[name]
    for i in seeds:  # seed 4 of the Catch run shares device 1 with a padded seed
        alone = probe(path, overrides + ["seeds=1", f"seed={i}"])["history"]
        for e, (together, one) in enumerate(zip(two_devices[name]["history"], alone)):
            for k in one:
                np.testing.assert_allclose(together[k][i], one[k][0], rtol=1e-4, atol=1e-5,
                                           err_msg=f"{name}: seed {i}, epoch {e}, {k}")


def test_atari_on_a_tpu_is_refused(monkeypatch):
    monkeypatch.setattr(jax, "default_backend", lambda: "tpu")
    with pytest.raises(envs.EnvError, match="no tpu step"):
        envs.pool(envs.make("atari/Pong", "nature"), 1, 1, 0)


def _loss_and_grads(tuning: str, network: str, agent: str):
    cfg = config.load(None, ["obs=pixels84", f"network={network}", f"agent={agent}", f"double={agent == 'dqn'}",
                             f"tuning={tuning}"])
    algo = agents.ALGORITHMS[cfg.agent](cfg, 3, CodePath.from_config(cfg))
    keys = jax.random.split(jax.random.PRNGKey(0), 6)
    obs = jax.random.randint(keys[0], (8, 84, 84, 4), 0, 256).astype(jnp.uint8)
    params = algo.init_params(keys[1], obs)
    target = algo.init_params(keys[2], obs)
    batch = uniform.Transition(obs, jax.random.randint(keys[3], (8,), 0, 3), jax.random.normal(keys[4], (8,)),
                              jnp.arange(8) % 3 == 0,
                              jax.random.randint(keys[5], (8, 84, 84, 4), 0, 256).astype(jnp.uint8))
    return jax.jit(jax.value_and_grad(algo.loss))(params, target, batch)


@pytest.mark.parametrize("network,agent", [("nature_cnn", "dqn"), ("catch_cnn", "dqv")])
def test_cpu_and_accelerator_code_paths_give_equal_losses_and_gradients(network, agent):
    (loss_cpu, grads_cpu), (loss_acc, grads_acc) = (_loss_and_grads(t, network, agent) for t in ("cpu", "accelerator"))
    np.testing.assert_allclose(loss_acc, loss_cpu, rtol=1e-5)
    for g_acc, g_cpu in zip(jax.tree.leaves(grads_acc), jax.tree.leaves(grads_cpu)):
        # per layer, relative to its norm: an element may differ where a pre-activation within rounding
        # of zero takes the other side of a ReLU under the other conv's summation order
        assert np.linalg.norm(g_acc - g_cpu) <= 1e-2 * np.linalg.norm(g_cpu), (g_acc, g_cpu)


@pytest.mark.optimised
def test_cpu_and_accelerator_code_paths_train_alike():
    """The accelerator path splits epoch 0 at learning_starts into a collecting and a learning scan."""
    cpu, acc = (probe(None, SHORT + ["seeds=2", f"tuning={t}"])["history"] for t in ("cpu", "accelerator"))
    for e, (a, c) in enumerate(zip(acc, cpu)):
        for k in c:
            np.testing.assert_allclose(a[k], c[k], rtol=1e-4, atol=1e-5, err_msg=f"epoch {e} {k}")


@pytest.mark.parametrize("tuning,conditional", [("accelerator", False), ("cpu", True)])
def test_accelerator_update_step_compiles_without_a_conditional(tuning, conditional):
    cfg = config.load(None, ["network=catch_cnn", f"tuning={tuning}"])
    env = envs.make(cfg.env, cfg.obs)
    agent = agents.make_agent(cfg, env)
    obs = jnp.zeros((cfg.num_envs, *env.obs_shape), env.obs_dtype)
    state = jax.vmap(lambda k: agent.init(k, obs, None))(jax.random.split(jax.random.PRNGKey(0), 2))
    step = jnp.zeros((2, 1, cfg.num_envs))
    rollout = Rollout(jnp.zeros((2, 1, *obs.shape), obs.dtype), step.astype(jnp.int32), step, step.astype(bool),
                      jnp.zeros((2, 1, *obs.shape), obs.dtype), step.astype(bool))
    learn = jax.vmap(lambda a, r, steps: agent.update(agent.store(a, r), r, (), steps), in_axes=(0, 0, None))
    hlo = jax.jit(learn).lower(state, rollout, jnp.int32(5000)).compile().as_text()  # a step count XLA cannot fold
    assert bool(re.search(r"\sconditional\(", hlo)) == conditional  # the op, not names in the metadata
