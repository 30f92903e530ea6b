"""jaxfer against its peers, like for like, in one command: each peer's environment built from PyPI here.

Peers (``--peers``, default all):
- ``rejax``: rejax 0.1.3's DQN and PPO on MinAtar Breakout, vmapped over 1, 8 and 64 seeds (``--seeds``) as
  rejax's README does it, against ``jaxfer train configs/minatar_dqn.yaml network=mlp`` and jaxfer's A2C
  (configs/minatar_a2c.yaml network=mlp_ac; A2C vs PPO with one epoch of one minibatch per rollout, the closest
  pair);
- ``cleanrl``: CleanRL's ``dqn_atari_jax.py`` (the script its PyPI wheel installs) on Pong against
  ``configs/atari_dqn.yaml`` at one seed;
- ``sb3``: Stable-Baselines3's A2C and DQN on Pong against ``configs/atari_a2c_ea3c.yaml`` with SB3's A2C
  settings (Nature CNN, dense core, 5-step returns, RMSProp 7e-4, 16 envs) and ``configs/atari_dqn.yaml``.

Each peer gets a side venv under ``--cache`` (default ``~/.cache/jaxfer/peers/<peer>-<hash>``) built from its
pinned requirements file ``benchmarks/peers/<peer>.txt`` and reused while that file is unchanged; a peer
whose venv cannot be built, or whose run fails, is reported in the JSON with its error line. Every reading
is its own subprocess: jaxfer through its CLI (``python -m jaxfer.cli train ... --devices 1``, reading
run.json's ``steady_env_steps_per_s``, every epoch after the first, compile apart; the persistent compilation
cache off), each peer through our runner script (``benchmarks/peers/run_<peer>.py``) run by its venv's
Python, which times compile apart from the steady state. Peer and jaxfer alternate (peer, jaxfer, peer,
jaxfer ...) ``--repeats`` times per row; ``--own-devices`` adds a third reading per repeat, jaxfer on its own
device default (no ``--devices``: one XLA device per core on a CPU, as ``jaxfer train`` runs there; at one
seed that is one device, the ``--devices 1`` reading). Writes
``--out`` (JSON: versions of every package of every venv, device, cores, every setting and reading, medians,
jaxfer/peer ratios, wall time), a Markdown table and a bar chart beside it.

On an accelerator host the JAX peers' venvs get jaxfer's own jax, jaxlib and accelerator plugins (the same XLA,
wheels that see the device) in place of their files' jax pins, and SB3 takes the GPU where its torch sees one;
the device of every reading is recorded. Where that host cannot reach PyPI, pip's own settings apply to the
builds (e.g. ``PIP_NO_INDEX=1 PIP_FIND_LINKS=/path/to/wheels``), or point ``--cache`` at venvs built before.

    python benchmarks/peers.py --quick                  # rejax only, few steps, 1 repeat (~10 min, fresh cache)
    python benchmarks/peers.py --peers rejax            # the MinAtar rows, 3 repeats
    python benchmarks/peers.py                          # every peer and row
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEERS_DIR = Path(__file__).resolve().parent / "peers"
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "jaxfer" / "peers"
PEERS = ("rejax", "cleanrl", "sb3")
JAX_PEERS = ("rejax", "cleanrl")  # on an accelerator these get jaxfer's own jax and its plugins (below)
ACCELERATOR_PACKAGES = ("jax-cuda", "jax_cuda", "jax-rocm", "jax_rocm", "libtpu", "nvidia-")
NO_DEPS = "# no-deps"
BUILT = ".built"  # written last into a finished venv: a folder without it is rebuilt


class BadInput(Exception):
    """A user mistake: one line, exit 2."""


@dataclasses.dataclass
class Row:
    """One comparison: a peer's run and jaxfer's, the same settings, at one seed count."""
    id: str
    peer: str
    peer_algorithm: str
    jaxfer_algorithm: str
    env: str
    seeds: int
    settings: dict  # what both sides share
    peer_spec: dict  # the runner's JSON argument
    jaxfer_config: str
    jaxfer_overrides: list
    unmatched: list  # settings that differ, and why
    note: str = ""


# ---------------------------------------------------------------------------------------------- the rows

MINATAR_DQN = {"env": "MinAtar Breakout", "network": "MLP, one hidden layer of 256, ReLU", "num_envs_per_seed": 4,
               "updates_per_vector_step": 1, "batch_size": 32, "optimizer": "Adam", "lr": 2.5e-4,
               "buffer_size": 10_000, "learning_starts": 1_000, "target_sync_env_steps": 1_000, "gamma": 0.99,
               "eps_start": 1.0, "eps_end": 0.1, "eps_decay_steps": 100_000, "double_dqn": False,
               "evaluation": "none timed: rejax's replaced by a no-op, jaxfer's 1 env x 1 step per epoch",
               "devices": 1}
MINATAR_AC = {"env": "MinAtar Breakout", "num_envs_per_seed": 64, "n_steps": 5, "updates_per_rollout": 1,
              "optimizer": "Adam", "lr": 2e-3, "gamma": 0.99, "ent_coef": 0.03, "vf_coef": 0.5, "max_grad_norm": 0.5,
              "returns": "5-step bootstrapped (PPO: GAE with lambda 1 = the same)",
              "evaluation": "none timed: rejax's replaced by a no-op, jaxfer's 1 env x 1 step per epoch",
              "devices": 1}
ATARI = {"env": "Pong", "frames": "84x84 grey, 4 stacked, max-and-skip 4, noop reset, episodic life, fire reset, "
                                  "clipped rewards", "network": "Nature CNN", "devices": 1}


def steps_plan(seeds: int, quick: bool, kind: str, steps: int | None = None) -> tuple[int, int]:
    """(env steps per seed, jaxfer's epoch) for the MinAtar rows: jaxfer times every epoch after the first,
    which holds the learning start; 3+ timed epochs (2 at 64 seeds with ``quick``). ``steps`` (``--steps``)
    sets the total: 4 epochs."""
    if steps:
        unit = 4_000 if kind == "dqn" else 1_280  # 4 epochs of >= 1,000 steps (DQN) / of whole 64 x 5 updates
        total = max(unit, steps // unit * unit)
        return total, total // 4
    if kind == "dqn":  # 4 envs per seed: epochs of whole vector steps, each >= the 1,000-step learning start
        if quick:  # at 64 seeds 3 epochs of 1,000 (2 timed): --quick stays near 10 minutes from a fresh cache
            return (8_000, 2_000) if seeds < 64 else (3_000, 1_000)
        return (40_000, 5_000) if seeds < 64 else (10_000, 2_000)
    # A2C / PPO: 64 envs x 5 steps = 320 env steps per update; epochs of whole updates
    if quick:
        return (20_480, 5_120) if seeds < 64 else (2_560, 640)
    total = 81_920 if seeds == 1 else 40_960 if seeds < 64 else 10_240
    return total, total // 8


def rejax_rows(seeds: list[int], quick: bool, steps: int | None = None) -> list[Row]:
    rows = []
    for s in seeds:
        total, epoch = steps_plan(s, quick, "dqn", steps)
        st = MINATAR_DQN | {"env_steps_per_seed": total, "seeds": s}
        rows.append(Row(
            f"rejax_dqn_minatar_breakout_{s}", "rejax", "DQN (rejax)", "DQN (jaxfer)", "MinAtar Breakout", s, st,
            {"algo": "dqn", "env": "Breakout-MinAtar", "total_timesteps": total, "seeds": s, "lr": st["lr"],
             "gamma": st["gamma"], "num_envs": 4, "buffer_size": st["buffer_size"],
             "learning_starts": st["learning_starts"], "batch_size": 32,
             "target_update_env_steps": st["target_sync_env_steps"], "eps_start": 1.0, "eps_end": 0.1,
             "eps_decay_steps": st["eps_decay_steps"], "activation": "relu", "hidden": [256], "ddqn": False},
            "configs/minatar_dqn.yaml",
            ["network=mlp", f"seeds={s}", "num_envs=4", "batch_size=32", "lr=0.00025", "buffer_size=10000",
             "learning_starts=1000", "target_update=250", "eps_end=0.1", "eps_decay_steps=100000",
             f"total_steps={total}", f"epoch_steps={epoch}", "eval_envs=1", "eval_steps=1"],
            ["timed span: rejax's whole run (its first 1,000 steps collect only, a little faster), jaxfer's "
             f"epochs 2.. ({epoch} env steps per seed each; the first holds the learning start)",
             "gymnax: rejax needs gymnax 0.0.9 (its DQN fails on 1.0.1), jaxfer runs gymnax 1.0.1",
             "jaxfer's seeds strategy: its default (auto), as a user gets it",
             "rejax clips gradients at norm inf (a no-op clip in its optimizer chain); jaxfer does not clip"]))
    for s in seeds:
        total, epoch = steps_plan(s, quick, "ac", steps)
        st = MINATAR_AC | {"env_steps_per_seed": total, "seeds": s}
        rows.append(Row(
            f"rejax_ppo_minatar_breakout_{s}", "rejax", "PPO (rejax)", "A2C (jaxfer)", "MinAtar Breakout", s, st,
            {"algo": "ppo", "env": "Breakout-MinAtar", "total_timesteps": total, "seeds": s, "lr": st["lr"],
             "gamma": 0.99, "num_envs": 64, "n_steps": 5, "ppo_epochs": 1, "minibatches": 1, "gae_lambda": 1.0,
             "clip_eps": 0.2, "ent_coef": 0.03, "vf_coef": 0.5, "max_grad_norm": 0.5, "activation": "relu",
             "hidden": [128]},
            "configs/minatar_a2c.yaml",
            ["network=mlp_ac", f"seeds={s}", f"total_steps={total}", f"epoch_steps={epoch}", "eval_envs=1",
             "eval_steps=1"],
            ["algorithm: jaxfer has A2C, not PPO; rejax's PPO runs 1 epoch of 1 minibatch per 64 x 5 rollout "
             "(one gradient step per rollout, as A2C) with its clipped surrogate loss: the closest like-for-like",
             "network: jaxfer's mlp_ac (the flattened frame, one shared dense layer of 256, ReLU, one policy+value "
             "head: ~103k multiply-adds per frame) vs rejax's separate actor and critic MLPs of one hidden layer of "
             "128, ReLU (~103k): the same work, shared as jaxfer's actor-critics share their core",
             "timed span: rejax's whole run, jaxfer's epochs 2..",
             "gymnax: 0.0.9 (rejax) vs 1.0.1 (jaxfer)"],
            "A2C vs PPO: the closest pair (jaxfer has no PPO)"))
    return rows


def atari_rows(peers: list[str], quick: bool, steps: int | None = None) -> list[Row]:
    """The Atari rows; ``steps`` (``--atari-steps``) sets the env steps timed (DQN: after the learning start)."""
    rows = []
    steady = steps or (3_000 if quick else 30_000)
    skip = 2 if steady < 3_000 else 10  # CleanRL's progress lines left out after learning starts
    if "cleanrl" in peers or "sb3" in peers:
        epochs = 3 if quick or steps else 6
        epoch = -(-steady // (epochs * 100)) * 100
        dqn = ATARI | {"buffer_size": 100_000, "learning_starts": epoch, "batch_size": 32, "optimizer": "Adam",
                       "lr": 1e-4, "gamma": 0.99, "updates_per_env_step": 0.25, "target_sync_env_steps": 1_000,
                       "eps_start": 1.0, "eps_end": 0.01, "eps_decay_steps": 1_000_000, "seeds": 1,
                       "steady_env_steps": epoch * epochs}
        jaxfer = ["seeds=1", "num_envs=4", f"total_steps={epoch * (epochs + 1)}", f"epoch_steps={epoch}",
                  f"learning_starts={epoch}", "buffer_size=100000", "eval_envs=1", "eval_steps=1"]
        if "cleanrl" in peers:
            rows.append(Row(
                "cleanrl_dqn_atari_pong", "cleanrl", "DQN (CleanRL dqn_atari_jax.py)", "DQN (jaxfer)", "Atari Pong", 1,
                dqn, {"env_id": "PongNoFrameskip-v4", "learning_starts": epoch, "buffer_size": 100_000,
                      "train_frequency": 4, "target_network_frequency": 1_000, "batch_size": 32, "lr": 1e-4,
                      "steady_steps": epoch * epochs, "skip": skip},
                "configs/atari_dqn.yaml", jaxfer,
                ["envs: jaxfer steps 4 envs at a time (envpool, one update per vector step), CleanRL's script 1 "
                 "(gymnasium + SB3's Atari wrappers, one update per 4 env steps): the same updates per env step",
                 "epsilon: CleanRL decays over 10% of its 10M default steps (1M), as the config",
                 "replay: CleanRL's SB3 ReplayBuffer (optimize_memory_usage), jaxfer's stacked-frame ring buffer",
                 "jaxfer writes a checkpoint every 60 s (checkpoint_every_s), CleanRL none"]))
        if "sb3" in peers:
            rows.append(Row(
                "sb3_dqn_atari_pong", "sb3", "DQN (SB3)", "DQN (jaxfer)", "Atari Pong", 1, dqn,
                {"algo": "dqn", "env_id": "PongNoFrameskip-v4", "num_envs": 4, "buffer_size": 100_000,
                 "learning_starts": epoch, "batch_size": 32, "lr": 1e-4, "gamma": 0.99,
                 "target_update_env_steps": 1_000, "eps_start": 1.0, "eps_end": 0.01, "eps_decay_steps": 1_000_000,
                 "warmup_steps": epoch + 400, "steady_steps": epoch * epochs},
                "configs/atari_dqn.yaml", jaxfer,
                ["SB3 runs PyTorch eagerly on the CPU with all cores' threads; its 4 envs are a DummyVecEnv",
                 "SB3's window starts 400 env steps after its learning start, jaxfer's at it",
                 "jaxfer writes a checkpoint every 60 s (checkpoint_every_s), SB3 none"]))
    if "sb3" in peers:
        epoch = 320 * (max(1, steps // 960) if steps else 10 if quick else 40)
        epochs = 3 if quick or steps else 4
        a2c = ATARI | {"num_envs": 16, "n_steps": 5, "optimizer": "RMSProp", "lr": 7e-4, "gamma": 0.99,
                       "ent_coef": 0.01, "vf_coef": 0.5, "max_grad_norm": 0.5, "core": "dense 512", "seeds": 1,
                       "steady_env_steps": epoch * epochs}
        rows.append(Row(
            "sb3_a2c_atari_pong", "sb3", "A2C (SB3)", "A2C (jaxfer)", "Atari Pong", 1, a2c,
            {"algo": "a2c", "env_id": "PongNoFrameskip-v4", "num_envs": 16, "n_steps": 5, "lr": 7e-4,
             "gamma": 0.99, "ent_coef": 0.01, "vf_coef": 0.5, "max_grad_norm": 0.5, "warmup_steps": 16 * 5 * 10,
             "steady_steps": epoch * epochs},
            "configs/atari_a2c_ea3c.yaml",
            ["env=atari/Pong", "obs=nature", "network=nature_ac", "core=dense", "seeds=1", "num_envs=16", "n_steps=5",
             "optimizer=rmsprop", "lr=0.0007", f"total_steps={epoch * (epochs + 1)}", f"epoch_steps={epoch}",
             "eval_envs=1", "eval_steps=1"],
            ["configs/atari_a2c_ea3c.yaml is E-A3C on DemonAttack (80x80 RGB, LSTM): here with SB3's A2C settings "
             "instead (game, Nature preset and CNN, dense core, 5-step returns, RMSProp 7e-4), as "
             "benchmarks/atari_throughput.py's a2c_nature",
             "RMSProp details: SB3's torch RMSprop (alpha 0.99, eps 1e-5) vs jaxfer's optax rmsprop",
             "SB3's 16 envs are a DummyVecEnv (one process), jaxfer's an envpool"]))
    return rows


def plan_rows(peers: list[str], seeds: list[int], quick: bool, steps: int | None = None,
              atari_steps: int | None = None) -> list[Row]:
    rows = rejax_rows(seeds, quick, steps) if "rejax" in peers else []
    return rows + atari_rows([p for p in peers if p != "rejax"], quick, atari_steps)


OWN = "jaxfer_own"  # the side of jaxfer on its own device default (no --devices): one XLA device per core on a CPU


def sides(own_devices: bool) -> tuple[str, ...]:
    return ("peer", "jaxfer", OWN) if own_devices else ("peer", "jaxfer")


def timed_sides(row: Row, own_devices: bool) -> tuple[str, ...]:
    """The sides a row times: at one seed jaxfer's own default is one device too (min(seeds, devices)), the
    ``--devices 1`` command again, so its readings stand for both."""
    return sides(own_devices and row.seeds > 1)


def alternation(rows: list[Row], repeats: int, own_devices: bool = False) -> list[tuple[Row, int, str]]:
    """The order of the readings: per row, peer then jaxfer (then jaxfer on its own devices), ``repeats`` times
    (peer, jaxfer, peer, jaxfer...)."""
    return [(row, r, side) for row in rows for r in range(repeats) for side in timed_sides(row, own_devices)]


# ------------------------------------------------------------------------------------------ side venvs

def read_requirements(path: Path) -> tuple[list[str], list[str]]:
    """(requirements, the ones to install with --no-deps) of a requirements file; comments dropped."""
    reqs, no_deps = [], []
    for line in path.read_text().splitlines():
        text = line.split("#", 1)[0].strip()
        if text:
            (no_deps if line.strip().endswith(NO_DEPS) else reqs).append(text)
    return reqs, no_deps


def venv_dir(cache: Path, peer: str, requirements: Path, pins: tuple = ()) -> Path:
    text = requirements.read_bytes() + platform.python_version().encode() + "\n".join(pins).encode()
    return cache / f"{peer}-{hashlib.sha256(text).hexdigest()[:12]}"


def package_name(requirement: str) -> str:
    name = requirement.split(";")[0]
    for sep in "=<>!~[ ":
        name = name.split(sep)[0]
    return name.strip().lower().replace("_", "-")


def with_pins(reqs: list[str], pins: tuple) -> list[str]:
    """``reqs`` with each pinned package's line replaced by its pin, the other pins added."""
    pinned = {package_name(p) for p in pins}
    return [r for r in reqs if package_name(r) not in pinned] + list(pins)


def accelerator_pins(device: dict, versions: dict) -> tuple:
    """On an accelerator, a JAX peer runs jaxfer's own jax, jaxlib and accelerator plugins (the same XLA, and
    wheels that see the device); on a CPU, its file's pins alone."""
    if not device or device.get("platform", "cpu") == "cpu":
        return ()
    return tuple(sorted(f"{n}=={v}" for n, v in versions.items()
                        if package_name(n) in ("jax", "jaxlib") or package_name(n).startswith(ACCELERATOR_PACKAGES)))


def error_line(text: str, fallback: str) -> str:
    """The line that says what went wrong: pip's first ERROR line, else the last line of the output."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR")]
    return (errors[0] if errors else lines[-1] if lines else fallback)[:500]


def venv_python(path: Path) -> Path:
    return path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def build_venv(peer: str, requirements: Path, cache: Path, pins: tuple = (), log=print) -> dict:
    """The peer's side venv, built once per requirements file, Python and ``pins`` (accelerator_pins):
    {"python", "versions", ...} or {"error": one line}."""
    if not requirements.exists():
        return {"error": f"no requirements file {requirements}"}
    path = venv_dir(cache, peer, requirements, pins)
    info = {"venv": str(path), "requirements": requirements.read_text().splitlines(), "pins_from_jaxfer": list(pins)}
    reqs, no_deps = read_requirements(requirements)
    reqs = with_pins(reqs, pins)
    reused = (path / BUILT).exists()
    start = time.perf_counter()
    if not reused:
        log(f"building {peer}'s venv in {path} (pinned in {requirements.name})")
        shutil.rmtree(path, ignore_errors=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        steps = [[sys.executable, "-m", "venv", "--without-pip", str(path)]]
        pip = [sys.executable, "-m", "pip", "--python", str(venv_python(path)), "install",
               "--disable-pip-version-check"]
        if reqs:
            steps.append([*pip, *reqs])
        if no_deps:
            steps.append([*pip, "--no-deps", "--ignore-requires-python", *no_deps])
        for cmd in steps:
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode != 0:
                shutil.rmtree(path, ignore_errors=True)
                why = error_line(out.stderr + out.stdout, f"exit {out.returncode}")
                return info | {"error": f"venv not built: {why}",
                               "build_s": round(time.perf_counter() - start, 1)}
    freeze = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv_python(path)), "list", "--format=json",
                             "--disable-pip-version-check"], capture_output=True, text=True)
    versions = ({p["name"]: p["version"] for p in json.loads(freeze.stdout)} if freeze.returncode == 0
                else {"error": error_line(freeze.stderr, "pip list failed")})
    py = subprocess.run([str(venv_python(path)), "-c", "import platform; print(platform.python_version())"],
                        capture_output=True, text=True)
    if not reused:
        (path / BUILT).write_text(datetime.now(timezone.utc).isoformat())
    return info | {"python": str(venv_python(path)), "python_version": py.stdout.strip(), "reused": reused,
                   "build_s": 0.0 if reused else round(time.perf_counter() - start, 1), "versions": versions}


# ------------------------------------------------------------------------------------------- readings

def last_json(stdout: str) -> dict | None:
    for line in reversed(stdout.strip().splitlines()):
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def run_peer(python: str, row: Row, timeout: float) -> dict:
    runner = PEERS_DIR / f"run_{row.peer}.py"
    cmd = [python, str(runner), json.dumps(row.peer_spec)]
    start = time.perf_counter()
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=tempfile.gettempdir())
    except subprocess.TimeoutExpired:
        return {"error": f"{runner.name} ran past {timeout:.0f} s", "wall_s": round(time.perf_counter() - start, 1)}
    wall = round(time.perf_counter() - start, 1)
    result = last_json(out.stdout)
    if out.returncode != 0 or result is None or "env_steps_per_s" not in result:
        why = (result or {}).get("error") or error_line(out.stderr, f"exit {out.returncode}")
        return {"error": f"{runner.name}: {why}", "wall_s": wall}
    return result | {"wall_s": wall}


def run_jaxfer(row: Row, devices: int | None, timeout: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="peers_jaxfer_") as tmp:
        out_dir = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "jaxfer.cli", "train", row.jaxfer_config, *row.jaxfer_overrides,
               "--out", str(out_dir), "--no-progress"] + (["--devices", str(devices)] if devices else [])
        env = os.environ | {"JAXFER_COMPILATION_CACHE": "off"}  # compile time as a first run's, like the peer's
        start = time.perf_counter()
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)
        except subprocess.TimeoutExpired:
            return {"error": f"jaxfer train ran past {timeout:.0f} s", "wall_s": round(time.perf_counter() - start, 1)}
        wall = round(time.perf_counter() - start, 1)
        if out.returncode != 0 or not (out_dir / "run.json").exists():
            return {"error": f"jaxfer train: {error_line(out.stderr + out.stdout, f'exit {out.returncode}')}",
                    "wall_s": wall}
        summary = json.loads((out_dir / "run.json").read_text())
    shown = ["python -m jaxfer.cli", *cmd[3:]]
    shown[shown.index("--out") + 1] = "DIR"
    return {"env_steps_per_s": summary["steady_env_steps_per_s"], "compile_s": summary["compile_seconds"],
            "command": " ".join(shown),
            "epochs_timed": summary["epochs_timed"], "device": summary.get("device"),
            "strategy": summary.get("code_path", {}).get("strategy"),
            "code_path": summary.get("code_path"), "wall_s": wall,
            "timed": "run.json's steady_env_steps_per_s: epochs 2.. of the host loop (metrics fetch and checkpoint "
                     "snapshot included), compile apart"}


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def summarize(row: Row | None, readings: list[dict], own_devices: bool = False) -> dict:
    """Medians per side and jaxfer / peer (``jaxfer_own_over_peer`` too where jaxfer also ran on its own devices;
    at one seed that is the ``--devices 1`` reading, ``timed_sides``)."""
    rates = {side: [r["env_steps_per_s"] for r in readings if r["side"] == side and "env_steps_per_s" in r]
             for side in sides(own_devices or any(r["side"] == OWN for r in readings))}
    if OWN in rates and row is not None and OWN not in timed_sides(row, True):
        rates[OWN] = rates["jaxfer"]
    med = {side: median(v) for side, v in rates.items()}

    def ratio(side):
        return round(med[side] / med["peer"], 2) if med["peer"] and med[side] else None
    errors = sorted({f"{r['side']}: {r['error']}" for r in readings if "error" in r})
    own = {f"{OWN}_over_peer": ratio(OWN)} if OWN in med else {}
    return {"median_env_steps_per_s": med, "jaxfer_over_peer": ratio("jaxfer"), **own,
            "ratios_per_repeat": [round(j / p, 2) for p, j in zip(rates["peer"], rates["jaxfer"])],
            "errors": errors}


# ------------------------------------------------------------------------------------ table and chart

def table(result: dict) -> str:
    """README's Markdown table of a result: one line per row, medians and the ratio (two jaxfer columns where
    jaxfer also ran on its own device default)."""
    own = result.get("own_devices", False)
    devices = result.get("jaxfer_devices", 1)
    extra = (" jaxfer own devices env steps/s | own / peer |", "---|---|") if own else ("", "")
    lines = [f"| peer | algorithm (peer vs jaxfer) | env | seeds | peer env steps/s | jaxfer --devices {devices} env "
             f"steps/s | jaxfer / peer |{extra[0]} repeats |", f"|---|---|---|---|---|---|---|{extra[1]}---|"]

    def cell(v):
        return f"{v:,.0f}" if v is not None else "—"

    def ratio(v):
        return f"{v:.2f}x" if v is not None else "—"
    for r in result["rows"]:
        med = r["median_env_steps_per_s"]
        first = ratio(r["jaxfer_over_peer"])
        if r.get("errors") and r["jaxfer_over_peer"] is None:
            first = "not run: " + r["errors"][0].replace("|", "/")[:160]
        more = f" {cell(med.get(OWN))} | {ratio(r.get(f'{OWN}_over_peer'))} |" if own else ""
        lines.append(f"| {r['peer']} | {r['peer_algorithm']} vs {r['jaxfer_algorithm']} | {r['env']} | {r['seeds']} | "
                     f"{cell(med['peer'])} | {cell(med['jaxfer'])} | {first} |{more} {r['repeats_done']} |")
    meta = result["machine"]
    lines.append("")
    lines.append(f"Medians of alternated runs; {meta['cpu_count']} cores, device {result['device'].get('kind')} "
                 f"({result['device'].get('platform')}); `{result['command']}`, {result['wall_s']:.0f} s in all"
                 + ("." if result.get("finished", True) else f" so far (unfinished: {len(result.get('order', []))} "
                                                             "readings done)."))
    return "\n".join(lines) + "\n"


def chart(result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    labels = [f"{r['peer']} {r['peer_algorithm'].split(' ')[0]}\n{r['env'].split(' ')[-1]}, {r['seeds']} seed(s)"
              for r in rows]
    shown = sides(result.get("own_devices", False))
    names = {"peer": "peer", "jaxfer": f"jaxfer --devices {result.get('jaxfer_devices', 1)}",
             OWN: "jaxfer, own device default"}
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(rows) + 2), 4))
    xs, width = range(len(rows)), 0.8 / len(shown)
    heights = []
    for i, side in enumerate(shown):
        values = [r["median_env_steps_per_s"].get(side) or 0 for r in rows]
        heights += values
        offset = (i - (len(shown) - 1) / 2) * width
        ax.bar([x + offset for x in xs], values, width, label=names[side])
        ratios = [r.get("jaxfer_over_peer" if side == "jaxfer" else f"{side}_over_peer") for r in rows]
        for x, v, q in zip(xs, values, ratios):
            if side != "peer" and q is not None:
                ax.annotate(f"{q:.2f}x", (x + offset, v), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(list(xs), labels, fontsize=7)
    ax.set_ylabel("env steps/s (median)")
    if any(heights):
        ax.set_yscale("log")
    ax.set_title(f"jaxfer vs peers, {result['device'].get('kind')} x{result['machine']['cpu_count']} cores")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------ main

def device_info() -> dict:
    """jaxfer's device and versions, read in a subprocess (this process never starts a backend: on an
    accelerator it would hold memory the runs need)."""
    code = "import json; from jaxfer.runtime.run import environment_info; print(json.dumps(environment_info()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    return last_json(out.stdout) or {"error": error_line(out.stderr, "environment_info failed")}


def cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), platform.processor())


def own_versions() -> dict:
    from importlib import metadata
    return {d.metadata["Name"]: d.version for d in metadata.distributions() if d.metadata["Name"]}


def parse_list(text: str, kind, what: str) -> list:
    try:
        items = [kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise BadInput(f"--{what} takes a comma-separated list, got {text!r}") from None
    if not items:
        raise BadInput(f"--{what} is empty")
    return items


def parse_args(argv: list[str] | None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--peers", default=",".join(PEERS), help=f"comma-separated, from {', '.join(PEERS)} (default: all)")
    p.add_argument("--seeds", default=None, help="seed counts of the rejax rows (default 1,8,64)")
    p.add_argument("--repeats", type=int, default=None, help="alternated readings per row and side (default 3; "
                                                             "--quick: 1)")
    p.add_argument("--quick", action="store_true", help="fewer steps, 1 repeat, rejax only unless --peers says more")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"side venvs' folder (default {DEFAULT_CACHE})")
    p.add_argument("--out", type=Path, default=RESULTS / "peers.json",
                   help="the JSON (its .md table and .png chart beside)")
    p.add_argument("--steps", type=int, default=None,
                   help="env steps per seed of the MinAtar rows (rounded to 4 epochs; default DQN 40k, 10k at 64 "
                        "seeds, PPO/A2C 82k / 41k / 10k at 1 / 8 / 64 seeds; --quick about a quarter)")
    p.add_argument("--atari-steps", type=int, default=None,
                   help="env steps timed of the Atari rows (default 30k; --quick 3k)")
    p.add_argument("--devices", type=int, default=1, help="jaxfer's --devices (default 1: one device, as the peers)")
    p.add_argument("--own-devices", action="store_true",
                   help="also time jaxfer on its own device default (no --devices: one XLA device per core on a "
                        "CPU, as `jaxfer train` runs), a third reading per repeat")
    p.add_argument("--timeout", type=float, default=1800, help="seconds before one reading is stopped (default 1800)")
    args = p.parse_args(argv)
    explicit_peers = any(a == "--peers" or a.startswith("--peers=") for a in (argv or []))
    args.peers = parse_list(args.peers, str, "peers")
    unknown = [x for x in args.peers if x not in PEERS]
    if unknown:
        raise BadInput(f"unknown peer {unknown[0]!r}: choose from {', '.join(PEERS)}")
    if args.quick and not explicit_peers:
        args.peers = ["rejax"]
    args.seeds = parse_list(args.seeds or "1,8,64", int, "seeds")
    if any(s < 1 for s in args.seeds):
        raise BadInput(f"--seeds must be positive, got {args.seeds}")
    args.repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    if args.repeats < 1:
        raise BadInput(f"--repeats must be at least 1, got {args.repeats}")
    for flag, value in (("steps", args.steps), ("atari-steps", args.atari_steps)):
        if value is not None and value < 1:
            raise BadInput(f"--{flag} must be positive, got {value}")
    if args.devices < 1:
        raise BadInput(f"--devices must be at least 1, got {args.devices}")
    if args.out.suffix != ".json":
        raise BadInput(f"--out must name a .json file, got {args.out}")
    return args


def run(args, argv: list[str]) -> dict:
    start = time.perf_counter()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    rows = plan_rows(args.peers, args.seeds, args.quick, args.steps, args.atari_steps)
    dev = device_info()
    device = dev.get("device", dev)
    versions = own_versions()
    venvs = {}
    for peer in args.peers:
        pins = accelerator_pins(device, versions) if peer in JAX_PEERS else ()
        venvs[peer] = build_venv(peer, PEERS_DIR / f"{peer}.txt", args.cache, pins)
        brief = {k: v for k, v in venvs[peer].items() if k not in ("versions", "requirements")}
        print(json.dumps({"peer": peer, **brief}), flush=True)
    readings = {row.id: [] for row in rows}
    order = []

    def result(finished: bool) -> dict:
        out_rows = []
        for row in rows:
            done = min(sum(1 for r in readings[row.id] if r["side"] == side and "env_steps_per_s" in r)
                       for side in timed_sides(row, args.own_devices))
            out_rows.append(dataclasses.asdict(row) | {"readings": readings[row.id], "repeats_done": done}
                            | summarize(row, readings[row.id], args.own_devices))
        return {
            "benchmark": "peers", "command": " ".join(["python benchmarks/peers.py", *argv]), "quick": args.quick,
            "finished": finished, "started_utc": started, "wall_s": round(time.perf_counter() - start, 1),
            "wall_note": "this command's measured wall time, venv builds (or reuse) included",
            "peers_selected": args.peers, "seeds": args.seeds, "repeats": args.repeats,
            "jaxfer_devices": args.devices, "own_devices": args.own_devices,
            "machine": {"cpu_count": os.cpu_count(), "cpu_model": cpu_model(), "platform": platform.platform(),
                        "load_average_1min_at_start": load},
            "device": device, "jaxfer": {"python": platform.python_version(), "versions": versions},
            "venvs": venvs, "order": order, "rows": out_rows,
            "method": "each reading its own subprocess; per row peer and jaxfer alternate (peer, jaxfer"
                      + (", jaxfer on its own devices" if args.own_devices else "") + ", ...); medians per side; "
                      "ratio = jaxfer median / peer median",
        }

    for row, repeat, side in alternation(rows, args.repeats, args.own_devices):
        venv = venvs[row.peer]
        load_before = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None  # others' work skews it
        if "error" in venv:
            reading = {"error": f"not run: {row.peer}'s {venv['error']}"}
        elif side == "peer":
            reading = run_peer(venv["python"], row, args.timeout)
        else:
            reading = run_jaxfer(row, args.devices if side == "jaxfer" else None, args.timeout)
        reading = {"side": side, "repeat": repeat, "order": len(order), "load_1min_before": load_before,
                   "utc": datetime.now(timezone.utc).isoformat(timespec="seconds")} | reading
        readings[row.id].append(reading)
        order.append(f"{row.id}:{side}:{repeat}")
        print(json.dumps({"row": row.id} | {k: reading.get(k) for k in ("side", "repeat", "env_steps_per_s",
                                                                           "compile_s", "error")}), flush=True)
        write(result(False), args.out, with_chart=False)  # what is done so far survives a stop
    return result(True)


def write(result: dict, out: Path, with_chart: bool = True) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(out)
    out.with_suffix(".md").write_text(table(result))
    if with_chart:
        chart(result, out.with_suffix(".png"))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parse_args(argv)
    except BadInput as e:
        print(f"peers.py: {e}", file=sys.stderr)
        return 2
    result = run(args, argv)
    write(result, args.out)
    print(table(result))
    print(f"wrote {args.out}, {args.out.with_suffix('.md').name}, {args.out.with_suffix('.png').name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
