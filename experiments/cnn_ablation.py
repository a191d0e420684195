"""CNN ablation on MNIST-1D: padding, pooling and stride, next to the paper's baselines.

Question: for the 1-D CNN of MNIST-1D (Greydanus 2020, "Scaling down deep learning":
three conv layers, kernels 5, 3, 3, stride 2, padding 1, ReLU, linear read-out), how much
do the padding (VALID / SAME / 1) and the downsampling (stride 2 vs stride 1 + max or
average pooling) matter for test accuracy, and do we reproduce the paper's numbers?
The paper reports test accuracies of 32% (logistic regression), 68% (MLP) and 94% (CNN).

What it measures, over >= 3 seeds (seeds of a variant run as one vmapped program):

- every CNN variant's test/train accuracy and loss (mean +- std), its output lengths,
  parameter count and multiply-accumulates per example (``funcnn.summary``);
- our logistic-regression and MLP (two hidden layers of 100 ReLU units) baselines trained
  with the same recipe, in a table next to the paper's numbers;
- learning curves (test accuracy vs step) of every model.

Training recipe (all models, chosen by probes so that the default CNN reaches the paper's
94%; see the report in summary.md): AdamW (plain Adam when ``--weight-decay`` is 0), batch
100, ``--lr`` with a cosine decay to 0 over ``--steps`` steps, softmax cross-entropy.
The default CNN is the paper's architecture (kernels 5, 3, 3, stride 2, padding 1) with
``--channels`` channels per conv layer.

Run:  python experiments/cnn_ablation.py            (a few minutes on 2 CPU cores)
      python experiments/cnn_ablation.py --smoke    (seconds)
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import numpy as np
import optax

from funcnn.nn.combinators import serial
from funcnn.nn.diagnostics import summary as model_summary
from funcnn.nn import Activation, AvgPool1D, Conv1D, Dense, Dropout, Flatten, MaxPool1D
from funcnn.nn.models import mlp
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
from funcnn.conv import conv_output_size
from funcnn.study.cli import (
    grid_stop,
    ConfigError,
    apply_smoke,
    check_batch,
    check_choice,
    check_hidden_activations,
    check_int,
    check_number,
    check_positive,
    check_values,
    dataset_facts,
    experiment_main,
    explicit_fields,
    validate,
)
from funcnn.study.plots import pyplot
from funcnn.study.report import Clock, Report

EXPERIMENT = "cnn_ablation"

#: Default recipe (picked by short probes; see the module docstring).
CHANNELS = 32
STEPS = 3000
WEIGHT_DECAY = 0.01
DROPOUT = 0.2

#: Greydanus (2020), MNIST-1D README / paper, test accuracy.
PAPER = {"logistic": 0.32, "mlp": 0.68, "cnn": 0.94}

#: CNN variants: name -> (description, conv_net settings). "paper" is the reference CNN
#: (the paper's architecture; its channel count and training recipe come from the config).
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "paper": ("padding 1, stride 2 (the paper's CNN)", {"padding": 1, "stride": 2}),
    "valid": ("VALID padding, stride 2", {"padding": "VALID", "stride": 2}),
    "same": ("SAME padding, stride 2", {"padding": "SAME", "stride": 2}),
    "stride1_max": ("SAME, stride 1, max pool 2", {"padding": "SAME", "stride": 1, "pool": "max"}),
    "stride1_avg": ("SAME, stride 1, avg pool 2", {"padding": "SAME", "stride": 1, "pool": "avg"}),
    "stride1": ("SAME, stride 1, no pooling", {"padding": "SAME", "stride": 1}),
}


@dataclasses.dataclass
class Config(ExperimentConfig, resumable=False, imports=True):
    """CNN ablation settings (``--smoke`` shrinks steps, seeds and the variant list)."""

    rule: str = "hand"
    """backward rule of every layer: "hand" (custom_vjp) or "autodiff"."""
    dataset: str = "mnist1d"
    """"mnist1d" or "mnist1d_shuffled" (positions permuted: convolutions lose their prior)."""
    variants: tuple[str, ...] = ("paper", "valid", "same", "stride1_max", "stride1_avg")
    """CNN variants to train (see VARIANTS in the script; "stride1" is available too)."""
    baselines: bool = True
    """also train logistic regression and the MLP."""
    channels: int = CHANNELS
    """channels of every conv layer (the paper: 25)."""
    kernels: tuple[int, ...] = (5, 3, 3)
    """kernel size of each conv layer (one conv layer per entry; the paper: 5 3 3)."""
    activation: str = "relu"
    """hidden activation of the CNNs and the MLP (any registered elementwise activation; the
    user's own with --import)."""
    dropout: float = DROPOUT
    """dropout rate before the CNN's linear read-out (0: none)."""
    mlp_widths: tuple[int, ...] = (100, 100)
    """hidden widths of the MLP baseline (at least one; only with --baselines)."""
    steps: int = STEPS
    batch_size: int = 100
    lr: float = 1e-2
    weight_decay: float = WEIGHT_DECAY
    """AdamW decoupled weight decay (0: plain Adam)."""
    cosine: bool = True
    """cosine-decay the learning rate to 0 over the run."""
    evals: int = 20
    """evaluations per run (learning-curve resolution)."""
    target: float = 0.94
    """the paper's CNN accuracy that the reference CNN should reach."""


def conv_net(cfg: Config, num_classes: int, padding: Any, stride: int, pool: str | None = None) -> Any:
    """``[Conv1D(channels, k, stride, padding) -> activation -> (pool 2)] per k in kernels ->
    Flatten -> (Dropout) -> Dense(classes)``. (``funcnn.nn.models.cnn1d`` takes one kernel size for
    every layer; the paper's CNN uses 5, 3, 3, so the script builds it from layers.)"""
    layers: list[Any] = []
    for k in cfg.kernels:
        layers.append(Conv1D(cfg.channels, k, stride=stride, padding=padding, rule=cfg.rule))
        layers.append(Activation(cfg.activation, rule=cfg.rule))
        if pool is not None:
            layers.append({"max": MaxPool1D, "avg": AvgPool1D}[pool](2, rule=cfg.rule))
    layers.append(Flatten())
    if cfg.dropout > 0:
        layers.append(Dropout(cfg.dropout))
    layers.append(Dense(num_classes, rule=cfg.rule))
    return serial(*layers)


#: What --smoke changes (of what the command line did not set).
SMOKE: dict[str, Any] = dict(seeds=lambda cfg: cfg.seeds[:1], variants=("paper", "stride1_max"), steps=20, evals=2)


def feature_lengths(cfg: Config, length: int, padding: Any, stride: int, pool: str | None = None) -> list[int]:
    """The sequence length after each conv layer (and its pool) of a variant.

    Raises:
      ValueError: (``conv_output_size``) a kernel or pool window longer than what reaches it.
    """
    out, n = [], length
    for k in cfg.kernels:
        n = conv_output_size(n, k, stride, padding)
        if pool is not None:
            n = conv_output_size(n, 2, 2, "VALID")
        out.append(n)
    return out


def check_config(cfg: Config) -> None:
    """Every value that cannot be right stops the run before it trains or writes anything
    (:func:`funcnn.study.cli.validate`: one line, exit status 2)."""
    check_choice("--rule", cfg.rule, ("hand", "autodiff"))
    check_choice("--dataset", cfg.dataset, ("mnist1d", "mnist1d_shuffled"))
    check_values("--variants", cfg.variants, each=lambda f, v: check_choice(f, v, VARIANTS))
    check_int("--channels", cfg.channels)
    check_values("--kernels", cfg.kernels, unique=False, each=check_int)
    length = dataset_facts(cfg.dataset)["shape"][0]
    for v in cfg.variants:
        desc, kw = VARIANTS[v]
        try:
            feature_lengths(cfg, length, **kw)
        except ValueError as e:
            raise ConfigError(f"--kernels must fit the length-{length} signals in every variant, got "
                              f"{' '.join(map(str, cfg.kernels))}: variant {v!r} ({desc}) fails: {e}") from None
    check_hidden_activations((cfg.activation,), flag="--activation")  # after --import
    check_number("--dropout", cfg.dropout, low=0, high=1, high_open=True)
    if cfg.baselines:
        check_values("--mlp-widths", cfg.mlp_widths, unique=False, each=check_int)
    elif "mlp_widths" in explicit_fields(cfg):
        raise ConfigError("--mlp-widths sets the MLP baseline, which --no-baselines turns off: give one of them")
    check_int("--steps", cfg.steps)
    check_batch("--batch-size", cfg.batch_size, cfg.dataset)
    check_positive("--lr", cfg.lr)
    check_number("--weight-decay", cfg.weight_decay, low=0)
    check_int("--evals", cfg.evals)
    check_number("--target", cfg.target, low=0, high=1, low_open=True)


def models(cfg: Config, num_classes: int) -> dict[str, tuple[str, Any]]:
    """name -> (description, model) of every model the run trains."""
    out: dict[str, tuple[str, Any]] = {}
    for v in cfg.variants:
        desc, kw = VARIANTS[v]
        out[v] = (desc, conv_net(cfg, num_classes, **kw))
    if cfg.baselines:
        out["logistic"] = ("logistic regression (linear + softmax)", mlp((), num_classes, rule=cfg.rule))
        out["mlp"] = (f"MLP {'-'.join(map(str, cfg.mlp_widths))} ReLU", mlp(cfg.mlp_widths, num_classes, cfg.activation, rule=cfg.rule))
    return out


def optimizer(cfg: Config) -> optax.GradientTransformation:
    lr = optax.cosine_decay_schedule(cfg.lr, cfg.steps) if cfg.cosine else cfg.lr
    if cfg.weight_decay > 0:
        return optax.adamw(lr, weight_decay=cfg.weight_decay)
    return optax.adam(lr)


def findings(cfg: Config, rows: list[dict[str, Any]]) -> list[str]:
    """The findings, each sentence computed from the measured rows."""
    by = {r["model"]: r for r in rows}
    lines: list[str] = []
    acc = lambda m: by[m]["test_accuracy_mean"]  # noqa: E731
    std = lambda m: by[m]["test_accuracy_std"]  # noqa: E731
    if not by:
        return ["No model was trained."]
    n = by[next(iter(by))]["n"]
    if "paper" in by:
        ok = acc("paper") >= cfg.target
        lines.append(
            f"Our CNN (the paper's architecture: kernels {'-'.join(map(str, cfg.kernels))}, stride 2, padding 1, "
            f"{cfg.activation}, here with {cfg.channels} channels) reached {acc('paper'):.3f} ± {std('paper'):.3f} test accuracy "
            f"over {n} seeds (min {by['paper']['test_accuracy_min']:.3f}); the paper reports {PAPER['cnn']:.2f}: "
            + ("**reproduced** (mean >= target)." if ok else f"**not reproduced** (mean below {cfg.target})."))
    for m in ("logistic", "mlp"):
        if m in by:
            d = acc(m) - PAPER[m]
            lines.append(f"Our {m} baseline: {acc(m):.3f} ± {std(m):.3f} vs the paper's {PAPER[m]:.2f} "
                         f"({'+' if d >= 0 else ''}{d * 100:.1f} points).")
    if all(m in by for m in ("logistic", "mlp")) and any(v in by for v in VARIANTS):
        best = max((v for v in by if v in VARIANTS), key=acc)
        order = acc("logistic") < acc("mlp") < acc(best)
        lines.append(f"Ordering logistic < MLP < CNN (best variant: {best}, {acc(best):.3f}): "
                     + ("holds, as in the paper." if order else "does NOT hold here."))

    def compare(a: str, b: str, what: str) -> None:
        if a in by and b in by:
            d = acc(a) - acc(b)
            noise = max(std(a), std(b))
            verdict = "within the seed spread" if abs(d) <= noise else ("better" if d > 0 else "worse")
            lines.append(f"{what}: {a} {acc(a):.3f} vs {b} {acc(b):.3f} (difference {d * 100:+.1f} points, "
                         f"largest seed std {noise * 100:.1f} points): {a} is {verdict}.")

    compare("same", "valid", "Padding (stride 2)")
    compare("paper", "valid", "Padding 1 vs VALID (stride 2)")
    compare("stride1_max", "stride1_avg", "Max vs average pooling (stride 1)")
    compare("stride1_max", "same", "Downsampling by max pooling vs by stride 2 (SAME)")
    compare("stride1_avg", "same", "Downsampling by average pooling vs by stride 2 (SAME)")
    variants = [v for v in by if v in VARIANTS]
    if variants:
        fastest = min(variants, key=lambda v: by[v]["macs_per_example"])
        lines.append(f"Cheapest variant: {fastest} ({by[fastest]['macs_per_example']:,} MACs per example); "
                     f"ranking by test accuracy: " + ", ".join(f"{v} {acc(v):.3f}" for v in sorted(variants, key=acc, reverse=True)) + ".")
    return lines


def rows_of(cfg: Config, members: list[Any], zoo: dict[str, tuple[str, Any]], in_shape: tuple[int, ...]
            ) -> list[dict[str, Any]]:
    """Means over seeds per model, with its layer sizes, cost and steps to the target accuracy."""
    rows = summarize([{"config": m.config, "metrics": m.final, "diverged": m.diverged, "step": m.step}
                      for m in members], metrics=["test_accuracy", "train_accuracy", "test_loss", "train_loss"])
    for r in rows:
        name = r["model"]
        desc, model = zoo[name]
        s = model_summary(model, in_shape)
        accs = [m.final.get("test_accuracy", np.nan) for m in members if m.config["model"] == name]
        convs = [row.out_shape[1] for row in s.rows if row.kind == "conv"]
        pools = [row.out_shape[1] for row in s.rows if row.kind == "pool"]
        r.update({
            "description": desc,
            "conv_out_lengths": "-".join(map(str, convs)) or "-",
            "pool_out_lengths": "-".join(map(str, pools)) or "-",
            "params": s.total_params,
            "macs_per_example": s.total_macs,
            "test_accuracy_min": float(np.nanmin(accs)) if accs else float("nan"),
            "paper_test_accuracy": PAPER["cnn"] if name == "paper" else PAPER.get(name),
        })
    # Steps to the target, per model (first evaluation at or above it), for the curves.
    reach: dict[str, list[int | None]] = {}
    for m in members:
        reach.setdefault(m.config["model"], []).append(
            first_reach(m.history.eval_steps, m.history.eval_metrics["test_accuracy"], cfg.target))
    for r in rows:
        got = [v for v in reach[r["model"]] if v is not None]
        r["steps_to_target"] = float(np.mean(got)) if got else None
        r["reached_target"] = f"{len(got)}/{len(reach[r['model']])}"

    return rows


def ours_vs_paper(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"model": m, "ours": f"{by['test_accuracy_mean']:.3f} ± {by['test_accuracy_std']:.3f}",
         "paper (Greydanus 2020)": PAPER[k]}
        for m, k in (("logistic", "logistic"), ("mlp", "mlp"), ("paper", "cnn"))
        for by in [next((r for r in rows if r["model"] == m), None)] if by is not None
    ]


