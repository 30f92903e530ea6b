"""Wall time of a whole transfer sweep: the local executor (one process) vs Ray with 2 workers.

Both arms run the same command (``jaxfer transfer configs/catch_cross_transfer.yaml``, fewer steps per
run so that both fit in one hour) from an empty sweep directory and an empty compilation cache of
their own, as a first sweep would; repetitions alternate the order so that load from other processes
on a shared machine hits both arms alike. The arms' area ratios must come out equal.

    python benchmarks/sweep_executors.py        # -> benchmarks/results/sweep_executors.json
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

from jaxfer.runtime import files, run

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).parent.parent
CONFIG = "configs/catch_cross_transfer.yaml"
ARMS = {"local": [], "ray": ["--executor", "ray", "--ray-cpus", "2"]}


def timed_sweep(arm: str, overrides: list[str], workdir: Path) -> dict:
    env = os.environ | {"JAX_COMPILATION_CACHE_DIR": str(workdir / "cache")}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "jaxfer.cli", "transfer", CONFIG, *overrides, "--out",
                           str(workdir / "sweep"), "--no-progress", *ARMS[arm]], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{arm} failed:\n{proc.stderr[-3000:]}")
    return {"arm": arm, "wall_s": round(wall, 1), "area_ratios": files.read_csv(workdir / "sweep" / "area_ratios.csv")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--total-steps", type=int, default=4000, help="env steps per seed per run (2 epochs)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--out", type=Path, default=RESULTS / "sweep_executors.json")
    args = p.parse_args()

    overrides = [f"total_steps={args.total_steps}"]
    load_before, rows = os.getloadavg()[0], []
    for rep in range(args.repeats):
        for arm in ("local", "ray") if rep % 2 == 0 else ("ray", "local"):
            with tempfile.TemporaryDirectory() as tmp:
                row = {"repeat": rep, "started": time.strftime("%Y-%m-%d %H:%M:%S")} | timed_sweep(
                    arm, overrides, Path(tmp))
            rows.append(row)
            print({k: v for k, v in row.items() if k != "area_ratios"}, flush=True)
    same = all(r["area_ratios"] == rows[0]["area_ratios"] for r in rows)
    walls = {arm: [r["wall_s"] for r in rows if r["arm"] == arm] for arm in ARMS}
    files.write_json(args.out, {"benchmark": "sweep_executors", "config": CONFIG, "overrides": overrides,
                             "arms": {arm: " ".join(["jaxfer transfer", CONFIG, *overrides, *flags])
                                      for arm, flags in ARMS.items()},
                             **run.environment_info(), "ray": metadata.version("ray"),
                             "load_average_1min": [load_before, os.getloadavg()[0]],
                             "wall_s": walls, "area_ratios_equal": same,
                             "rows": [{k: v for k, v in r.items() if k != "area_ratios"} for r in rows]})
    print(walls, "area ratios equal:", same)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
