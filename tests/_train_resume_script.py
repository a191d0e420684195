"""A small training run for the kill-and-resume test (tests/test_train.py).

Run as a script: ``python _train_resume_script.py CKPT_DIR OUT_DIR MARKER`` trains with
checkpoints and, once it has passed step ``HANG_AT``, writes ``MARKER`` and hangs so that
the test can kill it with SIGKILL. Imported, it provides the same problem (``train``) for
the uninterrupted reference and the resumed run.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)  # as tests/conftest.py does: same programs

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from _tiny import mlp, xent  # noqa: E402
from funcnn.train import RunDir, fit  # noqa: E402

STEPS = 240
HANG_AT = 100


MODEL = mlp(jnp.tanh, hidden=16)
OPTIMIZER = optax.adam(3e-3)
_rng = np.random.default_rng(0)
X = _rng.normal(size=(200, 6)).astype(np.float32)
Y = ((X[:, 0] > 0).astype(np.int32) + (X[:, 1] > 0.5)).astype(np.int32)
DATA = (X[:160], Y[:160])
TEST = (X[160:], Y[160:])


def train(ckpt_dir: str, out_dir: str, *, resume: bool = False, callback=None):
    run = RunDir(out_dir, "resume", "run", resume=resume)
    return fit(
        MODEL, xent, OPTIMIZER, DATA, test_data=TEST, steps=STEPS, batch_size=16, seed=3,
        eval_every=20, checkpoint_dir=ckpt_dir, checkpoint_every=40, keep_checkpoints=2,
        resume=resume, run_dir=run, progress=False, steps_per_call=10, callback=callback,
    ), run


if __name__ == "__main__":
    ckpt, out, marker = sys.argv[1:4]

    def hang(info):
        if info["step"] >= HANG_AT:
            Path(marker).write_text(str(info["step"]))
            while True:  # wait to be killed
                time.sleep(1)

    train(ckpt, out, callback=hang)
