"""Device check for an accelerator: how far jaxfer's seed axis scales on one device, and how fast it runs.

Measures, each row with its compile seconds apart from the steady rate (one warm-up epoch, then timed ones):
1. Catch DQN (the embedded default config) at 1, 4, 16, ..., 4096 seeds, up to the largest that fits;
2. envpool's XLA step on the device, in a child process (envpool's GPU step has aborted whole processes:
   envpool issue #391); if it fails, the Atari rows are skipped and the rest still runs;
3. Atari DQN (configs/atari_dqn.yaml), A2C (configs/atari_a2c_ea3c.yaml) and A2C with SB3's defaults
   (Nature CNN, 5-step returns, RMSProp) at 1, 4, 16, 64 seeds, learning from step 0;
4. conv_impl "gemm" against "xla" ("auto" picks one per backend) for Catch DQN with the Nature CNN on
   84x84 pixels at 64 seeds;
5. DPTL's batched Grad-CAM + local threshold + SSIM on 10k frames (frames/s);
6. with ``--peers-quick SECONDS``, then ``benchmarks/peers.py --quick`` (rejax against jaxfer on this device, each
   in its own venv: an offline host needs rejax's wheels, e.g. ``PIP_NO_INDEX=1 PIP_FIND_LINKS=DIR``), its JSON
   beside this one's and its ratios (or why it did not run) in this one.
A seed count "does not fit" when jaxfer's memory checks refuse it (ConfigError: the state's size, checked
for every count up front, or the compiled epoch's working memory; on an accelerator from the device's own
memory stats): it is recorded and no larger count is tried.

Nothing measured can be lost: the JSON is written (atomically) after every row, so a kill at any moment
leaves every finished row. The budget is a hard wall-clock limit from the process's start: a row starts
only while its prediction fits in what is left of its share (the first row of each part has a
conservative prediction of its own, later rows scale the last one's), and a watchdog ends the process,
recording the row it cut off, once a row runs past the budget plus its own prediction. Every check
(memory, env construction) runs inside the same per-row guard, so one failure costs only its own rows.
The JSON records the device, its driver, its memory stats and every installed package's version.
Compile seconds include loading from a persistent compilation cache where one is set
(JAX_COMPILATION_CACHE_DIR, or jaxfer's own with --tiny); the JSON names it. Atari programs never hit it
(docs/performance.md says why).

Runs from a checkout with only the dependencies installed (it puts the checkout on sys.path itself):

    python benchmarks/accelerator.py --out DIR         # on the accelerator, < 7 min: DIR/accelerator_gpu.json
    python benchmarks/accelerator.py --out DIR/x.json  # the same, into that file
    python benchmarks/accelerator.py --tiny --out DIR  # the CPU smoke version (the test suite runs it)
"""
from __future__ import annotations

import time

STARTED = time.perf_counter()  # the budget counts from here: imports and backend start-up included

import argparse  # noqa: E402
import gc  # noqa: E402
import importlib.metadata  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's jaxfer, installed or not

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from jaxfer import (  # noqa: E402
    agents,
    backend,  # noqa: E402
    config,
    envs,
    mesh,  # noqa: E402
)
from jaxfer.code_path import CodePath  # noqa: E402
from jaxfer.dptl import gradcam, similarity  # noqa: E402
from jaxfer.errors import ConfigError  # noqa: E402
from jaxfer.networks.q_nets import make_network  # noqa: E402
from jaxfer.runtime import budget, files, seed_axis  # noqa: E402
from jaxfer.runtime.run import environment_info  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
DQN_YAML, A2C_YAML = ROOT / "configs/atari_dqn.yaml", ROOT / "configs/atari_a2c_ea3c.yaml"
DEFAULT_BUDGET_S = 300.0  # plus the longest first-row prediction: under 7 minutes
A2C_NATURE = ["obs=nature", "network=nature_ac", "core=dense", "n_steps=5", "optimizer=rmsprop", "lr=0.0007"]


