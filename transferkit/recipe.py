"""Recipes: a screen of settings over one entry point, as nanoGPT's config files over its one train script.

A recipe is a dict of settings (a Python script calling :func:`run`, or a YAML file given to
``transferkit adapt --config``). Both go through :func:`to_plan`, the one conversion from settings to
an ``adapt()`` call, so a YAML recipe and a script recipe with the same settings run the same way.

Settings are ``adapt()`` keyword arguments and ``TrainingConfig`` fields (``strategy``, ``epochs``,
``learning_rate``, ``image_size``, ...) plus the run's own keys: ``model``, ``data``, ``eval_data``,
``test_data`` (scored after training and printed), ``output_dir``, ``overwrite``, ``push_to_hub`` (a repo
id; with ``private``, ``revision``, ``commit_message``) and ``smoke`` (what smoke mode swaps in, see
:mod:`transferkit.smoke`). ``strategy`` is a name or a dict with its options, e.g.
``{"name": "lora", "rank": 4}``. A setting may be a function of no arguments: it is called only in a
real run, so smoke mode never loads what it replaces. Relative paths are read from the working folder.

Nothing heavy is imported here at module level: ``transferkit --help`` imports this module.
"""
from __future__ import annotations

import dataclasses
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from .errors import ConfigError, TransferkitError, did_you_mean

RUN_KEYS = ("model", "data", "eval_data", "test_data", "output_dir", "overwrite", "push_to_hub", "private",
            "revision", "commit_message", "license", "datasets", "smoke")
ALIASES = {"train": "data", "eval_dataset": "eval_data", "test_dataset": "test_data", "test": "test_data"}
# adapt() arguments a settings file cannot hold (objects) or that the keys above already carry
NOT_SETTINGS = {"model", "train", "eval_dataset", "test_dataset", "output_dir", "overwrite", "tokenizer"}
PUSH_OPTIONS = ("private", "revision", "commit_message", "license", "datasets")  # the last two: the model card


@dataclass
class Plan:
    """One run, ready: ``adapt(model, data, **options)``, then the test set scored, then the push."""

    model: Any
    data: Any
    options: dict[str, Any]
    test_data: Any = None
    push: dict[str, Any] | None = None  # {"repo_id": ..., "private": ..., ...} for result.push_to_hub


@dataclass
class Outcome:
    """What a run produced; ``main_process`` is False on the other ranks of a multi-process run."""

    result: Any
    metrics: dict[str, float] | None = None
    output_dir: str | None = None
    pushed: str | None = None
    main_process: bool = True


def known_keys() -> set[str]:
    """Every key a settings dict may hold."""
    import inspect

    from .api import adapt
    from .config import TrainingConfig

    params = set(inspect.signature(adapt).parameters) - NOT_SETTINGS - {"training_options"}
    return params | {f.name for f in dataclasses.fields(TrainingConfig)} | set(RUN_KEYS)


def normalize(settings: Mapping[str, Any], where: str = "settings") -> dict[str, Any]:
    """Keys with dashes read as underscores, aliases (``train``, ``eval_dataset``, ``test``) to their key, unknown
    keys refused with a suggestion: a typo must fail before an hour of training, not be ignored."""
    if not isinstance(settings, Mapping):
        raise ConfigError(f"{where} must be a mapping of setting names to values, got a {type(settings).__name__}.")
    known, out = known_keys(), {}
    for raw, value in settings.items():
        head, dot, option = str(raw).replace("-", "_").partition(".")  # strategy.rank: an option of a setting
        key = ALIASES.get(head, head) + dot + option
        if ALIASES.get(head, head) not in known:
            raise ConfigError(f"{where}: unknown setting {raw!r}.{did_you_mean(key, known)} Settings are adapt() "
                              f"options and {list(RUN_KEYS)}.")
        if key in out:
            raise ConfigError(f"{where}: {key!r} is given twice (as {raw!r} and under another name); keep one.")
        out[key] = _smoke_hints(value, where) if key == "smoke" and value is not None else value
    return out


def _smoke_hints(hints: Any, where: str) -> dict[str, Any]:
    """``smoke``: the tiny ``model`` and the toy ``data`` form (see :mod:`transferkit.smoke`), and settings to use."""
    if not isinstance(hints, Mapping):
        raise ConfigError(f"{where}: smoke must be a mapping such as {{'model': 'tiny_gpt2', 'data': 'texts'}}, "
                          f"got {hints!r}.")
    rest = normalize({k: v for k, v in hints.items() if k not in ("model", "data")}, where=f"{where}, smoke")
    return {**{k: hints[k] for k in ("model", "data") if k in hints}, **rest}


def merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``overrides`` over ``base``; a new ``strategy`` replaces the old one with its options, and a dotted key
    such as ``strategy.rank`` sets one option of a dict setting (a strategy name becomes ``{"name": ...}``)."""
    out = dict(base)
    for key, value in overrides.items():
        head, dot, option = key.partition(".")
        if not dot:
            out[key] = value
            continue
        current = out.get(head, "auto" if head == "strategy" else None)
        if isinstance(current, str) and head == "strategy":
            current = {"name": current}
        if not isinstance(current, Mapping):
            raise ConfigError(f"{key!r} sets an option of {head!r}, which is {current!r}, not a mapping of options.")
        out[head] = {**current, option.replace("-", "_"): value}
    return out


def to_plan(settings: Mapping[str, Any]) -> Plan:
    """The one conversion from settings to an ``adapt()`` call (used by recipes and ``transferkit adapt``)."""
    s = normalize(settings)
    s = {k: (v() if callable(v) and not isinstance(v, type) else v) for k, v in s.items() if k != "smoke"}
    missing = [k for k in ("model", "data") if s.get(k) in (None, "")]
    if missing:
        raise ConfigError(f"no {' or '.join(missing)} given: set {' and '.join(missing)} (in the recipe, in the YAML "
                          "file, or as arguments: transferkit adapt MODEL DATA).")
    turned_off = "push_to_hub" in s and not s["push_to_hub"]  # a recipe's --push_to_hub=none: its options stay unused
    repo = s.pop("push_to_hub", None) or None
    push_options = {k: s.pop(k) for k in PUSH_OPTIONS if k in s}
    if push_options and not repo and not turned_off:
        raise ConfigError(f"{sorted(push_options)} only apply to a push: add push_to_hub=REPO_ID, or drop them.")
    if repo is not None:
        from .hub import check_repo_id, check_token

        from .hub.card import check_datasets, check_license

        repo = check_repo_id(repo)  # a bad name, card option or no login fails now, not after training
        check_license(push_options.get("license"))
        check_datasets(push_options.get("datasets"))
        check_token(None)
    _check_inputs(s)
    model, data, test = s.pop("model"), s.pop("data"), s.pop("test_data", None)
    options = {k: v for k, v in s.items() if k != "eval_data"}
    options["eval_dataset"], options["test_dataset"] = s.get("eval_data"), test
    options["strategy"] = _strategy(s.get("strategy", "auto"))
    _check_training(options)
    if isinstance(options.get("compare"), Mapping):
        from .evidence import CompareConfig

        options["compare"] = CompareConfig(**options["compare"])
    return Plan(model, data, options, test, {"repo_id": repo, **push_options} if repo else None)


def _check_inputs(s: Mapping[str, Any]) -> None:
    """Missing data files and unknown model names fail here, in one line, before any data is read or model loaded."""
    for key in ("data", "eval_data", "test_data"):
        check_data_path(s.get(key), key)
    task = None
    if s.get("task") is not None:
        from .tasks import get_task

        task = get_task(s["task"])  # a misspelt task fails now, with the registered names, before any note
    if isinstance(s["model"], (str, Path)):
        from .backbones.base import resolve_family

        family, _ = resolve_family(str(s["model"]), bool(s.get("trust_remote_code")))
        if task is not None:
            family.check_task(task, s["model"])  # e.g. an encoder asked for causal_lm, refused before loading


def check_data_path(value: Any, name: str) -> None:
    """A dataset given as a path must exist (other forms, such as a dict of columns, are adapt()'s to check)."""
    if isinstance(value, (str, Path)) and not Path(value).expanduser().exists():
        from .errors import DataError

        raise DataError(f"{name} {str(value)!r} does not exist (resolved from {Path.cwd()}): give a folder with one "
                        "folder per class, a CSV or JSONL file, a CoNLL file (token classification) or a text file "
                        "(causal LM).")


def _check_training(options: Mapping[str, Any]) -> None:
    """The training options' own checks (ranges, kinds), run now: a bad value fails before anything is printed."""
    from .config import TrainingConfig

    fields = {f.name for f in dataclasses.fields(TrainingConfig)}
    TrainingConfig(**{k: v for k, v in options.items() if k in fields})


def _strategy(spec: Any) -> Any:
    """A name stays a name; a dict with options becomes the typed strategy; both checked now, before loading."""
    from .strategies import strategy_from

    if isinstance(spec, Mapping):
        return strategy_from(dict(spec))
    strategy_from(spec)  # an unknown name fails here, before any note or loading
    return spec


def execute(plan: Plan) -> Outcome:
    """Train, score the test set on the main process, then push (the model is saved by adapt itself).

    ``push_to_hub`` is called on every process: it uploads from the main one and hands every
    process the URL, so no process waits on another that never comes.
    """
    from . import adapt

    if plan.options.get("output_dir") is None and not plan.push and _main_process():
        print("note: no output folder (--output-dir / output_dir): the trained model will not be kept, only its "
              "scores printed.", file=sys.stderr)  # said before training, not after an hour of it
    result = adapt(plan.model, plan.data, **plan.options)
    main = _main_process()
    metrics = None
    if main and plan.test_data is not None:  # adapt() scored it already, except under compare
        metrics = (result.evaluations[-1]["metrics"] if result.evaluations
                   else result.evaluate(plan.test_data, name="the test data"))
    pushed = None
    if plan.push:
        options = dict(plan.push)
        pushed = result.push_to_hub(options.pop("repo_id"), **options)  # Hub errors arrive as TransferkitError
    if not main:
        return Outcome(result, main_process=False)
    out = plan.options.get("output_dir")
    return Outcome(result, metrics, str(out) if out is not None else None, str(pushed) if pushed else None)


def _main_process() -> bool:
    """Whether this is the process that prints and pushes (rank 0; every process in a single-process run)."""
    from accelerate import PartialState

    return PartialState().is_main_process


# --- reading settings ----------------------------------------------------------------------------------------------
def parse_value(text: str) -> Any:
    """A command-line value as what it looks like: none/null, true/false, an int, a float (1e-3 too), a JSON list or
    mapping, else the string itself."""
    low = text.strip().lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    if text.strip()[:1] in ("[", "{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{text!r} looks like JSON but is not valid ({exc.msg}); quote it for the shell, "
                              "e.g. '[\"query\", \"value\"]'.") from None
    return text


def parse_assignment(text: str, flag: str) -> tuple[str, Any]:
    """``key=value`` (from ``--flag key=value`` or a recipe's ``--key=value``) -> (key, parsed value)."""
    key, eq, value = text.partition("=")
    if not eq or not key.strip():
        raise ConfigError(f"{flag} takes KEY=VALUE, got {text!r}: e.g. {flag} rank=4.")
    return key.strip().replace("-", "_"), parse_value(value)


def load_config(path: str | Path) -> dict[str, Any]:
    """A YAML file of settings, normalized. ``1e-3`` reads as a number (plain YAML 1.1 reads it as a string)."""
    import yaml

    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"config file {str(path)!r} not found (resolved from {Path.cwd()}).")

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver("tag:yaml.org,2002:float",
                                 re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
                                 list("-+0123456789."))
    try:
        data = yaml.load(file.read_text(encoding="utf-8"), Loader=Loader)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{str(path)!r} is not UTF-8 (offset {exc.start}): re-save it as UTF-8.") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{str(path)!r} is not valid YAML{where} ({getattr(exc, 'problem', None) or exc}).") from None
    return normalize(data if data is not None else {}, where=str(path))


