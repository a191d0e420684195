"""Winograd F(2x2,3x3) prototype for 3x3 stride-1 conv (forward) and F(3x3,2x2) kernel gradient.

Exact (1e-14 vs lax.conv in float64) but 2.5x (fwd) / 3.7x (dW) slower than XLA CPU convs on
64x32x32x64 -> 64; kept for reference, NOT used by funcnn (see BENCHMARKS.md, section 2).
Usage: from benchmarks.proto_winograd import wino_conv, wino_dw
"""
import jax, jax.numpy as jnp
from jax import lax

def _bt(d0, d1, d2, d3):  # B^T d  (1-D, length 4)
    return d0 - d2, d1 + d2, d2 - d1, d1 - d3

def input_transform(xp, th, tw):
    """xp (N, 2th+2, 2tw+2, C) -> V (4, 4, N, th, tw, C) = B^T d B per tile."""
    rows = [xp[:, r:r + 2 * th:2] for r in range(4)]            # (N, th, 2tw+2, C)
    rows = _bt(*rows)
    out = []
    for rr in rows:
        cols = [rr[:, :, s:s + 2 * tw:2] for s in range(4)]    # (N, th, tw, C)
        out.append(jnp.stack(_bt(*cols)))
    return jnp.stack(out)

def kernel_transform(w):
    """w (3, 3, C, O) -> U (4, 4, C, O) = G w G^T."""
    def g(w0, w1, w2):
        return w0, (w0 + w1 + w2) * 0.5, (w0 - w1 + w2) * 0.5, w2
    rows = g(w[0], w[1], w[2])                                  # each (3, C, O)
    return jnp.stack([jnp.stack(g(r[0], r[1], r[2])) for r in rows])

def output_transform(m):
    """m (4, 4, N, th, tw, O) -> (N, 2th, 2tw, O) via A^T m A."""
    def at(m0, m1, m2, m3):
        return m0 + m1 + m2, m1 - m2 - m3
    r = at(m[0], m[1], m[2], m[3])                              # 2 x (4, N, th, tw, O)
    y = jnp.stack([jnp.stack(at(rr[0], rr[1], rr[2], rr[3])) for rr in r])  # (2,2,N,th,tw,O)
    n, th, tw, o = y.shape[2:]
    return y.transpose(2, 3, 0, 4, 1, 5).reshape(n, 2 * th, 2 * tw, o)

def wino_conv(x, w, pads):
    n, h, wd, c = x.shape
    o = w.shape[-1]
    (lh, hh), (lw, hw) = pads
    ho, wo = h + lh + hh - 2, wd + lw + hw - 2
    th, tw = -(-ho // 2), -(-wo // 2)
    xp = jnp.pad(x, ((0, 0), (lh, 2 * th + 2 - h - lh), (lw, 2 * tw + 2 - wd - lw), (0, 0)))
    v = input_transform(xp, th, tw).reshape(16, n * th * tw, c)
    u = kernel_transform(w).reshape(16, c, o)
    m = lax.dot_general(v, u, (((2,), (1,)), ((0,), (0,))))     # (16, T, O)
    y = output_transform(m.reshape(4, 4, n, th, tw, o))
    return y[:, :ho, :wo]

def g_transform(gp):
    """gp (N, 2th, 2tw, O) -> (4, 4, N, th, tw, O) = A g A^T per 2x2 tile."""
    def a(g0, g1):
        return g0, g0 + g1, g0 - g1, -g1
    rows = a(gp[:, 0::2], gp[:, 1::2])
    return jnp.stack([jnp.stack(a(r[:, :, 0::2], r[:, :, 1::2])) for r in rows])

def gt_transform(m):
    """m (4, 4, C, O) -> (3, 3, C, O) = G^T m G."""
    def gt(m0, m1, m2, m3):
        return m0 + 0.5 * (m1 + m2), 0.5 * (m1 - m2), 0.5 * (m1 + m2) + m3
    r = gt(m[0], m[1], m[2], m[3])
    return jnp.stack([jnp.stack(gt(rr[0], rr[1], rr[2], rr[3])) for rr in r])

def wino_dw(x, g, pads):
    n, h, wd, c = x.shape
    o = g.shape[-1]
    (lh, hh), (lw, hw) = pads
    ho, wo = g.shape[1:3]
    th, tw = -(-ho // 2), -(-wo // 2)
    xp = jnp.pad(x, ((0, 0), (lh, 2 * th + 2 - h - lh), (lw, 2 * tw + 2 - wd - lw), (0, 0)))
    v = input_transform(xp, th, tw).reshape(16, n * th * tw, c)
    gp = jnp.pad(g, ((0, 0), (0, 2 * th - ho), (0, 2 * tw - wo), (0, 0)))
    gt = g_transform(gp).reshape(16, n * th * tw, o)
    m = lax.dot_general(v, gt, (((1,), (1,)), ((0,), (0,))))    # (16, C, O)
    return gt_transform(m.reshape(4, 4, c, o))
