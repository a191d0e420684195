"""Skip connections as a cure: do residual connections keep deep nets trainable?

Question: a plain deep MLP's error terms are products of one Jacobian per layer, so they
vanish (or explode) with depth, and deep plain nets train worse than shallow ones (He et
al. 2016's *degradation*). A residual block ``y = x + F(x)`` adds an identity path: the error
term reaching a block is the one from above *plus* the one through its branch. Does that
keep the error terms alive at depth 10, 30 and 100, and do the deep nets then train? And
what of a residual net whose branch scalar starts at zero (SkipInit, De & Smith 2020), which
starts every block as the identity instead of letting the forward signal grow block by block?

What it measures, per architecture (plain / residual / skipinit) x depth x hidden activation
x initializer x seed, on MNIST-1D: the norm of the error term ``delta^(l) = dC/dz^(l)`` of
every weighted layer on a fixed probe batch, at initialization and at every evaluation
during training; the test accuracy reached; divergence (recorded, the member stops, the
study goes on). Activation and initializer are grid *choices*: each (architecture, depth) is
ONE compiled program for every activation, initializer and seed.

Architectures at depth L (L + 2 weighted layers each): ``plain`` = ``mlp((width,) * (L + 1))``;
``residual`` = ``residual_mlp(L, width)`` (``x + act(Dense(x))`` blocks); ``skipinit`` = the
same with a learnable scalar on each branch, zero at init.

Outputs (results/skip_connections/<run>/): summary.json/.md (table + Findings computed from
the numbers, set beside the papers), metrics.jsonl (delta norms per evaluation),
delta_norms.png (error-term norm against layer, at init and at the end), accuracy_depth.png.
"""

from __future__ import annotations

import dataclasses
import time

import jax.numpy as jnp
import numpy as np

import funcnn
from funcnn.data import load
from funcnn.nn.models import mlp, residual_mlp
from funcnn.train import ExperimentConfig, TrainSpec, make_optimizer, open_run, parse_config, run_grid, summarize
from funcnn.study.cli import (
    grid_stop,
    OptimizerName,
    apply_smoke,
    check_batch,
    check_choice,
    check_hidden_activations,
    check_int,
    check_positive,
    check_values,
    experiment_main,
    validate,
)
from funcnn.study.plots import pyplot
from funcnn.study.report import Report

EXPERIMENT = "skip_connections"
ARCHS = ("plain", "residual", "skipinit")
PAPERS = (
    "He, Zhang, Ren & Sun, 'Deep Residual Learning for Image Recognition', CVPR 2016: deeper plain nets "
    "reach a higher training error than shallower ones (degradation); residual nets of the same depth do not, "
    "and keep gaining with depth.",
    "De & Smith, 'Batch Normalization Biases Residual Blocks Towards the Identity Function in Deep Networks' "
    "(SkipInit), NeurIPS 2020: without normalization, a residual net's forward signal grows with depth; a "
    "learnable scalar on each branch initialised at zero makes deep unnormalized residual nets trainable.",
)


@dataclasses.dataclass
class Config(ExperimentConfig, resumable=False, imports=True):
    """Plain vs residual vs SkipInit MLPs at several depths on MNIST-1D."""

    depths: tuple[int, ...] = (10, 30, 100)
    """Depths L: L + 2 weighted layers in every architecture."""
    width: int = 32
    activations: tuple[str, ...] = ("relu", "tanh")
    """Hidden activations (any registered elementwise name; the user's own with --import)."""
    inits: tuple[str, ...] = ("he_normal", "glorot_normal")
    """Initializer names of funcnn.nn.initializers (grid choices)."""
    archs: tuple[str, ...] = ARCHS
    optimizer: OptimizerName = "momentum"
    lr: float = 0.01
    steps: int = 400
    batch_size: int = 128
    eval_every: int = 100
    probe_size: int = 256
    """Training examples on which the error terms are measured."""
    seeds: tuple[int, ...] = (0, 1)
    rule: str = "hand"
    """'hand' (the hand-written backward rules) or 'autodiff' (jax.grad of the twins)."""


SMOKE = dict(depths=(2, 3), archs=("plain", "skipinit"), width=8, activations=("relu",), inits=("he_normal",), steps=8, eval_every=4,
             batch_size=32, probe_size=32, seeds=(0,))


def check_config(cfg: Config) -> None:
    """Every value that cannot be right stops the run before it trains or writes anything
    (:func:`funcnn.study.cli.validate`: one line, exit status 2)."""
    check_values("--depths", cfg.depths, each=check_int)
    check_values("--activations", cfg.activations)
    check_hidden_activations(cfg.activations, flag="--activations")
    check_values("--inits", cfg.inits, each=lambda f, v: check_choice(f, v, funcnn.nn.initializers.INITIALIZER_NAMES))
    check_values("--archs", cfg.archs, each=lambda f, v: check_choice(f, v, ARCHS))
    check_int("--width", cfg.width)
    check_int("--steps", cfg.steps)
    check_batch("--batch-size", cfg.batch_size, "mnist1d")
    check_batch("--probe-size", cfg.probe_size, "mnist1d")
    check_int("--eval-every", cfg.eval_every, minimum=0)
    check_positive("--lr", cfg.lr)
    check_choice("--rule", cfg.rule, ("hand", "autodiff"))


