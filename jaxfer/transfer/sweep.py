"""Transfer sweeps: sources, then every (source, target, mode) cell, against scratch baselines.

Every target game is trained from scratch (S seeds): the baseline. Where a source comes from:
- by default its own scratch run, trained here like the baselines;
- ``source_checkpoints: {env_id: path}``: an already-trained jaxfer run directory or its params.npz
  (paths relative to the working directory), which is then not trained again. Seed i of a cell starts
  from seed i of the checkpoint; extra checkpoint seeds are ignored, and too few is an error rather
  than cycling, since reusing a source seed would make the cell's seeds dependent and its CI too narrow;
- ``distill: {schedule: fixed|varying, ...}`` (``DistillSpec``): besides each source, a student
  distilled from it (``jaxfer.agents.distill``, the same network, seeds vmapped) is a source of its own,
  named "<source>+distill": its own rows in area_ratios.csv and the heatmaps, so teacher and student
  transfer sit side by side; ``pairs`` compares its game. Each student lives in a resumable directory
  ``distill/<source>/`` (config.yaml, params.npz, run.json with the held-out KL per seed).
Each cell starts seed i of the target agent from seed i of the source through ``surgery.apply`` and
trains it with the same config. Every run is its own resumable run directory, so an interrupted sweep
picks up where it stopped and never redoes a finished run (a finished cell is not redone either if a
checkpoint file changes later). The runs form a graph (``run_graph``: each run after the runs whose
parameters it starts from); ``train_run`` trains one of them under its directory's lock, and
``executors`` walks the graph in this process, in workers sharing the directory, or on Ray.
Cells run one ``run.train`` call each: two Catch cells as one call were not faster on this CPU
(benchmarks/results/cell_batching.json), so cells are not batched. Outputs in the
sweep directory: ``sweep.yaml`` (the resolved sweep, written first: another sweep there is refused),
``curves.csv`` (long form: source, target, mode, seed, epoch, env_steps, value),
``area_ratios.csv`` (R with a bootstrap CI per cell; both tables merged, never replaced),
``area_ratio_<mode>.png`` heatmaps (one row per source, students included) and ``curves_<target>.png``.
"""
from __future__ import annotations

import dataclasses
import math
import sys
import time
from pathlib import Path

import jax

from jaxfer import agents, config, envs, mesh
from jaxfer.agents import distill
from jaxfer.code_path import CodePath
from jaxfer.errors import ConfigError
from jaxfer.networks.layers import layer_names
from jaxfer.runtime import files, plots, run, rundir, seed_axis
from jaxfer.transfer import area_ratio, surgery
from jaxfer.transfer.surgery import TransferError

DISTILLED = "+distill"  # suffix of a distilled student's source name
STUDENT_STREAM = 1  # fold_in constant: a student's random stream differs from its teacher's init


@dataclasses.dataclass(frozen=True)
class DistillSpec:
    """How each source's student is distilled (Shachaf et al.'s schedules, Rusu et al.'s loss)."""

    schedule: str = "fixed"  # "fixed" (tau 0.1, each state once) or "varying" (tau 0.1..0.5, each state five times)
    states: int = 10_000  # teacher states per seed that the student learns from
    held_out: int = 1_000  # more teacher states per seed, from other episodes, for the held-out KL
    batch_size: int = 32
    lr: float = 1e-3  # the student's Adam step size
    epsilon: float = 0.05  # the teacher's exploration while its states are collected


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    sources: tuple[str, ...]  # env ids whose agents are transferred (trained from scratch here, or checkpoints)
    targets: tuple[str, ...]  # env ids the transferred agents learn
    modes: tuple[str, ...]  # "fine_tune", "only_head", "first_n:2", "last_n:1:frozen", ...
    pairs: str = "all"  # "all", "self" (source == target) or "cross" (source != target)
    window: int | None = None  # epochs of the learning curve that the area ratio integrates
    train: config.TrainConfig = config.TrainConfig()
    source_checkpoints: dict = dataclasses.field(default_factory=dict)  # env_id -> run dir or params.npz
    distill: DistillSpec | None = None  # also use a distilled student of every source

    def source_names(self) -> tuple[str, ...]:
        """Sources in table order: the sources, then their distilled students."""
        return self.sources + (tuple(s + DISTILLED for s in self.sources) if self.distill else ())

    def cells(self) -> list[tuple[str, str, str]]:
        keep = {"all": lambda s, t: True, "self": lambda s, t: s == t, "cross": lambda s, t: s != t}[self.pairs]
        return [(s, t, m) for s in self.source_names() for t in self.targets if keep(game(s), t) for m in self.modes]


