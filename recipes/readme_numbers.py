"""Copy the demo's measured tables into README.md, between the demo-results markers.

    python recipes/readme_numbers.py demo-output

The README's numbers are never typed by hand: this pastes the learning-curve tables and verdicts
from the run's results.json, with the command, date, machine and versions recorded by that run.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

START, END = "<!-- demo-results:start -->", "<!-- demo-results:end -->"


def render(results: dict) -> str:
    from transferkit.evidence.compare import METRIC_NAMES, transfer_label

    env = results["env"]
    lines = [f"Measured by `{results['command']}` on {env['date']} ({env['machine']}; "
             + ", ".join(f"{k} {v}" for k, v in env["versions"].items()) + "):", ""]
    for section in results["sections"]:
        points = section["points"]
        metric = METRIC_NAMES.get(points[0]["metric"], points[0]["metric"])
        lines += [f"**{section['title']}** — test {metric} (%), mean ± sd over the seeds shown:", ""]
        arms = list(dict.fromkeys(s["arm"] if s["kind"] != "transfer" else "transfer" for p in points for s in p["summary"]))
        head = ["arm"] + [f"k={p['per_class']:g} ({len(p['seeds'])} seed{'s' if len(p['seeds']) > 1 else ''})" for p in points]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for arm in arms:
            cells = []
            for p in points:
                s = next((s for s in p["summary"] if s["arm"] == arm or (arm == "transfer" and s["kind"] == "transfer")), None)
                cells.append("—" if s is None else (f"{s['mean']:.1f} ± {s['sd']:.1f}" if s["n"] > 1 else f"{s['mean']:.1f}"))
            name = arm if arm != "transfer" else transfer_label(points)
            lines.append("| " + " | ".join([name] + cells) + " |")
        lines.append("")
        lines += [f"- k={p['per_class']:g}: {p['verdict']}" for p in points]
        lines.append("")
    return "\n".join(lines)


def main(folder: str) -> None:
    results = json.loads((Path(folder) / "results.json").read_text())
    readme = Path(__file__).resolve().parents[1] / "README.md"
    text = readme.read_text()
    block = f"{START}\n{render(results)}\n{END}"
    new, count = re.subn(re.escape(START) + r".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    if count != 1:
        sys.exit(f"README.md must contain exactly one {START} ... {END} block")
    readme.write_text(new)
    print(f"README.md updated from {folder}/results.json")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "demo-output")
