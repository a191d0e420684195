"""Universal approximation: how does the worst-case error of a one-hidden-layer net fall with width?

Question: a single hidden layer of enough squashing (logistic, tanh) or ReLU units can
approximate any continuous function on an interval (Cybenko 1989, Hornik 1991, Leshno
et al. 1993). In practice, trained with Adam on samples of a target, how does the max
error (sup norm on a fine test grid) fall as the width grows from 1 to 256, for each kind
of unit and for smooth, kinked and bumpy targets?

What it measures, per target x activation x width x seed: the max error
``max_x |net(x) - f(x)|`` and the mean squared error on the noiseless test grid of
``funcnn.data`` regression sets (``sin``, ``abs``, ``bumps``, ...), after full-batch Adam
on the training samples (loss mse).

How it is batched: ONE compiled, vmapped program per activation, whatever the number of
widths, targets and seeds. Every member is built with the widest hidden layer
(``W = max(widths)`` units), and the hidden outputs are multiplied by a per-member 0/1
mask that keeps the first ``w`` units (``w`` = the member's width, a batched float grid
value). A masked unit outputs exactly 0, so it contributes nothing to the output, and
the gradient of the loss w.r.t. its incoming weights and bias (through the mask) and its
outgoing weights (whose input is 0) is exactly 0; Adam's update for a zero gradient is
0, so those parameters never move. A member is therefore exactly a width-``w``
network: its output-layer weights are drawn LeCun-normal for fan-in ``w`` (rescaled by
``sqrt(W / w)``, masked rows zeroed). The targets share their training inputs (the same
seeded sample of the interval), so they are batched too: the labels are stacked as
columns and each member's loss picks its column by a batched target index.

Outputs (results/universal_approximation/<run>/): summary.json/.md (table + computed
Findings: the fitted log-log slope of max error vs width per activation and target),
metrics.jsonl, max_error_vs_width.png, fits.png.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np

from funcnn import initializers as I
from funcnn.nn.layer import Layer
from funcnn.nn.combinators import serial
from funcnn.data import load
from funcnn.nn import Activation, Dense, Flatten
from funcnn.losses import mse
from funcnn.train import (
    ExperimentConfig,
    TrainSpec,
    make_optimizer,
    open_run,
    parse_config,
    run_grid,
    summarize,
)
from funcnn.data import REGRESSION_NAMES
from funcnn.study.cli import (
    grid_stop,
    apply_smoke,
    check_choice,
    check_hidden_activations,
    check_int,
    check_positive,
    check_values,
    experiment_main,
    explicit_fields,
    replace_config,
    require,
    validate,
)
from funcnn.study.plots import pyplot
from funcnn.study.report import Clock, Report

EXPERIMENT = "universal_approximation"


@dataclasses.dataclass
class Config(ExperimentConfig, resumable=False, imports=True):
    """One hidden layer of width 1..256 fitting continuous targets on [-1, 1]."""

    targets: tuple[str, ...] = ("sin", "abs", "bumps")
    """Regression sets of funcnn.data (sin, abs, square, smooth_step, bumps)."""
    activations: tuple[str, ...] = ("logistic", "tanh", "relu")
    """Hidden activations: any registered elementwise one (the user's own with --import)."""
    widths: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256)
    lr: float = 0.01
    """Adam learning rate."""
    steps: int = 3000
    n_train: int = 256
    n_test: int = 1024
    eval_every: int = 500
    fit_widths: tuple[int, ...] = (2, 8, 32, 256)
    """Widths whose fits are plotted in fits.png (each one of --widths; when not given: those
    of the default among --widths, else the smallest and the largest of --widths)."""
    seeds: tuple[int, ...] = (0, 1)
    rule: str = "hand"
    """'hand' (the hand-written backward rules) or 'autodiff' (jax.grad of the twins)."""


SMOKE = dict(targets=("sin", "abs"), activations=("relu",), widths=(1, 8), steps=20, eval_every=10,
             n_train=32, n_test=64, fit_widths=(1, 8), seeds=(0,))


