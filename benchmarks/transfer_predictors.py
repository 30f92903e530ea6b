"""Do the model-based predictors of ``jaxfer.transfer.predictors`` rank FC-only transfer? Each (source, target)
pair of a committed FC-only sweep (Catch, MinAtar or Catch's held-out block) scored by every predictor
(``jaxfer predict``'s function) from the sweep's scratch runs (the source models), then scored against the
committed R with the statistics of ``benchmarks/transfer_predictability.py`` (within-target tau and its tests,
Holm over the predictors: DPTL, its three baselines and the new ones; the two references of R apart).

The source models are not committed (params.npz files); train them first, as the sweep did:

    jaxfer transfer configs/catch_fc_only_transfer.yaml --run scratch/catch_v0 seeds=2   # each game
    python benchmarks/transfer_predictors.py catch [--sweep DIR]   # -> benchmarks/results/predictability/

Each pair's values are kept under <sweep>/predictors/ so that an interrupted scoring resumes.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from dptl_validation import DOMAINS, LABELS, RESULTS, ROOT, shown  # noqa: E402
from transfer_predictability import REFERENCES, areas, committed_scores, primary_p, relabelling, score  # noqa: E402

from jaxfer.runtime import files, rundir  # noqa: E402
from jaxfer.runtime.run import environment_info  # noqa: E402
from jaxfer.transfer import predictability as pred  # noqa: E402
from jaxfer.transfer import predictors, sweep  # noqa: E402

NEW = {"trainability": "trainability (TD-loss drop, transferred - fresh)",
       "grad_norm": "log gradient norm, transferred / fresh",
       "grad_agreement": "gradient agreement (minibatch cosine), transferred - fresh",
       "dormant": "- dormant channel fraction", "feature_rank": "feature srank", "probe_reward": "ridge R^2 of rewards",
       "probe_return": "ridge R^2 of returns", "jumpstart": "jumpstart (zero-shot - random return)",
       "early_r": "early R (first 5% of the budget, held-apart seeds)"}


def pair_values(sweep_dir: Path, sources: list[str], targets: list[str], mode: str, pcfg: predictors.PredictConfig,
                cached_only: bool = False) -> list[dict]:
    """Every predictor of every pair (source, target != source), from <sweep>/scratch/<source>; cached per pair
    (``cached_only``: only the pairs computed already). A cached pair that lacks a predictor added since gets only
    that one computed: its config must agree on the fields it has (a field it lacks is a new predictor's). Early
    R's scratch arm is trained once per target, for every source into it."""
    config = json.loads(json.dumps(dataclasses.asdict(pcfg)))
    rows, scratch_arms = [], {}
    for source in sources:
        def cache(target, source=source):
            return sweep_dir / "predictors" / f"{rundir.slug(source)}__{rundir.slug(target)}.json"

        into = [t for t in targets if t != source]
        kept = {t: json.loads(cache(t).read_text()) for t in into if cache(t).exists()}
        kept = {t: r for t, r in kept.items() if all(config[k] == v for k, v in r["config"].items())}
        needed = {t: [k for k in predictors.PREDICTORS if k not in kept.get(t, {})] for t in into}
        missing = [t for t, names in needed.items() if names]
        if missing and not cached_only:
            loaded = predictors.load_source(sweep_dir / "scratch" / rundir.slug(source), mode)
            only = [k for k in predictors.PREDICTORS if any(k in needed[t] for t in missing)]
            for r in predictors.predict(loaded, missing, pcfg, only, scratch_arms):
                old = kept.get(r["target"], {})
                kept[r["target"]] = old | {"source": source, "source_seeds": loaded.seeds, "config": config} | r | {
                    k: old.get(k, {}) | r[k] for k in ("seconds", "compile_seconds")}
                files.write_json(cache(r["target"]), kept[r["target"]])
                print(f"{source} -> {r['target']}: " + ", ".join(f"{k} {r[k]:+.3f}" for k in only), flush=True)
        rows += [kept[t] for t in into if t in kept]  # (cached only: a predictor still missing stays NaN)
    return rows


def matrix(rows: list[dict], sources: list[str], targets: list[str], key: str) -> np.ndarray:
    row, col = {g: i for i, g in enumerate(sources)}, {g: j for j, g in enumerate(targets)}
    out = np.full((len(sources), len(targets)), np.nan)
    for r in rows:
        out[row[r["source"]], col[r["target"]]] = r.get(key, np.nan)
    return out


def early_summary(rows: list[dict], pcfg: predictors.PredictConfig) -> dict:
    """What early_r trained and its seconds per pair, split: a target's scratch arm serves every source into it
    (``jaxfer predict`` trains it again for each source it is given)."""
    timed = [r for r in rows if "early_seconds" in r]
    if not timed:
        return {}
    trained = [r for r in timed if r.get("early_scratch_trained", True)]  # a shared arm counted once
    arm = {"transfer": float(np.median([r["early_seconds"]["transfer"] for r in timed])),
           "scratch": float(np.median([r["early_seconds"]["scratch"] for r in trained]))}
    return {"steps": timed[0]["early_steps"], "epochs": timed[0]["early_epochs"], "fraction": pcfg.early_fraction,
            "seeds": f"{timed[0]['source_seeds']} from seed {pcfg.early_seed} (the sweep's are 0-4)",
            "scratch_arms_trained": len(trained),
            "median_seconds_per_pair": arm | {"note": "after compiling, all seeds batched; scratch: per arm trained"},
            "median_compile_seconds_per_pair": float(np.median([r["compile_seconds"]["early_r"] for r in timed]))}


def figure(path: Path, targets: list[str], ratios: np.ndarray, scores: dict, stats: dict, relabel: str,
           title: str) -> None:
    """One panel per new predictor: its score against R, one colour per target (the within-target ranking is
    what the primary statistic judges), with its within-target tau and Holm-adjusted p."""
    columns = 5
    rows = -(-len(NEW) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.4 * columns, 3.4 * rows), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax in axes.flat[len(NEW):]:
        ax.set_axis_off()
    for ax, name in zip(axes.flat, NEW):
        for j, target in enumerate(targets):
            x, y = scores[name][:, j], ratios[:, j]
            keep = ~np.isnan(x) & ~np.isnan(y)
            order = np.argsort(x[keep])
            ax.plot(x[keep][order], y[keep][order], "o-", ms=4, lw=0.7, color=colours[j % len(colours)],
                    label=f"into {target.split('/')[1]}")
        s = stats[name]
        p, which = primary_p(s, "target", relabel)
        ax.set_title(f"{NEW[name]}\ntau {s['within_target_tau']:+.2f} ({which} {p:.3f})",
                     fontsize=8)
        ax.axhline(0, color="grey", lw=0.8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for row in axes:
        row[0].set_ylabel("area ratio R")
    axes[0][0].legend(fontsize=6)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    files.save_figure(fig, path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("domain", choices=sorted(DOMAINS))
    p.add_argument("--sweep", type=Path, help="the sweep directory holding scratch/ (default: runs/<config name>)")
    p.add_argument("--perm", type=int, default=10000, help="permutations of each within-target / source test")
    p.add_argument("--boot", type=int, default=2000, help="game resamples of the pooled Spearman's CI")
    p.add_argument("--cached-only", action="store_true",
                   help="score only the pairs computed already (an interrupted scoring); the others stay NaN")
    p.add_argument("--transitions", type=int, help="random-policy target transitions per set (default: "
                   f"{predictors.PredictConfig.transitions}; MinAtar's long episodes need more for the return probe)")
    p.add_argument("--values-only", action="store_true",
                   help="compute and cache every pair's values, then stop (the source models are enough: run it "
                        "while the sweep still trains its transfers, score once its curves are committed)")
    p.add_argument("--out", type=Path, default=RESULTS / "predictability")
    args = p.parse_args()
    domain = DOMAINS[args.domain]
    command = " ".join(["python", "benchmarks/transfer_predictors.py", *sys.argv[1:]])
    sweep_dir = args.sweep or ROOT / "runs" / domain.config.stem
    pcfg = predictors.PredictConfig(**({} if args.transitions is None else {"transitions": args.transitions}))
    cfg = sweep.load(domain.config)
    try:
        rows = pair_values(sweep_dir, list(cfg.sources), list(cfg.targets), domain.mode, pcfg, args.cached_only)
    except predictors.PredictError as e:  # a source model not trained yet: one line, what to run
        raise SystemExit(f"{e} (train the sweep's scratch runs first: see this script's docstring)") from None
    if args.values_only:
        return
    if not rows:
        raise SystemExit(f"no pair scored yet under {shown(sweep_dir)}/predictors: run without --cached-only")
    sources, targets, transfer, scratch, curves_path = areas(domain)
    ratios = pred.ratio_matrix(transfer, scratch)
    new = {name: matrix(rows, sources, targets, name) for name in NEW}
    committed, _ = committed_scores(RESULTS / "dptl" / f"{domain.out}.csv", sources, targets)
    stats = score(committed | new, ratios, args, sources, targets)  # Holm over the predictors, ...
    stats |= score({name: reference(ratios) for name, (_, reference) in REFERENCES.items()}, ratios, args, sources,
                   targets)  # ... the references of R (not known before training) apart
    relabel = relabelling(sources, targets)
    seconds = {name: float(np.median([r["seconds"][name] for r in rows if name in r["seconds"]])) for name in NEW}
    compile_seconds = {k: float(np.max([r["compile_seconds"][k] for r in rows if k in r["compile_seconds"]]))
                       for k in dict.fromkeys(k for r in rows for k in r["compile_seconds"])}
    labels = LABELS | NEW | {k: v[0] for k, v in REFERENCES.items()}
    stem = args.out / f"{args.domain}_predictors"
    summary = {
        "domain": args.domain, "sources": sources, "targets": targets, "pairs_scored": len(rows), "mode": domain.mode,
        "curves": curves_path,
        "source_models": f"{shown(sweep_dir)}/scratch, {rows[0]['source_seeds']} seeds each, " + (
            "the sweep's own scratch runs (the models R was measured with)" if (sweep_dir / "curves.csv").exists()
            else "retrained with the sweep's config (the sweep's own checkpoints were not kept): the same recipe "
                 "and seeds, not the same weights"),
        "predict_config": dataclasses.asdict(pcfg), "layer": rows[0]["layer"],
        "transitions_per_set": rows[0]["transitions"],
        "predictors": {name: {"label": labels[name]} | s for name, s in stats.items()},
        "seconds_per_pair": seconds | {"note": "median over pairs, compiled, all source seeds batched; grad_norm "
                                               "comes with trainability, feature_rank with dormant, probe_return "
                                               "with probe_reward (one pass each)"},
        "compile_seconds_first_pair": compile_seconds | {
            "note": "most over pairs: a source compiles its probes once per target action count; the jumpstart "
                    "rollout compiles per target (its dynamics); early_r's transfer trainer compiles per pair, its "
                    "scratch trainer once per target"},
        "early_r": early_summary(rows, pcfg),
        "holm_family": "the predictors (committed DPTL and baselines, the new ones); the two references of R apart",
        "tests": f"one-sided; *_p: {args.perm} permutations within each target (source); *_p_{relabel}: every "
                 f"relabelling of the {relabel}; pooled Spearman CI: {args.boot} game resamples",
        "commands": {f"{shown(stem)}.{ext}": command for ext in ("json", "csv", "png")},
    } | environment_info()
    files.write_json(stem.with_suffix(".json"), summary)
    row, col = {g: i for i, g in enumerate(sources)}, {g: j for j, g in enumerate(targets)}
    files.write_csv(stem.with_suffix(".csv"), [
        {"source": r["source"], "target": r["target"],
         "area_ratio": round(float(ratios[row[r["source"]], col[r["target"]]]), 4)}
        | {k: round(float(r.get(k, np.nan)), 4) for k in NEW}
        | {f"seconds_{k}": round(r["seconds"].get(k, np.nan), 3) for k in NEW}
        for r in rows])
    figure(stem.with_suffix(".png"), targets, ratios, new, stats, relabel,
           f"{args.domain}: model-based predictors vs FC-only R ({domain.mode}), {len(rows)} pairs")
    print(f"{'predictor':<16} {'tau_t':>6} {'p':>6} {'holm':>6} {relabel:>7} {'holm':>6} {'tau_s':>6} {'p':>6} "
          f"{'spearman [game CI]':>22} {'regret':>7} {'auroc':>6} {'s/pair':>7}")
    for name, s in stats.items():
        print(f"{name:<16} {s['within_target_tau']:+6.2f} {s['within_target_p']:6.3f} "
              f"{s['within_target_p_holm']:6.3f} {s[f'within_target_p_{relabel}']:7.3f} "
              f"{s[f'within_target_p_{relabel}_holm']:6.3f} {s['within_source_tau']:+6.2f} "
              f"{s['within_source_p']:6.3f} {s['pooled_spearman']:+6.2f} [{s['pooled_spearman_ci'][0]:+.2f}, "
              f"{s['pooled_spearman_ci'][1]:+.2f}] {s['top1_regret']:7.3f} {s['auroc_transfer_helps']:6.2f} "
              f"{seconds.get(name, float('nan')):7.2f}")


if __name__ == "__main__":
    main()
