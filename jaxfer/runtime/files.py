"""Atomic file writes and pytree checkpoints: a crash never leaves a half-written file behind.

Checkpoints are plain ``.npz`` files keyed by the pytree path (hand-written rather than orbax:
a single synchronous file per run is all a chunked host loop needs, and it loads anywhere).
"""
from __future__ import annotations

import csv
import errno
import io
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import jax
import numpy as np
import yaml

from jaxfer.errors import JaxferError

PARTIAL = ".partial-"  # in the name of a file being written; left behind only by a killed writer
_UMASK = os.umask(0)
os.umask(_UMASK)


class DiskFull(JaxferError):
    """No space left for a file: the file it would replace is intact and its temp file removed."""


def atomic_write(path: Path, write, size: int = 0) -> None:
    """Call ``write(binary_file)`` on a temp file beside ``path``, then rename it into place. In a
    multi-process run only process 0 writes files (every process computes the same results).
    ``size`` (bytes, about) goes into the one line a full disk gives."""
    if jax.process_index() != 0:
        return
    path, tmp = Path(path), None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}{PARTIAL}")
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp's 0600 would hide results from the rest of a group
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            free = shutil.disk_usage(next(d for d in (path.parent, *path.parents) if d.exists())).free
            need = f"about {_mib(size)} needed, " if size else ""
            raise DiskFull(f"no space left on the device for {path} ({need}{_mib(free)} free); free some space "
                           f"and run the same command again (an earlier {path.name} is kept as it was)") from None
        raise


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data), len(data))


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


class DamagedFile(JaxferError):
    """A file that cannot be read back (a copy cut short, a file of another kind): one line, naming it."""


def damaged(path: Path, reason: str, hint: str = "was it cut short or edited?") -> DamagedFile:
    return DamagedFile(f"{path} is damaged ({reason}); {hint}")


def _text(path: Path) -> str:
    """A text file jaxfer wrote; a missing file stays ``FileNotFoundError``, one not UTF-8 is damaged."""
    try:
        return Path(path).read_text()
    except UnicodeDecodeError:
        raise damaged(path, "not UTF-8 text") from None
    except IsADirectoryError:
        raise damaged(path, "a directory, not a file") from None


def merge_csv(path: Path, rows: list[dict], key: tuple[str, ...]) -> None:
    """Write ``rows`` into the table at ``path``, keeping its rows of other ``key`` values (another writer's):
    rows are added or replaced, never dropped. Called under the directory's lock."""
    mine = {tuple(str(r[k]) for k in key) for r in rows}
    kept = [r for r in read_csv(path, key) if tuple(r[k] for k in key) not in mine] if Path(path).exists() else []
    write_csv(path, rows + kept)


def read_csv(path: Path, columns: tuple[str, ...] = (), rows: bool = False,
             numbers: tuple[str, ...] | bool = ()) -> list[dict]:
    """The rows of a CSV table jaxfer wrote (``write_csv``). A table cut short (every row jaxfer writes
    ends its line), a row of the wrong length, a missing or empty column of ``columns``, a value that is
    not a number in a column of ``numbers`` (True: every column), or no row at all where ``rows`` asks for
    one raises ``DamagedFile``."""
    text = _text(path)
    if not text and (columns or rows):
        raise damaged(path, "empty")
    if text and not text.endswith("\n"):
        raise damaged(path, "its last line is cut short")
    reader = csv.DictReader(io.StringIO(text))
    try:
        table = list(reader)
    except csv.Error as e:
        raise damaged(path, f"not a CSV table: {e}") from None
    missing = [c for c in columns if c not in (reader.fieldnames or [])]
    if missing or (rows and not table):
        raise damaged(path, f"no column '{missing[0]}'" if missing else "no rows")
    for i, row in enumerate(table):
        if None in row or None in row.values() or any(row[c] == "" for c in columns):
            raise damaged(path, f"row {i + 1} is incomplete")
        for c in row if numbers is True else [c for c in numbers or () if c in row]:
            if row[c] != "" and not _is_number(row[c]):
                raise damaged(path, f"row {i + 1}: {c} is '{row[c][:20]}', not a number")
    return table


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_json(path: Path, keys: tuple[str, ...] = ()) -> dict:
    """A JSON object jaxfer wrote, holding ``keys``; anything else raises ``DamagedFile``."""
    try:
        obj = json.loads(_text(path))
    except json.JSONDecodeError as e:
        raise damaged(path, f"not JSON: {e.msg} at line {e.lineno}") from None
    if not isinstance(obj, dict):
        raise damaged(path, f"a JSON {type(obj).__name__}, not an object")
    missing = [k for k in keys if k not in obj]
    if missing:
        raise damaged(path, f"no '{missing[0]}' entry")
    return obj


def read_yaml(path: Path, hint: str = "was it cut short or edited?") -> dict:
    """A YAML mapping jaxfer wrote (a claim such as config.yaml); anything else raises ``DamagedFile``."""
    try:
        obj = yaml.safe_load(_text(path))
    except yaml.YAMLError as e:
        raise damaged(path, f"not valid YAML: {str(e).splitlines()[0]}", hint) from None
    if not isinstance(obj, dict):
        raise damaged(path, f"a YAML {type(obj).__name__}, not a mapping", hint)
    return obj


def _path_name(path) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def save_tree(path: Path, tree, **extra) -> None:
    """Save a pytree of arrays (and scalar extras) as one .npz, atomically."""
    leaves = {_path_name(p): np.asarray(x) for p, x in jax.tree_util.tree_leaves_with_path(tree)}
    leaves |= {f"__{k}": np.asarray(v) for k, v in extra.items()}
    atomic_write(path, lambda f: np.savez(f, **leaves), sum(x.nbytes for x in leaves.values()))


def save_gif(path: Path, images: list[np.ndarray], scale: int = 2, ms: int = 150) -> None:
    """uint8 images (H, W) or (H, W, 3) as an animated GIF, each pixel ``scale`` x ``scale``, atomically."""
    from PIL import Image  # Pillow ships with matplotlib

    pics = [Image.fromarray(im).resize((im.shape[1] * scale, im.shape[0] * scale), Image.NEAREST) for im in images]
    buf = io.BytesIO()
    pics[0].save(buf, format="GIF", save_all=True, append_images=pics[1:], duration=ms, loop=0)
    atomic_write_bytes(path, buf.getvalue())


def load_npz(path: Path) -> dict:
    """Every array of a .npz file; a damaged one raises ``DamagedFile``."""
    try:
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:120]
        raise DamagedFile(f"{path} cannot be read ({reason}); delete it to start over") from None
    if not arrays:  # every file jaxfer saves holds some
        raise DamagedFile(f"{path} cannot be read (it holds no arrays); delete it to start over")
    return arrays


def load_nested(path: Path) -> dict:
    """The arrays of a .npz written by ``save_tree`` as nested dicts (its keys are pytree paths:
    params/conv_0/kernel), for a tree whose structure is not known beforehand (a user's checkpoint)."""
    tree: dict = {}
    for name, x in load_npz(path).items():
        if not name.startswith("__"):
            *parents, leaf = name.split("/")
            node = tree
            for key in parents:
                node = node.setdefault(key, {})
            node[leaf] = x
    return tree


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
