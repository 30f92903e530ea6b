"""`jaxfer report`: the report of a real tiny sweep, run and DPTL directory through the CLI (its statistics
equal to jaxfer.stats' on the sweep's curves), and the HTML page rendered in headless Chromium."""
import base64
import re
import shutil
import subprocess

import numpy as np
import pytest
import yaml
from conftest import ROOT, run_cli

from jaxfer import stats
from jaxfer.runtime import files
from jaxfer.transfer import area_ratio

TINY = {"seeds": 3, "total_steps": 600, "epoch_steps": 200, "learning_starts": 100, "buffer_size": 500,
        "eval_envs": 4, "eval_steps": 12}
DPTL = ROOT / "benchmarks" / "results" / "dptl" / "demonattack"


# --------------------------------------------------------------------------------- the report itself

@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    """A real 1-cell sweep (catch/v3 -> catch/v0, fine-tuned, 3 seeds) with its run directories."""
    tmp = tmp_path_factory.mktemp("report")
    spec = tmp / "sweep.yaml"
    spec.write_text(yaml.safe_dump({"sources": ["catch/v3"], "targets": ["catch/v0"], "modes": ["fine_tune"],
                                    "pairs": "cross", "train": TINY}))
    proc = run_cli("transfer", spec, "--out", tmp / "sweep", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    return tmp / "sweep"


@pytest.mark.cli
def test_report_of_a_sweep_a_run_and_dptl(tiny_sweep, tmp_path):
    other = tmp_path / "dqn_again"
    shutil.copytree(tiny_sweep, other)  # a second sweep to set beside the first
    out = tmp_path / "report"
    proc = run_cli("report", tiny_sweep, other, tiny_sweep / "scratch" / "catch_v0", DPTL, "--out", out)
    assert proc.returncode == 0, proc.stderr
    md = (out / "report.md").read_text()
    ratio = files.read_csv(tiny_sweep / "area_ratios.csv")[0]
    row = next(line for line in md.splitlines() if line.startswith("| catch/v3 | catch/v0 | fine_tune |"))
    assert f"{float(ratio['area_ratio']):+.3f} [{float(ratio['ci_low']):+.3f}, {float(ratio['ci_high']):+.3f}]" in row
    # the probability of improvement printed equals the one from the per-seed areas in curves.csv
    curves = files.read_csv(tiny_sweep / "curves.csv")

    def areas(mode):
        rows = [r for r in curves if r["mode"] == mode and r["target"] == "catch/v0"]
        seeds = sorted({r["seed"] for r in rows})
        return np.array([area_ratio.area_under_curve([float(r["value"]) for r in rows if r["seed"] == s])
                         for s in seeds])

    assert f"{stats.probability_of_improvement(areas('fine_tune'), areas('scratch')):.3f} [" in row
    assert "published R" in md and "| catch/v3 | catch/v0 | fine_tune |" in md
    assert "Sweeps side by side" in md
    assert "Run facts" not in md  # the sweep has run directories: their facts are in a table
    assert re.search(r"\| catch_v0 \| 3 \| [0-9.]+ \| [0-9.]+ \| cpu", md)  # run, seeds, steps/s, compile s
    assert "| 1 | atari/Pong | 0.529 [0.527, 0.531] | 1000 | 0.46 | 2 |" in md  # DPTL beside Table I
    figures = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert len(figures) == 5  # two sweeps x (heatmap + curves), the run's curve
    for name in figures:
        assert f"(figures/{name})" in md
    page = (out / "report.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == len(figures)
    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    assert not re.search(r'(src|href)="(?!data:)', page)  # nothing outside the page


@pytest.mark.parametrize("args, needle", [
    (["no/such/dir"], "no/such/dir: no such directory"),
    ([str(ROOT / "configs")], "not a jaxfer run, sweep or DPTL directory"),
])
@pytest.mark.cli
def test_report_bad_input_is_one_line(args, needle, tmp_path):
    proc = run_cli("report", *args, "--out", tmp_path / "r")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jaxfer: error: ") and needle in lines[0], proc.stderr
    assert not (tmp_path / "r" / "report.html").exists()


@pytest.mark.cli
def test_report_renders_in_headless_chromium(tiny_sweep, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no Chromium on this machine (Debian: apt-get install chromium); the HTML is checked above")
    out = tmp_path / "report"
    assert run_cli("report", tiny_sweep, "--out", out).returncode == 0
    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1100,1400", f"--screenshot={shot}", (out / "report.html").as_uri()],
                   capture_output=True, timeout=120, check=True)
    import matplotlib.image

    pixels = (matplotlib.image.imread(shot)[..., :3] * 255).astype(int)
    assert pixels.shape[:2] == (1400, 1100)
    # the embedded heatmap's colours (RdBu: strong red or blue) show only if the page drew its images
    coloured = np.abs(pixels[..., 0] - pixels[..., 2]) > 60
    assert coloured.sum() > 2000, "no image drawn: the embedded figures did not render"
    text = (pixels.sum(-1) < 200).sum()  # dark pixels: the headings and the table
    assert text > 2000