def parse_recipe_argv(argv: list[str]) -> tuple[dict[str, Any], dict[str, bool]]:
    """A recipe's command line: ``--smoke``, ``--json``, ``--help`` and ``--key=value`` overrides."""
    overrides, flags = {}, {"smoke": False, "json": False, "help": False}
    for arg in argv:
        name = arg[2:].replace("-", "_") if arg.startswith("--") else None
        if name in flags:
            flags[name] = True
        elif name and "=" in name:
            key, value = parse_assignment(arg[2:], "--KEY=VALUE")
            overrides[key] = value
        else:
            raise ConfigError(f"cannot read {arg!r}: a recipe takes --smoke, --json, --help and --key=value overrides "
                              "such as --epochs=3 or --strategy.rank=4.")
    return overrides, flags


# --- running ------------------------------------------------------------------------------------------------------
def run_settings(settings: Mapping[str, Any], smoke: bool = False, as_json: bool = False) -> Outcome:
    """Run one recipe (or ``transferkit adapt``): smoke swaps, ``to_plan``, ``execute``, then the results on stdout."""
    if not smoke:
        outcome = execute(to_plan(settings))
    else:
        import tempfile

        from .smoke import smoke_settings

        with tempfile.TemporaryDirectory(prefix="transferkit-smoke-") as folder:
            outcome = execute(to_plan(smoke_settings(normalize(settings), Path(folder))))
            outcome.output_dir = None  # the smoke folder is gone after this block
    if outcome.main_process:
        print_outcome(outcome, as_json)
    return outcome


