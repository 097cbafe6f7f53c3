"""The Hub round trip, for real over HTTP: transferkit and the real ``huggingface_hub`` client against the
test server in ``hub_server.py`` (127.0.0.1, port 0, Xet off).

What must hold: the uploaded bytes are the saved files; the card's YAML parses, carries the metrics
and passes the server's validate-yaml; an unchanged re-upload sends no weights; every refusal (no
token, a bad token, another owner's name) is a TransferkitError saying what to do and never shows
the token; a pushed model loads back with ``transferkit.load("hf-hub:...")`` (any revision) and
predicts identically, and so it does in plain timm, in transformers' pipeline and in peft, run in a
subprocess that knows nothing of transferkit.
"""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import yaml

import transferkit
from conftest import toy_data
from hub_server import ALICE, BOB, hub_env
from transferkit import TransferkitError, adapt, load

TRAIN = dict(epochs=2, batch_size=8, seed=0, progress_bar=False)
TEXTS = ["good great wonderful match", "awful terrible sad pizza", "the band was very good"]


@pytest.fixture(scope="module")
def trained(tiny_models):
    cache = {}

    def get(kind, strategy="lora"):
        if (kind, strategy) not in cache:
            result = adapt(tiny_models[kind], toy_data(kind, "single_label", 8), strategy=strategy, **TRAIN)
            result.evaluate(toy_data(kind, "single_label", 4, seed=1), name="toy test set")
            cache[kind, strategy] = result
        return cache[kind, strategy]

    return get


def _lfs_puts(hub) -> int:
    return sum(1 for method, path in hub.requests if method == "PUT")