def short(epoch_steps: int) -> list[str]:
    """One epoch of ``epoch_steps`` per seed, learning from step 0 (updates in every timed epoch, and
    one compiled variant), evaluation cut to one step."""
    return ["learning_starts=0", "eval_envs=1", "eval_steps=1", f"epoch_steps={epoch_steps}",
            f"total_steps={epoch_steps}"]


def plan(tiny: bool) -> dict:
    """What to measure: each ladder's config, overrides (all but seeds), seed counts, cumulative share of
    the budget (a ladder that stops early leaves its time to the next) and ``first_s``, the conservative
    prediction of its first row (compile from a cold cache, init and the epochs); the envpool probe's, the
    conv_impl comparison's and DPTL's predictions likewise. ``check_s``: a ladder's memory checks (env
    construction and ``jax.eval_shape`` per count). --tiny: small epochs, one or two seeds, 2 Atari envs
    and a small replay, predictions for this 2-core CPU."""
    atari = ["num_envs=2", "buffer_size=64"] if tiny else []
    few = [1] if tiny else [1, 4, 16, 64]
    ladders = {
        "catch_dqn": {"config": None, "overrides": short(64 if tiny else 1024), "share": 0.4,
                      "seeds": [1, 2] if tiny else [1, 4, 16, 64, 256, 1024, 4096], "first_s": 40 if tiny else 60},
        "atari_dqn": {"config": DQN_YAML, "overrides": short(16 if tiny else 400) + atari, "seeds": few,
                      "share": 0.55, "first_s": 60 if tiny else 90},
        "atari_a2c": {"config": A2C_YAML, "overrides": short(640) + atari, "seeds": few, "share": 0.7,
                      "first_s": 120},
        "atari_a2c_nature": {"config": A2C_YAML, "overrides": short(40 if tiny else 640) + atari + A2C_NATURE,
                             "seeds": few, "share": 0.8, "first_s": 60 if tiny else 90},
    }
    for spec in ladders.values():
        spec["check_s"] = 10 if spec["config"] is None else 20
    left_out = []
    if tiny:
        del ladders["atari_a2c"]
        left_out.append({"what": "atari_a2c", "why": "not in --tiny: its LSTM network compiles slowest on XLA CPU"})
    # tiny: the Catch grid network, whose gemm variant is catch_dqn's seeds=1 program (a compilation cache hit)
    conv = short(64) + ["seeds=1"] if tiny else short(256) + ["obs=pixels84", "network=nature_cnn",
                                                               "buffer_size=2000", "seeds=64"]
    return {"ladders": ladders, "conv": conv, "conv_s": 40 if tiny else 90, "envpool_s": 60,
            "dptl_frames": 200 if tiny else 10_000, "dptl_s": 40 if tiny else 60, "left_out": left_out}


class Clock:
    """The global time budget, from the process's start. A measurement already running is not stopped by
    it, so each one may start only while its predicted duration fits in what is left of its share."""

    def __init__(self, budget_s: float, start: float = STARTED):
        self.start, self.budget_s = start, budget_s

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def refuse(self, share: float, predicted_s: float) -> str | None:
        """Why a measurement may not start before ``share`` x the budget has passed; None if it may."""
        left = share * self.budget_s - self.elapsed()
        if left <= 0:
            return f"time budget spent ({self.elapsed():.0f} s, this part may run until {share * self.budget_s:.0f} s)"
        if predicted_s > left:
            return f"predicted to take {predicted_s:.0f} s, only {left:.0f} s of the budget left for it"
        return None