def run(settings: Mapping[str, Any], argv: list[str] | None = None) -> Outcome:
    """A recipe script's entry point: ``--smoke``, ``--json`` and ``--key=value`` from ``argv`` (default
    ``sys.argv[1:]``) over ``settings``; errors print one line and exit with status 2."""
    argv = sys.argv[1:] if argv is None else list(argv)
    prog = Path(sys.argv[0]).name or "recipe"
    try:
        overrides, flags = parse_recipe_argv(argv)
        if flags["help"]:
            print(recipe_help(settings, prog))
            raise SystemExit(0)
        merged = merge(normalize(settings), normalize(overrides, where="the command line"))
        return run_settings(merged, smoke=flags["smoke"], as_json=flags["json"])
    except TransferkitError as exc:
        print_error(prog, exc)
        raise SystemExit(2) from None


def print_error(prog: str, exc: BaseException) -> None:
    """The one line an error becomes on stderr: the program, then the message (which names the fix)."""
    print(f"{prog}: error: {' '.join(str(exc).split())}", file=sys.stderr)


def recipe_help(settings: Mapping[str, Any], prog: str) -> str:
    doc = (sys.modules["__main__"].__doc__ or "").strip()
    lines = [f"usage: python {prog} [--smoke] [--json] [--KEY=VALUE ...]", ""] + ([doc, ""] if doc else [])
    lines.append("settings (override any with --KEY=VALUE, an option of a mapping with --KEY.OPTION=VALUE):")
    width = max((len(k) for k in settings), default=0)
    lines += [f"  {k.ljust(width)}  {_shown(v)}" for k, v in settings.items()]
    lines += ["", "--smoke  a tiny model on generated data of the same form, in seconds (a check, not a result)",
              "--json   print the results as JSON"]
    return "\n".join(lines)


def _shown(value: Any) -> str:
    if callable(value):
        return f"<computed by {getattr(value, '__name__', 'a function')}()>"
    return repr(value)


# --- printing -----------------------------------------------------------------------------------------------------
def print_outcome(outcome: Outcome, as_json: bool = False) -> None:
    """Results only, on stdout: the test metrics (a table or JSON), where the model went, the push URL."""
    comparison = getattr(outcome.result, "comparison", None)
    if as_json:
        record = {"test_metrics": outcome.metrics, "output_dir": outcome.output_dir, "pushed": outcome.pushed,
                  "strategy": outcome.result.config.strategy.get("name"),
                  "comparison": comparison.to_dict() if comparison is not None else None}
        print(json.dumps(record, indent=2, default=float))
        return
    if comparison is not None:
        print(f"{comparison}\n")
    if outcome.metrics is not None:
        print(metrics_table(outcome.metrics, "test"))
    elif outcome.output_dir or outcome.pushed:
        print("no test data given, so no test metrics: score the model with transferkit evaluate DIR DATA",
              file=sys.stderr)
    else:
        print("no test data and no output folder: the trained model was not kept. Give test_data (--test-data) "
              "to score it, output_dir (--output-dir) to save it.", file=sys.stderr)
    if outcome.output_dir:
        print(f"saved: {outcome.output_dir}")
    if outcome.pushed:
        print(f"pushed: {outcome.pushed}")


def metrics_table(metrics: Mapping[str, float], column: str = "value") -> str:
    width = max(len("metric"), *(len(k) for k in metrics))
    rows = [f"{'metric'.ljust(width)}  {column}"] + [f"{k.ljust(width)}  {v:.4f}" for k, v in metrics.items()]
    return "\n".join(rows)


def main_guard(call: Callable[[], int | None], prog: str) -> int:
    """Run ``call``; a TransferkitError or an OS error (a missing file, a full disk) becomes one line on stderr."""
    try:
        return call() or 0
    except TransferkitError as exc:
        print_error(prog, exc)
        return 2
    except BrokenPipeError:  # `transferkit list-models | head`: the reader left; exit as Unix tools do, silently
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 141
    except OSError as exc:
        what = f"{exc.strerror or exc}" + (f": {exc.filename!r}" if getattr(exc, "filename", None) else "")
        print(f"{prog}: error: {what}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
