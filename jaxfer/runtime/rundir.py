"""A run directory: the names of its files, one writer at a time (a lock), the claim that says what it
holds, and a finished run loaded back (``load_finished``: play, DPTL and sweeps read runs through it).

Two commands on one ``--out`` would otherwise both train and mix their results. The lock is created
atomically (``O_CREAT | O_EXCL``) and holds the host, pid and start time of its holder, and a heartbeat
its holder refreshes every ``HEARTBEAT_S``; a second process gets one line naming the holder. A lock
whose process is gone (same host and pid not running, or, from another host, a heartbeat older than
``STALE_S``: a job requeued on another node) is taken over with a note on stderr, and temp files a
killed writer left there are removed. In a
multi-process run process 0 holds it for all. A lock this process already holds is held again at no cost
(a sweep holds a run's directory around ``run.train``, which holds it too). A sweep's workers share the
sweep directory: its lock, marked ``sweep``, is held only while one of them writes the sweep's results.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
import yaml

from jaxfer import agents, config, envs
from jaxfer.config import TrainConfig
from jaxfer.errors import ConfigError
from jaxfer.runtime import files

LOCK = ".jaxfer.lock"
POLL_S = 1.0  # how often a waiting process looks at a lock again
HEARTBEAT_S = 30.0  # how often a holder refreshes its lock's heartbeat
STALE_S = 600.0  # a lock from another host whose heartbeat is older than this is taken over
_HELD: dict[Path, threading.Event] = {}  # the locks this process holds (each with its heartbeat's stop),
# released by ``release_all`` on an interrupt
_WRITING = threading.RLock()  # a heartbeat is never written after its lock was released


# A run directory's files: its config (the claim, written first and compared on every later start), metric
# rows per epoch and seed, the checkpoint while it runs, then the final params, the learning curve and
# run.json (written last: the run is finished).
CONFIG = CLAIM = "config.yaml"
METRICS, CHECKPOINT = "metrics.csv", "checkpoint.npz"
PARAMS, CURVE, RUN_JSON = "params.npz", "learning_curve.png", "run.json"


# Settings of how a run is carried out, not of what it computes: a claim is compared without them (at any depth),
# so a run resumes with other values and a directory made before they existed still matches.
HOW_NOT_WHAT = ("checkpoint_every_s",)


def _what(claim):
    if isinstance(claim, dict):
        return {k: _what(v) for k, v in claim.items() if k not in HOW_NOT_WHAT}
    return claim


def check_claim(out: Path, claim: dict, what: str, name: str = CLAIM) -> bool:
    """True if ``out`` already holds ``what`` made with ``claim`` (its file ``name``, ``HOW_NOT_WHAT`` aside);
    another claim there is a one-line ConfigError, so two configs never mix in one directory, and a damaged
    one a ``DamagedFile``."""
    path = Path(out) / name
    if not path.exists():
        return False
    if _what(files.read_yaml(path, "restore it or pass another --out")) != _what(claim):
        raise ConfigError(f"{out} holds {what} made with another config; pass another --out")
    return True


def write_claim(out: Path, claim: dict, name: str = CLAIM) -> None:
    """Mark ``out`` as holding what ``claim`` describes (once: a resumed run finds it there)."""
    if not (Path(out) / name).exists():
        files.atomic_write_bytes(Path(out) / name, yaml.safe_dump(claim, sort_keys=False).encode())


def claim(out: Path, settings: dict, kind: str, name: str, own: Callable[[str], bool]) -> None:
    """Mark ``out`` (held by this process) as holding a ``kind`` made with ``settings``, or refuse it in one
    line where it holds a ``kind`` of other settings or a file a ``kind`` never writes (``own(name)`` is False:
    a user's folder). A directory of an older jaxfer, with the files but not the claim, is taken as it is."""
    plain = json.loads(json.dumps(settings, default=str))  # tuples and paths as YAML reads them back
    Path(out).mkdir(parents=True, exist_ok=True)
    if check_claim(out, plain, f"a {kind}", name):
        return
    other = next((p for p in Path(out).iterdir() if not (own(p.name) or p.name == LOCK)), None)
    if other is not None:
        raise ConfigError(f"{out} holds {other.name} and no {name}: not a jaxfer {kind} directory; pass another --out")
    write_claim(out, plain, name)


def slug(env_id: str) -> str:
    """The directory name of an env id's run ("catch/v0" -> "catch_v0")."""
    return env_id.replace("/", "_")


class Busy(ConfigError):
    """The directory is held by a live process (``holder``: its lock's contents, None while being written)."""

    def __init__(self, message: str, holder: dict | None):
        super().__init__(message)
        self.holder = holder


def _holder(path: Path) -> dict | None:
    """The lock's holder, or None while its holder is still writing it."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _gone(holder: dict | None) -> bool:
    """True only where the holder surely is not running: this host and no process with its pid, or
    another host and no heartbeat for ``STALE_S``."""
    if holder is None:
        return False
    if holder.get("host") != socket.gethostname():
        beat = holder.get("heartbeat")
        return isinstance(beat, (int, float)) and time.time() - beat > STALE_S
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, KeyError, ValueError, TypeError):
        return False
    return False


def holder(out: Path) -> dict | None:
    """Who holds ``out`` now: its lock's contents, or None if no live process holds it."""
    found = _holder(Path(out) / LOCK)
    return None if found is None or _gone(found) else found


def _acquire(path: Path, wait: bool, sweep: bool) -> dict:
    """Take the lock at ``path``; while a live process holds it, raise ``Busy`` or, with ``wait``, wait."""
    while True:
        try:
            return _try_acquire(path, sweep)
        except Busy:
            if not wait:
                raise
            time.sleep(POLL_S)


def _why_gone(holder: dict) -> str:
    if holder.get("host") == socket.gethostname():
        return "no longer running"
    return f"on {holder.get('host')}, no heartbeat for {time.time() - holder['heartbeat']:.0f} s"


def _try_acquire(path: Path, sweep: bool) -> dict:
    """Take the lock at ``path``; returns what it holds."""
    me = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
          "heartbeat": time.time()}
    me |= {"sweep": True} if sweep else {}
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _holder(path)
            if not _gone(holder):
                who = (f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('started')}" if holder
                       else "another process")
                raise Busy(f"{path.parent} is in use by {who}; wait for it to finish or pass another --out "
                           f"(if that process is gone, delete {path})", holder) from None
            aside = path.with_name(f"{LOCK}.{os.getpid()}")
            try:  # one taker wins the rename; the others find the lock gone and retry
                os.rename(path, aside)
            except FileNotFoundError:
                continue
            aside.unlink(missing_ok=True)
            print(f"jaxfer: {path.parent}: took over the lock of pid {holder['pid']} ({_why_gone(holder)})",
                  file=sys.stderr)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        return me
    raise ConfigError(f"{path.parent}: could not take its lock; try again")


