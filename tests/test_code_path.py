"""The code-path selector: every XLA-CPU kernel and decision behind ``CodePath``, ``tuning=accelerator``
switching all of them on this CPU, and both paths computing the same thing."""
import ast
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import ROOT

from jaxfer import agents, config, envs, mesh
from jaxfer.code_path import CPU_VMAP_MAX_SEEDS, PLAIN, CodePath
from jaxfer.dptl import gradcam
from jaxfer.networks import actor_critic, q_nets
from jaxfer.runtime import seed_axis
from jaxfer.segment.fcn import FCN

SHORT = ["total_steps=400", "epoch_steps=200", "learning_starts=100", "buffer_size=500", "target_update=20",
         "eval_envs=4", "eval_steps=12", "seeds=2"]
SELECTOR = {Path("jaxfer/code_path.py")}  # besides jaxfer/xla_cpu/
KERNEL_NAMES = {"GemmConv", "GemmConvTranspose", "unbatched_single_seed", "learning_gate", "cpu_tuned"}


def xla_cpu_uses(path: Path) -> list[str]:
    """Imports of ``jaxfer.xla_cpu``, GEMM layers and XLA-CPU wrappers named in ``path``, and ``cpu_tuned`` calls."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and (
                node.module.startswith("jaxfer.xla_cpu") or any(a.name == "xla_cpu" for a in node.names)):
            found.append(f"line {node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Import) and any(a.name.startswith("jaxfer.xla_cpu") for a in node.names):
            found.append(f"line {node.lineno}: import jaxfer.xla_cpu")
        name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else \
            node.name if isinstance(node, (ast.ClassDef, ast.FunctionDef)) else None
        if name is not None and ((name in KERNEL_NAMES and name != "learning_gate") or name.startswith("Gemm")):
            found.append(f"line {node.lineno}: {name}")
        if isinstance(node, ast.Attribute) and node.attr == "learning_gate" and not (
                isinstance(node.value, ast.Attribute) and node.value.attr == "path" or
                isinstance(node.value, ast.Name) and node.value.id == "path"):
            found.append(f"line {node.lineno}: learning_gate")
    return found


def test_xla_cpu_kernels_and_decisions_sit_behind_the_selector():
    uses = {p.relative_to(ROOT): xla_cpu_uses(p) for p in sorted((ROOT / "jaxfer").rglob("*.py"))}
    outside = {str(p): u for p, u in uses.items()
               if u and p not in SELECTOR and p.parts[1] != "xla_cpu" and p != Path("jaxfer/backend.py")}
    assert outside == {}
    backend = uses[Path("jaxfer/backend.py")]  # defines cpu_tuned; the selector is its one caller
    assert len(backend) == 1 and backend[0].endswith(": cpu_tuned")
    # the scan sees what it looks for: the selector uses every kernel and asks cpu_tuned
    selector = " ".join(uses[Path("jaxfer/code_path.py")])
    for name in ("jaxfer.xla_cpu", "GemmConv", "GemmConvTranspose", "cpu_tuned"):
        assert name in selector, name


def _cfg(tuning: str, extra=()):
    return config.load(None, SHORT + [f"tuning={tuning}", *extra])


def test_accelerator_tuning_switches_strategy_chunks_and_convs_on_this_cpu():
    cpu, acc = (CodePath.from_config(_cfg(t)) for t in ("cpu", "accelerator"))
    assert (cpu, acc) == (CodePath(True, "gemm"), CodePath(False, "xla"))
    assert CodePath.from_config(_cfg("auto")) == cpu  # this machine runs XLA CPU
    many = (CPU_VMAP_MAX_SEEDS + 1) * mesh.device_count()
    assert (seed_axis.resolve("auto", many, cpu), seed_axis.resolve("auto", many, acc)) == ("sequential", "vmap")
    assert seed_axis.resolve("auto", many, cpu, convs=False) == "vmap"  # dense-only networks vmap at any count
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    for name, convs in (("mlp", False), ("catch_cnn", True)):  # what compile_trainer reads the network by
        net = q_nets.make_network(name, 3, cpu)
        params = jax.vmap(lambda k: net.init(k, jnp.zeros((1, 21, 21, 4), jnp.uint8)))(keys)  # noqa: B023
        assert seed_axis.has_convs(params) == convs, name

    # Grad-CAM's chunks follow the network's path: lax.map over chunks of 32 (a scan) or one batch of 64
    obs = jnp.zeros((64, 21, 21, 1), jnp.uint8)
    scans = {}
    for path in (cpu, acc):
        net = q_nets.make_network("catch_cnn", 3, path)
        params = net.init(jax.random.PRNGKey(0), obs[:1])
        jaxpr = str(jax.make_jaxpr(lambda o: gradcam.cams(net, params, o))(obs))
        scans[path.cpu] = jaxpr.count("scan[")
    assert scans[True] >= 1 and scans[False] == 0

    # the networks' convs: im2col GEMMs with custom gradients, or the backend's conv op in the gradient too
    env = envs.make("catch/v0", "grid")
    for path, gemm in ((cpu, True), (acc, False)):
        algo = agents.ALGORITHMS["dqn"](_cfg("cpu" if gemm else "accelerator"), 3, path)
        obs = jnp.zeros((4, *env.obs_shape), env.obs_dtype)
        params = algo.init_params(jax.random.PRNGKey(0), obs[:1])
        grad = str(jax.make_jaxpr(jax.grad(lambda p: algo.q_values(p, obs).sum()))(params))
        convs = grad.count("conv_general_dilated")
        assert convs == 0 if gemm else convs > 2  # the xla path: in the gradient too, beyond the 2 convs' forward


@pytest.mark.parametrize("tuning,conditional", [("accelerator", False), ("cpu", True)])
def test_the_epoch_compiles_without_a_conditional_off_the_cpu_path(tuning, conditional):
    """The learning-start gate is the XLA-CPU path's; elsewhere the epoch that crosses ``learning_starts``
    is a collecting scan then a learning scan, and no compiled variant holds a conditional."""
    cfg = _cfg(tuning, ["seeds=1"])
    trainer = agents.make_trainer(cfg, envs.make(cfg.env, cfg.obs))
    state = trainer.init(mesh.seed_keys(cfg.seed, cfg.seeds))
    epoch, _ = seed_axis.compile_trainer(trainer, state, cfg.strategy)
    assert (trainer.warmup_iterations is None) == conditional
    # crossing learning_starts, and all learning
    variants = [None] if trainer.warmup_iterations is None else [trainer.warmup_iterations(state), 0]
    assert variants != [0, 0]
    for variant in variants:
        hlo = epoch.compiled(variant).as_text()
        assert bool(re.search(r"\sconditional\(", hlo)) == conditional, variant  # the op, not metadata names


@pytest.mark.stack
@pytest.mark.parametrize("tuning", ["cpu", "accelerator"])
def test_a_dense_only_epoch_leaves_ynnpack_out_on_the_cpu_path_only(tuning):
    """XLA CPU's YNNPACK fusions (its default for dots) are off in a dense-only network's epoch on the XLA-CPU
    path (``CodePath.compiler_options``), and only there: a conv network keeps XLA's default."""
    cfg = _cfg(tuning, ["seeds=1", "network=mlp"])
    trainer = agents.make_trainer(cfg, envs.make(cfg.env, cfg.obs))
    state = trainer.init(mesh.seed_keys(cfg.seed, cfg.seeds))
    epoch, _ = seed_axis.compile_trainer(trainer, state, cfg.strategy)
    hlo = epoch.compiled(None if trainer.warmup_iterations is None else trainer.warmup_iterations(state)).as_text()
    assert ("__ynn_fusion" in hlo) == (tuning == "accelerator")
    assert trainer.path.compiler_options(convs=True) == {}


