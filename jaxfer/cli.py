"""``jaxfer`` command line. User mistakes end with one line on stderr and exit status 2."""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import math
import os
import signal
import sys
import threading
from pathlib import Path

from jaxfer.errors import JaxferError
from jaxfer.runtime import supervisor

JOIN_TIMEOUT_S = 60  # how long a process of a multi-process run waits for the coordinator
DEFAULT_NAME = "catch_dqn"  # the embedded default is TrainConfig's defaults (configs/catch_dqn.yaml spells it out)


class _Parser(argparse.ArgumentParser):
    """argparse with cli.py's one-line errors: no usage block (``--help`` still prints it)."""

    def error(self, message: str):
        self.exit(2, f"jaxfer: error: {message} (see {self.prog} --help)\n")


def _count(text: str) -> int:
    """An option's whole number >= 1 (argparse names the option in the error)."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got '{text}'")
    return int(text)


def _fraction(text: str) -> float:
    """An option's share in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1], got '{text}'")
    return value


def _add_distributed(p: argparse.ArgumentParser, default=None) -> None:
    """Options of a multi-process run (before or after the subcommand)."""
    g = p.add_argument_group("devices and processes (every process of a multi-process run runs the same command)")
    g.add_argument("--devices", type=int, metavar="N", default=default,
                   help="use N devices, the first N/processes of each process (default: all)")
    g.add_argument("--distributed", action="store_true", default=default,
                   help="join a multi-process run; without the three options below jax detects the cluster "
                        "(SLURM, Open MPI, ...)")
    g.add_argument("--coordinator", metavar="HOST:PORT", default=default, help="address of process 0")
    g.add_argument("--num-processes", type=int, metavar="N", default=default, help="processes in the run")
    g.add_argument("--process-id", type=int, metavar="I", default=default, help="this process, 0 .. N-1")
    g.add_argument("--join-timeout", type=_count, metavar="S", default=default,
                   help=f"seconds to wait for the coordinator (default {JOIN_TIMEOUT_S})")


def _add_sweep_runs(p: argparse.ArgumentParser) -> None:
    """How a sweep's runs are trained: here, on Ray, or one at a time by any scheduler."""
    g = p.add_argument_group("runs of the sweep (each a resumable directory, trained once; workers may share --out)")
    g.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local: this process (default); ray: each run a Ray task (pip install 'jaxfer[ray]')")
    g.add_argument("--ray-address", metavar="ADDR", help="a running Ray cluster (default: start one of this machine)")
    g.add_argument("--ray-cpus", type=_count, metavar="N", help="CPUs of the Ray cluster started here (default: all)")
    g.add_argument("--run-cpus", type=float, default=1.0, metavar="C", help="CPUs each Ray task holds (default 1)")
    g.add_argument("--run-gpus", type=float, default=0.0, metavar="G",
                   help="GPUs each Ray task holds (default 0); a fraction, e.g. 0.25, packs runs on one GPU")
    g.add_argument("--list-runs", action="store_true",
                   help="print the runs (stage, state, what each starts from) and exit")
    g.add_argument("--run", metavar="NAME", help="train only this run, if the runs it needs have finished")


def _keys(command: str) -> str:
    """The config keys of ``command``, listed under its --help (built only when help is asked for)."""
    from jaxfer import config
    if command == "train":
        return "config keys (YAML or key=value):\n" + config.describe_keys(config.TrainConfig)
    if command == "transfer":
        from jaxfer.transfer import sweep
        return ("sweep keys (YAML; key=value overrides go to its train section):\n"
                + config.describe_keys(sweep.SweepConfig) + "\n  distill keys:\n"
                + config.describe_keys(sweep.DistillSpec, "  "))
    if command == "dptl":
        from jaxfer.dptl import pipeline
        return "DPTL keys (YAML):\n" + config.describe_keys(pipeline.DPTLConfig)
    from jaxfer.segment import config as segment_config

    return ("segment keys (YAML):\n" + config.describe_keys(segment_config.SegmentConfig) + "\n  ddqn keys:\n"
            + config.describe_keys(segment_config.DDQNConfig, "  "))


LISTS = ("envs", "agents", "networks", "modes", "cams", "configs")