@contextlib.contextmanager
def held(out: Path, wait: bool = False, sweep: bool = False):
    """Hold ``out``'s lock for the duration; a directory it had to create and that stayed empty is removed.

    While a live process holds it: ``Busy`` (one line naming the holder), or with ``wait`` wait for it.
    ``sweep`` marks the lock as a sweep worker's (see ``check_sweep``)."""
    out = Path(out)
    if jax.process_index() != 0 or out / LOCK in _HELD:
        yield
        return
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is not a directory; pass another --out")
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create {out}: {e.strerror}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ConfigError(f"{out} is not writable; pass another --out")
    mine = _acquire(out / LOCK, wait, sweep)
    _HELD[out / LOCK] = stop = threading.Event()
    threading.Thread(target=_beat, args=(out / LOCK, mine, stop), daemon=True).start()
    for partial in out.glob(f".*{files.PARTIAL}*"):  # a killed writer's temp files: nobody else writes here now
        partial.unlink(missing_ok=True)
    try:
        yield
    finally:
        with _WRITING:
            _HELD.pop(out / LOCK).set()
            (out / LOCK).unlink(missing_ok=True)
        if created and not any(out.iterdir()):
            out.rmdir()


def _beat(lock: Path, mine: dict, stop: threading.Event) -> None:
    """Refresh the heartbeat of a lock this process holds until ``stop`` is set."""
    while not stop.wait(HEARTBEAT_S):
        with _WRITING:
            if not stop.is_set():
                files.atomic_write_bytes(lock, json.dumps(mine | {"heartbeat": time.time()}).encode())


def release_all() -> None:
    """Give up every lock this process holds (a Ctrl-C or SIGTERM that ends the process at once)."""
    with _WRITING:
        for lock, stop in list(_HELD.items()):
            stop.set()
            lock.unlink(missing_ok=True)
            _HELD.pop(lock, None)


def check_sweep(out: Path) -> None:
    """A sweep worker may work in ``out``: it is not held by a process other than another of the sweep's
    workers (those hold it only while they write the results). Raises ``Busy`` naming the holder."""
    try:
        with held(out):
            pass
    except Busy as e:
        if e.holder is not None and not e.holder.get("sweep"):  # None: a lock being written this instant
            raise


class Finished(NamedTuple):
    """A finished run, rebuilt from its directory: its config, env, agent and params (seed axis first)."""

    cfg: TrainConfig
    env: envs.Env
    agent: agents.Agent
    params: Any

    @property
    def num_seeds(self) -> int:
        return len(jax.tree.leaves(self.params)[0])


def load_finished(path: Path, error: type[Exception] = ConfigError) -> Finished:
    """The run in directory ``path`` (or whose params.npz ``path`` names), for play, DPTL and sweeps: a
    missing or damaged file, or params of another network than its config names, is one ``error`` line."""
    run_dir = Path(path)
    run_dir = run_dir.parent if run_dir.name == PARAMS else run_dir
    if not (run_dir / PARAMS).is_file() or not (run_dir / CONFIG).is_file():
        raise error(f"no finished run at '{path}': expected a jaxfer run directory holding {PARAMS} and {CONFIG} "
                    f"(one written by `jaxfer train`)")
    try:
        cfg = config.load(run_dir / CONFIG)
    except files.DamagedFile:
        raise
    except ConfigError as e:
        raise error(f"{run_dir / CONFIG}: {e}") from None
    env = envs.make(cfg.env, cfg.obs)
    agent = agents.make_agent(cfg, env)
    obs = jax.ShapeDtypeStruct((1, *env.obs_shape), env.obs_dtype)
    shapes = jax.eval_shape(lambda k, o: agent.init(k, o, None).params, jax.random.PRNGKey(0), obs)
    num_seeds = len(next(iter(files.load_npz(run_dir / PARAMS).values())))
    like = jax.tree.map(lambda s: jax.ShapeDtypeStruct((num_seeds, *s.shape), s.dtype), shapes)
    try:
        params, _ = files.load_tree(run_dir / PARAMS, like)
    except (KeyError, ValueError) as e:
        if isinstance(e, files.DamagedFile):
            raise
        raise error(f"{run_dir / PARAMS} does not fit the {cfg.network} network of {cfg.agent} that "
                    f"{run_dir / CONFIG} names ({e.args[0]})") from None
    return Finished(cfg, env, agent, params)
