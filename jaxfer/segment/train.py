"""Train S FCNs at once on labelled frames, and measure them on held-out frames.

One compiled call runs one epoch of every seed over the seed mesh, as the agents' epochs run
(``jaxfer.runtime.seed_axis.compile_seed_map``): each device vmaps a per-seed epoch over its block of
seeds, which shuffles with its own key and ``lax.scan``s Adam steps over minibatches. The frames are
shared by all seeds (whole on every device), not copied per seed. Evaluation is a confusion matrix per
seed, from which pixel accuracy and per-class IoU follow.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxfer.code_path import PLAIN, CodePath
from jaxfer.segment.fcn import FCN

EVAL_CHUNK = 256  # frames per evaluation step (XLA CPU slows down per item on big batches)


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Frames (N, H, W, C) uint8 with labels (N, H, W) int32, split in time: test = the rollout's end."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


def split(frames: np.ndarray, labels: np.ndarray, test_fraction: float) -> Dataset:
    """The last ``test_fraction`` of a time-ordered rollout is held out: later frames than any
    training frame, mostly from other episodes, so near-duplicate neighbours do not leak."""
    chex.assert_equal_shape_prefix((frames, labels), 3)
    n_test = int(len(frames) * test_fraction)
    cut = len(frames) - n_test
    return Dataset(frames[:cut], labels[:cut], frames[cut:], labels[cut:])


class FCNState(NamedTuple):
    params: dict
    opt_state: optax.OptState
    key: jax.Array  # this seed's own: epoch e shuffles with fold_in(key, e)
    epoch: jax.Array  # () int32, the same for all seeds: epochs done


_PER_SEED = FCNState(0, 0, 0, None)  # vmap axes: every leaf per seed but the epoch count


class FCNTrainer(NamedTuple):
    """Per-block functions for ``seed_axis.compile_seed_map`` (a block: one device's seeds)."""

    net: FCN
    init: Callable  # keys (S,) -> FCNState, seed axis first
    epoch: Callable  # (FCNState block, x (N, ...), y (N, H, W)) -> (FCNState, mean loss per seed)
    confusion: Callable  # (params block, x (N, ...), y (N, H, W)) -> (seeds, K, K) counts [label, prediction]


def make_trainer(num_classes: int, obs_shape: tuple, lr: float, batch_size: int,
                 path: CodePath = PLAIN) -> FCNTrainer:
    """FCNs on the code path ``path`` (the segment run's: ``CodePath.of()``, by backend)."""
    net = FCN(num_classes, path=path)
    tx = optax.adam(lr)

    def init_one(key):
        params = net.init(key, jnp.zeros((1, *obs_shape), jnp.uint8))
        return FCNState(params, tx.init(params), key, None)

    def init(keys):
        return jax.vmap(init_one, out_axes=_PER_SEED)(keys)._replace(epoch=jnp.zeros((), jnp.int32))

    def loss_fn(params, x, y):
        logits = net.apply(params, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def epoch_one(state: FCNState, x, y):
        chex.assert_equal_shape_prefix((x, y), 3)
        num_batches = len(x) // batch_size  # the remainder is left out this epoch (the shuffle varies it)
        key = jax.random.fold_in(state.key, state.epoch)
        order = jax.random.permutation(key, len(x))[: num_batches * batch_size].reshape(num_batches, batch_size)

        def step(carry, idx):
            params, opt_state = carry
            loss, grads = jax.value_and_grad(loss_fn)(params, x[idx], y[idx])
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        (params, opt_state), losses = jax.lax.scan(step, (state.params, state.opt_state), order)
        return FCNState(params, opt_state, state.key, state.epoch + 1), losses.mean()

    def confusion_one(params, x, y):
        """Counts over chunks; padded frames carry label -1, whose one-hot row is all zeros."""
        pad = -len(x) % EVAL_CHUNK
        x = jnp.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1)).reshape(-1, EVAL_CHUNK, *x.shape[1:])
        y = jnp.pad(y, [(0, pad), (0, 0), (0, 0)], constant_values=-1).reshape(-1, EVAL_CHUNK, *y.shape[1:])

        def chunk(xy):
            pred = net.apply(params, xy[0]).argmax(-1)
            return jnp.einsum("nhwk,nhwj->kj", jax.nn.one_hot(xy[1], num_classes), jax.nn.one_hot(pred, num_classes))

        return jax.lax.map(chunk, (x, y)).sum(0)

    return FCNTrainer(
        net=net,
        init=jax.jit(init),
        epoch=jax.vmap(epoch_one, in_axes=(_PER_SEED, None, None), out_axes=(_PER_SEED, 0)),
        confusion=jax.vmap(confusion_one, in_axes=(0, None, None)),
    )


def scores(confusion: np.ndarray) -> dict:
    """Pixel accuracy and per-class IoU of one (K, K) confusion matrix [label, prediction]; a
    class absent from both labels and predictions has no IoU (None) and stays out of the mean."""
    confusion = np.asarray(confusion, dtype=np.float64)
    chex.assert_rank(confusion, 2)
    hits = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - hits
    iou = np.where(union > 0, hits / np.maximum(union, 1), np.nan)
    return {"pixel_accuracy": float(hits.sum() / confusion.sum()),
            "iou": [None if np.isnan(v) else float(v) for v in iou],
            "mean_iou": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
            "label_pixels": confusion.sum(1).astype(int).tolist()}
