"""Atari throughput on this machine: raw envpool XLA, jaxfer's rollout, A2C and DQN training.

(a) The DQN comparison with CleanRL, like for like (one seed): jaxfer's DQN (configs/atari_dqn.yaml)
trained through its real host loop, ``jaxfer.runtime.run.train`` into a temporary directory, so its rate counts
the time between epochs too (metrics fetch and CSV, checkpoint snapshot; the checkpoint file is written
behind the next epoch) and CleanRL's ``dqn_atari_jax.py`` where ``--cleanrl-script`` points to a copy of
it (not shipped), with the same replay buffer (100k), the same learning start, the same updates per
env step and target-sync interval, each timed over a window of ``--steady-steps`` env steps after
learning starts (its compilation left out). jaxfer's rate is run.json's ``steady_env_steps_per_s`` (every
epoch but the first; learning starts where the first epoch ends, so every timed epoch learns);
CleanRL's comes from the arrival times of its "SPS:" progress lines.
For S = 1, 2, 4, 8 seeds (E envs each, one envpool of S x E): (b) raw envpool XLA env steps/s with
random actions, (c) jaxfer's loop with the network acting and learning switched off, (d) a QUICK DQN
reading (2k-transition buffer, learning from step 0, compiled epochs timed back to back without the
host loop: not the CleanRL comparison), A2C (configs/atari_a2c_ea3c.yaml) and A2C with SB3's defaults
("a2c_nature": Nature CNN, 5-step returns, RMSProp) training env steps/s. Also the DQN update alone
(updates/s, XLA's FLOP count, fraction of this machine's f32 matmul FLOP/s), and (e) Stable-Baselines3's
A2C on the same game and core count where SB3 is installed.
Compile time is reported apart from the steady state. Writes benchmarks/results/atari_throughput.json.

    python benchmarks/atari_throughput.py                 # S = 1, 2, 4, 8
    python benchmarks/atari_throughput.py --seeds 1 2     # a quick look
    python benchmarks/atari_throughput.py --cleanrl-script ~/cleanrl/cleanrl/dqn_atari_jax.py --cleanrl-python ...
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import optax

from jaxfer import agents, config, envs, mesh
from jaxfer.agents import loop
from jaxfer.code_path import CodePath
from jaxfer.envs import atari
from jaxfer.errors import ConfigError
from jaxfer.replay import uniform
from jaxfer.runtime import files, run, rundir, seed_axis
from jaxfer.runtime.run import environment_info

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(Path(__file__).parent))
from seed_scaling import matmul_roofline  # noqa: E402  (a sibling script, importable after the path insert)


def raw_envpool(env_id: str, obs: str = "nature", num_envs: int = 16, steps: int = 500, seed: int = 0) -> dict:
    """Random-action env steps per second of one pool (each step is ``frame_skip`` emulator frames)."""
    env = atari.make_atari(env_id, obs)
    pool = atari.make_pool(env_id, obs, 1, num_envs, seed)
    state, _ = pool.reset()
    actions = jax.random.randint(jax.random.PRNGKey(seed), (steps, 1, num_envs), 0, env.num_actions)
    run = jax.jit(lambda s, a: jax.lax.scan(lambda c, x: (pool.step(c, x)[0], None), s, a)[0])
    state = jax.block_until_ready(run(state, actions))  # compiles; times only the second call
    t0 = time.perf_counter()
    jax.block_until_ready(run(state, actions))
    dt = time.perf_counter() - t0
    return {"env": env_id, "obs": obs, "num_envs": num_envs, "steps": steps * num_envs,
            "seconds": dt, "env_steps_per_s": steps * num_envs / dt, "threads": pool.options["num_threads"]}

def timed_epochs(cfg, agent=None, epochs: int = 2) -> dict:
    """Compile one epoch of the real loop, run one to warm up, time ``epochs`` more."""
    env = envs.make(cfg.env, cfg.obs)
    trainer = agents.make_trainer(cfg, env, agent=agent)
    state = trainer.init(mesh.seed_keys(cfg.seed, cfg.seeds))
    fn, compile_s = seed_axis.compile_trainer(trainer, state, "vmap")
    state, m = fn(state)
    jax.block_until_ready(m)
    start = time.perf_counter()
    for _ in range(epochs):
        state, m = fn(state)
    jax.block_until_ready(m)
    seconds = time.perf_counter() - start
    rate = cfg.seeds * cfg.epoch_steps * epochs / seconds
    return {"compile_s": round(compile_s, 2), "env_steps_per_s": round(rate, 1)}


def no_learning(agent: loop.Agent) -> loop.Agent:
    return agent._replace(store=lambda a, rollout: a, update=lambda a, rollout, memory, env_steps: (a, {}),
                          report=lambda a, stats: {})


def update_alone(cfg, reps: int = 20) -> dict:
    """DQN gradient steps + Adam at the config's batch size, ``reps`` of them in one jitted scan over
    distinct batches (as in the training loop). Batches and target parameters are arguments: as
    closed-over constants XLA folds the target network's forward away (that read 41-53 updates/s here
    against 24-27 for the real work)."""
    env = envs.make(cfg.env, cfg.obs)
    algo = agents.ALGORITHMS[cfg.agent](cfg, env.num_actions, CodePath.from_config(cfg))
    shape = (reps, cfg.batch_size, *env.obs_shape)
    obs, next_obs = (jax.random.randint(jax.random.PRNGKey(i), shape, 0, 256).astype(jnp.uint8) for i in (0, 1))
    zeros = jnp.zeros((reps, cfg.batch_size))
    batches = uniform.Transition(obs, zeros.astype(jnp.int32), zeros, zeros.astype(bool), next_obs)
    params, target = (algo.init_params(jax.random.PRNGKey(i), obs[0, :1]) for i in (0, 1))
    tx = optax.adam(cfg.lr)

    def step(carry, batch, target):
        p, o = carry
        u, o = tx.update(jax.grad(algo.loss)(p, target, batch), o, p)
        return (optax.apply_updates(p, u), o), None

    run = jax.jit(lambda p, o, t, bs: jax.lax.scan(lambda c, b: step(c, b, t), (p, o), bs)[0])
    p, o = jax.block_until_ready(run(params, tx.init(params), target, batches))  # compile + warm up
    start = time.perf_counter()
    p, o = jax.block_until_ready(run(p, o, target, batches))
    rate = reps / (time.perf_counter() - start)
    one = jax.tree.map(lambda x: x[0], batches)
    flops = jax.jit(jax.grad(algo.loss)).lower(params, target, one).compile().cost_analysis().get("flops")
    return {"updates_per_s": round(rate, 1), "gflop_per_update": round(flops / 1e9, 3), "flops_per_s": rate * flops}


def sb3_a2c(python: str, game: str, num_envs: int, steps: int) -> dict:
    """SB3's A2C (torch, its own Atari wrappers and defaults) on the same game with the same env count
    and cores, run by ``python`` (an environment with stable-baselines3 and ale-py); skipped if absent."""
    code = f"""