def WidthMask(width) -> Layer:
    """Multiply the features ``(N, W)`` by the 0/1 mask of the first ``width`` units.

    ``width`` may be a Python number or a traced scalar (a batched grid value). No params.
    """

    def init(key, in_shape):
        return tuple(in_shape), (), ()

    def apply(params, state, x, *, key=None, train=False):
        mask = (jnp.arange(x.shape[-1]) < width).astype(x.dtype)
        return x * mask, state

    return Layer(init, apply, name="WidthMask()", kind="other")


def resolve_fit_widths(cfg: Config) -> Config:
    """``--fit-widths`` left at its default keeps the default widths that are among --widths,
    or else the smallest and largest of --widths (a plot of no fit would say nothing)."""
    if "fit_widths" in explicit_fields(cfg) or not cfg.widths:
        return cfg
    keep = tuple(w for w in cfg.fit_widths if w in cfg.widths)
    if not keep:
        keep = tuple(dict.fromkeys((min(cfg.widths), max(cfg.widths))))
    return replace_config(cfg, fit_widths=keep)


def check_config(cfg: Config) -> None:
    """Every value that cannot be right stops the run before it trains or writes anything
    (:func:`funcnn.study.cli.validate`: one line, exit status 2)."""
    check_values("--targets", cfg.targets, each=lambda f, v: check_choice(f, v, REGRESSION_NAMES))
    check_values("--activations", cfg.activations)
    check_hidden_activations(cfg.activations, flag="--activations")  # after --import
    check_values("--widths", cfg.widths, each=check_int)
    check_values("--fit-widths", cfg.fit_widths, each=lambda f, v: require(
        v in cfg.widths, f, f"one of --widths ({' '.join(map(str, cfg.widths))}): only those are trained", v))
    check_positive("--lr", cfg.lr)
    check_int("--steps", cfg.steps)
    check_int("--n-train", cfg.n_train)
    check_int("--n-test", cfg.n_test)
    check_int("--eval-every", cfg.eval_every, minimum=0)
    check_choice("--rule", cfg.rule, ("hand", "autodiff"))


def targets_data(cfg: Config) -> tuple[Any, Any, Any, Any]:
    """``(x_train, y_train, x_test, y_test)`` with one label column per target (all targets share
    their inputs: the same seeded sample)."""
    # All targets share the training/test inputs (same seeded sample): stack the labels as columns.
    sets = [load(t, n_train=cfg.n_train, n_test=cfg.n_test) for t in cfg.targets]
    for d in sets[1:]:
        if not (np.array_equal(d.x_train, sets[0].x_train) and np.array_equal(d.x_test, sets[0].x_test)):
            raise SystemExit("universal_approximation: targets do not share their inputs; cannot batch them")
    x_train, x_test = sets[0].x_train, sets[0].x_test
    y_train = np.concatenate([np.asarray(d.y_train).reshape(-1, 1) for d in sets], axis=1)
    y_test = np.concatenate([np.asarray(d.y_test).reshape(-1, 1) for d in sets], axis=1)

    return x_train, y_train, x_test, y_test


def grid_of(cfg: Config) -> list[dict[str, Any]]:
    """Every member: activation x target x width x seed."""
    return [
        {"activation": a, "width": float(w), "target_id": float(i), "lr": float(cfg.lr), "seed": s}
        for a in cfg.activations
        for i in range(len(cfg.targets))
        for w in cfg.widths
        for s in cfg.seeds
    ]


