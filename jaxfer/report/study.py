"""``jaxfer report DIR...``: what a study found, as ``report.md`` and a self-contained ``report.html``.

It reads only the files that runs, sweeps and DPTL already write (metrics.csv, run.json, curves.csv,
area_ratios.csv, scores.csv, summary.json), so it works on a finished run directory, a sweep directory
and the tables committed under benchmarks/results/ alike. Each directory gets a section; several sweeps
also get one table of the cells they share (e.g. a DQN sweep beside a DQV sweep).

Per transfer cell the report gives three views of the same per-seed areas under the learning curve:
R (Sabatelli's area ratio of the seed means, with the sweep's bootstrap CI), R with the IQM in place of
the mean, and the probability that a transfer seed beats a scratch seed (rliable's definitions, with a
bootstrap CI that resamples each arm on its own). Figures are PNG files beside report.md and embedded
in report.html, which therefore opens anywhere on its own.
"""
from __future__ import annotations

import base64
import html
from pathlib import Path

from jaxfer import stats
from jaxfer.errors import ConfigError
from jaxfer.runtime import files, plots, rundir
from jaxfer.transfer import area_ratio, reference

FIGURES = "figures"
MARK = ".jaxfer-report"  # in a directory that holds a report: the next report may replace it there
CURVE_COLUMNS = ("source", "target", "mode", "seed", "epoch", "env_steps", "metric", "value")
RATIO_COLUMNS = ("source", "target", "mode", "area_ratio", "ci_low", "ci_high", "seeds")
SCORE_KEYS = ("rank", "target", "score", "ci_low", "ci_high", "frames")


