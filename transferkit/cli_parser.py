"""The ``transferkit`` command's arguments and help text (the commands themselves are in :mod:`transferkit.cli`).

Help is plain words (no reST), and a usage mistake is one line naming the fix, never argparse's usage block.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from .errors import did_you_mean

DESCRIPTION = """Transfer a pretrained image or text network to a new task: train, evaluate, predict, compare
against training from scratch and classic machine learning, and push to the Hugging Face Hub.
Results go to stdout; progress and logs go to stderr."""
EPILOG = """examples:
  transferkit adapt packaged:efficientnet_lite0 data/trucks/train --test-data data/trucks/test --output-dir out/trucks
  transferkit adapt --config recipes/text_csv.yaml --epochs 3
  transferkit predict out/trucks photos/ --json | jq '.[0]'
  transferkit adapt packaged:all-MiniLM-L6-v2 train.conll --task token_classification --output-dir out/ner
  transferkit adapt packaged:SmolLM2-135M-Instruct support.txt --task causal_lm --output-dir out/lm
  transferkit generate out/lm "Your order #48213" --max-new-tokens 40
  accelerate launch -m transferkit adapt ...   (several processes or GPUs: the same command)
run "transferkit COMMAND --help" for a command's options."""


TASKS = "{tasks}"  # in a help text: the registered task names, filled in when the help is shown


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error that says where the help is, and a suggestion for a mistyped command."""

    def format_help(self) -> str:
        if any(TASKS in (action.help or "") for action in self._actions):
            from .tasks import task_names  # imports torch: paid when this help is shown, not on every command

            for action in self._actions:
                if action.help:
                    action.help = action.help.replace(TASKS, ", ".join(task_names()))
        return super().format_help()

    def error(self, message: str) -> None:
        if "invalid choice" in message and self.prog == "transferkit":
            typed = message.split("invalid choice: ", 1)[1].split(" ", 1)[0].strip("'")
            message = (f"unknown command {typed!r}.{did_you_mean(typed, COMMAND_HELP)} "
                       f"Commands: {', '.join(COMMAND_HELP)}")
        print(f"{self.prog}: error: {message} (see: {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


COMMAND_HELP = {
    "adapt": "train MODEL on DATA (a folder per class, a CSV or JSONL file, a CoNLL file, a text file) and save it; "
             "prints the test metrics",
    "evaluate": "score a saved model on labelled data (a causal LM: on text, beside the base model's perplexity)",
    "predict": "predict with a saved model: image files or folders, or lines of text from a file or stdin "
               "(a tagger prints the entities of each text)",
    "generate": "continue a prompt with a saved causal LM (adapt --task causal_lm); prints the continuation",
    "compare": "transfer against the same network from scratch and classic machine learning; writes an HTML report",
    "push": "upload a saved model folder to the Hugging Face Hub; prints the commit URL",
    "list-models": "model names that match a pattern: timm architectures, packaged models, common Hub ids",
    "env": "versions, devices and the offline assets found, for bug reports",
    "demo": "offline demo: real pretrained weights on real data vs from-scratch and classic ML",
}


def build_parser(commands: dict[str, Callable]) -> Parser:
    from . import __version__

    # allow_abbrev=False: a misspelt --epoch must fail, not be read as --epochs (recipes refuse it too)
    parser = Parser(prog="transferkit", description=DESCRIPTION, epilog=EPILOG, allow_abbrev=False,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"transferkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    adders = {"adapt": _adapt, "evaluate": _evaluate, "predict": _predict, "generate": _generate, "compare": _compare,
              "push": _push, "list-models": _list_models, "env": _env, "demo": _demo}
    parser.commands = {}
    for name, text in COMMAND_HELP.items():
        p = sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".", allow_abbrev=False)
        adders[name](p)
        p.set_defaults(handler=commands[name])
        parser.commands[name] = p
    return parser


def _training_options(p: argparse.ArgumentParser) -> None:
    """What adapt and compare share: the strategy, the schedule, the data columns, the extra datasets."""
    g = p.add_argument_group("training")
    g.add_argument("--strategy", metavar="NAME", help="auto (default), linear-probe, contrastive, freeze, lora or full")
    g.add_argument("--strategy-option", action="append", metavar="KEY=VALUE",
                   help="an option of the strategy, repeatable: --strategy lora --strategy-option rank=4 "
                        "--strategy-option groups=upper")
    g.add_argument("--task", metavar="TASK",
                   help=f"one of {TASKS} (default: detected from the data: a .conll file is token_classification, "
                        "lists of labels multi_label, else single_label; causal_lm is never guessed)")
    g.add_argument("--epochs", metavar="N", type=int,
                   help="epochs to train (default: a step budget from the data size)")
    g.add_argument("--max-steps", metavar="N", type=int, help="optimizer steps to train at most")
    g.add_argument("--batch-size", metavar="N", type=int, help="examples per batch (default 16)")
    g.add_argument("--learning-rate", metavar="LR", type=float,
                   help="the new head's learning rate (default 0.001); the strategy derives the backbone's lower "
                        "rates from it")
    g.add_argument("--seed", metavar="N", type=int, help="random seed (default 0)")
    g.add_argument("--mixed-precision", choices=["no", "fp16", "bf16"],
                   help="default: the launch config's (accelerate launch --config_file), else no")
    g.add_argument("--max-length", metavar="TOKENS", type=int, help="text models: tokens per input (default 128)")
    g.add_argument("--image-size", metavar="PIXELS", type=int,
                   help="image models: input size in pixels (default: the weights' own)")
    g.add_argument("--auto-budget", metavar="BUDGET",
                   help="what strategy auto may try: best (default), fast, or seconds of training")
    g.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help="any other adapt() option, repeatable: --option early_stopping_patience=none "
                        "--option weight_decay=0.05")
    d = p.add_argument_group("data")
    d.add_argument("--eval-data", metavar="PATH",
                   help="a validation set for early stopping and the best epoch (default: a share of DATA is held out)")
    d.add_argument("--test-data", metavar="PATH", help="a held-out test set, scored after training")
    d.add_argument("--input-column", metavar="NAME", help="the column that holds the inputs in a CSV or JSONL file")
    d.add_argument("--label-column", metavar="NAME", help="the column that holds the labels")


def _adapt(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", metavar="MODEL",
                   help="a timm name (resnet50), a Hugging Face id (bert-base-uncased, gpt2), a packaged name "
                        "(packaged:all-MiniLM-L6-v2) or a model folder")
    p.add_argument("data", nargs="?", metavar="DATA",
                   help="a folder with one folder per class, or a CSV or JSONL file; token_classification: a CoNLL "
                        "file (a word and its tag per line, a blank line between sentences); causal_lm: a text file, "
                        "or a CSV or JSONL file with a text column")
    p.add_argument("--config", metavar="FILE", help="a YAML file of settings (adapt() options and model, data, "
                                                    "test_data, output_dir, push_to_hub); flags given here override it")
    _training_options(p)
    o = p.add_argument_group("output")
    o.add_argument("--output-dir", metavar="DIR", help="save the trained model to this folder")
    o.add_argument("--overwrite", action="store_true", default=None,
                   help="replace a model folder transferkit wrote before (never a folder it did not write)")
    o.add_argument("--resume", action="store_true", default=None,
                   help="continue an interrupted run from its checkpoint in --output-dir (see --option save_every=N)")
    o.add_argument("--push-to-hub", metavar="REPO", help="upload the trained model to this Hub repo (your-name/model)")
    _push_options(o)
    o.add_argument("--compare", action="store_true", default=None,
                   help="also train the same network from scratch and classic baselines, and print the comparison")
    e = p.add_argument_group("adding classes")
    e.add_argument("--extend", action="store_true", default=None,
                   help="add DATA's classes to MODEL, a classifier transferkit trained (its folder or hf-hub: id), "
                        "keeping the old ones (with --compare: the four-arm table; needs --test-data)")
    e.add_argument("--keep-exemplars", metavar="N", type=int,
                   help="keep N training examples per class with the model, rehearsed when it is extended later")
    o.add_argument("--json", action="store_true", help="print the results as JSON")
    o.add_argument("--smoke", action="store_true",
                   help="check the command or config in seconds: a tiny model on generated data of the same form")


def _push_options(g) -> None:
    g.add_argument("--private", action="store_true", default=None, help="create the Hub repo as private")
    g.add_argument("--revision", metavar="BRANCH", help="the branch to push to (default: main)")
    g.add_argument("--commit-message", metavar="TEXT", help="the commit message on the Hub")
    g.add_argument("--license", metavar="ID", help="the licence in the model card, a Hub licence id such as apache-2.0")
    g.add_argument("--dataset", dest="datasets", action="append", metavar="ID",
                   help="a Hub dataset id the model was trained on, for the model card (repeatable)")


def _compare(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="the pretrained model, as for adapt")
    p.add_argument("data", metavar="DATA", help="the labelled data, as for adapt")
    _training_options(p)
    c = p.add_argument_group("comparison")
    c.add_argument("--seeds", metavar="N", type=int,
                   help="seeds per arm (default: 3 below 100 examples per class, else 1)")
    c.add_argument("--no-scratch", action="store_true", help="leave out the network trained from scratch")
    c.add_argument("--no-classic", action="store_true", help="leave out the classic machine-learning baselines")
    c.add_argument("--output-dir", metavar="DIR", default="compare-output",
                   help="where report.html, report.md and results.json go (default: compare-output)")


def _evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("model_dir", metavar="DIR", help="a folder saved by transferkit (adapt --output-dir)")
    p.add_argument("data", metavar="DATA",
                   help="data in a form adapt reads: a folder per class, a CSV or JSONL file, a CoNLL file (a tagger), "
                        "a text file (a causal LM)")
    p.add_argument("--batch-size", metavar="N", type=int, default=32, help="examples per batch (default 32)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")


def _predict(p: argparse.ArgumentParser) -> None:
    p.add_argument("model_dir", metavar="DIR", help="a folder saved by transferkit (adapt --output-dir)")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="image models: image files or folders of images; text models: text files, one input per "
                        "line (a tagger also reads the sentences of a CoNLL file); - reads stdin (lines of text, or "
                        "image paths)")
    p.add_argument("--batch-size", metavar="N", type=int, default=32, help="inputs per batch (default 32)")
    p.add_argument("--json", action="store_true",
                   help="print a JSON list: one record per input with input, label, score (a tagger: input and "
                        "entities, each with entity_group, word, start, end, score)")


def _generate(p: argparse.ArgumentParser) -> None:
    p.add_argument("model_dir", metavar="DIR", help="a folder saved by transferkit adapt --task causal_lm")
    p.add_argument("prompt", metavar="PROMPT", help="the text to continue; - reads it from stdin")
    p.add_argument("--max-new-tokens", metavar="N", type=int, default=50,
                   help="tokens to generate at most (default 50)")
    p.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help="an option of transformers' generate(), repeatable: --option do_sample=true --option "
                        "top_p=0.9 (default: greedy decoding)")
    p.add_argument("--json", action="store_true", help="print a JSON object with prompt and continuation")


def _push(p: argparse.ArgumentParser) -> None:
    p.add_argument("model_dir", metavar="DIR", help="a folder saved by transferkit")
    p.add_argument("repo_id", metavar="REPO", help="the Hub repo, your-name/model-name (created if missing)")
    _push_options(p)
    p.epilog = "The token comes from HF_TOKEN or from `hf auth login`; HF_ENDPOINT selects another hub."


def _list_models(p: argparse.ArgumentParser) -> None:
    p.add_argument("pattern", nargs="?", default="*", metavar="PATTERN",
                   help="a shell-style pattern such as 'resnet*' or '*bert*' (default: every name)")
    p.add_argument("--pretrained", action="store_true",
                   help="timm: list the names with pretrained weights (such as resnet50.a1_in1k)")


def _env(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print as JSON")


def _demo(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true",
                   help="the smallest labelled-set size only (about 10 minutes on 2 CPU cores)")
    p.add_argument("--output-dir", metavar="DIR", default="demo-output",
                   help="where report.html and report.md go (default: demo-output)")
