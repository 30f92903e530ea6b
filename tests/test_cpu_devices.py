"""One CPU device per core by default: the CLI sets the host device count before jax starts, a run's
mesh holds min(seeds, devices) devices, and an explicit XLA_FLAGS device count or --devices wins."""
import json
import os
import subprocess
import sys

import pytest
from conftest import run_cli

from jaxfer import backend

pytestmark = pytest.mark.stack

TINY = ["total_steps=200", "epoch_steps=100", "learning_starts=50", "buffer_size=200", "eval_envs=2",
        "eval_steps=4", "--no-progress"]


def unset() -> dict:
    """The environment with no device count set: the CLI's own default applies."""
    flags = " ".join(f for f in os.environ.get("XLA_FLAGS", "").split()
                     if "xla_force_host_platform_device_count" not in f)
    return {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")} | {"XLA_FLAGS": flags}


def devices_of(out) -> dict:
    return json.loads((out / "run.json").read_text())["device"]


@pytest.mark.parametrize("num_seeds", [2, 1])
@pytest.mark.cli
def test_a_cpu_run_gets_one_device_per_core_and_uses_min_of_seeds_and_devices(tmp_path, num_seeds):
    out = tmp_path / "run"
    proc = run_cli("train", f"seeds={num_seeds}", *TINY, "--out", out, env=unset())
    assert proc.returncode == 0, proc.stderr[-2000:]
    device = devices_of(out)
    assert device["platform"] == "cpu" and device["count"] == backend.cores()
    assert device["used"] == min(num_seeds, backend.cores())


def dry_run_devices(*args, env) -> str:
    proc = run_cli(*args, "--dry-run", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return next(line for line in proc.stdout.splitlines() if line.startswith("# code path"))


@pytest.mark.cli
def test_an_explicit_device_count_wins():
    """--dry-run says which devices the run would use, without compiling anything."""
    env = unset()
    flags = env | {"XLA_FLAGS": f"{env['XLA_FLAGS']} --xla_force_host_platform_device_count=1".strip()}
    per_core = min(2, backend.cores())
    assert f"2 seeds on {per_core} device(s)" in dry_run_devices("train", "seeds=2", env=env)
    assert "2 seeds on 1 device(s)" in dry_run_devices("train", "seeds=2", env=flags)
    assert "2 seeds on 1 device(s)" in dry_run_devices("--devices", "1", "train", "seeds=2", env=env)
    assert "2 seeds on 1 device(s)" in dry_run_devices("train", "seeds=2", env=env | {"JAX_NUM_CPU_DEVICES": "1"})


@pytest.mark.cli
def test_the_memory_check_counts_the_hosts_ram_once_for_all_cpu_devices():
    code = """
import json
from jaxfer.errors import ConfigError
from jaxfer.runtime import budget
free, sharing = budget.available()
budget.require(free // 2 - 2**20, "two shares", "seeds", (free, sharing))
try:
    budget.require(free // 2 + 2**20, "two shares", "seeds", (free, sharing))
    refused = None
except ConfigError as e:
    refused = str(e)
print(json.dumps([free, sharing, refused, budget._host_available()]))
"""
    env = unset()
    env["XLA_FLAGS"] = f"{env['XLA_FLAGS']} --xla_force_host_platform_device_count=2".strip()
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    free, sharing, refused, host = json.loads(proc.stdout.strip().splitlines()[-1])
    assert sharing == 2 and abs(free - host) < 0.1 * host  # the host's MemAvailable, once, not per device
    assert refused is not None and "for this host's 2 devices" in refused
