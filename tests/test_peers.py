"""benchmarks/peers.py: jaxfer against its peers in one command. The fast part checks the plan (alternation,
like-for-like settings, jaxfer's configs load), bad input, the table, the shim, and that a peer whose venv
cannot be built is reported in the JSON; the slow part builds rejax's venv and runs one tiny row end to end."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "benchmarks" / "peers"))
import gym_shim  # noqa: E402
import peers  # noqa: E402

from jaxfer import config  # noqa: E402
from jaxfer.networks import actor_critic  # noqa: E402

pytestmark = pytest.mark.cli


def test_readings_alternate_peer_and_jaxfer_per_row():
    rows = peers.plan_rows(["rejax"], [1, 8], quick=True)
    order = peers.alternation(rows, 3)
    assert len(order) == len(rows) * 3 * 2
    for i, row in enumerate(rows):
        mine = order[i * 6:(i + 1) * 6]
        assert [(r.id, rep, side) for r, rep, side in mine] == [
            (row.id, k, side) for k in range(3) for side in ("peer", "jaxfer")]
    own = peers.alternation(rows[:2], 2, own_devices=True)  # DQN at 1 seed, DQN at 8
    assert [side for _, _, side in own] == ["peer", "jaxfer"] * 2 + ["peer", "jaxfer", peers.OWN] * 2


def test_rows_cover_every_peer_and_seed_count():
    rows = peers.plan_rows(list(peers.PEERS), [1, 8, 64], quick=False)
    ids = {r.id for r in rows}
    for s in (1, 8, 64):
        assert {f"rejax_dqn_minatar_breakout_{s}", f"rejax_ppo_minatar_breakout_{s}"} <= ids
    assert {"cleanrl_dqn_atari_pong", "sb3_dqn_atari_pong", "sb3_a2c_atari_pong"} <= ids
    ppo = next(r for r in rows if r.id == "rejax_ppo_minatar_breakout_1")
    assert "A2C vs PPO" in ppo.note and any("jaxfer has A2C, not PPO" in u for u in ppo.unmatched)


@pytest.mark.parametrize("quick, steps", [(True, None), (False, None), (False, 600), (True, 5000)])
def test_jaxfer_side_matches_the_peer_settings(quick, steps):
    """Each row's jaxfer config loads (validated) and carries the settings the peer runs with."""
    for row in peers.plan_rows(list(peers.PEERS), [1, 8, 64], quick=quick, steps=steps, atari_steps=steps):
        cfg = config.load(ROOT / row.jaxfer_config, row.jaxfer_overrides)
        spec = row.peer_spec
        assert cfg.seeds == row.seeds == spec.get("seeds", 1)
        assert cfg.total_steps % cfg.epoch_steps == 0 and cfg.total_steps // cfg.epoch_steps >= 3  # 2+ timed
        assert cfg.eval_envs == 1 and cfg.eval_steps == 1
        if cfg.agent == "dqn":
            assert cfg.learning_starts <= cfg.epoch_steps  # every timed epoch learns
            assert cfg.buffer_size == spec["buffer_size"] and cfg.batch_size == spec["batch_size"]
            assert cfg.lr == pytest.approx(spec["lr"])
            sync = spec.get("target_update_env_steps", spec.get("target_network_frequency"))
            assert cfg.target_update * cfg.num_envs == sync
            envs = spec.get("num_envs", 1)
            updates_per_env_step = 1 / spec["train_frequency"] if "train_frequency" in spec else 1 / envs
            assert 1 / cfg.num_envs == pytest.approx(updates_per_env_step)
        if row.peer == "rejax":
            assert spec["total_timesteps"] == cfg.total_steps and spec["num_envs"] == cfg.num_envs
            if cfg.agent == "dqn":
                assert cfg.network == "mlp" and spec["hidden"] == [256] and spec["activation"] == "relu"
                assert cfg.learning_starts == spec["learning_starts"] == 1000
            else:
                assert cfg.agent == "a2c" and spec["n_steps"] == cfg.n_steps and spec["lr"] == pytest.approx(cfg.lr)
                assert cfg.network == "mlp_ac" and 2 * spec["hidden"][0] == actor_critic.NETWORKS["mlp_ac"][1]
        if row.id == "sb3_a2c_atari_pong":
            assert (cfg.env, cfg.obs, cfg.network, cfg.core, cfg.n_steps, cfg.optimizer) == (
                "atari/Pong", "nature", "nature_ac", "dense", spec["n_steps"], "rmsprop")


