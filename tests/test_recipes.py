"""Every recipe runs as written in smoke mode (a tiny model on generated data of the same form), and the recipe
entry point reads its settings the way ``transferkit adapt --config`` does: one conversion to adapt()."""
import json
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
    assert scripts == set(SCRIPTS) and {p.stem for p in RECIPES.glob("*.yaml")} == set(CONFIGS)


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
