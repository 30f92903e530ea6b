"""Plots people can open: learning curves with a CI band over seeds, R matrices as heatmaps."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from jaxfer import stats  # noqa: E402
from jaxfer.runtime import files  # noqa: E402


def curve_metric(rows: list[dict]) -> str:
    """The headline metric of a run: catch rate on Catch, return elsewhere (greedy evaluation)."""
    return "eval_catch_rate" if rows and "eval_catch_rate" in rows[0] else "eval_return"


def read_metrics(path: Path) -> list[dict]:
    """The rows of a run's metrics.csv, every column a curve needs present; otherwise ``files.DamagedFile``."""
    rows = files.read_csv(path, ("epoch", "seed", "env_steps"), rows=True, numbers=True)
    if curve_metric(rows) not in rows[0]:
        raise files.damaged(path, f"no column '{curve_metric(rows)}'")
    return rows


def seed_matrix(rows: list[dict], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(env_steps per epoch, values of shape (seeds, epochs)) from long-form metric rows."""
    seeds = sorted({int(r["seed"]) for r in rows})
    epochs = sorted({int(r["epoch"]) for r in rows})
    values = np.full((len(seeds), len(epochs)), np.nan)
    steps = np.zeros(len(epochs))
    for r in rows:
        i, j = seeds.index(int(r["seed"])), epochs.index(int(r["epoch"]))
        values[i, j] = float(r[metric])
        steps[j] = float(r["env_steps"])
    return steps, values


def learning_curve(path: Path, curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str, metric: str) -> None:
    """One line per named run (label -> (env steps, values (seeds, epochs))): the seed mean with a band of
    its 95% percentile-bootstrap CI over seeds at each epoch."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, (steps, values) in curves.items():
        mean, low, high = stats.mean_band(values)
        ax.plot(steps, mean, label=f"{label} ({values.shape[0]} seeds)")
        ax.fill_between(steps, low, high, alpha=0.2)
    ax.set_xlabel("env steps per seed")
    ax.set_ylabel(f"{metric.replace('_', ' ')} (mean, 95% CI)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    files.save_figure(fig, path)


def heatmap(path: Path, ratios: list[dict], sources: list[str], targets: list[str], title: str) -> None:
    """The R matrix (one row per source, one column per target), each cell with its 95% CI."""
    grid = np.full((len(sources), len(targets)), np.nan)
    cell = {}
    for r in ratios:
        i, j = sources.index(r["source"]), targets.index(r["target"])
        grid[i, j], cell[i, j] = float(r["area_ratio"]), r
    fig, ax = plt.subplots(figsize=(1.4 * len(targets) + 2, 1.1 * len(sources) + 1.5))
    lim = np.nanmax(np.abs(grid)) if np.isfinite(grid).any() else 1.0
    im = ax.imshow(grid, cmap="RdBu", vmin=-lim, vmax=lim)
    for (i, j), r in cell.items():
        ax.text(j, i, f"{grid[i, j]:.2f}\n[{float(r['ci_low']):.2f}, {float(r['ci_high']):.2f}]", ha="center",
                va="center", fontsize=7)
    ax.set_xticks(range(len(targets)), targets, rotation=30)
    ax.set_yticks(range(len(sources)), sources)
    ax.set_xlabel("target")
    ax.set_ylabel("source")
    ax.set_title(title)
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    files.save_figure(fig, path)
