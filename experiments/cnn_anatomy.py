"""CNN anatomy: what does a convolution layer do to an image?

Question: what do the kernels and feature maps of a small trained CNN on the 8x8 digits
look like; how often does each input pixel take part in a convolution under VALID, SAME
and full padding; how translation-invariant are the features of a convolution alone vs a
convolution followed by pooling; and what do the output-size formula and the
multiply-accumulate (MAC) count give for each layer?

What it measures:

1. trains ``funcnn.nn.models.cnn2d`` (two 3x3 SAME conv layers of 16 and 32 channels, ReLU,
   2x2 max pooling after each; Adam) on digits and reports its test accuracy;
2. shows the first layer's learned kernels and, for a few test digits, the feature maps
   after each conv + ReLU and after each pooling, as images;
3. coverage: how many output positions each input pixel feeds, for a k x k kernel over an
   H x W input, under VALID, SAME and full (k - 1 on each side) padding. Computed by
   convolving with an all-ones kernel and back-propagating an all-ones error map (the
   input gradient of a convolution is the full convolution of the error with the flipped
   kernel), and checked against a direct count of the windows;
4. translation invariance: the cosine similarity between the features of a test digit and
   of the same digit moved by 1-3 pixels (zero-filled, 4 directions, averaged over the test
   set) for the raw pixels, conv1 alone, conv1 + pooling, the whole conv stack, and the
   conv stack with global average pooling; plus conv1 with the feature map shifted back
   (equivariance: conv alone moves *with* the input, it is not invariant to it);
5. per layer: the output-size formula ``floor((n + lo + hi - k) / stride) + 1`` evaluated
   with ``funcnn.conv_output_size``, parameters and MACs (``funcnn.summary``, checked
   against ``funcnn.conv_macs``).

Run:  python experiments/cnn_anatomy.py            (about a minute on 2 CPU cores)
      python experiments/cnn_anatomy.py --smoke    (seconds)
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from funcnn.nn.combinators import leaf_layers
from funcnn.conv import conv2d, conv_macs, conv_output_size
from funcnn.nn.diagnostics import summary as model_summary
from funcnn.nn.models import cnn2d
from funcnn.train import ExperimentConfig, fit, make_optimizer, markdown_table, open_run, parse_config
from funcnn.study.cli import (
    ConfigError,
    apply_smoke,
    check_batch,
    check_choice,
    check_int,
    check_positive,
    check_values,
    dataset_facts,
    experiment_main,
    interrupted_at,
    require,
    stopped_note,
    validate,
)
from funcnn.study.plots import pyplot
from funcnn.study.report import Clock

EXPERIMENT = "cnn_anatomy"
PADDINGS = ("VALID", "SAME", "full")


@dataclasses.dataclass
class Config(ExperimentConfig, resumable=False):
    """CNN anatomy settings (``--smoke`` trains for a few steps only)."""

    rule: str = "hand"
    """backward rule of every layer: "hand" (custom_vjp) or "autodiff"."""
    seeds: tuple[int, ...] = (0,)
    """the seed of the one model trained (exactly one)."""
    channels: tuple[int, ...] = (16, 32)
    """channels of each conv layer (one 2x2 pooling after each: at most 3 on 8x8 digits)."""
    kernel: int = 3
    pool: str = "max"
    """pooling after each conv layer: "max" or "avg"."""
    epochs: int = 30
    batch_size: int = 64
    lr: float = 3e-3
    shifts: tuple[int, ...] = (1, 2, 3)
    """translations (pixels, 1-7 on the 8x8 digits) for the invariance measurement."""
    coverage_size: int = 8
    """side of the square input of the coverage heat maps."""
    coverage_kernel: int = 3
    """side of the kernel of the coverage heat maps (at most --coverage-size)."""
    examples: int = 3
    """test digits whose feature maps are shown."""
    max_test: int = 360
    """test digits used for the invariance measurement."""


#: What --smoke changes (of what the command line did not set).
SMOKE: dict[str, Any] = dict(seeds=lambda cfg: cfg.seeds[:1], epochs=1, max_test=64, examples=2)


def check_config(cfg: Config) -> None:
    """Every value that cannot be right stops the run before it trains or writes anything
    (:func:`funcnn.study.cli.validate`: one line, exit status 2)."""
    facts = dataset_facts("digits")
    side = facts["shape"][0]
    require(len(cfg.seeds) == 1, "--seeds", "one seed (the script trains one model)", cfg.seeds)
    check_choice("--rule", cfg.rule, ("hand", "autodiff"))
    require(cfg.mesh is None and cfg.devices in (None, 1), "--mesh/--devices",
            "left out (cnn_anatomy trains one model on one device)", cfg.mesh if cfg.mesh is not None else cfg.devices)
    check_values("--channels", cfg.channels, unique=False, each=check_int)
    n = side
    for i, _ in enumerate(cfg.channels):
        if n < 2:
            raise ConfigError(f"--channels must give at most {i} conv layers on the {side}x{side} digits (each is "
                              f"followed by a 2x2 pooling), got {' '.join(map(str, cfg.channels))}")
        n //= 2
    check_int("--kernel", cfg.kernel, maximum=side, why=f" (the digits are {side}x{side})")
    check_choice("--pool", cfg.pool, ("max", "avg"))
    check_int("--epochs", cfg.epochs)
    check_batch("--batch-size", cfg.batch_size, "digits")
    check_positive("--lr", cfg.lr)
    check_values("--shifts", cfg.shifts, each=lambda f, v: check_int(
        f, v, maximum=side - 1, why=f" (pixels; the digits are {side}x{side})"))
    check_int("--coverage-size", cfg.coverage_size)
    check_int("--coverage-kernel", cfg.coverage_kernel, maximum=cfg.coverage_size,
              why=f" (--coverage-size: the kernel must fit the {cfg.coverage_size}x{cfg.coverage_size} input)")
    check_int("--examples", cfg.examples, maximum=facts["n_test"], why=" (test digits)")
    check_int("--max-test", cfg.max_test, maximum=facts["n_test"], why=" (test digits)")


# --------------------------------------------------------------------------- coverage


def full_padding(k: int) -> int:
    return k - 1


def coverage_map(size: int, k: int, padding: str, rule: str = "hand") -> np.ndarray:
    """How many k x k windows (output positions) each pixel of a size x size input feeds.

    ``d/dx sum(conv2d(x, ones))``: backpropagating an all-ones error through a convolution
    with an all-ones kernel counts, for every input pixel, the windows that contain it.
    """
    pad = full_padding(k) if padding == "full" else padding
    w = jnp.ones((k, k, 1, 1), jnp.float32)
    x = jnp.zeros((1, size, size, 1), jnp.float32)
    conv = conv2d
    if rule == "autodiff":
        from funcnn.reference.conv import conv2d as conv  # noqa: F811
    g = jax.grad(lambda xx: jnp.sum(conv(xx, w, padding=pad)))(x)
    return np.asarray(g[0, :, :, 0])


def coverage_direct(size: int, k: int, padding: str) -> np.ndarray:
    """The same count by enumerating the windows (the check)."""
    if padding == "VALID":
        lo = hi = 0
    elif padding == "SAME":
        total = k - 1  # stride 1: SAME pads k - 1 in all, the extra one at the end
        lo, hi = total // 2, total - total // 2
    else:
        lo = hi = k - 1
    out = np.zeros((size, size))
    n_out = size + lo + hi - k + 1
    for i in range(n_out):
        for j in range(n_out):
            r0, c0 = i - lo, j - lo
            rs = slice(max(r0, 0), min(r0 + k, size))
            cs = slice(max(c0, 0), min(c0 + k, size))
            out[rs, cs] += 1
    return out


# --------------------------------------------------------------------------- features


def stage_outputs(model, params, state, x) -> list[tuple[str, jax.Array]]:
    """Every leaf layer's output, in order: ``[(name, (N, ...)), ...]``."""
    outs = []
    for layer, p, s in zip(leaf_layers(model), params, state):
        x, _ = layer.apply(p, s, x, train=False)
        outs.append((layer.name, x))
    return outs