import time, json, os, gymnasium as gym, ale_py, torch
gym.register_envs(ale_py)
from stable_baselines3 import A2C
from stable_baselines3.common.env_util import make_atari_env
from stable_baselines3.common.vec_env import VecFrameStack
torch.set_num_threads(os.cpu_count())
# frameskip 1 + AtariWrapper's skip 4, no sticky actions: the same emulator work per step as envpool here
kw = {{"frameskip": 1, "repeat_action_probability": 0.0}}
env = VecFrameStack(make_atari_env("ALE/{game}-v5", n_envs={num_envs}, seed=0, env_kwargs=kw), n_stack=4)
model = A2C("CnnPolicy", env, verbose=0, seed=0, device="cpu")
model.learn(total_timesteps={num_envs * 50})
t = time.perf_counter(); model.learn(total_timesteps={steps}, reset_num_timesteps=False)
print(json.dumps({{"env_steps_per_s": round({steps} / (time.perf_counter() - t), 1), "torch": torch.__version__}}))
"""
    out = subprocess.run([python, "-c", code], check=False, capture_output=True, text=True)
    if out.returncode != 0:
        last = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"
        return {"skipped": f"SB3 not run with {python}: {last}"}
    return json.loads(out.stdout.strip().splitlines()[-1]) | {"num_envs": num_envs, "steps": steps, "python": python}


DQN_CONFIG = ROOT / "configs/atari_dqn.yaml"
CLEANRL_LINE_STEPS = 100  # dqn_atari_jax.py prints "SPS:" at env steps that are multiples of 100 once it trains


def comparison_plan(steady_steps: int, steady_epochs: int, num_envs: int) -> dict:
    """Step counts (env steps per seed) of the like-for-like DQN comparison.

    run.json's ``steady_env_steps_per_s`` leaves out only the first epoch (it holds the first call), so
    learning starts exactly where the first epoch ends (``learning_starts = epoch_steps``): every timed
    epoch learns, none only collects. ``steady_epochs`` epochs after it cover at least ``steady_steps``.
    Epochs are whole vector steps of ``num_envs`` envs and whole gaps between CleanRL's progress lines
    (its train frequency is ``num_envs``: jaxfer makes one update per vector step).
    (configs/atari_dqn.yaml's own 80k start would need 80k-step epochs, several of them after it.)
    """
    unit = progress_line_steps(num_envs)
    epoch = -(-steady_steps // (steady_epochs * unit)) * unit
    return {"epoch_steps": epoch, "learning_starts": epoch, "total_steps": epoch * (steady_epochs + 1),
            "steady_env_steps": epoch * steady_epochs}


def progress_line_steps(train_frequency: int) -> int:
    """Env steps between CleanRL's progress lines: it prints at multiples of 100 that are update steps."""
    return math.lcm(CLEANRL_LINE_STEPS, train_frequency)


def comparison_config(plan: dict, num_envs: int, buffer_size: int):
    """configs/atari_dqn.yaml at one seed with the plan's step counts and ``buffer_size``; greedy
    evaluation cut to one env for one step per epoch (CleanRL evaluates nothing while it trains)."""
    return config.load(DQN_CONFIG, ["seeds=1", f"num_envs={num_envs}", f"total_steps={plan['total_steps']}",
                                    f"epoch_steps={plan['epoch_steps']}", f"learning_starts={plan['learning_starts']}",
                                    f"buffer_size={buffer_size}", "eval_envs=1", "eval_steps=1"])


def jaxfer_dqn(cfg) -> dict:
    """jaxfer's DQN through its real host loop (``run.train``, no progress bar) into a temporary
    directory; the rate is run.json's ``steady_env_steps_per_s``: every epoch after the first, each
    timed from its call to the end of its metrics fetch, metrics.csv rewrite and checkpoint snapshot
    (device-to-host copies); the checkpoint file is written in a thread behind the next epoch."""
    with tempfile.TemporaryDirectory(prefix="atari_throughput_dqn_") as tmp:
        out = Path(tmp) / "run"
        start = time.perf_counter()
        summary = run.train(cfg, out, progress=False)
        wall = time.perf_counter() - start
        checkpoint_bytes = (out / rundir.CHECKPOINT).stat().st_size
    steady_per_seed = cfg.epoch_steps * summary["epochs_timed"]
    result = {
        "env_steps_per_s": summary["steady_env_steps_per_s"], "compile_s": summary["compile_seconds"],
        "seeds": cfg.seeds, "num_envs": cfg.num_envs, "buffer_size": cfg.buffer_size,
        "learning_starts": cfg.learning_starts, "epoch_steps": cfg.epoch_steps, "total_steps": cfg.total_steps,
        "epochs_timed": summary["epochs_timed"], "steady_env_steps": cfg.seeds * steady_per_seed,
        "steady_window_env_steps": [cfg.total_steps - steady_per_seed, cfg.total_steps],
        "all_timed_epochs_learn": cfg.learning_starts <= cfg.epoch_steps,
        "updates_per_env_step": 1 / cfg.num_envs, "target_sync_every_env_steps": cfg.target_update * cfg.num_envs,
        "eval_per_epoch": f"{cfg.eval_envs} env x {cfg.eval_steps} step",
        "checkpoints_written": True, "checkpoint_bytes": checkpoint_bytes, "wall_s": round(wall, 1),
        "code_path": summary["code_path"],
        "timed": "jaxfer.runtime.run.train's host loop, epochs 2.. (run.json's steady_env_steps_per_s): each epoch's "
                 "compiled call + metrics fetch + metrics.csv rewrite + checkpoint snapshot (device-to-host "
                 "copy of params, optimizer state and replay buffer) + any wait for the previous checkpoint "
                 "write; the checkpoint .npz is written every epoch by a thread behind the next epoch",
    }
    return result


def steady_rate(arrivals: list[float], steps_per_line: int, skip: int) -> float:
    """Env steps/s between progress lines that each mark ``steps_per_line`` more steps, arriving at
    the given times, leaving out the first ``skip`` lines (compilation, warm-up)."""
    times = arrivals[skip:]
    if len(times) < 2:
        raise ValueError(f"need at least {skip + 2} progress lines, got {len(arrivals)}")
    return steps_per_line * (len(times) - 1) / (times[-1] - times[0])


def cleanrl_dqn(python: str, script: Path, game: str, *, learning_starts: int, steady_steps: int,
                buffer_size: int = 100_000, train_frequency: int = 4, target_network_frequency: int = 1000,
                skip: int = 10, timeout: float | None = None) -> dict:
    """CleanRL's dqn_atari_jax.py (1 env, its defaults otherwise: 10M total steps, so its epsilon decays
    over 1M steps as in the config) timed by its own progress lines over ``steady_steps`` env steps
    after learning starts. It prints "SPS:" every 100 env steps once it trains (its printed SPS is
    cumulative from the start, so only the lines' arrival times are used); the first ``skip`` lines
    after learning starts, which hold the update's compilation, are left out, and the script is killed
    once the window is complete. A watchdog kills it after ``timeout`` seconds (default: 10 minutes
    plus the steps it must run at 10 env steps/s); a window it did not complete is reported as skipped."""
    per_line = progress_line_steps(train_frequency)
    gaps = -(-steady_steps // per_line)
    need = skip + 1 + gaps
    first_line = (learning_starts // per_line + 1) * per_line  # the first update step past learning_starts
    window = [first_line + skip * per_line, first_line + (skip + gaps) * per_line]
    if timeout is None:
        timeout = 600 + window[1] / 10
    args = ["--env-id", f"{game}NoFrameskip-v4", "--learning-starts", str(learning_starts), "--buffer-size",
            str(buffer_size), "--train-frequency", str(train_frequency), "--target-network-frequency",
            str(target_network_frequency)]
    arrivals, tail, fired = [], [], threading.Event()
    start = time.perf_counter()
    with subprocess.Popen([python, "-u", str(script), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as proc:
        def kill():
            fired.set()
            proc.kill()

        watchdog = threading.Timer(timeout, kill)
        watchdog.start()
        for line in proc.stdout:
            if line.startswith("SPS:"):
                arrivals.append(time.perf_counter())
                if len(arrivals) >= need:
                    break
            else:
                tail = (tail + [line.strip()])[-3:]
        watchdog.cancel()
        proc.kill()
    wall = time.perf_counter() - start
    if len(arrivals) < need:
        why = f"the watchdog stopped it after {timeout:.0f} s" if fired.is_set() else "it ended"
        out = {"skipped": f"CleanRL not timed with {python} {script}: {why} at {len(arrivals)} of {need} progress "
                          f"lines; its last output: {' | '.join(tail)}"}
        if len(arrivals) >= skip + 2:
            out["partial_env_steps_per_s"] = round(steady_rate(arrivals, per_line, skip), 1)
        return out
    return {"env_steps_per_s": round(steady_rate(arrivals, per_line, skip), 1), "steps_timed": per_line * gaps,
            "steady_window_env_steps": window, "learning_starts": learning_starts, "buffer_size": buffer_size,
            "train_frequency": train_frequency, "target_network_frequency": target_network_frequency,
            "updates_per_env_step": 1 / train_frequency, "num_envs": 1, "seeds": 1, "checkpoints_written": False,
            "wall_s": round(wall, 1),
            "timed": f"arrival times of its 'SPS:' lines (one per {per_line} env steps once it learns), leaving out "
                     f"the first {skip} after learning starts (they hold the update's compilation)",
            "script": str(script), "python": python, "args": args}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--epochs", type=int, default=2, help="timed epochs after a warm-up epoch (the seed rows)")
    p.add_argument("--out", type=Path, default=RESULTS / "atari_throughput.json")
    p.add_argument("--sb3-python", default=sys.executable, help="a Python with stable-baselines3 and ale-py")
    p.add_argument("--cleanrl-script", type=Path,
                   help="a copy of CleanRL's cleanrl/dqn_atari_jax.py to time beside jaxfer")
    p.add_argument("--cleanrl-python", default=sys.executable, help="a Python that runs --cleanrl-script")
    p.add_argument("--steady-steps", type=int, default=30_000,
                   help="env steps after learning starts timed in the DQN comparison (jaxfer and CleanRL)")
    p.add_argument("--steady-epochs", type=int, default=6,
                   help="jaxfer epochs in that window (learning starts at the end of the first epoch)")
    p.add_argument("--dqn-envs", type=int, default=None,
                   help="jaxfer's envs in the DQN comparison (default: the config's, 4). jaxfer makes one update "
                        "per vector step, so CleanRL (always 1 env) gets --train-frequency of this value and "
                        "--target-network-frequency of target_update x this value: 4 gives CleanRL's defaults")
    p.add_argument("--cleanrl-timeout", type=float, default=None,
                   help="seconds before CleanRL's script is killed (default: 600 + its steps / 10)")
    args = p.parse_args()
    load = os.getloadavg()[0]  # other work on the machine skews every number below

    dqn_cfg = config.load(DQN_CONFIG, ["learning_starts=0", "epoch_steps=400", "total_steps=400",
                                       "eval_envs=1", "eval_steps=1", "buffer_size=2000"])
    dqn_envs = args.dqn_envs or dqn_cfg.num_envs
    plan = comparison_plan(args.steady_steps, args.steady_epochs, dqn_envs)
    compare_cfg = comparison_config(plan, dqn_envs, config.load(DQN_CONFIG).buffer_size)
    # one update per timed epoch; "a2c" = the E-A3C config, "a2c_nature" = SB3's A2C defaults (Nature CNN,
    # 5-step returns, RMSProp 7e-4, 16 envs), the like-for-like comparison with SB3 below
    one_update = ["eval_envs=1", "eval_steps=1", "n_steps=20", "epoch_steps=320"]
    a2c_cfg = config.load(ROOT / "configs/atari_a2c_ea3c.yaml", one_update)
    a2c_nature_cfg = dataclasses.replace(a2c_cfg, obs="nature", network="nature_ac", core="dense", n_steps=5,
                                         epoch_steps=4 * 80, optimizer="rmsprop", lr=7e-4)
    roofline = matmul_roofline()
    update = update_alone(dqn_cfg)
    update["roofline_fraction"] = round(update.pop("flops_per_s") / roofline, 4)
    print(json.dumps({"dqn_update_alone": update}), flush=True)

    # The DQN comparison, one right after the other: this machine's speed drifts over hours.
    jaxfer_vs_cleanrl = jaxfer_dqn(compare_cfg)
    print(json.dumps({"dqn_like_cleanrl": jaxfer_vs_cleanrl}), flush=True)
    cleanrl = {"skipped": "no --cleanrl-script given"}
    if args.cleanrl_script:
        cleanrl = cleanrl_dqn(args.cleanrl_python, args.cleanrl_script, compare_cfg.env.split("/")[1],
                              learning_starts=compare_cfg.learning_starts, steady_steps=plan["steady_env_steps"],
                              buffer_size=compare_cfg.buffer_size, train_frequency=compare_cfg.num_envs,
                              target_network_frequency=compare_cfg.target_update * compare_cfg.num_envs,
                              timeout=args.cleanrl_timeout)
        print(json.dumps({"cleanrl_dqn": cleanrl}), flush=True)

    rows = []
    for s in args.seeds:
        cfg = dataclasses.replace(dqn_cfg, seeds=s)
        e = cfg.num_envs
        raw = raw_envpool(cfg.env, cfg.obs, num_envs=s * e, steps=400 // e)
        row = {"seeds": s, "envs_per_seed": e, "raw_envpool_env_steps_per_s": round(raw["env_steps_per_s"], 1),
               "envpool_threads": raw["threads"]}
        small = dataclasses.replace(cfg, buffer_size=64)
        rollout = timed_epochs(small, no_learning(agents.make_agent(small, envs.make(cfg.env, cfg.obs))), args.epochs)
        row |= {"rollout_env_steps_per_s": rollout["env_steps_per_s"], "rollout_compile_s": rollout["compile_s"],
                "rollout_vs_raw": round(rollout["env_steps_per_s"] / row["raw_envpool_env_steps_per_s"], 3)}
        dqn = timed_epochs(cfg, epochs=args.epochs)  # the quick reading: see "dqn_quick" in the JSON
        row |= {"dqn_quick_env_steps_per_s": dqn["env_steps_per_s"], "dqn_quick_compile_s": dqn["compile_s"]}
        for name, c in (("a2c", a2c_cfg), ("a2c_nature", a2c_nature_cfg)):
            try:
                a2c = timed_epochs(dataclasses.replace(c, seeds=s), epochs=args.epochs)
            except ConfigError as e:  # e.g. more working memory than this machine has
                row[f"{name}_refused"] = str(e)
                continue
            row |= {f"{name}_env_steps_per_s": a2c["env_steps_per_s"], f"{name}_compile_s": a2c["compile_s"]}
        rows.append(row)
        print(json.dumps(row), flush=True)
    sb3 = sb3_a2c(args.sb3_python, a2c_cfg.env.split("/")[1], a2c_cfg.num_envs, 4000)
    one = rows[0]
    summary = {
        "dqn_like_cleanrl_env_steps_per_s": jaxfer_vs_cleanrl["env_steps_per_s"],
        "dqn_quick_time_shares_one_seed": {  # from the quick rows (same envs as the rollout and raw rows)
            "env": round(one["dqn_quick_env_steps_per_s"] / one["raw_envpool_env_steps_per_s"], 3),
            "acting_forward": round(one["dqn_quick_env_steps_per_s"] / one["rollout_env_steps_per_s"]
                                    - one["dqn_quick_env_steps_per_s"] / one["raw_envpool_env_steps_per_s"], 3),
            "update": round(1 - one["dqn_quick_env_steps_per_s"] / one["rollout_env_steps_per_s"], 3)},
    }
    if compare_cfg.num_envs == 4:  # CleanRL's defaults (one update per 4 env steps)
        # CleanRL's dqn_atari_jax.py measured ~105-110 env steps/s steady on this kind of machine (DESIGN.md).
        summary["dqn_vs_cleanrl_quoted_110"] = round(jaxfer_vs_cleanrl["env_steps_per_s"] / 110.0, 2)
    if "env_steps_per_s" in cleanrl:
        summary["dqn_vs_cleanrl_measured"] = round(jaxfer_vs_cleanrl["env_steps_per_s"] / cleanrl["env_steps_per_s"], 2)
    if "env_steps_per_s" in sb3:
        summary["a2c_nature_vs_sb3_a2c"] = round(one["a2c_nature_env_steps_per_s"] / sb3["env_steps_per_s"], 2)
        summary["a2c_nature_best_vs_sb3_a2c"] = round(max(r["a2c_nature_env_steps_per_s"] for r in rows)
                                                      / sb3["env_steps_per_s"], 2)
    files.write_json(args.out, {
        "benchmark": "atari_throughput",
        "dqn_like_cleanrl_config": config.to_dict(compare_cfg),
        "dqn_quick_config": config.to_dict(dqn_cfg),
        "dqn_quick_note": f"the rows' dqn_quick_*: a {dqn_cfg.buffer_size}-transition buffer, learning from step "
                          f"0, {args.epochs} compiled epochs of {dqn_cfg.epoch_steps} env steps per seed after a "
                          "warm-up one, timed back to back without the host loop (no metrics fetch, no "
                          "checkpoint): NOT the CleanRL comparison, which is dqn_like_cleanrl vs cleanrl_dqn",
        "dqn_comparison_note": f"dqn_like_cleanrl vs cleanrl_dqn, the same for both: 1 seed, a "
                               f"{compare_cfg.buffer_size}-transition replay, learning from env step "
                               f"{compare_cfg.learning_starts}, one update (batch {compare_cfg.batch_size}) per "
                               f"{compare_cfg.num_envs} env steps, target sync every "
                               f"{compare_cfg.target_update * compare_cfg.num_envs} env steps, epsilon "
                               f"{compare_cfg.eps_start} -> {compare_cfg.eps_end} over {compare_cfg.eps_decay_steps} "
                               f"env steps (CleanRL's default 10% of 10M), {plan['steady_env_steps']} env steps timed "
                               "after learning starts. "
                               f"Not the same: jaxfer steps {compare_cfg.num_envs} env(s) at a time (one update per "
                               "vector step), CleanRL's script 1; jaxfer writes a checkpoint every epoch, CleanRL "
                               "none while it trains",
        "a2c_config": config.to_dict(a2c_cfg), "a2c_nature_config": config.to_dict(a2c_nature_cfg),
        **environment_info(),
        "load_average_1min_at_start": load, "matmul_f32_flops_per_s": roofline,
        "dqn_update_alone": update, "dqn_like_cleanrl": jaxfer_vs_cleanrl, "cleanrl_dqn": cleanrl,
        "rows": rows, "sb3_a2c": sb3, "summary": summary})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
