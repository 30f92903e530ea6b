"""Run in a subprocess by test_devices.py (XLA must see forced host devices before jax starts).

``python tests/seed_mesh_probe.py '[[config or null, [overrides...]], ...]'`` trains each config for
all its epochs over every device and prints one JSON line: per run, the collectives in the compiled
epoch's optimised HLO, which devices hold seeds, and the per-seed metrics of every epoch.
``python tests/seed_mesh_probe.py --fcn SEEDS`` does the same for FCN training (``fcn_probe``).
"""
import json
import re
import sys

import jax
import numpy as np

from jaxfer import agents, config, envs, mesh
from jaxfer.runtime import seed_axis
from jaxfer.segment.train import make_trainer

COLLECTIVES = r"\b(all-to-all|collective-permute|all-gather|all-reduce|reduce-scatter|collective-broadcast)\b"


def probe(path, overrides):
    cfg = config.load(path, overrides)
    trainer = agents.make_trainer(cfg, envs.make(cfg.env, cfg.obs))
    state = trainer.init(mesh.seed_keys(cfg.seed, cfg.seeds))
    epoch, _ = seed_axis.compile_trainer(trainer, state, cfg.strategy)
    hlo = epoch.compiled(None if trainer.warmup_iterations is None else trainer.warmup_iterations(state)).as_text()
    holding = {d.id: len(range(*index[0].indices(trainer.num_seeds)))
               for d, index in state.key.sharding.devices_indices_map(state.key.shape).items()}
    history = []
    for _ in range(cfg.num_epochs):
        state, metrics = epoch(state)
        history.append({k: v.tolist() for k, v in mesh.fetch(metrics, cfg.seeds).items()})
    return {"devices": jax.device_count(), "collectives": sorted(set(re.findall(COLLECTIVES, hlo))),
            "seeds_per_device": holding, "history": history}


def fcn_probe(num_seeds: int, first_seed: int = 0, epochs: int = 2):
    """FCNs of seeds first_seed.. trained on fixed random frames and labels over every device: collectives
    in the compiled epoch, and per seed each epoch's loss and the final conv_0 kernel."""
    rng = np.random.default_rng(0)
    data = mesh.replicate((rng.integers(0, 256, (48, 10, 10, 4), np.uint8), rng.integers(0, 3, (48, 10, 10), np.int32)))
    trainer = make_trainer(3, (10, 10, 4), 3e-3, 16)
    state = mesh.place(mesh.pad(trainer.init(mesh.seed_keys(first_seed, num_seeds)), num_seeds))
    epoch = seed_axis.compile_seed_map(trainer.epoch, state, *data, donate=True)
    losses = []
    for _ in range(epochs):
        state, loss = epoch(state, *data)
        losses.append(mesh.fetch(loss, num_seeds).tolist())
    kernel = mesh.fetch(state.params, num_seeds)["params"]["conv_0"]["kernel"]
    return {"devices": jax.device_count(), "collectives": sorted(set(re.findall(COLLECTIVES, epoch.as_text()))),
            "losses": losses, "kernel": kernel.tolist()}


if __name__ == "__main__":
    if sys.argv[1] == "--fcn":
        print(json.dumps(fcn_probe(int(sys.argv[2]))))
    else:
        print(json.dumps([probe(path, overrides) for path, overrides in json.loads(sys.argv[1])]))
