"""Activation ablation: how does the hidden-layer activation change what an MLP and a CNN learn?

Question: for every hidden-layer activation of funcnn (logistic, tanh, hard_logistic,
hard_tanh, relu, leaky_relu, prelu, elu, swish, softplus, gelu -- the elementwise activations
of the registry, ``funcnn.registry.activation_names(hidden=True)``; softmax/log_softmax are
output nonlinearities and are not used between hidden layers), and for the user's own ones
(``--import my_acts --activations relu mish``: a module that registers ``mish`` with
``funcnn.define_activation``), trained under the same budget on the same data from the same
seeds:

- how accurate is each (test accuracy, mean +- std over seeds; learning curves as bands)?
- how does the error signal travel back through the layers (per-layer error-term norms
  ``||delta^(l)||`` on a fixed training batch, over training, from
  ``funcnn.nn.diagnostics.error_terms``)?
- how many units are dead (ReLU family: input <= 0 on every example of the fixed batch) or
  saturated (logistic/tanh/hard_*), over training (``funcnn.nn.diagnostics.activation_stats``),
  and how many are *silent* (receive (almost) no error signal: the unit's error-term norm
  over the batch is below 1e-3 times its layer's mean)?
- at a high learning rate, do plain ReLU units die while leaky/parametric/ELU units do not?
  (measured: dead and silent fractions per activation at the base and the high rate);
- what does each activation cost (forward + backward, timed op-level on a fixed array,
  median over interleaved repeats, relative to relu)?
- do the hand-written backward rules and autodiff give the same training (max abs
  difference of the loss curves of one configuration) and what does a step of each cost?

Grid: dataset x architecture x activation x learning rate x seed. The models are
``funcnn.nn.models.mlp`` and ``funcnn.nn.models.cnn1d`` (MNIST-1D's baseline CNN; on the 8x8
``digits`` images the CNN is ``funcnn.nn.models.cnn2d``), trained with Adam on softmax
cross-entropy. All seeds and learning rates of one (dataset, architecture, activation, rule)
run as ONE vmapped, jitted program (``funcnn.train.run_grid``), so each activation is
compiled once per architecture. The default run covers MNIST-1D only (to fit in a few
minutes on 2 CPU cores); add digits with ``--datasets mnist1d digits``.

Outputs (results/activation_ablation/<run>/): config.json, metrics.jsonl, summary.json,
summary.md (tables + computed Findings), accuracy.png, learning_curves.png,
delta_norms_<dataset>_<arch>.png, dead_saturated.png, high_lr_dead.png, timing.png,
rule_comparison.png, curves.npz (the curves behind the plots).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import funcnn  # first: applies funcnn's XLA CPU defaults before JAX starts a backend
import jax
import jax.numpy as jnp
import numpy as np
import optax

from funcnn import Choice
from funcnn import registry
from funcnn.data import load
from funcnn.nn.diagnostics import RELU_FAMILY, SATURATING, activation_stats, error_terms
from funcnn.losses import softmax_cross_entropy
from funcnn.nn.models import cnn1d, cnn2d, mlp
from funcnn.train import (
    ExperimentConfig,
    GridResult,
    TrainSpec,
    make_train_step,
    markdown_table,
    PreparedGrid,
    open_run,
    parse_config,
    prepare_grid,
    grid_workers,
    run_grids,
    summarize,
    time_interleaved,
)
from funcnn.study.cli import (
    ConfigError,
    apply_smoke,
    check_batch,
    check_hidden_activations,
    check_int,
    check_number,
    check_positive,
    check_values,
    dataset_facts,
    experiment_main,
    explicit_fields,
    grid_progress,
    interrupted_at,
    replace_config,
    require,
    stopped_note,
    validate,
)
from funcnn.study.plots import band, nanmean, pyplot
from funcnn.study.report import Clock, Report
from funcnn.train.engine import member_keys

EXPERIMENT = "activation_ablation"
#: The default grid: every built-in hidden-layer (elementwise) activation of funcnn. What
#: ``--activations`` accepts is read from the registry at run time (:func:`hidden_activations`),
#: so activations a ``--import`` module registers are valid too.
HIDDEN_ACTIVATIONS = tuple(a for a in registry.activation_names(hidden=True) if registry.get_activation(a).builtin)
#: A unit is "silent" on a batch when its error-term norm is below this fraction of its
#: layer's mean unit norm: it (almost) receives no gradient.
SILENT_TOL = 1e-3
RULES = ("hand", "autodiff")


@dataclasses.dataclass
class Config(ExperimentConfig, imports=True):
    """Activation x architecture x learning-rate x seed grid on MNIST-1D (and digits)."""

    datasets: tuple[Literal["mnist1d", "digits", "mnist1d_shuffled"], ...] = ("mnist1d",)
    """Datasets (default MNIST-1D only, to fit the time budget; add 'digits')."""
    archs: tuple[Literal["mlp", "cnn"], ...] = ("mlp", "cnn")
    """Architectures: 'mlp' (funcnn.nn.models.mlp) and 'cnn' (cnn1d on sequences, cnn2d on images)."""
    activations: tuple[str, ...] = HIDDEN_ACTIVATIONS
    """Hidden-layer activations: any registered elementwise one, the user's own (``--import``)
    included (softmax/log_softmax are output nonlinearities: not allowed)."""
    mlp_lr: float = 3e-3
    """Adam learning rate of the MLPs."""
    cnn_lr: float = 1e-2
    """Adam learning rate of the CNNs."""
    high_lr: float = 3e-2
    """The high learning rate of the dying-ReLU variant: a finite number > 0, or 0 to turn the
    variant off (a negative rate is refused)."""
    high_lr_archs: tuple[Literal["mlp", "cnn"], ...] = ("mlp",)
    """Architectures that also train at ``high_lr`` (it shares their compiled program); each one
    of --archs (none: no high-rate variant)."""
    mlp_widths: tuple[int, ...] = (100, 100)
    """Hidden widths of the MLP (MNIST-1D paper: 100 units)."""
    mlp_steps: int = 1500
    cnn_steps: int = 600
    mlp_batch: int = 128
    cnn_batch: int = 32
    """The CNN's cost grows with the batch on CPU; 32 buys more updates for the same time."""
    mlp_evals: int = 12
    """Evaluations (test set + fixed-batch diagnostics) per MLP run, evenly spaced, plus one at init."""
    cnn_evals: int = 8
    probe_size: int = 256
    """Training examples in the fixed batch of the per-layer diagnostics."""
    rule: Literal["hand", "autodiff"] = "hand"
    """Backward rule of the main grid: the hand-written rules or jax.grad of the twins."""
    compare_rules: bool = True
    """Train one configuration with the other rule too and compare the curves and step times."""
    compare_arch: Literal["mlp", "cnn"] = "mlp"
    """Architecture of the rule comparison (when left at mlp and mlp is not among --archs: the
    first of --archs)."""
    compare_activation: str = "relu"
    """Activation of the rule comparison (when left at relu and relu is not among
    --activations: the first of --activations)."""
    timing_shape: tuple[int, int] = (512, 1024)
    """Shape of the fixed array the activations are timed on."""
    timing_rounds: int = 15
    """Interleaved timing rounds (medians over rounds)."""
    checkpoint: bool = False
    """Save orbax checkpoints (needed for --resume)."""
    grid_workers: int | None = None
    """Grids (one per dataset and architecture) trained at once, in threads: default one per
    CPU core on CPU (a small network keeps about one core busy), one at a time on GPU/TPU
    or with a device mesh (funcnn.train.grid_workers)."""
    choice_mode: Literal["blocks", "select"] = "blocks"
    """How one program runs every activation (and rule): 'blocks' runs each pick's members in
    turn with a real branch; 'select' vmaps the pick, computing every alternative and selecting."""


SMOKE: dict[str, Any] = dict(
    archs=("mlp",), activations=("relu", "leaky_relu"), mlp_widths=(16,), mlp_steps=8, cnn_steps=8,
    mlp_batch=32, cnn_batch=32, mlp_evals=2, cnn_evals=2, probe_size=32, seeds=(0, 1), timing_shape=(16, 64), timing_rounds=3,
)


