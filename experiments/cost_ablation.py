"""Cost ablation: why does the log-likelihood cost learn faster than squared error?

Question: with a logistic (or softmax) output unit, the error term at the output
pre-activation ``z`` is ``(h - y) h (1 - h)`` under squared error (``logistic_mse``) but
just ``h - y`` under the log-likelihood (``binary_cross_entropy``); for softmax it is
``J_softmax^T (h - y)`` (``softmax_mse``) vs ``h - y`` (``softmax_cross_entropy``). When the
output unit starts *saturated* on the wrong answer (h ~ 1 while y = 0), the squared-error
gradient vanishes and learning stalls; the log-likelihood gradient is largest exactly
there. How much slower is squared error, measured?

What it measures (plain SGD throughout: an adaptive optimizer such as Adam rescales the
gradient and would hide the effect being studied):

1. ``neuron``: Nielsen's one-neuron demo (Neural Networks and Deep Learning, ch. 3): one
   input x = 1, target y = 0, starts (w, b) = (0.6, 0.9) (output 0.82) and (2, 2) (output
   0.98), learning rate 0.15, 300 steps. Output h and |dC/dz| per step for each cost.
2. ``ovr``: one-vs-rest logistic regression on a real data set (digits by default:
   "is it a 0?"), starting with output bias b0 in {0, 4, 8} so that h = logistic(b0) is
   (for b0 > 0) near 1 while 90% of the targets are 0; >= 3 seeds (weights drawn per seed).
3. ``softmax``: a one-hidden-layer MLP with a softmax output, trained with
   softmax+cross-entropy vs softmax+MSE, with the output layer's initial weights scaled by
   1 (normal start) or 8 (saturated softmax); >= 3 seeds.

For each cost: learning curves (output / test accuracy), the mean per-example gradient
magnitude ``||dC_x/dz||`` w.r.t. the output pre-activation over training, and the number
of steps to reach a threshold (output |h - y| < 0.1 for the neuron; a test accuracy for the
real tasks). The findings in ``summary.md`` are computed from these numbers.

Run:  python experiments/cost_ablation.py            (a few minutes on 2 CPU cores)
      python experiments/cost_ablation.py --smoke    (seconds)
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from funcnn.nn.combinators import serial
from funcnn.nn import Activation, Dense, Flatten
from funcnn.losses import binary_cross_entropy, logistic_mse, softmax_cross_entropy, softmax_mse
from funcnn.train import (
    ExperimentConfig,
    TrainSpec,
    band,
    first_reach,
    markdown_table,
    open_run,
    parse_config,
    run_grid,
    summarize,
)
from funcnn.study.cli import (
    apply_smoke,
    check_batch,
    check_choice,
    check_hidden_activations,
    check_int,
    check_number,
    check_positive,
    check_values,
    dataset_facts,
    interrupted_at,
    experiment_main,
    require,
    stopped_note,
    validate,
)
from funcnn.study.plots import pyplot

EXPERIMENT = "cost_ablation"
BINARY_COSTS = {"logistic_mse": logistic_mse, "binary_cross_entropy": binary_cross_entropy}
SOFTMAX_COSTS = {"softmax_mse": softmax_mse, "softmax_cross_entropy": softmax_cross_entropy}


@dataclasses.dataclass
class Config(ExperimentConfig, resumable=False, imports=True):
    """Cost ablation settings (``--smoke`` shrinks the step counts and seeds)."""

    rule: str = "hand"
    """backward rule of every layer and loss: "hand" (custom_vjp) or "autodiff"."""
    # -- part 1: one neuron (Nielsen ch. 3)
    neuron_starts: tuple[tuple[float, float], ...] = ((0.6, 0.9), (2.0, 2.0))
    """initial (w, b) pairs of the single neuron (x = 1, y = 0)."""
    neuron_lr: float = 0.15
    neuron_steps: int = 300
    neuron_threshold: float = 0.1
    """'learned' once the output |h - y| falls below this."""
    # -- part 2: one-vs-rest logistic regression on a real data set
    dataset: str = "digits"
    """data set of parts 2 and 3: "digits" or "mnist1d"."""
    positive_class: int = 0
    """the class of part 2's one-vs-rest task (a class of --dataset: 0-9)."""
    ovr_biases: tuple[float, ...] = (0.0, 4.0, 8.0)
    """initial output bias b0 (h = logistic(b0) at the start)."""
    ovr_lr: float = 0.5
    ovr_steps: int = 600
    ovr_threshold: float = 0.95
    """test accuracy that counts as 'learned' (the majority class alone gives 0.9)."""
    # -- part 3: softmax output
    hidden: int = 64
    hidden_activation: str = "relu"
    """hidden activation of part 3's MLP (any registered elementwise one; the user's own with --import)."""
    out_scales: tuple[float, ...] = (1.0, 8.0)
    """factor on the output layer's initial weights (large = saturated softmax)."""
    softmax_lr: float = 0.1
    softmax_steps: int = 1500
    softmax_threshold: float = 0.9
    """test accuracy that counts as 'learned'."""
    batch_size: int = 64
    evals: int = 50
    """evaluations per run (learning-curve resolution)."""
    probe_size: int = 512
    """training examples on which the output gradient magnitude is measured."""


