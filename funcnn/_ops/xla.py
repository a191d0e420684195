"""XLA CPU defaults that funcnn applies when it is imported (before JAX starts a backend).

Why: jaxlib 0.10.2 hands CPU convolutions (and some fusions) to YNNPACK by default. On the
x86 CPUs we benchmarked (AVX-512, 2 cores) XLA's own Eigen/dot emitters are faster for the
convolutions funcnn trains with; ``--xla_cpu_experimental_ynn_fusion_type=`` (empty: no op
kinds go to YNNPACK) turns that routing off. See BENCHMARKS.md for the numbers.

Rules:

- XLA reads ``XLA_FLAGS`` once, when the first backend is created (the first array op,
  ``jax.devices()``, ...), not at ``import jax``. So the flag is only added if no backend is
  initialized yet; otherwise this is a no-op and says so.
- The user's setting wins: if ``XLA_FLAGS`` already mentions the flag (any value), it is
  left alone.
- ``FUNCNN_NO_XLA_DEFAULTS=1`` (or ``true``/``yes``) opts out entirely.
- Only CPU behaviour changes; GPU/TPU backends ignore the flag.
"""

from __future__ import annotations

import os

__all__ = ["YNN_FLAG", "configure_xla_cpu_defaults"]

#: The XLA flag funcnn sets (empty value: route no fusion kinds to YNNPACK).
YNN_FLAG = "--xla_cpu_experimental_ynn_fusion_type"

_OPT_OUT = "FUNCNN_NO_XLA_DEFAULTS"


def _backend_initialized() -> bool:
    """True if JAX has already created a backend (XLA_FLAGS were then already read)."""
    try:
        from jax._src import xla_bridge
    except Exception:  # pragma: no cover - jax internals moved: assume the safe answer
        return True
    probe = getattr(xla_bridge, "backends_are_initialized", None)
    if probe is not None:
        return bool(probe())
    return bool(getattr(xla_bridge, "_backends", {}))  # pragma: no cover - older jax


def configure_xla_cpu_defaults() -> str:
    """Append funcnn's XLA CPU default flag to ``os.environ["XLA_FLAGS"]`` if still possible.

    Call before the JAX backend initializes (``funcnn/__init__.py`` does, on import).

    Returns:
        What happened, one of:

        - ``"applied"``: the flag was appended to ``XLA_FLAGS``;
        - ``"user-set"``: ``XLA_FLAGS`` already mentions the flag; the user's value is kept;
        - ``"opted-out"``: ``FUNCNN_NO_XLA_DEFAULTS`` is set to a true value; nothing changed;
        - ``"too-late"``: a JAX backend is already initialized, so XLA has read its flags;
          nothing changed (set ``XLA_FLAGS`` yourself, or import funcnn before using JAX).
    """
    if os.environ.get(_OPT_OUT, "").strip().lower() in ("1", "true", "yes", "on"):
        return "opted-out"
    flags = os.environ.get("XLA_FLAGS", "")
    if YNN_FLAG in flags:
        return "user-set"
    if _backend_initialized():
        return "too-late"
    os.environ["XLA_FLAGS"] = f"{flags} {YNN_FLAG}=".strip()
    return "applied"
