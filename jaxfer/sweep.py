"""Transfer sweeps: sources, then every (source, target, mode) cell, against scratch baselines.

Every game in ``sources`` and ``targets`` is first trained from scratch (S seeds): on a source that
run is the source model, on a target it is the baseline. Each cell then starts seed i of the target
agent from seed i of the source model through ``jaxfer.transfer`` and trains it with the same config.
Every run is its own resumable run directory, so an interrupted sweep picks up where it stopped and
never redoes a finished run. Outputs in the sweep directory: ``curves.csv`` (long form: source,
target, mode, seed, epoch, env_steps, value), ``area_ratios.csv`` (R with a bootstrap CI per cell),
``area_ratio_<mode>.png`` heatmaps and ``curves_<target>.png``.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import matplotlib.pyplot as plt
import numpy as np
import yaml

from jaxfer import config, io, metrics, report, run, transfer
from jaxfer.config import ConfigError


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    sources: tuple[str, ...]
    targets: tuple[str, ...]
    modes: tuple[str, ...]  # "fine_tune", "only_head", "first_n:2", "last_n:1:frozen", ...
    pairs: str = "all"  # "all", "self" (source == target) or "cross" (source != target)
    window: int | None = None  # epochs of the learning curve that the area ratio integrates
    train: config.TrainConfig = config.TrainConfig()

    def cells(self) -> list[tuple[str, str, str]]:
        keep = {"all": lambda s, t: True, "self": lambda s, t: s == t, "cross": lambda s, t: s != t}[self.pairs]
        return [(s, t, m) for s in self.sources for t in self.targets if keep(s, t) for m in self.modes]


def parse_mode(spec: str) -> tuple[str, int | None, bool]:
    """'first_n:2:frozen' -> ('first_n', 2, True)."""
    name, *rest = spec.split(":")
    if name not in transfer.MODES or name == "scratch":
        raise ConfigError(f"unknown transfer mode '{name}'; known: {', '.join(m for m in transfer.MODES if m != 'scratch')}")
    n = None
    if name in ("first_n", "last_n"):
        if not rest or not rest[0].isdigit():
            raise ConfigError(f"mode '{spec}' needs a layer count, e.g. {name}:2 or {name}:2:frozen")
        n = int(rest[0])
    frozen = rest[-1:] == ["frozen"]
    return name, n, frozen


def load(path: str | Path, overrides=()) -> SweepConfig:
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as e:
        raise ConfigError(f"cannot read sweep config '{path}': {e.strerror}") from None
    known = {f.name for f in dataclasses.fields(SweepConfig)}
    if not isinstance(raw, dict) or set(raw) - known:
        raise ConfigError(f"sweep config '{path}': unknown keys {sorted(set(raw) - known)}; known: {', '.join(sorted(known))}")
    for key in ("sources", "targets", "modes"):
        if not isinstance(raw.get(key), list) or not raw[key]:
            raise ConfigError(f"sweep config '{path}': '{key}' must be a non-empty list")
    train_values = dict(raw.get("train") or {})
    train_values.update(config.parse_override(o) for o in overrides)
    cfg = SweepConfig(tuple(raw["sources"]), tuple(raw["targets"]), tuple(raw["modes"]), raw.get("pairs", "all"),
                      raw.get("window"), config.from_dict(train_values))
    if cfg.pairs not in ("all", "self", "cross"):
        raise ConfigError(f"pairs must be 'all', 'self' or 'cross', got '{cfg.pairs}'")
    for env_id in cfg.sources + cfg.targets:
        dataclasses.replace(cfg.train, env=env_id).validate()
    for mode in cfg.modes:
        parse_mode(mode)
    if not cfg.cells():
        raise ConfigError("the sweep has no (source, target) cell")
    return cfg


def _slug(env_id: str) -> str:
    return env_id.replace("/", "_")


def check_cells(cfg: SweepConfig) -> None:
    """Fail before any training if a cell's layers cannot be copied (shapes only, nothing computed)."""
    for source, target, mode in cfg.cells():
        name, n, frozen = parse_mode(mode)
        src, dst = (jax.eval_shape(lambda e=e: run.init_params(dataclasses.replace(cfg.train, env=e))) for e in (source, target))
        transfer.apply(name, src, dst, n=n, frozen=frozen)


