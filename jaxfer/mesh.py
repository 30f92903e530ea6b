"""Where seeds live: one code path for 1 CPU, many devices or many hosts (jax and numpy only).

Seeds are independent agents, so they never exchange data. A 1-D mesh holds every device in
process-major order; the seed axis is padded to a multiple of the device count (padded seeds repeat
real ones, are computed like them and are dropped before anything is reported, checkpointed or
plotted); ``over_seeds`` runs a function under ``jax.shard_map``, each device on its own block of
seeds, with no collective. Values cross devices (and processes) in ``fetch`` only, once per epoch; the
processes of a multi-process run meet at sync points (``barrier``, ``agree``, ``together``) of jax's
coordination service.

State layout: every array leaf has the seed axis first, or one row per device for per-device
resources (an emulator pool's handle); 0-d leaves (the env-step count all seeds share) are replicated.
Seed i always starts from ``PRNGKey(seed + i)``, so seed i of any batch is reproducible alone.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import json
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxfer.errors import BackendError

AXIS = "seeds"
SEED_AXIS, REPLICATED = PartitionSpec(AXIS), PartitionSpec()
BARRIER_TIMEOUT_S = 1800  # how long a process waits at a barrier for the slowest of the others


def seed_keys(seed: int, num_seeds: int) -> jax.Array:
    return jax.vmap(jax.random.PRNGKey)(jnp.arange(seed, seed + num_seeds))


_device_limit: int | None = None  # how many devices the mesh holds (``use_devices``); None: all


def use_devices(count: int | None) -> None:
    """Run on ``count`` devices (None: all): the first ``count / processes`` of each process's devices."""
    global _device_limit
    total, processes = jax.device_count(), jax.process_count()
    if count is not None and not (1 <= count <= total and count % processes == 0):
        raise BackendError(f"--devices must be a multiple of the process count ({processes}) in "
                                   f"[1, {total}] (the devices here), got {count}")
    _device_limit = count
    mesh.cache_clear()


@functools.cache
def mesh() -> Mesh:
    """The devices a run uses, process-major: each process's devices hold a contiguous block of seeds."""
    per_process = None if _device_limit is None else _device_limit // jax.process_count()
    chosen = []
    for p in range(jax.process_count()):
        chosen += sorted((d for d in jax.devices() if d.process_index == p), key=lambda d: d.id)[:per_process]
    return Mesh(np.array(chosen), (AXIS,))


def device_count() -> int:
    return mesh().size


def local_positions() -> list[int]:
    """Positions in ``mesh()`` of this process's devices, in mesh order."""
    return [i for i, d in enumerate(mesh().devices) if d.process_index == jax.process_index()]


def padded(num_seeds: int) -> int:
    """The seed count rounded up to a multiple of the device count, so every device gets work."""
    n = device_count()
    return -(-num_seeds // n) * n


def pad(tree, num_seeds: int):
    """Rows 0..num_seeds-1 of every seed-axis leaf, repeated cyclically up to ``padded(num_seeds)``."""
    rows = np.arange(padded(num_seeds)) % num_seeds
    return jax.tree.map(lambda x: x if np.ndim(x) == 0 else np.asarray(x)[rows], tree)


def spec(x) -> PartitionSpec:
    return REPLICATED if np.ndim(x) == 0 else SEED_AXIS


def place(tree):
    """Host arrays (the same on every process) as global arrays, leading axis split over the mesh."""

    def one(x):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, NamedSharding(mesh(), spec(x)), lambda index: x[index])

    return jax.tree.map(one, tree)


def replicate(tree):
    """Host arrays (the same on every process) as global arrays that every device holds whole: data all
    seeds share (an FCN's frames)."""

    def one(x):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, NamedSharding(mesh(), REPLICATED), lambda index: x[index])

    return jax.tree.map(one, tree)


def assemble(blocks: list):
    """Global arrays from one pytree per local device (in ``local_positions`` order), each holding that
    device's rows: state made on the host per device (an emulator pool's), never all on one device."""
    devices = [mesh().devices[i] for i in local_positions()]

    def one(*xs):
        shape = (xs[0].shape[0] * device_count(), *xs[0].shape[1:])
        parts = [jax.device_put(x, d) for x, d in zip(xs, devices)]
        return jax.make_array_from_single_device_arrays(shape, NamedSharding(mesh(), SEED_AXIS), parts)

    return jax.tree.map(one, *blocks)


def over_seeds(fn: Callable, in_specs, out_specs) -> Callable:
    """``fn`` on each device's block of seeds (``jax.shard_map`` over the seed mesh), not jitted."""
    return jax.shard_map(fn, mesh=mesh(), in_specs=in_specs, out_specs=out_specs, check_vma=False)


_sync_points = itertools.count()  # every process passes the same sync points in the same order
_OK, _FAILED = "ok:", "failed:"


def _client():
    from jax._src import distributed  # the coordination service's client, as orbax's barriers use it

    return distributed.global_state.client


