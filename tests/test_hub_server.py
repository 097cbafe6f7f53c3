"""The test Hub itself, driven by the real ``huggingface_hub`` client over HTTP: what goes up comes back
byte for byte, LFS files go through the batch API and are not sent twice, the Hub's refusals come
back as the client's typed errors, and a subprocess pointed at it by ``hub_env`` (transformers
included) downloads from it. If one of these fails after a client upgrade, ``hub.unhandled`` and
``hub.requests`` show what the client now calls."""
from __future__ import annotations

import http.client
import os
import subprocess
import sys
from urllib.parse import urlsplit

import pytest

from hub_server import ALICE, BOB, hub_env

README = "---\nlicense: mit\ntags: [transferkit]\npipeline_tag: text-classification\n---\n# A tiny model\n"


def _api(hub, token=ALICE):
    from huggingface_hub import HfApi

    return HfApi(endpoint=hub.url, token=token)


def _folder(tmp_path, weights: bytes | None = None):
    """A model folder: a card, a text file, a nested file and two files the Hub sends through LFS."""
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "README.md").write_text(README)
    (folder / "config.json").write_text('{"hidden_size": 32}\n')
    (folder / "sub" / "notes.txt").write_text("nested\n")
    (folder / "model.safetensors").write_bytes(weights if weights is not None else os.urandom(3000))
    (folder / "training_args.bin").write_bytes(b"\0\1\2" * 100)
    return folder


def _disk(folder) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _puts(hub) -> list[str]:
    return [path for method, path in hub.requests if method == "PUT"]


def _status(excinfo) -> int:
    return excinfo.value.response.status_code


def test_create_repo_answers_409_with_its_url_and_exist_ok_passes(hub):
    from huggingface_hub.errors import HfHubHTTPError

    api = _api(hub)
    assert api.create_repo("alice/tiny") == f"{hub.url}/alice/tiny"
    with pytest.raises(HfHubHTTPError) as excinfo:
        api.create_repo("alice/tiny")
    assert _status(excinfo) == 409
    assert api.create_repo("alice/tiny", exist_ok=True).repo_id == "alice/tiny"
    assert api.create_repo("tiny2").repo_id == "alice/tiny2"  # no namespace: the token's user
    assert hub.files("alice/tiny") == {".gitattributes": hub.files("alice/tiny2")[".gitattributes"]}


def test_upload_folder_round_trips_and_sends_weights_through_lfs(hub, tmp_path):
    from huggingface_hub import hf_hub_download, snapshot_download

    folder = _folder(tmp_path)
    api = _api(hub)
    api.create_repo("alice/tiny")
    info = api.upload_folder(repo_id="alice/tiny", folder_path=folder, commit_message="first upload")

    last = hub.commits("alice/tiny")[-1]
    assert info.oid == last.oid and last.title == "first upload" and last.author == "alice"
    assert sorted(last.added) == sorted(_disk(folder))
    assert sorted(last.lfs_uploaded) == ["model.safetensors", "training_args.bin"]
    assert len(_puts(hub)) == 2
    files = hub.files("alice/tiny")
    assert {p: files[p] for p in _disk(folder)} == _disk(folder)
    assert hub.validated_yaml and hub.validated_yaml[-1] == README

    for path, data in _disk(folder).items():
        assert open(hf_hub_download("alice/tiny", path, endpoint=hub.url), "rb").read() == data
    snapshot = snapshot_download("alice/tiny", endpoint=hub.url, cache_dir=tmp_path / "snap")
    assert _disk(type(folder)(snapshot)) == files
    assert sorted(api.list_repo_files("alice/tiny")) == sorted(files)
    model = api.model_info("alice/tiny", files_metadata=True)
    assert model.sha == last.oid and model.pipeline_tag == "text-classification" and model.card_data.license == "mit"
    lfs = {s.rfilename: s.lfs for s in model.siblings}
    assert lfs["model.safetensors"].size == 3000 and lfs["config.json"] is None
    assert hub.unhandled == []