def _parser(keys_for: str | None = None) -> argparse.ArgumentParser:
    """The CLI; ``keys_for`` names the subcommand whose --help also lists every config key."""
    from importlib.metadata import version

    p = _Parser(prog="jaxfer", description="Transfer learning for deep RL, in JAX.")
    p.add_argument("--version", action="version", version=f"jaxfer {version('jaxfer')}")
    _add_distributed(p)
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, **kw) -> argparse.ArgumentParser:
        epilog = _keys(name) if name == keys_for else None
        return sub.add_parser(name, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter, **kw)

    t = command("train", help="train agents (DQN, Double DQN, DQV, DQV-Max, A2C), all seeds at once")
    t.add_argument("config", nargs="?", help="YAML config (default: the embedded Catch DQN config)")
    t.add_argument("overrides", nargs="*", metavar="key=value", help="override config entries")
    t.add_argument("--seeds", type=int, help="number of seeds (overrides the config)")
    t.add_argument("--out", type=Path, help="results directory (default: runs/<config name>)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--track", action="store_true", help="also send the metrics to Weights & Biases (jaxfer[track])")
    x = command("transfer", help="a transfer sweep: sources, (source, target, mode) cells, scratch baselines")
    x.add_argument("config",
                   help="sweep YAML (sources, targets, modes, pairs, window, train, source_checkpoints, distill)")
    x.add_argument("overrides", nargs="*", metavar="key=value", help="override the training config (optional)")
    x.add_argument("--out", type=Path, help="sweep directory (default: runs/<config name>)")
    x.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add_sweep_runs(x)
    d = command("dptl", help="DPTL transferability scores of one source model on target games")
    d.add_argument("config", help="DPTL YAML (source, targets, frames, layer, method, threshold, bootstrap)")
    d.add_argument("--out", type=Path, help="results directory (default: runs/<config name>)")
    d.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = sub.add_parser("gradcam", help="what an agent attends to over an episode: PNG strip and GIF of CAM overlays")
    g.add_argument("checkpoint", help="a jaxfer run directory (or its params.npz)")
    g.add_argument("game", help="env id the agent plays, in its observation mode")
    g.add_argument("--steps", type=int, help="play this many steps (default: one game)")
    g.add_argument("--seed-index", type=int, default=0, help="which seed's agent of the run (default 0)")
    g.add_argument("--layer", help="conv layer (default: the last)")
    g.add_argument("--method", default="gradcam", help="gradcam, gradcam++ or eigencam")
    g.add_argument("--out", type=Path, default=Path("runs/gradcam"), help="output directory (default: runs/gradcam)")
    s = command("segment", help="segmentation pre-training: label frames, train FCNs, transfer them into Double DQNs")
    s.add_argument("config", help="segment YAML (env, labels, frames, fcn, ddqn: variants, train)")
    s.add_argument("--out", type=Path, help="results directory (default: runs/<config name>)")
    s.add_argument("--no-progress", action="store_true", help="no progress bars")
    for writer in (t, x, d, s):
        writer.add_argument("--dry-run", action="store_true",
                            help="print the resolved config (a sweep: its runs), the memory estimate, and exit")
    pl = sub.add_parser("play", help="the greedy agent of a finished run plays N games: mean score, GIF")
    pl.add_argument("run", help="a finished jaxfer run directory")
    pl.add_argument("game", nargs="?", help="env id to play (default: the run's own game)")
    pl.add_argument("--episodes", type=int, default=10, help="games played (default 10)")
    pl.add_argument("--gif", type=Path, help="write the first game as an animated GIF here")
    pl.add_argument("--seed-index", type=int, default=0, help="which seed's agent of the run (default 0)")
    pr = sub.add_parser("predict", help="model-based transfer predictors of one source run on target games")
    pr.add_argument("source", help="a finished jaxfer run directory (the source model, all its seeds)")
    pr.add_argument("targets", nargs="+", metavar="TARGET", help="env ids, played in the source's observation mode")
    pr.add_argument("--mode", required=True, help="the transfer mode, as a sweep names it (e.g. first_n:2:frozen)")
    pr.add_argument("--transitions", type=_count, help="random-policy target transitions per fit / held-out set "
                    "(default 2048)")
    pr.add_argument("--sgd-steps", type=_count, help="gradient steps of the trainability probe (default 200)")
    pr.add_argument("--early-fraction", type=_fraction, help="share of the source run's training budget that "
                    "early_r trains, transferred and from scratch (default 0.05)")
    pr.add_argument("--only", nargs="+", metavar="NAME", help="compute only these predictors (default: all; "
                    "early_r trains, the others take seconds)")
    pr.add_argument("--out", type=Path, help="also write the rows here as JSON")
    rp = sub.add_parser("report", help="report.md + self-contained report.html of run, sweep and DPTL directories")
    rp.add_argument("dirs", nargs="+", metavar="DIR", help="run, sweep or DPTL directories (several: side by side)")
    rp.add_argument("--out", type=Path, default=Path("report"), help="where the report goes (default: report/)")
    lst = sub.add_parser("list", help="what jaxfer knows: " + ", ".join(LISTS))
    lst.add_argument("what", choices=LISTS)
    for each in (t, x, d, g, s, pl, pr, rp):
        _add_distributed(each, argparse.SUPPRESS)  # also accepted after the subcommand
    return p