class Record:
    """The results so far, written to ``path`` (atomically) after every change, so that a kill at any
    moment leaves every finished row. The watchdog thread writes too, hence the lock."""

    def __init__(self, path: Path, clock: Clock, head: dict):
        self.path, self.clock, self.lock = path, clock, threading.RLock()
        self.data = head | {"skipped": [], "wall_s": 0.0, "finished": False}

    def save(self) -> None:
        with self.lock:
            self.data["wall_s"] = round(self.clock.elapsed(), 1)
            files.write_json(self.path, self.data)

    def put(self, path: tuple, value) -> None:
        """``data[path[0]]...[path[-1]] = value``, saved and printed (one JSON line per row)."""
        with self.lock:
            where = self.data
            for key in path[:-1]:
                where = where.setdefault(key, {})
            where[path[-1]] = value
            self.save()
        print(json.dumps({".".join(map(str, path)): value}), flush=True)

    def skip(self, what: str, why: str) -> None:
        with self.lock:
            self.data["skipped"].append({"what": what, "why": why})
            self.save()
        print(json.dumps({"skipped": what, "why": why}), flush=True)


class Watchdog:
    """Ends the process, recording the row it cuts off, once a row runs past the budget plus its own
    prediction: XLA compilations and device programs cannot be interrupted from Python."""

    def __init__(self, record: Record):
        self.record, self.timer = record, None

    def arm(self, what: str, predicted_s: float) -> None:
        clock = self.record.clock
        limit = clock.budget_s + predicted_s

        def cut() -> None:
            self.record.skip(what, f"cut off: still running {clock.elapsed():.0f} s after the start, past the "
                                   f"budget ({clock.budget_s:.0f} s) plus its prediction ({predicted_s:.0f} s)")
            os._exit(3)

        self.timer = threading.Timer(max(0.0, limit - clock.elapsed()), cut)
        self.timer.daemon = True
        self.timer.start()

    def disarm(self) -> None:
        self.timer.cancel()


def attempt(what: str, fn, clock: Clock, record: Record, share: float = 1.0, predicted_s: float = 0.0):
    """``fn()`` under the watchdog, or None with the reason recorded: over budget, does not fit, or failed."""
    why = clock.refuse(share, predicted_s)
    if why is None:
        watchdog = Watchdog(record)
        watchdog.arm(what, predicted_s)
        try:
            return fn()
        except ConfigError as e:
            why = f"refused: {e}"  # the memory checks: it does not fit
        except Exception as e:  # on a borrowed device one failure must not cost every later row
            why = f"failed: {type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:300]}"
        finally:
            watchdog.disarm()
            gc.collect()  # the last run's device buffers go before the next one's memory check
    record.skip(what, why)
    return None


def memory_stats() -> dict | None:
    """The first device's own memory stats (an accelerator's; XLA CPU gives none)."""
    stats = jax.devices()[0].memory_stats()
    keep = ("bytes_limit", "bytes_in_use", "peak_bytes_in_use", "bytes_reservable_limit")
    return {k: stats[k] for k in keep if k in stats} if stats else None


def timed_epochs(cfg: config.TrainConfig, epochs: int) -> dict:
    """The run's memory check (as jaxfer.runtime.run does), state init, compile, one warm-up epoch, ``epochs``
    timed ones. init_s holds the init's own compilation and the envs' creation."""
    start = time.perf_counter()
    env = envs.make(cfg.env, cfg.obs)
    agent = agents.make_agent(cfg, env)
    needs = budget.estimate(agent, env, cfg.num_envs, cfg.seeds, cfg.eval_envs)
    budget.check(needs)
    trainer = agents.make_trainer(cfg, env, agent=agent)
    state = jax.block_until_ready(trainer.init(mesh.seed_keys(cfg.seed, cfg.seeds)))
    init_s = time.perf_counter() - start
    epoch, _ = seed_axis.compile_trainer(trainer, state, cfg.strategy)
    tick = time.perf_counter()
    state, metrics = epoch(state)
    jax.block_until_ready(metrics)
    warmup_s, tick = time.perf_counter() - tick, time.perf_counter()
    for _ in range(epochs):
        state, metrics = epoch(state)
    mesh.fetch(metrics, cfg.seeds)
    steady_s = time.perf_counter() - tick
    strategy = epoch.strategy
    return {"seeds": cfg.seeds, "strategy": strategy, "state_gib_per_device": round(needs["per_device"] / 2**30, 3),
            "init_s": round(init_s, 2), "compile_s": round(epoch.compile_seconds, 2),
            "warmup_epoch_s": round(warmup_s, 2),
            "env_steps_per_s": round(cfg.seeds * cfg.epoch_steps * epochs / steady_s, 1),
            "steady_s": round(steady_s, 2), "wall_s": round(time.perf_counter() - start, 2),
            "device_memory": memory_stats()}