def recipe_of(cfg: Config, n_train: int) -> str:
    return (f"Recipe: {'AdamW (weight decay ' + str(cfg.weight_decay) + ')' if cfg.weight_decay > 0 else 'Adam'}, "
              f"lr {cfg.lr}{' cosine-decayed to 0' if cfg.cosine else ''}, {cfg.steps} steps of batch {cfg.batch_size} "
              f"({cfg.steps * cfg.batch_size / n_train:.1f} epochs), {cfg.channels} channels, kernels "
              f"{'-'.join(map(str, cfg.kernels))}, {cfg.activation}, dropout {cfg.dropout}, "
              f"{len(cfg.seeds)} seeds, rule={cfg.rule}, dataset={cfg.dataset}.")


COLUMNS = ["model", "description", "n", "n_diverged", "step", "test_accuracy_mean", "test_accuracy_std",
           "train_accuracy_mean", "train_accuracy_std", "test_loss_mean", "test_loss_std",
           "conv_out_lengths", "pool_out_lengths", "params", "macs_per_example", "steps_to_target",
           "reached_target", "paper_test_accuracy"]


def plot(run: Any, cfg: Config, rows: list[dict[str, Any]], res: Any) -> None:
    """Test accuracy per model against the paper's baselines, and the learning curves."""
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
    names = [r["model"] for r in rows]
    means = np.array([r["test_accuracy_mean"] for r in rows])
    stds = np.array([r["test_accuracy_std"] for r in rows])
    pos = np.arange(len(names))
    ax1.bar(pos, means, yerr=stds, capsize=3, color=["C0" if n in VARIANTS else "C7" for n in names])
    ax1.set_xticks(pos, names, rotation=30, ha="right")
    for k, val in PAPER.items():
        ax1.axhline(val, ls="--", lw=1, color={"logistic": "C3", "mlp": "C1", "cnn": "C2"}[k])
        ax1.text(len(names) - 0.5, val, f"paper {k} {val:.0%}", va="bottom", ha="right", fontsize=8)
    ax1.set_ylim(0, 1.05)
    ax1.set_ylabel(f"test accuracy (mean ± std, {len(cfg.seeds)} seeds)")
    ax1.set_title(f"{cfg.dataset}: ours vs Greydanus 2020")
    ax1.grid(True, axis="y", alpha=0.3)
    steps, curves = res.curves("test_accuracy")
    curves = {k: v for k, v in curves.items() if k.replace("model=", "") in names}  # trained ones only
    for label, ys in curves.items():
        band(ax2, steps, ys, label=label.replace("model=", ""), spread="range")
    ax2.axhline(cfg.target, ls="--", color="k", lw=1)
    ax2.set_ylim(0, 1.0)
    ax2.set_xlabel("step")
    ax2.set_ylabel("test accuracy (mean, min-max band)")
    ax2.set_title("learning curves")
    ax2.grid(True, alpha=0.3)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    run.save_figure(fig, "cnn_ablation")