def test_unchanged_reupload_sends_no_weights_again(hub, tmp_path):
    folder = _folder(tmp_path)
    api = _api(hub)
    api.create_repo("alice/tiny")
    first = api.upload_folder(repo_id="alice/tiny", folder_path=folder)
    commits, puts = len(hub.commits("alice/tiny")), len(_puts(hub))

    again = api.upload_folder(repo_id="alice/tiny", folder_path=folder)  # nothing changed: no commit at all
    assert again.oid == first.oid and len(hub.commits("alice/tiny")) == commits and len(_puts(hub)) == puts

    (folder / "README.md").write_text(README + "\nMore words.\n")
    api.upload_folder(repo_id="alice/tiny", folder_path=folder)
    last = hub.commits("alice/tiny")[-1]
    assert last.added == ("README.md",) and last.lfs_uploaded == () and len(_puts(hub)) == puts


def test_a_token_the_hub_does_not_know_is_401(hub):
    from huggingface_hub.errors import HfHubHTTPError

    for call in (lambda api: api.whoami(), lambda api: api.create_repo("alice/tiny")):
        with pytest.raises(HfHubHTTPError) as excinfo:
            call(_api(hub, token="hf_not_a_token"))
        assert _status(excinfo) == 401


def test_a_write_without_a_token_is_401(hub, tmp_path):
    from huggingface_hub.errors import HfHubHTTPError

    hub.add_files("alice/tiny", {"config.json": b"{}"})
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(HfHubHTTPError) as excinfo:
        _api(hub, token=False).upload_file(path_or_fileobj=tmp_path / "f.txt", path_in_repo="f.txt",
                                           repo_id="alice/tiny")
    assert _status(excinfo) == 401


def test_writing_into_another_users_namespace_is_403(hub, tmp_path):
    from huggingface_hub.errors import HfHubHTTPError

    with pytest.raises(HfHubHTTPError, match="namespace") as excinfo:
        _api(hub, ALICE).create_repo("bob/tiny")
    assert _status(excinfo) == 403
    _api(hub, BOB).create_repo("bob/tiny")
    assert _api(hub, ALICE).create_repo("bob/tiny", exist_ok=True).repo_id == "bob/tiny"  # the client checks it exists
    with pytest.raises(HfHubHTTPError, match="logged in as alice") as excinfo:
        _api(hub, ALICE).upload_folder(repo_id="bob/tiny", folder_path=_folder(tmp_path))
    assert _status(excinfo) == 403
    assert len(hub.commits("bob/tiny")) == 1 and _puts(hub) == []


def test_a_private_repo_is_not_found_for_anyone_but_its_owner(hub):
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import RepositoryNotFoundError

    _api(hub, BOB).create_repo("bob/secret", private=True)
    hub.add_files("bob/secret", {"config.json": b'{"a": 1}'})
    for token in (False, ALICE):
        with pytest.raises(RepositoryNotFoundError):
            _api(hub, token).model_info("bob/secret")
        with pytest.raises(RepositoryNotFoundError):
            hf_hub_download("bob/secret", "config.json", endpoint=hub.url, token=token)
    path = hf_hub_download("bob/secret", "config.json", endpoint=hub.url, token=BOB)
    assert open(path, "rb").read() == b'{"a": 1}' and _api(hub, BOB).model_info("bob/secret").private


def test_missing_files_and_revisions_raise_the_clients_typed_errors(hub):
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RevisionNotFoundError

    hub.add_files("alice/tiny", {"config.json": b"{}"})
    with pytest.raises(EntryNotFoundError):
        hf_hub_download("alice/tiny", "missing.json", endpoint=hub.url)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download("alice/tiny", "config.json", revision="nope", endpoint=hub.url)
    with pytest.raises(RevisionNotFoundError):  # as on the Hub, a commit does not create its branch
        _api(hub).upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="alice/tiny", revision="nope")


def test_revision_reads_a_branch_or_a_commit(hub):
    from huggingface_hub import hf_hub_download

    api = _api(hub)
    api.create_repo("alice/tiny")
    old = api.upload_file(path_or_fileobj=b"v1", path_in_repo="w.txt", repo_id="alice/tiny").oid
    api.create_branch("alice/tiny", branch="dev")
    api.upload_file(path_or_fileobj=b"v2-dev", path_in_repo="w.txt", repo_id="alice/tiny", revision="dev")
    api.upload_file(path_or_fileobj=b"v3", path_in_repo="w.txt", repo_id="alice/tiny")

    def read(revision):
        return open(hf_hub_download("alice/tiny", "w.txt", revision=revision, endpoint=hub.url), "rb").read()

    assert (read("main"), read("dev"), read(old)) == (b"v3", b"v2-dev", b"v1")
    assert hub.files("alice/tiny", revision="dev")["w.txt"] == b"v2-dev"
    assert [b.name for b in api.list_repo_refs("alice/tiny").branches] == ["main", "dev"]
    assert [c.title for c in api.list_repo_commits("alice/tiny", revision="dev")][-1] == "initial commit"