def _dptl(args) -> int:
    from jaxfer.dptl import pipeline
    from jaxfer.runtime import rundir
    cfg = pipeline.load(args.config)
    out = args.out or Path("runs") / Path(args.config).stem
    if args.dry_run:
        return _print_config(cfg, out)
    with rundir.held(out):
        rows = pipeline.run_dptl(cfg, out, progress=not args.no_progress)
    _say(f"{out}: DPTL of {cfg.source} (seed {cfg.source_seed}) on {cfg.frames} frames per target")
    _say(f"  {'rank':>4}  {'target':<24} {'score':>6}  95% CI")
    for r in sorted(rows, key=lambda r: r["rank"]):
        _say(f"  {r['rank']:>4}  {r['target']:<24} {r['score']:6.3f}  [{r['ci_low']:.3f}, {r['ci_high']:.3f}]")
    return 0


def _predict(args) -> int:
    from jaxfer.runtime import files
    from jaxfer.transfer import predictors
    _devices_for(args, 1)  # the target's envs run as one seed; the source's seeds are vmapped
    source = predictors.load_source(args.source, args.mode)
    given = {"transitions": args.transitions, "sgd_steps": args.sgd_steps, "early_fraction": args.early_fraction}
    pcfg = predictors.PredictConfig(**{k: v for k, v in given.items() if v is not None})
    names = [k for k in predictors.PREDICTORS if k in (args.only or predictors.PREDICTORS)]
    rows = predictors.predict(source, args.targets, pcfg, args.only or predictors.PREDICTORS)
    _say(f"{args.source} ({args.mode}, {source.seeds} seeds), {rows[0]['layer']}; seconds per pair after compiling"
         + (f"; early_r: the first {rows[0]['early_steps']} steps, {rows[0]['early_epochs']} evaluations"
            if "early_r" in names else ""))
    _say(f"  {'target':<24}" + "".join(f"{k:>15}" for k in names))
    for r in rows:
        _say(f"  {r['target']:<24}" + "".join(f"{r[k]:>+15.4f}" for k in names))
        _say(f"  {'  seconds':<24}" + "".join(f"{r['seconds'][k]:>15.2f}" for k in names))
    if args.out:
        files.write_json(args.out, {"source": args.source, "mode": args.mode, "rows": rows})
    return 0


def _gradcam(args) -> int:
    from jaxfer.dptl import pipeline
    done = pipeline.gradcam_episode(args.checkpoint, args.game, args.out, steps=args.steps,
                                       seed_index=args.seed_index, layer=args.layer, method=args.method)
    _say(f"{done['png']}, {done['gif']}: {done['layer']} over {done['steps']} steps")
    return 0


def _segment(args) -> int:
    from jaxfer.runtime import rundir
    from jaxfer.segment import config as seg_config
    from jaxfer.segment import pipeline

    cfg = seg_config.load(args.config)
    out = args.out or Path("runs") / Path(args.config).stem
    if args.dry_run:
        return _print_config(cfg, out)
    with rundir.held(out):  # each DDQN run below also holds its own directory
        summary = pipeline.run_segment(cfg, out, progress=not args.no_progress)
    fcn = summary["fcn"]
    if "pixel_accuracy" in fcn:
        _say(f"{out}: FCN test pixel accuracy {fcn['pixel_accuracy']['mean']:.4f}, "
             f"mean IoU {fcn['mean_iou']['mean']:.4f} ({cfg.fcn.seeds} seeds)")
    for r in summary.get("area_ratios", []):
        _say(f"  {r['variant']:>9} vs {r['reference']:<8} R = {r['area_ratio']:+.3f} "
             f"[{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]")
    return 0


