import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest

ROOT = Path(__file__).resolve().parent.parent
# Many tests compile the same programs (same shapes, other seeds); XLA's persistent cache shares the
# work between tests and with the CLI subprocesses below.
CACHE = ROOT / ".pytest_cache" / "jax"
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(CACHE))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
# One CPU device per test process and per CLI subprocess (the CLI's default is one per core): the two
# xdist workers already keep both cores busy. Tests of that default, and of forced devices, set their own.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=1".strip()
# The suite's time is mostly XLA compiling small runs, which its CPU backend does about twice as fast at
# LLVM -O0; -O0 also runs fused loops several times slower, so a test whose time is training carries the
# ``optimised`` marker and compiles at XLA's default level (-O3) and emitters, in this process and in its
# subprocesses.
FAST_COMPILE = ["--xla_backend_optimization_level=0"]
DEFAULT_LEVEL = {"xla_backend_optimization_level": 3}
if jax.__version_info__ < (0, 11):  # jaxlib 0.10's older loop emitters compile the suite's programs ~20% faster
    FAST_COMPILE.append("--xla_cpu_use_fusion_emitters=false")  # (0.11 has only the new ones, and no such flag)
    DEFAULT_LEVEL["xla_cpu_use_fusion_emitters"] = True
if "xla_backend_optimization_level" not in os.environ["XLA_FLAGS"]:
    os.environ["XLA_FLAGS"] += " " + " ".join(FAST_COMPILE)


@pytest.fixture(autouse=True)
def _xla_optimisation_level(request, monkeypatch):
    if request.node.get_closest_marker("optimised") is None:
        return
    monkeypatch.setenv("XLA_FLAGS", " ".join(f for f in os.environ["XLA_FLAGS"].split() if f not in FAST_COMPILE))
    # In this process every compilation's options pass through jax's (private) get_compile_options; where a
    # jax lacks it, the test still runs, only at -O0.
    from jax._src import compiler
    options_of = getattr(compiler, "get_compile_options", None)
    if options_of is not None:
        def at_default_level(*args, env_options_overrides=None, **kwargs):
            return options_of(*args, env_options_overrides=DEFAULT_LEVEL | (env_options_overrides or {}), **kwargs)
        monkeypatch.setattr(compiler, "get_compile_options", at_default_level)


# Every test that starts Python or a program of this environment (jaxfer, lint-imports, ray) carries the
# ``cli`` marker, so ``-m "not cli"`` is a quick in-process run: a test without it that starts one fails,
# naming itself. (Libraries' own helper programs, such as ``uname``, are not counted.)
_running: list = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _running.append(item)
    yield
    _running.pop()


def _popen_init_of_cli_tests_only(popen_init):
    def init(self, args, *rest, **kwargs):
        program = str(args if isinstance(args, (str, bytes, os.PathLike)) else args[0])
        ours = Path(program).name.startswith("python") or program.startswith(sys.prefix)
        if ours and _running and _running[-1].get_closest_marker("cli") is None:
            raise AssertionError(f"{_running[-1].nodeid} starts a process: mark it @pytest.mark.cli")
        popen_init(self, args, *rest, **kwargs)
    return init


subprocess.Popen.__init__ = _popen_init_of_cli_tests_only(subprocess.Popen.__init__)


def forced_devices(n: int) -> dict:
    """This environment with ``n`` forced host CPU devices (for a subprocess: jax reads it at start)."""
    flags = [f for f in os.environ["XLA_FLAGS"].split() if "xla_force_host_platform_device_count" not in f]
    return os.environ | {"XLA_FLAGS": " ".join([f"--xla_force_host_platform_device_count={n}", *flags])}


def run_cli(*args, cwd=None, env=None, timeout=600):
    """Run ``python -m jaxfer.cli`` in a subprocess; returns CompletedProcess (text)."""
    full_env = os.environ.copy() | (env or {})
    return subprocess.run([sys.executable, "-m", "jaxfer.cli", *map(str, args)], cwd=cwd or ROOT,
                          env=full_env, capture_output=True, text=True, timeout=timeout)


def kill_after_first_checkpoint(args, out: Path) -> None:
    """Start ``jaxfer *args --out out`` and SIGKILL it as soon as its first checkpoint is on disk."""
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", "jaxfer.cli", *map(str, args), "--out", str(out)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (out / "checkpoint.npz").exists() and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "run.json").exists(), "the run finished before it could be killed: lengthen it"


@pytest.fixture
def cli():
    return run_cli


def train_epochs(cfg, env=None, freeze=None, params=None):
    """Train ``cfg.seeds`` agents for all of ``cfg``'s epochs; params (no seed axis) start every seed."""
    import jax
    import jax.numpy as jnp

    from jaxfer import agents, envs, mesh
    from jaxfer.runtime import seed_axis
    trainer = agents.make_trainer(cfg, env or envs.make(cfg.env, cfg.obs), freeze=freeze)
    if params is not None:
        params = jax.tree.map(lambda x: jnp.broadcast_to(x, (cfg.seeds, *x.shape)), params)
    state = trainer.init(mesh.seed_keys(cfg.seed, cfg.seeds), params)
    epoch, _ = seed_axis.compile_trainer(trainer, state, cfg.strategy)
    history = []
    for _ in range(cfg.num_epochs):
        state, metrics = epoch(state)
        history.append(mesh.fetch(metrics, cfg.seeds))
    return state, history


def pool_rollout(pool, state, actions):
    """Step ``pool`` through ``actions`` (T, S, E) in one jitted ``lax.scan``: ``(state, (obs, reward, done,
    info))`` with a leading T axis."""
    import jax

    def body(state, a):
        state, obs, reward, done, info = pool.step(state, a)
        return state, (obs, reward, done, info)

    return jax.jit(lambda s, a: jax.lax.scan(body, s, a))(state, actions)
