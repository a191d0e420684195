"""The README's "Bring your own backward" section runs as written."""

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _section_code(title: str) -> str:
    text = README.read_text()
    start = text.index(f"## {title}")
    end = text.index("\n## ", start + 1)
    blocks = re.findall(r"```python\n(.*?)```", text[start:end], flags=re.S)
    assert len(blocks) == 1, f"expected one python block in {title!r}"
    return blocks[0]


def test_bring_your_own_backward_runs(tmp_path):
    code = _section_code("Bring your own backward")
    assert len(code.strip().splitlines()) <= 30
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert re.match(r"x\[\d+, \d+\] = -[\d.]+: hand -?0, twin", lines[0]), lines[0]
    assert "test_accuracy" not in lines[1] and "train_accuracy" in lines[1]
    pairs = eval(lines[-1])  # noqa: S307 - our own printed list of (name, accuracy)
    assert [p[0] for p in pairs] == ["relu", "mish"] and all(0.8 < p[1] <= 1.0 for p in pairs)


def test_composition_example_runs():
    code = _section_code("Composition: branches, residual networks, initializers as choices")
    code += (
        "\nimport jax\n"
        "assert block.init(jax.random.key(0), (2, 64))[0] == (2, 64)\n"
        "assert down.init(jax.random.key(0), (2, 40, 8))[0] == (2, 20, 32)\n"
        "assert skip.init(jax.random.key(0), (2, 64))[0] == (2, 64)\n"
        "assert net.init(jax.random.key(0), (2, 40))[0] == (2, 10)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
