"""Segmentation pre-training: automatic labels, the FCN, its export as a Double DQN trunk, `jaxfer segment`."""
import dataclasses
import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ROOT

from jaxfer import config, mesh
from jaxfer.errors import JaxferError
from jaxfer.networks import layers, q_nets
from jaxfer.runtime import files, run, rundir, seed_axis
from jaxfer.segment import config as seg_config
from jaxfer.segment import export, labels, pipeline
from jaxfer.segment.fcn import FCN
from jaxfer.segment.train import make_trainer, scores
from jaxfer.xla_cpu import kernels


def test_channel_labels_background_classes_and_precedence():
    obs = np.zeros((1, 4, 5, 3), np.uint8)
    obs[0, 0, 0, 0] = 255  # class 1
    obs[0, 1, 2, 2] = 255  # class 3
    obs[0, 3, 4, 1] = obs[0, 3, 4, 2] = 255  # overlap: the lower channel (1 -> class 2) wins
    want = np.zeros((1, 4, 5), np.int32)
    want[0, 0, 0], want[0, 1, 2], want[0, 3, 4] = 1, 3, 2
    np.testing.assert_array_equal(labels.channel_labels(obs), want)
    assert labels.overlap_fraction(obs) == pytest.approx(1 / 3)


def test_pixel_mode_matches_a_per_pixel_count():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 3, size=(31, 4, 5, 2)).astype(np.uint8) * 100
    mode = labels.pixel_mode(frames)
    for i, j in np.ndindex(4, 5):
        colours, counts = np.unique(frames[:, i, j], axis=0, return_counts=True)
        np.testing.assert_array_equal(mode[i, j], colours[counts.argmax()])  # np.unique sorts, argmax takes the first


def _synthetic_game(n=60, seed=0):
    """RGB frames: a static textured background, a red 2x2 'ball' and a blue 1x3 'paddle' at random
    places (both small, so the per-pixel mode is the background), and the known class of every pixel."""
    rng = np.random.default_rng(seed)
    background = rng.integers(0, 4, size=(12, 16, 3)).astype(np.uint8) * 20  # colours far from the objects'
    frames, truth = np.repeat(background[None], n, 0), np.zeros((n, 12, 16), np.int32)
    for t in range(n):
        y, x = rng.integers(0, 10), rng.integers(0, 14)
        frames[t, y:y + 2, x:x + 2], truth[t, y:y + 2, x:x + 2] = (250, 10, 10), 1
        y, x = rng.integers(0, 12), rng.integers(0, 13)
        frames[t, y, x:x + 3], truth[t, y, x:x + 3] = (10, 10, 250), 2
    return frames, truth, background


def test_palette_labels_recover_known_objects():
    frames, truth, background = _synthetic_game()
    palette = labels.fit_palette(frames[:40], num_colours=2)
    np.testing.assert_array_equal(palette.background, background)
    assert palette.num_classes == 3
    got = palette.labels(frames[40:])  # held-out frames
    # palette order is by frequency (the ball has 4 pixels, the paddle 3): class numbers are fixed per game
    np.testing.assert_array_equal(palette.colours, [[250, 10, 10], [10, 10, 250]])
    np.testing.assert_array_equal(got, truth[40:])
    agree = labels.agreement(got, truth[40:])
    assert agree["pixel_accuracy"] == 1.0 and agree["foreground_iou"] == 1.0


def test_palette_keeps_its_class_count_and_maps_other_colours_to_the_nearest():
    frames, _, _ = _synthetic_game()
    palette = labels.fit_palette(frames, num_colours=4)  # only 2 foreground colours exist
    assert palette.num_classes == 5
    odd = frames[:1].copy()
    odd[0, 0, 0] = (200, 0, 40)  # off-palette, nearest to the ball's red
    assert palette.labels(odd)[0, 0, 0] == 1
    assert set(np.unique(palette.labels(frames))) <= {0, 1, 2}


@pytest.mark.parametrize("env_id, method, ok", [
    ("minatar/Breakout", "auto", "channels"), ("minatar/Breakout", "palette", "palette"),
    ("atari/Pong", "auto", "palette"), ("atari/Pong", "channels", None), ("catch/v0", "auto", None),
    ("minatar/Breakout", "boxes", None)])
def test_label_method_per_game(env_id, method, ok):
    if ok:
        assert labels.method_for(env_id, method) == ok
    else:
        with pytest.raises(labels.LabelError, match=r"label method"):
            labels.method_for(env_id, method)


def test_gemm_conv_transpose_equals_flax():
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 5, 6))
    ref = nn.ConvTranspose(7, (8, 8), strides=(4, 4), padding="VALID")
    params = ref.init(jax.random.PRNGKey(1), x)
    np.testing.assert_allclose(kernels.GemmConvTranspose(7, 8, 4).apply(params, x), ref.apply(params, x), atol=1e-5)