class Doc:
    """The report as blocks, rendered twice: Markdown with figure files, HTML with figures embedded."""

    def __init__(self, out: Path):
        self.out, self.blocks = out, []

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(("heading", level, text))

    def text(self, text: str) -> None:
        self.blocks.append(("text", text))

    def table(self, header: list[str], rows: list[list]) -> None:
        self.blocks.append(("table", header, [[str(c) for c in r] for r in rows]))

    def figure(self, name: str, caption: str) -> Path:
        """Where the caller draws the figure ``name`` (a PNG file under figures/)."""
        self.blocks.append(("figure", name, caption))
        return self.out / FIGURES / name

    def markdown(self) -> str:
        lines = []
        for kind, *rest in self.blocks:
            if kind == "heading":
                lines += ["#" * rest[0] + " " + rest[1], ""]
            elif kind == "text":
                lines += [rest[0], ""]
            elif kind == "table":
                header, rows = rest
                lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                lines += ["| " + " | ".join(r) + " |" for r in rows] + [""]
            else:
                lines += [f"![{rest[1]}]({FIGURES}/{rest[0]})", "", f"*{rest[1]}*", ""]
        return "\n".join(lines)

    def html(self, title: str) -> str:
        parts = []
        for kind, *rest in self.blocks:
            if kind == "heading":
                parts.append(f"<h{rest[0]}>{html.escape(rest[1])}</h{rest[0]}>")
            elif kind == "text":
                parts.append(f"<p>{html.escape(rest[0])}</p>")
            elif kind == "table":
                header, rows = rest
                head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
                body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
                parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            else:
                data = base64.b64encode((self.out / FIGURES / rest[0]).read_bytes()).decode()
                parts.append(f'<figure><img alt="{html.escape(rest[1])}" src="data:image/png;base64,{data}">'
                             f"<figcaption>{html.escape(rest[1])}</figcaption></figure>")
        return _PAGE.format(title=html.escape(title), body="\n".join(parts))


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; white-space: nowrap; }}
th {{ background: #f3f3f3; }}
img {{ max-width: 100%; }}
figcaption {{ font-size: 0.85em; color: #555; }}
</style></head>
<body>
{body}
</body></html>
"""


def kind(path: Path) -> str:
    """What a directory holds: "sweep", "dptl" or "run"; anything else is a user mistake."""
    if not path.is_dir():
        raise ConfigError(f"{path}: no such directory")
    if (path / "area_ratios.csv").exists() and (path / "curves.csv").exists():
        return "sweep"
    if (path / "scores.csv").exists() and (path / "summary.json").exists():
        return "dptl"
    if (path / rundir.METRICS).exists() and (path / rundir.CONFIG).exists():
        return "run"
    raise ConfigError(f"{path}: not a jaxfer run, sweep or DPTL directory (no metrics.csv + config.yaml, "
                      "area_ratios.csv + curves.csv, or scores.csv + summary.json)")


def _ci(point: float, low: float, high: float, signed: bool = True) -> str:
    f = "+.3f" if signed else ".3f"
    return f"{point:{f}} [{low:{f}}, {high:{f}}]"


def sweep_curves(path: Path) -> tuple[dict, str]:
    """(source, target, mode) -> (env steps, values (seeds, epochs)) from a sweep's curves.csv, and its metric."""
    rows = files.read_csv(path / "curves.csv", CURVE_COLUMNS, rows=True,
                          numbers=("seed", "epoch", "env_steps", "value"))
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["source"], r["target"], r["mode"]), []).append(r)
    return {k: plots.seed_matrix(v, "value") for k, v in groups.items()}, rows[0]["metric"]


def cell_statistics(ratios: list[dict], curves: dict) -> list[dict]:
    """Each area_ratios.csv row with IQM-R and the probability of improvement over scratch (95% CIs)."""
    out = []
    for r in ratios:
        window = int(r["window"]) if r.get("window") else None
        transfer = area_ratio.area_under_curve(curves[r["source"], r["target"], r["mode"]][1], window)
        scratch = area_ratio.area_under_curve(curves[r["target"], r["target"], "scratch"][1], window)
        out.append(r | {
            "iqm_r": float(area_ratio.iqm_area_ratio(transfer, scratch)),
            "iqm_r_ci": stats.two_sample_ci(transfer, scratch, area_ratio.iqm_area_ratio),
            "p_improve": float(stats.probability_of_improvement(transfer, scratch)),
            "p_improve_ci": stats.two_sample_ci(transfer, scratch, stats.probability_of_improvement)})
    return out


def run_facts(dirs: list[Path]) -> tuple[list[list], dict | None]:
    """One row of speed facts per finished run directory, and the versions/device of the first."""
    rows, first = [], None
    for d in dirs:
        if not (d / rundir.RUN_JSON).exists():
            continue
        info = files.read_json(d / rundir.RUN_JSON)
        first = first or info
        device = info.get("device", {})
        rows.append([d.name, info.get("config", {}).get("seeds", ""), info.get("steady_env_steps_per_s", ""),
                     info.get("compile_seconds", ""), f"{device.get('kind', '')} x{device.get('count', '')}"])
    return rows, first


def _environment(doc: Doc, info: dict) -> None:
    versions = ", ".join(f"{k} {v}" for k, v in info.get("versions", {}).items())
    device = info.get("device", {})
    doc.text(f"Ran on {device.get('platform', '?')} ({device.get('kind', '?')} x{device.get('count', '?')}, "
             f"{device.get('processes', 1)} process(es), {info.get('cpu_count', '?')} CPU cores); {versions}.")


def read(path: Path, what: str) -> dict:
    """Every file of the ``what`` directory ``path`` that its section uses, read and checked before anything
    is drawn: a damaged one is a one-line ``files.DamagedFile`` and the report's directory is left as it was."""
    if what == "sweep":
        curves, metric = sweep_curves(path)
        ratios = files.read_csv(path / "area_ratios.csv", RATIO_COLUMNS, rows=True,
                                numbers=RATIO_COLUMNS[3:] + ("window",))
        need = [k for r in ratios
                for k in ((r["source"], r["target"], r["mode"]), (r["target"], r["target"], "scratch"))]
        lost = next((k for k in need if k not in curves), None)
        if lost is not None:
            raise files.damaged(path / "curves.csv", f"no curve of {' '.join(lost)}")
        runs = sorted(p for sub in ("scratch", "distill", "cells") for p in (path / sub).glob("*"))
        return {"curves": curves, "metric": metric, "cells": cell_statistics(ratios, curves), "facts": run_facts(runs)}
    if what == "run":
        return {"cfg": files.read_yaml(path / rundir.CONFIG), "rows": plots.read_metrics(path / rundir.METRICS),
                "facts": run_facts([path])}
    summary = files.read_json(path / "summary.json", ("source", "scores"))
    if not isinstance(summary["scores"], list) or not all(
            isinstance(s, dict) and set(SCORE_KEYS) <= set(s) for s in summary["scores"]):
        raise files.damaged(path / "summary.json", f"'scores' is not a list of {', '.join(SCORE_KEYS)}")
    return {"summary": summary}


def sweep_section(doc: Doc, path: Path, data: dict, tag: str) -> list[dict]:
    curves, metric, cells = data["curves"], data["metric"], data["cells"]
    modes = list(dict.fromkeys(c["mode"] for c in cells))
    targets = [t for s, t, m in curves if m == "scratch" and any(c["target"] == t for c in cells)]  # sweep order
    doc.heading(f"Transfer sweep {path}")
    doc.text(f"{len(cells)} transfer cells ({', '.join(modes)}); curves of {metric.replace('_', ' ')}; "
             "R = (A_transfer - A_scratch) / |A_scratch| over the areas under the learning curves; IQM-R takes the "
             "IQM of the per-seed areas instead of their mean; P(improvement) is the probability that a transfer "
             "seed's area exceeds a scratch seed's.")
    for mode in modes:
        rows = [c for c in cells if c["mode"] == mode]
        sources = list(dict.fromkeys(c["source"] for c in rows))
        plots.heatmap(doc.figure(f"{tag}_R_{mode.replace(':', '-')}.png", f"R matrix, {mode} (95% CI over seeds)"),
                       rows, sources, [t for t in targets if any(c["target"] == t for c in rows)],
                       f"area ratio R, {mode}")
    doc.table(["source", "target", "mode", "R [95% CI]", "IQM-R [95% CI]", "P(improvement) [95% CI]",
               "seeds", "published R"],
              [[c["source"], c["target"], c["mode"],
                _ci(float(c["area_ratio"]), float(c["ci_low"]), float(c["ci_high"])),
                _ci(c["iqm_r"], *c["iqm_r_ci"]), _ci(c["p_improve"], *c["p_improve_ci"], signed=False), c["seeds"],
                "" if (p := reference.published(c["source"], c["target"], c["mode"])) is None else f"{p:+.3f}"]
               for c in cells])
    above = sum(float(c["ci_low"]) > 0 for c in cells)
    below = sum(float(c["ci_high"]) < 0 for c in cells)
    doc.text(f"R's CI lies above 0 in {above} cell(s) and below 0 in {below} of {len(cells)}.")
    compared, summary = reference.compare(cells)
    if compared:
        rho = "" if summary["spearman"] is None else f"; Spearman of ours vs published {summary['spearman']:+.2f}"
        doc.text(f"Beside Sabatelli's published tables: same sign in {summary['same_sign']} of "
                 f"{summary['entries']} cells{rho}.")
    for target in targets:
        named = {"scratch": curves[target, target, "scratch"]}
        named |= {f"{s} {m}": curves[s, t, m] for s, t, m in curves if t == target and m != "scratch"}
        plots.learning_curve(doc.figure(f"{tag}_curves_{target.replace('/', '_')}.png",
                                         f"target {target}: seed mean, 95% bootstrap CI band"),
                              named, f"target {target}", metric)
    facts, info = data["facts"]
    if facts:
        doc.table(["run", "seeds", "env steps/s", "compile s", "device"], facts)
        _environment(doc, info)
    else:
        doc.text("Run facts: this directory holds the sweep's tables only (no run directories with run.json).")
    return cells


def run_section(doc: Doc, path: Path, data: dict, tag: str) -> None:
    cfg, rows = data["cfg"], data["rows"]
    metric = plots.curve_metric(rows)
    steps, values = plots.seed_matrix(rows, metric)
    doc.heading(f"Run {path}")
    doc.text(f"{cfg.get('agent')} ({cfg.get('network')}) on {cfg.get('env')}, {values.shape[0]} seeds, "
             f"{values.shape[1]} of {cfg.get('total_steps', 0) // max(cfg.get('epoch_steps', 1), 1)} epochs logged.")
    final = values[:, -1]
    low, high = stats.bootstrap_ci(final)  # one seed: low = high = its value
    doc.text(f"Final {metric.replace('_', ' ')}: {_ci(float(final.mean()), low, high, signed=False)} "
             "(seed mean, 95% bootstrap CI).")
    plots.learning_curve(doc.figure(f"{tag}_curve.png", f"{cfg.get('env')}: seed mean, 95% bootstrap CI band"),
                          {cfg.get("agent", "run"): (steps, values)}, str(cfg.get("env")), metric)
    facts, info = data["facts"]
    if facts:
        doc.table(["run", "seeds", "env steps/s", "compile s", "device"], facts)
        _environment(doc, info)
    else:
        doc.text("Not finished: no run.json yet (the same train command resumes it).")


def dptl_section(doc: Doc, path: Path, data: dict) -> None:
    summary = data["summary"]
    source = summary.get("source", {})
    paper = reference.DPTL_TABLE_I.get(source.get("env"), {})
    doc.heading(f"DPTL {path}")
    doc.text(f"Source {source.get('run')} ({source.get('agent')} on {source.get('env')}, seeds {source.get('seeds')}); "
             f"{summary.get('method')} of {summary.get('layer')}, {summary.get('policy')}-policy frames.")
    scores = sorted(summary["scores"], key=lambda s: s["rank"])
    paper_rank = {t: i + 1 for i, t in enumerate(sorted(paper, key=paper.get, reverse=True))}
    header = ["rank", "target", "score [95% CI]", "frames"] + (["paper score", "paper rank"] if paper else [])
    doc.table(header, [[s["rank"], s["target"], _ci(s["score"], s["ci_low"], s["ci_high"], signed=False), s["frames"]]
                       + ([paper.get(s["target"], ""), paper_rank.get(s["target"], "")] if paper else [])
                       for s in scores])
    shared = [s for s in scores if s["target"] in paper]
    if len(shared) > 2:
        rho = stats.spearman([s["score"] for s in shared], [paper[s["target"]] for s in shared])
        doc.text(f"Beside DPTL's Table I (Joo & Kim 2020, an A3C source): Spearman {rho:+.2f} over {len(shared)} "
                 "targets.")


def comparison_section(doc: Doc, sweeps: dict[str, list[dict]]) -> None:
    """R of the cells that every sweep has, side by side."""
    keyed = {name: {(c["source"], c["target"], c["mode"]): c for c in cells} for name, cells in sweeps.items()}
    shared = [k for k in next(iter(keyed.values())) if all(k in cells for cells in keyed.values())]
    doc.heading("Sweeps side by side")
    if not shared:
        doc.text("The sweeps share no (source, target, mode) cell.")
        return
    doc.table(["source", "target", "mode"] + [f"R {name}" for name in keyed],
              [list(k) + [_ci(float(c["area_ratio"]), float(c["ci_low"]), float(c["ci_high"]))
                          for c in (cells[k] for cells in keyed.values())] for k in shared])


def claim(out: Path) -> None:
    """A report goes only into a directory that is empty (or was just created) or holds an earlier report of
    ours (its mark); a folder of the user's own files is refused in one line, so no file of theirs is replaced."""
    if not (out / MARK).exists() and any(p.name != rundir.LOCK for p in out.iterdir()):
        raise ConfigError(f"{out} holds files of its own and no earlier jaxfer report; pass another --out")


def write_report(dirs: list[Path], out: Path) -> Path:
    """report.md, report.html and figures/ in ``out`` for the run, sweep and DPTL directories ``dirs``."""
    kinds = [kind(Path(d)) for d in dirs]
    claim(Path(out))  # refuses a user's folder before reading anything
    found = [read(Path(d), k) for d, k in zip(dirs, kinds)]  # every file read before anything is drawn
    files.atomic_write_bytes(Path(out) / MARK, b"written by jaxfer report: a later report may replace its files\n")
    doc = Doc(Path(out))
    doc.heading("jaxfer report", 1)
    doc.text("Directories: " + ", ".join(str(d) for d in dirs) + ".")
    sweeps = {}
    for i, (d, k, data) in enumerate(zip(map(Path, dirs), kinds, found)):
        if k == "sweep":
            sweeps[str(d)] = sweep_section(doc, d, data, f"{i}")
        elif k == "run":
            run_section(doc, d, data, f"{i}")
        else:
            dptl_section(doc, d, data)
    if len(sweeps) > 1:
        comparison_section(doc, sweeps)
    files.atomic_write_bytes(Path(out) / "report.md", doc.markdown().encode())
    files.atomic_write_bytes(Path(out) / "report.html", doc.html("jaxfer report").encode())
    return Path(out) / "report.html"