#: The --smoke version of a config (of what the command line did not set): tiny step counts, one seed.
SMOKE: dict[str, Any] = dict(
    seeds=lambda cfg: cfg.seeds[:1], neuron_steps=20, ovr_steps=20, softmax_steps=20, evals=4,
    ovr_biases=(0.0, 8.0), probe_size=64,
)


# --------------------------------------------------------------------------- diagnostics


def output_gradient_probe(loss_fn, x_probe: np.ndarray, y_probe: np.ndarray, logistic_out: bool):
    """A ``diagnostics(model, params, state)`` hook: the mean per-example ``||dC_x/dz||``
    at the output pre-activation z on a fixed probe batch, and the mean output h.

    The loss averages over the batch, so the per-example gradient is ``N * dL/dz``. Under
    ``rule="hand"`` ``jax.grad`` runs the loss's hand-written rule (h - y, or (h - y) h (1 - h), ...).
    """
    xp, yp = jnp.asarray(x_probe), jnp.asarray(y_probe)
    n = xp.shape[0]

    def diag(model, params, state):
        z, _ = model.apply(params, state, xp, train=False)
        g = jax.grad(lambda zz: loss_fn(zz, yp))(z) * n
        out = {"out_grad": jnp.mean(jnp.linalg.norm(g.reshape(n, -1), axis=-1))}
        if logistic_out:
            out["output"] = jnp.mean(jax.nn.sigmoid(z))
        return out

    return diag


# --------------------------------------------------------------------------- helpers


def reach_stats(reached: list[int | None]) -> tuple[float, int]:
    """(mean steps over the members that reached it, how many reached it)."""
    got = [r for r in reached if r is not None]
    return (float(np.mean(got)) if got else float("nan")), len(got)