@pytest.mark.parametrize("args, says", [
    (["--peers", "rejax,nope"], "unknown peer 'nope'"),
    (["--seeds", "1,x"], "--seeds takes a comma-separated list"),
    (["--seeds", "0"], "--seeds must be positive"),
    (["--repeats", "0"], "--repeats must be at least 1"),
    (["--out", "peers.txt"], "--out must name a .json file"),
])
def test_bad_input_is_one_line_and_exit_2(args, says):
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "peers.py"), *args], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [f"peers.py: {out.stderr.strip().removeprefix('peers.py: ')}"]
    assert says in out.stderr


def test_requirements_file_parsing(tmp_path):
    req = tmp_path / "x.txt"
    req.write_text("# a comment\nfoo==1.0\ncleanrl==1.2.0  # no-deps\n\nbar>=2  # why\n")
    assert peers.read_requirements(req) == (["foo==1.0", "bar>=2"], ["cleanrl==1.2.0"])
    other = tmp_path / "y.txt"
    other.write_text("foo==1.1\n")
    assert peers.venv_dir(tmp_path, "p", req) != peers.venv_dir(tmp_path, "p", other)  # a new pin, a new venv
    for name in peers.PEERS:  # the shipped files pin every requirement
        reqs, no_deps = peers.read_requirements(peers.PEERS_DIR / f"{name}.txt")
        assert reqs and all("==" in r for r in reqs + no_deps)


