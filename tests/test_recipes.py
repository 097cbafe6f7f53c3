"""Every recipe runs as written in smoke mode (a tiny model on generated data of the same form), and the recipe
entry point reads its settings the way ``transferkit adapt --config`` does: one conversion to adapt()."""
import json
import math
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

import transferkit
from hub_server import ALICE, hub_env
from transferkit import recipe, smoke
from transferkit.data import read_dataset
from transferkit.errors import ConfigError
from transferkit.strategies import LoRA

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
SCRIPTS = ["image_folder", "sentiment_minilm", "gpt2_classification", "train_and_push"]
TASK_SCRIPTS = ["ner_orders", "domain_adaptation", "extend_classes"]  # not one adapt() call: tested one by one below
CONFIGS = ["text_csv", "multi_label"]
HELPERS = {"tweets", "readme_numbers"}  # in recipes/ but not recipes: shared data, the README's number paster


def _run(args, cwd, env=None):
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=300, cwd=cwd,
                          env=env)


def _metrics(stdout: str) -> dict[str, float]:
    """The metrics table a recipe prints: a "metric test" header, then one "name value" row per metric."""
    lines = stdout.strip().splitlines()
    assert lines and lines[0].split() == ["metric", "test"], stdout
    rows = [line.split() for line in lines[1:]]
    return {row[0]: float(row[1]) for row in rows if len(row) == 2 and not row[0].endswith(":")}


