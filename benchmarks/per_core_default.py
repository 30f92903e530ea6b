"""README's main job with the CLI's one-CPU-device-per-core default against the old default (one device).

`jaxfer train configs/catch_dqn.yaml` (DQN on Catch-v0, 4 seeds), run by the CLI in a subprocess, once
with no device count set (one host device per core: the seeds split over them) and once with
``XLA_FLAGS=--xla_force_host_platform_device_count=1``, alternated in pairs so that both see the same
machine; each run's steady env steps/s and compile seconds come from its run.json, with the load
average around it (other jobs on the machine slow both variants, unevenly).

    python benchmarks/per_core_default.py --pairs 2              # -> results/per_core_default.json
    python benchmarks/per_core_default.py --pairs 1 total_steps=8000
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jaxfer import backend  # noqa: E402
from jaxfer.runtime import files  # noqa: E402
from jaxfer.runtime.run import environment_info  # noqa: E402

CONFIG = "configs/catch_dqn.yaml"
VARIANTS = {"per_core": None, "one_device": "--xla_force_host_platform_device_count=1"}


def run(variant: str, overrides: list[str], out: Path) -> dict:
    flags = " ".join(f for f in os.environ.get("XLA_FLAGS", "").split() if "device_count" not in f)
    env = {k: v for k, v in os.environ.items() if k != "JAX_NUM_CPU_DEVICES"}
    env["XLA_FLAGS"] = f"{flags} {VARIANTS[variant] or ''}".strip()
    load_before, start = os.getloadavg()[0], time.perf_counter()
    subprocess.run([sys.executable, "-m", "jaxfer.cli", "train", CONFIG, *overrides, "--no-progress", "--out",
                    str(out)], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    info = json.loads((out / "run.json").read_text())
    return {"variant": variant, "devices": info["device"]["count"], "devices_used": info["device"]["used"],
            "env_steps_per_s": info["steady_env_steps_per_s"], "compile_s": info["compile_seconds"],
            "final_eval_catch_rate": info["final"]["mean"].get("eval_catch_rate"),
            "wall_s": round(time.perf_counter() - start, 1),
            "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=2, help="alternated (per_core, one_device) pairs")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "per_core_default.json")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the config (default: none)")
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.pairs):
            for variant in (VARIANTS if i % 2 == 0 else reversed(VARIANTS)):  # ABBA: neither always goes first
                rows.append(run(variant, args.overrides, Path(tmp) / f"{i}_{variant}") | {"pair": i})
                print(json.dumps(rows[-1]), flush=True)
                rates = {v: [r["env_steps_per_s"] for r in rows if r["variant"] == v] for v in VARIANTS}
                files.write_json(args.out, {  # after every run: an interrupted benchmark keeps its pairs
                    "benchmark": "per_core_default", "config": CONFIG, "overrides": args.overrides,
                    **environment_info(), "cores": backend.cores(), "rows": rows,
                    "ratio_per_pair": [round(a / b, 2) for a, b in zip(rates["per_core"], rates["one_device"])]})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
