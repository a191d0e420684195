"""Gradient stability: what do gradient clipping and batch norm do for a deep net that explodes?

Question: a deep ReLU MLP started from a bad (too large) initialization, or trained with
a too-high learning rate, explodes or diverges under plain SGD. Do gradient clipping
(``optax.clip_by_global_norm`` via ``funcnn.train.make_optimizer(clip_global_norm=...)``)
and batch normalization (``funcnn.nn.models.mlp(batch_norm=True)``) keep it trainable?

What it measures, per scenario (init gain x learning rate) x clipping x batch norm x seed:
the training loss and the global gradient norm at every step (recorded by the engine),
whether and when the loss became non-finite (divergence is recorded, the member is
stopped, the study goes on), and the final train loss / test accuracy.

Scenarios: ``baseline`` (He init, moderate learning rate), ``bad_init`` (He init times a
large gain: every layer multiplies the forward signal's variance by ``gain**2``) and
``high_lr`` (He init, a learning rate far too high for plain SGD). The init gain, the
learning rate and the clipping threshold (0 = none) are batched values: each batch-norm
variant is ONE compiled program for all scenarios, clipping variants and seeds.

Outputs (results/gradient_stability/<run>/): summary.json/.md (table + computed Findings),
metrics.jsonl, loss_curves.png, grad_norms.png.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np
import optax

from funcnn import initializers as I
from funcnn.data import load
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
    check_positive,
    experiment_main,
    require,
    validate,
)
from funcnn.study.plots import pyplot
from funcnn.study.report import Clock, Report

EXPERIMENT = "gradient_stability"


@dataclasses.dataclass
class Config(ExperimentConfig, resumable=False, imports=True):
    """Bad init / high learning rate x gradient clipping x batch norm on a deep ReLU MLP."""

    dataset: str = "mnist1d"
    """'mnist1d' or 'digits' (flattened inputs)."""
    depth: int = 20
    width: int = 64
    activation: str = "relu"
    """Hidden activation: any registered elementwise one (the user's own with --import)."""
    optimizer: OptimizerName = "sgd"
    """Any name of funcnn.train.make_optimizer (plain 'sgd' by default)."""
    base_lr: float = 0.02
    """Learning rate of the baseline and bad_init scenarios."""
    high_lr: float = 1.0
    """Learning rate of the high_lr scenario."""
    bad_gain: float = 2.0
    """Factor on the He-init standard deviation in the bad_init scenario."""
    clip_norm: float = 1.0
    """Global-norm threshold of the clipped variants."""
    steps: int = 600
    batch_size: int = 128
    eval_every: int = 100
    seeds: tuple[int, ...] = (0, 1)
    rule: str = "hand"
    """'hand' (the hand-written backward rules) or 'autodiff' (jax.grad of the twins)."""


SMOKE = dict(depth=2, width=8, steps=10, eval_every=10, seeds=(0,), batch_size=32)


def scaled_he(gain):
    """He-normal weights times ``gain`` (a Python float or a traced scalar)."""
    he = I.he_normal()

    def init(key, shape, dtype=jnp.float32):
        return he(key, shape, dtype) * jnp.asarray(gain, dtype)

    return init


def check_config(cfg: Config) -> None:
    """Every value that cannot be right stops the run before it trains or writes anything
    (:func:`funcnn.study.cli.validate`: one line, exit status 2)."""
    check_choice("--dataset", cfg.dataset, ("mnist1d", "digits"))
    check_int("--depth", cfg.depth)  # depth 0 would train a linear model
    check_int("--width", cfg.width)
    check_hidden_activations((cfg.activation,), flag="--activation")  # after --import
    check_positive("--base-lr", cfg.base_lr)
    check_positive("--high-lr", cfg.high_lr)
    require(cfg.high_lr != cfg.base_lr, "--high-lr", f"a rate other than --base-lr ({cfg.base_lr:g}), or the "
            "high_lr scenario is the baseline", cfg.high_lr)
    check_positive("--bad-gain", cfg.bad_gain)
    require(cfg.bad_gain != 1, "--bad-gain", "a gain other than 1, or the bad_init scenario is the baseline",
            cfg.bad_gain)
    check_positive("--clip-norm", cfg.clip_norm)
    check_int("--steps", cfg.steps)
    check_batch("--batch-size", cfg.batch_size, cfg.dataset)
    check_int("--eval-every", cfg.eval_every, minimum=0)
    check_choice("--rule", cfg.rule, ("hand", "autodiff"))


def scenarios_of(cfg: Config) -> dict[str, tuple[float, float]]:
    """The three scenarios: ``name -> (init gain, learning rate)``."""
    return {"baseline": (1.0, cfg.base_lr), "bad_init": (float(cfg.bad_gain), cfg.base_lr), "high_lr": (1.0, cfg.high_lr)}


def grid_of(cfg: Config, scenarios: Mapping[str, tuple[float, float]]) -> list[dict[str, Any]]:
    """Every member: batch norm x clipping x scenario x seed."""
    return [
        {"batch_norm": bn, "clip": clip, "gain": g, "lr": float(lr), "seed": s}
        for bn in (False, True)
        for clip in (0.0, float(cfg.clip_norm))
        for (g, lr) in scenarios.values()
        for s in cfg.seeds
    ]


def build_for(cfg: Config, k: int) -> Callable[[Mapping[str, Any]], TrainSpec]:
    def build(c):
        model = mlp((cfg.width,) * cfg.depth, k, cfg.activation, w_init=scaled_he(c["gain"]),
                    batch_norm=c["batch_norm"], rule=cfg.rule)
        # clip is a batched float: 0.0 = no clipping (threshold +inf: clip_by_global_norm then
        # returns the gradient unchanged), so clipped and unclipped members share one program.
        # (make_optimizer(clip_global_norm=...) wants a Python number, hence the explicit chain.)
        threshold = jnp.where(jnp.asarray(c["clip"]) > 0, jnp.asarray(c["clip"], jnp.float32), jnp.inf)
        opt = optax.chain(optax.clip_by_global_norm(threshold), make_optimizer(cfg.optimizer, c["lr"]))
        return TrainSpec(model, "softmax_cross_entropy", opt)

    return build


def scenario_of(c: Mapping[str, Any], scenarios: Mapping[str, tuple[float, float]]) -> str:
    for name, (g, lr) in scenarios.items():
        if c["gain"] == g and c["lr"] == lr:
            return name
    return "?"


def variant_of(c: Mapping[str, Any]) -> str:
    return ("clip" if c["clip"] else "no clip") + (" + BN" if c["batch_norm"] else "")


def records_of(result: Any, scenarios: Mapping[str, tuple[float, float]]) -> list[dict[str, Any]]:
    """One record per member that trained: its scenario, variant and measured numbers."""
    records = []
    for m in result.members:
        if result.interrupted and m.step == 0:
            continue  # its group had not started: left out (stopped_note names it)
        c = m.config
        sm = m.history.step_metrics
        gn = sm["grad_norm"][np.isfinite(sm["grad_norm"])]
        loss = sm["loss"][np.isfinite(sm["loss"])]
        fin = m.final
        records.append({
            "config": {"scenario": scenario_of(c, scenarios), "variant": variant_of(c), "clip": c["clip"], "batch_norm": c["batch_norm"],
                       "seed": c["seed"]},
            "metrics": {
                "test_accuracy": fin.get("test_accuracy", np.nan),
                "train_loss": fin.get("train_loss", np.nan),
                "last_batch_loss": float(np.mean(loss[-20:])) if loss.size else np.nan,
                "grad_norm_max": float(gn.max()) if gn.size else np.nan,
                "grad_norm_median": float(np.median(gn)) if gn.size else np.nan,
                "initial_loss": float(loss[0]) if loss.size else np.nan,
                "steps_done": float(np.isfinite(sm["loss"]).sum()),
            },
            "diverged": m.diverged,
            "step": m.step,
            "member": m,
        })
    return records


def rows_of(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Means over seeds per (scenario, variant), with each group's divergences."""
    rows = summarize([{k2: v for k2, v in r.items() if k2 != "member"} for r in records])
    # diverged members are excluded from summarize's means: keep their own columns
    for r in rows:
        r.pop("clip", None)
        r.pop("batch_norm", None)
        div = [x for x in records if x["config"]["scenario"] == r["scenario"] and x["config"]["variant"] == r["variant"]]
        steps = [x["member"].diverged_step for x in div if x["diverged"]]
        r["diverged_at"] = ",".join(str(s) for s in steps) if steps else ""
        gmax = [x["metrics"]["grad_norm_max"] for x in div]
        r["grad_norm_max_all"] = float(np.nanmax(gmax)) if np.isfinite(gmax).any() else np.nan

    return rows


def findings_of(rows: list[dict[str, Any]], scenarios: Mapping[str, tuple[float, float]], stopped: str) -> list[str]:
    """The findings, each sentence computed from the rows."""
    findings = []

    def get(sc, var):
        return next((r for r in rows if r["scenario"] == sc and r["variant"] == var), None)

    def desc(r):
        if r is None:
            return "n/a"
        if r["n_diverged"] == r["n"]:
            return f"diverged in all {r['n']} seeds (step {r['diverged_at']})"
        s = f"test accuracy {r['test_accuracy_mean']:.3f}, train loss {r['train_loss_mean']:.3g}"
        if r["n_diverged"]:
            s += f", {r['n_diverged']}/{r['n']} seeds diverged"
        return s + f", max grad norm {r['grad_norm_max_all']:.3g}"

    for sc in scenarios:
        parts = [f"{v}: {desc(get(sc, v))}" for v in ("no clip", "clip", "no clip + BN", "clip + BN")]
        findings.append(f"{sc} (gain {scenarios[sc][0]}, lr {scenarios[sc][1]}): " + "; ".join(parts) + ".")
    for sc in ("bad_init", "high_lr"):
        a, b = get(sc, "no clip"), get(sc, "clip")
        if a is None or b is None:
            continue
        def score(r):
            return (r["n"] - r["n_diverged"], r["test_accuracy_mean"] if np.isfinite(r["test_accuracy_mean"]) else -1)
        better = "helped" if score(b) > score(a) else ("did not help" if score(b) <= score(a) else "")
        findings.append(
            f"Clipping {better} in {sc}: diverged seeds {a['n_diverged']}/{a['n']} -> {b['n_diverged']}/{b['n']}, "
            f"test accuracy {a['test_accuracy_mean']:.3f} -> {b['test_accuracy_mean']:.3f} (nan = all diverged)."
        )
        c_ = get(sc, "no clip + BN")
        if c_ is not None:
            better = "helped" if score(c_) > score(a) else "did not help"
            findings.append(
                f"Batch norm {better} in {sc}: diverged seeds {a['n_diverged']}/{a['n']} -> {c_['n_diverged']}/{c_['n']}, "
                f"test accuracy {a['test_accuracy_mean']:.3f} -> {c_['test_accuracy_mean']:.3f}."
            )
    if stopped:
        findings.append(stopped)
    return findings


@experiment_main(EXPERIMENT)
def main(argv: list[str] | None = None) -> int:
    cfg = apply_smoke(parse_config(Config, argv, description=__doc__), SMOKE)
    validate(cfg, EXPERIMENT, check_config)
    run = open_run(cfg, EXPERIMENT)
    clock = Clock()
    data = load(cfg.dataset, flat=True)
    scenarios = scenarios_of(cfg)
    result = run_grid(
        build_for(cfg, data.num_classes), grid_of(cfg, scenarios), (data.x_train, data.y_train),
        test_data=(data.x_test, data.y_test), steps=cfg.steps, batch_size=cfg.batch_size, eval_every=cfg.eval_every,
        batched=("clip", "gain", "lr"), run_dir=run, progress=cfg.progress, mesh=cfg.device_mesh(), name=EXPERIMENT,
    )
    stopped, suffix = grid_stop(run, result, cfg.steps, EXPERIMENT)
    records = records_of(result, scenarios)
    rows = rows_of(records)
    findings = findings_of(rows, scenarios, stopped)
    notes = Report().stopped(stopped).text(
        f"Deep MLP: {cfg.depth} hidden layers of {cfg.width} {cfg.activation} units, {cfg.dataset} "
        f"(chance {1.0 / data.num_classes:.2f}), {cfg.optimizer} for {cfg.steps} steps of batch {cfg.batch_size}, "
        f"clip = global-norm clipping at {cfg.clip_norm}, BN = batch norm after every hidden Dense; "
        f"rule={cfg.rule}. Means are over the seeds that did not diverge.").findings(findings)
    run.write_summary(rows, title="Gradient stability: clipping and batch norm" + suffix, notes=notes,
                      extra={"findings": findings, "scenarios": scenarios, "interrupted": result.interrupted,
                             "compilations": {g.name: g.traces for g in result.groups}})
    _plots(run, cfg, records, list(scenarios))
    print("\n".join(findings))
    print(f"gradient_stability: done in {clock.wall:.0f} s; results in {run.path}")
    return run.exit_code(result.interrupted)


def _plots(run, cfg, records, scenarios) -> None:
    plt = pyplot()

    variants = ["no clip", "clip", "no clip + BN", "clip + BN"]
    colors = dict(zip(variants, ("tab:red", "tab:orange", "tab:blue", "tab:green")))
    for key, fname, lab in (("loss", "loss_curves.png", "training loss (batch)"),
                            ("grad_norm", "grad_norms.png", "global gradient norm")):
        fig, axes = plt.subplots(1, len(scenarios), figsize=(5 * len(scenarios), 3.8), squeeze=False)
        for j, sc in enumerate(scenarios):
            ax = axes[0][j]
            for v in variants:
                first = True
                for r in records:
                    if r["config"]["scenario"] != sc or r["config"]["variant"] != v:
                        continue
                    y = np.asarray(r["member"].history.step_metrics[key], np.float64)
                    y = np.where(np.isfinite(y) & (y > 0), y, np.nan)
                    lbl = v + (f" (diverged at {r['member'].diverged_step})" if r["diverged"] else "")
                    ax.plot(np.arange(len(y)), y, color=colors[v], alpha=0.8, linewidth=0.8,
                            label=lbl if first or r["diverged"] else None)
                    if r["diverged"]:
                        ax.axvline(r["member"].diverged_step, color=colors[v], linestyle=":", linewidth=0.8)
                    first = False
            ax.set_yscale("log")
            ax.set_title(f"{sc}: {lab}", fontsize=9)
            ax.set_xlabel("step")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7)
        fig.tight_layout()
        run.save_figure(fig, fname)


if __name__ == "__main__":
    raise SystemExit(main())