def eval_every(steps: int, evals: int) -> int:
    return max(1, steps // max(1, evals))


def _label(cost: str, start: str) -> str:
    return f"{cost}, {start}"


def run_part(cfg, name, costs, build_for, configs_for, train, test, probe_diag, steps, bs, run, classification):
    """One part: a run_grid per cost (each with its own output-gradient probe). Members whose
    grid had not started when the run was interrupted are left out; ``progress`` lists every
    cost's ``(name, step reached, steps)``."""
    members, interrupted, seconds, progress = [], False, 0.0, []
    for cost, loss_fn in costs.items():
        if interrupted:
            progress.append((f"{name}:{cost}", 0, steps))
            continue
        try:
            res = run_grid(
                build_for(cost, loss_fn), configs_for(cost), train, test_data=test, steps=steps,
                batch_size=bs, eval_every=eval_every(steps, cfg.evals), diagnostics=probe_diag(loss_fn),
                classification=classification, run_dir=run, progress=cfg.progress, name=f"{name}:{cost}",
            )
        except KeyboardInterrupt:  # while the grid was being prepared: it had not started
            progress.append((f"{name}:{cost}", 0, steps))
            interrupted = True
            continue
        step = res.members[0].step if res.members else 0
        progress.append((f"{name}:{cost}", step, steps))
        members += [m for m in res.members if m.step > 0]
        seconds += res.seconds
        if res.interrupted:
            interrupted = True
    return members, interrupted, seconds, progress


# --------------------------------------------------------------------------- the parts


def part_neuron(cfg: Config, run) -> dict[str, Any]:
    x = np.ones((1, 1), np.float32)
    y = np.zeros((1, 1), np.float32)

    def build_for(cost, loss_fn):
        def build(c):
            def init(key, in_shape):
                return {"w": jnp.full((1, 1), c["w0"], jnp.float32), "b": jnp.full((1,), c["b0"], jnp.float32)}, ()

            return TrainSpec(Dense(1, rule=cfg.rule), loss_fn, optax.sgd(cfg.neuron_lr), init)

        return build

    def configs_for(cost):
        return [{"part": "neuron", "cost": cost, "w0": float(w), "b0": float(b), "seed": 0} for w, b in cfg.neuron_starts]

    members, interrupted, secs, progress = run_part(
        cfg, "neuron", BINARY_COSTS, build_for, configs_for, (x, y), None,
        lambda fn: output_gradient_probe(fn, x, y, True), cfg.neuron_steps, 1, run, False,
    )
    # Evaluate every step would be slow; the per-step output follows from the per-step loss
    # exactly: C = h^2/2 (MSE, y=0) or C = -log(1 - h) (log-likelihood, y=0).
    rows, curves = [], {}
    for m in members:
        c = m.config
        loss = m.history.step_metrics["loss"]
        h = np.sqrt(2 * loss) if c["cost"] == "logistic_mse" else -np.expm1(-loss)
        steps = np.arange(len(h))
        reached = first_reach(steps, np.abs(h), cfg.neuron_threshold, below=True)
        start = f"w0={c['w0']:g}, b0={c['b0']:g}"
        curves[_label(c["cost"], start)] = dict(
            steps=steps, output=h, eval_steps=m.history.eval_steps,
            out_grad=m.history.eval_metrics["out_grad"],
        )
        rows.append({
            "part": "neuron", "cost": c["cost"], "start": start, "n": 1, "step": m.step,
            "initial_output": float(m.history.eval_metrics["output"][0]),
            "initial_out_grad": float(m.history.eval_metrics["out_grad"][0]),
            "final_output": float(h[-1]) if len(h) else float("nan"),
            "steps_to_threshold": reached,
            "reached": f"{int(reached is not None)}/1",
        })
    return {"rows": rows, "curves": curves, "interrupted": interrupted, "seconds": secs, "progress": progress}


def _real_data(cfg: Config):
    from funcnn.data import load

    ds = load(cfg.dataset)
    return ds


def part_ovr(cfg: Config, run, ds) -> dict[str, Any]:
    pos = cfg.positive_class
    ytr = (ds.y_train == pos).astype(np.float32)[:, None]
    yte = (ds.y_test == pos).astype(np.float32)[:, None]
    xp, yp = ds.x_train[: cfg.probe_size], ytr[: cfg.probe_size]
    model = serial(Flatten(), Dense(1, rule=cfg.rule))

    def build_for(cost, loss_fn):
        def build(c):
            def init(key, in_shape):
                _, params, state = model.init(key, in_shape)
                dense = dict(params[1])
                dense["b"] = jnp.full_like(dense["b"], c["b0"])
                return (params[0], dense), state

            return TrainSpec(model, loss_fn, optax.sgd(cfg.ovr_lr), init)

        return build

    def configs_for(cost):
        return [{"part": "ovr", "cost": cost, "b0": float(b), "seed": int(s)} for b in cfg.ovr_biases for s in cfg.seeds]

    members, interrupted, secs, progress = run_part(
        cfg, "ovr", BINARY_COSTS, build_for, configs_for, (ds.x_train, ytr), (ds.x_test, yte),
        lambda fn: output_gradient_probe(fn, xp, yp, True), cfg.ovr_steps, cfg.batch_size, run, True,
    )
    return _real_rows(cfg, members, "ovr", "b0", cfg.ovr_threshold) | {"interrupted": interrupted, "seconds": secs,
                                                                      "base_rate": float(1 - yte.mean()),
                                                                      "progress": progress}


def part_softmax(cfg: Config, run, ds) -> dict[str, Any]:
    xp, yp = ds.x_train[: cfg.probe_size], ds.y_train[: cfg.probe_size]
    model = serial(
        Flatten(), Dense(cfg.hidden, rule=cfg.rule), Activation(cfg.hidden_activation, rule=cfg.rule),
        Dense(ds.num_classes, rule=cfg.rule),
    )

    def build_for(cost, loss_fn):
        def build(c):
            def init(key, in_shape):
                _, params, state = model.init(key, in_shape)
                last = dict(params[-1])
                last["w"] = last["w"] * c["out_scale"]
                return (*params[:-1], last), state

            return TrainSpec(model, loss_fn, optax.sgd(cfg.softmax_lr), init)

        return build

    def configs_for(cost):
        return [{"part": "softmax", "cost": cost, "out_scale": float(s), "seed": int(sd)}
                for s in cfg.out_scales for sd in cfg.seeds]

    members, interrupted, secs, progress = run_part(
        cfg, "softmax", SOFTMAX_COSTS, build_for, configs_for, (ds.x_train, ds.y_train), (ds.x_test, ds.y_test),
        lambda fn: output_gradient_probe(fn, xp, yp, False), cfg.softmax_steps, cfg.batch_size, run, True,
    )
    return _real_rows(cfg, members, "softmax", "out_scale", cfg.softmax_threshold) | {
        "interrupted": interrupted, "seconds": secs, "progress": progress}


def _real_rows(cfg, members, part, start_key, threshold) -> dict[str, Any]:
    recs = [{"config": {"cost": m.config["cost"], "start": f"{start_key}={m.config[start_key]:g}",
                        "seed": m.config["seed"]},
             "metrics": m.final, "diverged": m.diverged, "step": m.step} for m in members]
    rows = summarize(recs, metrics=["test_accuracy", "test_loss", "train_loss"])
    curves: dict[str, dict[str, Any]] = {}
    for m in members:
        lab = _label(m.config["cost"], f"{start_key}={m.config[start_key]:g}")
        h = m.history
        d = curves.setdefault(lab, {"eval_steps": h.eval_steps, "test_accuracy": [], "out_grad": [], "reach": [],
                                    "init_grad": []})
        d["test_accuracy"].append(h.eval_metrics["test_accuracy"])
        d["out_grad"].append(h.eval_metrics["out_grad"])
        d["init_grad"].append(float(h.eval_metrics["out_grad"][0]))
        d["reach"].append(first_reach(h.eval_steps, h.eval_metrics["test_accuracy"], threshold))
    out_rows = []
    for r in rows:
        lab = _label(r["cost"], r["start"])
        d = curves[lab]
        mean_steps, k = reach_stats(d["reach"])
        out_rows.append({
            "part": part, **r,
            "initial_out_grad": float(np.mean(d["init_grad"])),
            "steps_to_threshold": mean_steps,
            "reached": f"{k}/{len(d['reach'])}",
        })
    for d in curves.values():
        d["test_accuracy"] = np.stack(d["test_accuracy"])
        d["out_grad"] = np.stack(d["out_grad"])
    return {"rows": out_rows, "curves": curves}


# --------------------------------------------------------------------------- findings


def _pair_sentences(rows, slow: str, fast: str, threshold_text: str, total_steps: int) -> list[str]:
    """One sentence per start: steps-to-threshold and initial gradient, slow vs fast cost."""
    out = []
    starts = [r["start"] for r in rows if r["cost"] == fast]
    for st in starts:
        f = next(r for r in rows if r["cost"] == fast and r["start"] == st)
        s = next((r for r in rows if r["cost"] == slow and r["start"] == st), None)
        if s is None:
            continue
        fs, ss = f["steps_to_threshold"], s["steps_to_threshold"]

        def txt(v, reached):
            if v is None or (isinstance(v, float) and math.isnan(v)):
                return f"did not get there within {total_steps} steps"
            k, n = reached.split("/")
            if k == n:
                return f"took {v:.0f} steps" + (f" (all {n} runs)" if n != "1" else "")
            return f"took {v:.0f} steps in the {k} of {n} runs that got there (the others did not within {total_steps})"

        ratio = ""
        f_all = f["reached"].split("/")[0] == f["reached"].split("/")[1]
        s_k, s_n = (int(v) for v in s["reached"].split("/"))
        if f_all and fs and s_k:
            # Runs that never got there count as total_steps: a lower bound on the ratio.
            lb = (float(ss) * s_k + total_steps * (s_n - s_k)) / s_n
            ratio = f" ({lb / float(fs):.1f}x as many" + (")" if s_k == s_n else
                                                         ", a lower bound: runs that never got there count as "
                                                         f"{total_steps})")
        elif f_all and fs and not s_k:
            ratio = f" (more than {total_steps / float(fs):.1f}x as many)"
        g = s["initial_out_grad"] / f["initial_out_grad"] if f["initial_out_grad"] > 0 else float("nan")
        out.append(
            f"- start {st}: to reach {threshold_text}, {fast} {txt(fs, f['reached'])} and "
            f"{slow} {txt(ss, s['reached'])}{ratio}; at step 0 the per-example output gradient "
            f"||dC/dz|| was {s['initial_out_grad']:.3g} under {slow} vs "
            f"{f['initial_out_grad']:.3g} under {fast} (ratio {g:.2g})."
        )
    return out


def findings(cfg: Config, parts: dict[str, dict[str, Any]]) -> str:
    lines = ["## Findings (computed from the measured numbers)", ""]
    if "neuron" in parts:
        lines.append(f"**One neuron** (x=1, y=0, SGD lr={cfg.neuron_lr}):")
        lines += _pair_sentences(parts["neuron"]["rows"], "logistic_mse", "binary_cross_entropy",
                                 f"|h - y| < {cfg.neuron_threshold}", cfg.neuron_steps)
        lines.append("")
    if "ovr" in parts:
        lines.append(f"**One-vs-rest logistic regression** ({cfg.dataset}, class {cfg.positive_class} vs rest, "
                     f"SGD lr={cfg.ovr_lr}; predicting the majority class gives test accuracy "
                     f"{parts['ovr']['base_rate']:.3f}):")
        lines += _pair_sentences(parts["ovr"]["rows"], "logistic_mse", "binary_cross_entropy",
                                 f"test accuracy {cfg.ovr_threshold}", cfg.ovr_steps)
        lines.append("")
    if "softmax" in parts:
        lines.append(f"**Softmax output** ({cfg.dataset}, MLP with {cfg.hidden} {cfg.hidden_activation} units, "
                     f"SGD lr={cfg.softmax_lr}):")
        lines += _pair_sentences(parts["softmax"]["rows"], "softmax_mse", "softmax_cross_entropy",
                                 f"test accuracy {cfg.softmax_threshold}", cfg.softmax_steps)
        lines.append("")
    # The general verdict, from the per-start comparisons.
    slower = faster = 0
    for p in parts.values():
        rows = p["rows"]
        for r in rows:
            if r["cost"] not in ("logistic_mse", "softmax_mse"):
                continue
            fast_cost = "binary_cross_entropy" if r["cost"] == "logistic_mse" else "softmax_cross_entropy"
            f = next((q for q in rows if q["cost"] == fast_cost and q["start"] == r["start"]), None)
            if f is None:
                continue
            fs = f["steps_to_threshold"]
            ss = r["steps_to_threshold"]
            fs = math.inf if fs is None or (isinstance(fs, float) and math.isnan(fs)) else fs
            ss = math.inf if ss is None or (isinstance(ss, float) and math.isnan(ss)) else ss
            if ss > fs:
                slower += 1
            elif ss < fs:
                faster += 1
    total = sum(1 for p in parts.values() for r in p["rows"] if r["cost"] in ("logistic_mse", "softmax_mse"))
    lines.append(
        f"Over all {total} starts, the squared-error cost was slower to reach the threshold in {slower}, "
        f"faster in {faster}, and tied in {total - slower - faster}. "
        + ("This reproduces the textbook claim that h - y (log-likelihood) learns faster, most of all "
           "from a saturated start." if slower > total / 2 else
           "The textbook claim (log-likelihood learns faster) was NOT reproduced in most starts here.")
    )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- plots


def plot_all(cfg: Config, parts: dict[str, dict[str, Any]]):
    plt = pyplot()
    names = [p for p in ("neuron", "ovr", "softmax") if p in parts]
    fig, axes = plt.subplots(2, len(names), figsize=(5.2 * len(names), 8), squeeze=False)
    titles = {
        "neuron": "one neuron, x=1, y=0",
        "ovr": f"{cfg.dataset}: {cfg.positive_class}-vs-rest, logistic regression",
        "softmax": f"{cfg.dataset}: softmax MLP",
    }
    for j, p in enumerate(names):
        top, bot = axes[0, j], axes[1, j]
        for lab, d in parts[p]["curves"].items():
            if p == "neuron":
                top.plot(d["steps"], d["output"], label=lab)
                bot.plot(d["eval_steps"], np.maximum(d["out_grad"], 1e-12), label=lab)
            else:
                band(top, d["eval_steps"], d["test_accuracy"], label=lab, spread="range")
                band(bot, d["eval_steps"], np.maximum(d["out_grad"], 1e-12), label=lab, spread="range")
        top.set_ylabel("output h" if p == "neuron" else "test accuracy (mean, min-max over seeds)")
        top.set_title(titles[p], fontsize=10)
        bot.set_yscale("log")
        bot.set_ylabel("||dC_x/dz|| at the output (per example)")
        for ax in (top, bot):
            ax.set_xlabel("SGD step")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle("squared error (logistic_mse / softmax_mse) vs log-likelihood (h - y)", fontsize=12)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- main


def check_config(cfg: Config) -> None:
    """Every value that cannot be right stops the run before it trains or writes anything
    (:func:`funcnn.study.cli.validate`: one line, exit status 2)."""
    check_choice("--rule", cfg.rule, ("hand", "autodiff"))
    require(cfg.mesh is None and cfg.devices in (None, 1), "--mesh/--devices",
            "left out (cost_ablation trains on one device)", cfg.mesh if cfg.mesh is not None else cfg.devices)
    check_values("--neuron-starts", cfg.neuron_starts,
                 each=lambda f, wb: [check_number(f, v) for v in wb])
    check_positive("--neuron-lr", cfg.neuron_lr)
    check_int("--neuron-steps", cfg.neuron_steps)
    check_number("--neuron-threshold", cfg.neuron_threshold, low=0, high=1, low_open=True, high_open=True)
    check_choice("--dataset", cfg.dataset, ("digits", "mnist1d"))
    k = dataset_facts(cfg.dataset)["num_classes"]
    check_int("--positive-class", cfg.positive_class, minimum=0, maximum=k - 1, why=f" (a class of {cfg.dataset})")
    check_values("--ovr-biases", cfg.ovr_biases, each=check_number)
    check_positive("--ovr-lr", cfg.ovr_lr)
    check_int("--ovr-steps", cfg.ovr_steps)
    check_number("--ovr-threshold", cfg.ovr_threshold, low=0, high=1, low_open=True)
    check_int("--hidden", cfg.hidden)
    check_hidden_activations((cfg.hidden_activation,), flag="--hidden-activation")  # after --import
    check_values("--out-scales", cfg.out_scales, each=check_positive)
    check_positive("--softmax-lr", cfg.softmax_lr)
    check_int("--softmax-steps", cfg.softmax_steps)
    check_number("--softmax-threshold", cfg.softmax_threshold, low=0, high=1, low_open=True)
    check_batch("--batch-size", cfg.batch_size, cfg.dataset)
    check_int("--evals", cfg.evals)
    check_batch("--probe-size", cfg.probe_size, cfg.dataset)


@experiment_main(EXPERIMENT)
def main(argv: list[str] | None = None) -> int:
    cfg = apply_smoke(parse_config(Config, argv, description=__doc__), SMOKE)
    validate(cfg, EXPERIMENT, check_config)
    run = open_run(cfg, EXPERIMENT)
    t0 = time.time()
    ds = _real_data(cfg)
    parts: dict[str, dict[str, Any]] = {}
    interrupted = False
    steps = {"neuron": cfg.neuron_steps, "ovr": cfg.ovr_steps, "softmax": cfg.softmax_steps}
    progress: list[tuple[str, int, int]] = []
    for name, fn in (("neuron", lambda: part_neuron(cfg, run)),
                     ("ovr", lambda: part_ovr(cfg, run, ds)),
                     ("softmax", lambda: part_softmax(cfg, run, ds))):
        if interrupted:
            costs = BINARY_COSTS if name != "softmax" else SOFTMAX_COSTS
            progress += [(f"{name}:{c}", 0, steps[name]) for c in costs]
            continue
        res = fn()
        progress += res["progress"]
        if res["rows"]:
            parts[name] = res
        if res["interrupted"]:
            interrupted = True
            print(f"{EXPERIMENT}: {run.stop_reason} during part {name!r}: keeping what was trained.", file=sys.stderr)
    rows = [r for p in parts.values() for r in p["rows"]]
    notes = findings(cfg, parts)
    if interrupted:
        notes = f"**{stopped_note(run, progress)}**\n\n" + notes
    suffix = f" ({interrupted_at(progress)})" if interrupted else ""
    notes = (
        "Columns: steps_to_threshold = mean over the seeds that reached it (reached = how many); "
        "initial_out_grad = mean per-example ||dC/dz|| at the output pre-activation at step 0.\n\n"
        + notes
    )
    for p in parts:
        run.write_text(f"table_{p}.md", markdown_table(parts[p]["rows"]) + "\n")
    run.write_summary(
        rows, title="Cost ablation: squared error vs log-likelihood" + suffix, notes=notes,
        extra={"interrupted": interrupted, "seconds": time.time() - t0,
               "thresholds": {"neuron_abs_error": cfg.neuron_threshold, "ovr_test_accuracy": cfg.ovr_threshold,
                              "softmax_test_accuracy": cfg.softmax_threshold}},
    )
    if parts:
        run.save_figure(plot_all(cfg, parts), "cost_ablation")
    print(notes)
    print(f"cost_ablation: results in {run.path} ({time.time() - t0:.0f} s)")
    return run.exit_code(interrupted)


if __name__ == "__main__":
    sys.exit(main())