def build_for(cfg: Config) -> Callable[[Mapping[str, Any]], TrainSpec]:
    wmax, n_t = int(max(cfg.widths)), len(cfg.targets)

    def build(c):
        width, tid = c["width"], c["target_id"]
        model = serial(
            Flatten(),
            # hidden biases U(-1, 1): the units' kinks/centres start spread over the interval
            Dense(wmax, w_init=I.lecun_normal(), b_init=I.uniform(1.0), rule=cfg.rule),
            Activation(c["activation"], rule=cfg.rule),
            WidthMask(width),
            Dense(1, w_init=I.lecun_normal(), b_init=I.uniform(1.0), rule=cfg.rule),
        )

        def init(key, in_shape):
            _, params, state = model.init(key, in_shape)
            mask = (jnp.arange(wmax) < width).astype(jnp.float32)
            out = dict(params[-1])
            # LeCun-normal for fan-in `width` instead of wmax; the masked rows are zero
            out["w"] = out["w"] * (jnp.sqrt(wmax / jnp.asarray(width, jnp.float32)) * mask)[:, None]
            return (*params[:-1], out), state

        def loss(pred, y):
            onehot = (jnp.arange(n_t) == tid).astype(y.dtype)
            return mse(pred, (y @ onehot)[:, None])

        return TrainSpec(model, loss, make_optimizer("adam", c["lr"]), init)

    return build


def records_of(cfg: Config, res: Any, build: Callable[..., TrainSpec], x_test: Any, y_test: Any
               ) -> tuple[list[dict[str, Any]], dict[tuple[str, str, int], tuple[Any, Any, Any]]]:
    """One record per member that trained (max error and test MSE of its net on the test grid),
    and the first seed's fitted curves for the plots."""
    interrupted = res.interrupted
    records, fits = [], {}
    xt = jnp.asarray(x_test)
    for m in res.members:
        if interrupted and m.step == 0:
            continue  # its group had not started: left out (stopped_note names it)
        c = m.config
        tname = cfg.targets[int(c["target_id"])]
        width = int(c["width"])
        model = build(c).model
        pred = np.asarray(model.apply(m.params, m.state, xt)[0], np.float64)[:, 0]
        yt = np.asarray(y_test[:, int(c["target_id"])], np.float64)
        err = np.abs(pred - yt)
        records.append({
            "config": {"target": tname, "activation": c["activation"], "width": width, "seed": c["seed"]},
            "metrics": {"max_error": float(err.max()) if not m.diverged else np.nan,
                        "test_mse": float(np.mean(err ** 2)) if not m.diverged else np.nan,
                        "train_loss": m.final.get("train_loss", np.nan)},
            "diverged": m.diverged,
            "step": m.step,
        })
        if c["seed"] == cfg.seeds[0]:
            fits[(tname, c["activation"], width)] = (np.asarray(x_test)[:, 0], yt, pred)
    return records, fits


def findings_of(cfg: Config, rows: list[dict[str, Any]]) -> tuple[list[str], dict[str, float]]:
    """The findings (each computed from the rows) and the fitted log-log slope per target/activation."""
    findings = []
    slopes = {}
    for tname in cfg.targets:
        for a in cfg.activations:
            rs = sorted((r for r in rows if r["target"] == tname and r["activation"] == a), key=lambda r: r["width"])
            w = np.asarray([r["width"] for r in rs], np.float64)
            e = np.asarray([r["max_error_mean"] for r in rs], np.float64)
            ok = np.isfinite(e) & (e > 0)
            if ok.sum() >= 2:
                slope = float(np.polyfit(np.log(w[ok]), np.log(e[ok]), 1)[0])
                slopes[f"{tname}/{a}"] = slope
                i_best = int(np.nanargmin(np.where(ok, e, np.nan)))
                mono = bool(np.all(np.diff(e[ok]) <= 1e-9))
                findings.append(
                    f"{tname}, {a}: max error {e[ok][0]:.3g} at width {int(w[ok][0])} -> {e[ok][-1]:.3g} at width "
                    f"{int(w[ok][-1])}; fitted log-log slope {slope:.2f} (error ~ width^{slope:.2f}); smallest "
                    f"{e[i_best]:.3g} at width {int(w[i_best])}; "
                    f"{'monotonically decreasing' if mono else 'not monotone in width'}."
                )
    for a in cfg.activations:
        s = [v for k, v in slopes.items() if k.endswith("/" + a)]
        if s:
            findings.append(f"{a}: mean log-log slope over targets {np.mean(s):.2f}.")
    return findings, slopes