def test_every_recipe_is_smoke_tested():
    scripts = {p.stem for p in RECIPES.glob("*.py")} - HELPERS
    assert scripts == set(SCRIPTS) | set(TASK_SCRIPTS) and {p.stem for p in RECIPES.glob("*.yaml")} == set(CONFIGS)


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_recipe_smoke(name, tmp_path):
    extra = ["--push_to_hub=none"] if name == "train_and_push" else []  # its push is tested below
    run = _run([RECIPES / f"{name}.py", "--smoke", *extra], cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = _metrics(run.stdout)
    assert {"accuracy", "f1_macro", "loss"} <= set(metrics), run.stdout
    assert list(tmp_path.iterdir()) == []  # smoke writes only to a temporary folder, removed at the end


@pytest.mark.parametrize("name", CONFIGS)
def test_yaml_recipe_smoke(name, tmp_path):
    run = _run(["-m", "transferkit", "adapt", "--config", RECIPES / f"{name}.yaml", "--smoke", "--json"], cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    record = json.loads(run.stdout)
    multi = name == "multi_label"
    assert set(record["test_metrics"]) == ({"f1_micro", "f1_macro", "exact_match", "loss"} if multi
                                           else {"accuracy", "f1_macro", "loss"})


def test_push_recipe_pushes_the_trained_model(monkeypatch, capsys):
    """In process, with the upload replaced: the recipe's push settings reach result.push_to_hub."""
    calls = []

    def fake(self, repo_id, **options):
        calls.append((repo_id, options, self.labels))
        return f"https://huggingface.co/{repo_id}/commit/1"

    monkeypatch.setattr(transferkit.Adapted, "push_to_hub", fake)
    monkeypatch.setenv("HF_TOKEN", "hf_a_token")  # checked before training; the fake push never uses it
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # smoke pushes only to a hub other than huggingface.co
    monkeypatch.syspath_prepend(str(RECIPES))
    monkeypatch.setattr(sys, "argv", [str(RECIPES / "train_and_push.py"), "--smoke", "--push_to_hub=me/smoke"])
    runpy.run_path(str(RECIPES / "train_and_push.py"), run_name="__main__")
    assert calls == [("me/smoke", {"private": True, "commit_message": "tweet sentiment: linear probe on "
                                                                       "all-MiniLM-L6-v2"}, ["negative", "positive"])]
    assert capsys.readouterr().out.strip().endswith("pushed: https://huggingface.co/me/smoke/commit/1")


def test_push_recipe_smoke_uploads_to_the_hub_at_HF_ENDPOINT(tmp_path, hub):
    """The real upload, to the local test Hub (tests/hub_server.py) that HF_ENDPOINT points at."""
    run = _run([RECIPES / "train_and_push.py", "--smoke", "--push_to_hub=alice/smoke-recipe"], cwd=tmp_path,
               env=hub_env(hub, token=ALICE))
    assert run.returncode == 0, run.stderr[-3000:]
    assert "pushed: " in run.stdout and "alice/smoke-recipe" in run.stdout, run.stdout
    files = hub.files("alice/smoke-recipe")
    assert "transferkit.json" in files and "README.md" in files


# --- recipes of the other tasks ------------------------------------------------------------------------------------
def _blocks(stdout: str) -> list[list[str]]:
    """A task recipe's output: blocks of lines separated by blank lines (the metrics table first)."""
    return [block.splitlines() for block in stdout.strip().split("\n\n")]


def _table(lines: list[str]) -> dict[str, float]:
    assert lines[0].split() == ["metric", "test"], lines
    rows = [line.split() for line in lines[1:] if not line.startswith("saved")]
    assert all(len(row) == 2 for row in rows), lines
    return {name: float(value) for name, value in rows}


def _entities(lines: list[str]) -> dict[str, list[list[str]]]:
    """Each message (an unindented line) with its entity lines (indented: word(s), type, score)."""
    found: dict[str, list[list[str]]] = {}
    for line in lines:
        if not line.startswith("  "):
            found[line] = []
        elif line.strip() != "(no entities)":
            *words, kind, score = line.split()
            found[list(found)[-1]].append([" ".join(words), kind, score])
    return found


def test_ner_recipe_smoke(tmp_path):
    """Token classification on a tiny BERT: the entity scores, the per-type table, entities of the raw messages."""
    from transferkit.ner_data import ENTITY_TYPES

    run = _run([RECIPES / "ner_orders.py", "--smoke"], cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    metrics, per_type, predicted = _blocks(run.stdout)
    scores = _table(metrics)
    assert set(scores) == {"entity_f1", "entity_precision", "entity_recall", "token_accuracy", "loss"}
    assert all(0 <= scores[k] <= 1 for k in scores if k != "loss") and 0 < scores["loss"] < 10
    assert per_type[0].split() == ["type", "precision", "recall", "f1", "support"]
    rows = [line.split() for line in per_type[1:]]
    assert rows and {row[0] for row in rows} <= set(ENTITY_TYPES) and all(int(row[4]) >= 0 for row in rows)
    assert sum(int(row[4]) for row in rows) > 0  # the toy test messages hold entities
    entities = _entities(predicted)
    assert len(entities) == 3
    for text, found in entities.items():
        for word, kind, score in found:  # every entity is a span of its message, of a type the model learned
            assert word in text and kind in ENTITY_TYPES and 0 <= float(score) <= 1
    assert list(tmp_path.iterdir()) == []  # the CoNLL files, the model: all in the removed smoke folder


def test_extend_classes_recipe_smoke(tmp_path):
    """Two stages on a tiny timm model: the four-arm table, and the extended model's old / new / forgetting scores."""
    run = _run([RECIPES / "extend_classes.py", "--smoke"], cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    arms = [line.split("  ")[0] for line in run.stdout.splitlines()
            if line.startswith(("replace head", "extend, ", "joint training"))]
    assert arms == ["replace head", "extend, no protection", "extend, protected", "joint training"], run.stdout
    scores = json.loads(run.stdout.split("extended model on the test set:")[1].strip().splitlines()[0])
    assert {"accuracy", "accuracy_old_classes", "accuracy_new_classes", "forgetting"} <= set(scores)
    assert list(tmp_path.iterdir()) == []  # both model folders and the tables: in the removed smoke folder


def test_ner_recipe_real_path_on_a_tiny_bert(tmp_path, tiny_models):
    """The real run, its model swapped for a tiny one: CoNLL files written, the model saved and scored as printed."""
    from transferkit.tasks.token_data import read_conll

    run = _run([RECIPES / "ner_orders.py", f"--model={tiny_models['bert']}", "--epochs=1", "--max_length=32",
                "--batch_size=32"], cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = _blocks(run.stdout)[0]
    assert metrics[-1] == "saved: out/order-entities"
    words, _ = read_conll(tmp_path / "data/orders/train.conll")
    assert len(words) == 300 and len(read_conll(tmp_path / "data/orders/test.conll")[0]) == 200
    model = transferkit.load(tmp_path / "out/order-entities")
    assert model.task == "token_classification"
    evaluated = model.evaluate(str(tmp_path / "data/orders/test.conll"))
    assert {k: round(v, 4) for k, v in evaluated.items()} == pytest.approx(_table(metrics), abs=1e-4)


def test_domain_adaptation_recipe_smoke(tmp_path):
    """Causal-LM adaptation on a tiny GPT-2: perplexity beside the base model's, a continuation, the adapter's files."""
    run = _run([RECIPES / "domain_adaptation.py", "--smoke", "--adapter"], cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    metrics, after = _blocks(run.stdout)
    scores = _table(metrics)
    assert set(scores) == {"perplexity", "base_perplexity", "loss"}
    assert scores["perplexity"] == pytest.approx(math.exp(scores["loss"]), rel=1e-3)
    assert after[0] == f"held-out perplexity {scores['perplexity']:.2f} (base model: {scores['base_perplexity']:.2f})"
    assert after[1] == "prompt: Order #48213 for 2 x wireless mouse" and after[2].startswith("continuation: '")
    saved = after[3].removeprefix("adapter (not kept): ").split(", ")
    assert {"adapter_config.json", "adapter_model.safetensors", "transferkit.json"} <= set(saved)
    assert "model.safetensors" not in saved  # the adapter alone, not the merged weights
    assert list(tmp_path.iterdir()) == []


def test_domain_adaptation_real_path_on_a_tiny_gpt2(tmp_path, tiny_models):
    """The real run, its model swapped for a tiny one: the merged model and (--adapter) the adapter saved beside it,
    both loading back to the same continuation. (Fewer texts, as a text file: 400 take a minute on the tiny model.)"""
    from transferkit.testing import shipping_texts

    (tmp_path / "support.txt").write_text("\n".join(shipping_texts(40, seed=0)))
    run = _run([RECIPES / "domain_adaptation.py", f"--model={tiny_models['gpt2']}", "--adapter", "--epochs=1",
                "--data=support.txt", "--test_data=support.txt", "--max_length=64", "--batch_size=32"], cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    metrics, after = _blocks(run.stdout)
    assert metrics[-1] == "saved: out/shipping-lm" and after[-1] == "saved adapter: out/shipping-lm-adapter"
    merged, adapter = tmp_path / "out/shipping-lm", tmp_path / "out/shipping-lm-adapter"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "support.txt"]
    assert (merged / "model.safetensors").is_file() and not (merged / "adapter_config.json").exists()
    assert (adapter / "adapter_config.json").is_file() and not (adapter / "model.safetensors").exists()
    continuation = after[2].removeprefix("continuation: ")
    for folder in (merged, adapter):
        model = transferkit.load(folder)
        assert model.task == "causal_lm"
        assert repr(model.generate("Order #48213 for 2 x wireless mouse", max_new_tokens=24)) == continuation


def test_yaml_recipes_take_the_other_tasks(tmp_path, capsys):
    """task: token_classification / causal_lm in a YAML recipe, checked with --smoke: toy data of the task's form."""
    from transferkit.cli import main

    metrics = {"token_classification": {"entity_f1", "entity_precision", "entity_recall", "token_accuracy", "loss"},
               "causal_lm": {"perplexity", "base_perplexity", "loss"}}
    for task, data in (("token_classification", "data/orders/train.txt"), ("causal_lm", "data/support.txt")):
        config = tmp_path / f"{task}.yaml"
        config.write_text(f"model: some-model\ndata: {data}\ntest_data: {data}\ntask: {task}\nepochs: 3\n")
        assert main(["adapt", "--config", str(config), "--smoke", "--json"]) == 0
        assert set(json.loads(capsys.readouterr().out)["test_metrics"]) == metrics[task]


@pytest.mark.parametrize("settings,form,model", [
    ({"data": "d/train.conll"}, "conll", "tiny_bert"),  # no task: a .conll file is token classification
    ({"data": "d/train.txt", "task": "ner"}, "conll", "tiny_bert"),
    ({"data": {"tokens": [["a"]], "ner_tags": [["O"]]}}, "texts", "tiny_bert"),
    ({"data": "d/support.txt", "task": "causal_lm"}, "text-file", "tiny_gpt2"),
    ({"data": ["some text"], "task": "causal-lm"}, "texts", "tiny_gpt2"),
    ({"data": "d/support.jsonl", "task": "causal_lm", "input_column": "body"}, "jsonl", "tiny_gpt2"),
])
def test_smoke_picks_toy_data_that_fits_the_task(settings, form, model, tmp_path, monkeypatch):
    built = []
    monkeypatch.setattr(smoke, "_build_model", lambda name, folder: built.append(name) or folder)
    out = smoke.smoke_settings(recipe.normalize({"model": "m", **settings}), tmp_path)
    assert built == [model]
    task = smoke.smoke_task(out)
    examples = task.read(out["data"], settings.get("input_column"), None, require_labels=task.needs_labels)
    assert smoke.infer_form(out["data"], task.head) == form
    count = examples.inputs[0].count("\n") if form == "text-file" else len(examples.inputs)  # a file is one text
    assert count >= 16
    if task.head == "token":  # every tag of the eval and test splits is in the training split
        assert {t for tags in examples.raw_labels for t in tags} >= {
            t for seed in (1, 2) for tags in smoke.TOYS["token"].write("texts", tmp_path, "x", 20, seed, {})["ner_tags"]
            for t in tags}


def test_smoke_refuses_a_form_the_task_cannot_read(tmp_path):
    settings = recipe.normalize({"model": "m", "data": lambda: None, "task": "causal_lm",
                                 "smoke": {"data": "image-folder"}})
    with pytest.raises(ConfigError, match="does not fit task 'causal_lm'.*'text-file'"):
        smoke.smoke_settings(settings, tmp_path)


def test_the_token_toy_writes_every_suffix_the_tagger_reads():
    from transferkit.tasks.token_data import CONLL_SUFFIXES

    assert set(smoke.TOYS["token"].suffixes) == set(CONLL_SUFFIXES)


# --- the entry point ---------------------------------------------------------------------------------------------
def test_overrides_parse_as_values():
    overrides, flags = recipe.parse_recipe_argv(["--smoke", "--epochs=3", "--learning-rate=1e-3", "--strategy.rank=4",
                                                 "--early_stopping_patience=none", "--augment=false",
                                                 "--strategy.target_modules=[\"query\"]", "--data=data/x.csv"])
    assert flags == {"smoke": True, "json": False, "help": False}
    assert overrides == {"epochs": 3, "learning_rate": 0.001, "strategy.rank": 4, "early_stopping_patience": None,
                         "augment": False, "strategy.target_modules": ["query"], "data": "data/x.csv"}
    merged = recipe.merge({"strategy": "lora", "epochs": 1}, overrides)
    assert merged["strategy"] == {"name": "lora", "rank": 4, "target_modules": ["query"]}


@pytest.mark.parametrize("argv,message", [(["--epoch=3"], "Did you mean 'epochs'"), (["-x"], "--key=value"),
                                          (["--epochs"], "--key=value"), (["--model.rank=3"], "not a mapping")])
def test_bad_overrides_say_the_fix(argv, message):
    with pytest.raises(ConfigError, match=message):
        overrides, _ = recipe.parse_recipe_argv(argv)
        recipe.merge({"model": "m", "data": "d"}, recipe.normalize(overrides))


def test_yaml_and_python_settings_make_the_same_adapt_call(tmp_path, tiny_models, monkeypatch):
    """The CLI's --config and a recipe script share to_plan: the same settings give the same adapt() call."""
    monkeypatch.setenv("HF_TOKEN", "hf_a_token")  # a push is planned: to_plan checks a login exists
    data = smoke.write_toy("csv", tmp_path, "train", 4, 0, False, {})
    config = tmp_path / "r.yaml"
    config.write_text(f"model: {tiny_models['bert']}\ntrain: {data}\ntest: {data}\nstrategy: {{name: lora, rank: 4}}\n"
                      "learning-rate: 3e-4\nmax_length: 32\npush_to_hub: me/model\nprivate: true\n")
    from_yaml = recipe.to_plan(recipe.load_config(config))
    from_python = recipe.to_plan(dict(model=tiny_models["bert"], data=data, test_data=data,
                                      strategy={"name": "lora", "rank": 4}, learning_rate=3e-4, max_length=32,
                                      push_to_hub="me/model", private=True))
    assert from_yaml == from_python
    assert from_yaml.options["strategy"] == LoRA(rank=4) and from_yaml.options["learning_rate"] == 3e-4
    assert from_yaml.push == {"repo_id": "me/model", "private": True}


def test_functions_are_called_only_in_a_real_run(tmp_path, tiny_models):
    calls = []

    def data():
        calls.append(1)
        return {"text": ["good", "bad"] * 4, "label": ["positive", "negative"] * 4}

    settings = recipe.normalize({"model": tiny_models["bert"], "data": data, "smoke": {"data": "texts"}})
    swapped = smoke.smoke_settings(settings, tmp_path)
    assert calls == [] and isinstance(swapped["data"], dict) and swapped["epochs"] == 1
    assert recipe.to_plan(settings).data["label"][0] == "positive" and calls == [1]


def test_smoke_needs_to_know_the_form_of_computed_data(tmp_path):
    settings = recipe.normalize({"model": "m", "data": lambda: None})
    with pytest.raises(ConfigError, match="smoke=\\{'data': FORM\\}"):
        smoke.smoke_settings(settings, tmp_path)


@pytest.mark.parametrize("form,multi", [("image-folder", False), ("images", True), ("csv", False), ("jsonl", True),
                                        ("jsonl", False), ("texts", True)])
def test_toy_forms_read_back(form, multi, tmp_path):
    written = smoke.write_toy(form, tmp_path, "train", 3, 0, multi, {"input_column": "review"} if form == "csv" else {})
    examples = read_dataset(written)
    per_class_count = 2 if smoke.FORMS[form] == "text" and not multi else 3  # sentiment has 2 classes, topics 3
    assert len(examples) == 3 * per_class_count and examples.modality == smoke.FORMS[form]
    assert all(isinstance(y, list) for y in examples.raw_labels) == multi
    if form == "csv":
        assert examples.input_column == "review"


def test_smoke_never_pushes_to_the_public_hub(monkeypatch, tmp_path, capsys):
    """A tiny random model must not replace a real one: without a test hub in HF_ENDPOINT, smoke drops the push."""
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    settings = recipe.normalize({"model": "m", "data": "d.csv", "push_to_hub": "me/real-model", "private": True})
    out = smoke.smoke_settings(settings, tmp_path)
    assert "push_to_hub" not in out and "private" not in out
    assert "not pushing to 'me/real-model'" in capsys.readouterr().err
