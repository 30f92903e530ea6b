"""Segmentation pictures and DDQN comparison tables: frame | labels | prediction grids, curves, area ratios."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

from jaxfer.runtime import files, plots, rundir
from jaxfer.transfer import area_ratio

# Which variant is compared with which: (variant, reference). The seed compared frozen-FCN-trunk
# against its original scratch DDQN ("baseline"); the fair reference is the same network from scratch.
COMPARISONS = (("frozen", "scratch"), ("fine_tune", "scratch"), ("baseline", "scratch"),
               ("frozen", "baseline"), ("fine_tune", "baseline"))


def class_colours(num_classes: int) -> ListedColormap:
    """Background black, classes in tab10/tab20 colours."""
    base = plt.get_cmap("tab10" if num_classes <= 11 else "tab20").colors
    return ListedColormap([(0.0, 0.0, 0.0)] + [base[i % len(base)] for i in range(num_classes - 1)])


def segmentation_grid(path: Path, pictures: np.ndarray, labels: np.ndarray, predictions: np.ndarray,
                      class_names: list[str], title: str) -> None:
    """One row per frame: the frame as the agent sees it | its automatic labels | the FCN's prediction."""
    rows, k = len(pictures), len(class_names)
    cmap = class_colours(k)
    fig, axes = plt.subplots(rows, 3, figsize=(6.6, 2.1 * rows + 0.9), squeeze=False)
    for r in range(rows):
        for c, (image, kw) in enumerate(((pictures[r], {"cmap": "gray" if pictures[r].ndim == 2 else None}),
                                         (labels[r], {"cmap": cmap, "vmin": 0, "vmax": k - 1}),
                                         (predictions[r], {"cmap": cmap, "vmin": 0, "vmax": k - 1}))):
            axes[r, c].imshow(image, interpolation="nearest", **kw)
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
            if r == 0:
                axes[r, c].set_title(("frame", "labels", "prediction")[c])
    ncol = min(k, 6 if max(map(len, class_names)) <= 10 else 3)  # long names ("colour r/g/b") need room
    legend_rows = -(-k // ncol)
    fig.legend(handles=[Patch(color=cmap(i), label=n) for i, n in enumerate(class_names)], loc="lower center",
               ncol=ncol, fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.2 * legend_rows / fig.get_size_inches()[1], 1, 1))
    files.save_figure(fig, path)


def ddqn_results(out: Path, runs: dict[str, Path], env_id: str, window: int | None) -> list[dict]:
    """curves.csv (long form), area_ratios.csv (R with a bootstrap CI over seeds) and
    learning_curves.png of the DDQN variants in ``runs`` (variant -> run directory)."""
    rows = {v: plots.read_metrics(d / rundir.METRICS) for v, d in runs.items()}
    metric = plots.curve_metric(next(iter(rows.values())))
    files.write_csv(out / "curves.csv", [{"variant": v, "seed": r["seed"], "epoch": r["epoch"],
                                       "env_steps": r["env_steps"], "metric": metric, "value": r[metric]}
                                      for v, rs in rows.items() for r in rs])
    matrices = {v: plots.seed_matrix(rs, metric) for v, rs in rows.items()}
    curves = {v: values for v, (_, values) in matrices.items()}
    ratios = []
    for variant, reference in COMPARISONS:
        if variant in curves and reference in curves:
            point, low, high = area_ratio.area_ratio_ci(curves[variant], curves[reference], window=window)
            ratios.append({"variant": variant, "reference": reference, "metric": metric, "area_ratio": round(point, 4),
                           "ci_low": round(low, 4), "ci_high": round(high, 4), "seeds": curves[variant].shape[0]})
    files.write_csv(out / "area_ratios.csv", ratios)
    plots.learning_curve(out / "learning_curves.png", matrices, f"Double DQN on {env_id}", metric)
    return ratios
