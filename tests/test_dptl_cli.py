"""`jaxfer dptl` and `jaxfer gradcam` end to end on a randomly initialised Catch model, checked
against an independent computation (scikit-image threshold and SSIM), and their one-line errors."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml
from conftest import ROOT, run_cli

from jaxfer import cli, config, envs
from jaxfer.dptl import frames, gradcam, pipeline
from jaxfer.networks import q_nets
from jaxfer.runtime import files, rundir

skimage_filters = pytest.importorskip("skimage.filters")
skimage_metrics = pytest.importorskip("skimage.metrics")
FRAMES = 48


def make_run_dir(path, env_id="catch/v0", obs="grid", seeds=2, params_obs=None):
    """A run directory as `jaxfer train` leaves it (config.yaml, params.npz with a seed axis), with
    random weights; ``params_obs`` builds the weights for another observation mode."""
    cfg = config.from_dict({"env": env_id, "obs": obs, "seeds": seeds})
    env = envs.make(env_id, params_obs or obs)
    net = q_nets.make_network(cfg.network, env.num_actions)
    keys = jax.random.split(jax.random.PRNGKey(7), seeds)
    params = jax.vmap(lambda k: net.init(k, jnp.zeros((1, *env.obs_shape), jnp.uint8)))(keys)
    path.mkdir(parents=True)
    files.atomic_write_bytes(path / rundir.CONFIG, yaml.safe_dump(config.to_dict(cfg), sort_keys=False).encode())
    files.save_tree(path / rundir.PARAMS, params)
    return path


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return make_run_dir(tmp_path_factory.mktemp("src") / "catch_run")


def write_config(path, **spec):
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.cli
def test_dptl_end_to_end(source, tmp_path):
    targets = ["catch/v0", "catch/v2", "catch/v3"]
    cfg = write_config(tmp_path / "dptl.yaml", source=str(source), targets=targets, source_seed="all",
                       frames=FRAMES, cache=str(tmp_path / "cache"), threshold={"block_size": 35},
                       bootstrap={"samples": 500})
    proc = run_cli("dptl", cfg, "--out", tmp_path / "out", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    rows = files.read_csv(tmp_path / "out" / "scores.csv")
    assert [r["target"] for r in rows] == targets and sorted(int(r["rank"]) for r in rows) == [1, 2, 3]
    for r in rows:
        assert float(r["ci_low"]) <= float(r["score"]) <= float(r["ci_high"]) and int(r["frames"]) == FRAMES
        assert r["target"] in proc.stdout
        assert (tmp_path / "out" / f"grid_{r['target'].replace('/', '_')}.png").stat().st_size > 0
    by_score = sorted(rows, key=lambda r: -float(r["score"]))
    assert [int(r["rank"]) for r in by_score] == [1, 2, 3]

    # Independent score of catch/v3: the cached frames, each seed's CAM, scikit-image's threshold and
    # SSIM per frame, averaged over the two seeds' models.
    obs = frames.collect("catch/v3", "grid", FRAMES, 0, cache_dir=tmp_path / "cache")
    src = pipeline.load_source(source)
    want = []
    for s in range(2):
        maps = np.asarray(gradcam.cams(src.net, src.seed_params(s), obs, "conv_1", size=(84, 84)), np.float64)
        per_frame = []
        for i in range(FRAMES):
            picture = np.asarray(jax.image.resize(jnp.asarray(obs[i, ..., -1], jnp.float32) / 255, (84, 84),
                                                  "bilinear"))
            picture = np.clip(picture, 0, 1).astype(np.float64)
            mask = (picture > skimage_filters.threshold_local(picture, 35)).astype(np.float64)
            per_frame.append(skimage_metrics.structural_similarity(
                maps[i], mask, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0))
        want.append(np.mean(per_frame))
    assert float(rows[2]["score"]) == pytest.approx(np.mean(want), abs=2e-4)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["layer"] == "conv_1" and summary["source"]["seeds"] == [0, 1] and summary["policy"] == "random"

    # A second run reads the cached frames: the cache files are not rewritten.
    cached = sorted((tmp_path / "cache").iterdir())
    mtimes = [p.stat().st_mtime_ns for p in cached]
    assert cli.main(["dptl", str(cfg), "--out", str(tmp_path / "again"), "--no-progress"]) == 0
    assert [p.stat().st_mtime_ns for p in sorted((tmp_path / "cache").iterdir())] == mtimes and len(cached) == 3
    assert files.read_csv(tmp_path / "again" / "scores.csv") == rows


@pytest.mark.cli
def test_frames_played_by_a_given_agent(source, tmp_path):
    cfg = write_config(tmp_path / "dptl.yaml", source=str(source), targets=["catch/v1"], frames=16,
                       policy=str(source), cache=str(tmp_path / "cache"), bootstrap={"samples": 100})
    assert cli.main(["dptl", str(cfg), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    src = pipeline.load_source(source)
    tag = frames.greedy_policy(src.net, src.seed_params(0)).tag
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [f"catch_v1__grid__n16__seed0__{tag}.npz"]


@pytest.mark.cli
def test_gradcam_strip_and_gif(source, tmp_path):
    from PIL import Image

    assert cli.main(["gradcam", str(source / rundir.PARAMS), "catch/v1", "--out", str(tmp_path),
                     "--seed-index", "1"]) == 0
    strip, gif = tmp_path / "catch_run__catch_v1.png", tmp_path / "catch_run__catch_v1.gif"
    assert strip.stat().st_size > 0
    with Image.open(gif) as im:
        assert im.n_frames == 10 and im.size == (168, 168)  # one catch/v1 game: 10 steps, 84x84 shown at 2x
    assert cli.main(["gradcam", str(source), "catch/v0", "--steps", "13", "--method", "eigencam",
                     "--out", str(tmp_path)]) == 0
    with Image.open(tmp_path / "catch_run__catch_v0.gif") as im:
        assert im.n_frames == 13


@pytest.fixture(scope="module")
def mismatched(tmp_path_factory):
    """A run whose config says grid observations but whose weights were made for pixels84."""
    return make_run_dir(tmp_path_factory.mktemp("bad") / "run", params_obs="pixels84")


@pytest.mark.parametrize("spec, needle", [
    ({"layer": "conv_7"}, "layer 'conv_7' is not a conv layer of catch_cnn; available: conv_0, conv_1"),
    ({"targets": []}, "'targets' must be a non-empty list of env ids"),
    ({"source": "no/such/run"}, "no finished run at 'no/such/run': expected a jaxfer run directory"),
    ({"targets": ["minatar/Breakout"]},
     ("target 'minatar/Breakout' gives observations of shape (10, 10, 4) (grid), but the source network "
      "(catch_cnn, trained on catch/v0) takes (21, 21, 4)")),
    ({"source": "MISMATCHED"}, "params.npz does not fit the catch_cnn network of dqn that"),
    ({"source_seed": 5}, "holds 2 seeds; seed index 5 is out of range"),
    ({"threshold": {"block_size": 10}}, "threshold.block_size must be an odd integer >= 3, got 10"),
    ({"method": "cam"}, "unknown CAM method 'cam'; known: gradcam, gradcam++, eigencam"),
    ({"frame": 10}, "unknown keys ['frame']"),
    ({"size": 8}, "size must be an integer >= 11, got 8"),
])
@pytest.mark.cli
def test_dptl_errors_are_one_line(source, mismatched, tmp_path, capsys, spec, needle):
    spec = {"source": str(source), "targets": ["catch/v0"], "frames": 8, "cache": str(tmp_path / "cache")} | spec
    spec["source"] = str(mismatched) if spec["source"] == "MISMATCHED" else spec["source"]
    assert cli.main(["dptl", str(write_config(tmp_path / "bad.yaml", **spec)), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1, err
    assert not (tmp_path / "cache").exists()  # checked before anything was played


@pytest.mark.parametrize("checkpoint, game, extra, needle", [
    (None, "minatar/Asterix", [], "target 'minatar/Asterix' gives observations of shape (10, 10, 4)"),
    (None, "catch/v0", ["--layer", "dense_0"],
     "layer 'dense_0' is not a conv layer of catch_cnn; available: conv_0, conv_1"),
    ("nowhere/params.npz", "catch/v0", [], "no finished run at 'nowhere/params.npz'"),
])
@pytest.mark.cli
def test_gradcam_errors_are_one_line(source, tmp_path, capsys, checkpoint, game, extra, needle):
    assert cli.main(["gradcam", checkpoint or str(source), game, "--out", str(tmp_path), *extra]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1, err


def test_shipped_catch_config_loads():
    cfg = pipeline.load(ROOT / "configs" / "dptl_catch.yaml")
    assert cfg.source == "runs/catch_dqn" and cfg.targets == ("catch/v0", "catch/v1", "catch/v2", "catch/v3")
    assert cfg.threshold == pipeline.Threshold() and cfg.bootstrap == pipeline.Bootstrap()


@pytest.mark.cli
def test_shipped_demonattack_source_scores_an_atari_target(tmp_path):
    """The shipped A2C source (float16 on disk) loads as float32, acts, and scores atari/Pong frames."""
    pytest.importorskip("envpool")
    spec = pipeline.load(ROOT / "configs" / "dptl_demonattack.yaml")
    assert spec.targets == ("atari/Phoenix", "atari/Pong", "atari/SpaceInvaders", "atari/Seaquest")
    src = pipeline.load_source(ROOT / spec.source)
    assert src.cfg.agent == "a2c" and src.num_seeds == 1 and src.env.obs_shape == (84, 84, 4)
    assert {x.dtype for x in jax.tree.leaves(src.params)} == {np.dtype(np.float32)}
    obs = frames.collect("atari/Pong", "nature", 8, seed=0)
    logits = src.net.apply(src.seed_params(0), obs)
    assert logits.shape == (8, 6) and np.isfinite(np.asarray(logits)).all()
    cfg = write_config(tmp_path / "dptl.yaml", source=str(ROOT / spec.source), targets=["atari/Pong"], frames=16,
                       cache=str(tmp_path / "cache"), bootstrap={"samples": 100})
    proc = run_cli("dptl", cfg, "--out", tmp_path / "out", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    (row,) = files.read_csv(tmp_path / "out" / "scores.csv")
    assert row["target"] == "atari/Pong" and 0 < float(row["score"]) < 1 and int(row["frames"]) == 16