def game(source: str) -> str:
    """The env id a source was trained on ("catch/v0+distill" -> "catch/v0")."""
    return source.removesuffix(DISTILLED)


def parse_mode(spec: str) -> tuple[str, int | None, bool]:
    """'first_n:2:frozen' -> ('first_n', 2, True)."""
    name, *rest = spec.split(":")
    if name not in surgery.MODES or name == "scratch":
        raise ConfigError(f"unknown transfer mode '{name}'; "
                          f"known: {', '.join(m for m in surgery.MODES if m != 'scratch')}")
    n = None
    if name in ("first_n", "last_n"):
        if not rest or not rest[0].isdigit() or int(rest[0]) < 1:
            raise ConfigError(f"mode '{spec}' needs a layer count >= 1, e.g. {name}:2 or {name}:2:frozen")
        n, rest = int(rest[0]), rest[1:]
    if rest not in ([], ["frozen"]):  # read strictly: a typo must not train the layers unfrozen
        raise ConfigError(f"mode '{spec}': only ':frozen' may follow, got ':{':'.join(rest)}'")
    return name, n, rest == ["frozen"]


def parse_distill(raw) -> DistillSpec:
    spec = config.parse(DistillSpec, raw, "distill")
    checks = [
        (spec.schedule in distill.SCHEDULES,
         f"distill: unknown schedule '{spec.schedule}'; known: {', '.join(distill.SCHEDULES)}"),
        (spec.batch_size >= 1 and spec.held_out >= 1, "distill: batch_size and held_out must be >= 1"),
        (spec.states >= spec.batch_size,
         f"distill: states ({spec.states}) must be at least batch_size ({spec.batch_size})"),
        (math.isfinite(spec.lr) and spec.lr > 0 and 0.0 <= spec.epsilon <= 1.0,
         "distill: lr must be a finite number > 0 and epsilon in [0, 1]"),
    ]
    for ok, msg in checks:
        if not ok:
            raise ConfigError(msg)
    return spec