def predict(rows: list[dict], num_seeds: int, first_s: float) -> float:
    """Seconds of the next row: ``first_s`` for the first; then the last one's compile again, and the
    rest scaled by the seed count."""
    if not rows:
        return first_s
    last = rows[-1]
    return last["compile_s"] + (last["wall_s"] - last["compile_s"]) * num_seeds / last["seeds"]


def fitting(name: str, spec: dict, record: Record) -> list[int]:
    """The ladder's seed counts whose state passes jaxfer's memory check (shapes only, nothing allocated);
    the first that does not is recorded. Checked up front, so that the largest count that fits is known
    even where the budget stops the ladder below it."""
    for i, s in enumerate(spec["seeds"]):
        cfg = config.load(spec["config"], spec["overrides"] + [f"seeds={s}"])
        env = envs.make(cfg.env, cfg.obs)
        try:
            budget.check(budget.estimate(agents.make_agent(cfg, env), env, cfg.num_envs, s, cfg.eval_envs))
        except ConfigError as e:
            record.skip(f"{name} seeds={spec['seeds'][i:]}", f"refused: {e}")
            return spec["seeds"][:i]
    return spec["seeds"]


def ladder(name: str, spec: dict, epochs: int, clock: Clock, record: Record) -> None:
    """Rows at growing seed counts, up to the first that does not fit in memory or in the budget."""
    counts = attempt(f"{name} (memory check)", lambda: fitting(name, spec, record), clock, record, spec["share"],
                     spec["check_s"])
    if counts is None:
        return
    record.put((name,), {"config": str(spec["config"] or "embedded default"), "overrides": spec["overrides"],
                         "largest_seeds_within_memory_check": counts[-1] if counts else None, "rows": []})
    rows = []
    for i, s in enumerate(counts):
        cfg = config.load(spec["config"], spec["overrides"] + [f"seeds={s}"])
        predicted = predict(rows, s, spec["first_s"])
        row = attempt(f"{name} seeds={counts[i:]}", lambda: timed_epochs(cfg, epochs), clock, record, spec["share"],
                      predicted)
        if row is None:
            break
        rows.append(row | {"predicted_s": round(predicted, 1)})
        record.put((name, "rows"), rows)
        record.put((name, "largest_seeds_run"), s)


def probe_envpool() -> dict:
    """envpool's XLA step on the default device, as jaxfer runs it: a Pong pool stepped in a jitted
    ``lax.scan``. Run in a child process (``--probe-envpool``), since a failing GPU step may abort it."""
    mesh.use_devices(1)
    pool = envs.pool(envs.make("atari/Pong", "nature"), 1, 2, 0)
    state, _ = pool.reset(mesh.seed_keys(0, 1))

    def body(state, actions):
        state, obs, reward, done, info = pool.step(state, actions)
        return state, obs.astype(jnp.float32).mean()

    start = time.perf_counter()
    _, means = jax.block_until_ready(jax.jit(lambda s, a: jax.lax.scan(body, s, a))(state, jnp.zeros((8, 1, 2),
                                                                                                      jnp.int32)))
    return {"device": str(means.devices()), "steps": 8, "obs_means": [round(float(m), 2) for m in means],
            "compile_and_run_s": round(time.perf_counter() - start, 2)}


