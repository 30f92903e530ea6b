"""Does DPTL predict measured transfer? DPTL scores of every (source, target) pair of a Catch sweep
against the area ratios its FC-only cells measured (conv layers copied and frozen, dense layers
re-initialised and trained: DPTL's own transfer mode), as a rank correlation with a bootstrap CI.

Each source's score on a target uses all of the source's scratch seeds (per-frame SSIM averaged over
the seeds' models) on the same random-policy frames of the target. Also correlates the scores with
the fine-tune area ratios of catch_cross_transfer, which a user might ask DPTL about too.

    jaxfer transfer configs/catch_fc_only_transfer.yaml          # -> runs/catch_fc_only_transfer
    python benchmarks/dptl_validation.py [--sweep runs/catch_fc_only_transfer] [--frames 1000]
"""
from __future__ import annotations

import argparse
import io as pyio
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from jaxfer.dptl import gradcam, pipeline  # noqa: E402
from jaxfer.runtime import files, run, rundir  # noqa: E402
from jaxfer.transfer import metrics, sweep  # noqa: E402

RESULTS = Path(__file__).parent / "results"
CONFIG = Path(__file__).parent.parent / "configs" / "catch_fc_only_transfer.yaml"
FINE_TUNE = RESULTS / "transfer" / "catch_cross_transfer" / "area_ratios.csv"
MODE = "first_n:2:frozen"


def pair_ci(x, y, statistic, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of a correlation, resampling (x, y) pairs."""
    pairs = np.stack([x, y], axis=1)
    return metrics.bootstrap_ci(pairs, statistic=lambda p: statistic(p[:, 0], p[:, 1]), n_boot=n_boot, seed=seed)


def scatter(path: Path, rows: list[dict], stats: dict) -> None:
    fig, ax = plt.subplots(figsize=(6.2, 4.6))
    sources = sorted({r["source"] for r in rows})
    for colour, source in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"], sources):
        mine = [r for r in rows if r["source"] == source]
        x = np.array([r["dptl"] for r in mine])
        y = np.array([r["area_ratio"] for r in mine])
        xerr = np.array([[r["dptl"] - r["dptl_ci_low"], r["dptl_ci_high"] - r["dptl"]] for r in mine]).T
        yerr = np.array([[r["area_ratio"] - r["ci_low"], r["ci_high"] - r["area_ratio"]] for r in mine]).T
        ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="o", color=colour, capsize=2, label=f"source {source}")
        for r in mine:
            ax.annotate(r["target"].split("/")[1], (r["dptl"], r["area_ratio"]), fontsize=7,
                        xytext=(4, 3), textcoords="offset points")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("DPTL score (mean SSIM, 95% CI over frames)")
    ax.set_ylabel(f"area ratio R, {MODE} (95% CI over seeds)")
    ax.set_title(f"Catch: DPTL vs measured FC-only transfer\nSpearman {stats['spearman']:+.2f} "
                 f"[{stats['spearman_ci'][0]:+.2f}, {stats['spearman_ci'][1]:+.2f}], {stats['pairs']} pairs",
                 fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    buf = pyio.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    files.atomic_write_bytes(path, buf.getvalue())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sweep", type=Path, default=Path("runs") / CONFIG.stem, help="the FC-only sweep's directory")
    p.add_argument("--frames", type=int, default=1000, help="random-policy frames per target")
    p.add_argument("--out", type=Path, default=RESULTS / "dptl")
    args = p.parse_args()

    cfg = sweep.load(CONFIG)
    measured = {(r["source"], r["target"]): r for r in files.read_csv(args.sweep / "area_ratios.csv")
                if r["mode"] == MODE}
    fine_tune = {(r["source"], r["target"]): float(r["area_ratio"]) for r in files.read_csv(FINE_TUNE)}
    rows, layer = [], None
    for source in cfg.sources:
        targets = tuple(t for s, t, _ in cfg.cells() if s == source)
        dcfg = pipeline.DPTLConfig(source=str(args.sweep / "scratch" / rundir.slug(source)), targets=targets,
                                      source_seed="all", frames=args.frames, cache=str(args.sweep / "dptl" / "frames"))
        scores = pipeline.run_dptl(dcfg, args.sweep / "dptl" / rundir.slug(source))
        layer = gradcam.resolve_layer(pipeline.load_source(dcfg.source).params, None)
        for s in scores:
            m = measured[source, s["target"]]
            rows.append({"source": source, "target": s["target"], "dptl": s["score"], "dptl_ci_low": s["ci_low"],
                         "dptl_ci_high": s["ci_high"], "dptl_per_seed": " ".join(map(str, s["per_seed"])),
                         "area_ratio": float(m["area_ratio"]), "ci_low": float(m["ci_low"]),
                         "ci_high": float(m["ci_high"]), "fine_tune_area_ratio": fine_tune.get((source, s["target"]))})
    x = np.array([r["dptl"] for r in rows])
    y = np.array([r["area_ratio"] for r in rows])
    stats = {"pairs": len(rows), "mode": MODE, "frames": args.frames, "layer": layer, "method": "gradcam",
             "source_seeds": "all (per-frame SSIM averaged over seeds)", "policy": "random",
             "spearman": metrics.spearman(x, y), "spearman_ci": pair_ci(x, y, metrics.spearman),
             "kendall": metrics.kendall_tau(x, y), "kendall_ci": pair_ci(x, y, metrics.kendall_tau),
             "per_source_spearman": {s: metrics.spearman([r["dptl"] for r in rows if r["source"] == s],
                                                         [r["area_ratio"] for r in rows if r["source"] == s])
                                     for s in cfg.sources}}
    if all(r["fine_tune_area_ratio"] is not None for r in rows):
        ft = np.array([r["fine_tune_area_ratio"] for r in rows])
        stats |= {"fine_tune_spearman": metrics.spearman(x, ft),
                  "fine_tune_spearman_ci": pair_ci(x, ft, metrics.spearman)}
    files.write_csv(args.out / "catch_fc_only_validation.csv", rows)
    files.write_json(args.out / "catch_fc_only_validation.json", stats | run.environment_info())
    scatter(args.out / "catch_fc_only_validation.png", rows, stats)
    print(f"{'source':>9} -> {'target':<9} {'DPTL':>6} {'95% CI':>16} {'R (FC-only)':>12} {'95% CI':>18}")
    for r in rows:
        print(f"{r['source']:>9} -> {r['target']:<9} {r['dptl']:6.3f} "
              f"[{r['dptl_ci_low']:.3f}, {r['dptl_ci_high']:.3f}] "
              f"{r['area_ratio']:+12.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]")
    print({k: v for k, v in stats.items()})


if __name__ == "__main__":
    main()