def test_a_peer_that_cannot_be_built_is_reported(tmp_path, monkeypatch):
    """A pinned version that does not exist: the venv is not built, the JSON says why, the rows say not run."""
    (tmp_path / "peers").mkdir()
    (tmp_path / "peers" / "rejax.txt").write_text("rejax==99.0.0\n")
    monkeypatch.setattr(peers, "PEERS_DIR", tmp_path / "peers")
    out = tmp_path / "res" / "peers.json"
    assert peers.main(["--peers", "rejax", "--seeds", "1", "--repeats", "2", "--cache", str(tmp_path / "cache"),
                       "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    for key in ("benchmark", "command", "wall_s", "machine", "device", "jaxfer", "venvs", "order", "rows", "repeats"):
        assert key in result
    assert result["finished"] is True and result["machine"]["cpu_count"] >= 1 and "jax" in result["jaxfer"]["versions"]
    venv = result["venvs"]["rejax"]
    assert venv["error"].startswith("venv not built") and "rejax" in venv["error"]
    assert not Path(venv["venv"]).exists()
    assert [r["id"] for r in result["rows"]] == ["rejax_dqn_minatar_breakout_1", "rejax_ppo_minatar_breakout_1"]
    for row in result["rows"]:
        assert len(row["readings"]) == 4 and [r["side"] for r in row["readings"]] == ["peer", "jaxfer"] * 2
        assert all(r["error"].startswith("not run: rejax's venv not built") for r in row["readings"])
        assert row["jaxfer_over_peer"] is None and row["repeats_done"] == 0 and row["errors"]
        for key in ("settings", "peer_spec", "jaxfer_config", "jaxfer_overrides", "unmatched"):
            assert row[key]
    assert "not run" in out.with_suffix(".md").read_text()
    assert out.with_suffix(".png").stat().st_size > 0


def test_table_has_a_line_per_row_with_medians_and_ratio():
    result = {"command": "python benchmarks/peers.py", "wall_s": 12.0, "machine": {"cpu_count": 2},
              "device": {"platform": "cpu", "kind": "cpu"},
              "rows": [{"peer": "rejax", "peer_algorithm": "DQN (rejax)", "jaxfer_algorithm": "DQN (jaxfer)",
                        "env": "MinAtar Breakout", "seeds": 8, "repeats_done": 3,
                        "median_env_steps_per_s": {"peer": 6909.0, "jaxfer": 8124.4}, "jaxfer_over_peer": 1.18,
                        "errors": []}]}
    text = peers.table(result)
    assert "| rejax | DQN (rejax) vs DQN (jaxfer) | MinAtar Breakout | 8 | 6,909 | 8,124 | 1.18x | 3 |" in text
    assert text.splitlines()[0].startswith("| peer |") and "2 cores" in text and "12 s in all." in text
    assert "unfinished: 0 readings" in peers.table(result | {"finished": False})
    row = result["rows"][0]
    row["median_env_steps_per_s"][peers.OWN], row[f"{peers.OWN}_over_peer"] = 13818.0, 2.0
    text = peers.table(result | {"own_devices": True, "jaxfer_devices": 1})
    assert "| 6,909 | 8,124 | 1.18x | 13,818 | 2.00x | 3 |" in text and "own devices" in text.splitlines()[0]


def test_summary_medians_and_ratios():
    readings = [{"side": "peer", "env_steps_per_s": 100.0}, {"side": "jaxfer", "env_steps_per_s": 150.0},
                {"side": "peer", "env_steps_per_s": 300.0}, {"side": "jaxfer", "env_steps_per_s": 450.0},
                {"side": "peer", "env_steps_per_s": 200.0}, {"side": "jaxfer", "error": "jaxfer train: boom"}]
    s = peers.summarize(None, readings)
    assert s["median_env_steps_per_s"] == {"peer": 200.0, "jaxfer": 300.0} and s["jaxfer_over_peer"] == 1.5
    assert s["ratios_per_repeat"] == [1.5, 1.5] and s["errors"] == ["jaxfer: jaxfer train: boom"]
    assert f"{peers.OWN}_over_peer" not in s
    own = peers.summarize(None, readings + [{"side": peers.OWN, "env_steps_per_s": 500.0}])
    assert own[f"{peers.OWN}_over_peer"] == 2.5 and own["jaxfer_over_peer"] == 1.5
    one_seed = peers.plan_rows(["rejax"], [1], quick=True)[0]  # its own default is the --devices 1 command
    own = peers.summarize(one_seed, readings, own_devices=True)
    assert own[f"{peers.OWN}_over_peer"] == own["jaxfer_over_peer"] == 1.5


class _Env:
    """A gymnasium-like env that ends every second step."""
    observation_space = action_space = None

    def __init__(self):
        self.t = 0

    def reset(self, seed=None, options=None):
        self.t = 0
        return np.zeros(2), {}

    def step(self, action):
        self.t += 1
        return np.full(2, self.t), 1.0, self.t == 2, False, {"t": self.t}

    def close(self):
        pass


def test_shim_vector_env_resets_in_the_same_step_as_gymnasium_029():
    env = gym_shim.OldSyncVectorEnv([_Env])
    obs, _ = env.reset(seed=1)
    obs, rew, term, trunc, infos = env.step([0])
    assert "final_info" not in infos and obs[0][0] == 1
    obs, rew, term, trunc, infos = env.step([0])
    assert term[0] and obs[0][0] == 0  # already reset
    assert infos["final_observation"][0][0] == 2 and infos["final_info"] == [{"t": 2}]


@pytest.mark.slow
def test_rejax_end_to_end_one_seed_few_steps(tmp_path):
    """Builds (or reuses) rejax's venv in the default cache and times one tiny DQN and PPO pair."""
    out = tmp_path / "peers.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "peers.py"), "--peers", "rejax", "--seeds", "1",
                           "--steps", "4000", "--repeats", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=1800, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert "error" not in result["venvs"]["rejax"] and result["venvs"]["rejax"]["versions"]["rejax"] == "0.1.3"
    for row in result["rows"]:
        assert row["errors"] == [], row["errors"]
        assert row["jaxfer_over_peer"] > 0 and row["repeats_done"] == 1
        peer, ours = row["readings"]
        assert peer["compile_s"] > 0 and ours["compile_s"] > 0
    assert out.with_suffix(".md").exists() and out.with_suffix(".png").exists()


def test_jax_peers_get_jaxfer_own_jax_on_an_accelerator_only(tmp_path):
    versions = {"jax": "0.11.2", "jaxlib": "0.11.2", "jax-cuda12-plugin": "0.11.2", "nvidia-cublas-cu12": "12.9",
                "numpy": "2.3"}
    assert peers.accelerator_pins({"platform": "cpu"}, versions) == ()
    pins = peers.accelerator_pins({"platform": "gpu"}, versions)
    assert pins == ("jax-cuda12-plugin==0.11.2", "jax==0.11.2", "jaxlib==0.11.2", "nvidia-cublas-cu12==12.9")
    assert peers.with_pins(["rejax==0.1.3", "jax==0.10.2", "jaxlib==0.10.2"], pins) == ["rejax==0.1.3", *pins]
    req = tmp_path / "r.txt"
    req.write_text("jax==0.10.2\n")
    assert peers.venv_dir(tmp_path, "p", req) != peers.venv_dir(tmp_path, "p", req, pins)