def shift_images(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Move images ``(N, H, W, C)`` by (dy, dx) pixels, filling with zeros (no wrap-around)."""
    out = np.zeros_like(x)
    H, W = x.shape[1:3]
    src_r = slice(max(-dy, 0), H - max(dy, 0))
    dst_r = slice(max(dy, 0), H - max(-dy, 0))
    src_c = slice(max(-dx, 0), W - max(dx, 0))
    dst_c = slice(max(dx, 0), W - max(-dx, 0))
    out[:, dst_r, dst_c] = x[:, src_r, src_c]
    return out


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.reshape(a.shape[0], -1).astype(np.float64)
    b = b.reshape(b.shape[0], -1).astype(np.float64)
    num = np.sum(a * b, 1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def representations(model, params, state, x) -> dict[str, np.ndarray]:
    """The representations compared for invariance, from the model's stages."""
    outs = stage_outputs(model, params, state, jnp.asarray(x))
    kinds = [layer.kind for layer in leaf_layers(model)]
    reps = {"pixels": np.asarray(x)}
    conv_i = [i for i, k in enumerate(kinds) if k == "conv"]
    pool_i = [i for i, k in enumerate(kinds) if k == "pool"]
    # conv1 + its activation (the layer after conv1).
    reps["conv1 (+ReLU), no pooling"] = np.asarray(outs[conv_i[0] + 1][1])
    if pool_i:
        reps["conv1 + pool"] = np.asarray(outs[pool_i[0]][1])
        last_spatial = max(i for i, k in enumerate(kinds) if k in ("conv", "pool", "activation") and i < kinds.index("flatten"))
        feat = np.asarray(outs[last_spatial][1])
        reps["all conv + pool layers"] = feat
        reps["all conv + pool + global avg"] = feat.mean(axis=(1, 2))
    return reps


def invariance(cfg: Config, model, params, state, x: np.ndarray) -> tuple[list[dict[str, Any]], dict[str, list[float]]]:
    base = representations(model, params, state, x)
    names = list(base)
    dirs = ((0, 1), (1, 0), (0, -1), (-1, 0))
    table: dict[str, list[float]] = {n: [] for n in names}
    table["conv1 shifted back (equivariance)"] = []
    for s in cfg.shifts:
        sims = {n: [] for n in table}
        for dy, dx in dirs:
            xs = shift_images(x, dy * s, dx * s)
            rep = representations(model, params, state, xs)
            for n in names:
                sims[n].append(np.nanmean(cosine(base[n], rep[n])))
            # Conv alone is equivariant: moving its output back (zero fill) nearly undoes the move.
            c1 = "conv1 (+ReLU), no pooling"
            sims["conv1 shifted back (equivariance)"].append(
                np.nanmean(cosine(shift_images(base[c1], dy * s, dx * s), rep[c1])))
        for n in table:
            table[n].append(float(np.mean(sims[n])))
    rows = [{"representation": n, **{f"shift_{s}px": v for s, v in zip(cfg.shifts, vals)}} for n, vals in table.items()]
    return rows, table


# --------------------------------------------------------------------------- layer geometry


def layer_rows(model, in_shape: tuple[int, ...]) -> tuple[list[dict[str, Any]], Any]:
    """Per leaf layer: shapes, the output-size formula for conv/pool layers, params, MACs."""
    s = model_summary(model, in_shape)
    rows = []
    for layer, r in zip(leaf_layers(model), s.rows):
        row: dict[str, Any] = {"layer": r.name, "in_shape": str(r.in_shape), "out_shape": str(r.out_shape),
                               "params": r.params, "macs": r.macs if r.macs is not None else "-", "formula": ""}
        if r.kind == "conv":
            c = layer.config
            k = c["kernel"][0] if isinstance(c["kernel"], tuple) else c["kernel"]
            st = c["stride"][0] if isinstance(c["stride"], tuple) else c["stride"]
            pad = c["padding"]
            n = r.in_shape[1]
            out = conv_output_size(n, k, st, pad)
            lo = (k - 1) // 2 if pad == "SAME" else (0 if pad == "VALID" else pad)
            hi = (k - 1) - lo if pad == "SAME" else (0 if pad == "VALID" else pad)
            row["formula"] = f"floor(({n} + {lo} + {hi} - {k}) / {st}) + 1 = {out}"
            w_shape = (k, k, r.in_shape[-1], r.out_shape[-1])
            check = conv_macs(r.in_shape, w_shape, st, pad)
            row["conv_macs_check"] = "ok" if check == r.macs else f"MISMATCH {check}"
            row["macs_formula"] = f"{r.out_shape[1]}*{r.out_shape[2]} positions x {k}*{k}*{r.in_shape[-1]}*{r.out_shape[-1]}"
        elif r.kind == "pool":
            c = layer.config
            wdw = c.get("window", 2)
            wdw = wdw[0] if isinstance(wdw, tuple) else wdw
            n = r.in_shape[1]
            row["formula"] = f"floor(({n} - {wdw}) / {wdw}) + 1 = {r.out_shape[1]}"
        rows.append(row)
    return rows, s


# --------------------------------------------------------------------------- plots


def plot_kernels_and_maps(plt, model, params, state, x_ex, y_ex):
    layers = leaf_layers(model)
    w1 = np.asarray(params[0]["w"])  # (k, k, 1, C)
    C = w1.shape[-1]
    outs = stage_outputs(model, params, state, jnp.asarray(x_ex))
    kinds = [lyr.kind for lyr in layers]
    stages = [i for i, k in enumerate(kinds) if k in ("activation", "pool") and i < kinds.index("flatten")]
    nshow = min(8, C)
    n_ex = x_ex.shape[0]
    fig = plt.figure(figsize=(2 + 1.2 * nshow, 1.6 * (1 + n_ex * len(stages))))
    gs = fig.add_gridspec(1 + n_ex * len(stages), nshow + 1)
    vmax = np.abs(w1).max()
    for c in range(nshow):
        ax = fig.add_subplot(gs[0, c + 1])
        ax.imshow(w1[:, :, 0, c], cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        ax.set_title(f"kernel {c}", fontsize=7)
        ax.axis("off")
    ax = fig.add_subplot(gs[0, 0])
    ax.text(0.5, 0.5, "conv1\nkernels\n(red +, blue -)", ha="center", va="center", fontsize=8)
    ax.axis("off")
    row = 1
    for e in range(n_ex):
        for si in stages:
            ax = fig.add_subplot(gs[row, 0])
            if si == stages[0]:
                ax.imshow(x_ex[e, :, :, 0], cmap="gray_r")
                ax.set_title(f"input (label {int(y_ex[e])})", fontsize=7)
            else:
                ax.text(0.5, 0.5, "", ha="center")
            ax.axis("off")
            fmap = np.asarray(outs[si][1][e])
            for c in range(min(nshow, fmap.shape[-1])):
                ax = fig.add_subplot(gs[row, c + 1])
                ax.imshow(fmap[:, :, c], cmap="viridis")
                if c == 0:
                    ax.set_title(f"{layers[si].name} {fmap.shape[0]}x{fmap.shape[1]}", fontsize=6, loc="left")
                ax.axis("off")
            row += 1
    fig.suptitle("first-layer kernels, and feature maps after each conv+ReLU and pooling (first channels)", fontsize=9)
    return fig


def plot_coverage(plt, maps: dict[str, np.ndarray], k: int, axes=None):
    fig = None
    if axes is None:
        fig, axes = plt.subplots(1, len(maps), figsize=(4 * len(maps), 3.6))
    vmax = max(m.max() for m in maps.values())
    for ax, (name, m) in zip(axes, maps.items()):
        im = ax.imshow(m, cmap="magma", vmin=0, vmax=vmax)
        if m.shape[0] <= 12:
            for i in range(m.shape[0]):
                for j in range(m.shape[1]):
                    ax.text(j, i, f"{m[i, j]:.0f}", ha="center", va="center", fontsize=6,
                            color="white" if m[i, j] < vmax * 0.6 else "black")
        ax.set_title(f"{name} padding, {k}x{k} kernel: uses per pixel", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    if fig is not None:
        fig.colorbar(im, ax=list(axes), shrink=0.8)
    return fig if fig is not None else axes[0].figure


def plot_invariance(plt, cfg: Config, table: dict[str, list[float]], ax=None):
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 4))
    for name, vals in table.items():
        ls = "--" if "equivariance" in name or name == "pixels" else "-"
        ax.plot(cfg.shifts, vals, marker="o", ls=ls, label=name)
    ax.set_xlabel("translation (pixels, mean of 4 directions)")
    ax.set_ylabel("cosine similarity to the unshifted features")
    ax.set_title("translation invariance", fontsize=9)
    ax.set_xticks(list(cfg.shifts))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    return fig if fig is not None else ax.figure


# --------------------------------------------------------------------------- findings


def findings(cfg: Config, acc: float, cov: dict[str, np.ndarray], table: dict[str, list[float]], checks: dict) -> str:
    k, n = cfg.coverage_kernel, cfg.coverage_size
    lines = ["## Findings (computed from the measured numbers)", ""]
    lines.append(f"- The trained CNN reaches test accuracy {acc:.3f} on digits.")
    for name, m in cov.items():
        outs = conv_output_size(n, k, 1, full_padding(k) if name == "full" else name)
        taps = outs * outs * k * k
        lines.append(f"- {name} padding ({k}x{k} kernel, {n}x{n} input, {outs} outputs per side): "
                     f"a corner pixel is used {m[0, 0]:.0f} times, an edge-middle pixel {m[0, n // 2]:.0f}, "
                     f"a central pixel {m[n // 2, n // 2]:.0f} times; of the {taps} taps "
                     f"({outs}x{outs} outputs x {k * k}), {m.sum():.0f} fall on the image and "
                     f"{taps - m.sum():.0f} on the zero padding.")
    v = cov.get("VALID")
    if v is not None:
        lines.append(f"- Under VALID the corner pixels take part in {v[0, 0] / v[n // 2, n // 2]:.0%} as many "
                     f"convolutions as central ones; under full padding every pixel is used "
                     f"{'equally often' if np.ptp(cov['full']) == 0 else 'unequally'} ({cov['full'].min():.0f}-{cov['full'].max():.0f}).")
    lines.append(f"- The back-propagated coverage equals the direct window count: {'yes' if all(checks.values()) else 'NO'} "
                 f"({', '.join(f'{k2}: {v2}' for k2, v2 in checks.items())}).")
    s_last = len(cfg.shifts) - 1
    c1 = table.get("conv1 (+ReLU), no pooling")
    p1 = table.get("conv1 + pool")
    if c1 is not None:
        lines.append(f"- Moving the input by {cfg.shifts[0]} px: cosine similarity {table['pixels'][0]:.3f} (pixels), "
                     f"{c1[0]:.3f} (conv1 alone)" + (f", {p1[0]:.3f} (conv1 + pool)" if p1 else "")
                     + "".join(f", {table[kk][0]:.3f} ({kk})" for kk in ("all conv + pool layers", "all conv + pool + global avg") if kk in table)
                     + ".")
        lines.append(f"- At {cfg.shifts[s_last]} px: {table['pixels'][s_last]:.3f} (pixels), {c1[s_last]:.3f} (conv1 alone)"
                     + (f", {p1[s_last]:.3f} (conv1 + pool)" if p1 else "")
                     + "".join(f", {table[kk][s_last]:.3f} ({kk})" for kk in ("all conv + pool layers", "all conv + pool + global avg") if kk in table)
                     + ".")
        if p1 is not None:
            better = sum(p > c for p, c in zip(p1, c1))
            lines.append(f"- Pooling after conv1 raises the similarity over conv1 alone at {better} of {len(c1)} shifts: "
                         + ("pooling buys (partial) translation invariance." if better == len(c1)
                            else "the expected invariance gain from pooling was NOT seen at every shift."))
        eq = table["conv1 shifted back (equivariance)"]
        lines.append(f"- Shifting conv1's feature map back by the same amount gives similarity "
                     f"{', '.join(f'{e:.3f}' for e in eq)} (shifts {', '.join(map(str, cfg.shifts))} px): the convolution "
                     f"alone is equivariant (its output moves with the input; only the border is lost), not invariant.")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def size_rows_of(cfg: Config) -> list[dict[str, Any]]:
    """The output size and MACs of one convolution under each padding (the coverage example's sizes)."""
    return [{"padding": p, "formula": f"conv_output_size({cfg.coverage_size}, {cfg.coverage_kernel}, 1, "
                  f"{full_padding(cfg.coverage_kernel) if p == 'full' else repr(p)})",
                  "output size": conv_output_size(cfg.coverage_size, cfg.coverage_kernel, 1,
                                                  full_padding(cfg.coverage_kernel) if p == "full" else p),
                  "MACs (1 in, 1 out channel)": conv_macs((1, cfg.coverage_size, cfg.coverage_size, 1),
                                                          (cfg.coverage_kernel, cfg.coverage_kernel, 1, 1), 1,
                                                          full_padding(cfg.coverage_kernel) if p == "full" else p)}
                 for p in PADDINGS]



def summary_markdown(cfg: Config, res: Any, acc: float, stopped: str, inv_rows: list[dict[str, Any]],
                     geo_rows: list[dict[str, Any]], summ: Any, size_rows: list[dict[str, Any]],
                     cov: dict[str, np.ndarray], notes: str) -> list[str]:
    """summary.md's lines: the model, invariance, layer geometry, output sizes, coverage, findings."""
    seed = cfg.seeds[0]
    suffix = f" ({interrupted_at([('cnn2d', res.step, res.total_steps)])})" if res.interrupted else ""
    md = ["# CNN anatomy (digits, cnn2d)" + suffix, "",
          f"Model: cnn2d channels={cfg.channels}, kernel {cfg.kernel}, SAME, {cfg.pool} pool 2; Adam lr {cfg.lr}, "
          f"{cfg.epochs} epochs ({res.step} of {res.total_steps} steps trained), seed {seed}, rule={cfg.rule}. "
          f"Test accuracy {acc:.4f}.", "",
          "## Translation invariance (mean cosine similarity, shifted vs original test digits)", "",
          markdown_table(inv_rows), "",
          "## Per-layer geometry: output-size formula, parameters, MACs (batch 1)", "",
          markdown_table(geo_rows), "",
          f"Total: {summ.total_params:,} parameters, {summ.total_macs:,} MACs per example.", "",
          "```", summ.table(), "```", "",
          f"## Output size under each padding ({cfg.coverage_size}x{cfg.coverage_size} input, "
          f"{cfg.coverage_kernel}x{cfg.coverage_kernel} kernel, stride 1)", "",
          markdown_table(size_rows), "",
          "## Coverage: how many convolution windows use each pixel", ""]
    for p, m in cov.items():
        md += [f"{p}:", "", "```", "\n".join(" ".join(f"{v:2.0f}" for v in r) for r in m), "```", ""]
    md.append(notes)
    if res.interrupted:
        md.insert(1, f"**{stopped} The model was analysed as trained so far.**\n")
    return md


def plot_overview(plt: Any, cfg: Config, model: Any, params: Any, state: Any, ds: Any,
                  cov: dict[str, np.ndarray], inv_table: dict[str, list[float]], acc: float) -> Any:
    """One figure: kernels, one digit's first feature maps, coverage, invariance."""
    # The overview: kernels, one digit's first feature maps, coverage, invariance.
    fig = plt.figure(figsize=(15, 8))
    gs = fig.add_gridspec(3, 8, height_ratios=[1, 1, 2.2])
    w1 = np.asarray(params[0]["w"])
    vmax = np.abs(w1).max()
    fmap = np.asarray(stage_outputs(model, params, state, jnp.asarray(ds.x_test[:1]))[1][1][0])
    ax = fig.add_subplot(gs[0:2, 0])
    ax.imshow(ds.x_test[0, :, :, 0], cmap="gray_r")
    ax.set_title(f"input ({int(ds.y_test[0])})", fontsize=8)
    ax.axis("off")
    for c in range(min(7, w1.shape[-1])):
        ax = fig.add_subplot(gs[0, c + 1])
        ax.imshow(w1[:, :, 0, c], cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        ax.set_title(f"kernel {c}", fontsize=7)
        ax.axis("off")
        ax = fig.add_subplot(gs[1, c + 1])
        ax.imshow(fmap[:, :, c], cmap="viridis")
        ax.set_title(f"map {c}", fontsize=7)
        ax.axis("off")
    cov_axes = [fig.add_subplot(gs[2, 2 * i:2 * i + 2]) for i in range(3)]
    plot_coverage(plt, cov, cfg.coverage_kernel, axes=cov_axes)
    plot_invariance(plt, cfg, inv_table, ax=fig.add_subplot(gs[2, 6:8]))
    fig.suptitle(f"cnn2d on digits (test acc {acc:.3f}): learned 3x3 kernels and feature maps; pixel coverage "
                 f"by padding; translation invariance", fontsize=10)
    fig.tight_layout()
    return fig


@experiment_main(EXPERIMENT)
def main(argv: list[str] | None = None) -> int:
    cfg = apply_smoke(parse_config(Config, argv, description=__doc__), SMOKE)
    validate(cfg, EXPERIMENT, check_config)
    from funcnn.data import load

    ds = load("digits")
    run = open_run(cfg, EXPERIMENT)
    clock = Clock()
    model = cnn2d(cfg.channels, ds.num_classes, kernel=cfg.kernel, pool=cfg.pool, rule=cfg.rule)
    res = fit(model, "softmax_cross_entropy", make_optimizer("adam", cfg.lr), (ds.x_train, ds.y_train),
              test_data=(ds.x_test, ds.y_test), epochs=cfg.epochs, batch_size=cfg.batch_size, seed=cfg.seeds[0],
              run_dir=run, progress=cfg.progress, name="cnn2d")
    stopped = stopped_note(run, [("cnn2d", res.step, res.total_steps)], table=False) if res.interrupted else ""
    if res.interrupted:
        print(f"{EXPERIMENT}: {run.stop_reason}: analysing the model as trained so far.", file=sys.stderr)
    params, state = res.params, res.state
    acc = float(res.final.get("test_accuracy", float("nan")))
    # Coverage heat maps, and the direct check.
    cov, checks = {}, {}
    for p in PADDINGS:
        cov[p] = coverage_map(cfg.coverage_size, cfg.coverage_kernel, p, cfg.rule)
        checks[p] = bool(np.array_equal(cov[p], coverage_direct(cfg.coverage_size, cfg.coverage_kernel, p)))
    inv_rows, inv_table = invariance(cfg, model, params, state, ds.x_test[: cfg.max_test])  # translation invariance
    geo_rows, summ = layer_rows(model, (1, *ds.x_train.shape[1:]))  # layer geometry and cost
    size_rows = size_rows_of(cfg)
    md = summary_markdown(cfg, res, acc, stopped, inv_rows, geo_rows, summ, size_rows, cov,
                          findings(cfg, acc, cov, inv_table, checks))
    run.write_json("summary.json", {
        "experiment": EXPERIMENT, "run_name": run.run_name, "test_accuracy": acc,
        "rows": inv_rows, "invariance": inv_rows, "layers": geo_rows, "output_sizes": size_rows,
        "coverage": {p: m.tolist() for p, m in cov.items()}, "coverage_check": checks,
        "total_params": summ.total_params, "total_macs": summ.total_macs,
        "interrupted": res.interrupted, "step": res.step, "total_steps": res.total_steps,
        "seconds": clock.wall,
    })
    run.write_text("summary.md", "\n".join(md) + "\n")

    plt = pyplot()
    n_ex = min(cfg.examples, len(ds.x_test))
    run.save_figure(plot_kernels_and_maps(plt, model, params, state, ds.x_test[:n_ex], ds.y_test[:n_ex]), "feature_maps")
    run.save_figure(plot_coverage(plt, cov, cfg.coverage_kernel), "coverage")
    run.save_figure(plot_invariance(plt, cfg, inv_table), "invariance")
    run.save_figure(plot_overview(plt, cfg, model, params, state, ds, cov, inv_table, acc), "cnn_anatomy")
    print("\n".join(md))
    print(f"cnn_anatomy: results in {run.path} ({clock.wall:.0f} s)")
    return run.exit_code(res.interrupted)

if __name__ == "__main__":
    sys.exit(main())