def resolve_defaults(cfg: Config) -> Config:
    """Defaults that depend on other fields: the rule comparison's activation and architecture
    fall back to the first of --activations / --archs when theirs is not in the grid (and the
    command line did not set them)."""
    if cfg.activations and cfg.compare_activation not in cfg.activations and "compare_activation" not in explicit_fields(cfg):
        cfg = replace_config(cfg, compare_activation=cfg.activations[0])  # relu is not in the grid
    if cfg.archs and cfg.compare_arch not in cfg.archs and "compare_arch" not in explicit_fields(cfg):
        cfg = replace_config(cfg, compare_arch=cfg.archs[0])
    return cfg


def check_config(cfg: Config) -> None:
    """Every value that cannot be right stops the run before it trains or writes anything
    (:func:`funcnn.study.cli.validate`: one line, exit status 2)."""
    check_values("--datasets", cfg.datasets)
    check_values("--archs", cfg.archs)
    check_values("--activations", cfg.activations)
    check_hidden_activations(cfg.activations, flag="--activations")  # after --import: the user's own too
    check_positive("--mlp-lr", cfg.mlp_lr)
    check_positive("--cnn-lr", cfg.cnn_lr)
    check_number("--high-lr", cfg.high_lr, low=0)
    check_values("--high-lr-archs", cfg.high_lr_archs, allow_empty=True)
    explicit = explicit_fields(cfg)
    if "high_lr_archs" in explicit:
        if cfg.high_lr == 0 and cfg.high_lr_archs:
            raise ConfigError("--high-lr-archs has no effect with --high-lr 0 (the variant is off): give one of them")
        for a in cfg.high_lr_archs:
            require(a in cfg.archs, "--high-lr-archs", f"among --archs ({' '.join(cfg.archs)})", a)
    if cfg.high_lr > 0:
        for a in cfg.high_lr_archs:
            if a in cfg.archs and cfg.high_lr == base_lr(cfg, a):
                raise ConfigError(f"--high-lr must differ from --{a}-lr ({base_lr(cfg, a):g}), the base rate of {a}, "
                                  f"got {cfg.high_lr:g} (0 turns the variant off)")
    check_values("--mlp-widths", cfg.mlp_widths, unique=False, each=check_int)
    n_train = min(dataset_facts(d)["n_train"] for d in cfg.datasets)
    smallest = min(cfg.datasets, key=lambda d: dataset_facts(d)["n_train"])
    for arch in ("mlp", "cnn"):
        check_int(f"--{arch}-steps", getattr(cfg, f"{arch}_steps"))
        check_batch(f"--{arch}-batch", getattr(cfg, f"{arch}_batch"), smallest, n=n_train)
        check_int(f"--{arch}-evals", getattr(cfg, f"{arch}_evals"))
    check_batch("--probe-size", cfg.probe_size, smallest, n=n_train)
    if cfg.compare_rules:
        require(cfg.compare_arch in cfg.archs, "--compare-arch", f"among --archs ({' '.join(cfg.archs)})",
                cfg.compare_arch)
        require(cfg.compare_activation in cfg.activations, "--compare-activation",
                f"among --activations ({' '.join(cfg.activations)})", cfg.compare_activation)
    check_values("--timing-shape", cfg.timing_shape, unique=False, each=check_int)
    check_int("--timing-rounds", cfg.timing_rounds)
    if cfg.grid_workers is not None:
        check_int("--grid-workers", cfg.grid_workers)
    # a flag that would do nothing is refused, not ignored
    for arch, fields in (("mlp", ("mlp_lr", "mlp_widths", "mlp_steps", "mlp_batch", "mlp_evals")),
                         ("cnn", ("cnn_lr", "cnn_steps", "cnn_batch", "cnn_evals"))):
        given = [f for f in fields if f in explicit]
        if given and arch not in cfg.archs:
            raise ConfigError(f"--{given[0].replace('_', '-')} sets the {arch} runs, but --archs "
                              f"({' '.join(cfg.archs)}) has no {arch}: add it to --archs or drop the flag")
    given = [f for f in ("compare_arch", "compare_activation") if f in explicit]
    if given and not cfg.compare_rules:
        raise ConfigError(f"--{given[0].replace('_', '-')} sets the rule comparison, which --no-compare-rules turns "
                          f"off: give one of them")


def hidden_activations() -> tuple[str, ...]:
    """The activations registered now that a hidden layer can use (built-ins, then the user's)."""
    return registry.activation_names(hidden=True)


def output_nonlinearities() -> tuple[str, ...]:
    """Registered activations that normalize over a whole row (softmax, log_softmax): not units."""
    hidden = set(hidden_activations())
    return tuple(a for a in registry.activation_names() if a not in hidden)


# --------------------------------------------------------------------------------------
# The grid
# --------------------------------------------------------------------------------------


def arch_settings(cfg: Config, arch: str) -> dict[str, Any]:
    """``{lr, steps, batch, evals}`` of an architecture."""
    if arch == "mlp":
        return dict(lr=float(cfg.mlp_lr), steps=cfg.mlp_steps, batch=cfg.mlp_batch, evals=cfg.mlp_evals)
    return dict(lr=float(cfg.cnn_lr), steps=cfg.cnn_steps, batch=cfg.cnn_batch, evals=cfg.cnn_evals)


def base_lr(cfg: Config, arch: str) -> float:
    return arch_settings(cfg, arch)["lr"]


def lrs_of(cfg: Config, arch: str) -> list[float]:
    """The learning rates an architecture trains at: its base one, plus the high one."""
    lrs = [base_lr(cfg, arch)]
    if cfg.high_lr > 0 and arch in cfg.high_lr_archs and cfg.high_lr != lrs[0]:
        lrs.append(float(cfg.high_lr))
    return lrs


def other_rule(rule: str) -> str:
    return "autodiff" if rule == "hand" else "hand"


def grid_configs(cfg: Config) -> list[dict[str, Any]]:
    """Every member: ``{dataset, arch, activation, rule, lr, seed}``.

    The main grid uses ``cfg.rule``; with ``compare_rules`` the comparison configuration
    (first dataset, ``compare_arch``, ``compare_activation``, same learning rates and seeds)
    is added with the other rule, as its own compiled group of the same size.
    """
    configs = []
    for ds in cfg.datasets:
        for arch in cfg.archs:
            for act in cfg.activations:
                for lr in lrs_of(cfg, arch):
                    for s in cfg.seeds:
                        configs.append(dict(dataset=ds, arch=arch, activation=act, rule=cfg.rule, lr=lr, seed=int(s)))
    if cfg.compare_rules and cfg.compare_arch in cfg.archs:
        for lr in lrs_of(cfg, cfg.compare_arch):
            for s in cfg.seeds:
                configs.append(dict(dataset=cfg.datasets[0], arch=cfg.compare_arch, activation=cfg.compare_activation,
                                    rule=other_rule(cfg.rule), lr=lr, seed=int(s)))
    return configs


def make_model(arch: str, activation: str, rule: str, example_shape: tuple[int, ...], num_classes: int,
               mlp_widths: Sequence[int]) -> Any:
    """The MLP, or the CNN matching the input rank (cnn1d on (W, C), cnn2d on (H, W, C))."""
    if arch == "mlp":
        return mlp(tuple(mlp_widths), num_classes, activation, rule=rule)
    if len(example_shape) == 2:
        return cnn1d(out=num_classes, activation=activation, rule=rule)
    return cnn2d(out=num_classes, activation=activation, rule=rule)


