"""Published tables in jaxfer's env naming: Sabatelli's Catch transfer tables (2022, ch. 8) with a
comparison, and DPTL's Table I (Joo & Kim 2020).

The thesis tables name the small-paddle game "Catch-v4" in the cross-transfer table and "Catch-v1"
in the self-transfer table; both are jaxfer's ``catch/v1`` (see shared/reference/sabatelli_catch).

    python -m jaxfer.transfer.reference SWEEP_DIR    # writes SWEEP_DIR/published_comparison.{csv,json}
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from jaxfer import stats
from jaxfer.runtime import files

_TABLE = {"v0": "catch/v0", "v2": "catch/v2", "v3": "catch/v3", "v4": "catch/v1"}  # cross table -> jaxfer
CROSS = {(_TABLE[s], _TABLE[t]): r for (s, t), r in {
    ("v0", "v2"): -0.026, ("v0", "v3"): -0.486, ("v0", "v4"): -0.479,
    ("v2", "v0"): -0.16, ("v2", "v3"): -0.121, ("v2", "v4"): -0.248,
    ("v3", "v0"): -0.406, ("v3", "v2"): -0.313, ("v3", "v4"): -0.465,
    ("v4", "v0"): -0.016, ("v4", "v2"): -0.24, ("v4", "v3"): -0.179}.items()}
SELF = {  # (game, mode): published R, self-transfer (prose naming = jaxfer naming)
    ("catch/v0", "only_head"): 0.05, ("catch/v1", "only_head"): 0.141,
    ("catch/v2", "only_head"): 0.674, ("catch/v3", "only_head"): 0.059,
    ("catch/v0", "fine_tune"): 0.017, ("catch/v1", "fine_tune"): -0.218,
    ("catch/v2", "fine_tune"): 0.393, ("catch/v3", "fine_tune"): -0.236,
}

DPTL_TABLE_I = {  # source game -> {target: published SSIM score}; the paper's source is an A3C agent
    "atari/DemonAttack": {"atari/Phoenix": 0.62, "atari/Pong": 0.46, "atari/SpaceInvaders": 0.32,
                          "atari/Seaquest": 0.17},
}


def published(source: str, target: str, mode: str) -> float | None:
    if source == target:
        return SELF.get((source, mode))
    return CROSS.get((source, target)) if mode == "fine_tune" else None


def compare(ratios: list[dict]) -> tuple[list[dict], dict]:
    """Rows of ours beside the published entry, and sign agreement / rank correlations."""
    rows = []
    for r in ratios:
        pub = published(r["source"], r["target"], r["mode"])
        if pub is not None:
            rows.append(r | {"published": pub, "same_sign": bool(np.sign(float(r["area_ratio"])) == np.sign(pub))})
    ours, theirs = [float(r["area_ratio"]) for r in rows], [r["published"] for r in rows]
    summary = {"entries": len(rows), "same_sign": sum(r["same_sign"] for r in rows),
               "spearman": stats.spearman(ours, theirs) if len(rows) > 2 else None,
               "kendall_tau": stats.kendall_tau(ours, theirs) if len(rows) > 2 else None}
    return rows, summary


def main(argv: list[str] | None = None) -> int:
    sweep_dir = Path((argv or sys.argv[1:])[0])
    rows, summary = compare(files.read_csv(sweep_dir / "area_ratios.csv"))
    files.write_csv(sweep_dir / "published_comparison.csv", rows)
    files.write_json(sweep_dir / "published_comparison.json", summary)
    for r in rows:
        print(f"{r['source']:>9} -> {r['target']:<9} {r['mode']:<10} ours {float(r['area_ratio']):+.3f} "
              f"[{float(r['ci_low']):+.3f}, {float(r['ci_high']):+.3f}]  published {r['published']:+.3f}")
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