@pytest.mark.parametrize("shape", [(10, 10, 4), (84, 84, 4), (80, 80, 12)])
def test_fcn_output_is_input_resolution_and_trunk_is_seg_ddqn(shape):
    obs = jax.random.randint(jax.random.PRNGKey(0), (2, *shape), 0, 256).astype(jnp.uint8)
    fcn_params = FCN(5).init(jax.random.PRNGKey(1), obs)
    logits, fcn_acts = FCN(5).apply(fcn_params, obs, capture_intermediates=True)
    assert logits.shape == (2, *shape[:2], 5)
    assert layers.layer_names(fcn_params) == ["conv_0", "conv_1", "conv_2", "head"]
    q = q_nets.make_network("seg_ddqn", 3)
    q_params = q.init(jax.random.PRNGKey(2), obs)
    q_params, _ = export.export(jax.tree.map(lambda x: x[None], fcn_params), jax.tree.map(lambda x: x[None], q_params),
                                frozen=False)
    _, q_acts = q.apply(jax.tree.map(lambda x: x[0], q_params), obs, mutable="activations")
    for name in ("conv_0", "conv_1", "conv_2"):  # the same layer code: same features from the same weights
        relu = nn.relu(fcn_acts["intermediates"][name]["__call__"][0])
        if name != "conv_1":
            relu = kernels.max_pool(relu, 2)
        np.testing.assert_array_equal(relu, q_acts["activations"][f"{name}_relu"][0])


def test_scores_accuracy_and_iou():
    conf = np.array([[8, 2, 0], [1, 3, 0], [0, 0, 0]])  # class 2 absent from labels and predictions
    s = scores(conf)
    assert s["pixel_accuracy"] == pytest.approx(11 / 14)
    np.testing.assert_allclose(s["iou"][:2], [8 / 11, 3 / 6])
    assert s["iou"][2] is None and s["mean_iou"] == pytest.approx((8 / 11 + 0.5) / 2)


@pytest.mark.optimised
def test_fcn_training_learns_and_seeds_differ():
    frames, truth, _ = _synthetic_game(n=96)
    trainer = make_trainer(3, frames.shape[1:], 3e-3, 16)
    state = mesh.place(mesh.pad(trainer.init(mesh.seed_keys(0, 2)), 2))
    data = mesh.replicate((frames, truth))
    epoch, confusion = (seed_axis.compile_seed_map(trainer.epoch, state, *data, donate=True),
                        seed_axis.compile_seed_map(trainer.confusion, state.params, *data))
    before = scores(mesh.fetch(confusion(state.params, *data))[0])["pixel_accuracy"]
    losses = []
    for _ in range(8):
        state, loss = epoch(state, *data)
        losses.append(mesh.fetch(loss))
    assert int(mesh.fetch(state.epoch)) == 8
    conf = mesh.fetch(confusion(state.params, *data))
    assert conf.shape == (2, 3, 3) and conf.sum() == 2 * truth.size
    assert (losses[-1] < 0.5 * losses[0]).all()
    assert scores(conf[0])["pixel_accuracy"] > max(before, 0.9)
    kernel = state.params["params"]["conv_0"]["kernel"]
    assert not np.array_equal(kernel[0], kernel[1])


TINY_DQN = {"env": "minatar/Breakout", "network": "seg_ddqn", "double": True, "seeds": 2, "num_envs": 2,
            "total_steps": 64, "epoch_steps": 32, "buffer_size": 128, "batch_size": 8, "learning_starts": 8,
            "target_update": 4, "eval_envs": 2, "eval_steps": 5}


def test_export_is_bit_identical_and_stays_so_when_frozen(tmp_path):
    cfg = config.from_dict(TINY_DQN)
    keys = jax.vmap(jax.random.PRNGKey)(jnp.arange(3) + 7)  # 3 FCN seeds for 2 DDQN seeds: the first two are used
    fcn = jax.vmap(lambda k: FCN(5).init(k, jnp.zeros((1, 10, 10, 4), jnp.uint8)))(keys)
    fresh = run.init_params(cfg)
    params, freeze = export.export(fcn, fresh, frozen=True)
    trunk = ["conv_0", "conv_1", "conv_2"]
    assert {k for k, v in freeze["params"].items() if all(jax.tree.leaves(v))} == set(trunk)
    for name in trunk:
        for leaf in ("kernel", "bias"):
            np.testing.assert_array_equal(params["params"][name][leaf], fcn["params"][name][leaf][:2])
    run.train(cfg, tmp_path / "frozen", progress=False, init_params=params, freeze=freeze)
    trained = files.load_tree(tmp_path / "frozen" / rundir.PARAMS, like=fresh)[0]
    for name in trunk:
        for leaf in ("kernel", "bias"):
            np.testing.assert_array_equal(trained["params"][name][leaf], fcn["params"][name][leaf][:2])
    for name in ("conv_3", "dense_0", "head"):  # the rest did train
        assert not np.array_equal(trained["params"][name]["kernel"], params["params"][name]["kernel"])