def load(path: str | Path, overrides=()) -> SweepConfig:
    where = f"sweep config '{path}'"
    raw = dict(config.section(SweepConfig, config.read_yaml(path, "sweep config") or {}, where))
    for key in ("sources", "targets", "modes"):
        if not isinstance(raw.get(key), list) or not raw[key]:
            raise ConfigError(f"{where}: '{key}' must be a non-empty list")
    checkpoints = raw.setdefault("source_checkpoints", {}) or {}
    if not isinstance(checkpoints, dict) or not all(isinstance(v, str) for v in checkpoints.values()):
        raise ConfigError(f"{where}: 'source_checkpoints' must map env ids to paths")
    if set(checkpoints) - set(raw["sources"]):
        raise ConfigError(f"source_checkpoints names {sorted(set(checkpoints) - set(raw['sources']))}, not in sources")
    train_values, distill_raw = raw.pop("train", None) or {}, raw.pop("distill", None)
    if not isinstance(train_values, dict):
        raise ConfigError(f"{where}: 'train' must be a mapping of training config keys")
    train_values = dict(train_values) | dict(config.parse_override(o) for o in overrides)
    cfg = dataclasses.replace(config.parse(SweepConfig, raw | {"source_checkpoints": checkpoints}, where),
                              train=config.from_dict(train_values),
                              distill=None if distill_raw is None else parse_distill(distill_raw))
    for key in ("sources", "targets", "modes"):
        twice = config.repeated(getattr(cfg, key))
        if twice:
            raise ConfigError(f"{where}: '{key}' lists {', '.join(twice)} more than once")
    if cfg.pairs not in ("all", "self", "cross"):
        raise ConfigError(f"pairs must be 'all', 'self' or 'cross', got '{cfg.pairs}'")
    epochs = cfg.train.num_epochs
    if cfg.window is not None and not 2 <= cfg.window <= epochs:
        raise ConfigError(f"window must be null or a whole number of epochs in [2, {epochs}] (the curves' "
                          f"length), got {cfg.window!r}")
    if cfg.distill and cfg.train.agent != "dqn":
        raise ConfigError(f"distill makes single Q-network students: it needs agent 'dqn', not '{cfg.train.agent}'")
    for env_id in cfg.sources + cfg.targets:
        _train_config(cfg, env_id).validate()
    parsed = [parse_mode(mode) for mode in cfg.modes]
    for i, mode in enumerate(parsed):
        if mode in parsed[:i]:  # first_n:2 and first_n:02
            raise ConfigError(f"{where}: modes '{cfg.modes[parsed.index(mode)]}' and '{cfg.modes[i]}' are the same")
    if not cfg.cells():
        raise ConfigError("the sweep has no (source, target) cell")
    return cfg


def _train_config(cfg: SweepConfig, env_id: str) -> config.TrainConfig:
    return dataclasses.replace(cfg.train, env=env_id)


def load_checkpoint(env_id: str, path: str, num_seeds: int):
    """The first ``num_seeds`` seeds (seed axis first) of a source checkpoint: a run directory or its params.npz."""
    file = Path(path) / rundir.PARAMS if Path(path).is_dir() else Path(path)
    where = f"source checkpoint '{file}' for {env_id}"
    if not file.is_file():
        raise ConfigError(f"{where} does not exist" + (" (an unfinished run?)" if Path(path).is_dir() else ""))
    try:
        tree = files.load_nested(file)
    except files.DamagedFile:
        raise ConfigError(f"{where} is not a .npz file of parameters") from None
    try:
        names = layer_names(tree)
    except (ValueError, TypeError, AttributeError):
        names = []
    held = {x.shape[0] if x.ndim else 0 for x in jax.tree.leaves(tree)}
    if not names or len(held) != 1:
        raise ConfigError(f"{where} is not a jaxfer Q-network's params (layers conv_i, dense_i, head; seed axis first)")
    (num_held,) = held
    if num_held < num_seeds:
        raise ConfigError(f"{where} holds {num_held} seeds but the sweep trains {num_seeds} "
                          "(seed i starts from the checkpoint's seed i)")
    return jax.tree.map(lambda x: x[:num_seeds], tree)


def check_cells(cfg: SweepConfig, checkpoints: dict) -> None:
    """Fail before any training if a cell's layers cannot be copied (shapes only, nothing computed)."""
    games = dict.fromkeys(cfg.sources + cfg.targets)
    shapes = {e: jax.eval_shape(lambda e=e: run.init_params(_train_config(cfg, e))) for e in games}
    if cfg.distill:  # a teacher from a checkpoint must be the sweep's own network on its game
        for env_id, params in checkpoints.items():
            try:
                surgery.copy_layers(params, shapes[env_id], layer_names(shapes[env_id]))
            except TransferError as e:
                raise TransferError(f"distilling the checkpoint of {env_id} needs the sweep's network: {e}") from None
    for source, target, mode in cfg.cells():
        name, n, frozen = parse_mode(mode)
        try:
            surgery.apply(name, checkpoints.get(source, shapes[game(source)]), shapes[target], n=n, frozen=frozen)
        except TransferError as e:
            origin = f" (checkpoint {cfg.source_checkpoints[source]})" if source in checkpoints else ""
            raise TransferError(f"cell {source}{origin} -> {target}, {mode}: {e}") from None


