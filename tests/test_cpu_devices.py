"""One CPU device per core by default: the CLI sets the host device count before jax starts, a run's
mesh holds min(seeds, devices) devices, and an explicit XLA_FLAGS device count or --devices wins."""
import json
import os

import pytest
from conftest import run_cli

from jaxfer.runtime import backend

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
def test_a_cpu_run_gets_one_device_per_core_and_uses_min_of_seeds_and_devices(tmp_path, num_seeds):
    out = tmp_path / "run"
    proc = run_cli("train", f"seeds={num_seeds}", *TINY, "--out", out, env=unset())
    assert proc.returncode == 0, proc.stderr[-2000:]
    device = devices_of(out)
    assert device["platform"] == "cpu" and device["count"] == backend.cores()
    assert device["used"] == min(num_seeds, backend.cores())


def test_an_explicit_device_count_wins(tmp_path):
    env = unset()
    forced = env | {"XLA_FLAGS": f"{env['XLA_FLAGS']} --xla_force_host_platform_device_count=1".strip()}
    proc = run_cli("train", "seeds=2", *TINY, "--out", tmp_path / "flags", env=forced)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert devices_of(tmp_path / "flags") | {"kind": None} == {
        "platform": "cpu", "kind": None, "count": 1, "used": 1, "processes": 1}
    proc = run_cli("--devices", "1", "train", "seeds=2", *TINY, "--out", tmp_path / "option", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (devices_of(tmp_path / "option")["count"], devices_of(tmp_path / "option")["used"]) == (1, 1)
    proc = run_cli("train", "seeds=2", *TINY, "--out", tmp_path / "num", env=env | {"JAX_NUM_CPU_DEVICES": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert devices_of(tmp_path / "num")["count"] == 1