def build_model(arch: str, depth: int, width: int, out: int, activation, w_init, rule: str):
    """The architecture ``arch`` at depth ``depth`` (activation and init may be Choices)."""
    if arch == "plain":
        return mlp((width,) * (depth + 1), out, activation, w_init=w_init, rule=rule)
    return residual_mlp(depth, width, out, activation, w_init=w_init, rule=rule,
                        branch_scale=0.0 if arch == "skipinit" else None)


def member_record(m) -> dict:
    """One member's numbers: final metrics and the per-layer delta norms at init and at the end."""
    deltas = np.asarray(m.history.eval_metrics["delta_norms"], np.float64)  # (evals, layers)
    fin = m.final
    return {
        "config": {k: m.config[k] for k in ("arch", "depth", "activation", "init", "seed")},
        "metrics": {"test_accuracy": fin.get("test_accuracy", np.nan), "test_loss": fin.get("test_loss", np.nan),
                    # error term of the first hidden layer over that of the last hidden one, at init
                    "delta_ratio_init": float(deltas[0, 0] / deltas[0, -2]) if deltas[0, -2] > 0 else np.nan},
        "diverged": m.diverged,
        "step": m.step,
        "delta_init": deltas[0].tolist(),
        "delta_end": deltas[-1].tolist(),
    }


def findings_of(rows: list[dict], cfg: Config) -> list[str]:
    """Statements computed from the summary rows, then set beside what the papers report."""
    def row(arch, depth, act, init):
        return next((r for r in rows if (r["arch"], r["depth"], r["activation"], r["init"]) == (arch, depth, act, init)), None)

    def acc(r):
        return np.nan if r is None else r["test_accuracy_mean"]

    out = []
    lo, hi = min(cfg.depths), max(cfg.depths)
    for act in cfg.activations:
        for init in cfg.inits:
            parts = []
            for arch in cfg.archs:
                accs = [acc(row(arch, d, act, init)) for d in cfg.depths]
                ratio = row(arch, hi, act, init)
                parts.append(f"{arch} " + " / ".join("diverged" if not np.isfinite(a) else f"{a:.3f}" for a in accs)
                             + (f" (delta ratio first/last at init, depth {hi}: {ratio['delta_ratio_init_mean']:.2g})"
                                if ratio is not None and np.isfinite(ratio["delta_ratio_init_mean"]) else ""))
            out.append(f"{act} + {init}, test accuracy at depths {list(cfg.depths)}: " + "; ".join(parts) + ".")
            plain = [acc(row("plain", d, act, init)) for d in (lo, hi)]
            if "plain" in cfg.archs and lo != hi and all(np.isfinite(plain)):
                verb = "degrades" if plain[1] < plain[0] - 0.01 else "does not degrade"
                out.append(f"{act} + {init}: the plain net {verb} with depth ({plain[0]:.3f} at {lo} -> {plain[1]:.3f} at {hi}).")
            for arch in ("residual", "skipinit"):
                if arch not in cfg.archs or "plain" not in cfg.archs:
                    continue
                a, p = acc(row(arch, hi, act, init)), acc(row("plain", hi, act, init))
                if np.isfinite(a) and np.isfinite(p):
                    verb = "beats" if a > p + 0.01 else ("matches" if abs(a - p) <= 0.01 else "trails")
                    out.append(f"{act} + {init}, depth {hi}: {arch} ({a:.3f}) {verb} plain ({p:.3f}).")
                elif not np.isfinite(a):
                    out.append(f"{act} + {init}, depth {hi}: every {arch} member diverged.")
    # The papers' claims, tested on these numbers.
    deep = [(acc(row("plain", hi, a, i)), acc(row("residual", hi, a, i)), acc(row("skipinit", hi, a, i)))
            for a in cfg.activations for i in cfg.inits]
    if deep and lo != hi:
        wins = sum(1 for p, r, s in deep if np.nanmax([r, s]) > p + 0.01 if np.isfinite([r, s]).any() and np.isfinite(p))
        out.append(f"At depth {hi}, a residual variant beat the plain net in {wins} of {len(deep)} activation x init "
                   f"pairs: {'consistent with' if wins > len(deep) / 2 else 'short of'} He et al. 2016's residual nets "
                   f"that train at depth.")
        grow = sum(1 for p, r, s in deep if not np.isfinite(r) or (np.isfinite(s) and s > r + 0.01))
        out.append(f"SkipInit (zero branch scale) beat or survived where the plain residual net did not in {grow} of "
                   f"{len(deep)} pairs: {'consistent with' if grow > 0 else 'no sign here of'} De & Smith 2020's "
                   f"unnormalized residual nets that need their branches to start at zero.")
    return out