def cell_dir(source: str, target: str, mode: str) -> str:
    return f"cells/{rundir.slug(source)}__{rundir.slug(target)}__{mode.replace(':', '-')}"


def scratch_games(cfg: SweepConfig) -> list[str]:
    """Games trained from scratch: the sources without a checkpoint (to transfer from) and the targets
    (the baselines of every area ratio)."""
    return list(dict.fromkeys(tuple(s for s in cfg.sources if s not in cfg.source_checkpoints) + cfg.targets))


@dataclasses.dataclass(frozen=True)
class Run:
    """A node of the sweep's run graph: a resumable run directory, trained once, after the runs it needs."""

    name: str  # its directory in the sweep directory: scratch/<game>, distill/<source> or cells/<cell>
    env_id: str  # the game it trains on
    needs: tuple[str, ...] = ()  # runs of this sweep whose parameters it starts from
    origin: str | None = None  # what it starts from, for people: a run of the sweep or "checkpoint <path>"
    source: str | None = None  # a student's teacher or a cell's source ("catch/v0", "catch/v0+distill")
    mode: str | None = None  # a cell's transfer mode


def run_graph(cfg: SweepConfig) -> list[Run]:
    """The sweep's runs in an order that puts every run after the runs it needs."""

    def origin(source: str) -> str:
        if source.endswith(DISTILLED):
            return f"distill/{rundir.slug(game(source))}"
        return (f"checkpoint {cfg.source_checkpoints[source]}" if source in cfg.source_checkpoints
                else f"scratch/{rundir.slug(source)}")

    def after(source: str, **kw) -> dict:
        made = origin(source)
        return {"origin": made, "needs": () if made.startswith("checkpoint ") else (made,), "source": source} | kw

    runs = [Run(f"scratch/{rundir.slug(e)}", e) for e in scratch_games(cfg)]
    if cfg.distill:
        runs += [Run(f"distill/{rundir.slug(s)}", s, **after(s)) for s in cfg.sources]
    runs += [Run(cell_dir(s, t, m), t, **after(s, mode=m)) for s, t, m in cfg.cells()]
    return runs


def check_sources(cfg: SweepConfig) -> None:
    """Fail before any training on a source checkpoint or a cell that cannot be used."""
    check_cells(cfg, {e: load_checkpoint(e, p, cfg.train.seeds) for e, p in cfg.source_checkpoints.items()})


def finished(cfg: SweepConfig, out: Path, r: Run) -> bool:
    """Has ``r`` finished in the sweep directory ``out``? A directory of another config is an error."""
    if r.mode is None and r.source is not None:
        return _check_student(out / r.name, _student_claim(cfg, r.source, r.origin))
    return run.holds_finished_run(out / r.name, _train_config(cfg, r.env_id))


def train_run(cfg: SweepConfig, out: Path, r: Run, progress: bool = True) -> bool:
    """Train ``r`` into ``out / r.name`` unless it has finished there: True if it was trained here.

    The runs it needs must have finished. Raises ``rundir.Busy`` while another process holds its directory,
    so that a sweep worker can go on with other runs and come back."""
    run_dir = Path(out) / r.name
    with rundir.held(run_dir):  # checked and trained under one claim: never by two workers
        if finished(cfg, out, r):
            return False
        if progress:
            print(f"jaxfer: training {r.name}", file=sys.stderr)
        if r.source is None:
            run.train(_train_config(cfg, r.env_id), run_dir, progress, meta={"mode": "scratch"})
        elif r.mode is None:
            distill_student(cfg, r.source, source_params(cfg, out, r.source), r.origin, run_dir, progress)
        else:
            name, n, frozen = parse_mode(r.mode)
            fresh = run.init_params(_train_config(cfg, r.env_id))
            params, freeze = surgery.apply(name, source_params(cfg, out, r.source), fresh, n=n, frozen=frozen)
            meta = {"source": r.source, "mode": r.mode} | (
                {"source_checkpoint": cfg.source_checkpoints[r.source]} if r.source in cfg.source_checkpoints else {})
            run.train(_train_config(cfg, r.env_id), run_dir, progress, init_params=params,
                      freeze=None if freeze is None else jax.tree.map(bool, freeze), meta=meta)
    return True


