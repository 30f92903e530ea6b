"""Seeds over devices and processes: no collective inside an epoch, every device used, seed i of any
layout equal to seed i alone, two processes equal to one (and resumable), and the XLA-CPU and
accelerator code paths computing the same thing."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ROOT, run_cli
from seed_mesh_probe import probe

from jaxfer import agents, config, envs
from jaxfer.agents.loop import Rollout
from jaxfer.replay import uniform
from jaxfer.runtime import files, supervisor
from jaxfer.runtime.code_path import CodePath

pytestmark = pytest.mark.stack  # also run on the accelerator host's stack (.ci/run)

SHORT = ["total_steps=400", "epoch_steps=200", "learning_starts=100", "buffer_size=500", "target_update=20",
         "eval_envs=4", "eval_steps=12"]
CATCH = [None, SHORT + ["seeds=5"]]  # 5 seeds on 2 devices: padded to 6
A2C_LSTM = [None, SHORT + ["agent=a2c", "network=minatar_ac", "core=lstm", "n_steps=5", "seeds=2"]]
PONG = [str(ROOT / "configs/atari_dqn.yaml"), ["seeds=2", "num_envs=2", "total_steps=160", "epoch_steps=80",
                                               "buffer_size=200", "learning_starts=40", "target_update=10",
                                               "eval_envs=1", "eval_steps=8"]]
RUNS = {"catch": CATCH, "a2c_lstm": A2C_LSTM, "pong": PONG}


def forced_devices(n: int) -> dict:
    return os.environ | {"XLA_FLAGS": f"--xla_force_host_platform_device_count={n}"}


@pytest.fixture(scope="module")
def two_devices():
    out = subprocess.run([sys.executable, "tests/seed_mesh_probe.py", json.dumps(list(RUNS.values()))], cwd=ROOT,
                         env=forced_devices(2), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return dict(zip(RUNS, json.loads(out.stdout.strip().splitlines()[-1])))


def test_compiled_epoch_holds_no_collective(two_devices):
    for name, result in two_devices.items():
        assert result["devices"] == 2
        assert result["collectives"] == [], name


def test_five_seeds_use_both_devices_and_report_five(two_devices):
    catch = two_devices["catch"]
    assert catch["seeds_per_device"] == {"0": 3, "1": 3}  # 5 real seeds + 1 padded
    assert all(len(values) == 5 for epoch in catch["history"] for values in epoch.values())


@pytest.mark.parametrize("name,seeds", [("catch", [0, 4]), ("a2c_lstm", [0, 1]), ("pong", [0, 1])])
def test_seed_i_on_two_devices_equals_seed_i_alone(two_devices, name, seeds):
    path, overrides = RUNS[name]
    for i in seeds:  # seed 4 of the Catch run shares device 1 with a padded seed
        alone = probe(path, overrides + ["seeds=1", f"seed={i}"])["history"]
        for e, (together, one) in enumerate(zip(two_devices[name]["history"], alone)):
            for k in one:
                np.testing.assert_allclose(together[k][i], one[k][0], rtol=1e-4, atol=1e-5,
                                           err_msg=f"{name}: seed {i}, epoch {e}, {k}")


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


@pytest.mark.parametrize("sig", ["SIGKILL", "SIGTERM"])
def test_two_processes_stopped_after_a_checkpoint_resume_to_the_same_end(tmp_path, two_processes_uninterrupted, sig):
    """Both processes SIGKILLed (a crash) or SIGTERMed (a scheduler's stop, a preemption: one line and exit
    143 from each) once a checkpoint is on disk, then restarted with the same command: the same metrics as
    the uninterrupted two-process run."""
    killed = tmp_path / "killed"
    procs = _start(killed, 2, 2, epochs=8)
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
    _finish(_start(killed, 2, 2, epochs=8))
    assert json.loads((killed / "run.json").read_text())["resumed_from_epoch"] >= 1
    _assert_same(two_processes_uninterrupted, _metrics(killed), 8, f"{sig} and resumed vs uninterrupted")


@pytest.mark.parametrize("other", [["lr=0.002"], ["--devices", "2"]])
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


def test_an_error_on_one_process_ends_every_process_in_one_line(tmp_path):
    """Process 1 alone given a bad value: it says so, and process 0 says which process failed and why,
    instead of waiting for it at the first collective."""
    procs = _start(tmp_path / "run", 2, 2, epochs=2, extra={1: ["lr=abc"]})
    (_, err0), (_, err1) = (p.communicate(timeout=300) for p in procs)
    assert [p.returncode for p in procs] == [2, 2], (err0[-3000:], err1[-3000:])
    assert len(err1.strip().splitlines()) == 1 and "lr" in err1, err1[-3000:]
    assert err0.strip().splitlines() == [err1.strip().replace("jaxfer: error: ", "jaxfer: error: process 1: ")]
    assert not (tmp_path / "run").exists()


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