def envpool_in_child(timeout_s: float) -> dict:
    """``probe_envpool`` in a child process: its result, or a RuntimeError naming how the child ended."""
    # this process holds jax's preallocated share of the GPU's memory: the child allocates what it uses
    env = os.environ | {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    try:
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--probe-envpool"], env=env,
                              capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"envpool's XLA step did not finish within {timeout_s:.0f} s in a child process") from None
    last = (proc.stdout.strip().splitlines() or [""])[-1]
    if proc.returncode != 0 or not last.startswith("{"):
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]
        raise RuntimeError(f"envpool's XLA step ended its child process with exit code {proc.returncode}: {tail}")
    return json.loads(last)


def dptl_rate(num_frames: int) -> dict:
    """Frames/s of DPTL's batched pipeline (Grad-CAM of a Nature CNN, local threshold, SSIM), as
    benchmarks/dptl_throughput.py times it, without its per-frame scikit-image reference loop."""
    net = make_network("nature_cnn", 6)
    obs = jax.random.randint(jax.random.PRNGKey(0), (num_frames, 84, 84, 4), 0, 256).astype(jnp.uint8)
    params = net.init(jax.random.PRNGKey(1), obs[:1])
    frames = obs[..., -1].astype(jnp.float32) / 255.0
    start = time.perf_counter()
    fn = jax.jit(lambda o, f: similarity.cam_mask_ssim(gradcam.cams(net, params, o), f)).lower(obs, frames).compile()
    compile_s = time.perf_counter() - start
    jax.block_until_ready(fn(obs, frames))
    start = time.perf_counter()
    jax.block_until_ready(fn(obs, frames))
    return {"frames": num_frames, "compile_s": round(compile_s, 2),
            "frames_per_s": round(num_frames / (time.perf_counter() - start), 1)}


def peers_quick(out: Path, limit_s: float) -> dict:
    """``benchmarks/peers.py --quick`` in a child process, stopped after ``limit_s``: its ratios per row (or
    errors), from the JSON it writes after every reading."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "peers.py"), "--quick", "--timeout", str(max(1, int(limit_s))),
           "--out", str(out)]
    # this process's backend keeps its preallocated share of an accelerator's memory: the child's runs take
    # what they need from the rest
    env = os.environ | {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env,
                             start_new_session=True)  # its group: a venv build's pip goes with it
    try:
        err = child.communicate(timeout=limit_s)[1].strip()
        ended = f"exit {child.returncode}" + (f": {err.splitlines()[-1][:300]}" if child.returncode and err else "")
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        ended = f"stopped after {limit_s:.0f} s (--peers-quick)"
    rows = json.loads(out.read_text())["rows"] if out.exists() else []
    return {"json": out.name, "ended": ended,
            "jaxfer_over_peer": {r["id"]: r["jaxfer_over_peer"] for r in rows if r["jaxfer_over_peer"] is not None},
            "errors": {r["id"]: r["errors"] for r in rows if r["errors"]}}


def driver() -> str | None:
    """The accelerator's driver, as nvidia-smi (or the kernel module) reports it; None where there is none."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    version = Path("/proc/driver/nvidia/version")
    return version.read_text().splitlines()[0] if version.exists() else None


