"""``jaxfer segment``: collect frames, label them, train S FCNs, report; then the Double DQN variants.

The output directory (every file written atomically; a rerun skips what is finished):

- ``segment.yaml``: the resolved config, written first (another config there is refused);
- ``frames/``: the collected random-policy frames (``jaxfer.dptl.frames`` cache);
- ``fcn/``: ``config.yaml`` (what the FCN part ran with: another config is refused), ``labels.json``
  (method, classes, label checks), ``metrics.csv`` (per epoch and seed: train loss, test pixel
  accuracy, mean IoU), ``checkpoint.npz`` (per epoch, to resume), ``fcn.npz`` (parameters, seed axis
  first, and the input they take), ``segmentation_grid.png`` (frame | labels | prediction) and, written
  last as the finished mark, ``fcn.json`` (accuracy and IoU per seed, seed means with bootstrap CIs,
  training images/s);
- ``ddqn/<variant>/``: one resumable ``jaxfer.runtime.run`` directory per variant: ``frozen`` / ``fine_tune``
  (the FCN's convs as trunk via ``jaxfer.transfer.surgery``), ``scratch`` (the same network from scratch) and
  ``baseline`` (``ddqn.baseline_network`` from scratch);
- ``curves.csv``, ``area_ratios.csv``, ``learning_curves.png`` and ``summary.json``.
"""
from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxfer import agents, envs, mesh, stats
from jaxfer.code_path import CodePath
from jaxfer.dptl import frames
from jaxfer.runtime import budget, files, host_loop, run, rundir, seed_axis
from jaxfer.segment import export, labels, report
from jaxfer.segment.config import SegmentConfig, SegmentError, to_dict
from jaxfer.segment.fcn import FCN
from jaxfer.segment.train import Dataset, make_trainer, scores, split

CLAIM = "segment.yaml"  # what a segmentation directory holds: its resolved config
OWN = ("frames", "fcn", "ddqn", "curves.csv", "area_ratios.csv", "learning_curves.png", "summary.json")
PALETTE_FIT_FRAMES = 2000  # training frames (evenly spaced) the palette labeller is fitted on: the mode sorts them


def _log(progress: bool, text: str) -> None:
    if progress:
        print(text, file=sys.stderr)


def fcn_claim(cfg: SegmentConfig) -> dict:
    """The settings the FCN depends on: changing any other key (ddqn, grid_frames) keeps it."""
    d = to_dict(cfg)
    return {k: d[k] for k in ("env", "obs", "labels", "num_colours", "frames", "frames_seed", "test_fraction", "fcn")}


def make_labels(cfg: SegmentConfig, obs: np.ndarray, n_train: int, out: Path) -> tuple[np.ndarray, list[str], dict]:
    """(labels (N, H, W), class names, label checks). A palette is fitted on training frames only."""
    method = cfg.label_method
    info: dict = {"method": method}
    if method == "channels":
        y = labels.channel_labels(obs)
        names = ["background", *labels.CHANNEL_NAMES.get(cfg.env, [f"channel_{k}" for k in range(obs.shape[-1])])]
        info["overlap_fraction"] = labels.overlap_fraction(obs)  # foreground cells decided by the precedence rule
    else:
        per_frame = 3 if cfg.obs in frames.RGB_MODES else (obs.shape[-1] if cfg.env.startswith("minatar/") else 1)
        pictures = labels.newest_frame(obs, per_frame)
        y, palette = _palette_labels(pictures, n_train, cfg.num_colours)
        names = ["background"] + ["colour " + "/".join(map(str, c)) for c in palette.colours.tolist()]
        files.atomic_write(out / "palette.npz",
                        lambda f: np.savez(f, background=palette.background, colours=palette.colours))
        info["palette"] = palette.colours.tolist()
    if cfg.env.startswith("minatar/") and method == "channels":  # both methods apply: check the frames-only one
        pal_y, _ = _palette_labels(obs, n_train, cfg.num_colours)
        info["palette_vs_channels_test"] = labels.agreement(pal_y[n_train:], y[n_train:])
    info["class_pixel_fraction"] = (np.bincount(y.ravel(), minlength=len(names)) / y.size).round(5).tolist()
    return y, names, info


