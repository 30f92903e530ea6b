"""How much of FC-only transfer is there to predict, and does any predictor find it? On the committed FC-only
sweeps (per-seed curves) and DPTL validation scores (nothing is retrained or recomputed):

1. R (sources x targets) split into source effect, target effect and source x target interaction (two-way
   least squares without the diagonal), the interaction against seed noise (seeds as blocks: F test) and the
   split-half reliability of R and of each part over seeds (Spearman-Brown corrected, every split).
2. Every predictor of ``benchmarks/results/dptl/<domain>_fc_only_validation.csv`` (DPTL and its three baselines)
   and two references computed from R itself (target ease and source quality, leave-one-out), scored the same
   way: mean within-target Kendall tau with a permutation test of sources within each target (primary), the
   within-source tau and its test, Holm's correction across predictors, pooled Spearman with a CI that resamples
   games, top-1 regret and the AUROC of "transfer helps" (R > 0).
3. The design's power at latent rho = 0.5 (``jaxfer.transfer.predictability.simulate_power``).

    python benchmarks/transfer_predictability.py catch|minatar     # -> benchmarks/results/predictability/
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from dptl_validation import DOMAINS, LABELS, RESULTS, seed_curves, shown  # noqa: E402

from jaxfer.dptl import baselines  # noqa: E402
from jaxfer.runtime import files  # noqa: E402
from jaxfer.stats import holm  # noqa: E402
from jaxfer.transfer import area_ratio, sweep  # noqa: E402
from jaxfer.transfer import predictability as pred  # noqa: E402

REFERENCES = {"target_ease": ("target ease (LOO mean R into the target)", pred.target_ease),
              "source_quality": ("source quality (LOO mean R out of the source)", pred.source_quality)}
RHO = 0.5


def areas(domain) -> tuple[list[str], list[str], np.ndarray, np.ndarray, str]:
    """Sources, targets, per-seed transfer areas (sources, targets, seeds; NaN where a game meets itself),
    scratch areas (targets, seeds) from the sweep's committed curves, and that file's path."""
    cfg = sweep.load(domain.config)
    path = RESULTS / "transfer" / domain.config.stem / "curves.csv"
    curves = seed_curves(files.read_csv(path), domain.mode)
    sources, targets = list(cfg.sources), list(cfg.targets)
    transfer = np.full((len(sources), len(targets), cfg.train.seeds), np.nan)
    for i, source in enumerate(sources):
        for j, target in enumerate(targets):
            if source != target:
                transfer[i, j] = area_ratio.area_under_curve(curves[source, target], cfg.window)
    scratch = np.stack([area_ratio.area_under_curve(curves[g, g], cfg.window) for g in targets])
    return sources, targets, transfer, scratch, shown(path)


def committed_scores(path: Path, sources: list[str], targets: list[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Each predictor's (sources, targets) score matrix from the DPTL validation CSV, and the R that file
    recorded."""
    rows = files.read_csv(path)
    row, col = {g: i for i, g in enumerate(sources)}, {g: j for j, g in enumerate(targets)}
    matrices = {name: np.full((len(sources), len(targets)), np.nan) for name in [*baselines.PREDICTORS, "area_ratio"]}
    for r in rows:
        for name, matrix in matrices.items():
            matrix[row[r["source"]], col[r["target"]]] = float(r[name])
    recorded = matrices.pop("area_ratio")
    return matrices, recorded


def relabelling(sources: list[str], targets: list[str]) -> str:
    """What the exact test relabels: the games where sources and targets are one list, else (a held-out block
    of targets) the sources."""
    return "games" if sources == targets else "sources"


def primary_p(stats: dict, within: str, relabel: str) -> tuple[float, str]:
    """The Holm-adjusted p a figure shows, and its name: the permutation test's on one game list (the exploration
    designs' primary test), the source relabelling's on a held-out block (the test its analysis fixed)."""
    if relabel == "games":
        return stats[f"within_{within}_p_holm"], "Holm p"
    return stats[f"within_{within}_p_sources_holm"], "Holm p, sources relabelled"


