"""jaxfer: transfer learning for deep RL on Atari-like games, in JAX. The layers, from the bottom (each
imports only those below it; pyproject.toml's import-linter contract checks it): errors; mesh, backend,
xla_cpu, stats; code_path; envs, networks, replay; config; agents; runtime (the training driver);
transfer, dptl; segment, play; report; cli. docs/architecture.md names every module."""
