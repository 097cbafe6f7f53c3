"""The Markdown body of the model card, one function per section, each reading the run record only.

Sections: what the model is; how it was adapted; the data; evaluation (overall and per class);
the comparison when ``compare`` ran; how to use it (transferkit and the plain library); intended
use and limitations (with the comparison's verdict when transfer did not win); the environment.
"""
from __future__ import annotations

from typing import Any

from .card import METRIC_NAMES, base_model_id, latest_evaluation, source_name


def _task(record: dict[str, Any]):
    """The record's task: what the card says differs by task, it asks the task (``Task.card_*``)."""
    from ..tasks import get_task

    return get_task(record["task"])


def _multi(record: dict[str, Any]) -> bool:
    return _task(record).multi_label


def _table(head: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def _pct(value: Any) -> str:
    return f"{100 * float(value):.1f}%" if isinstance(value, (int, float)) else "—"


def body(record: dict[str, Any], repo_id: str, model_name: str, revision: str | None = None) -> str:
    sections = [_intro(record, model_name), _how(record), _data(record), _evaluation(record), _comparison(record),
                _usage(record, repo_id, revision), _limitations(record), _environment(record)]
    return "\n\n".join(s for s in sections if s) + "\n"


def _intro(record: dict[str, Any], model_name: str) -> str:
    return (f"# {model_name}\n\n{_task(record).card_summary(record)} adapted from "
            f"{source_name(record['model'])} with [transferkit](https://pypi.org/project/transferkit/) "
            f"{record.get('transferkit_version', '')}, using the `{record['strategy']['name']}` strategy.")


def _strategy_detail(strategy: dict[str, Any], resolved: dict[str, Any]) -> str:
    name = strategy["name"]
    if name == "lora":
        return f"LoRA rank {strategy.get('rank')}, alpha {strategy.get('alpha')}, on layer groups {strategy.get('groups')!r}"
    if name == "freeze":
        from ..strategies.base import lower_count

        groups = resolved.get("layer_groups") or []
        frozen = lower_count(len(groups), strategy.get("groups"), strategy.get("fraction", 0.5))
        return f"the lower {frozen} of {len(groups)} layer groups frozen, the rest trained"
    if name in ("linear-probe", "contrastive"):
        return "backbone frozen; only the new head trained" if name == "linear-probe" else \
            "body tuned contrastively on pairs, then a head fitted on its features"
    return "every layer trained, lower layers at lower learning rates" if name == "full" else name


def _extension(e: dict[str, Any]) -> str:
    """One line on how the classes were added (``adapt(previous, new, extend=True)``)."""
    p, n = e["protection"], e["examples"]
    protection = [name for name, on in (("feature rehearsal", p.get("feature_rehearsal") and n.get("pseudo_features")),
                                        ("distillation", p.get("distillation") and not e.get("head_only")),
                                        ("rehearsal", n.get("rehearsal")), ("exemplars", n.get("exemplars")),
                                        ("weight aligning", e.get("aligned_by"))) if on]
    return (f"round {e['round']}: {len(e['old_labels'])} -> {len(e['old_labels']) + len(e['new_labels'])} classes, "
            + ("head only (body frozen, old rows unchanged)" if e.get("head_only") else "body trained")
            + f"; protection: {', '.join(protection) or 'none'}")


def _how(record: dict[str, Any]) -> str:
    r, t, s = record["resolved"], record["training"], record["strategy"]
    trainable, total = r.get("trainable_parameters"), r.get("total_parameters")
    share = f" ({100 * trainable / total:.2f}%)" if trainable and total else ""
    solved = "solved" in str((r.get("schedule") or {}).get("reason", ""))
    rates = "— (the head was solved in closed form)" if solved else _rates(r.get("learning_rates") or {})
    rows = [["Base model", base_model_id(record["model"], r) or source_name(record["model"])],
            ["Family", record["family"]], ["Strategy", f"`{s['name']}`: {_strategy_detail(s, r)}"],
            ["Why this strategy", r.get("strategy_reason", "chosen by the user")],
            *([["Extension", _extension(r["extension"])]] if r.get("extension") else []),
            ["Trainable / total parameters", f"{trainable:,} / {total:,}{share}" if trainable and total else "—"],
            ["Learning rates", rates],
            ["Epochs run (best)", "— (no gradient steps on the head)" if solved
             else f"{r.get('epochs_run', '—')} ({r.get('best_epoch') or 'the last'})"],
            ["Batch size, seed", f"{t.get('batch_size')}, {t.get('seed')}"]]
    if record["modality"] == "text":
        rows.append(["Max length (tokens)", r.get("max_length", t.get("max_length"))])
    if record.get("threshold") is not None:
        rows.append(["Decision threshold", f"{record['threshold']:.2f} (tuned on the validation split)"])
    saved = record.get("saved_as", "merged")
    if saved == "peft-adapter":
        rows.append(["Saved as", "a peft LoRA adapter (load it on the base model; see below)"])
    return "## How it was adapted\n\n" + _table(["", ""], rows)


def _rates(rates: dict[str, float]) -> str:
    """Learning rates by value: 'head 1e-3; 6 backbone groups 1e-4', not one entry per group."""
    if not rates:
        return "—"
    by_value: dict[float, list[str]] = {}
    for name, value in rates.items():
        by_value.setdefault(value, []).append(name)
    return "; ".join(f"{names[0]} {v:.2g}" if len(names) == 1 else f"{len(names)} groups ({names[0]} ... {names[-1]}) {v:.2g}"
                     for v, names in by_value.items())


def _data(record: dict[str, Any]) -> str:
    counts = record["resolved"].get("data") or {}
    if not counts:
        return ""
    splits = [s for s in ("train", "validation") if counts.get(s) or counts.get(f"n_{s}")]
    word = _task(record).label_word
    rows = [[f"`{label}`"] + [counts[s].get(label, 0) for s in splits] for label in record["labels"]]
    rows.append([f"**total {_task(record).example_word}**"] + [counts.get(f"n_{s}", sum(counts[s].values()))
                                                                  for s in splits])
    note = " Multi-label: a row counts the examples that carry the label." if _multi(record) else ""
    held = (" The validation split took no training step; it picked the epoch whose weights were kept."
            if "validation" in splits else " No validation split was held out: every example trained the model.")
    what = f"Examples per {word} in each split the model saw." if record["labels"] else "Examples in each split."
    return f"## Data\n\n{what}{held}{note}\n\n" + _table([word] + splits, rows)


def _evaluation(record: dict[str, Any]) -> str:
    evaluation = latest_evaluation(record)
    if evaluation is None:
        return "## Evaluation\n\nNo held-out evaluation was recorded. Run `result.evaluate(test)` before saving."
    where = (f"on {evaluation['name']!s} ({evaluation.get('n') or '?'} {_task(record).example_word})")
    percent = _task(record).percent_metrics
    overall = _table(["metric", "value"], [[METRIC_NAMES.get(k, k), _pct(v) if k in percent else f"{v:.4g}"]
                                          for k, v in evaluation["metrics"].items()])
    text = f"## Evaluation\n\nScores {where}.\n\n{overall}"
    if evaluation.get("per_class"):
        rows = [[f"`{name}`", _pct(m["precision"]), _pct(m["recall"]), _pct(m["f1"]), m["support"]]
                for name, m in evaluation["per_class"].items()]
        word = "entity type" if _task(record).label_word == "tag" else _task(record).label_word
        text += f"\n\nPer {word}:\n\n" + _table([word, "precision", "recall", "F1", "support"], rows)
    return text


def _comparison(record: dict[str, Any]) -> str:
    comparison = record.get("comparison")
    if not comparison:
        return ""
    images = "\n\n".join(f"![{name.replace('_', ' ').removesuffix('.png')}]({name})" for name in comparison["images"])
    title = comparison.get("title", "Transfer compared with training from scratch and classic baselines")
    intro = comparison.get("intro", "`compare=True` trained every arm on the same splits and seeds:")
    return (f"## {title}\n\n{intro}\n\n"
            f"{comparison['table']}\n\n**Verdict:** {comparison['verdict']}" + (f"\n\n{images}" if images else ""))


def _usage(record: dict[str, Any], repo_id: str, revision: str | None = None) -> str:
    imports = "import transferkit\nfrom PIL import Image\n" if record["modality"] == "image" else "import transferkit\n"
    ours = (f"```python\n{imports}model = transferkit.load(\"hf-hub:{repo_id}\")\n"
            f"{_task(record).card_example(record)}\n```")
    branch = (f"\n\nThis model is on the `{revision}` branch: add `revision=\"{revision}\"` to the calls below "
              "(`transferkit.load`, `pipeline`, `from_pretrained`), or they read `main`."
              if revision not in (None, "main") else "")
    return f"## How to use{branch}\n\nWith transferkit:\n\n{ours}\n\n{_plain_usage(record, repo_id)}"


def _plain_usage(record: dict[str, Any], repo_id: str) -> str:
    if record.get("saved_as") == "peft-adapter":
        return ("Without transferkit, with peft: build the base model with its new head as transferkit did "
                f"(see `adapter_config.json`), then\n\n```python\nfrom peft import PeftModel\n"
                f"model = PeftModel.from_pretrained(base, \"{repo_id}\").eval()\n```")
    own = _task(record).card_usage(record, repo_id)
    if own is not None:
        return own
    if record["family"] == "timm":
        return ("Without transferkit, with timm:\n\n```python\nimport timm\nfrom PIL import Image\n"
                f"model = timm.create_model(\"hf-hub:{repo_id}\", pretrained=True).eval()\n"
                "transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))\n"
                "probs = model(transform(Image.open('photo.jpg').convert('RGB')).unsqueeze(0)).softmax(-1)\n"
                "print(model.pretrained_cfg['label_names'][probs.argmax()])\n```")
    remote = record["family"] == "encoder"
    text = ("Without transferkit, with transformers:\n\n```python\nfrom transformers import pipeline\n"
            f"classify = pipeline(\"text-classification\", model=\"{repo_id}\""
            f"{', trust_remote_code=True' if remote else ''})\nprint(classify('an example text'))\n```")
    if remote:
        text += ("\n\nThe classifier pools the encoder's tokens the way the base model was trained to be read "
                 "(its sentence-transformers pooling), which no built-in transformers class does; "
                 "`modeling_transferkit.py` in this repository holds that pooling and the head (read it before "
                 "trusting it). Without running any code from the repository, sentence-transformers returns the "
                 f"logits:\n\n```python\nfrom sentence_transformers import SentenceTransformer\n"
                 f"logits = SentenceTransformer(\"{repo_id}\").encode(['an example text'])\n```")
    return text


def _limitations(record: dict[str, Any]) -> str:
    r = record["resolved"]
    counts = (r.get("data") or {}).get("train") or {}
    points = _task(record).card_limits(record)
    word = _task(record).label_word
    if counts:
        low, high = min(counts.values()), max(counts.values())
        spread = f"{low} per {word}" if low == high else f"{low} to {high} per {word}"
        n = (r.get("data") or {}).get("n_train") or sum(counts.values())
        points.append(f"It was trained on {n} labelled examples ({spread})." + (" With this few, another draw of "
                      "examples can move the scores by several points: measure it on your own held-out data."
                      if low < 100 else ""))
    evaluation = latest_evaluation(record)
    if evaluation is not None and evaluation["split"] == "validation":
        points.append("The scores above come from the validation split carved from the training data, not from an "
                      "independent test set.")
    comparison = record.get("comparison")
    if comparison and not comparison["transfer_led"]:
        points.append(f"**Transfer learning did not win on this data**: `{comparison['leader']}` scored best. "
                      f"{comparison['verdict']}")
    elif comparison:
        points.append(f"Transfer led the comparison on this data. {comparison['verdict']}")
    base = base_model_id(record["model"], r)
    points.append(f"It inherits the biases, the domain and the licence terms of its base model{f' `{base}`' if base else ''}.")
    return ("## Intended use and limitations\n\nIntended for the task it was adapted to, on inputs like its "
            "training data.\n\n" + "\n".join(f"- {p}" for p in points))


def _environment(record: dict[str, Any]) -> str:
    r = record["resolved"]
    env = r.get("environment") or {}
    versions = ", ".join(f"{k} {v}" for k, v in (env.get("versions") or {}).items())
    seconds = r.get("train_seconds")
    rows = [["Trained", env.get("date", "—")], ["Machine", env.get("machine", "—")],
            ["Device, processes", f"{r.get('device', '—')}, {r.get('num_processes', 1)}"],
            ["Mixed precision", r.get("mixed_precision", record["training"].get("mixed_precision"))],
            ["Training time", f"{seconds:.1f} s" if isinstance(seconds, (int, float)) else "—"],
            ["Versions", f"Python {env.get('python', '?')}; {versions}" if versions else "—"]]
    return "## Environment\n\n" + _table(["", ""], rows)