def init_tables(cfg: Config, configs: Sequence[Mapping[str, Any]], data: Mapping[str, Any]) -> dict[tuple, Any]:
    """Initial params of every (dataset, arch), stacked over seeds.

    The model of a (dataset, arch) picks its activation and rule by data (one program for
    all of them), and its params are the same for every pick: the layers' weights, plus
    PReLU's slopes and Swish's beta (unused, with zero gradient, by the other activations).
    Drawn with exactly the key the engine uses (the init key of
    :func:`funcnn.train.engine.member_keys`), by one jitted program per (dataset, arch) called
    once per seed: the initializers keep each random draw apart from its scaling, so these
    are bitwise the weights an eager ``model.init`` draws and those of a plain ``run_grid``.
    The weights of a seed are the same for every activation.
    """
    seeds = [int(s) for s in cfg.seeds]

    def table(key: tuple[str, str]) -> Any:
        d = data[key[0]]
        model = make_model(key[1], Choice(tuple(cfg.activations), 0), "hand", d.x_train.shape[1:], d.num_classes,
                           cfg.mlp_widths)
        in_shape = (arch_settings(cfg, key[1])["batch"], *d.x_train.shape[1:])
        draw = jax.jit(lambda seed: model.init(member_keys(seed)[0], in_shape)[1:])
        return jax.tree.map(lambda *a: np.stack(a), *[jax.device_get(draw(s)) for s in seeds])

    return {key: table(key) for key in dict.fromkeys((c["dataset"], c["arch"]) for c in configs)}


def make_diagnostics(x_probe: jax.Array, y_probe: jax.Array) -> Callable[..., dict[str, jax.Array]]:
    """The engine's diagnostics hook: per-layer numbers on a fixed training batch."""

    def diagnostics(model: Any, params: Any, state: Any) -> dict[str, jax.Array]:
        et = error_terms(model, params, state, softmax_cross_entropy, x_probe, y_probe)
        st = activation_stats(model, params, state, x_probe)
        silent = []
        for d in et.deltas[:-1]:  # hidden weighted layers (the last one is the read-out)
            unit = jnp.sqrt(jnp.sum(jnp.square(d.astype(jnp.float32)), axis=tuple(range(d.ndim - 1))))
            silent.append(jnp.mean(unit <= SILENT_TOL * jnp.mean(unit)))
        return {
            "probe_loss": et.loss,
            "delta_norms": et.delta_norms,
            "dead_fraction": st.dead_fraction,
            "inactive_fraction": st.inactive_fraction,
            "saturated_fraction": st.saturated_fraction,
            "silent_fraction": jnp.stack(silent),
        }

    return diagnostics


