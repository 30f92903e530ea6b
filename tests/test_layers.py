"""The package's layers: import-linter's contract in pyproject.toml holds (each layer imports only the
layers below it, so no import cycle), and every module imports alone, first, in a fresh interpreter."""
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT


@pytest.mark.cli
def test_the_import_contract_holds():
    done = subprocess.run([str(Path(sys.executable).with_name("lint-imports")), "--no-cache"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "1 kept, 0 broken" in done.stdout, done.stdout[-3000:]


ALONE = """
import importlib, sys
failed = []
for module in sys.argv[1:]:  # each with no jaxfer module loaded (jax, flax and the rest stay: they are not ours)
    for name in [n for n in sys.modules if n == "jaxfer" or n.startswith("jaxfer.")]:
        del sys.modules[name]
    try:
        importlib.import_module(module)
    except Exception as e:
        failed.append(f"{module}: {type(e).__name__}: {e}")
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


@pytest.mark.cli
def test_every_module_imports_alone_in_any_order():
    modules = sorted(".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
                     for p in (ROOT / "jaxfer").rglob("*.py"))
    for order in (modules, modules[::-1]):
        done = subprocess.run([sys.executable, "-c", ALONE, *order], cwd=ROOT, capture_output=True, text=True,
                              timeout=300)
        assert len(modules) > 50 and done.returncode == 0, done.stdout + done.stderr[-2000:]
