"""Should a sweep batch cells that share shapes into one compiled call? Measured, not assumed.

Two transfer cells of S seeds each (same target, same mode, so same shapes and no freeze-mask
difference) run either as two ``run.train`` calls of S seeds — what ``jaxfer.transfer.sweep`` does — or as
one call of 2S seeds, the seed axes concatenated. Both go through ``run.train`` so the times include
everything a sweep pays per call (compile, epochs, metric and checkpoint writes). The training config
is the Catch sweeps' (configs/catch_cross_transfer.yaml) with fewer epochs; repetitions alternate the
order so load from other processes on a shared CPU hits both arms alike.

    python benchmarks/cell_batching.py               # -> benchmarks/results/cell_batching.json
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
import time
from pathlib import Path

from jaxfer import config
from jaxfer.runtime import files, run
from jaxfer.transfer import sweep

RESULTS = Path(__file__).parent / "results"
CONFIG = Path(__file__).parent.parent / "configs" / "catch_cross_transfer.yaml"


def timed_train(cfg, workdir: Path) -> dict:
    start = time.perf_counter()
    summary = run.train(cfg, workdir, progress=False)
    return {"seeds": cfg.seeds, "wall_s": time.perf_counter() - start, "compile_s": summary["compile_seconds"],
            "steady_env_steps_per_s": summary["steady_env_steps_per_s"]}


def measure(cfg, repeats: int) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(repeats):
            arms = ["separate", "batched"] if rep % 2 == 0 else ["batched", "separate"]
            for arm in arms:
                if arm == "separate":  # two cells, two calls of S seeds
                    calls = [timed_train(cfg, Path(tmp) / f"{rep}-{arm}-{i}") for i in range(2)]
                else:  # the same two cells as one call of 2S seeds
                    calls = [timed_train(dataclasses.replace(cfg, seeds=2 * cfg.seeds), Path(tmp) / f"{rep}-{arm}")]
                row = {"repeat": rep, "arm": arm, "calls": len(calls),
                       "wall_s": round(sum(c["wall_s"] for c in calls), 2),
                       "compile_s": round(sum(c["compile_s"] for c in calls), 2),
                       # both cells' seeds over the calls' summed steady epoch times (they run one after another)
                       "steady_env_steps_per_s": round(sum(c["seeds"] for c in calls) / sum(
                           c["seeds"] / c["steady_env_steps_per_s"] for c in calls), 1)}
                rows.append(row)
                print(row, flush=True)
    return rows


def summarise(rows: list[dict]) -> dict:
    """Medians per arm, and batched-over-separate ratios paired within each repeat (same load)."""
    summary = {}
    for arm in ("separate", "batched"):
        mine = [r for r in rows if r["arm"] == arm]
        summary[arm] = {k: statistics.median(r[k] for r in mine)
                        for k in ("wall_s", "compile_s", "steady_env_steps_per_s")}
    pairs = [{r["arm"]: r for r in rows if r["repeat"] == rep} for rep in sorted({r["repeat"] for r in rows})]
    summary["batched_over_separate"] = {
        "wall_speedup_per_repeat": [round(p["separate"]["wall_s"] / p["batched"]["wall_s"], 3) for p in pairs],
        "steady_speedup_per_repeat": [round(p["batched"]["steady_env_steps_per_s"]
                                            / p["separate"]["steady_env_steps_per_s"], 3)
                                      for p in pairs],
        "compile_s_saved_per_repeat": [round(p["separate"]["compile_s"] - p["batched"]["compile_s"], 2) for p in pairs]}
    return summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--total-steps", type=int, default=20_000, help="env steps per seed per call (10 epochs)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=RESULTS / "cell_batching.json")
    args = p.parse_args()

    base = sweep.load(CONFIG).train
    cfg = dataclasses.replace(base, env="catch/v0", total_steps=args.total_steps, strategy="vmap")
    load_before = os.getloadavg()[0]
    rows = measure(cfg, args.repeats)
    summary = summarise(rows)
    files.write_json(args.out, {"benchmark": "cell_batching", "config": str(CONFIG.relative_to(CONFIG.parent.parent)),
                             "train": config.to_dict(cfg), "seeds_per_cell": cfg.seeds, "repeats": args.repeats,
                             **run.environment_info(), "load_average_1min": [load_before, os.getloadavg()[0]],
                             "rows": rows, "median": {k: summary[k] for k in ("separate", "batched")},
                             "batched_over_separate": summary["batched_over_separate"]})
    print(summary)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
