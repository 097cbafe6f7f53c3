"""A report a person wants to look at: self-contained HTML (plots embedded) and its Markdown twin.

Every number comes from the runs passed in; the seeds, split sizes, versions and machine are
printed beside them.
"""
from __future__ import annotations

import base64
import html
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .compare import METRIC_NAMES, environment
from .curve import LearningCurve

KIND_STYLE = {"transfer": ("#1f77b4", "o"), "scratch": ("#d62728", "s"), "classic": ("#7f7f7f", "^")}


@dataclass
class ReportSection:
    title: str
    description: str
    curve: LearningCurve
    chosen: Any = None      # the Adapted model whose confusion matrix is shown
    test: Any = None        # the test Split it is scored on


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_learning_curve(curve: LearningCurve, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    names = dict.fromkeys((a["name"] if a["kind"] != "transfer" else "transfer", a["kind"])
                          for p in curve.points for a in p.arms)
    for name, kind in names:
        xs, ys, es = [], [], []
        for p in curve.points:
            s = next((s for s in p.summary() if s.arm == name or (kind == "transfer" and s.kind == "transfer")), None)
            if s is not None:
                xs.append(p.per_class), ys.append(s.mean), es.append(s.sd)
        colour, marker = KIND_STYLE[kind]
        style = "-" if kind != "classic" else "--"
        ax.errorbar(xs, ys, yerr=es, label=name, color=colour if kind != "classic" or "HOG" not in name else "#2ca02c",
                    marker=marker, linestyle=style, capsize=3)
    ax.set_xscale("log")
    ax.set_xticks([p.per_class for p in curve.points], [f"{p.per_class:g}" for p in curve.points])
    ax.set_xlabel("labelled examples per class")
    ax.set_ylabel(f"test {METRIC_NAMES.get(curve.points[0].metric, curve.points[0].metric)} (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_training_curves(curve: LearningCurve, path: Path) -> None:
    """One panel per arm, each on its own epoch axis, for the first seed of the smallest size.

    Why separate panels: arms train on different schedules (a probe may run 300 epochs on cached
    features while the network from scratch runs 5), so a shared epoch axis would put unlike steps side
    by side. A one-row history (a convex solver's single fit) is drawn as one point and labelled so.
    """
    plt = _plt()
    point = curve.points[0]
    runs = [r for r in point.runs if r.seed == point.seeds[0] and r.history]
    cols = max(1, min(len(runs), 3))
    rows = max(1, -(-len(runs) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(max(6.0, 4.2 * cols), 3.3 * rows), squeeze=False)
    kinds = {a["name"]: a["kind"] for a in point.arms}
    for ax, run in zip(axes.flat, runs):
        _plot_history(ax, run, KIND_STYLE.get(kinds.get(run.arm), KIND_STYLE["transfer"])[0])
    for ax in list(axes.flat)[len(runs):]:
        ax.axis("off")
    if not runs:
        axes[0, 0].text(0.5, 0.5, "no arm recorded a training history\n(classic baselines fit in one solve)",
                        ha="center", va="center", fontsize=9)
    fig.suptitle(f"training curves, k={point.per_class:g} per class, seed {point.seeds[0]}; each arm on its own "
                 "epoch axis", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_history(ax, run, colour: str) -> None:
    epochs = [h.get("epoch", i + 1) for i, h in enumerate(run.history)]
    single = len(run.history) == 1
    for key, style, label in (("train_loss", "-", "train loss"), ("eval_loss", "--", "validation loss")):
        pairs = [(e, h[key]) for e, h in zip(epochs, run.history) if h.get(key) is not None]
        if pairs:
            xs, ys = zip(*pairs)
            ax.plot(xs, ys, color=colour, linestyle=style, marker="o" if single else None, label=label)
    note = "one fit (a single history row), shown as a point" if single else f"{len(run.history)} epochs"
    ax.set_title(f"{run.arm}\n{note}; train time {run.train_seconds:.1f}s", fontsize=8)
    if single:
        ax.set_xticks(epochs)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no loss in its history", ha="center", va="center", fontsize=8, transform=ax.transAxes)


def plot_confusion(chosen, test, path: Path) -> None:
    from sklearn.metrics import confusion_matrix

    plt = _plt()
    pred = chosen.predict_proba(list(test.inputs)).argmax(1)
    cm = confusion_matrix(test.y, pred, labels=np.arange(len(test.labels)))
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.imshow(cm, cmap="Blues")
    ticks = np.arange(len(test.labels))
    ax.set_xticks(ticks, test.labels, rotation=45 if max(len(l) for l in test.labels) > 3 else 0, fontsize=8)
    ax.set_yticks(ticks, test.labels, fontsize=8)
    for i in range(len(cm)):
        for j in range(len(cm)):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{chosen.config.strategy['name']} on {chosen.config.model.split('/')[-1]}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(output_dir: str | Path, sections: list[ReportSection], title: str, command: str,
                 intro: str = "") -> Path:
    """Write report.html, report.md, results.json and the PNG plots into ``output_dir``."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    env = environment()
    md = [f"# {title}", "", intro, "", f"Reproduce: `{command}`", "",
          f"Run on {env['date']}, {env['machine']}, Python {env['python']}; "
          + ", ".join(f"{k} {v}" for k, v in env["versions"].items()) + ".", ""]
    body = [f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(intro)}</p>",
            f"<p>Reproduce: <code>{html.escape(command)}</code></p>",
            f"<p class='env'>Run on {html.escape(env['date'])}, {html.escape(env['machine'])}, Python {env['python']}; "
            + html.escape(", ".join(f"{k} {v}" for k, v in env["versions"].items())) + ".</p>"]
    results = {"title": title, "command": command, "env": env, "sections": []}
    for section in sections:
        slug = _slug(section.title)
        images = {"learning curve": f"{slug}-learning-curve.png", "training curves": f"{slug}-training-curves.png"}
        plot_learning_curve(section.curve, out / images["learning curve"])
        plot_training_curves(section.curve, out / images["training curves"])
        if section.chosen is not None and section.test is not None:
            images["confusion matrix"] = f"{slug}-confusion.png"
            plot_confusion(section.chosen, section.test, out / images["confusion matrix"])
        metric = METRIC_NAMES.get(section.curve.points[0].metric, "score")
        md += [f"## {section.title}", "", section.description, "",
               f"Test {metric} (%) by labelled examples per class (k):", "", section.curve.table(markdown=True), ""]
        body += [f"<h2>{html.escape(section.title)}</h2>", f"<p>{html.escape(section.description)}</p>",
                 f"<h3>Test {metric} (%) by labelled examples per class (k)</h3>", _html_table(section.curve.table(markdown=True))]
        for point in section.curve.points:
            md += [f"### k = {point.per_class:g}", "", point.table(markdown=True), "", f"**Verdict:** {point.verdict}", ""]
            body += [f"<h3>k = {point.per_class:g}</h3>", f"<p class='caption'>{html.escape(point.table(markdown=True).split(chr(10))[0])}</p>",
                     _html_table("\n".join(point.table(markdown=True).split("\n")[2:])),
                     f"<p class='verdict'><b>Verdict:</b> {html.escape(point.verdict)}</p>"]
        for name, file in images.items():
            md += [f"![{name}]({file})", ""]
            data = base64.b64encode((out / file).read_bytes()).decode()
            body.append(f"<figure><img src='data:image/png;base64,{data}' alt='{name}'><figcaption>{name}</figcaption></figure>")
        results["sections"].append({"title": section.title, "points": [p.to_dict() for p in section.curve.points]})
    (out / "report.md").write_text("\n".join(md))
    (out / "report.html").write_text(HTML.format(title=html.escape(title), body="\n".join(body)))
    (out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    return out / "report.html"


def _html_table(markdown: str) -> str:
    rows = [r.strip().strip("|").split("|") for r in markdown.strip().split("\n") if not r.startswith("|---")]
    head, *body = rows
    th = "".join(f"<th>{html.escape(c.strip())}</th>" for c in head)
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(c.strip())}</td>" for c in r) + "</tr>" for r in body)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"


HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 980px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }}
table {{ border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
th {{ background: #f3f3f3; }}
.verdict {{ background: #eef6ee; border-left: 4px solid #2ca02c; padding: 0.5em 0.8em; }}
.env, .caption {{ color: #666; font-size: 0.88em; }}
figure {{ display: inline-block; margin: 0.5em; }} img {{ max-width: 460px; }}
figcaption {{ text-align: center; color: #666; font-size: 0.85em; }}
code {{ background: #f3f3f3; padding: 0.1em 0.3em; }}
</style></head><body>
{body}
</body></html>
"""