def run_sweep(cfg: SweepConfig, out: Path, progress: bool = True) -> list[dict]:
    check_cells(cfg)
    out = Path(out)
    scratch = {}
    for env_id in dict.fromkeys(cfg.sources + cfg.targets):
        run_dir = out / "scratch" / _slug(env_id)
        run.train(dataclasses.replace(cfg.train, env=env_id), run_dir, progress, meta={"mode": "scratch"})
        scratch[env_id] = run_dir
    fresh = {env_id: run.init_params(dataclasses.replace(cfg.train, env=env_id)) for env_id in scratch}
    trained = {env_id: io.load_tree(scratch[env_id] / run.PARAMS, like=fresh[env_id])[0] for env_id in cfg.sources}
    curves = {}
    for source, target, mode in cfg.cells():
        train_cfg = dataclasses.replace(cfg.train, env=target)
        name, n, frozen = parse_mode(mode)
        params, freeze = transfer.apply(name, trained[source], fresh[target], n=n, frozen=frozen)
        unbatched_freeze = None if freeze is None else jax.tree.map(bool, freeze)
        run_dir = out / "cells" / f"{_slug(source)}__{_slug(target)}__{mode.replace(':', '-')}"
        run.train(train_cfg, run_dir, progress, init_params=params, freeze=unbatched_freeze,
                  meta={"source": source, "mode": mode})
        curves[source, target, mode] = run_dir
    return write_results(cfg, out, scratch, curves)


def write_results(cfg: SweepConfig, out: Path, scratch: dict, cells: dict) -> list[dict]:
    long_rows, ratios = [], []

    def curve(source, target, mode, run_dir):
        """Seed x epoch values of a run; its rows join the long-form table."""
        rows = io.read_csv(run_dir / run.METRICS)
        metric = report.curve_metric(rows)
        long_rows.extend({"source": source, "target": target, "mode": mode, "seed": r["seed"], "epoch": r["epoch"],
                          "env_steps": r["env_steps"], "metric": metric, "value": r[metric]} for r in rows)
        return report.seed_matrix(rows, metric)[1]

    baseline = {env_id: curve(env_id, env_id, "scratch", run_dir) for env_id, run_dir in scratch.items()}
    for (source, target, mode), run_dir in cells.items():
        values = curve(source, target, mode, run_dir)
        point, low, high = metrics.area_ratio_ci(values, baseline[target], window=cfg.window)
        ratios.append({"source": source, "target": target, "mode": mode, "area_ratio": round(point, 4),
                       "ci_low": round(low, 4), "ci_high": round(high, 4), "seeds": values.shape[0]})
    io.write_csv(out / "curves.csv", long_rows)
    io.write_csv(out / "area_ratios.csv", ratios)
    for mode in cfg.modes:
        heatmap(out / f"area_ratio_{mode.replace(':', '-')}.png", [r for r in ratios if r["mode"] == mode], cfg, mode)
    for target in dict.fromkeys(cfg.targets):
        named = {"scratch": io.read_csv(scratch[target] / run.METRICS)}
        named |= {f"{s} {m}": io.read_csv(d / run.METRICS) for (s, t, m), d in cells.items() if t == target}
        report.learning_curve(out / f"curves_{_slug(target)}.png", named, f"target {target}")
    return ratios


def heatmap(path: Path, ratios: list[dict], cfg: SweepConfig, mode: str) -> None:
    grid = np.full((len(cfg.sources), len(cfg.targets)), np.nan)
    for r in ratios:
        grid[cfg.sources.index(r["source"]), cfg.targets.index(r["target"])] = r["area_ratio"]
    fig, ax = plt.subplots(figsize=(1.4 * len(cfg.targets) + 2, 1.1 * len(cfg.sources) + 1.5))
    lim = np.nanmax(np.abs(grid)) if np.isfinite(grid).any() else 1.0
    im = ax.imshow(grid, cmap="RdBu", vmin=-lim, vmax=lim)
    for (i, j), v in np.ndenumerate(grid):
        if np.isfinite(v):
            r = next(x for x in ratios if x["source"] == cfg.sources[i] and x["target"] == cfg.targets[j])
            ax.text(j, i, f"{v:.2f}\n[{r['ci_low']:.2f}, {r['ci_high']:.2f}]", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(cfg.targets)), cfg.targets, rotation=30)
    ax.set_yticks(range(len(cfg.sources)), cfg.sources)
    ax.set_xlabel("target")
    ax.set_ylabel("source")
    ax.set_title(f"area ratio R, {mode}")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