def score(predictors: dict[str, np.ndarray], ratios: np.ndarray, args, sources: list[str],
          targets: list[str]) -> dict[str, dict]:
    """Every statistic of every predictor against R, with Holm's correction across the predictors. The exact
    test's p is ``*_p_games`` or ``*_p_sources`` (``relabelling``)."""
    relabel = relabelling(sources, targets)
    exact = pred.within_tau_game_test if relabel == "games" else pred.within_tau_source_test
    out = {}
    for k, (name, scores) in enumerate(predictors.items()):
        target_tau, target_p = pred.within_tau_test(scores, ratios, "target", args.perm, seed=k)
        source_tau, source_p = pred.within_tau_test(scores, ratios, "source", args.perm, seed=k)
        rho, low, high = pred.pooled_spearman_ci(scores, ratios, args.boot, seed=k, games=(sources, targets))
        per_target = pred.group_taus(scores, ratios, "target")
        out[name] = {"within_target_tau": target_tau, "within_target_p": target_p,
                     "within_target_taus": {t: None if np.isnan(v) else round(float(v), 4)
                                            for t, v in zip(targets, per_target)},
                     f"within_target_p_{relabel}": exact(scores, ratios, "target")[1],
                     "within_source_tau": source_tau, "within_source_p": source_p,
                     f"within_source_p_{relabel}": exact(scores, ratios, "source")[1],
                     "pooled_spearman": rho, "pooled_spearman_ci": [low, high],
                     "top1_regret": pred.top1_regret(scores, ratios),
                     "auroc_transfer_helps": pred.auroc_transfer_helps(scores, ratios)}
    for key in ("within_target_p", "within_source_p", f"within_target_p_{relabel}", f"within_source_p_{relabel}"):
        for s, p in zip(out.values(), holm([s[key] for s in out.values()])):
            s[f"{key}_holm"] = float(p)
    return out


def power(observed: np.ndarray, decomposition: dict, noise: dict, args, relabel: str = "games") -> dict:
    """Power of the within-target and within-source tests at latent rho = 0.5 on this design: with the games
    alone (no source or target effect, no noise: the most this many games allow) and with the variances
    measured here, in units of the interaction beyond noise. The permutation test, or on a held-out block
    (``relabel`` "sources") the source-relabelling test its analysis names."""
    cells = decomposition["cells"]
    interaction = noise["interaction_variance_beyond_noise"]
    measured = {"source_variance": decomposition["source"] * decomposition["ss_total"] / cells / interaction,
                "target_variance": decomposition["target"] * decomposition["ss_total"] / cells / interaction,
                "noise_variance": noise["noise_variance"] / interaction}
    out = {"rho": RHO, "alpha": 0.05, "simulations": args.sims, "permutations": args.sims_perm,
           "model": "latent Gaussian: R = source + target + interaction + noise per cell; the predictor "
                    "correlates rho with the interaction (jaxfer.transfer.predictability.simulate_power)",
           "test": "sources relabelled" if relabel == "sources" else "permutation within each target (source)",
           "measured_variances_in_interaction_units": measured}
    for setting, variances in (("games_only", {}), ("as_measured", measured)):
        for within in ("target", "source"):
            value, se = pred.simulate_power(observed, RHO, **variances, within=within, n_sim=args.sims,
                                            n_perm=args.sims_perm, seed=1, relabel_sources=relabel == "sources")
            out[f"{setting}_within_{within}"] = {"power": value, "mc_se": se}
    return out