def test_card_metadata_is_checked_and_recorded(hub, tmp_path):
    api = _api(hub)
    api.create_repo("alice/tiny")
    bad_yaml, local_path = "---\nlicense: [mit\n---\n", "---\nbase_model: /tmp/run/bert\n---\n"
    for card, message in ((bad_yaml, "invalid YAML"), (local_path, "local path")):
        (tmp_path / "README.md").write_text(card)
        with pytest.raises(ValueError, match=message):
            api.upload_file(path_or_fileobj=tmp_path / "README.md", path_in_repo="README.md", repo_id="alice/tiny")
    assert hub.validated_yaml == [bad_yaml, local_path] and len(hub.commits("alice/tiny")) == 1


def test_an_unknown_route_is_404_naming_it_and_head_has_no_body(hub):
    hub.add_files("alice/tiny", {"config.json": b"{}"})
    conn = http.client.HTTPConnection(urlsplit(hub.url).netloc, timeout=10)
    try:  # one kept-alive connection: a HEAD body would be read as the next reply's status line
        conn.request("HEAD", "/alice/tiny/resolve/main/missing.json")
        head = conn.getresponse()
        assert (head.status, head.getheader("X-Error-Code"), head.read()) == (404, "EntryNotFound", b"")
        conn.request("GET", "/api/not-a-route")
        reply = conn.getresponse()
        assert reply.status == 404 and b"GET /api/not-a-route" in reply.read()
    finally:
        conn.close()
    assert hub.unhandled == [("GET", "/api/not-a-route")]


def test_a_dataset_repo_uploads_and_downloads(hub):
    from huggingface_hub import hf_hub_download

    api = _api(hub)
    api.create_repo("alice/toy", repo_type="dataset")
    api.upload_file(path_or_fileobj=b"a,b\n1,2\n", path_in_repo="data.csv", repo_id="alice/toy", repo_type="dataset")
    path = hf_hub_download("alice/toy", "data.csv", repo_type="dataset", endpoint=hub.url)
    assert open(path, "rb").read() == b"a,b\n1,2\n" == hub.files("alice/toy", repo_type="dataset")["data.csv"]


def test_the_fixture_points_default_clients_at_the_server(hub, monkeypatch):
    """Code that names no endpoint (transferkit's own upload) reaches the test Hub, with HF_TOKEN."""
    from huggingface_hub import HfApi, hf_hub_download

    monkeypatch.setenv("HF_TOKEN", ALICE)
    HfApi().create_repo("alice/tiny")
    HfApi().upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id="alice/tiny")
    assert open(hf_hub_download("alice/tiny", "config.json"), "rb").read() == b"{}"
    assert hub.commits("alice/tiny")[-1].author == "alice"


def _run(code: str, env: dict) -> str:
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_a_subprocess_downloads_with_hub_env(hub, tmp_path):
    _api(hub).create_repo("alice/secret", private=True)
    hub.add_files("alice/secret", {"w.bin": b"\0weights"})
    code = ("from huggingface_hub import hf_hub_download\n"
            "print(open(hf_hub_download('alice/secret', 'w.bin'), 'rb').read())")
    assert _run(code, hub_env(hub, token=ALICE, home=tmp_path / "home")).strip() == repr(b"\0weights")
    assert (tmp_path / "home" / "hub" / "models--alice--secret").is_dir()


def test_transformers_from_pretrained_in_a_subprocess(hub, tmp_path):
    import transformers

    transformers.BertConfig(hidden_size=24, num_hidden_layers=1, num_attention_heads=2).save_pretrained(tmp_path / "c")
    _api(hub).create_repo("alice/bert-config")
    _api(hub).upload_folder(repo_id="alice/bert-config", folder_path=tmp_path / "c")
    code = ("import transformers\n"
            "c = transformers.AutoConfig.from_pretrained('alice/bert-config')\n"
            "print(type(c).__name__, c.hidden_size)")
    assert _run(code, hub_env(hub)).split() == ["BertConfig", "24"]
    assert hub.unhandled == []
