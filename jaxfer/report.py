"""Plots people can open: learning curves with a band over seeds."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from jaxfer import io  # noqa: E402


def curve_metric(rows: list[dict]) -> str:
    """The headline metric of a run: catch rate on Catch, return elsewhere (greedy evaluation)."""
    return "eval_catch_rate" if rows and "eval_catch_rate" in rows[0] else "eval_return"


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


def learning_curve(path: Path, curves: dict[str, list[dict]], title: str) -> None:
    """One line per named run: seed mean, with a band of +-1 standard deviation over seeds."""
    fig, ax = plt.subplots(figsize=(6, 4))
    metric = "eval_return"
    for label, rows in curves.items():
        metric = curve_metric(rows)
        steps, values = seed_matrix(rows, metric)
        mean, std = values.mean(0), values.std(0)
        ax.plot(steps, mean, label=f"{label} ({values.shape[0]} seeds)")
        ax.fill_between(steps, mean - std, mean + std, alpha=0.25)
    ax.set_xlabel("env steps per seed")
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    io.save_figure(fig, path)
