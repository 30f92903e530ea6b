"""Does DPTL predict measured transfer better than cheaper predictors? For every (source, target) pair
of an FC-only sweep (conv layers copied and frozen, dense layers re-initialised and trained: DPTL's
own transfer mode), the DPTL score and the baselines of ``jaxfer.dptl.baselines`` against the
measured area ratio R, as Spearman and Kendall correlations with bootstrap CIs over pairs and seeds.

Domains: ``catch`` (12 cross pairs of the four Catch variants), ``minatar`` (20 ordered pairs of
the five games in the common ``grid_common`` layout), ``catch_holdout`` (28 pairs: Catch v5-v8 as
targets of all 8 games, held out until the others were scored) and ``minatar_holdout`` (21 pairs: three
upside-down MinAtar games as targets of all 8). Model-based scores use every scratch seed of
the source (DPTL: per-frame SSIM averaged over the seeds' models; CKA: one score per seed), on the
same random-policy frames of each game. R's per-seed areas come from the sweep's curves.csv (or the
copy committed under benchmarks/results/transfer/<sweep>/).

    jaxfer transfer configs/catch_fc_only_transfer.yaml       # -> runs/catch_fc_only_transfer
    jaxfer transfer configs/dptl_minatar_validation.yaml      # -> runs/dptl_minatar_validation
    python benchmarks/dptl_validation.py catch|minatar [--sweep DIR] [--frames 1000]
"""
from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import jax  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from jaxfer import envs  # noqa: E402
from jaxfer.dptl import baselines, frames, gradcam, pipeline  # noqa: E402
from jaxfer.runtime import (  # noqa: E402
    files,
    plots,  # noqa: E402
    run,
    rundir,
)
from jaxfer.stats import kendall_tau, rank_correlation_ci, spearman  # noqa: E402
from jaxfer.transfer import area_ratio, sweep  # noqa: E402

ROOT = Path(__file__).parent.parent
RESULTS = Path(__file__).parent / "results"
LABELS = {"dptl": "DPTL (Grad-CAM SSIM)", "mean_frame_ssim": "SSIM of mean frames",
          "mask_iou": "IoU of threshold masks", "activation_cka": "CKA of last-conv units"}


def shown(path: Path) -> str:
    """A path as the results name it: relative to the repository where it lies inside, else absolute."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


@dataclasses.dataclass(frozen=True)
class Domain:
    config: Path  # the FC-only sweep
    mode: str  # its transfer mode
    out: str  # stem of the result files under benchmarks/results/dptl/
    returns: bool  # its curves are returns (a random policy's return is then the floor to beat)


DOMAINS = {
    "catch": Domain(ROOT / "configs" / "catch_fc_only_transfer.yaml", "first_n:2:frozen", "catch_fc_only_validation",
                    False),
    "minatar": Domain(ROOT / "configs" / "dptl_minatar_validation.yaml", "first_n:1:frozen",
                      "minatar_fc_only_validation", True),
    # the held-out block (issue 27): Catch v5-v8 as targets of all 8 games, its analysis fixed in its config
    "catch_holdout": Domain(ROOT / "configs" / "catch_fc_only_holdout.yaml", "first_n:2:frozen",
                            "catch_holdout_fc_only_validation", False),
    # MinAtar's held-out block: the three upside-down games as targets of all 8
    "minatar_holdout": Domain(ROOT / "configs" / "minatar_fc_only_holdout.yaml", "first_n:1:frozen",
                              "minatar_holdout_fc_only_validation", True),
}


def seed_curves(curves: list[dict], mode: str) -> dict:
    """(source, target) -> learning curves (seeds, epochs) of the cell; scratch runs under (target, target)."""
    by_run: dict = {}
    for r in curves:
        if r["mode"] in (mode, "scratch"):
            by_run.setdefault((r["source"], r["target"]), []).append(r)
    return {key: plots.seed_matrix(rows, "value")[1] for key, rows in by_run.items()}


def run_curves(sweep_dir: Path, cfg: sweep.SweepConfig, mode: str) -> dict:
    """The same from the sweep's finished run directories (run.json written): a sweep still running
    gives the pairs it has finished."""
    runs = {(g, g): sweep_dir / "scratch" / rundir.slug(g) for g in dict.fromkeys(cfg.sources + cfg.targets)}
    runs |= {(s, t): sweep_dir / sweep.cell_dir(s, t, m) for s, t, m in cfg.cells() if m == mode}
    out = {}
    for key, run_dir in runs.items():
        if (run_dir / rundir.RUN_JSON).exists():
            rows = files.read_csv(run_dir / rundir.METRICS)
            out[key] = plots.seed_matrix(rows, plots.curve_metric(rows))[1]
    return out


def random_return(env_id: str, obs_mode: str, steps: int, num_envs: int = 16, seed: int = 0) -> float:
    """Mean return of the games a uniform random policy finishes in ``steps`` steps of ``num_envs`` envs:
    what a scratch agent has to beat to have learned anything."""
    env = envs.make(env_id, obs_mode)
    pool = envs.pool(env, 1, num_envs, seed)
    state, _ = pool.reset(jax.random.PRNGKey(seed)[None])

    def body(state, key):
        actions = jax.random.randint(key, (1, num_envs), 0, env.num_actions)
        state, _, _, _, info = pool.step(state, actions)
        return state, (info["episode_return"], info["episode_end"])

    returns, ends = map(np.asarray, jax.jit(lambda s: jax.lax.scan(body, s, jax.random.split(
        jax.random.PRNGKey(seed + 1), steps))[1])(state))
    return float(returns[ends].mean())


def scratch_learning(cfg: sweep.SweepConfig, curves: dict, returns: bool) -> dict:
    """Per game, the scratch agents' seed-mean evaluation score in the first and last epochs (and, if
    the score is a return, a random policy's return over as many steps as an evaluation plays)."""
    out = {}
    for game in cfg.targets:
        curve = curves[game, game].mean(axis=0)
        out[game] = {"first_epoch": round(float(curve[0]), 3), "last_epoch": round(float(curve[-1]), 3)}
        if returns:
            out[game]["random_policy_return"] = round(random_return(game, cfg.train.obs, cfg.train.eval_steps), 3)
    return out