def source_params(cfg: SweepConfig, out: Path, source: str):
    """A source's trained parameters (seed axis first): its checkpoint, or its finished run in ``out``."""
    if source in cfg.source_checkpoints:
        return load_checkpoint(source, cfg.source_checkpoints[source], cfg.train.seeds)
    where = f"distill/{rundir.slug(game(source))}" if source.endswith(DISTILLED) else f"scratch/{rundir.slug(source)}"
    like = jax.eval_shape(lambda: run.init_params(_train_config(cfg, game(source))))
    try:
        return files.load_tree(Path(out) / where / rundir.PARAMS, like)[0]
    except (KeyError, ValueError) as e:
        if isinstance(e, files.DamagedFile):
            raise
        raise files.damaged(Path(out) / where / rundir.PARAMS, f"not the sweep's network on {game(source)}",
                            f"delete {Path(out) / where} to train it again") from None


CLAIM = "sweep.yaml"  # what a sweep directory holds: its resolved sweep config, written first
OWN = ("scratch", "distill", "cells", "curves.csv", "area_ratios.csv")  # and its .png figures


def claim(cfg: SweepConfig, out: Path) -> None:
    """Mark ``out`` as this sweep's directory, or refuse it in one line where it holds another sweep or files
    no sweep writes (a directory of an older jaxfer's sweep, without sweep.yaml, is taken as it is)."""
    with rundir.held(out, wait=True, sweep=True):  # two workers starting at once: one writes, the other compares
        rundir.claim(out, dataclasses.asdict(cfg), "sweep", CLAIM, lambda name: name in OWN or name.endswith(".png"))


def results(cfg: SweepConfig, out: Path) -> list[dict]:
    """The sweep's tables and figures from its finished runs, written under the sweep directory's lock
    (a worker that finds another writing them waits, then writes the same files again)."""
    out = Path(out)
    scratch = {e: out / f"scratch/{rundir.slug(e)}" for e in scratch_games(cfg)}
    cells = {(s, t, m): out / cell_dir(s, t, m) for s, t, m in cfg.cells()}
    with rundir.held(out, wait=True, sweep=True):
        return write_results(cfg, out, scratch, cells)


def _student_claim(cfg: SweepConfig, env_id: str, teacher_name: str) -> dict:
    """What a student is distilled from and how: its config.yaml."""
    return {"teacher": teacher_name, "train": config.to_dict(_train_config(cfg, env_id)),
            "distill": dataclasses.asdict(cfg.distill)}


def _check_student(out: Path, claim: dict) -> bool:
    """True if ``out`` holds this student, finished; an error if it holds another one."""
    return rundir.check_claim(out, claim, "a student") and (out / rundir.RUN_JSON).exists()