@experiment_main(EXPERIMENT)
def main(argv: list[str] | None = None) -> int:
    cfg = apply_smoke(parse_config(Config, argv, description=__doc__), SMOKE)
    validate(cfg, EXPERIMENT, check_config)
    run = open_run(cfg, EXPERIMENT, extra={"papers": list(PAPERS)})
    t0 = time.perf_counter()
    data = load("mnist1d", flat=True)
    k = data.num_classes
    xp, yp = jnp.asarray(data.x_train[: cfg.probe_size]), jnp.asarray(data.y_train[: cfg.probe_size])

    def diagnostics(model, params, state):
        terms = funcnn.error_terms(model, params, state, funcnn.softmax_cross_entropy, xp, yp)
        return {"delta_norms": terms.delta_norms}

    def build(c):
        model = build_model(c["arch"], c["depth"], cfg.width, k, c["activation"], c["init"], cfg.rule)
        return TrainSpec(model, "softmax_cross_entropy", make_optimizer(cfg.optimizer, cfg.lr))

    grid = {"arch": list(cfg.archs), "depth": list(cfg.depths), "activation": list(cfg.activations),
            "init": list(cfg.inits), "seed": list(cfg.seeds)}
    result = run_grid(build, grid, (data.x_train, data.y_train), test_data=(data.x_test, data.y_test),
                      steps=cfg.steps, batch_size=cfg.batch_size, eval_every=cfg.eval_every,
                      choices=("activation", "init"), diagnostics=diagnostics, run_dir=run,
                      progress=cfg.progress, mesh=cfg.device_mesh(), name=EXPERIMENT)
    stopped, suffix = grid_stop(run, result, cfg.steps, EXPERIMENT)
    members = [m for m in result.members if m.step > 0 or not result.interrupted]  # not started: left out
    records = [member_record(m) for m in members]
    rows = summarize([{k2: r[k2] for k2 in ("config", "metrics", "diverged", "step")} for r in records])
    findings = findings_of(rows, cfg)
    if result.interrupted:
        findings.append(stopped)
    notes = Report().stopped(stopped).text(
        f"MNIST-1D, width {cfg.width}, {cfg.optimizer} lr {cfg.lr} for {cfg.steps} steps of batch {cfg.batch_size}, "
        f"rule={cfg.rule}; delta ratio = ||delta|| of the first hidden layer over the last hidden layer's at "
        f"init. Means over seeds that did not diverge.").findings(findings).findings(PAPERS, title="What the papers report")
    run.write_summary(rows, title="Skip connections as a cure for vanishing error terms" + suffix, notes=notes,
                      extra={"findings": findings, "interrupted": result.interrupted,
                             "members": [{k2: r[k2] for k2 in ("config", "delta_init", "delta_end", "diverged")} for r in records],
                             "compilations": {g.name: g.traces for g in result.groups}})
    plots(run, cfg, records, rows)
    print("\n".join(findings))
    print(f"{EXPERIMENT}: done in {time.perf_counter() - t0:.0f} s; results in {run.path}")
    return run.exit_code(result.interrupted)


def plots(run, cfg: Config, records: list[dict], rows: list[dict]) -> None:
    plt = pyplot()
    colors = dict(zip(ARCHS, ("tab:red", "tab:blue", "tab:green")))
    fig, axes = plt.subplots(2, len(cfg.depths), figsize=(4.5 * len(cfg.depths), 7), squeeze=False)
    for j, depth in enumerate(cfg.depths):
        for i, (key, when) in enumerate((("delta_init", "at init"), ("delta_end", f"after {cfg.steps} steps"))):
            ax = axes[i][j]
            for arch in cfg.archs:
                curves = [np.asarray(r[key]) for r in records if r["config"]["arch"] == arch and r["config"]["depth"] == depth]
                for n, y in enumerate(curves):
                    y = np.where(np.isfinite(y) & (y > 0), y, np.nan)
                    ax.plot(np.arange(1, len(y) + 1), y, color=colors[arch], alpha=0.6, linewidth=0.9,
                            label=arch if n == 0 else None)
            ax.set_yscale("log")
            ax.set_title(f"depth {depth}: ||delta|| per layer {when}", fontsize=9)
            ax.set_xlabel("weighted layer (input side first)")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    run.save_figure(fig, "delta_norms.png")

    fig, axes = plt.subplots(1, len(cfg.activations), figsize=(5 * len(cfg.activations), 3.8), squeeze=False)
    for j, act in enumerate(cfg.activations):
        ax = axes[0][j]
        for arch in cfg.archs:
            for init, style in zip(cfg.inits, ("-", "--", ":", "-.")):
                ys = [next((r["test_accuracy_mean"] for r in rows if (r["arch"], r["depth"], r["activation"], r["init"])
                            == (arch, d, act, init)), np.nan) for d in cfg.depths]
                ax.plot(cfg.depths, ys, style, marker="o", color=colors[arch], label=f"{arch}, {init}")
        ax.set_xscale("log")
        ax.set_xlabel("depth L")
        ax.set_ylabel("test accuracy")
        ax.set_title(act, fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    run.save_figure(fig, "accuracy_depth.png")


if __name__ == "__main__":
    raise SystemExit(main())
