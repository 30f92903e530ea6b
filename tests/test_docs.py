"""Text that cannot go stale: every Python block of README.md and docs/*.md runs, in a fresh interpreter
from the repository root, and ends with exit 0."""
import re
import subprocess
import sys

import pytest
from conftest import ROOT

BLOCKS = [(md.relative_to(ROOT), i, code) for md in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
          for i, code in enumerate(re.findall(r"^```python\n(.*?)^```", md.read_text(), re.M | re.S))]


@pytest.mark.cli
@pytest.mark.parametrize("where, index, code", BLOCKS, ids=[f"{w}-{i}" for w, i, _ in BLOCKS])
@pytest.mark.cli
def test_a_python_block_of_the_docs_runs(where, index, code):
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{where}, Python block {index + 1}:\n{done.stderr[-3000:]}"


def test_the_docs_hold_python_blocks():
    assert len(BLOCKS) >= 1


def test_the_architecture_names_every_module():
    """docs/architecture.md names every module of jaxfer/ (by its file name, under its package's entry)."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    modules = [p.relative_to(ROOT / "jaxfer") for p in (ROOT / "jaxfer").rglob("*.py") if p.name != "__init__.py"]
    missing = [str(m) for m in modules if f"`{m.name}`" not in text and f"`{m}`" not in text]
    assert not missing, f"docs/architecture.md does not name {missing}"