def train_grid(
    configs: Sequence[Mapping[str, Any]],
    cfg: Config,
    data: Mapping[str, Any],
    *,
    run: Any = None,
    mesh: Any = None,
) -> tuple[dict[tuple[str, str], GridResult], bool, int]:
    """Train ``configs``: one grid per (dataset, arch), one compiled program per rule in it.

    The activation is a choice (picked by data, :class:`funcnn.Choice`): every activation of
    an architecture runs in the same program, block after block, with seeds and learning
    rates vmapped inside a block. The rule stays a program boundary (the rule comparison is
    a second, relu-only program): as a choice it would put both rules' code, in branches,
    around every layer of every member (measured: MLP training 97 s instead of ~60 s). The
    grids are prepared first and the next one compiles in a background thread while the
    current one trains.

    ``mesh`` (a :class:`jax.sharding.Mesh`, from ``--devices``/``--mesh``) is handed to every
    grid: its members are split over the ``grid`` axis. ``None``: one device.

    The grids train side by side, ``--grid-workers`` at a time (default: one per CPU core on
    CPU, see :func:`funcnn.train.grid_workers`).

    Returns ``({(dataset, arch): GridResult}, interrupted, workers, started)`` (``started``:
    ``time.perf_counter()`` when the grids began); after a Ctrl-C the grids not yet started
    are skipped and what trained is returned.
    """
    seeds = [int(s) for s in cfg.seeds]
    tables = init_tables(cfg, configs, data)
    parts: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for c in configs:
        parts.setdefault((c["dataset"], c["arch"]), []).append(dict(c))
    prepared: dict[tuple[str, str], PreparedGrid] = {}
    for (ds, arch), part in parts.items():
        d = data[ds]
        st = arch_settings(cfg, arch)
        steps = st["steps"]
        xp = jax.device_put(d.x_train[: cfg.probe_size])
        yp = jax.device_put(d.y_train[: cfg.probe_size])

        def build(c: Mapping[str, Any], d: Any = d) -> TrainSpec:
            model = make_model(c["arch"], c["activation"], c["rule"], d.x_train.shape[1:], d.num_classes,
                               cfg.mlp_widths)
            table = tables[(c["dataset"], c["arch"])]

            def init(key: jax.Array, in_shape: tuple[int, ...]) -> tuple[Any, Any]:
                s = c["seed"]
                j = seeds.index(s) if isinstance(s, int) else jnp.argmax(jnp.asarray(seeds) == s)
                return jax.tree.map(lambda a: jnp.asarray(a)[j], table)

            return TrainSpec(model, "softmax_cross_entropy", optax.adam(c["lr"]), init)

        ckpt = f"{run.checkpoint_dir}/{ds}_{arch}" if (run is not None and (cfg.checkpoint or cfg.resume)) else None
        prepared[(ds, arch)] = prepare_grid(
            build, part, (d.x_train, d.y_train), test_data=(d.x_test, d.y_test),
            steps=steps, batch_size=st["batch"], eval_every=max(1, steps // max(1, st["evals"])),
            eval_train=False, batched=("lr",), choices=("activation",), choice_mode=cfg.choice_mode, diagnostics=make_diagnostics(xp, yp),
            checkpoint_dir=ckpt, checkpoint_every=max(1, steps // 4) if ckpt else None,
            resume=bool(cfg.resume and ckpt), run_dir=run, progress=cfg.progress,
            mesh=mesh, name=f"{ds}/{arch}",
        )
    grids = list(prepared.values())
    workers = grid_workers(grids, cfg.grid_workers)
    started = time.perf_counter()
    done = run_grids(grids, workers=workers)
    results = dict(zip(prepared, done))
    return results, any(r.interrupted for r in done) or len(done) < len(grids), workers, started


# --------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------


def activation_costs(names: Sequence[str], shape: tuple[int, int], rounds: int) -> list[dict[str, Any]]:
    """Forward + backward time of each activation op (both rules) on a fixed array.

    Each timed call is ``jax.vjp`` of the registered op (hand rule: ``op``; autodiff: its twin
    ``op.reference``) -- forward, residuals -- followed by the pullback of a fixed random
    cotangent. A per-channel learnable param (prelu's slope) is an input at its initial value,
    its gradient included (summed into the call's third output); a scalar one (swish's beta)
    keeps its default. Every (rule, op) pair is a branch of ONE compiled program, picked by a
    runtime index (``lax.switch``: only the picked branch runs), so timing them compiles one
    program instead of one per pair. Returned per activation: median microseconds per call and
    the median over rounds of the per-round ratio to ``relu`` under the same rule.
    """
    rng = np.random.default_rng(0)  # drawn on the host: no XLA program for the inputs
    x = jax.device_put(rng.standard_normal(shape, np.float32))
    g = jax.device_put(rng.standard_normal(shape, np.float32))
    pairs = [(rule, n) for rule in RULES for n in dict.fromkeys(["relu", *names])]
    branches = []
    for rule, n in pairs:
        entry = registry.get_activation(n)
        op = entry.hand if rule == "hand" else entry.reference
        slopes = tuple(np.full((shape[-1],), p.init, np.float32) for p in entry.params if p.per_channel)

        def fwd_bwd(x: jax.Array, g: jax.Array, op: Callable = op, slopes: tuple = slopes) -> Any:
            y, pullback = jax.vjp(op, x, *map(jnp.asarray, slopes))
            dx, *dparams = pullback(g)
            return y, dx, sum((jnp.sum(d) for d in dparams), jnp.zeros((), x.dtype))

        branches.append(fwd_bwd)
    program = jax.jit(lambda i, x, g: jax.lax.switch(i, branches, x, g))
    keyed = {f"{r}:{n}": (lambda i=jax.device_put(np.int32(i)): program(i, x, g)) for i, (r, n) in enumerate(pairs)}
    samples = time_interleaved(keyed, rounds=rounds, warmup=1, min_time=0.01)
    rows = []
    for n in names:
        row: dict[str, Any] = {"activation": n}
        for rule in RULES:
            t = samples[f"{rule}:{n}"]
            row[f"{rule}_us"] = float(np.median(t) * 1e6)
            row[f"{rule}_vs_relu"] = float(np.median(t / samples[f"{rule}:relu"]))
        row["hand_vs_autodiff"] = float(np.median(samples[f"hand:{n}"] / samples[f"autodiff:{n}"]))
        rows.append(row)
    return rows


def step_costs(cfg: Config, d: Any, arch: str, activation: str, rounds: int) -> dict[str, float]:
    """Milliseconds per jitted train step (one member, the architecture's batch) per rule."""
    st = arch_settings(cfg, arch)
    x = jax.device_put(d.x_train[: st["batch"]])
    y = jax.device_put(d.y_train[: st["batch"]])
    fns = {}
    opt = optax.adam(st["lr"])
    params = state = opt_state = None
    for rule in RULES:
        model = make_model(arch, activation, rule, d.x_train.shape[1:], d.num_classes, cfg.mlp_widths)
        if params is None:  # the rules share their layers, so their params: one jitted init (the key
            # made in it too: an eager PRNGKey compiles programs of its own)
            def init(model: Any = model) -> tuple[Any, ...]:
                key = jax.random.PRNGKey(0)
                _, p, s = model.init(key, x.shape)
                return p, s, opt.init(p), key

            params, state, opt_state, key = jax.jit(init)()
        step = make_train_step(model, "softmax_cross_entropy", opt)
        fns[rule] = lambda step=step, p=params, o=opt_state, s=state: step(p, o, s, x, y, key)
    samples = time_interleaved(fns, rounds=rounds, warmup=1, min_time=0.01)
    out = {f"{r}_ms_per_step": float(np.median(samples[r]) * 1e3) for r in RULES}
    out["hand_vs_autodiff"] = float(np.median(samples["hand"] / samples["autodiff"]))
    return out


# --------------------------------------------------------------------------------------
# Collecting the numbers
# --------------------------------------------------------------------------------------


def _last_finite_row(v: np.ndarray) -> np.ndarray:
    """The last evaluation whose entries are not all NaN (a diverged member stops early)."""
    v = np.asarray(v, np.float64)
    for i in range(v.shape[0] - 1, -1, -1):
        if not np.all(np.isnan(v[i])):
            return v[i]
    return v[-1] if len(v) else np.asarray(np.nan)


def member_record(m: Any) -> dict[str, Any]:
    """A member's final scalar numbers (for :func:`summarize`)."""
    h = m.history
    em = h.eval_metrics
    loss = h.step_metrics["loss"]
    spe = max(1, h.steps_per_epoch)
    tail = loss[-spe:] if len(loss) else loss
    mets: dict[str, Any] = {
        "test_accuracy": em["test_accuracy"][-1] if len(h.eval_steps) else np.nan,
        "test_loss": em["test_loss"][-1] if len(h.eval_steps) else np.nan,
        "train_loss": float(nanmean(tail)) if len(tail) else np.nan,
    }
    if len(h.eval_steps):
        dead = _last_finite_row(em["dead_fraction"])
        sat = _last_finite_row(em["saturated_fraction"])
        silent = _last_finite_row(em["silent_fraction"])
        inactive = _last_finite_row(em["inactive_fraction"])
        dn = _last_finite_row(em["delta_norms"])
        dn0 = em["delta_norms"][0]
        mets.update(
            dead=float(nanmean(dead)), inactive=float(nanmean(inactive)), saturated=float(nanmean(sat)),
            silent=float(nanmean(silent)),
            # ||delta|| of the first hidden layer over the last hidden layer's (< 1: it shrinks backwards)
            delta_ratio_init=float(dn0[0] / dn0[-2]) if len(dn0) > 1 and dn0[-2] > 0 else np.nan,
            delta_ratio_final=float(dn[0] / dn[-2]) if len(dn) > 1 and dn[-2] > 0 else np.nan,
        )
    mets = {k: (float(v) if v is not None else np.nan) for k, v in mets.items()}
    return {"config": dict(m.config), "metrics": mets, "diverged": m.diverged, "step": m.step}


def select(results: Mapping[tuple[str, str], GridResult], **where: Any) -> list[Any]:
    """Members (all grids) whose config matches ``where``, in grid order."""
    out = []
    for res in results.values():
        for m in res.members:
            if all(m.config.get(k) == v for k, v in where.items()):
                out.append(m)
    return out


def stacked(members: Sequence[Any], metric: str, *, step_metric: bool = False) -> np.ndarray:
    """``(S, T)`` (or ``(S, E, ...)``) of a metric over members, NaN-padded."""
    arrs = [np.asarray((m.history.step_metrics if step_metric else m.history.eval_metrics)[metric], np.float64)
            for m in members]
    if not arrs:
        return np.zeros((0, 0))
    n = max(a.shape[0] for a in arrs)
    out = np.full((len(arrs), n, *arrs[0].shape[1:]), np.nan)
    for i, a in enumerate(arrs):
        out[i, : a.shape[0]] = a
    return out


def rule_comparison(results: Mapping[tuple[str, str], GridResult], cfg: Config) -> list[dict[str, Any]]:
    """Per (lr, seed): max abs differences between the two rules' curves."""
    rows = []
    base = dict(dataset=cfg.datasets[0], arch=cfg.compare_arch, activation=cfg.compare_activation)
    for lr in lrs_of(cfg, cfg.compare_arch):
        for s in cfg.seeds:
            a = select(results, **base, lr=lr, seed=int(s), rule=cfg.rule)
            b = select(results, **base, lr=lr, seed=int(s), rule=other_rule(cfg.rule))
            if not a or not b:
                continue
            ha, hb = a[0].history, b[0].history
            n = min(len(ha.step_metrics["loss"]), len(hb.step_metrics["loss"]))
            e = min(len(ha.eval_steps), len(hb.eval_steps))
            la, lb = ha.step_metrics["loss"][:n], hb.step_metrics["loss"][:n]
            both = np.isfinite(la) & np.isfinite(lb)
            rows.append({
                "lr": lr, "seed": int(s), "steps": int(n),
                "max_abs_diff_train_loss": float(np.max(np.abs(la - lb)[both])) if both.any() else np.nan,
                "max_abs_diff_test_loss": float(np.nanmax(np.abs(ha.eval_metrics["test_loss"][:e] - hb.eval_metrics["test_loss"][:e]))) if e else np.nan,
                "max_abs_diff_test_accuracy": float(np.nanmax(np.abs(ha.eval_metrics["test_accuracy"][:e] - hb.eval_metrics["test_accuracy"][:e]))) if e else np.nan,
                "max_train_loss": float(np.nanmax(np.abs(la))) if n else np.nan,
                "diverged": f"{a[0].diverged or '-'} / {b[0].diverged or '-'}",
            })
    return rows


# --------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------

#: tab10's colours, then black and olive: 12 distinguishable lines (11 activations).
COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
          "#17becf", "#000000", "#808000"]


def _color(acts: Sequence[str], a: str) -> Any:
    return COLORS[list(acts).index(a) % len(COLORS)] if a in acts else None


def plot_accuracy(run: Any, rows: list[dict[str, Any]], cfg: Config, parts: list[tuple[str, str]]) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(parts), figsize=(5.5 * len(parts), 4.2), squeeze=False)
    for ax, (ds, arch) in zip(axes[0], parts):
        lr = base_lr(cfg, arch)
        rs = [r for r in rows if r["dataset"] == ds and r["arch"] == arch and r["lr"] == lr and r["rule"] == cfg.rule]
        names = [r["activation"] for r in rs]
        mu = np.array([r["test_accuracy_mean"] for r in rs]) * 100
        sd = np.array([r["test_accuracy_std"] for r in rs]) * 100
        pos = np.arange(len(rs))
        ax.bar(pos, mu, yerr=sd, capsize=3, color=[_color(cfg.activations, a) for a in names])
        ax.set_xticks(pos, names, rotation=45, ha="right")
        finite = mu[np.isfinite(mu)]
        if finite.size:
            ax.set_ylim(max(0.0, float(finite.min()) - 15), min(100.0, float(np.nanmax(mu + np.nan_to_num(sd))) + 3))
        for p, m in zip(pos, mu):
            if np.isfinite(m):
                ax.text(p, m + 0.5, f"{m:.1f}", ha="center", va="bottom", fontsize=7)
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{ds} / {arch}: test accuracy, lr={lr:g} (mean ± std, n={len(cfg.seeds)})", fontsize=9)
        ax.grid(True, axis="y", alpha=0.3)
    run.save_figure(fig, "accuracy")


