"""Who trains a sweep's runs: this process (``local``) or the tasks of a Ray cluster (``ray``).

A sweep is a graph of runs (``sweep.run_graph``); each run is a resumable directory that one process
at a time holds (``rundir``), so a finished run is never trained again and a held one never twice.
- ``local`` walks the graph in this process. Several local workers (or scheduler jobs) may share one
  sweep directory: a worker skips a run another holds and comes back to it, and starts a run only
  once the runs it needs have finished.
- ``ray`` makes every unfinished run a Ray task with its CPUs and GPUs (a fraction of a GPU lets
  small runs share one); a task's needs are passed as the object references of their tasks, so Ray
  starts it once they have finished. Each task is a separate worker process that writes the same
  files as the local executor. Without an address Ray starts a cluster of this machine.
Either way the sweep's results are written last, from the finished runs (``sweep.results``).
"""
from __future__ import annotations

import dataclasses
import os
import socket
import sys
import time
from pathlib import Path

from jaxfer import backend
from jaxfer.errors import ConfigError
from jaxfer.runtime import rundir
from jaxfer.transfer import sweep

CONNECT_TIMEOUT_S = 5  # how long --ray-address may take to answer before it counts as unreachable


@dataclasses.dataclass(frozen=True)
class RayOptions:
    address: str | None = None  # a running cluster (HOST:PORT, ray://HOST:PORT or auto); None: start one here
    cpus: int | None = None  # CPUs of the cluster started here (default: all of this machine's)
    run_cpus: float = 1.0  # CPUs each run holds
    run_gpus: float = 0.0  # GPUs each run holds; a fraction packs several runs on one GPU


def run_sweep(cfg: sweep.SweepConfig, out: Path, progress: bool = True, executor: str = "local",
              options: RayOptions = RayOptions()) -> list[dict]:
    """Train the sweep's unfinished runs with ``executor``, then write its results; returns the area ratios."""
    out = Path(out)
    cluster = _connect(options) if executor == "ray" else None  # first: Ray forks processes, unsafe once jax runs
    try:
        sweep.check_sources(cfg)
        rundir.check_sweep(out)
        sweep.claim(cfg, out)
        if cluster:
            run_on_ray(cluster, cfg, out, options)
        else:
            run_local(cfg, out, progress)
    finally:
        if cluster:
            cluster.shutdown()
    return sweep.results(cfg, out)


def _say(text: str) -> None:
    print(f"jaxfer: {text}", file=sys.stderr, flush=True)


def _report(name: str, trained: bool, seconds: float) -> None:
    """One line per run a worker meets: how the runs of a sweep were shared out can be read from the logs."""
    _say(f"{name}: trained in {seconds:.1f} s" if trained else f"{name}: done already")


def run_local(cfg: sweep.SweepConfig, out: Path, progress: bool = True) -> None:
    """Train every unfinished run here, skipping the runs other workers hold until they let them go."""
    pending, finished, waiting = sweep.run_graph(cfg), set(), set()
    while pending:
        before, held = len(pending), set()
        for r in list(pending):
            if not finished.issuperset(r.needs):
                continue
            start = time.perf_counter()
            try:
                trained = sweep.train_run(cfg, out, r, progress)
            except rundir.Busy:
                held.add(r.name)
                continue
            _report(r.name, trained, time.perf_counter() - start)
            finished.add(r.name)
            pending.remove(r)
        if len(pending) == before:  # nothing to do here until another worker lets a run go
            if held != waiting:
                _say(f"waiting for {', '.join(sorted(held))} (held by another worker)")
            waiting = held
            time.sleep(rundir.POLL_S)


def run_one(cfg: sweep.SweepConfig, out: Path, name: str, progress: bool = True) -> bool:
    """Train the run ``name`` of the sweep if the runs it needs have finished (one unit for any scheduler)."""
    graph = {r.name: r for r in sweep.run_graph(cfg)}
    if name not in graph:
        raise ConfigError(f"the sweep has no run '{name}'; --list-runs lists them")
    missing = [n for n in graph[name].needs if not sweep.finished(cfg, out, graph[n])]
    if missing:
        raise ConfigError(f"{name} needs {', '.join(missing)} to finish first")
    sweep.check_sources(cfg)
    rundir.check_sweep(out)
    sweep.claim(cfg, out)
    start = time.perf_counter()
    trained = sweep.train_run(cfg, out, graph[name], progress)
    _report(name, trained, time.perf_counter() - start)
    return trained


