"""The README's usage example runs as written."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_usage_example_runs() -> None:
    text = README.read_text()
    block = re.search(r"## Usage\n\n```python\n(.*?)```", text, re.S)
    assert block, "README has no python usage block"
    code = block.group(1).replace("    ...", "    pass")
    code += "\nassert scores.shape == (32, 160) and pos.shape == (32,)\n"
    code += "import torch\nassert torch.allclose(q @ g.T, scores, atol=1e-5)\n"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_import_gssf_stays_light() -> None:
    code = "import sys, gssf; heavy = [m for m in ('PIL', 'yaml', 'sentence_transformers', 'matplotlib', 'gssf.data', 'gssf.train') if m in sys.modules]; print(heavy)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "[]"