def correlations(rows: list[dict], curves: dict, window: int | None, n_boot: int) -> tuple[dict, dict]:
    """Spearman and Kendall of every predictor with R, each with its pairs-and-seeds bootstrap CI; and
    DPTL's Spearman minus each baseline's, on the same resamples (does DPTL beat it?)."""
    transfer = np.stack([area_ratio.area_under_curve(curves[r["source"], r["target"]], window) for r in rows])
    scratch = np.stack([area_ratio.area_under_curve(curves[r["target"], r["target"]], window) for r in rows])
    scores = {name: np.array([r[f"{name}_per_seed"] for r in rows]) if f"{name}_per_seed" in rows[0]
              else np.array([[r[name]] for r in rows]) for name in baselines.PREDICTORS}

    def ci(x, statistic, versus=None) -> dict:
        point, low, high = rank_correlation_ci(x, transfer, scratch, statistic, n_boot=n_boot, versus=versus)
        return {"value": round(point, 4), "ci": [round(low, 4), round(high, 4)]}

    stats = {name: {"spearman": ci(x, spearman), "kendall": ci(x, kendall_tau)}
             for name, x in scores.items()}
    beats = {name: ci(scores["dptl"], spearman, versus=x) for name, x in scores.items() if name != "dptl"}
    return stats, beats