def plot_learning_curves(run: Any, results: Mapping[tuple[str, str], GridResult], cfg: Config,
                         parts: list[tuple[str, str]]) -> dict[str, np.ndarray]:
    plt = pyplot()
    arrays = {}
    fig, axes = plt.subplots(2, len(parts), figsize=(5.5 * len(parts), 7.5), squeeze=False)
    for j, (ds, arch) in enumerate(parts):
        for a in cfg.activations:
            ms = select(results, dataset=ds, arch=arch, activation=a, lr=base_lr(cfg, arch), rule=cfg.rule)
            if not ms:
                continue
            spe = ms[0].history.steps_per_epoch
            steps = max((m.history.eval_steps for m in ms), key=len)
            acc = stacked(ms, "test_accuracy") * 100
            band(axes[0, j], steps / spe, acc, label=a, color=_color(cfg.activations, a))
            # training-batch loss, averaged over ~40 windows of consecutive steps
            loss = stacked(ms, "loss", step_metric=True)
            win = max(1, loss.shape[1] // 40)
            nw = loss.shape[1] // win
            if nw >= 1:
                ep = nanmean(loss[:, : nw * win].reshape(loss.shape[0], nw, win), axis=2)
                band(axes[1, j], (np.arange(nw) + 1) * win / spe, ep, label=a, color=_color(cfg.activations, a), logy=True)
            arrays[f"{ds}_{arch}_{a}_test_accuracy"] = acc
            arrays[f"{ds}_{arch}_{a}_eval_epochs"] = steps / spe
        for ax in axes[:, j]:
            ax.grid(True, alpha=0.3)
        axes[0, j].set_title(f"{ds} / {arch}: test accuracy (%), lr={base_lr(cfg, arch):g}", fontsize=9)
        axes[0, j].set_xlabel("epoch")
        axes[1, j].set_title(f"{ds} / {arch}: training loss (mean batch loss per window)", fontsize=9)
        axes[1, j].set_xlabel("epoch")
        axes[0, j].legend(fontsize=7, ncol=2)
    run.save_figure(fig, "learning_curves")
    return arrays


def plot_delta_norms(run: Any, results: Mapping[tuple[str, str], GridResult], cfg: Config,
                     parts: list[tuple[str, str]]) -> None:
    plt = pyplot()
    for ds, arch in parts:
        lr = base_lr(cfg, arch)
        ms0 = select(results, dataset=ds, arch=arch, lr=lr, rule=cfg.rule)
        if not ms0:
            continue
        n_layers = ms0[0].history.eval_metrics["delta_norms"].shape[-1]
        fig, axes = plt.subplots(1, n_layers, figsize=(3.6 * n_layers, 3.6), squeeze=False, sharey=True)
        for a in cfg.activations:
            ms = select(results, dataset=ds, arch=arch, activation=a, lr=lr, rule=cfg.rule)
            if not ms:
                continue
            spe = ms[0].history.steps_per_epoch
            steps = max((m.history.eval_steps for m in ms), key=len)
            dn = stacked(ms, "delta_norms")  # (S, E, L)
            for l in range(n_layers):
                band(axes[0, l], steps / spe, dn[:, :, l], label=a, color=_color(cfg.activations, a), logy=True)
        for l in range(n_layers):
            kind = "read-out" if l == n_layers - 1 else f"hidden {l + 1}"
            axes[0, l].set_title(f"layer {l + 1} ({kind})", fontsize=9)
            axes[0, l].grid(True, alpha=0.3)
            axes[0, l].set_xlabel("epoch")
        axes[0, 0].set_ylabel("||delta|| on the fixed batch")
        axes[0, -1].legend(fontsize=6, ncol=2)
        fig.suptitle(f"{ds} / {arch}: error-term norm per weighted layer over training (lr={lr:g})", fontsize=10)
        run.save_figure(fig, f"delta_norms_{ds}_{arch}")


def plot_dead_saturated(run: Any, results: Mapping[tuple[str, str], GridResult], cfg: Config,
                        parts: list[tuple[str, str]]) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(2, len(parts), figsize=(5.5 * len(parts), 7.5), squeeze=False)
    for j, (ds, arch) in enumerate(parts):
        for row, (metric, family) in enumerate((("dead_fraction", RELU_FAMILY), ("saturated_fraction", SATURATING))):
            for a in cfg.activations:
                if a not in family:
                    continue
                ms = select(results, dataset=ds, arch=arch, activation=a, lr=base_lr(cfg, arch), rule=cfg.rule)
                if not ms:
                    continue
                spe = ms[0].history.steps_per_epoch
                steps = max((m.history.eval_steps for m in ms), key=len)
                v = nanmean(stacked(ms, metric), axis=2) * 100  # mean over hidden layers
                band(axes[row, j], steps / spe, v, label=a, color=_color(cfg.activations, a))
                if row == 0 and len(lrs_of(cfg, arch)) > 1:  # the high-learning-rate members, dashed
                    hi = lrs_of(cfg, arch)[1]
                    mh = select(results, dataset=ds, arch=arch, activation=a, lr=hi, rule=cfg.rule)
                    if mh:
                        vh = nanmean(stacked(mh, metric), axis=2) * 100
                        xh = max((m.history.eval_steps for m in mh), key=len) / spe
                        band(axes[row, j], xh[: vh.shape[1]], vh, label=f"{a} (lr={hi:g})", color=_color(cfg.activations, a),
                             linestyle="--")
            what = "dead units, % (input <= 0 on every probe example)" if row == 0 else "saturated values, %"
            if row == 0 and len(lrs_of(cfg, arch)) > 1:
                what += f"\nsolid: lr={base_lr(cfg, arch):g}, dashed: lr={lrs_of(cfg, arch)[1]:g}"
            axes[row, j].set_title(f"{ds} / {arch}: {what}", fontsize=9)
            axes[row, j].grid(True, alpha=0.3)
            axes[row, j].set_xlabel("epoch")
            if axes[row, j].get_legend_handles_labels()[0]:
                axes[row, j].legend(fontsize=7)
    run.save_figure(fig, "dead_saturated")


def plot_high_lr(run: Any, rows: list[dict[str, Any]], cfg: Config) -> None:
    plt = pyplot()
    archs = [a for a in cfg.archs if len(lrs_of(cfg, a)) > 1]
    ds = cfg.datasets[0]
    fig, axes = plt.subplots(len(archs), 2, figsize=(12, 3.8 * len(archs)), squeeze=False)
    for i, arch in enumerate(archs):
        for j, (metric, title, acts) in enumerate((
            ("dead", "dead units, %\n(input <= 0 on every probe example)", [a for a in cfg.activations if a in RELU_FAMILY]),
            ("silent", f"silent units, %\n(error-term norm < {SILENT_TOL:g} x layer mean)", list(cfg.activations)),
        )):
            ax = axes[i, j]
            pos = np.arange(len(acts))
            for k, lr in enumerate(lrs_of(cfg, arch)):
                rs = {r["activation"]: r for r in rows if r["dataset"] == ds and r["arch"] == arch and r["lr"] == lr
                      and r["rule"] == cfg.rule}
                mu = np.array([rs[a][f"{metric}_mean"] if a in rs else np.nan for a in acts]) * 100
                sd = np.array([rs[a][f"{metric}_std"] if a in rs else np.nan for a in acts]) * 100
                ax.bar(pos + (k - 0.5) * 0.4, mu, width=0.4, yerr=sd, capsize=2, label=f"lr={lr:g}",
                       color="tab:blue" if k == 0 else "tab:red")
            ax.set_xticks(pos, acts, rotation=45 if len(acts) > 4 else 0, ha="right" if len(acts) > 4 else "center")
            ax.set_title(f"{ds} / {arch}, end of training: {title}", fontsize=9)
            ax.grid(True, axis="y", alpha=0.3)
            ax.legend(fontsize=8)
    run.save_figure(fig, "high_lr_dead")


def plot_timing(run: Any, costs: list[dict[str, Any]], steps: dict[str, float] | None, cfg: Config) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [3, 1]})
    ax = axes[0]
    names = [r["activation"] for r in costs]
    pos = np.arange(len(names))
    for k, rule in enumerate(RULES):
        ax.bar(pos + (k - 0.5) * 0.4, [r[f"{rule}_vs_relu"] for r in costs], width=0.4, label=f"{rule} rule")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks(pos, names, rotation=45, ha="right")
    ax.set_ylabel("forward+backward time / relu's (same rule)")
    ax.set_title(f"activation cost on a {cfg.timing_shape[0]}x{cfg.timing_shape[1]} float32 array "
                 f"(median of {cfg.timing_rounds} interleaved rounds)", fontsize=9)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    ax = axes[1]
    if steps:
        ax.bar([0, 1], [steps[f"{r}_ms_per_step"] for r in RULES], color=["tab:blue", "tab:orange"])
        ax.set_xticks([0, 1], list(RULES))
        ax.set_ylabel("ms per train step")
        ax.set_title(f"{cfg.compare_arch}/{cfg.compare_activation} step, batch {arch_settings(cfg, cfg.compare_arch)['batch']}", fontsize=9)
        ax.grid(True, axis="y", alpha=0.3)
    else:
        ax.axis("off")
    run.save_figure(fig, "timing")


