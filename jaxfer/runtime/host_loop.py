"""The host loop every training command shares (agents, FCNs): epochs of one compiled call each,
metrics.csv rewritten after each, the checkpoint written behind the next epoch, a progress bar, and
resume from the checkpoint, whose own copy of the metric rows makes a metrics.csv cut short or lost
since whole again.

A checkpoint is written after the first epoch that ends ``checkpoint_every_s`` seconds or more after the
loop started or after the last checkpoint (0: after every epoch), and after the last epoch where the run
keeps it: copying replay buffers off the device and onto disk every epoch costs a run with many seeds a
share of its time, and a kill costs at most the epochs since the last checkpoint, which a resumed run
replays to the same numbers."""
from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import jax
import numpy as np
from tqdm import tqdm

from jaxfer import mesh
from jaxfer.errors import ConfigError
from jaxfer.runtime import files
from jaxfer.runtime.rundir import CHECKPOINT, METRICS


def resume(out: Path, like, rows_per_epoch: int):
    """(saved tree or None, first epoch, metric rows so far) from ``out``'s checkpoint, whose layout must be
    ``like``'s (shapes and dtypes); no checkpoint: (None, 0, [])."""
    if not (out / CHECKPOINT).exists():
        return None, 0, []
    try:
        saved, extras = files.load_tree(out / CHECKPOINT, like=like)
    except (KeyError, ValueError) as e:  # a damaged file, or one of another layout
        raise ConfigError(str(e) if isinstance(e, files.DamagedFile) else
                          f"{out / CHECKPOINT} does not fit this run ({e}); delete it to start over") from None
    start = int(extras["epoch"])
    rows = json.loads(extras["metrics"].tobytes()) if "metrics" in extras else _csv_rows(out, start, rows_per_epoch)
    return saved, start, rows


def _csv_rows(out: Path, start: int, rows_per_epoch: int) -> list[dict]:
    """The rows before epoch ``start`` from metrics.csv, for a checkpoint of an older jaxfer (without a copy of
    them); a file that lacks some is refused rather than cut further."""
    hint = f"restore it from a copy, or delete {out / CHECKPOINT} to train the run again from the start"
    if not (out / METRICS).is_file():
        raise ConfigError(f"{out / METRICS} is missing and {out / CHECKPOINT} holds no copy of its rows; {hint}")
    rows = [r for r in files.read_csv(out / METRICS, ("epoch", "seed"), numbers=True) if int(r["epoch"]) < start]
    if len(rows) != start * rows_per_epoch:
        raise files.damaged(out / METRICS, f"{len(rows)} of the {start * rows_per_epoch} rows before epoch {start}",
                            hint)
    return rows


def _record(rows: list[dict]) -> np.ndarray:
    """metrics.csv's rows as JSON bytes, kept in the checkpoint should metrics.csv be cut short or lost."""
    return np.frombuffer(json.dumps(rows).encode(), np.uint8)


class HostLoop:
    """``for epoch in loop: ...; loop.record(new_rows, checkpoint)``, inside ``with``.

    ``record`` appends the epoch's rows, rewrites metrics.csv, hands the checkpoint (host copies) to a
    writer thread that saves it while the next epoch runs, and returns the epoch's seconds: all of it,
    copies included, but not ``compile_seconds()``'s growth (compiling a new variant of the epoch).
    ``checkpoint_due(epoch)`` says whether this epoch hands ``record`` a checkpoint (the same answer on every
    process). Only process 0 of a multi-process run writes (``writes``)."""

    def __init__(self, out: Path, start: int, num_epochs: int, rows: list[dict], desc: str, progress: bool,
                 compile_seconds: Callable[[], float] = lambda: 0.0, checkpoint_every_s: float = 0.0,
                 keeps_last: bool = False):
        self.out, self.start, self.num_epochs, self.rows = Path(out), start, num_epochs, rows
        self.writes = jax.process_index() == 0
        self.seconds: list[float] = []
        self._every_s, self._keeps_last, self._last_checkpoint = checkpoint_every_s, keeps_last, time.perf_counter()
        self._compile_seconds = compile_seconds
        self._bar = tqdm(total=num_epochs, initial=start, desc=desc, unit="epoch",
                         disable=not (progress and self.writes), file=sys.stderr, dynamic_ncols=True)
        self._writer, self._pending = ThreadPoolExecutor(max_workers=1), None

    def __enter__(self) -> "HostLoop":
        if self.writes and self.start > 0:  # the rows of a resumed run, whole again before its next epoch
            files.write_csv(self.out / METRICS, self.rows)
        return self

    def __iter__(self):
        for epoch in range(self.start, self.num_epochs):
            self._tick, self._compiled = time.perf_counter(), self._compile_seconds()
            yield epoch

    def checkpoint_due(self, epoch: int) -> bool:
        now = time.perf_counter()
        due = now - self._last_checkpoint >= self._every_s or (self._keeps_last and epoch == self.num_epochs - 1)
        due = mesh.process_zeros(due)  # process 0's clock decides: the snapshot's fetch is a collective
        if due:
            self._last_checkpoint = now
        return due

    def record(self, epoch: int, rows: list[dict], checkpoint=None) -> float:
        """The epoch's rows, and its checkpoint where ``checkpoint_due`` said so (None otherwise)."""
        self.rows += rows
        if self.writes:
            files.write_csv(self.out / METRICS, self.rows)
            if checkpoint is not None:
                self._wait()
                self._pending = self._writer.submit(files.save_tree, self.out / CHECKPOINT, checkpoint,
                                                    epoch=epoch + 1, metrics=_record(self.rows))
        self.seconds.append(time.perf_counter() - self._tick - (self._compile_seconds() - self._compiled))
        return self.seconds[-1]

    def show(self, **postfix) -> None:
        """The progress bar's line after an epoch."""
        self._bar.set_postfix(postfix)
        self._bar.update()

    def _wait(self) -> None:
        if self._pending is not None:
            self._pending.result()
            self._pending = None

    def __exit__(self, *exc) -> None:
        self._bar.close()
        try:
            self._wait()  # the last checkpoint is on disk (or its error raised) before anything reads it
        finally:
            self._writer.shutdown()