def _transfer(args) -> int:
    from jaxfer.errors import ConfigError
    from jaxfer.transfer import executors, sweep

    _once(args.overrides)
    cfg = sweep.load(args.config, args.overrides)
    _devices_for(args, cfg.train.seeds)
    out = args.out or Path("runs") / Path(args.config).stem
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out '{out}' is not a directory")
    if sum(map(bool, (args.dry_run, args.list_runs, args.run))) > 1:
        raise ConfigError("--dry-run, --list-runs and --run each do one thing: give one of them")
    if args.executor != "ray" and (args.ray_address or args.ray_cpus):
        raise ConfigError("--ray-address and --ray-cpus are for --executor ray")
    if args.dry_run:  # the memory estimate is of one run (the first target's)
        return _dry_run(dataclasses.replace(cfg.train, env=cfg.targets[0]), out,
                        [(r.name, [r.origin] if r.origin else []) for r in sweep.run_graph(cfg)])
    if args.list_runs:
        _say("\n".join(executors.describe(cfg, out)))
        return 0
    if args.run:
        if args.executor != "local":
            raise ConfigError("--run trains one run in this process; drop --executor")
        trained = executors.run_one(cfg, out, args.run, progress=not args.no_progress)
        _say(f"{out / args.run}: {'trained' if trained else 'done already'}")
        return 0
    if not 0 < args.run_cpus + args.run_gpus < math.inf or min(args.run_cpus, args.run_gpus) < 0:
        raise ConfigError("--run-cpus and --run-gpus must be finite numbers >= 0, and not both 0")
    ray = executors.RayOptions(args.ray_address, args.ray_cpus, args.run_cpus, args.run_gpus)
    ratios = executors.run_sweep(cfg, out, not args.no_progress, args.executor, ray)
    size = sum(p.stat().st_size for p in Path(out).rglob("*") if p.is_file())
    _say(f"{out}: {len(ratios)} cells, {size / 2**20:.1f} MiB on disk")
    width = max(len(r["source"]) for r in ratios)  # "<game>+distill" sources are longer
    for r in ratios:
        _say(f"  {r['source']:>{width}} -> {r['target']:<10} {r['mode']:<18} R = {r['area_ratio']:+.3f} "
             f"[{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]")
    return 0


def _once(overrides: list[str]) -> None:
    """Refuse a key given twice among the command line's overrides: the last would win in silence."""
    from jaxfer.config import repeated
    from jaxfer.errors import ConfigError
    twice = repeated(o.partition("=")[0].strip() for o in overrides)
    if twice:
        given = [o for o in overrides if o.partition("=")[0].strip() == twice[0]]
        raise ConfigError(f"'{twice[0]}' is given twice ({given[0]} and {given[1]}): give it once")


def _train(args) -> int:
    from jaxfer import config
    if args.config is not None and "=" in args.config and not Path(args.config).exists():
        args.overrides.insert(0, args.config)  # `jaxfer train key=value` with the embedded config
        args.config = None
    _once(args.overrides)
    both = [o for o in args.overrides if o.partition("=")[0].strip() == "seeds"]
    if args.seeds is not None and both:
        raise config.ConfigError(f"--seeds {args.seeds} and {both[0]} both set seeds: give one")
    overrides = list(args.overrides) + ([f"seeds={args.seeds}"] if args.seeds is not None else [])
    cfg = config.load(args.config, overrides)
    _devices_for(args, cfg.seeds)
    out = args.out or Path("runs") / (Path(args.config).stem if args.config else DEFAULT_NAME)
    if args.dry_run:
        return _dry_run(cfg, out)
    from jaxfer.runtime import plots, run
    if args.track and importlib.util.find_spec("wandb") is None:
        raise config.ConfigError("--track needs Weights & Biases: pip install 'jaxfer[track]'")
    summary = run.train(cfg, out, progress=not args.no_progress, track=args.track)
    mean = summary["final"]["mean"]
    headline = plots.curve_metric([mean])
    done = "already finished" if summary.get("already_finished") else "finished"
    _say(f"{out}: {done}; {cfg.seeds} seeds, final {headline} {mean[headline]:.3f} (seed mean); "
         f"{summary['steady_env_steps_per_s']} env steps/s after {summary['compile_seconds']} s compile")
    return 0