def distill_student(cfg: SweepConfig, env_id: str, teacher, teacher_name: str, out: Path, progress: bool = True):
    """Distil the student of ``teacher`` (seed axis first) on ``env_id`` into ``out``.

    ``out`` holds config.yaml (what was distilled: teacher, training config, DistillSpec), params.npz
    and, written last as the finished mark, run.json with each seed's held-out KL before and after."""
    train_cfg, spec = _train_config(cfg, env_id), cfg.distill
    claim = _student_claim(cfg, env_id, teacher_name)
    rundir.write_claim(out, claim)
    if progress:
        print(f"distilling {env_id} x{train_cfg.seeds} ({spec.schedule}, {spec.states} states per seed)",
              file=sys.stderr)
    env = envs.make(env_id, train_cfg.obs)
    algo = agents.ALGORITHMS[train_cfg.agent](train_cfg, env.num_actions, CodePath.from_config(train_cfg))
    keys = jax.vmap(jax.random.fold_in, (0, None))(mesh.seed_keys(train_cfg.seed, train_cfg.seeds), STUDENT_STREAM)

    def one(teacher_params, key):
        return distill.student(algo.q_values, algo.init_params, teacher_params, env, key, spec.schedule, spec.states,
                               spec.held_out, spec.batch_size, spec.lr, spec.epsilon)

    start = time.perf_counter()
    per_seed = mesh.place(mesh.pad((teacher, keys), train_cfg.seeds))
    students = seed_axis.compile_seed_map(lambda block: jax.vmap(one)(*block), per_seed)
    params, stats = mesh.fetch(students(per_seed), train_cfg.seeds)
    seconds = time.perf_counter() - start
    files.save_tree(out / rundir.PARAMS, params)
    per_pass = stats["loss"].reshape(train_cfg.seeds, len(distill.SCHEDULES[spec.schedule]), -1).mean(-1)
    files.write_json(out / rundir.RUN_JSON, claim | run.environment_info() | {
        "seconds_with_compile": round(seconds, 2), "held_out_tau": distill.HELD_OUT_TAU,
        "kl_before": stats["kl_before"].tolist(), "kl_after": stats["kl_after"].tolist(),
        "loss_per_pass": per_pass.round(5).tolist()})


def write_results(cfg: SweepConfig, out: Path, scratch: dict, cells: dict) -> list[dict]:
    long_rows, ratios = [], []

    def curve(source, target, mode, run_dir):
        """Seed x epoch values of a run; its rows join the long-form table."""
        rows = plots.read_metrics(run_dir / rundir.METRICS)
        metric = plots.curve_metric(rows)
        long_rows.extend({"source": source, "target": target, "mode": mode, "seed": r["seed"], "epoch": r["epoch"],
                          "env_steps": r["env_steps"], "metric": metric, "value": r[metric]} for r in rows)
        return plots.seed_matrix(rows, metric)[1]

    baseline = {env_id: curve(env_id, env_id, "scratch", run_dir) for env_id, run_dir in scratch.items()}
    for (source, target, mode), run_dir in cells.items():
        values = curve(source, target, mode, run_dir)
        point, low, high = area_ratio.area_ratio_ci(values, baseline[target], window=cfg.window)
        ratios.append({"source": source, "target": target, "mode": mode, "area_ratio": round(point, 4),
                       "ci_low": round(low, 4), "ci_high": round(high, 4), "seeds": values.shape[0],
                       "window": cfg.window or ""})
    files.merge_csv(out / "curves.csv", long_rows, ("source", "target", "mode", "seed", "epoch"))
    files.merge_csv(out / "area_ratios.csv", ratios, ("source", "target", "mode"))
    for mode in cfg.modes:
        plots.heatmap(out / f"area_ratio_{mode.replace(':', '-')}.png", [r for r in ratios if r["mode"] == mode],
                       list(cfg.source_names()), list(cfg.targets), f"area ratio R, {mode}")
    for target in dict.fromkeys(cfg.targets):
        named = {"scratch": scratch[target]} | {f"{s} {m}": d for (s, t, m), d in cells.items() if t == target}
        named = {label: plots.read_metrics(d / rundir.METRICS) for label, d in named.items()}
        metric = plots.curve_metric(named["scratch"])
        plots.learning_curve(out / f"curves_{rundir.slug(target)}.png",
                              {label: plots.seed_matrix(rows, metric) for label, rows in named.items()},
                              f"target {target}", metric)
    return ratios
