"""Nothing a user made is lost: a sweep or report directory holds one thing, results tables are merged,
a full disk keeps the last checkpoint, and a resumed run rebuilds a metrics.csv cut short or deleted."""
import errno
import json
import os
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT

from jaxfer import cli
from jaxfer.runtime import files

TRAIN = {"seeds": 1, "total_steps": 400, "epoch_steps": 200, "learning_starts": 100, "buffer_size": 500,
         "eval_envs": 2, "eval_steps": 12}
# a checkpoint after every epoch (checkpoint_every_s=0): the disk fills at the second
RUN = ["train", "total_steps=1000", "epoch_steps=200", "learning_starts=100", "buffer_size=500", "seeds=2",
       "eval_envs=2", "eval_steps=12", "tensorboard=false", "checkpoint_every_s=0", "--no-progress"]


@pytest.mark.cli
def test_two_sweeps_with_different_files_on_one_out_one_is_refused_and_nothing_is_lost(tmp_path):
    out, procs = tmp_path / "sweep", {}
    for target in ("catch/v1", "catch/v2"):
        spec = tmp_path / f"{target.replace('/', '_')}.yaml"
        spec.write_text(yaml.safe_dump({"sources": ["catch/v0"], "targets": [target], "modes": ["fine_tune"],
                                        "train": TRAIN}))
        procs[target] = subprocess.Popen([sys.executable, "-m", "jaxfer.cli", "transfer", str(spec), "--out", str(out),
                                          "--no-progress"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         text=True)
    done = {t: (*p.communicate(timeout=600), p.returncode) for t, p in procs.items()}
    assert sorted(code for *_, code in done.values()) == [0, 2], done
    (won, _), (lost, (_, err, _)) = sorted(done.items(), key=lambda kv: kv[1][2])
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "holds a sweep made with another config" in lines[0] or "is in use by" in lines[0], err  # the claim, or
    # (at the very instant the winner checks the directory) its lock
    ratios = files.read_csv(out / "area_ratios.csv")
    assert [(r["source"], r["target"], r["mode"]) for r in ratios] == [("catch/v0", won, "fine_tune")]
    assert {r["target"] for r in files.read_csv(out / "curves.csv")} == {"catch/v0", won}
    assert not (out / "scratch" / lost.replace("/", "_")).exists()  # the refused sweep wrote nothing
    spec = tmp_path / f"{lost.replace('/', '_')}.yaml"
    again = subprocess.run([sys.executable, "-m", "jaxfer.cli", "transfer", str(spec), "--out", str(out),
                            "--no-progress"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 2 and "holds a sweep made with another config" in again.stderr, again.stderr
    assert files.read_csv(out / "area_ratios.csv") == ratios


def test_a_results_table_is_merged_never_replaced(tmp_path):
    table = tmp_path / "area_ratios.csv"
    files.write_csv(table, [{"source": "a", "target": "b", "mode": "m", "area_ratio": 0.5},
                            {"source": "c", "target": "b", "mode": "m", "area_ratio": 0.1}])
    files.merge_csv(table, [{"source": "a", "target": "b", "mode": "m", "area_ratio": 0.7}],
                    ("source", "target", "mode"))
    assert [(r["source"], r["area_ratio"]) for r in files.read_csv(table)] == [("a", "0.7"), ("c", "0.1")]


@pytest.mark.cli
def test_a_report_goes_into_its_own_directory_only(tmp_path, capsys):
    run = tmp_path / "run"
    assert cli.main([a.replace("total_steps=1000", "total_steps=400") for a in RUN] + ["--out", str(run)]) == 0
    report = tmp_path / "report"
    for _ in range(2):  # a new directory, then the same one holding the earlier report
        assert cli.main(["report", str(run), "--out", str(report)]) == 0
    assert (report / "report.md").read_text().startswith("# jaxfer report")
    (tmp_path / "empty").mkdir()
    assert cli.main(["report", str(run), "--out", str(tmp_path / "empty")]) == 0
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "report.md").write_text("# my notes\n")
    capsys.readouterr()
    assert cli.main(["report", str(run), "--out", str(mine)]) == 2
    assert "holds files of its own and no earlier jaxfer report" in capsys.readouterr().err
    assert (mine / "report.md").read_text() == "# my notes\n"
    assert sorted(p.name for p in mine.iterdir()) == ["report.md"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("full") / "run"
    assert cli.main([*RUN, "--out", str(out)]) == 0
    return out


def _full_disk_at_second_checkpoint(monkeypatch):
    """os.fsync of the second checkpoint's temp file fails as on a full disk (ENOSPC)."""
    real, seen = os.fsync, []

    def fsync(fd):
        if ".checkpoint.npz" + files.PARTIAL in os.readlink(f"/proc/self/fd/{fd}"):
            seen.append(fd)
            if len(seen) == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


@pytest.mark.parametrize("damage", ["header", "mid-row", "deleted", "intact"])
@pytest.mark.cli
def test_full_disk_is_one_line_and_resume_rebuilds_every_metric_row(uninterrupted, damage, tmp_path, monkeypatch,
                                                                    capsys):
    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        _full_disk_at_second_checkpoint(patch)
        capsys.readouterr()
        assert cli.main([*RUN, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"no space left on the device for {out / 'checkpoint.npz'} (about " in err[0], err
    assert "MiB needed" in err[0] and "MiB free" in err[0], err
    assert int(files.load_npz(out / "checkpoint.npz")["__epoch"]) == 1  # the last checkpoint, intact
    assert not list(out.glob(f".*{files.PARTIAL}*"))  # the temp file removed
    assert not (out / "run.json").exists()

    metrics = out / "metrics.csv"
    text = metrics.read_text()
    if damage == "header":
        metrics.write_text(text[:text.index("\n") + 1])
    elif damage == "mid-row":
        metrics.write_text(text[:len(text) // 3])
    elif damage == "deleted":
        metrics.unlink()
    assert cli.main([*RUN, "--out", str(out)]) == 0
    assert json.loads((out / "run.json").read_text())["resumed_from_epoch"] == 1
    assert metrics.read_text() == (uninterrupted / "metrics.csv").read_text()