def _say(text: str) -> None:
    """Results on stdout, once per run: from process 0 of a multi-process run."""
    import jax

    if jax.process_index() == 0:
        print(text)


def _joins(args) -> bool:
    """Is this a process of a multi-process run?"""
    return bool(args.distributed) or any(v is not None for v in (args.coordinator, args.num_processes,
                                                                 args.process_id))


def _start(args) -> None:
    """Join the processes of a multi-process run (before anything touches the backend) and turn on the
    persistent compilation cache."""
    from jaxfer import backend
    if _joins(args):
        backend.initialize_distributed(args.coordinator, args.num_processes, args.process_id,
                                       timeout_s=args.join_timeout or JOIN_TIMEOUT_S)
    else:
        backend.host_devices(args.devices)
    backend.enable_compilation_cache()


def _devices_for(args, num_seeds: int) -> None:
    """Without --devices, a single-process run uses min(seeds, devices) devices: a one-seed run stays on
    one device instead of computing a padded copy on the others."""
    import jax

    from jaxfer import mesh
    if args.devices is None and jax.process_count() == 1:
        mesh.use_devices(min(num_seeds, jax.device_count()))


def _dry_run(cfg, out: Path, graph: list | None = None) -> int:
    """What a run of ``cfg`` (a TrainConfig) into ``out`` would be, without writing anything."""
    import yaml

    from jaxfer import agents, config, envs, mesh
    from jaxfer.code_path import CodePath
    from jaxfer.runtime import budget
    env = envs.make(cfg.env, cfg.obs)
    path = CodePath.from_config(cfg)
    needs = budget.estimate(agents.make_agent(cfg, env, path=path), env, cfg.num_envs, cfg.seeds, cfg.eval_envs)
    _say(f"# {out} (dry run: nothing written)\n" + yaml.safe_dump(config.to_dict(cfg), sort_keys=False).rstrip())
    _say(f"# code path: {path.describe()}; {cfg.seeds} seeds on {mesh.device_count()} device(s) "
         f"({mesh.padded(cfg.seeds)} computed)\n# {budget.describe(needs)}")
    for run_dir, needs_runs in graph or []:
        _say(f"{run_dir}" + (f"  <- {', '.join(needs_runs)}" if needs_runs else ""))
    return 0


def _print_config(cfg, out: Path) -> int:
    import dataclasses
    import json

    import yaml

    plain = json.loads(json.dumps(dataclasses.asdict(cfg)))  # tuples as lists
    _say(f"# {out} (dry run: nothing written)\n" + yaml.safe_dump(plain, sort_keys=False).rstrip())
    return 0


def _play(args) -> int:
    from jaxfer import play
    r = play.play(args.run, args.game, args.episodes, args.gif, args.seed_index)
    _say(f"{args.run} plays {r['env']}: mean score {r['mean']:.3f} [95% CI {r['ci_low']:.3f}, {r['ci_high']:.3f}] "
         f"over {r['episodes']} games" + (f"; {r['gif']} ({r['gif_frames']} frames)" if r["gif"] else ""))
    return 0


def _report(args) -> int:
    from jaxfer.report import study
    from jaxfer.runtime import rundir
    with rundir.held(args.out):
        page = study.write_report(args.dirs, args.out)
    _say(f"{page} and {page.with_suffix('.md')}: {len(args.dirs)} director{'y' if len(args.dirs) == 1 else 'ies'}")
    return 0


