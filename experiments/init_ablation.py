"""Initialization ablation: does a deep MLP train, and why (not)?

Question: how do the initializers N(0, 1), N(0, 0.01), Glorot, He, LeCun and orthogonal
interact with logistic, tanh and ReLU units (by default; ``--activations`` takes any
registered hidden-layer activation, the user's own from ``--import MODULE`` included) in deep
MLPs (depth up to 30), and do we reproduce, qualitatively,

- He et al. (2015), "Delving deep into rectifiers": a 30-layer ReLU net trained with
  plain SGD converges from He init and stalls from Glorot ("Xavier") init;
- Glorot & Bengio (2010), "Understanding the difficulty of training deep feedforward
  neural networks": logistic units with a too-large (here N(0, 1)) init saturate?

What it measures, per initializer x activation x depth (x learning rate, x seed):

- at init, on a fixed batch of real training data: the variance of every hidden
  pre-activation (forward) and of the gradient w.r.t. it for a unit-variance standard
  normal cotangent at the output (backward), via ``funcnn.nn.diagnostics.variance_report``;
- the error-term norms ``||delta^(l)||`` per layer (``funcnn.nn.diagnostics.error_terms``)
  and the saturated / dead fractions of the units (``activation_stats``), at every
  evaluation, so at init and after training;
- training with plain SGD by default (``--optimizer``: any optimizer of
  ``funcnn.train.make_optimizer``, e.g. ``momentum`` or ``adam``): test accuracy against
  chance, divergence (non-finite loss; the member is stopped, the step recorded, the study
  goes on).

All six initializers and every activation of one depth share ONE compiled program: both are
grid choices picked by data (:class:`funcnn.Choice`; ``Dense(..., w_init=Choice(...))``
draws each member's weights by its own initializer), so a depth costs one compilation
whatever the number of activations, initializers, learning rates and seeds.

Outputs (results/init_ablation/<run>/): summary.json/.md (table + computed Findings),
metrics.jsonl, variance_per_layer.png, delta_norms.png, success_grid.png,
training_curves.png, saturation.png.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np

from funcnn import Choice
from funcnn import initializers as I
from funcnn.data import load
from funcnn.nn.diagnostics import RELU_FAMILY, SATURATING, activation_stats, error_terms, variance_report
from funcnn.losses import softmax_cross_entropy
from funcnn.nn.models import mlp
from funcnn.train import (
    ExperimentConfig,
    TrainSpec,
    make_optimizer,
    open_run,
    parse_config,
    run_grid,
    summarize,
)
from funcnn.study.cli import (
    grid_stop,
    OptimizerName,
    apply_smoke,
    check_batch,
    check_choice,
    check_hidden_activations,
    check_int,
    check_number,
    check_positive,
    check_values,
    experiment_main,
    validate,
)
from funcnn.study.plots import nanmean, pyplot
from funcnn.study.report import Clock, Report

EXPERIMENT = "init_ablation"

#: The study's initializer names -> names of funcnn.nn.initializers (biases are zero). Each is a
#: grid choice: ``Dense(..., w_init=Choice(...))`` draws a member's weights by its own pick.
INITS: dict[str, str] = {
    "normal_1": "normal",            # N(0, 1)
    "normal_0.01": "normal_0_01",    # N(0, 0.01^2), registered below
    "glorot": "glorot_normal",
    "he": "he_normal",
    "lecun": "lecun_normal",
    "orthogonal": "orthogonal",
}
if "normal_0_01" not in I.INITIALIZER_NAMES:
    I.register_initializer("normal_0_01", lambda: I.normal(0.01))
#: The default activations: the units of the papers reproduced (Glorot & Bengio: logistic,
#: tanh; He et al.: ReLU). Any registered hidden-layer activation is accepted: the
#: initializers do not depend on the activation (no gain is applied; He init is He init
#: whatever follows), so the grid measures how each unit type fares under each of them.
ACTIVATIONS = ("logistic", "tanh", "relu")


@dataclasses.dataclass
class Config(ExperimentConfig, resumable=False, imports=True):
    """Initializer x activation x depth grid on deep MLPs trained with plain SGD (by default)."""

    dataset: str = "mnist1d"
    """'mnist1d' or 'digits' (flattened inputs)."""
    inits: tuple[str, ...] = tuple(INITS)
    """Initializers: normal_1 (N(0,1)), normal_0.01 (N(0,0.01^2)), glorot, he, lecun, orthogonal."""
    activations: tuple[str, ...] = ACTIVATIONS
    """Hidden-layer activations: any registered elementwise one (the user's own with --import)."""
    depths: tuple[int, ...] = (5, 30)
    """Numbers of hidden layers."""
    width: int = 64
    optimizer: OptimizerName = "sgd"
    """'sgd' (plain, as in the papers' analysis), 'momentum' (SGD with momentum 0.9) or any other
    optimizer of funcnn.train.make_optimizer ('adam', ...)."""
    lrs: tuple[float, ...] = (0.05,)
    """Learning rates (batched: they share one compilation)."""
    steps: int = 1500
    batch_size: int = 128
    eval_every: int = 100
    probe_size: int = 256
    """Training examples in the fixed batch used for the per-layer diagnostics."""
    success_margin: float = 0.1
    """A member 'trains' if its final test accuracy >= chance + success_margin."""
    seeds: tuple[int, ...] = (0, 1)
    rule: str = "hand"
    """'hand' (the hand-written backward rules) or 'autodiff' (jax.grad of the twins)."""


SMOKE = dict(inits=("normal_1", "glorot", "he"), activations=("logistic",), depths=(2,), width=8, steps=10,
             eval_every=10, probe_size=16, seeds=(0,), batch_size=32)


def check_config(cfg: Config) -> None:
    """Every value that cannot be right stops the run before it trains or writes anything
    (:func:`funcnn.study.cli.validate`: one line, exit status 2)."""
    check_choice("--dataset", cfg.dataset, ("mnist1d", "digits"))
    check_values("--inits", cfg.inits, each=lambda f, v: check_choice(f, v, INITS))
    check_values("--activations", cfg.activations)
    check_hidden_activations(cfg.activations, flag="--activations")  # after --import
    check_values("--depths", cfg.depths, each=check_int)
    check_int("--width", cfg.width)
    check_values("--lrs", cfg.lrs, each=check_positive)
    check_int("--steps", cfg.steps)
    check_batch("--batch-size", cfg.batch_size, cfg.dataset)
    check_int("--eval-every", cfg.eval_every, minimum=0)
    check_batch("--probe-size", cfg.probe_size, cfg.dataset)
    check_number("--success-margin", cfg.success_margin, low=0, high=1, high_open=True)
    check_choice("--rule", cfg.rule, ("hand", "autodiff"))


def grid_of(cfg: Config) -> list[dict[str, Any]]:
    """Every member: activation x depth x initializer x learning rate x seed."""
    return [
        {"activation": a, "depth": d, "init": n, "lr": float(lr), "seed": s}
        for a in cfg.activations
        for d in cfg.depths
        for n in cfg.inits
        for lr in cfg.lrs
        for s in cfg.seeds
    ]


def build_for(cfg: Config, k: int) -> Callable[[Mapping[str, Any]], TrainSpec]:
    def build(c):
        # c["init"] is a Choice among the study's names; the layers take the library's names
        w_init = Choice(tuple(INITS[o] for o in c["init"].options), c["init"].index)
        model = mlp((cfg.width,) * c["depth"], k, c["activation"], w_init=w_init, b_init="zeros", rule=cfg.rule)
        return TrainSpec(model, "softmax_cross_entropy", make_optimizer(cfg.optimizer, c["lr"]))

    return build


def diagnostics_on(xp: Any, yp: Any) -> Callable[..., dict[str, Any]]:
    """What every evaluation measures on the probe batch ``(xp, yp)``: error-term norms, forward and
    backward variances of the dense layers, saturated and dead fractions."""

    def diagnostics(model, params, state):
        et = error_terms(model, params, state, softmax_cross_entropy, xp, yp)
        vr = variance_report(model, params, state, xp)
        st = activation_stats(model, params, state, xp)
        dense = [i for i, kind in enumerate(vr.kinds) if kind == "dense"]
        return {
            "delta_norms": et.delta_norms,
            "forward_var": vr.forward_var[jnp.asarray(dense)],
            "backward_var": vr.backward_var[jnp.asarray(dense)],
            "saturated_fraction": st.saturated_fraction,
            "dead_fraction": st.dead_fraction,
        }

    return diagnostics


def records_of(cfg: Config, result: Any, chance: float) -> list[dict[str, Any]]:
    """One record per member that trained: the numbers at init and at the end of training."""
    records = []
    for m in result.members:
        if result.interrupted and m.step == 0:
            continue  # its group had not started: left out (stopped_note names it)
        c = m.config
        h = m.history
        em = h.eval_metrics
        name = c["init"]

        def at(key, i):
            v = em.get(key)
            if v is None or len(h.eval_steps) == 0:
                return np.full((1,), np.nan)
            return np.asarray(v[i], np.float64)

        def last_finite(key):
            v = em.get(key)
            if v is None:
                return np.nan
            ok = np.flatnonzero(np.isfinite(v))
            return float(v[ok[-1]]) if ok.size else np.nan

        fwd0, bwd0, dn0 = at("forward_var", 0), at("backward_var", 0), at("delta_norms", 0)
        hidden = slice(0, c["depth"])  # the hidden pre-activations (the output layer is last)
        # saturated fractions of the activations with a flat region, dead ones of the ReLU family
        saturates, dies = c["activation"] in SATURATING, c["activation"] in RELU_FAMILY
        with np.errstate(all="ignore"):
            metrics = {
                "test_accuracy": last_finite("test_accuracy") if not m.diverged else np.nan,
                "train_loss": last_finite("train_loss") if not m.diverged else np.nan,
                "fwd_var_first": float(fwd0[0]),
                "fwd_var_last": float(fwd0[c["depth"] - 1]) if fwd0.size >= c["depth"] else np.nan,
                "bwd_var_first": float(bwd0[0]),
                "bwd_var_last": float(bwd0[c["depth"] - 1]) if bwd0.size >= c["depth"] else np.nan,
                "delta_ratio_init": float(dn0[0] / dn0[-1]),
                "sat_init": float(np.nanmean(at("saturated_fraction", 0)[hidden])) if saturates else np.nan,
                "sat_final": float(np.nanmean(at("saturated_fraction", -1)[hidden])) if saturates else np.nan,
                "dead_init": float(np.nanmean(at("dead_fraction", 0)[hidden])) if dies else np.nan,
            }
        trained = (not m.diverged) and np.isfinite(metrics["test_accuracy"]) and metrics["test_accuracy"] >= chance + cfg.success_margin
        metrics["trained"] = float(trained)
        records.append({
            "config": {"init": name, "activation": c["activation"], "depth": c["depth"], "lr": c["lr"], "seed": c["seed"]},
            "metrics": metrics,
            "diverged": m.diverged,
            "step": m.step,
            "member": m,
        })
    return records


def rows_of(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Means over seeds per (init, activation, depth, lr), with the success rate over every seed."""
    rows = summarize([{k: v for k, v in r.items() if k != "member"} for r in records], over="seed")
    for r in rows:  # diverged members count as failures (summarize's means skip them)
        r.pop("trained_mean", None)
        r.pop("trained_std", None)
        mine = [x for x in records if all(x["config"][kk] == r[kk] for kk in ("init", "activation", "depth", "lr"))]
        r["success_rate"] = sum(x["metrics"]["trained"] for x in mine) / max(len(mine), 1)

    return rows


def findings_of(cfg: Config, rows: list[dict[str, Any]], chance: float, stopped: str) -> list[str]:
    """The papers' claims checked on the rows, and what trained at each depth."""
    def row(init, act, depth, lr=None):
        for r in rows:
            if r["init"] == init and r["activation"] == act and r["depth"] == depth and (lr is None or r["lr"] == lr):
                return r
        return None

    def fmt_acc(r):
        if r is None:
            return "n/a"
        if r["n_diverged"] == r["n"]:
            return "diverged (all seeds)"
        s = f"{r['test_accuracy_mean']:.3f}"
        if r["n_diverged"]:
            s += f" ({r['n_diverged']}/{r['n']} diverged)"
        return s

    findings = []
    dmax = max(cfg.depths)
    thr = chance + cfg.success_margin
    for lr in cfg.lrs:
        he, gl = row("he", "relu", dmax, lr), row("glorot", "relu", dmax, lr)
        if he is None or gl is None:
            findings.append("He et al. 2015: not run (needs 'he', 'glorot' and 'relu' in the grid).")
            break
        he_ok, gl_ok = he["success_rate"] >= 0.5, gl["success_rate"] >= 0.5
        verdict = "REPRODUCED" if (he_ok and not gl_ok) else "NOT reproduced"
        findings.append(
            f"He et al. 2015 ({dmax}-layer ReLU MLP, {cfg.optimizer}, lr={lr}, {cfg.steps} steps): "
            f"He init final test accuracy {fmt_acc(he)} (trained in {he['success_rate']:.0%} of seeds), "
            f"Glorot {fmt_acc(gl)} (trained in {gl['success_rate']:.0%}); chance {chance:.2f}, "
            f"success threshold {thr:.2f}: {verdict}. At init the backward variance of the first "
            f"hidden layer relative to the last is {_ratio(he, 'bwd'):.3g} for He and "
            f"{_ratio(gl, 'bwd'):.3g} for Glorot; the forward variance of the last hidden layer is "
            f"{he['fwd_var_last_mean']:.3g} (He) vs {gl['fwd_var_last_mean']:.3g} (Glorot)."
        )
    for d in cfg.depths:
        n1, gl = row("normal_1", "logistic", d), row("glorot", "logistic", d)
        if n1 is None or gl is None:
            continue
        s1, s2 = n1["sat_init_mean"], gl["sat_init_mean"]
        verdict = "REPRODUCED" if (np.isfinite(s1) and np.isfinite(s2) and s1 > max(2 * s2, 0.05)) else "NOT reproduced"
        findings.append(
            f"Glorot & Bengio 2010 (logistic, depth {d}): at init {s1:.1%} of the hidden logistic "
            f"outputs are saturated (within 0.01 of 0 or 1) with N(0,1) weights vs {s2:.1%} with "
            f"Glorot init ({verdict}); after training {n1['sat_final_mean']:.1%} vs "
            f"{gl['sat_final_mean']:.1%}; final test accuracy {fmt_acc(n1)} vs {fmt_acc(gl)}."
        )
        a1, a2 = n1["test_accuracy_mean"], gl["test_accuracy_mean"]
        slower = n1["n_diverged"] == n1["n"] or (np.isfinite(a1) and np.isfinite(a2) and a1 < a2)
        findings.append(
            f"Glorot & Bengio 2010, training part (logistic, depth {d}): the saturated N(0,1) net "
            f"{'trained worse' if slower else 'did NOT train worse'} than the Glorot-initialized one "
            f"(test accuracy {fmt_acc(n1)} vs {fmt_acc(gl)}): "
            f"{'REPRODUCED' if slower else 'NOT reproduced'} with {cfg.optimizer}, lr {cfg.lrs[0]}, {cfg.steps} steps."
        )
    for d in cfg.depths:
        ok = [f"{r['init']}/{r['activation']}" for r in rows if r["depth"] == d and r["success_rate"] >= 0.5]
        div = [f"{r['init']}/{r['activation']}" for r in rows if r["depth"] == d and r["n_diverged"] > 0]
        n_cfg = sum(1 for r in rows if r["depth"] == d)
        findings.append(
            f"Depth {d}: {len(ok)}/{n_cfg} (init, activation, lr) configurations trained "
            f"(accuracy >= {thr:.2f} in at least half the seeds): {', '.join(ok) or 'none'}; "
            f"diverged: {', '.join(div) or 'none'}."
        )
    best = max((r for r in rows if np.isfinite(r["test_accuracy_mean"])), key=lambda r: r["test_accuracy_mean"], default=None)
    if best is not None:
        findings.append(
            f"Best configuration: {best['init']}/{best['activation']}, depth {best['depth']}, "
            f"lr {best['lr']}: test accuracy {best['test_accuracy_mean']:.3f}."
        )
    if stopped:
        findings.append(stopped)
    return findings


COLUMNS = ["init", "activation", "depth", "lr", "n", "n_diverged", "step", "success_rate", "test_accuracy_mean",
           "test_accuracy_std", "train_loss_mean", "train_loss_std", "fwd_var_last_mean", "bwd_var_first_mean",
           "delta_ratio_init_mean", "sat_init_mean", "sat_final_mean", "dead_init_mean"]


@experiment_main(EXPERIMENT)
def main(argv: list[str] | None = None) -> int:
    cfg = apply_smoke(parse_config(Config, argv, description=__doc__), SMOKE)
    validate(cfg, EXPERIMENT, check_config)
    run = open_run(cfg, EXPERIMENT)
    clock = Clock()
    data = load(cfg.dataset, flat=True)
    chance = 1.0 / data.num_classes
    probe = (jnp.asarray(data.x_train[: cfg.probe_size]), jnp.asarray(data.y_train[: cfg.probe_size]))
    result = run_grid(
        build_for(cfg, data.num_classes), grid_of(cfg), (data.x_train, data.y_train),
        test_data=(data.x_test, data.y_test), steps=cfg.steps, batch_size=cfg.batch_size, eval_every=cfg.eval_every,
        batched=("lr",), choices=("activation", "init"), diagnostics=diagnostics_on(*probe), run_dir=run,
        progress=cfg.progress, mesh=cfg.device_mesh(), name=EXPERIMENT,
    )
    stopped, suffix = grid_stop(run, result, cfg.steps, EXPERIMENT)
    records = records_of(cfg, result, chance)
    rows = rows_of(records)
    findings = findings_of(cfg, rows, chance, stopped)
    notes = Report().stopped(stopped).text(
        f"Dataset {cfg.dataset} (chance {chance:.2f}); MLP width {cfg.width}; {cfg.optimizer} "
        f"for {cfg.steps} steps of batch {cfg.batch_size}; rule={cfg.rule}. Columns: fwd_var_last = "
        "variance of the last hidden pre-activation at init; bwd_var_first = variance of dL/dz at the "
        "first hidden layer at init (unit normal cotangent at the output); delta_ratio_init = "
        "||delta^(1)|| / ||delta^(L)|| at init (first over output layer); sat = fraction of saturated "
        "outputs (activations with a flat region: logistic, tanh, hard_*); dead_init = fraction of units "
        "inactive on the whole probe batch (ReLU family)."
    ).findings(findings)
    run.write_summary(
        rows, columns=COLUMNS, title=f"Initialization ablation (deep MLPs, {'plain SGD' if cfg.optimizer == 'sgd' else cfg.optimizer})" + suffix,
        notes=notes,
        extra={"findings": findings, "chance": chance, "columns": COLUMNS, "groups": [g.name for g in result.groups],
               "compilations": {g.name: g.traces for g in result.groups}, "interrupted": result.interrupted},
    )
    _plots(run, cfg, records, rows, list(INITS), chance)
    print("\n".join(findings))
    print(f"init_ablation: done in {clock.wall:.0f} s; results in {run.path}")
    return run.exit_code(result.interrupted)


def _ratio(r: dict, which: str) -> float:
    with np.errstate(all="ignore"):
        return float(r[f"{which}_var_first_mean"] / r[f"{which}_var_last_mean"])


def _plots(run, cfg, records, rows, init_names, chance) -> None:
    plt = pyplot()

    acts, depths = list(cfg.activations), list(cfg.depths)
    dmax = max(depths)
    lr0 = cfg.lrs[0]
    colors = {n: plt.cm.tab10(i) for i, n in enumerate(init_names)}

    def members(act, depth, init=None, lr=lr0):
        return [r for r in records if r["config"]["activation"] == act and r["config"]["depth"] == depth
                and r["config"]["lr"] == lr and (init is None or r["config"]["init"] == init)]

    def mean_at(rs, key, i):
        vals = [np.asarray(r["member"].history.eval_metrics[key][i], np.float64) for r in rs
                if len(r["member"].history.eval_steps) > i]
        if not vals:
            return None
        a = np.stack(vals)
        return nanmean(np.where(np.isfinite(a), a, np.nan), axis=0)

    def logplot(ax, y, **kw):
        y = np.asarray(y, np.float64)
        y = np.where(np.isfinite(y) & (y > 0), y, np.nan)
        ax.plot(np.arange(1, len(y) + 1), y, **kw)

    # variance per layer at init (forward, backward) for the deepest net
    fig, axes = plt.subplots(len(acts), 2, figsize=(11, 3.2 * len(acts)), squeeze=False)
    for i, a in enumerate(acts):
        for j, (key, lab) in enumerate((("forward_var", "Var[z^(l)] (forward)"), ("backward_var", "Var[dL/dz^(l)] (backward)"))):
            ax = axes[i][j]
            for n in cfg.inits:
                v = mean_at(members(a, dmax, n), key, 0)
                if v is not None:
                    logplot(ax, v, label=n, color=colors[n], marker=".")
            ax.set_yscale("log")
            ax.set_title(f"{a}, depth {dmax}: {lab} at init", fontsize=9)
            ax.set_xlabel("layer l (last = output layer)")
            ax.grid(True, alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    run.save_figure(fig, "variance_per_layer.png")

    # delta norms per layer at init, per depth
    fig, axes = plt.subplots(len(acts), len(depths), figsize=(5.5 * len(depths), 3.2 * len(acts)), squeeze=False)
    for i, a in enumerate(acts):
        for j, d in enumerate(depths):
            ax = axes[i][j]
            for n in cfg.inits:
                v0 = mean_at(members(a, d, n), "delta_norms", 0)
                if v0 is not None:
                    logplot(ax, v0, label=n, color=colors[n], marker=".")
                v1 = mean_at(members(a, d, n), "delta_norms", -1)
                if v1 is not None:
                    logplot(ax, v1, color=colors[n], linestyle=":", alpha=0.7)
            ax.set_yscale("log")
            ax.set_title(f"{a}, depth {d}: ||delta^(l)|| (solid: init, dotted: end)", fontsize=9)
            ax.set_xlabel("layer l")
            ax.grid(True, alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    run.save_figure(fig, "delta_norms.png")

    # success grid heat map: final test accuracy (mean over seeds)
    colkeys = [(a, d, lr) for d in depths for a in acts for lr in cfg.lrs]
    mat = np.full((len(cfg.inits), len(colkeys)), np.nan)
    text = [["" for _ in colkeys] for _ in cfg.inits]
    for ii, n in enumerate(cfg.inits):
        for jj, (a, d, lr) in enumerate(colkeys):
            r = next((r for r in rows if r["init"] == n and r["activation"] == a and r["depth"] == d and r["lr"] == lr), None)
            if r is None:
                continue
            mat[ii, jj] = r["test_accuracy_mean"]
            text[ii][jj] = "div" if r["n_diverged"] == r["n"] else (f"{r['test_accuracy_mean']:.2f}" + ("*" if r["n_diverged"] else ""))
    fig, ax = plt.subplots(figsize=(1.1 * len(colkeys) + 2.5, 0.55 * len(cfg.inits) + 2))
    im = ax.imshow(np.where(np.isfinite(mat), mat, 0.0), vmin=0, vmax=max(0.5, float(np.nanmax(np.r_[mat.ravel(), 0.5]))), cmap="viridis", aspect="auto")
    for ii in range(len(cfg.inits)):
        for jj in range(len(colkeys)):
            ax.text(jj, ii, text[ii][jj], ha="center", va="center", fontsize=8, color="w" if not np.isfinite(mat[ii, jj]) or mat[ii, jj] < 0.35 else "k")
    lab = [f"{a}\nd={d}" + (f"\nlr={lr}" if len(cfg.lrs) > 1 else "") for a, d, lr in colkeys]
    ax.set_xticks(range(len(colkeys)), lab, fontsize=8)
    ax.set_yticks(range(len(cfg.inits)), list(cfg.inits), fontsize=8)
    ax.set_title(f"final test accuracy ({cfg.dataset}, chance {chance:.2f}; div = diverged, * = some seeds diverged)", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.03)
    fig.tight_layout()
    run.save_figure(fig, "success_grid.png")

    # training curves: test accuracy and train loss vs step, deepest net
    fig, axes = plt.subplots(2, len(acts), figsize=(5 * len(acts), 7), squeeze=False)
    for j, a in enumerate(acts):
        for n in cfg.inits:
            rs = members(a, dmax, n)
            if not rs:
                continue
            steps = max((r["member"].history.eval_steps for r in rs), key=len)
            for i, key in enumerate(("test_accuracy", "train_loss")):
                ys = [np.r_[r["member"].history.eval_metrics[key], np.full(len(steps) - len(r["member"].history.eval_steps), np.nan)] for r in rs]
                with np.errstate(all="ignore"):
                    import warnings

                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)
                        y = np.nanmean(np.stack(ys), axis=0)
                axes[i][j].plot(steps, y, label=n, color=colors[n])
        axes[0][j].axhline(chance, color="gray", linestyle="--", linewidth=0.8)
        axes[0][j].set_title(f"{a}, depth {dmax}: test accuracy", fontsize=9)
        axes[1][j].set_title(f"{a}, depth {dmax}: train loss", fontsize=9)
        axes[1][j].set_yscale("log")
        for i in range(2):
            axes[i][j].set_xlabel("step")
            axes[i][j].grid(True, alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    run.save_figure(fig, "training_curves.png")

    # saturation (activations with a flat region: logistic, tanh, ...) per layer at init and at the end, deepest net
    sat_acts = [a for a in acts if a in SATURATING]
    if sat_acts:
        fig, axes = plt.subplots(1, len(sat_acts), figsize=(5.5 * len(sat_acts), 3.5), squeeze=False)
        for j, a in enumerate(sat_acts):
            ax = axes[0][j]
            for n in cfg.inits:
                rs = members(a, dmax, n)
                v0, v1 = mean_at(rs, "saturated_fraction", 0), mean_at(rs, "saturated_fraction", -1)
                if v0 is not None:
                    ax.plot(np.arange(1, len(v0) + 1), v0, color=colors[n], marker=".", label=n)
                if v1 is not None:
                    ax.plot(np.arange(1, len(v1) + 1), v1, color=colors[n], linestyle=":")
            ax.set_title(f"{a}, depth {dmax}: saturated fraction (solid: init, dotted: end)", fontsize=9)
            ax.set_xlabel("hidden layer")
            ax.set_ylim(-0.02, 1.02)
            ax.grid(True, alpha=0.3)
        axes[0][0].legend(fontsize=7)
        fig.tight_layout()
        run.save_figure(fig, "saturation.png")


if __name__ == "__main__":
    raise SystemExit(main())
