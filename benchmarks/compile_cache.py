"""Total compile seconds of a Catch transfer sweep without and with XLA's persistent compilation cache.

A sweep's runs share shapes (every Catch game has the same observation and action count), so with the
cache on (jaxfer's default) the first run compiles and the others load its executable. Three runs of
the same short sweep, each in a fresh directory, each a fresh process: cache off, cache on and cold
(an empty cache folder), cache on and warm (the cold run's folder). Compile seconds are summed over
the sweep's run.json files; wall seconds are the whole command's.

    python benchmarks/compile_cache.py      # -> benchmarks/results/compile_cache.json
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

from jaxfer.runtime import files
from jaxfer.runtime.run import environment_info

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ROOT / "configs" / "catch_cross_transfer.yaml"
SHORT = ["total_steps=400", "epoch_steps=200", "learning_starts=100", "buffer_size=500", "seeds=2",
         "eval_envs=4", "eval_steps=12"]


def sweep(out: Path, cache: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}
    env["JAXFER_COMPILATION_CACHE"] = cache
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "jaxfer.cli", "transfer", str(SWEEP), *SHORT, "--out", str(out),
                    "--no-progress"], cwd=ROOT, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - start
    compiles = [json.loads(p.read_text())["compile_seconds"] for p in sorted(out.rglob("run.json"))]
    return {"runs": len(compiles), "compile_s_total": round(sum(compiles), 2),
            "compile_s_per_run": [round(c, 2) for c in compiles], "wall_s": round(wall, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "compile_cache.json")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows = {"cache_off": sweep(tmp / "off", "0"),
                "cache_on_cold": sweep(tmp / "cold", str(tmp / "cache")),
                "cache_on_warm": sweep(tmp / "warm", str(tmp / "cache"))}
    for name, row in rows.items():
        print(name, json.dumps(row), flush=True)
    files.write_json(args.out, {"benchmark": "compile_cache", "sweep": str(SWEEP.relative_to(ROOT)), "overrides": SHORT,
                             **environment_info(), **rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
