"""Stable-Baselines3's A2C or DQN on an Atari game with its own Atari wrappers, timed after a warm-up.

Run by the sb3 side venv's Python: ``python run_sb3.py '<json spec>'``. ``make_atari_env`` (noop reset,
max-and-skip 4, episodic life, fire reset, 84x84 grey, clipped rewards) over ``{game}NoFrameskip-v4``
(ale-py's, registered with gymnasium by ``gym_shim.apply()``), 4 stacked frames, "CnnPolicy" (the Nature
CNN). ``learn`` runs ``warmup_steps`` (past DQN's learning start), then ``steady_steps`` more are timed in a
second ``learn`` call. PyTorch runs eagerly (on the GPU where torch sees one, SB3's "auto"): there is no compile step
to leave out. Prints one JSON line.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def main() -> None:
    spec = json.loads(sys.argv[1])
    sys.path.insert(0, str(Path(__file__).parent))
    import gym_shim

    gym_shim.apply()
    import torch
    from stable_baselines3 import A2C, DQN
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack

    torch.set_num_threads(spec.get("threads") or os.cpu_count())
    env = VecFrameStack(make_atari_env(spec["env_id"], n_envs=spec["num_envs"], seed=spec.get("seed", 0)), n_stack=4)
    decay = min(1.0, spec.get("eps_decay_steps", 1) / (spec["warmup_steps"] + spec["steady_steps"]))
    if spec["algo"] == "a2c":
        model = A2C("CnnPolicy", env, n_steps=spec["n_steps"], learning_rate=spec["lr"], ent_coef=spec["ent_coef"],
                    vf_coef=spec["vf_coef"], max_grad_norm=spec["max_grad_norm"], gamma=spec["gamma"],
                    seed=spec.get("seed", 0), device=spec.get("device", "auto"), verbose=0)
    elif spec["algo"] == "dqn":
        # train_freq 1 (vector step) with num_envs envs: one update per num_envs env steps, as jaxfer's one
        # update per vector step; SB3 counts target_update_interval in env steps
        model = DQN("CnnPolicy", env, buffer_size=spec["buffer_size"], learning_starts=spec["learning_starts"],
                    batch_size=spec["batch_size"], learning_rate=spec["lr"], gamma=spec["gamma"], train_freq=1,
                    gradient_steps=1, target_update_interval=spec["target_update_env_steps"],
                    exploration_initial_eps=spec["eps_start"], exploration_final_eps=spec["eps_end"],
                    exploration_fraction=decay,
                    optimize_memory_usage=True, replay_buffer_kwargs={"handle_timeout_termination": False},
                    seed=spec.get("seed", 0), device=spec.get("device", "auto"), verbose=0)
    else:
        raise SystemExit(f"run_sb3.py: unknown algo {spec['algo']!r} (a2c or dqn)")
    start = time.perf_counter()
    model.learn(total_timesteps=spec["warmup_steps"])
    warmup_s = time.perf_counter() - start
    start = time.perf_counter()
    model.learn(total_timesteps=spec["steady_steps"], reset_num_timesteps=False)
    seconds = time.perf_counter() - start
    print(json.dumps({"env_steps_per_s": round(spec["steady_steps"] / seconds, 1), "compile_s": None,
                      "warmup_s": round(warmup_s, 2), "seconds": round(seconds, 2), "env_steps": spec["steady_steps"],
                      "device": {"platform": model.device.type, "kind": f"torch {model.device}",
                                 "torch_threads": torch.get_num_threads()},
                      "timed": f"a second model.learn of {spec['steady_steps']} env steps after "
                               f"{spec['warmup_steps']} (past the learning start)"}))


if __name__ == "__main__":
    main()
