"""Watching a run live: TensorBoard event files in its directory (tensorboardX), and Weights & Biases
with ``--track`` where wandb is installed. Per seed and seed mean of every epoch metric, and steps/s,
at the env step count per seed."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxfer.errors import ConfigError

EVENTS = "tensorboard"  # the run directory's folder of event files: `tensorboard --logdir runs`


class Tracker:
    def __init__(self, out: Path, name: str, config: dict, tensorboard: bool = True, track: bool = False):
        self.writer = self.wandb = None
        if tensorboard:
            from tensorboardX import SummaryWriter

            if (Path(out) / EVENTS).exists() and not (Path(out) / EVENTS).is_dir():
                raise ConfigError(f"{Path(out) / EVENTS} is not a directory (the run's TensorBoard events go "
                                  "there); move it away and run the same command again")

            self.writer = SummaryWriter(logdir=str(Path(out) / EVENTS), flush_secs=10)
        if track:
            try:
                import wandb
            except ImportError:
                raise ConfigError("--track needs Weights & Biases: pip install 'jaxfer[track]'") from None
            self.wandb = wandb.init(project="jaxfer", name=name, config=config, dir=str(out), resume="allow")

    def epoch(self, metrics: dict, env_steps: int, steps_per_s: float) -> None:
        """One epoch's per-seed metrics (arrays with the seed axis first)."""
        scalars = {"perf/env_steps_per_s": steps_per_s}
        for key, values in metrics.items():
            values = np.asarray(values, dtype=float)
            scalars[f"{key}/mean"] = float(values.mean())
            scalars |= {f"{key}/seed_{i}": float(v) for i, v in enumerate(values)}
        if self.writer is not None:
            for tag, value in scalars.items():
                self.writer.add_scalar(tag, value, env_steps)
        if self.wandb is not None:
            self.wandb.log(scalars, step=env_steps)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.wandb is not None:
            self.wandb.finish()
