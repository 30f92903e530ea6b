"""Where a run executes: the backend's tuning, the processes, the compilation cache.

``cpu_tuned`` says whether a run takes the XLA-CPU path; ``jaxfer.code_path.CodePath`` asks
it once per run and holds every switch that follows from the answer.
"""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from jaxfer.errors import BackendError

TUNINGS = ("auto", "cpu", "accelerator")
CONV_IMPLS = ("auto", "gemm", "xla")


def cpu_tuned(tuning: str = "auto") -> bool:
    """True where the XLA-CPU workarounds apply: ``tuning`` "cpu", or "auto" on the CPU backend."""
    if tuning == "auto":
        import jax

        return jax.default_backend() == "cpu"
    return tuning == "cpu"


def cores() -> int:
    """The CPU cores this process may run on (its affinity mask, e.g. under taskset or a container's cpuset)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _accelerator_installed() -> bool:
    """Whether jax will pick a backend other than CPU: JAX_PLATFORMS names one first, or a GPU/TPU plugin
    is installed (found without starting any backend)."""
    import importlib.metadata
    import importlib.util

    import jax

    platforms = jax.config.jax_platforms or ""
    if platforms:
        return platforms.split(",")[0].strip() != "cpu"
    return bool(importlib.metadata.entry_points(group="jax_plugins")) or any(
        importlib.util.find_spec(m) is not None for m in ("jax_plugins", "libtpu"))


def host_devices(count: int | None) -> int | None:
    """Before jax starts its backend: on a CPU backend, ``count`` host devices (``--devices``), or one
    per core, since XLA CPU runs each device's small per-seed ops on about one core (see README, "Seed
    scaling"). Left alone where the user set it (XLA_FLAGS' ``--xla_force_host_platform_device_count``,
    ``JAX_NUM_CPU_DEVICES``), where the backend will be an accelerator, or once jax has started.
    Returns the count set, or None."""
    import jax

    if ("xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "")
            or jax.config.jax_num_cpu_devices >= 0 or _accelerator_installed()):
        return None
    count = count or cores()
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError:  # jax already started (jaxfer.cli.main called in a process that used jax)
        return None
    return count


DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "jaxfer" / "xla"


def enable_compilation_cache() -> Path | None:
    """XLA's persistent compilation cache, so identical programs (a sweep's cells, a rerun) compile once.

    On by default under ``~/.cache/jaxfer/xla``; ``JAXFER_COMPILATION_CACHE`` names another folder,
    or turns it off with ``0`` / ``off``. An explicit ``JAX_COMPILATION_CACHE_DIR`` is left alone.
    """
    import jax

    setting = os.environ.get("JAXFER_COMPILATION_CACHE", "")
    if setting.lower() in ("0", "off", "false", "no"):
        return None
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return Path(os.environ["JAX_COMPILATION_CACHE_DIR"])
    path = Path(setting) if setting else DEFAULT_CACHE
    jax.config.update("jax_compilation_cache_dir", str(path))
    return path


def _check_coordinator(address: str, serves: bool, timeout_s: float) -> None:
    """Process 0 must be able to listen on ``address``'s port; the others must reach it within ``timeout_s``."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise BackendError(f"--coordinator must be HOST:PORT with a port in [1, 65535], got '{address}'")
    try:
        socket.getaddrinfo(host.strip("[]"), int(port))
    except (socket.gaierror, UnicodeError):
        raise BackendError(f"--coordinator: the host '{host}' does not resolve") from None
    if serves:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("", int(port)))
            except OSError as e:
                raise BackendError(f"process 0 cannot listen on port {port} ({e.strerror}); pick another "
                                   f"--coordinator port") from None
        return
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise BackendError(f"the coordinator {address} did not answer within {timeout_s} s "
                                   f"(--join-timeout); start process 0 there first") from None
            time.sleep(0.2)


def initialize_distributed(coordinator: str | None, num_processes: int | None, process_id: int | None,
                           timeout_s: int = 60) -> None:
    """``jax.distributed.initialize`` before anything touches the backend. With no arguments jax detects
    the cluster itself (SLURM, Open MPI, ...). CPU processes exchange data through gloo."""
    import jax

    given = [coordinator, num_processes, process_id]
    if any(v is not None for v in given) and any(v is None for v in given):
        raise BackendError("--coordinator, --num-processes and --process-id go together (or none: auto-detection)")
    if num_processes is not None:
        if num_processes < 1:
            raise BackendError(f"--num-processes must be >= 1, got {num_processes}")
        if not 0 <= process_id < num_processes:
            raise BackendError(f"--process-id must be in [0, {num_processes}), got {process_id}")
    if coordinator is not None:  # jax aborts the process (no exception) when the coordinator is not there
        _check_coordinator(coordinator, process_id == 0, timeout_s)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    # jax's preemption service would catch SIGTERM and let the run go on; the CLI's handler stops it instead
    jax.config.update("jax_enable_preemption_service", False)
    try:
        jax.distributed.initialize(coordinator, num_processes, process_id, initialization_timeout=timeout_s)
    except Exception as e:  # jax raises RuntimeError / ValueError / XlaRuntimeError with long texts
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        where = f"coordinator {coordinator}" if coordinator else "the auto-detected cluster"
        raise BackendError(f"could not join {where} within {timeout_s} s ({first[:200]})") from None
