"""Atomic file writes and pytree checkpoints: a crash never leaves a half-written file behind.

Checkpoints are plain ``.npz`` files keyed by the pytree path (hand-written rather than orbax:
a single synchronous file per run is all a chunked host loop needs, and it loads anywhere).
"""
from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path

import jax
import numpy as np
from jaxfer.errors import JaxferError


PARTIAL = ".partial-"  # in the name of a file being written; left behind only by a killed writer
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: Path, write) -> None:
    """Call ``write(binary_file)`` on a temp file beside ``path``, then rename it into place. In a
    multi-process run only process 0 writes files (every process computes the same results)."""
    if jax.process_index() != 0:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}{PARTIAL}")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp's 0600 would hide results from the rest of a group
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def save_figure(fig, path: Path, dpi: int = 120) -> None:
    """A matplotlib figure as a PNG, atomically; the figure is closed."""
    import matplotlib.pyplot as plt

    try:
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=dpi))
    finally:
        plt.close(fig)


def write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def write_csv(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    atomic_write_bytes(path, buf.getvalue().encode())


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _path_name(path) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def save_tree(path: Path, tree, **extra) -> None:
    """Save a pytree of arrays (and scalar extras) as one .npz, atomically."""
    leaves = {_path_name(p): np.asarray(x) for p, x in jax.tree_util.tree_leaves_with_path(tree)}
    leaves |= {f"__{k}": np.asarray(v) for k, v in extra.items()}
    atomic_write(path, lambda f: np.savez(f, **leaves))


def save_gif(path: Path, images: list[np.ndarray], scale: int = 2, ms: int = 150) -> None:
    """uint8 images (H, W) or (H, W, 3) as an animated GIF, each pixel ``scale`` x ``scale``, atomically."""
    from PIL import Image  # Pillow ships with matplotlib

    pics = [Image.fromarray(im).resize((im.shape[1] * scale, im.shape[0] * scale), Image.NEAREST) for im in images]
    buf = io.BytesIO()
    pics[0].save(buf, format="GIF", save_all=True, append_images=pics[1:], duration=ms, loop=0)
    atomic_write_bytes(path, buf.getvalue())


class DamagedFile(JaxferError):
    """A file that cannot be read back (a copy cut short, a file of another kind): one line, naming it."""


def load_npz(path: Path) -> dict:
    """Every array of a .npz file; a damaged one raises ``DamagedFile``."""
    try:
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:120]
        raise DamagedFile(f"{path} cannot be read ({reason}); delete it to start over") from None


def load_tree(path: Path, like):
    """Load a .npz written by ``save_tree`` into the structure (and dtypes) of ``like`` (arrays or
    ``jax.ShapeDtypeStruct``s); returns (tree, extras)."""
    arrays = load_npz(path)
    leaves = []
    for p, x in jax.tree_util.tree_leaves_with_path(like):
        name = _path_name(p)
        if name not in arrays:
            raise KeyError(f"checkpoint {path} has no entry '{name}'")
        if arrays[name].shape != tuple(x.shape):
            raise ValueError(f"checkpoint {path}: '{name}' has shape {arrays[name].shape}, expected {tuple(x.shape)}")
        leaves.append(arrays[name].astype(x.dtype, copy=False))  # e.g. a checkpoint shipped in float16
    extras = {k[2:]: v for k, v in arrays.items() if k.startswith("__")}
    return jax.tree.unflatten(jax.tree.structure(like), leaves), extras