def figure(path: Path, sources: list[str], targets: list[str], ratios: np.ndarray, decomposition: dict, noise: dict,
           reliability: dict, stats: dict, title: str) -> None:
    """R as a matrix; the decomposition's shares with what seed noise alone would give the interaction; each
    predictor's within-target and within-source tau with its primary test's Holm-adjusted p."""
    relabel = relabelling(sources, targets)
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8), gridspec_kw={"width_ratios": [1, 1, 1.4]})
    ax = axes[0]
    limit = np.nanmax(np.abs(ratios))
    image = ax.imshow(ratios, cmap="RdBu", vmin=-limit, vmax=limit)
    for (i, j), value in np.ndenumerate(ratios):
        if not np.isnan(value):
            ax.text(j, i, f"{value:+.2f}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(targets)), [g.split("/")[1] for g in targets], rotation=30, fontsize=8)
    ax.set_yticks(range(len(sources)), [g.split("/")[1] for g in sources], fontsize=8)
    ax.set_xlabel("target")
    ax.set_ylabel("source")
    ax.set_title("area ratio R (seed mean)", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046)

    ax = axes[1]
    parts = ["source", "target", "source_target_covariance", "interaction"]
    shares = [decomposition[p] for p in parts]
    ax.bar(range(4), shares, color=["C0", "C1", "C7", "C2"])
    noise_share = noise["ss_expected_from_noise"] / decomposition["ss_total"]
    ax.bar(3, noise_share, color="none", edgecolor="k", hatch="///", label=f"seed noise alone: {noise_share:.3f}")
    ax.set_xticks(range(4), ["source", "target", "2 cov", "interaction"], fontsize=8)
    ax.axhline(0, color="grey", lw=0.8)
    for x, value in enumerate(shares):
        ax.text(x, value, f"{value:.2f}", ha="center", va="bottom", fontsize=8)
    rel = ", ".join(f"{k.replace('_', ' ')} {v['reliability']:.2f}" for k, v in reliability.items())
    ax.set_title(f"share of R's sum of squares; F test of interaction vs noise p = {noise['p']:.1g}\n"
                 f"split-half reliability: {rel}", fontsize=8)
    ax.legend(fontsize=8)

    ax = axes[2]
    labels = list(stats)
    x = np.arange(len(labels))
    for offset, within, colour in ((-0.2, "target", "C2"), (0.2, "source", "C4")):
        taus = [stats[n][f"within_{within}_tau"] for n in labels]
        ax.bar(x + offset, taus, width=0.4, color=colour, label=f"within-{within} tau")
        for xi, n, tau in zip(x, labels, taus):
            ax.text(xi + offset, tau, f"p={primary_p(stats[n], within, relabel)[0]:.2f}", ha="center",
                    va="bottom" if tau >= 0 else "top", fontsize=6)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(x, [n.replace("_", "\n") for n in labels], fontsize=7)
    ax.set_ylim(-1.15, 1.15)
    ax.set_title(f"predictors: mean Kendall tau within target / source (one-sided "
                 f"{primary_p(stats[labels[0]], 'target', relabel)[1]})", fontsize=8)
    ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    files.save_figure(fig, path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("domain", choices=sorted(DOMAINS))
    p.add_argument("--perm", type=int, default=10000, help="permutations of each within-target / source test")
    p.add_argument("--boot", type=int, default=2000, help="game resamples of the pooled Spearman's CI")
    p.add_argument("--sims", type=int, default=2000, help="simulated designs per power estimate")
    p.add_argument("--sims-perm", type=int, default=999, help="permutations of each simulated test")
    p.add_argument("--out", type=Path, default=RESULTS / "predictability")
    args = p.parse_args()
    domain = DOMAINS[args.domain]
    command = " ".join(["python", "benchmarks/transfer_predictability.py", *sys.argv[1:]])
    sources, targets, transfer, scratch, curves_path = areas(domain)
    ratios = pred.ratio_matrix(transfer, scratch)
    scores_path = RESULTS / "dptl" / f"{domain.out}.csv"
    predictors, recorded = committed_scores(scores_path, sources, targets)
    mismatch = float(np.nanmax(np.abs(ratios - recorded)))
    if mismatch > 1e-3:
        raise SystemExit(f"R from {curves_path} differs from {scores_path}'s by {mismatch}: not the same sweep")
    predictors |= {name: reference(ratios) for name, (_, reference) in REFERENCES.items()}
    decomposition = pred.decompose(ratios)
    noise = pred.interaction_noise(transfer, scratch)
    reliability = pred.split_half_reliability(transfer, scratch)
    stats = score(predictors, ratios, args, sources, targets)
    relabel = relabelling(sources, targets)
    constant = np.where(np.isnan(ratios), np.nan, 0.0)
    summary = {
        "domain": args.domain, "sources": sources, "targets": targets, "seeds": int(transfer.shape[-1]),
        "mode": domain.mode,
        "curves": curves_path, "scores": shown(scores_path),
        "max_abs_difference_from_recorded_R": mismatch,
        "ratio_matrix": [[None if np.isnan(v) else round(float(v), 4) for v in row] for row in ratios],
        "decomposition": decomposition, "interaction_vs_seed_noise": noise, "split_half_reliability": reliability,
        "predictors": {name: {"label": (LABELS | {k: v[0] for k, v in REFERENCES.items()})[name]} | s
                       for name, s in stats.items()},
        "random_choice_top1_regret": pred.top1_regret(constant, ratios),
        "pairs_with_R_positive": int((ratios > 0).sum()),
        "holm_family": "all predictors listed, per p-value column",
        "tests": f"one-sided; *_p: {args.perm} permutations of sources within each target (of targets within "
                 "each source), valid for pair-specific scores but too liberal for scores shared across a "
                 f"source's targets where R has a source effect; *_p_{relabel}: exact, every relabelling of the "
                 f"{relabel} (n! orderings; scores relabelled onto a cell they have no value for leave it out); "
                 f"pooled Spearman CI: {args.boot} game resamples (percentile, 95%)",
        "power": power(~np.isnan(ratios), decomposition, noise, args, relabel),
    }
    stem = args.out / args.domain
    summary["commands"] = {f"{shown(stem)}.{ext}": command for ext in ("json", "csv", "png")}
    files.write_json(stem.with_suffix(".json"), summary)
    files.write_csv(stem.with_suffix(".csv"), [
        {"predictor": name} | {k: round(v, 4) for k, v in s.items() if not isinstance(v, (list, dict))}
        | {"pooled_spearman_low": round(s["pooled_spearman_ci"][0], 4),
           "pooled_spearman_high": round(s["pooled_spearman_ci"][1], 4)}
        for name, s in stats.items()])
    figure(stem.with_suffix(".png"), sources, targets, ratios, decomposition, noise, reliability, stats,
           f"{args.domain}: FC-only transfer ({domain.mode}), {len(sources)} sources x {len(targets)} targets, "
           f"{transfer.shape[-1]} seeds")
    print(f"shares: source {decomposition['source']:.3f}, target {decomposition['target']:.3f}, 2cov "
          f"{decomposition['source_target_covariance']:.3f}, interaction {decomposition['interaction']:.3f} "
          f"(noise alone {noise['ss_expected_from_noise'] / decomposition['ss_total']:.3f}, F p={noise['p']:.2g})")
    print("reliability: " + ", ".join(f"{k} {v['reliability']:.3f}" for k, v in reliability.items()))
    print(f"{'predictor':<16} {'tau_t':>6} {'p':>6} {'holm':>6} {relabel:>7} {'tau_s':>6} {'p':>6} {'holm':>6} "
          f"{relabel:>7} {'spearman [game CI]':>22} {'regret':>7} {'auroc':>6}")
    for name, s in stats.items():
        print(f"{name:<16} {s['within_target_tau']:+6.2f} {s['within_target_p']:6.3f} "
              f"{s['within_target_p_holm']:6.3f} {s[f'within_target_p_{relabel}']:7.3f} "
              f"{s['within_source_tau']:+6.2f} {s['within_source_p']:6.3f} {s['within_source_p_holm']:6.3f} "
              f"{s[f'within_source_p_{relabel}']:7.3f} "
              f"{s['pooled_spearman']:+6.2f} [{s['pooled_spearman_ci'][0]:+.2f}, "
              f"{s['pooled_spearman_ci'][1]:+.2f}] {s['top1_regret']:7.3f} {s['auroc_transfer_helps']:6.2f}")
    print({k: v for k, v in summary["power"].items() if k.startswith(("games", "as_"))})


if __name__ == "__main__":
    main()