def plot_rule_comparison(run: Any, results: Mapping[tuple[str, str], GridResult], cfg: Config) -> None:
    plt = pyplot()
    lrs = lrs_of(cfg, cfg.compare_arch)
    fig, axes = plt.subplots(2, len(lrs), figsize=(5.5 * len(lrs), 6.5), squeeze=False)
    base = dict(dataset=cfg.datasets[0], arch=cfg.compare_arch, activation=cfg.compare_activation)
    for j, lr in enumerate(lrs):
        s = int(cfg.seeds[0])
        a = select(results, **base, lr=lr, seed=s, rule=cfg.rule)
        b = select(results, **base, lr=lr, seed=s, rule=other_rule(cfg.rule))
        if not a or not b:
            continue
        la, lb = a[0].history.step_metrics["loss"], b[0].history.step_metrics["loss"]
        n = min(len(la), len(lb))
        t = np.arange(n)
        axes[0, j].plot(t, la[:n], label=f"{cfg.rule} rule", lw=2.5, alpha=0.6)
        axes[0, j].plot(t, lb[:n], label=f"{other_rule(cfg.rule)} rule", lw=0.8, ls="--", color="k")
        axes[0, j].set_yscale("log")
        axes[0, j].set_title(f"{base['dataset']}/{base['arch']}/{base['activation']}, lr={lr:g}, seed {s}: batch loss",
                             fontsize=9)
        axes[0, j].legend(fontsize=8)
        axes[0, j].grid(True, alpha=0.3)
        diff = np.abs(la[:n] - lb[:n])
        axes[1, j].plot(t, np.where(diff > 0, diff, np.nan), lw=0.8)
        axes[1, j].set_yscale("log")
        axes[1, j].set_title(f"|difference| (max {np.nanmax(diff) if n else float('nan'):.3g}; zeros not drawn)", fontsize=9)
        axes[1, j].set_xlabel("step")
        axes[1, j].grid(True, alpha=0.3)
    run.save_figure(fig, "rule_comparison")


# --------------------------------------------------------------------------------------
# Findings (sentences computed from the measured numbers)
# --------------------------------------------------------------------------------------


def _pct(v: float) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{100 * v:.1f}%"


#: What the summary says of a rule comparison that the interruption left without one side.
RULES_NOT_RUN = ("Not run: the run was interrupted before both rules had trained the comparison configuration, "
                 "so there is nothing to compare.")


