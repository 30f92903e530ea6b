"""Run in a subprocess by test_devices.py (XLA must see forced host devices before jax starts).

``python tests/seed_mesh_probe.py '[[config or null, [overrides...]], ...]'`` trains each config for
all its epochs over every device and prints one JSON line: per run, the collectives in the compiled
epoch's optimised HLO, which devices hold seeds, and the per-seed metrics of every epoch.
"""
import json
import re
import sys

import jax

from jaxfer import agents, config, envs, mesh
from jaxfer.runtime import seed_axis

COLLECTIVES = r"\b(all-to-all|collective-permute|all-gather|all-reduce|reduce-scatter|collective-broadcast)\b"


def probe(path, overrides):
    cfg = config.load(path, overrides)
    trainer = agents.make_trainer(cfg, envs.make(cfg.env, cfg.obs))
    state = trainer.init(mesh.seed_keys(cfg.seed, cfg.seeds))
    epoch, _ = seed_axis.compile_over_seeds(trainer.epoch, state, cfg.strategy, sliceable=trainer.pool.checkpointable,
                                        phase=trainer.phase, path=trainer.path)
    hlo = epoch.compiled(None if trainer.phase is None else trainer.phase(state)).as_text()
    holding = {d.id: len(range(*index[0].indices(trainer.num_seeds)))
               for d, index in state.key.sharding.devices_indices_map(state.key.shape).items()}
    history = []
    for _ in range(cfg.num_epochs):
        state, metrics = epoch(state)
        history.append({k: v.tolist() for k, v in mesh.fetch(metrics, cfg.seeds).items()})
    return {"devices": jax.device_count(), "collectives": sorted(set(re.findall(COLLECTIVES, hlo))),
            "seeds_per_device": holding, "history": history}


if __name__ == "__main__":
    print(json.dumps([probe(path, overrides) for path, overrides in json.loads(sys.argv[1])]))