def test_fcn_checkpoint_round_trip_and_input_check(tmp_path):
    fcn = jax.vmap(lambda k: FCN(5).init(k, jnp.zeros((1, 10, 10, 4), jnp.uint8)))(
        jax.random.split(jax.random.PRNGKey(0), 2))
    export.save(tmp_path / "fcn.npz", fcn, "minatar/Breakout", "grid", (10, 10, 4), 5)
    params, meta = export.load(tmp_path)
    assert jax.tree.all(jax.tree.map(np.array_equal, params, fcn))
    assert meta["obs_shape"] == (10, 10, 4) and meta["num_classes"] == 5 and meta["env"] == "minatar/Breakout"
    export.check_input(meta, "minatar/Asterix", "grid", (10, 10, 4))
    with pytest.raises(seg_config.SegmentError, match=r"shape \(10, 10, 4\), but the DDQN's minatar/Seaquest"):
        export.check_input(meta, "minatar/Seaquest", "grid", (10, 10, 10))


def test_pipeline_resumes_and_refuses_another_config(tmp_path):
    cfg = seg_config.from_dict({"frames": 160, "fcn": {"seeds": 2, "epochs": 2, "batch_size": 32}, "grid_frames": 2})
    first = pipeline.run_segment(cfg, tmp_path, progress=False)
    assert set(first["fcn"]["iou_per_class_mean"]) == {"background", "paddle", "ball", "trail", "brick"}
    metrics = tmp_path / "fcn" / "metrics.csv"
    rows = files.read_csv(metrics)
    (tmp_path / "fcn" / "fcn.json").unlink()  # as if interrupted after the last epoch's checkpoint, with
    metrics.write_text(metrics.read_text().splitlines(True)[0])  # metrics.csv cut to its header since
    again = pipeline.run_segment(cfg, tmp_path, progress=False)
    assert again["fcn"]["pixel_accuracy"] == first["fcn"]["pixel_accuracy"]
    assert files.read_csv(metrics) == rows and rows[-1]["epoch"] == "1"  # every row, from the checkpoint
    assert json.loads((tmp_path / "fcn" / "fcn.json").read_text())["resumed_from_epoch"] == 2
    with pytest.raises(JaxferError, match="another config"):
        pipeline.run_segment(dataclasses.replace(cfg, frames=200), tmp_path, progress=False)


def _write(path, text):
    path.write_text(text)
    return path


@pytest.mark.cli
def test_cli_game_without_label_method(tmp_path, cli):
    cfg = _write(tmp_path / "seg.yaml", "env: catch/v0\n")
    done = cli("segment", cfg, "--out", tmp_path / "out")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        ("jaxfer: error: no label method 'auto' for catch/v0: its label methods are none "
         "(labels need MinAtar object channels or Atari pixels)")]


@pytest.mark.cli
def test_cli_fcn_checkpoint_of_another_input_shape(tmp_path, cli):
    fcn = jax.vmap(lambda k: FCN(5).init(k, jnp.zeros((1, 10, 10, 4), jnp.uint8)))(
        jax.random.split(jax.random.PRNGKey(0), 2))
    export.save(tmp_path / "fcn.npz", fcn, "minatar/Breakout", "grid", (10, 10, 4), 5)
    cfg = _write(tmp_path / "seg.yaml", f"env: minatar/Seaquest\nfcn_checkpoint: {tmp_path / 'fcn.npz'}\n"
                                        "ddqn:\n  train: {seeds: 2}\n")
    done = cli("segment", cfg, "--out", tmp_path / "out", "--no-progress")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "observations of shape (10, 10, 4), but the DDQN's minatar/Seaquest 'grid'" in lines[0]


@pytest.mark.parametrize("name", ["seg_minatar_breakout", "seg_atari_pong"])
def test_shipped_configs_load_with_ddqn_seeds_from_fcn_seeds(name):
    cfg = seg_config.load(ROOT / "configs" / f"{name}.yaml")
    assert cfg.ddqn is not None and cfg.ddqn.train.network == "seg_ddqn" and cfg.ddqn.train.double
    assert cfg.ddqn.train.env == cfg.env and cfg.ddqn.train.obs == cfg.obs
    assert cfg.ddqn.train.seeds <= cfg.fcn.seeds  # DDQN seed i starts from FCN seed i