def findings_of(cfg: Config, o: Outcome) -> list[str]:
    """The findings, each sentence computed from the numbers of ``o``."""
    rows, parts, costs, steps, rule_rows = o.rows, o.parts, o.costs, o.steps, o.rule_rows
    out = []
    if o.interrupted:
        out.append((o.stopped or "The run was interrupted.") + " Members are reported as they stood when it stopped.")
    out.append(f"softmax and log_softmax are output nonlinearities (they normalize a whole row into a distribution, "
               f"used with the loss), not hidden-layer units, so they are not part of this ablation; the "
               f"{len(cfg.activations)} activations compared are: {', '.join(cfg.activations)}.")
    for ds, arch in parts:
        lr = base_lr(cfg, arch)
        rs = [r for r in rows if r["dataset"] == ds and r["arch"] == arch and r["lr"] == lr and r["rule"] == cfg.rule
              and np.isfinite(r["test_accuracy_mean"])]
        if not rs:
            continue
        rs = sorted(rs, key=lambda r: -r["test_accuracy_mean"])
        best, worst = rs[0], rs[-1]
        spread = best["test_accuracy_mean"] - worst["test_accuracy_mean"]
        close = [r["activation"] for r in rs if best["test_accuracy_mean"] - r["test_accuracy_mean"]
                 <= best["test_accuracy_std"] + r["test_accuracy_std"]]
        out.append(
            f"{ds}/{arch} (lr={lr:g}): best test accuracy {best['activation']} "
            f"{100 * best['test_accuracy_mean']:.1f} ± {100 * best['test_accuracy_std']:.1f}%, worst "
            f"{worst['activation']} {100 * worst['test_accuracy_mean']:.1f} ± {100 * worst['test_accuracy_std']:.1f}% "
            f"(spread {100 * spread:.1f} points); within one std-sum of the best: {', '.join(close)}."
        )
        sat = [r for r in rs if r["activation"] in SATURATING and np.isfinite(r.get("saturated_mean", np.nan))]
        if sat:
            s = max(sat, key=lambda r: r["saturated_mean"])
            out.append(f"{ds}/{arch}: the most saturated activation at the end of training is {s['activation']} "
                       f"({_pct(s['saturated_mean'])} of hidden values on the probe batch in a flat region).")
        dr = [r for r in rs if np.isfinite(r.get("delta_ratio_init_mean", np.nan))]
        if len(dr) > 1 and len(cfg.mlp_widths if arch == "mlp" else "cnn") > 1:
            lo = min(dr, key=lambda r: r["delta_ratio_init_mean"])
            hi = max(dr, key=lambda r: r["delta_ratio_init_mean"])
            out.append(
                f"{ds}/{arch}: at init the error-term norm of the first hidden layer relative to the last hidden "
                f"layer ranges from {lo['delta_ratio_init_mean']:.3g} ({lo['activation']}: the signal shrinks most on "
                f"its way back) to {hi['delta_ratio_init_mean']:.3g} ({hi['activation']})."
            )
    # high learning rate
    for arch in cfg.archs:
        lrs = lrs_of(cfg, arch)
        if len(lrs) < 2:
            continue
        ds = cfg.datasets[0]

        def get(act: str, lr: float, ds: str = ds, arch: str = arch) -> dict[str, Any] | None:
            r = [r for r in rows if r["dataset"] == ds and r["arch"] == arch and r["activation"] == act and r["lr"] == lr
                 and r["rule"] == cfg.rule]
            return r[0] if r else None

        hi_lr = lrs[1]
        fam = [a for a in RELU_FAMILY if a in cfg.activations]
        parts_txt = []
        for a in fam:
            r0, r1 = get(a, lrs[0]), get(a, hi_lr)
            if r0 and r1:
                parts_txt.append(
                    f"{a} dead {_pct(r1['dead_mean'])} (± {_pct(r1['dead_std'])}) / silent {_pct(r1['silent_mean'])}, "
                    f"test accuracy {100 * r1['test_accuracy_mean']:.1f}% "
                    f"[at lr={lrs[0]:g}: dead {_pct(r0['dead_mean'])}, silent {_pct(r0['silent_mean'])}, "
                    f"accuracy {100 * r0['test_accuracy_mean']:.1f}%]"
                    + (f", {r1['n_diverged']} of {r1['n']} seeds diverged" if r1["n_diverged"] else "")
                )
        if parts_txt:
            out.append(f"{ds}/{arch} at the high learning rate {hi_lr:g} (end of training, mean over hidden layers and "
                       f"seeds): " + "; ".join(parts_txt) + ".")
        relu1 = get("relu", hi_lr)
        others = [get(a, hi_lr) for a in ("leaky_relu", "prelu", "elu") if a in cfg.activations]
        others = [o for o in others if o is not None]
        if relu1 and others and np.isfinite(relu1["silent_mean"]):
            died = relu1["silent_mean"] >= 0.1
            o_silent = {o["activation"]: o["silent_mean"] for o in others}
            spared = [a for a, v in o_silent.items() if np.isfinite(v) and v <= relu1["silent_mean"] / 2]
            not_spared = [a for a in o_silent if a not in spared]
            if died and not not_spared:
                verdict = (f"Reproduced: plain ReLU units died ({_pct(relu1['silent_mean'])} silent: no error signal "
                           f"reaches them) while {', '.join(spared)} kept at most half as many silent units.")
            elif died:
                verdict = (f"Partly reproduced: plain ReLU units died ({_pct(relu1['silent_mean'])} silent), and "
                           f"{', '.join(spared) or 'none of the variants'} had at most half as many silent units, but "
                           f"{', '.join(not_spared)} did not "
                           f"({', '.join(f'{a} {_pct(o_silent[a])}' for a in not_spared)}).")
            else:
                verdict = (f"Not reproduced at lr={hi_lr:g}: plain ReLU ended with only "
                           f"{_pct(relu1['silent_mean'])} silent units (threshold for 'died': 10%).")
            out.append(f"{ds}/{arch}: " + verdict + " Leaky/ELU units whose input is <= 0 everywhere still count as "
                       "'dead' by sign but keep passing a (small) gradient, which is what 'silent' separates.")
    if costs:
        ranked = sorted(costs, key=lambda r: r["hand_vs_relu"])
        cheap, dear = ranked[0], ranked[-1]
        out.append(
            f"Forward+backward cost relative to relu (hand rules, {cfg.timing_shape[0]}x{cfg.timing_shape[1]} array): "
            f"cheapest {cheap['activation']} {cheap['hand_vs_relu']:.2f}x, most expensive {dear['activation']} "
            f"{dear['hand_vs_relu']:.2f}x; " + ", ".join(f"{r['activation']} {r['hand_vs_relu']:.2f}x" for r in costs)
            + ". Hand rule / autodiff time per op: "
            + ", ".join(f"{r['activation']} {r['hand_vs_autodiff']:.2f}" for r in costs) + "."
        )
    if rule_rows:
        mx = max((r["max_abs_diff_train_loss"] for r in rule_rows if np.isfinite(r["max_abs_diff_train_loss"])),
                 default=float("nan"))
        mt = max((r["max_abs_diff_test_loss"] for r in rule_rows if np.isfinite(r["max_abs_diff_test_loss"])),
                 default=float("nan"))
        ma = max((r["max_abs_diff_test_accuracy"] for r in rule_rows if np.isfinite(r["max_abs_diff_test_accuracy"])),
                 default=float("nan"))
        base = f"{cfg.datasets[0]}/{cfg.compare_arch}/{cfg.compare_activation}"
        same = "identical" if mx == 0 else ("identical to float32 rounding" if mx < 1e-3 else "not identical")
        txt = (f"Hand rule vs autodiff on {base} ({len(rule_rows)} runs: every lr and seed): the per-step training "
               f"loss curves are {same} (max abs difference {mx:.3g}; test loss {mt:.3g}; test accuracy {ma:.3g}).")
        if steps:
            txt += (f" Time per train step (batch {arch_settings(cfg, cfg.compare_arch)['batch']}, one member): hand {steps['hand_ms_per_step']:.3f} ms, "
                    f"autodiff {steps['autodiff_ms_per_step']:.3f} ms (hand/autodiff {steps['hand_vs_autodiff']:.2f}).")
        out.append(txt)
    elif cfg.compare_rules:
        out.append(f"Hand rule vs autodiff on {cfg.datasets[0]}/{cfg.compare_arch}/{cfg.compare_activation}: "
                   + RULES_NOT_RUN[0].lower() + RULES_NOT_RUN[1:])
    return out


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class Outcome:
    """What a run measured, in the order the script measures it (trained, then timed)."""

    configs: list[dict[str, Any]]
    results: dict[tuple[str, str], GridResult]
    workers: int
    mesh: Any
    train_s: float
    rows: list[dict[str, Any]]
    rule_rows: list[dict[str, Any]]
    interrupted: bool
    stopped: str = ""  # the note on an early stop ("" for a finished run)
    suffix: str = ""  # appended to the title on an early stop
    costs: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    steps: dict[str, float] | None = None
    grids_started: float = 0.0  # clock seconds when the grids began (data loaded, grids prepared)
    first_step_s: float | None = None  # seconds from the launch to the first training step
    phases: dict[str, float] = dataclasses.field(default_factory=dict)  # see main()

    @property
    def parts(self) -> list[tuple[str, str]]:
        return list(self.results)


def train(cfg: Config, run: Any, data: Mapping[str, Any], clock: Clock) -> Outcome:
    """Train the grid and summarize its members over seeds (an interrupted run: the members
    that trained, with a note naming where each group stopped)."""
    configs = grid_configs(cfg)
    print(f"{EXPERIMENT}: {len(configs)} members ({len(cfg.activations)} activations x archs {list(cfg.archs)} x "
          f"datasets {list(cfg.datasets)} x lrs x {len(cfg.seeds)} seeds) -> {run.path}", flush=True)
    mesh = cfg.device_mesh()
    results, interrupted, workers, started = train_grid(configs, cfg, data, run=run, mesh=mesh)
    firsts = [g.first_step_at for r in results.values() for g in r.groups if g.first_step_at is not None]
    first_step_s = clock.since_launch(min(firsts)) if firsts else None
    grids_started = started - clock.wall0
    stopped = suffix = ""
    if interrupted:
        print(f"{EXPERIMENT}: {run.stop_reason}; summarizing the members that were trained", file=sys.stderr)
        progress = []
        for key in dict.fromkeys((c["dataset"], c["arch"]) for c in configs):
            steps_total = arch_settings(cfg, key[1])["steps"]
            if key in results:
                progress += grid_progress(results[key], steps_total)  # groups named dataset=...,arch=...,rule=...
            else:
                progress.append((f"dataset={key[0]},arch={key[1]}", 0, steps_total))
        stopped = stopped_note(run, progress)
        suffix = f" ({interrupted_at(progress)})"
        # members whose group had not started are left out (the note names their groups)
        results = {k: dataclasses.replace(r, members=[m for m in r.members if m.step > 0])
                   for k, r in results.items()}
    rows = summarize([member_record(m) for res in results.values() for m in res.members])
    for r in rows:  # blank the fractions that do not apply to an activation
        for k, fam in (("dead", RELU_FAMILY), ("inactive", RELU_FAMILY), ("saturated", SATURATING)):
            if r["activation"] not in fam:
                r[f"{k}_mean"] = r[f"{k}_std"] = None
    return Outcome(configs=configs, results=results, workers=workers, mesh=mesh, train_s=clock.wall,
                   grids_started=grids_started, first_step_s=first_step_s, rows=rows,
                   rule_rows=rule_comparison(results, cfg) if cfg.compare_rules else [], interrupted=interrupted,
                   stopped=stopped, suffix=suffix)