def test_push_uploads_the_saved_files_and_a_valid_card(hub, trained, tiny_models, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("HF_TOKEN", ALICE)
    result = trained("cnn")
    with caplog.at_level("DEBUG"):
        url = result.push_to_hub("alice/trucks", license="apache-2.0")
    assert ALICE not in caplog.text
    commit = hub.commits("alice/trucks")[-1]
    assert url.endswith(commit.oid) and "alice/trucks" in url
    local = result.save(tmp_path / "local", license="apache-2.0")
    remote = {k: v for k, v in hub.files("alice/trucks").items() if k != ".gitattributes"}  # the Hub's own file
    expected = {p.relative_to(local).as_posix(): p.read_bytes() for p in local.rglob("*") if p.is_file()}
    assert set(remote) == set(expected)
    assert all(remote[name] == data for name, data in expected.items() if name not in ("README.md", "transferkit.json"))
    # the run record goes up with local paths cut to their last component: nothing of this machine goes public
    from transferkit.hub import public_record

    assert json.loads(remote["transferkit.json"]) == public_record(json.loads(expected["transferkit.json"]))
    assert json.loads(remote["transferkit.json"])["model"] == "cnn"
    for data in remote.values():
        assert str(tmp_path).encode() not in data and tiny_models["cnn"].encode() not in data
    assert "model.safetensors" in commit.lfs_uploaded
    card = remote["README.md"].decode()
    meta = yaml.safe_load(card.split("---\n")[1])
    reported = {m["type"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert reported == {k: round(v, 4) for k, v in result.evaluations[-1]["metrics"].items() if k != "loss"}
    assert meta["license"] == "apache-2.0" and 'hf-hub:alice/trucks' in card
    assert hub.validated_yaml and all(text == card for text in hub.validated_yaml)
    assert not any(ALICE.encode() in data for data in remote.values()) and not hub.unhandled


def test_unchanged_reupload_sends_no_weights(hub, trained, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", ALICE)
    result = trained("cnn")
    result.push_to_hub("alice/trucks")
    commits, puts = len(hub.commits("alice/trucks")), _lfs_puts(hub)
    assert result.push_to_hub("alice/trucks")  # a URL, though there was nothing to commit
    assert _lfs_puts(hub) == puts
    assert all("model.safetensors" not in c.lfs_uploaded for c in hub.commits("alice/trucks")[commits:])


def test_pushing_a_folder_saved_earlier(hub, trained, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", ALICE)
    folder = trained("cnn").save(tmp_path / "saved-last-week")
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    url = transferkit.push_to_hub(folder, "alice/from-folder", datasets=["me/vehicles"], commit_message="v1")
    assert hub.commits("alice/from-folder")[-1].title == "v1" and url
    meta = yaml.safe_load(hub.files("alice/from-folder")["README.md"].decode().split("---\n")[1])
    assert meta["datasets"] == ["me/vehicles"]
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before  # the folder is left as it was
    with pytest.raises(TransferkitError, match="not a transferkit model folder"):
        transferkit.push_to_hub(tmp_path, "alice/x")


@pytest.mark.parametrize("token,repo,message", [
    (None, "alice/x", "no Hugging Face token found.*hf auth login"),
    ("hf_not_a_real_token", "alice/x", "refused the token.*401.*hf auth login"),
    (ALICE, "bob/x", "may not write to 'bob/x'.*Push to 'alice/x' instead"),
    (ALICE, "x", "has no owner: name the repository as 'your-name/x'"),
    (ALICE, "alice/bad name!", "not a Hub repository name"),
])
def test_refusals_say_what_to_do_and_never_show_the_token(hub, trained, token, repo, message, monkeypatch):
    if repo == "bob/x":
        hub.add_files("bob/x", {"config.json": b"{}"})  # the name is taken by another owner
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(TransferkitError, match=message) as caught:
        trained("cnn").push_to_hub(repo, token=token)
    assert token is None or token not in str(caught.value)
    if repo == "bob/x":
        assert set(hub.files("bob/x")) <= {"config.json", ".gitattributes"}  # bob's repository is untouched
    else:
        with pytest.raises(KeyError, match="has no model repo"):
            hub.files("alice/x")  # nothing was created


def test_load_from_the_hub_predicts_identically_at_any_revision(hub, trained, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", ALICE)
    lora, freeze = trained("bert"), trained("bert", "freeze")
    lora.push_to_hub("alice/tweets")
    freeze.push_to_hub("alice/tweets", revision="v2")
    np.testing.assert_allclose(load("hf-hub:alice/tweets").predict_proba(TEXTS), lora.predict_proba(TEXTS), atol=1e-6)
    np.testing.assert_allclose(load("hf-hub:alice/tweets", revision="v2").predict_proba(TEXTS),
                               freeze.predict_proba(TEXTS), atol=1e-6)
    with pytest.raises(TransferkitError, match="has no revision 'v9'"):
        load("hf-hub:alice/tweets", revision="v9")
    with pytest.raises(TransferkitError, match="no model 'alice/nothing' on the Hub"):
        load("hf-hub:alice/nothing")


PLAIN = textwrap.dedent("""
    import json, sys, torch, numpy as np
    images, texts, labels = torch.load(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3])
    import timm
    from peft import PeftModel
    from transformers import pipeline
    out = {}
    with torch.no_grad():
        model = timm.create_model("hf-hub:alice/cnn", pretrained=True).eval()
        out["timm"] = model(images).tolist()
        out["timm_labels"] = model.pretrained_cfg["label_names"]
        base = timm.create_model("hf-hub:alice/cnn-base", pretrained=True, num_classes=labels)
        out["peft"] = PeftModel.from_pretrained(base, "alice/cnn-adapter").eval()(images).tolist()
    for name, remote in (("bert", True), ("gpt2", False)):
        classify = pipeline("text-classification", model="alice/" + name, trust_remote_code=remote, top_k=None)
        out[name] = [{s["label"]: s["score"] for s in row} for row in classify(texts)]
    print("RESULT" + json.dumps(out))
""")


def test_plain_timm_transformers_and_peft_open_what_was_pushed(hub, trained, tiny_models, tmp_path, monkeypatch):
    from huggingface_hub import HfApi

    monkeypatch.setenv("HF_TOKEN", ALICE)
    cnn, bert, gpt2 = trained("cnn"), trained("bert"), trained("gpt2")
    cnn.push_to_hub("alice/cnn")
    HfApi().create_repo("alice/cnn-base")
    HfApi().upload_folder(repo_id="alice/cnn-base", folder_path=tiny_models["cnn"])  # a base model on the Hub
    from_hub = adapt("hf-hub:alice/cnn-base", toy_data("cnn", "single_label", 8), strategy="lora", **TRAIN)
    from_hub.push_to_hub("alice/cnn-adapter", merge_lora=False)
    assert json.loads(hub.files("alice/cnn-adapter")["adapter_config.json"])["base_model_name_or_path"] == \
        "alice/cnn-base"
    photos = [image for image, _ in toy_data("cnn", "single_label", 2, seed=5)]
    np.testing.assert_allclose(load("hf-hub:alice/cnn-adapter").predict_proba(photos), from_hub.predict_proba(photos),
                               atol=1e-5)  # transferkit rebuilds the base from the Hub and applies the adapter
    bert.push_to_hub("alice/bert")
    gpt2.push_to_hub("alice/gpt2")
    images = torch.rand(3, 3, 32, 32)
    torch.save(images, tmp_path / "images.pt")
    run = subprocess.run([sys.executable, "-c", PLAIN, str(tmp_path / "images.pt"), json.dumps(TEXTS),
                          str(len(cnn.labels))], env=hub_env(hub, token=ALICE), capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.split("RESULT", 1)[1])
    with torch.no_grad():
        ours, adapted_from_hub = cnn.model.eval()(images).numpy(), from_hub.model.eval()(images).numpy()
    np.testing.assert_allclose(out["timm"], ours, atol=1e-5)
    np.testing.assert_allclose(out["peft"], adapted_from_hub, atol=1e-4)
    assert out["timm_labels"] == cnn.labels
    for name, result in (("bert", bert), ("gpt2", gpt2)):
        theirs = np.array([[row[label] for label in result.labels] for row in out[name]])
        np.testing.assert_allclose(theirs, result.predict_proba(TEXTS), atol=1e-5)
    assert not hub.unhandled


def test_the_push_command_uploads_a_saved_folder(hub, trained, tmp_path, monkeypatch, capsys):
    from transferkit.cli import main

    monkeypatch.setenv("HF_TOKEN", ALICE)
    folder = trained("cnn").save(tmp_path / "saved")
    code = main(["push", str(folder), "alice/cli", "--license", "mit", "--dataset", "me/vehicles",
                 "--commit-message", "from the command line"])
    out = capsys.readouterr().out.strip()
    assert code == 0 and out.endswith(hub.commits("alice/cli")[-1].oid)
    meta = yaml.safe_load(hub.files("alice/cli")["README.md"].decode().split("---\n")[1])
    assert meta["license"] == "mit" and meta["datasets"] == ["me/vehicles"]
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    assert main(["push", str(folder), "alice/cli"]) == 2
    err = capsys.readouterr().err
    assert "hf auth login" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_repush_leaves_exactly_the_new_folder(hub, trained, monkeypatch):
    """Merged, then as an adapter: the old weights must go, or plain libraries would load the stale model."""
    monkeypatch.setenv("HF_TOKEN", ALICE)
    result = trained("cnn")
    result.push_to_hub("alice/switch")
    assert "model.safetensors" in hub.files("alice/switch")
    with pytest.raises(TransferkitError, match="not on the Hub, so nobody could load it"):
        result.push_to_hub("alice/switch", merge_lora=False)  # its base is a local folder
    hub.add_files("alice/switch", {"notes.txt": b"left by hand"})
    result.push_to_hub("alice/switch", commit_message="again")
    assert "notes.txt" not in hub.files("alice/switch") and "model.safetensors" in hub.files("alice/switch")


def test_private_is_kept_or_refused_never_ignored(hub, trained, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", ALICE)
    result = trained("cnn")
    result.push_to_hub("alice/secret", private=True)
    from huggingface_hub import HfApi

    assert HfApi().model_info("alice/secret", token=ALICE).private is True
    result.push_to_hub("alice/open")
    with pytest.raises(TransferkitError, match="already exists and is public; private=True cannot change that"):
        result.push_to_hub("alice/open", private=True)


def test_the_card_of_a_branch_says_so(hub, trained, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", ALICE)
    trained("bert").push_to_hub("alice/branchy", revision="v2")
    card = hub.files("alice/branchy", revision="v2")["README.md"].decode()
    assert 'revision="v2"' in card and "`v2` branch" in card