def _list(args) -> int:
    from jaxfer import agents, envs
    from jaxfer.dptl import gradcam
    from jaxfer.networks import actor_critic, q_nets
    from jaxfer.transfer import surgery
    names = {
        "envs": [f"{e}  ({', '.join(envs.obs_modes(e))})" for e in envs.known_env_ids()],
        "agents": [*agents.ALGORITHMS, "a2c"],
        "networks": [f"{n}  (value-based)" for n in q_nets.NETWORKS] + [f"{n}  (a2c)" for n in actor_critic.NETWORKS],
        "modes": [m for m in surgery.MODES if m != "scratch"] + ["first_n:N:frozen", "last_n:N:frozen"],
        "cams": list(gradcam.METHODS),
        "configs": sorted(str(p.relative_to(Path.cwd())) if p.is_relative_to(Path.cwd()) else str(p)
                          for p in (Path(__file__).resolve().parents[1] / "configs").glob("*.yaml")),
    }[args.what]
    _say("\n".join(names))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    asked = "-h" in argv or "--help" in argv
    parser = _parser(next((a for a in argv if a in ("train", "transfer", "dptl", "segment")), None) if asked else None)
    from jaxfer.config import repeated
    twice = repeated(a.split("=")[0] for a in argv if a.startswith("--"))
    if twice:  # argparse keeps the last: one of the two settings would be dropped without a word
        parser.error(f"{twice[0]} is given twice")
    args, extra = parser.parse_known_args(argv)  # overrides may also follow the options
    unknown = [e for e in extra if "=" not in e or e.startswith("-") or not hasattr(args, "overrides")]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if extra:
        args.overrides += extra
    commands = {"train": _train, "transfer": _transfer, "dptl": _dptl, "gradcam": _gradcam, "segment": _segment,
                "predict": _predict, "play": _play, "report": _report, "list": _list}
    if _joins(args) and not supervisor.is_child():
        return supervisor.run(argv)  # a process of a multi-process run works in a child it watches
    # Ctrl-C and SIGTERM (a scheduler's stop, a preemption) end the process at once from a handler of ours:
    # Python's KeyboardInterrupt can land inside a callback (jax's garbage-collection hook) that swallows it,
    # and the run would go on. Set again after jax.distributed starts, which installs a SIGTERM handler of its own.
    previous = {sig: signal.getsignal(sig) for sig in STOPPING}
    previous_fd = _on_stop()
    try:
        _start(args)
        _on_stop()
        from jaxfer import mesh
        with mesh.together():  # an error on one process (a bad option, a lock, a full disk) ends them all
            if args.devices is not None:
                mesh.use_devices(args.devices)
            return commands[args.command](args)
    except (JaxferError, FileNotFoundError) as e:
        print(f"jaxfer: error: {e}", file=sys.stderr)
        return 2
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(previous_fd)


STOPPING = {signal.SIGINT: "interrupted", signal.SIGTERM: "stopped (SIGTERM)"}
_wakeup: int | None = None  # the pipe end the interpreter's C-level signal handler writes to
_stopping = threading.Lock()


def _on_stop() -> int:
    """Stop on Ctrl-C and SIGTERM even while the main thread waits inside jax (an epoch, a barrier of a
    multi-process run), where a Python handler would run only when that call returns: the signal also
    wakes a thread of ours, which stops the process. Returns the wakeup fd it replaced."""
    global _wakeup
    for sig in STOPPING:
        signal.signal(sig, _stopped)
    if _wakeup is None:
        read, _wakeup = os.pipe()
        os.set_blocking(_wakeup, False)
        threading.Thread(target=_watch, args=(read,), daemon=True, name="jaxfer-signals").start()
    return signal.set_wakeup_fd(_wakeup)


def _watch(read: int) -> None:
    while True:
        signum = os.read(read, 1)[0]
        if signum in STOPPING:
            _stopped(signum, None)


def _stopped(signum, _frame) -> None:
    """Ctrl-C or SIGTERM: one line and exit 128 + the signal's number (130, 143), at once. Every file is
    written atomically and the run directory's lock is released here, so the same command resumes (a
    killed write's temp file is removed then); exiting without the interpreter's teardown avoids waiting
    on (or crashing in) XLA's compile threads, the checkpoint writer and the other processes of a run."""
    if not _stopping.acquire(blocking=False):  # the handler and the watching thread both saw the signal
        return
    rundir = sys.modules.get("jaxfer.runtime.rundir")
    if rundir is not None:
        rundir.release_all()
    print(f"jaxfer: {STOPPING[signum]}; run the same command again to resume from the last checkpoint",
          file=sys.stderr)
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(128 + signum)


if __name__ == "__main__":
    sys.exit(main())