def machine() -> dict:
    """The device (name, platform version, driver, memory stats) and every installed package's version."""
    dev = jax.devices()[0]
    packages = {d.metadata["Name"]: d.version for d in importlib.metadata.distributions() if d.metadata["Name"]}
    return {"device_name": f"{dev.platform}: {dev.device_kind}", **environment_info(),
            "platform_version": dev.client.platform_version, "driver": driver(), "device_memory": memory_stats(),
            "packages": dict(sorted(packages.items(), key=lambda kv: kv[0].lower())),
            "jaxfer_source": [str(p) for p in sys.modules["jaxfer"].__path__]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="the CPU smoke version: seeds 1-2, tiny epochs, 200 frames")
    p.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S,
                   help="hard limit in seconds from the start: no row starts unless its prediction fits, and a row "
                        "still running at this plus its own prediction ends the process (default 300: with the "
                        "longest first-row prediction, under 7 min on a cold cache)")
    p.add_argument("--epochs", type=int, default=2, help="timed epochs after the warm-up epoch")
    p.add_argument("--out", type=Path, default=RESULTS,
                   help="folder of accelerator_<platform>[_tiny].json, or a .json file (default: benchmarks/results)")
    p.add_argument("--peers-quick", type=float, default=0.0, metavar="SECONDS",
                   help="then benchmarks/peers.py --quick for at most SECONDS, beside the JSON (default 0: not run)")
    p.add_argument("--probe-envpool", action="store_true", help=argparse.SUPPRESS)  # the child process
    args = p.parse_args()
    if args.probe_envpool:
        print(json.dumps(probe_envpool()), flush=True)
        return
    if args.budget_s < 0 or args.epochs < 1 or args.peers_quick < 0:
        p.error("--budget-s and --peers-quick must be >= 0 and --epochs >= 1")
    into_file = args.out.suffix == ".json"
    if (into_file and args.out.is_dir()) or (not into_file and args.out.exists() and not args.out.is_dir()):
        p.error(f"--out must be a folder or a .json file, got {args.out}")
    if args.tiny:  # a smoke test: reruns may load programs from jaxfer's compilation cache (as its CLI does)
        backend.enable_compilation_cache()
    todo = plan(args.tiny)
    clock = Clock(args.budget_s)
    platform = jax.devices()[0].platform
    path = args.out if into_file else args.out / f"accelerator_{platform}{'_tiny' if args.tiny else ''}.json"
    record = Record(path, clock,
                    {"benchmark": "accelerator", **machine(), "tiny": args.tiny, "budget_s": args.budget_s,
                     "timed_epochs": args.epochs, "compilation_cache": jax.config.jax_compilation_cache_dir})
    for item in todo["left_out"]:
        record.skip(item["what"], item["why"])

    for name, spec in todo["ladders"].items():
        if name == "atari_dqn":  # the first Atari row: envpool's step on the device, in a child process first
            probe = attempt("envpool XLA step (child process)", lambda: envpool_in_child(todo["envpool_s"]), clock,
                            record, spec["share"], todo["envpool_s"])
            if probe is None:
                for atari in [n for n in todo["ladders"] if n.startswith("atari")]:
                    record.skip(atari, "not run: the envpool probe before it did not pass (see above)")
                break
            record.put(("envpool_probe",), probe)
        ladder(name, spec, args.epochs, clock, record)
    record.put(("conv_impl",), {"auto_means": CodePath.of().conv_impl, "overrides": todo["conv"]})
    previous_s = todo["conv_s"]
    for impl in ("gemm", "xla"):
        cfg = config.load(None, todo["conv"] + [f"conv_impl={impl}"])
        row = attempt(f"conv_impl={impl}", lambda: timed_epochs(cfg, args.epochs), clock, record, 0.9, previous_s)
        if row is not None:
            record.put(("conv_impl", impl), row | {"predicted_s": round(previous_s, 1)})
            previous_s = max(previous_s, row["wall_s"])
    dptl = attempt("dptl", lambda: dptl_rate(todo["dptl_frames"]), clock, record, 1.0, todo["dptl_s"])
    if dptl is not None:
        record.put(("dptl",), dptl | {"predicted_s": todo["dptl_s"]})

    if args.peers_quick:
        record.put(("peers_quick",), peers_quick(path.with_name(f"peers_quick_{platform}.json"), args.peers_quick))
    with record.lock:
        record.data["finished"] = True
        record.save()
    skipped = record.data["skipped"]
    print(f"wrote {record.path} in {clock.elapsed():.0f} s; skipped: {len(skipped)}")
    sys.exit(1 if any(s["why"].startswith("failed") for s in skipped) else 0)


if __name__ == "__main__":
    main()