def time_ops(cfg: Config, out: Outcome, run: Any, data: Mapping[str, Any]) -> None:
    """The activations' op costs and the hand/autodiff step times (only after a finished training)."""
    if out.interrupted:
        return
    try:
        out.costs = activation_costs(list(cfg.activations), tuple(cfg.timing_shape), cfg.timing_rounds)
        if cfg.compare_rules and cfg.compare_arch in cfg.archs:
            out.steps = step_costs(cfg, data[cfg.datasets[0]], cfg.compare_arch, cfg.compare_activation,
                                   cfg.timing_rounds)
    except KeyboardInterrupt:
        out.interrupted = True
        out.stopped = f"Interrupted: {run.stop_reason} during the timing, after every member had trained; no timing."
        out.suffix = " (interrupted during the timing)"
        print(f"{EXPERIMENT}: {run.stop_reason} during timing; skipping it", file=sys.stderr)


MAIN_COLUMNS = ["dataset", "arch", "activation", "lr", "n", "n_diverged", "step", "test_accuracy_mean",
                "test_accuracy_std", "test_loss_mean", "test_loss_std", "train_loss_mean", "train_loss_std", "dead_mean",
                "dead_std", "saturated_mean", "saturated_std", "silent_mean", "silent_std"]


def report(cfg: Config, out: Outcome, findings: list[str], clock: Clock) -> Report:
    """summary.md's notes: the recipe, the high-lr table, op costs, hand vs autodiff, findings."""
    rep = Report().stopped(out.stopped).text(
        f"Rule: {cfg.rule}. Adam on softmax cross-entropy; MLP (hidden widths {list(cfg.mlp_widths)}): "
        f"lr {cfg.mlp_lr:g}, batch {cfg.mlp_batch}, {cfg.mlp_steps} steps; CNN: lr {cfg.cnn_lr:g}, batch "
        f"{cfg.cnn_batch}, {cfg.cnn_steps} steps; {len(cfg.seeds)} seeds (mean ± std). "
        f"dead/saturated/silent: fractions at the end of training on a fixed batch of {cfg.probe_size} training "
        f"examples, averaged over hidden layers (dead: ReLU family only; saturated: logistic, tanh, hard_*; "
        f"empty = not applicable). train_loss: mean batch loss over the last epoch.")
    if any(r["rule"] == cfg.rule and r["lr"] != base_lr(cfg, r["arch"]) for r in out.rows):
        rep.section("High learning rate (dying ReLU)", markdown_table(
            [r for r in out.rows if r["rule"] == cfg.rule and r["arch"] in cfg.high_lr_archs
             and r["dataset"] == cfg.datasets[0]],
            ["arch", "activation", "lr", "n", "n_diverged", "test_accuracy_mean", "test_accuracy_std", "dead_mean",
             "dead_std", "inactive_mean", "inactive_std", "silent_mean", "silent_std"]))
    if out.costs:
        rep.section(f"Forward+backward cost per activation ({cfg.timing_shape[0]}x{cfg.timing_shape[1]} float32, "
                    f"median of {cfg.timing_rounds} interleaved rounds)",
                    markdown_table(out.costs, ["activation", "hand_us", "hand_vs_relu", "autodiff_us",
                                               "autodiff_vs_relu", "hand_vs_autodiff"]))
    if cfg.compare_rules:
        title = f"Hand rule vs autodiff ({cfg.datasets[0]}/{cfg.compare_arch}/{cfg.compare_activation})"
        if not out.rule_rows:
            rep.section(title, RULES_NOT_RUN)
        else:
            rep.section(title, markdown_table(out.rule_rows))
            if out.steps:
                rep.text(markdown_table([{"rule": r, "ms_per_step": out.steps[f"{r}_ms_per_step"]} for r in RULES]))
    return rep.findings(findings).runtime(clock, train_s=out.train_s, first_step_s=out.first_step_s)


def write_summary(run: Any, cfg: Config, out: Outcome, findings: list[str], clock: Clock) -> None:
    base = [r for r in out.rows if r["rule"] == cfg.rule and r["lr"] == base_lr(cfg, r["arch"])]
    notes = report(cfg, out, findings, clock)
    run.write_summary(
        [{k: r.get(k) for k in MAIN_COLUMNS} for r in base],
        title=f"Activation ablation ({', '.join(cfg.datasets)}; {', '.join(cfg.archs)})" + out.suffix,
        notes=notes,
        extra={
            "all_rows": out.rows,
            "high_lr_rows": [r for r in out.rows if r["rule"] == cfg.rule and r["lr"] != base_lr(cfg, r["arch"])],
            "activation_costs": out.costs, "step_costs": out.steps, "rule_comparison": out.rule_rows,
            "findings": findings, "interrupted": out.interrupted,
            "excluded_output_nonlinearities": list(output_nonlinearities()),
            "compilations": {f"{ds}/{arch}/{g.name}": g.traces for (ds, arch), res in out.results.items()
                             for g in res.groups},
            # how many slices each group's members trained in, side by side (TrainOptions.parts)
            "parts": {f"{ds}/{arch}/{g.name}": g.parts for (ds, arch), res in out.results.items() for g in res.groups},
            "runtime_s": {"wall": clock.wall, "train_wall": out.train_s, "cpu": clock.cpu,
                          # seconds from the launch (interpreter and imports included)
                          "launch": clock.launched, "first_step": out.first_step_s,
                          # where the wall went, in order: start-up (before the clock), data,
                          # prepare (init tables, grids' checks), grids (compile + train),
                          # timing (op and step costs), findings (up to this summary)
                          "phases": {**out.phases, "findings": clock.wall - sum(out.phases.values())},
                          # per grid (grids run side by side): "run" is its wall time from start to
                          # end, compiling included (a group compiles as it starts, the next one in
                          # the background meanwhile); "compile" sums its groups' compile times
                          # (some beside training); "train" its training chunks' wall
                          "grids": {f"{ds}/{arch}": {"compile": sum(g.compile_seconds for g in res.groups),
                                                     "train": sum(g.train_seconds for g in res.groups),
                                                     "run": res.seconds}
                                    for (ds, arch), res in out.results.items()}},
            "mesh": None if out.mesh is None else dict(out.mesh.shape), "grid_workers": out.workers,
        },
    )


def plots(run: Any, cfg: Config, out: Outcome) -> None:
    arrays: dict[str, np.ndarray] = {}
    if out.parts:
        plot_accuracy(run, out.rows, cfg, out.parts)
        arrays = plot_learning_curves(run, out.results, cfg, out.parts)
        plot_delta_norms(run, out.results, cfg, out.parts)
        plot_dead_saturated(run, out.results, cfg, out.parts)
        if any(len(lrs_of(cfg, a)) > 1 for a in cfg.archs):
            plot_high_lr(run, out.rows, cfg)
        if out.rule_rows:
            plot_rule_comparison(run, out.results, cfg)
    if out.costs:
        plot_timing(run, out.costs, out.steps, cfg)
    if arrays:
        run.save_arrays("curves", **arrays)


@experiment_main(EXPERIMENT)
def main(argv: list[str] | None = None) -> int:
    cfg = resolve_defaults(apply_smoke(parse_config(Config, argv, description=__doc__), SMOKE))
    validate(cfg, EXPERIMENT, check_config)
    clock = Clock()
    run = open_run(cfg, EXPERIMENT, resumable=True, extra={"hidden_activations": list(hidden_activations()),
                                           "excluded_output_nonlinearities": list(output_nonlinearities())})
    data = {ds: load(ds) for ds in cfg.datasets}
    t_data = clock.wall
    out = train(cfg, run, data, clock)
    t_train = clock.wall
    time_ops(cfg, out, run, data)
    out.phases = {"data": t_data, "prepare": out.grids_started - t_data, "grids": t_train - out.grids_started,
                  "timing": clock.wall - t_train}
    findings = findings_of(cfg, out)
    write_summary(run, cfg, out, findings, clock)
    plots(run, cfg, out)
    for f in findings:
        print(f"- {f}")
    print(f"{EXPERIMENT}: done in {clock.wall:.0f} s ({clock.cpu:.0f} s CPU); results in {run.path}"
          + (" (INTERRUPTED: partial results)" if out.interrupted else ""))
    return run.exit_code(out.interrupted)


if __name__ == "__main__":
    sys.exit(main())