@experiment_main(EXPERIMENT)
def main(argv: list[str] | None = None) -> int:
    cfg = resolve_fit_widths(apply_smoke(parse_config(Config, argv, description=__doc__), SMOKE))
    validate(cfg, EXPERIMENT, check_config)
    run = open_run(cfg, EXPERIMENT)
    clock = Clock()
    x_train, y_train, x_test, y_test = targets_data(cfg)
    build = build_for(cfg)
    res = run_grid(build, grid_of(cfg), (x_train, y_train), test_data=(x_test, y_test),
                   steps=cfg.steps, batch_size=cfg.n_train, eval_every=cfg.eval_every,
                   batched=("width", "target_id", "lr"), run_dir=run, progress=cfg.progress,
                   mesh=cfg.device_mesh(), name=EXPERIMENT)
    interrupted = res.interrupted
    stopped, suffix = grid_stop(run, res, cfg.steps, EXPERIMENT)
    records, fits = records_of(cfg, res, build, x_test, y_test)
    rows = summarize(records)
    findings, slopes = findings_of(cfg, rows)
    if interrupted:
        findings.append(stopped + " max_error and test_mse are those of the net as trained when it stopped.")
    notes = Report().stopped(stopped).text(
        f"One hidden layer, Adam lr {cfg.lr}, {cfg.steps} full-batch steps on {cfg.n_train} samples on "
        f"[-1, 1]; max_error = sup norm of the error on the {cfg.n_test}-point test grid; rule={cfg.rule}."
    ).findings(findings)
    run.write_summary(rows, title="Universal approximation: max error vs width" + suffix, notes=notes,
                      extra={"findings": findings, "slopes": slopes, "interrupted": interrupted,
                             "compilations": {g.name: g.traces for g in res.groups}})
    _plots(run, cfg, rows, fits)
    print("\n".join(findings))
    print(f"universal_approximation: done in {clock.wall:.0f} s; results in {run.path}")
    return run.exit_code(interrupted)


def _plots(run, cfg, rows, fits) -> None:
    plt = pyplot()

    targets = [t for t in cfg.targets if any(r["target"] == t for r in rows)]
    fig, axes = plt.subplots(1, max(1, len(targets)), figsize=(4.8 * max(1, len(targets)), 3.8), squeeze=False)
    for j, t in enumerate(targets):
        ax = axes[0][j]
        for a in cfg.activations:
            rs = sorted((r for r in rows if r["target"] == t and r["activation"] == a), key=lambda r: r["width"])
            w = np.asarray([r["width"] for r in rs], np.float64)
            e = np.asarray([r["max_error_mean"] for r in rs], np.float64)
            sd = np.asarray([r["max_error_std"] for r in rs], np.float64)
            ax.errorbar(w, e, yerr=sd, marker="o", capsize=2, label=a)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("hidden width")
        ax.set_ylabel("max |net(x) - f(x)| on the test grid")
        ax.set_title(f"target {t}", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    run.save_figure(fig, "max_error_vs_width.png")

    acts = list(cfg.activations)
    fig, axes = plt.subplots(len(targets), len(acts), figsize=(4.2 * len(acts), 3.2 * max(1, len(targets))), squeeze=False)
    for i, t in enumerate(targets):
        for j, a in enumerate(acts):
            ax = axes[i][j]
            first = True
            for w in cfg.fit_widths:
                if (t, a, w) not in fits:
                    continue
                x, y, p = fits[(t, a, w)]
                if first:
                    ax.plot(x, y, color="k", linewidth=2, label="target")
                    first = False
                ax.plot(x, p, linewidth=1, label=f"width {w}")
            ax.set_title(f"{t}, {a}", fontsize=9)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    run.save_figure(fig, "fits.png")


if __name__ == "__main__":
    raise SystemExit(main())
