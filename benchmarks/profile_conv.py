"""Profile of the conv backward pieces (fwd, dx and dw algorithms), interleaved in one process.

    python -m benchmarks.profile_conv          # with funcnn default XLA flag as set in the env
Set XLA_FLAGS yourself to compare settings (this script does not import funcnn).
"""
import os, sys

import jax, jax.numpy as jnp, numpy as np
from jax import lax
from benchmarks._timing import time_interleaved
from benchmarks._im2col_proto import patches, col2im
D=("NHWC","HWIO","NHWC")
rng = np.random.default_rng(0)
for (N,H,W,C,K,O,pad) in [(128,28,28,1,5,6,0),(128,12,12,6,5,16,0),(64,32,32,64,3,64,1)]:
    P=((pad,pad),(pad,pad)); Ho=H+2*pad-K+1
    x = jnp.asarray(rng.normal(size=(N,H,W,C)), jnp.float32); w = jnp.asarray(rng.normal(size=(K,K,C,O)), jnp.float32)
    g = jnp.asarray(rng.normal(size=(N,Ho,Ho,O)), jnp.float32)
    pk = K-1-pad
    f = {
     "fwd_conv": jax.jit(lambda x,w: lax.conv_general_dilated(x,w,(1,1),P,dimension_numbers=D)),
     "fwd_i2c": jax.jit(lambda x,w: (patches(x,(K,K),(1,1),P,(1,1),(Ho,Ho)).reshape(-1,K*K*C) @ w.reshape(-1,O)).reshape(N,Ho,Ho,O)),
     "dx_hwoi": jax.jit(lambda g,w: lax.conv_general_dilated(g,w[::-1,::-1],(1,1),((pk,pk),(pk,pk)),dimension_numbers=("NHWC","HWOI","NHWC"))),
     "dx_std": jax.jit(lambda g,w: lax.conv_general_dilated(g,jnp.swapaxes(w[::-1,::-1],2,3),(1,1),((pk,pk),(pk,pk)),dimension_numbers=D)),
     "dx_c2i": jax.jit(lambda g,w: col2im((g.reshape(-1,O) @ w.reshape(-1,O).T).reshape(N,Ho,Ho,K*K,C),(H,W),(K,K),(1,1),P,(1,1))),
     "dw_conv": jax.jit(lambda x,g: lax.conv_general_dilated(x,g,(1,1),P,dimension_numbers=("CHWN","IHWO","HWNC"))),
     "dw_i2c": jax.jit(lambda x,g: (patches(x,(K,K),(1,1),P,(1,1),(Ho,Ho)).reshape(-1,K*K*C).T @ g.reshape(-1,O)).reshape(K,K,C,O)),
    }
    args = {"fwd":(x,w),"dx_":(g,w),"dw_":(x,g)}
    ref = {k: f[k](*args[k[:3]]) for k in f}
    for k in f:
        base = {"fwd":"fwd_conv","dx_":"dx_hwoi","dw_":"dw_conv"}[k[:3]]
        e = float(jnp.abs(ref[k]-ref[base]).max()/jnp.abs(ref[base]).max()); assert e < 1e-4, (k, e)
    st, raw = time_interleaved({k: (lambda k=k: f[k](*args[k[:3]])) for k in f}, rounds=int(os.environ.get("R", 9)))
    print(os.environ.get("XLA_FLAGS","")[-5:], (N,H,C,K,O), {k: f"{v.median*1e3:.2f}/{raw[k].min()*1e3:.2f}" for k,v in st.items()}, flush=True)