def describe(cfg: sweep.SweepConfig, out: Path) -> list[str]:
    """One line per run: name, stage (its depth in the graph), state, and what it starts from."""
    graph = sweep.run_graph(cfg)
    stage, state = {}, {}
    for r in graph:
        stage[r.name] = 1 + max((stage[n] for n in r.needs), default=-1)
        if sweep.finished(cfg, out, r):
            state[r.name] = "done"
        elif rundir.holder(out / r.name):
            state[r.name] = "running"
        else:
            state[r.name] = "ready" if all(state[n] == "done" for n in r.needs) else "waiting"
    width = max(len(r.name) for r in graph)
    return [f"{r.name:<{width}}  stage {stage[r.name]}  {state[r.name]:<7}" + (f"  <- {r.origin}" if r.origin else "")
            for r in graph]


def run_on_ray(ray, cfg: sweep.SweepConfig, out: Path, options: RayOptions) -> None:
    """Every unfinished run as a task on the connected ``ray``, started once the tasks it needs have finished."""
    env = {k: v for k, v in os.environ.items() if k.startswith(("JAX_", "XLA_", "JAXFER_"))}
    if 0 < options.run_gpus < 1:  # runs sharing a GPU: none may take most of its memory up front
        env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    task = ray.remote(_ray_task).options(num_cpus=options.run_cpus, num_gpus=options.run_gpus,
                                         runtime_env={"env_vars": env})
    refs = {}
    for r in sweep.run_graph(cfg):
        if sweep.finished(cfg, out, r):
            _report(r.name, False, 0.0)
            continue
        needs = [refs[n] for n in r.needs if n in refs]
        refs[r.name] = task.remote(cfg, str(out.resolve()), r, os.getcwd(), *needs)
    pending = list(refs.values())
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        try:
            _report(*ray.get(ready[0]))
        except ray.exceptions.RayTaskError as e:  # the run's own error, e.g. a ConfigError: one line
            raise e.cause from e


def _ray_task(cfg: sweep.SweepConfig, out: str, r: sweep.Run, cwd: str, *needs) -> tuple[str, bool, float]:
    """One run in a Ray worker process. ``needs`` are the finished needs' results (Ray waits for them); a run
    another process holds (a worker of a killed driver still finishing it) is waited for."""
    os.chdir(cwd)  # relative source_checkpoints, as in the driver
    backend.enable_compilation_cache()
    start = time.perf_counter()
    while True:
        try:
            return r.name, sweep.train_run(cfg, Path(out), r, progress=False), time.perf_counter() - start
        except rundir.Busy:
            time.sleep(rundir.POLL_S)


def _connect(options: RayOptions):
    """``ray``, connected to the cluster at ``options.address`` or to a new one of this machine."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray: pip install 'jaxfer[ray]'") from None
    if options.address and options.cpus:
        raise ConfigError("--ray-cpus sizes a cluster started here; a running cluster (--ray-address) has its own")
    if options.address and options.address != "auto":  # ray.init waits on an unreachable address for minutes
        host, _, port = options.address.removeprefix("ray://").rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"--ray-address must be HOST:PORT (or ray://HOST:PORT, auto), got '{options.address}'")
        try:
            socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
        except OSError as e:
            raise ConfigError(f"no Ray cluster answers at {options.address} ({e.strerror or e}); start one there "
                              "with `ray start --head`, or drop --ray-address for a cluster of this machine") from None
    local = {} if options.address else {"num_cpus": options.cpus or os.cpu_count()}
    try:
        ray.init(address=options.address or "local", include_dashboard=False, logging_level="ERROR",
                 log_to_driver=False, **local)
    except (ConnectionError, RuntimeError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"cannot use the Ray cluster at {options.address or 'this machine'}: {first[:200]}") from None
    return ray
