import jax, jax.numpy as jnp
from jax import lax

def patches(x, ks, strides, pads, dils, out):
    xp = jnp.pad(x, ((0, 0), *pads, (0, 0)))
    cols = []
    for p in range(ks[0]):
        for q in range(ks[1]):
            h0, w0 = p * dils[0], q * dils[1]
            cols.append(lax.slice(xp, (0, h0, w0, 0), (xp.shape[0], h0 + strides[0] * (out[0] - 1) + 1, w0 + strides[1] * (out[1] - 1) + 1, xp.shape[3]), (1, strides[0], strides[1], 1)))
    return jnp.stack(cols, axis=3)  # (N, Ho, Wo, KH*KW, C)

def col2im(dp, in_sizes, ks, strides, pads, dils):
    # dp (N, Ho, Wo, KH*KW, C) -> dx (N, H, W, C)
    n, ho, wo, _, c = dp.shape
    hp, wp = in_sizes[0] + sum(pads[0]), in_sizes[1] + sum(pads[1])
    acc = None
    for p in range(ks[0]):
        for q in range(ks[1]):
            h0, w0 = p * dils[0], q * dils[1]
            cfg = ((0, 0, 0), (h0, hp - h0 - strides[0] * (ho - 1) - 1, strides[0] - 1), (w0, wp - w0 - strides[1] * (wo - 1) - 1, strides[1] - 1), (0, 0, 0))
            t = lax.pad(dp[:, :, :, p * ks[1] + q], jnp.zeros((), dp.dtype), cfg)
            acc = t if acc is None else acc + t
    return acc[:, pads[0][0]:pads[0][0] + in_sizes[0], pads[1][0]:pads[1][0] + in_sizes[1]]