def _share(payload: str = "") -> list[str]:
    """Every process's ``payload`` at this sync point, once all have published theirs: a barrier of jax's
    coordination service with our timeout (a gloo collective gives the others only 30 s to arrive, which
    an uneven epoch or a loaded host overruns). Where another process failed instead (``together``),
    its error is raised here, so no process waits for one that is gone."""
    key, me = f"jaxfer/{next(_sync_points)}", jax.process_index()
    _client().key_value_set(f"{key}/{me}", _OK + payload)
    found = []
    for i in range(jax.process_count()):
        try:
            found.append(_client().blocking_key_value_get(f"{key}/{i}", BARRIER_TIMEOUT_S * 1000))
        except Exception:  # jax raises its runtime error with a multi-line text
            raise BackendError(f"process {i} did not reach the same point within {BARRIER_TIMEOUT_S} s; "
                                       f"is it still running?") from None
        if found[-1].startswith(_FAILED) and i != me:
            raise BackendError(f"process {i}: {found[-1][len(_FAILED):]}")
    return [f[len(_OK):] for f in found]


@contextlib.contextmanager
def together():
    """Work that may fail on one process only (a lock held elsewhere, a damaged file, a full disk): its
    error is published at the next sync point, where the other processes raise it instead of waiting."""
    try:
        yield
    except Exception as e:
        if jax.process_count() > 1:
            text = (str(e).strip().splitlines() or [type(e).__name__])[0]
            _client().key_value_set(f"jaxfer/{next(_sync_points)}/{jax.process_index()}", _FAILED + text)
        raise


def barrier() -> None:
    """Every process reaches this point before any goes on (a no-op in one process)."""
    if jax.process_count() > 1:
        _share()


def process_zeros(flag: bool) -> bool:
    """Process 0's ``flag`` on every process: a choice that must be the same on all (a collective
    follows it) but is made from one process's clock."""
    if jax.process_count() == 1:
        return flag
    return _share(str(int(flag)))[0] == "1"


def agree(what: str, value) -> None:
    """Every process holds the same ``value`` (a JSON-able description of what it was started for),
    compared by hash; otherwise every process ends with the same one-line ``BackendError`` (processes
    that disagree would mix seeds of two runs, or abort in gloo on arrays of other sizes)."""
    if jax.process_count() == 1:
        return
    digests = _share(hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest())
    differ = [i for i, d in enumerate(digests) if d != digests[0]]
    if differ:
        raise BackendError(f"process {differ[0]} was started with another {what} than process 0; "
                                   f"start every process of a run with the same command and options")


_GATHERS: dict = {}  # compiled all-gathers by mesh and the layout of what they gather: one per epoch shape


def _gather(tree):
    """The compiled all-gather of ``tree`` onto every device, compiled once per layout."""
    layout = (mesh(), jax.tree.structure(tree),
              tuple((x.shape, x.dtype, getattr(x, "sharding", None)) for x in jax.tree.leaves(tree)))
    if layout not in _GATHERS:
        _GATHERS[layout] = jax.jit(lambda t: t, out_shardings=NamedSharding(mesh(), REPLICATED)).lower(tree).compile()
    return _GATHERS[layout]


def fetch(tree, num_seeds: int | None = None):
    """Every seed's values as numpy copies on every process (across processes, an all-gather: call it on
    all of them, outside any epoch); with ``num_seeds``, the padded seeds are dropped. Copies, because a
    CPU array may share its buffer with numpy and the next epoch donates it."""
    if jax.process_count() > 1:
        gather = _gather(tree)  # each process compiles at its own pace (the first time), then
        barrier()  # all start the all-gather together
        tree = jax.tree.map(lambda x: x.addressable_data(0), gather(tree))
    tree = jax.tree.map(np.array, tree)
    if num_seeds is None:
        return tree
    return jax.tree.map(lambda x: x if x.ndim == 0 else x[:num_seeds], tree)


def shapes(tree, num_seeds: int):
    """Shapes and dtypes of ``fetch(tree, num_seeds)``, without fetching anything."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct((num_seeds, *x.shape[1:]) if x.ndim else (), x.dtype), tree)


def host_scalar(x: jax.Array) -> int:
    """A replicated 0-d array's value, read from this process's own copy."""
    return int(np.asarray(x.addressable_data(0)))


def one_at_a_time(fn: Callable) -> Callable:
    """``fn`` over a block of seeds, one seed after another: a ``fori_loop`` that slices seed i out of
    the carried state, runs ``fn`` on it and writes it back in place (so the state is never copied
    whole). Replicated 0-d leaves are shared: every seed starts from them, the last seed's are kept."""

    def run(state, *args):
        leaves, treedef = jax.tree.flatten(state)
        shared = [x.ndim == 0 for x in leaves]
        size = next(x.shape[0] for x, s in zip(leaves, shared) if not s)

        def one(i, carried):
            return jax.tree.unflatten(treedef, [x if s else jax.lax.dynamic_slice_in_dim(c, i, 1)
                                                for x, c, s in zip(leaves, carried, shared)])

        def seed(i, carry):
            carried, outs = carry
            new, out = fn(one(i, carried), *args)
            put = lambda whole, part: jax.lax.dynamic_update_slice_in_dim(whole, part, i, 0)  # noqa: E731
            new = [n if s else put(c, n) for n, c, s in zip(jax.tree.leaves(new), carried, shared)]
            return new, jax.tree.map(put, outs, out)

        shapes = jax.eval_shape(lambda: fn(one(0, leaves), *args)[1])
        outs = jax.tree.map(lambda o: jnp.zeros((size, *o.shape[1:]), o.dtype), shapes)
        new, outs = jax.lax.fori_loop(0, size, seed, (leaves, outs))
        return jax.tree.unflatten(treedef, new), outs

    return run