def scatter(path: Path, rows: list[dict], stats: dict, title: str) -> None:
    """One panel per predictor: score (mean over source seeds, bars: their range) vs R (95% CI over seeds)."""
    fig, axes = plt.subplots(1, len(baselines.PREDICTORS), figsize=(4.2 * len(baselines.PREDICTORS), 4.2),
                             squeeze=False)
    sources = sorted({r["source"] for r in rows})
    colours = dict(zip(sources, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for ax, name in zip(axes[0], baselines.PREDICTORS):
        for source in sources:
            mine = [r for r in rows if r["source"] == source]
            x = np.array([r[name] for r in mine])
            spread = np.array([r.get(f"{name}_per_seed", [r[name]]) for r in mine])
            xerr = np.stack([x - spread.min(axis=1), spread.max(axis=1) - x])
            y = np.array([r["area_ratio"] for r in mine])
            yerr = np.stack([y - [r["ci_low"] for r in mine], np.array([r["ci_high"] for r in mine]) - y])
            ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="o", ms=4, color=colours[source], capsize=2,
                        label=f"from {source.split('/')[1]}")
            for r in mine:
                ax.annotate(r["target"].split("/")[1][:5], (r[name], r["area_ratio"]), fontsize=6,
                            xytext=(3, 2), textcoords="offset points")
        s = stats[name]["spearman"]
        ax.set_title(f"{LABELS[name]}\nSpearman {s['value']:+.2f} [{s['ci'][0]:+.2f}, {s['ci'][1]:+.2f}]", fontsize=9)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xlabel("score (bars: range over source seeds)", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("area ratio R (95% CI over seeds)")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    files.save_figure(fig, path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("domain", choices=sorted(DOMAINS))
    p.add_argument("--sweep", type=Path, help="the FC-only sweep's directory (default: runs/<config name>)")
    p.add_argument("--frames", type=int, default=1000, help="random-policy frames per game")
    p.add_argument("--boot", type=int, default=2000, help="bootstrap resamples of the correlation CIs")
    p.add_argument("--out", type=Path, default=RESULTS / "dptl")
    args = p.parse_args()
    domain = DOMAINS[args.domain]
    cfg = sweep.load(domain.config)
    sweep_dir = args.sweep or Path("runs") / domain.config.stem
    committed = RESULTS / "transfer" / domain.config.stem / "curves.csv"
    if (sweep_dir / "curves.csv").exists() or not committed.exists():
        curves, where = run_curves(sweep_dir, cfg, domain.mode), f"{sweep_dir}/"
    else:
        curves, where = seed_curves(files.read_csv(committed), domain.mode), os.path.relpath(committed, ROOT)
    cache = sweep_dir / "dptl" / "frames"
    obs_mode = cfg.train.obs
    games = dict.fromkeys(cfg.sources + cfg.targets)
    observed = {g: frames.collect(g, obs_mode, args.frames, 0, None, cache) for g in games}
    pictures = {g: pipeline.screens(o, g, obs_mode, pipeline.DPTLConfig.size) for g, o in observed.items()}
    th = pipeline.Threshold()
    rows, layer = [], None
    for source in cfg.sources:
        targets = tuple(t for s, t, _ in cfg.cells() if s == source and {(s, t), (s, s), (t, t)} <= set(curves))
        if not targets:
            continue
        dcfg = pipeline.DPTLConfig(source=str(sweep_dir / "scratch" / rundir.slug(source)), targets=targets,
                                      source_seed="all", frames=args.frames, cache=str(cache))
        scores = pipeline.run_dptl(dcfg, sweep_dir / "dptl" / rundir.slug(source))
        model = pipeline.load_source(dcfg.source)
        layer = gradcam.resolve_layer(model.params, None)
        for s in scores:
            target = s["target"]
            point, low, high = area_ratio.area_ratio_ci(curves[source, target], curves[target, target], cfg.window)
            cka = [baselines.activation_cka(model.net, model.seed_params(i), observed[source], observed[target],
                                                 layer) for i in range(model.num_seeds)]
            rows.append({"source": source, "target": target, "dptl": s["score"], "dptl_per_seed": s["per_seed"],
                         "mean_frame_ssim": round(baselines.mean_frame_ssim(pictures[source], pictures[target]),
                                                  4),
                         "mask_iou": round(baselines.mask_iou(pictures[source], pictures[target], th.block_size,
                                                                   th.method, th.offset), 4),
                         "activation_cka": round(float(np.mean(cka)), 4),
                         "activation_cka_per_seed": [round(c, 4) for c in cka],
                         "area_ratio": round(point, 4), "ci_low": round(low, 4), "ci_high": round(high, 4)})
    stats, beats = correlations(rows, curves, cfg.window, args.boot)
    summary = {"domain": args.domain, "pairs": len(rows), "mode": domain.mode, "obs": obs_mode,
               "frames": args.frames, "policy": "random", "layer": layer, "seeds": cfg.train.seeds,
               "bootstrap": f"{args.boot} resamples of pairs and seed indices together "
                            "(jaxfer.stats.rank_correlation_ci)",
               "source_models": f"{sweep_dir}/scratch", "curves": where,
               "scratch_learning": scratch_learning(cfg, curves, domain.returns),
               "correlations": stats, "dptl_spearman_minus_baseline": beats}
    files.write_csv(args.out / f"{domain.out}.csv",
                 [{k: " ".join(map(str, v)) if isinstance(v, list) else v for k, v in r.items()} for r in rows])
    files.write_json(args.out / f"{domain.out}.json", summary | run.environment_info())
    scatter(args.out / f"{domain.out}.png", rows, stats,
            f"{args.domain}: predictors vs measured FC-only transfer ({domain.mode}), {len(rows)} pairs")
    print(f"{'predictor':<16} {'Spearman':>26} {'Kendall':>26}")
    for name, s in stats.items():
        print(f"{name:<16} " + " ".join(f"{s[k]['value']:+.2f} [{s[k]['ci'][0]:+.2f}, {s[k]['ci'][1]:+.2f}]".rjust(26)
                                         for k in ("spearman", "kendall")))
    for name, d in beats.items():
        print(f"DPTL's Spearman minus {name}'s: {d['value']:+.2f} [{d['ci'][0]:+.2f}, {d['ci'][1]:+.2f}]")


if __name__ == "__main__":
    main()
