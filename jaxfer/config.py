"""Typed training configs: YAML files plus ``key=value`` overrides, validated with one-line errors."""
from __future__ import annotations

import collections
import dataclasses
import math
import types
import typing
from pathlib import Path

import yaml

from jaxfer.errors import ConfigError

INT32_MAX = 2**31 - 1  # step counters and PRNG seeds are int32


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Every hyper-parameter of a run, in one place. Step counts are env steps per seed."""

    env: str = "catch/v0"  # environment id (jaxfer.envs.known_env_ids())
    obs: str = "grid"  # envs.obs_modes(env): catch grid|pixels84, minatar grid|grid_common, atari nature|ea3c|...
    agent: str = "dqn"  # "dqn" (with `double` for Double DQN), "dqv", "dqv_max" or "a2c"
    network: str = "catch_cnn"  # a networks.q_nets.NETWORKS key; for a2c a networks.actor_critic.NETWORKS key
    conv_impl: str = "auto"  # "gemm" (im2col GEMMs, fast on XLA CPU), "xla" (the native conv op), "auto" (by tuning)
    tuning: str = "auto"  # code path: "cpu" (XLA-CPU workarounds), "accelerator" (plain XLA), "auto" (by backend)
    double: bool = False  # Double DQN target (online argmax, target evaluation)
    seeds: int = 4  # independent agents trained at once (the leading array axis)
    seed: int = 0  # seed i uses PRNGKey(seed + i), so seed i alone reproduces seed i of a batch
    num_envs: int = 4  # envs per seed; one gradient update per vector step of all of them
    total_steps: int = 40_000  # env steps per seed
    epoch_steps: int = 2_000  # env steps per seed between metric rows / progress / checkpoints
    buffer_size: int = 10_000  # replay capacity (transitions per seed)
    batch_size: int = 32  # transitions per gradient update
    learning_starts: int = 1_000  # env steps of random-policy collection before updates
    target_update: int = 100  # gradient updates between target-network syncs
    gamma: float = 0.99  # discount factor
    lr: float = 1e-3  # optimiser step size
    eps_start: float = 1.0
    eps_end: float = 0.05
    eps_decay_steps: int = 5_000  # linear epsilon decay length (env steps)
    eval_envs: int = 32  # greedy evaluation envs per seed at the end of each epoch
    eval_steps: int = 50  # vector steps of greedy evaluation (Catch episodes last 10-11 steps)
    strategy: str = "auto"  # seed axis: "vmap" (sharded over devices), "sequential", or "auto" (measured choice)
    unroll: int = 1  # lax.scan unroll of the update loop inside one epoch
    keep_checkpoint: bool = False  # keep checkpoint.npz (replay buffers included) once the run has finished
    # seconds between checkpoints (about what a kill -9 can cost: the epochs since are replayed); 0: every epoch
    checkpoint_every_s: float = 60.0
    tensorboard: bool = True  # write TensorBoard event files (tensorboard/ in the run directory) as the run goes
    # A2C (agent: a2c) only:
    n_steps: int = 5  # env steps per env between updates (A3C's t_max), the n of the n-step returns
    ent_coef: float = 0.01  # entropy bonus weight
    vf_coef: float = 0.5  # value loss weight
    max_grad_norm: float = 0.5  # global-norm gradient clipping
    optimizer: str = "adam"  # "adam" (rl_a3c_pytorch, E-A3C's code base) or "rmsprop" (A3C, Baselines' A2C)
    core: str = "dense"  # "dense" (feed-forward: stack frames) or "lstm" (memory per env, as A3C-LSTM / E-A3C)
    width: float = 1.0  # conv channel multiplier (E-A3C's "expanded channels")

    def validate(self) -> "TrainConfig":
        # late imports: config must load without jax for --help
        from jaxfer import backend, envs
        from jaxfer.networks import actor_critic, q_nets

        checks = [
            (self.env in envs.ENV_IDS, f"unknown env id '{self.env}'; known: {', '.join(envs.known_env_ids())}"),
            (self.agent in ("dqn", "dqv", "dqv_max", "a2c"),
             f"unknown agent '{self.agent}'; known: dqn, dqv, dqv_max, a2c"),
            (self.agent == "a2c" or self.network in q_nets.NETWORKS,
             f"unknown network '{self.network}'; known: {', '.join(q_nets.NETWORKS)}"),
            (self.agent != "a2c" or self.network in actor_critic.NETWORKS,
             f"unknown network '{self.network}' for a2c; known: {', '.join(actor_critic.NETWORKS)}"),
            (self.core in actor_critic.CORES, f"core must be 'dense' or 'lstm', got '{self.core}'"),
            (self.optimizer in ("adam", "rmsprop"), f"optimizer must be 'adam' or 'rmsprop', got '{self.optimizer}'"),
            (self.conv_impl in backend.CONV_IMPLS,
             f"conv_impl must be one of {', '.join(backend.CONV_IMPLS)}, got '{self.conv_impl}'"),
            (self.tuning in backend.TUNINGS,
             f"tuning must be one of {', '.join(backend.TUNINGS)}, got '{self.tuning}'"),
            (self.strategy in ("auto", "vmap", "sequential"),
             f"strategy must be 'auto', 'vmap' or 'sequential', got '{self.strategy}'"),
            (self.seeds >= 1, f"seeds must be >= 1, got {self.seeds}"),
        ]
        for name in ("num_envs", "total_steps", "epoch_steps", "buffer_size", "batch_size", "target_update",
                     "eval_envs", "eval_steps", "unroll", "n_steps", "eps_decay_steps"):
            checks.append((getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}"))
        for name in ("gamma", "lr", "eps_start", "eps_end", "ent_coef", "vf_coef", "max_grad_norm", "width",
                     "checkpoint_every_s"):
            value = getattr(self, name)
            checks.append((math.isfinite(value), f"{name} must be a finite number, got {value}"))
        checks += [
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (0 <= self.eps_start <= 1 and 0 <= self.eps_end <= 1,
             f"eps_start and eps_end must be in [0, 1], got {self.eps_start}, {self.eps_end}"),
            (self.learning_starts >= 0, f"learning_starts must be >= 0, got {self.learning_starts}"),
            (self.total_steps <= INT32_MAX, f"total_steps ({self.total_steps}) must fit the int32 step counter "
                                            f"(<= {INT32_MAX})"),
            (0 <= self.seed and self.seed + self.seeds <= INT32_MAX,
             f"seed must be >= 0 and seed + seeds <= {INT32_MAX}, got seed {self.seed}, seeds {self.seeds}"),
            (self.agent == "dqn" or not self.double,
             f"double is a DQN target: agent '{self.agent}' cannot take double: true"),
            *[(self.agent == "a2c" or getattr(self, name) == _FIELDS[name].default,
               f"{name} is an a2c setting: agent '{self.agent}' does not use it (remove {name}: "
               f"{getattr(self, name)})") for name in A2C_ONLY],
            (self.agent == "a2c" or self.learning_starts <= self.total_steps,
             f"learning_starts ({self.learning_starts}) exceeds total_steps ({self.total_steps}): the agent would "
             f"never learn"),
            (0.0 <= self.gamma <= 1.0, f"gamma must be in [0, 1], got {self.gamma}"),
            (self.ent_coef >= 0 and self.vf_coef >= 0,
             f"ent_coef and vf_coef must be >= 0, got {self.ent_coef}, {self.vf_coef}"),
            (self.max_grad_norm > 0, f"max_grad_norm must be > 0, got {self.max_grad_norm}"),
            (self.width > 0, f"width must be > 0, got {self.width}"),
            (self.checkpoint_every_s >= 0, f"checkpoint_every_s must be >= 0, got {self.checkpoint_every_s}"),
            (self.batch_size <= self.buffer_size, "batch_size must not exceed buffer_size"),
        ]
        _refuse_first(checks)
        _refuse_first([  # after the counts are known to be >= 1: these divide by them
            (self.epoch_steps % self.num_envs == 0,
             f"epoch_steps ({self.epoch_steps}) must be a multiple of num_envs ({self.num_envs})"),
            (self.total_steps % self.epoch_steps == 0,
             f"total_steps ({self.total_steps}) must be a multiple of epoch_steps ({self.epoch_steps})"),
            (self.agent != "a2c" or self.epoch_steps % (self.num_envs * self.n_steps) == 0,
             f"epoch_steps ({self.epoch_steps}) must be a multiple of num_envs x n_steps "
             f"({self.num_envs * self.n_steps}) for a2c"),
        ])
        try:  # the env's own checks (e.g. an observation mode it does not have)
            envs.make(self.env, self.obs)
        except envs.EnvError as e:
            raise ConfigError(str(e)) from None
        return self

    @property
    def num_epochs(self) -> int:
        return self.total_steps // self.epoch_steps


A2C_ONLY = ("n_steps", "ent_coef", "vf_coef", "max_grad_norm", "optimizer", "core", "width")  # see TrainConfig


def _refuse_first(checks: list[tuple[bool, str]]) -> None:
    for ok, msg in checks:
        if not ok:
            raise ConfigError(msg)


_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_TYPES = typing.get_type_hints(TrainConfig)


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error (YAML forbids it;
    PyYAML keeps the last value, so one of two settings would be dropped without a word)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = self.construct_object(key_node)
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key '{key}' is given twice (lines {seen[key]} and {line})", key_node.start_mark)
                seen[key] = line
        return super().construct_mapping(node, deep)


def read_yaml(path: str | Path, what: str, error: type[Exception] = ConfigError):
    """The YAML document at ``path``; an unreadable file, bad YAML or a repeated key is a one-line ``error``."""
    try:
        return yaml.load(Path(path).read_text(), Loader=_UniqueKeyLoader)
    except OSError as e:
        raise error(f"cannot read {what} '{path}': {e.strerror}") from None
    except UnicodeDecodeError:
        raise error(f"{what} '{path}' is not UTF-8 text") from None
    except yaml.YAMLError as e:
        raise error(f"{what} '{path}' is not valid YAML: {str(e).splitlines()[0]}") from None


def section(cls, raw, where: str, error: type[Exception] = ConfigError) -> dict:
    """``raw`` if it is a mapping whose keys are all fields of the dataclass ``cls``; else a one-line ``error``
    (the DPTL and segmentation configs use this for their nested sections)."""
    if not isinstance(raw, dict):
        raise error(f"{where} must be a mapping of key: value")
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise error(f"{where}: unknown keys {unknown}; known: {', '.join(known)}")
    return raw


def repeated(items: typing.Iterable) -> list:
    """The items given more than once, each named once: where a list or a command line names a setting or a
    sweep entry twice, one of the two would be dropped (or the same run trained twice) without a word."""
    return [item for item, count in collections.Counter(items).items() if count > 1]


def _type_name(want) -> str:
    return getattr(want, "__name__", str(want).replace("typing.", ""))


def typed(want, value, name: str, error: type[Exception] = ConfigError):
    """``value`` as the type ``want`` (a field's type hint), or a one-line ``error`` naming ``name``. YAML's
    ints are accepted where floats are expected (and whole floats such as 1e5 where ints are), lists where
    tuples are, mappings where nested config dataclasses are; ``X | None`` and other unions take any member."""
    origin, args = typing.get_origin(want), typing.get_args(want)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for member in args:
            try:
                return typed(member, value, name, error)
            except error:
                continue
        raise error(f"{name} expects {_type_name(want)}, got {type(value).__name__} {value!r}")
    if want is type(None) and value is None:
        return None
    if dataclasses.is_dataclass(want):
        return parse(want, {} if value is None else value, name, error)  # an empty section: its defaults
    if origin is tuple and isinstance(value, (list, tuple)):
        return tuple(typed(args[0], v, name, error) for v in value)
    if origin is dict and isinstance(value, dict):
        return value
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if want is int and isinstance(value, float) and value.is_integer():
        return int(value)  # 1e5 reads as a float
    if isinstance(want, type) and isinstance(value, want) and not (want in (int, float) and isinstance(value, bool)):
        return value
    raise error(f"{name} expects {_type_name(want)}, got {type(value).__name__} {value!r}")


def parse(cls, raw, where: str, error: type[Exception] = ConfigError):
    """The config dataclass ``cls`` from the mapping ``raw``: every key known, every value of its field's type
    (nested sections too), required fields present. The one parser of the train, sweep, DPTL and
    segmentation configs; what a value may be beyond its type is checked by each config."""
    section(cls, raw, where, error)
    hints = typing.get_type_hints(cls)
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in raw
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise error(f"{where}: '{missing[0]}' is required")
    return cls(**{key: typed(hints[key], value, f"{where}: '{key}'", error) for key, value in raw.items()})


def from_dict(values: dict) -> TrainConfig:
    unknown = [k for k in values if k not in _FIELDS]
    if unknown:
        raise ConfigError(f"unknown config key '{unknown[0]}'; known: {', '.join(_FIELDS)}")
    return TrainConfig(**{k: typed(_TYPES[k], v, f"config key '{k}'") for k, v in values.items()}).validate()


def parse_override(text: str) -> tuple[str, object]:
    """``key=value`` with the value read as YAML (so 3, 0.5, true, catch/v1 all work)."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"override '{text}' is not of the form key=value")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        raise ConfigError(f"override '{text}': value is not valid YAML") from None
    try:  # YAML 1.1 reads 4e4 as a string
        value = float(value) if isinstance(value, str) else value
    except ValueError:
        pass
    return key.strip(), value


def load(path: str | Path | None, overrides: typing.Iterable[str] = ()) -> TrainConfig:
    values: dict = {}
    if path is not None:
        values = read_yaml(path, "config") or {}
        if not isinstance(values, dict):
            raise ConfigError(f"config '{path}' must be a mapping of key: value")
    values.update(parse_override(o) for o in overrides)  # the last of a key wins (the CLI refuses a repeat)
    return from_dict(values)


def describe_keys(cls, prefix: str = "") -> str:
    """One line per field of the config dataclass ``cls``: name, type, default and the comment beside
    it in the source (what ``--help`` shows), nested dataclasses indented under their section."""
    import inspect
    import re

    comments = {m.group(1): m.group(2) for m in re.finditer(r"^\s+(\w+):[^#\n]*#\s*(.*)$",
                                                           inspect.getsource(cls), re.M)}
    hints = typing.get_type_hints(cls)
    lines = []
    for f in dataclasses.fields(cls):
        kind = getattr(hints[f.name], "__name__", str(hints[f.name]).replace("typing.", ""))
        if dataclasses.is_dataclass(hints[f.name]):
            lines.append(f"  {prefix}{f.name}:  ({kind}) {comments.get(f.name, '')}".rstrip())
            lines.append(describe_keys(hints[f.name], prefix + "  "))
            continue
        if f.default is not dataclasses.MISSING:
            default = f"default {f.default!r}"
        elif f.default_factory is not dataclasses.MISSING:
            default = f"default {f.default_factory()!r}"
        else:
            default = "required"
        lines.append(f"  {prefix}{f.name} ({kind}, {default}): {comments.get(f.name, '')}".rstrip(": "))
    return "\n".join(lines)


def to_dict(cfg: TrainConfig) -> dict:
    return dataclasses.asdict(cfg)