def _fcn_step(path: CodePath):
    obs = jax.random.randint(jax.random.PRNGKey(0), (2, 10, 10, 4), 0, 256).astype(jnp.uint8)
    labels = jax.random.randint(jax.random.PRNGKey(1), (2, 10, 10), 0, 5)
    net = FCN(5, path=path)
    params = FCN(5).init(jax.random.PRNGKey(2), obs)  # one parameter tree for both paths

    def loss(p):
        return optax.softmax_cross_entropy_with_integer_labels(net.apply(p, obs), labels).mean()

    step = jax.jit(jax.value_and_grad(loss))
    return step(params), step.lower(params).compile().as_text()


def test_fcn_holds_convolutions_off_the_cpu_path_and_agrees_with_it():
    (loss_acc, grads_acc), hlo_acc = _fcn_step(PLAIN)
    (loss_cpu, grads_cpu), hlo_cpu = _fcn_step(CodePath.of("cpu"))
    convs = lambda hlo: len(re.findall(r"\sconvolution\(", hlo))  # noqa: E731
    assert convs(hlo_acc) >= 4  # 3 convs and the transposed conv, and their gradients
    assert convs(hlo_cpu) == 0  # im2col GEMMs forward and backward
    np.testing.assert_allclose(loss_acc, loss_cpu, rtol=1e-5)
    for g_acc, g_cpu in zip(jax.tree.leaves(grads_acc), jax.tree.leaves(grads_cpu)):
        assert np.linalg.norm(g_acc - g_cpu) <= 1e-3 * np.linalg.norm(g_cpu)


def test_networks_built_directly_take_the_plain_path():
    assert q_nets.make_network("catch_cnn", 3).path == PLAIN
    assert q_nets.NETWORKS["seg_ddqn"](3).path == PLAIN
    assert actor_critic.make_network("minatar_ac", 3).path == PLAIN
    assert FCN(3).path == PLAIN


def test_a2c_on_both_paths_trains_alike():
    from seed_mesh_probe import probe

    a2c = ["agent=a2c", "network=minatar_ac", "n_steps=5"]
    cpu, acc = (probe(None, SHORT + a2c + [f"tuning={t}"])["history"] for t in ("cpu", "accelerator"))
    for e, (a, c) in enumerate(zip(acc, cpu)):
        for k in c:
            np.testing.assert_allclose(a[k], c[k], rtol=1e-4, atol=1e-5, err_msg=f"epoch {e} {k}")


@pytest.mark.parametrize("tuning,said", [("cpu", "XLA-CPU, conv_impl gemm"),
                                         ("accelerator", "accelerator, conv_impl xla")])
def test_the_cli_says_the_runs_code_path(capsys, tmp_path, tuning, said):
    from test_config_cli import _main

    text = _main(capsys, "train", f"tuning={tuning}", "--dry-run", "--out", tmp_path / "run")
    assert f"# code path: {said};" in text