@experiment_main(EXPERIMENT)
def main(argv: list[str] | None = None) -> int:
    cfg = apply_smoke(parse_config(Config, argv, description=__doc__), SMOKE)
    validate(cfg, EXPERIMENT, check_config)
    from funcnn.data import load

    ds = load(cfg.dataset)
    run = open_run(cfg, EXPERIMENT, extra={"paper": PAPER})
    clock = Clock()
    zoo = models(cfg, ds.num_classes)
    opt = optimizer(cfg)

    def build(c):
        return TrainSpec(zoo[c["model"]][1], "softmax_cross_entropy", opt)

    res = run_grid(
        build, {"model": list(zoo), "seed": list(cfg.seeds)}, (ds.x_train, ds.y_train),
        test_data=(ds.x_test, ds.y_test), steps=cfg.steps, batch_size=cfg.batch_size,
        eval_every=max(1, cfg.steps // max(1, cfg.evals)), run_dir=run, progress=cfg.progress, name="cnn_ablation",
        mesh=cfg.device_mesh(),
    )
    stopped, suffix = grid_stop(run, res, cfg.steps, EXPERIMENT)
    members = [m for m in res.members if m.step > 0 or not res.interrupted]  # not started: left out
    rows = rows_of(cfg, members, zoo, (1, *ds.x_train.shape[1:]))
    compare_rows, recipe, found = ours_vs_paper(rows), recipe_of(cfg, len(ds.x_train)), findings(cfg, rows)
    notes = (Report().stopped(stopped)
             .section("Ours vs the paper (test accuracy)", markdown_table(compare_rows), recipe)
             .findings(found, title="Findings (computed from the measured numbers)"))
    run.write_summary(rows, columns=COLUMNS, title="CNN ablation on MNIST-1D" + suffix, notes=notes,
                      extra={"paper": PAPER, "ours_vs_paper": compare_rows, "interrupted": res.interrupted,
                             "seconds": clock.wall, "recipe": recipe, "findings": found})
    plot(run, cfg, rows, res)
    print(run.file("summary.md").read_text())
    print(f"cnn_ablation: results in {run.path} ({clock.wall:.0f} s)")
    return run.exit_code(res.interrupted)

if __name__ == "__main__":
    sys.exit(main())