def _palette_labels(pictures: np.ndarray, n_train: int, num_colours: int):
    step = max(1, n_train // PALETTE_FIT_FRAMES)
    palette = labels.fit_palette(pictures[:n_train:step], num_colours)
    return palette.labels(pictures), palette


def _picture(obs: np.ndarray, cfg: SegmentConfig) -> np.ndarray:
    """What a person sees of an observation: the newest RGB frame, or frames.screen's grayscale."""
    if cfg.obs in frames.RGB_MODES:
        return obs[..., -3:]
    return np.asarray(frames.screen(obs, cfg.env, cfg.obs))


def check_memory(cfg: SegmentConfig) -> None:
    """Refuse, before anything is played or written, frames that do not fit in memory (the frames, their
    labels, the train/test split and the batches: about 4 copies)."""
    need = 4 * cfg.frames * math.prod(envs.make(cfg.env, cfg.obs).obs_shape)
    budget.require(need, f"segmenting {cfg.frames} frames", "frames", free=(budget.available()[0], 1),
                   error=SegmentError)


def train_fcn(cfg: SegmentConfig, out: Path, progress: bool = True) -> tuple[dict, dict]:
    """(FCN params with the seed axis first, meta): trained into ``out`` (resumed there), or read back."""
    out.mkdir(parents=True, exist_ok=True)
    rundir.check_claim(out, fcn_claim(cfg), "an FCN")
    rundir.write_claim(out, fcn_claim(cfg))
    if (out / "fcn.json").exists():
        return export.load(out / export.FILE)
    obs = frames.collect(cfg.env, cfg.obs, cfg.frames, cfg.frames_seed, cache_dir=out.parent / "frames")
    n_train = cfg.frames - int(cfg.frames * cfg.test_fraction)
    y, names, label_info = make_labels(cfg, obs, n_train, out)
    files.write_json(out / "labels.json", label_info | {"classes": names})
    data = split(obs, y, cfg.test_fraction)
    _log(progress, f"{cfg.env}: {len(obs)} frames labelled by '{label_info['method']}' into {len(names)} classes; "
                   f"training {cfg.fcn.seeds} FCNs on {len(data.train_x)}, testing on {len(data.test_x)}")

    spec = cfg.fcn
    trainer = make_trainer(len(names), obs.shape[1:], spec.lr, spec.batch_size, CodePath.of())
    state = trainer.init(mesh.seed_keys(spec.seed, spec.seeds))
    saved, start, rows = host_loop.resume(out, state, spec.seeds)
    state = mesh.place(mesh.pad(state if saved is None else saved, spec.seeds))
    x, y_train = mesh.replicate((data.train_x, data.train_y))
    test = mesh.replicate((data.test_x, data.test_y))
    tick = time.perf_counter()
    epoch_fn = seed_axis.compile_seed_map(trainer.epoch, state, x, y_train, donate=True)
    confusion = seed_axis.compile_seed_map(trainer.confusion, state.params, *test)
    compile_s = time.perf_counter() - tick
    images = spec.seeds * (len(x) // spec.batch_size) * spec.batch_size
    train_seconds = []  # the epochs' own time, without the test-set evaluation and the copies
    with host_loop.HostLoop(out, start, spec.epochs, rows, f"FCN x{spec.seeds}", progress) as loop:
        for epoch in loop:
            tick = time.perf_counter()
            state, loss = epoch_fn(state, x, y_train)
            loss = mesh.fetch(loss, spec.seeds)
            train_seconds.append(time.perf_counter() - tick)
            per_seed = [scores(c) for c in mesh.fetch(confusion(state.params, *test), spec.seeds)]
            loop.record(epoch, [{"epoch": epoch, "seed": s, "train_loss": float(loss[s]),
                                 "test_pixel_accuracy": p["pixel_accuracy"], "test_mean_iou": p["mean_iou"]}
                                for s, p in enumerate(per_seed)], mesh.fetch(state, spec.seeds))
            loop.show(**{"images/s": f"{images / train_seconds[-1]:.0f}", "loss": f"{loss.mean():.4f}",
                         "test acc": f"{np.mean([p['pixel_accuracy'] for p in per_seed]):.4f}"})

    conf = mesh.fetch(confusion(state.params, *test), spec.seeds)
    params = mesh.fetch(state.params, spec.seeds)
    per_seed = [scores(c) for c in conf]
    export.save(out / export.FILE, params, cfg.env, cfg.obs, obs.shape[1:], len(names))
    _grid(out / "segmentation_grid.png", cfg, trainer.net, params, data, names)
    files.write_json(out / "fcn.json", {
        "env": cfg.env, "obs": cfg.obs, "classes": names, "train_frames": len(data.train_x),
        "test_frames": len(data.test_x), **_summary(per_seed, names),
        "per_seed": per_seed, "test_confusion_seed_sum": conf.sum(0).astype(int).tolist(),
        "compile_seconds": round(compile_s, 2),
        "train_images_per_s": round(images * len(train_seconds) / sum(train_seconds), 1) if train_seconds else None,
        "epoch_seconds_with_evaluation": round(float(np.mean(loop.seconds)), 3) if loop.seconds else None,
        "epochs_timed": len(train_seconds), "resumed_from_epoch": start, **run.environment_info()})
    return export.load(out / export.FILE)


def _summary(per_seed: list[dict], names: list[str]) -> dict:
    """Seed means with 95% bootstrap CIs over seeds (one FCN per seed)."""
    out = {}
    for key in ("pixel_accuracy", "mean_iou"):
        values = np.array([p[key] for p in per_seed])
        low, high = stats.bootstrap_ci(values)
        out[key] = {"mean": round(float(values.mean()), 5), "ci_low": round(low, 5), "ci_high": round(high, 5)}
    iou = np.array([p["iou"] for p in per_seed], dtype=float)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a class no seed saw: its mean is NaN, reported as null
        mean = np.nanmean(iou, axis=0)
    out["iou_per_class_mean"] = {n: None if np.isnan(v) else round(float(v), 5) for n, v in zip(names, mean)}
    return out


def _grid(path: Path, cfg: SegmentConfig, net: FCN, params, data: Dataset, names: list[str]) -> None:
    pick = np.linspace(0, len(data.test_x) - 1, cfg.grid_frames).astype(int)
    x = data.test_x[pick]
    pred = np.asarray(net.apply(jax.tree.map(lambda p: p[0], params), x).argmax(-1))
    report.segmentation_grid(path, _picture(x, cfg), data.test_y[pick], pred, names,
                             f"{cfg.env} test frames: frame | labels ({cfg.label_method}) | FCN seed 0")


def _fcn_like(cfg: SegmentConfig):
    """Shapes of the FCN this config trains, and its meta, before training it (to check early)."""
    obs_shape = envs.make(cfg.env, cfg.obs).obs_shape
    like = jax.eval_shape(lambda: jax.vmap(lambda k: FCN(2).init(k, jnp.zeros((1, *obs_shape), jnp.uint8)))(
        mesh.seed_keys(cfg.fcn.seed, cfg.fcn.seeds)))
    meta = {"source": "the FCN of this config", "file": "fcn/fcn.npz", "env": cfg.env, "obs": cfg.obs,
            "obs_shape": tuple(obs_shape)}
    return like, meta


def variant_config(cfg: SegmentConfig, variant: str):
    train = cfg.ddqn.train
    return dataclasses.replace(train, network=cfg.ddqn.baseline_network) if variant == "baseline" else train


def preflight(cfg: SegmentConfig, fcn_like, meta: dict) -> None:
    """Fail before any training if the FCN cannot become the DDQN's trunk (shapes only)."""
    train = cfg.ddqn.train
    env = envs.make(train.env, train.obs)
    export.check_input(meta, train.env, train.obs, env.obs_shape)
    for variant in cfg.ddqn.variants:
        agents.make_agent(variant_config(cfg, variant), env)  # a network that cannot take the obs: ConfigError
    fresh = jax.eval_shape(lambda: run.init_params(train))
    jax.eval_shape(lambda f, p: export.export(f, p, frozen=True)[0], fcn_like, fresh)


def run_segment(cfg: SegmentConfig, out: Path, progress: bool = True) -> dict:
    out = Path(out)
    if cfg.fcn_checkpoint is None:
        check_memory(cfg)
    if cfg.fcn_checkpoint is not None:
        fcn_params, meta = export.load(cfg.fcn_checkpoint)
        fcn_like, fcn_report = fcn_params, {"fcn_checkpoint": meta["file"]}
    else:
        fcn_like, meta = _fcn_like(cfg)
    if cfg.ddqn is not None:
        preflight(cfg, fcn_like, meta)
    rundir.claim(out, to_dict(cfg), "segmentation", CLAIM, lambda name: name in OWN)
    if cfg.fcn_checkpoint is None:
        fcn_params, meta = train_fcn(cfg, out / "fcn", progress)
        fcn_report = {k: v for k, v in json.loads((out / "fcn" / "fcn.json").read_text()).items() if k in
                      ("pixel_accuracy", "mean_iou", "iou_per_class_mean", "train_images_per_s", "classes")}
    summary = {"fcn": fcn_report}
    if cfg.ddqn is not None:
        summary |= train_ddqns(cfg, fcn_params, meta, out, progress)
    files.write_json(out / "summary.json", summary)
    return summary


def train_ddqns(cfg: SegmentConfig, fcn_params, meta: dict, out: Path, progress: bool) -> dict:
    train = cfg.ddqn.train
    fresh = run.init_params(train)
    runs, finals = {}, {}
    for variant in cfg.ddqn.variants:
        run_dir = out / "ddqn" / variant
        _log(progress, f"Double DQN '{variant}' on {train.env} x{train.seeds}")
        info = {"variant": variant, "fcn": meta["file"]}
        if variant in ("frozen", "fine_tune"):
            params, freeze = export.export(fcn_params, fresh, frozen=variant == "frozen")
            done = run.train(train, run_dir, progress, init_params=params, freeze=freeze,
                             meta=info | {"copied_layers": export.encoder_layers(fcn_params)})
        else:
            done = run.train(variant_config(cfg, variant), run_dir, progress, meta=info)
        runs[variant] = run_dir
        finals[variant] = {"final_eval_return_mean": done["final"]["mean"].get("eval_return"),
                           "steady_env_steps_per_s": done.get("steady_env_steps_per_s"),
                           "compile_seconds": done.get("compile_seconds"), "network": done["config"]["network"]}
    ratios = report.ddqn_results(out, runs, train.env, cfg.ddqn.window)
    return {"ddqn": finals, "area_ratios": ratios}
