"""A Hugging Face Hub-compatible server on 127.0.0.1 for the tests: the real ``huggingface_hub`` client
(and transformers, timm, peft on top of it) uploads to it and downloads from it over real HTTP.

    with HubServer(tokens={"hf_alice_token": "alice"}) as hub:
        HfApi(endpoint=hub.url, token="hf_alice_token").upload_folder(...)
        hub.files("alice/repo")            # {path: bytes} on main
        hub.commits("alice/repo")[-1]      # .added, .lfs_uploaded: what the last commit wrote and PUT

In a test, the ``hub`` fixture (conftest.py) gives a running server with this process's client pointed at it
(offline mode off, Xet off, an isolated HF_HOME); ``hub_env(hub)`` is the environment for a
subprocess, the simplest way to run transformers/timm/peft against it, since ``huggingface_hub``
reads HF_ENDPOINT once, at import. The routes and the rules they follow are in hub_routes.py.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
import traceback
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator
from urllib.parse import parse_qs, unquote, urlsplit

from hub_routes import Commit, HubError, HubState, Reply, dispatch

ALICE, BOB = "hf_alice_token", "hf_bob_token"
TOKENS = {ALICE: "alice", BOB: "bob"}
# Variables that would send a subprocess elsewhere than the test Hub, or lend it a real token.
_FOREIGN_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE", "HF_HUB_ENABLE_HF_TRANSFER",
                "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE",
                "HF_XET_CACHE", "HF_ASSETS_CACHE", "HF_TOKEN_PATH", "HF_STORED_TOKENS_PATH")


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive, as the Hub: every reply has a Content-Length, every body is read
    in full before routing, and a HEAD reply carries no body (else the next reply on the kept-alive
    connection is corrupted)."""

    protocol_version = "HTTP/1.1"
    timeout = 60  # an idle kept-alive connection frees its thread after this

    def do_GET(self):
        self._handle()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_GET

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline().strip():  # trailers, then the blank line
                pass
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _handle(self):
        state: HubState = self.server.state
        body, url = self._read_body(), urlsplit(self.path)
        try:
            reply = dispatch(state, self.command, url.path, parse_qs(url.query), self.headers, body)
        except HubError as exc:
            reply = exc.reply()
        except Exception:  # a bug in the test Hub: show it in the client's error, not as a hang
            reply = Reply(500, {"error": f"test Hub crashed on {self.command} {url.path}:\n{traceback.format_exc()}"})
        with state.lock:
            state.requests.append((self.command, unquote(url.path)))
        payload = reply.payload()
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def log_message(self, format, *args):  # the request log is state.requests; keep pytest's output clean
        pass


class HubServer:
    """The server and what a test asserts on. Tokens map to user names; ``orgs`` maps an organisation
    to its members, who may write into its namespace."""

    def __init__(self, tokens: dict[str, str] | None = None, orgs: dict[str, list[str]] | None = None):
        self.state = HubState(TOKENS if tokens is None else tokens, orgs or {})
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._tmp: str | None = None

    def start(self) -> "HubServer":
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.state = self.state
        self.state.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._tmp = tempfile.mkdtemp(prefix="test-hub-")
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="test-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=10)
            self._httpd = None
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> "HubServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return self.state.base_url

    @property
    def requests(self) -> list[tuple[str, str]]:
        """(method, unquoted path) of every request so far, in order."""
        with self.state.lock:
            return list(self.state.requests)

    @property
    def unhandled(self) -> list[tuple[str, str]]:
        """Requests no route matched (answered 404): a client call the test Hub does not know yet."""
        with self.state.lock:
            return list(self.state.unhandled)

    @property
    def validated_yaml(self) -> list[str]:
        """Every README content posted to /api/validate-yaml, in order."""
        with self.state.lock:
            return list(self.state.validated_yaml)

    def _repo(self, repo_id: str, repo_type: str):
        repo = self.state.repos.get((repo_type, repo_id))
        if repo is None:
            raise KeyError(f"the test Hub has no {repo_type} repo {repo_id!r}; it has {sorted(self.state.repos)}")
        return repo

    def files(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> dict[str, bytes]:
        """{path: bytes} at a branch or commit id (a new repo already holds .gitattributes, as on the Hub)."""
        with self.state.lock:
            commit = self._repo(repo_id, repo_type).resolve(revision)
            return {path: stored.data for path, stored in commit.files.items()}

    def commits(self, repo_id: str, repo_type: str = "model") -> list[Commit]:
        """Every commit of every branch, oldest first (the first is the repo's 'initial commit')."""
        with self.state.lock:
            return list(self._repo(repo_id, repo_type).commits.values())

    def branches(self, repo_id: str, repo_type: str = "model") -> dict[str, str]:
        with self.state.lock:
            return dict(self._repo(repo_id, repo_type).branches)

    def add_files(self, repo_id: str, files: dict[str, bytes], *, revision: str = "main", private: bool = False,
                  repo_type: str = "model", message: str = "add files", lfs: bool | None = None) -> str:
        """Seed a repo without the client (creating it, and the branch from main, if needed); returns the
        commit id. Files go to LFS by the Hub's rule unless ``lfs`` says otherwise."""
        from hub_routes import StoredFile, _wants_lfs

        with self.state.lock:
            repo = self.state.repos.get((repo_type, repo_id)) or self.state.create(
                repo_type, repo_id, private, repo_id.split("/")[0])
            repo.branches.setdefault(revision, repo.branches["main"])
            tree = dict(repo.commits[repo.branches[revision]].files)
            for path, data in files.items():
                big = _wants_lfs(path, len(data), data[:512], tree.get(".gitattributes")) if lfs is None else lfs
                tree[path] = StoredFile(bytes(data), big)
            return repo.commit(revision, message, "", repo.namespace, tree, added=list(files)).oid


def hub_env(hub: HubServer, token: str | None = None, home: str | Path | None = None,
            base: dict[str, str] | None = None) -> dict[str, str]:
    """The full environment for a subprocess that should use the test Hub: ``base`` (default: this
    process's) with the endpoint pointed at ``hub``, offline mode and Xet off, no real token or cache,
    and a fresh HF_HOME (under ``home`` if given, else a folder removed when the server stops)."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in _FOREIGN_ENV}
    home = Path(home) if home is not None else Path(tempfile.mkdtemp(prefix="hf-home-", dir=hub._tmp))
    env.update(HF_ENDPOINT=hub.url, HF_HUB_DISABLE_XET="1", HF_HUB_OFFLINE="0", HF_HOME=str(home),
               HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_UPDATE_CHECK="1", HF_HUB_DISABLE_PROGRESS_BARS="1",
               NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    if token is not None:
        env["HF_TOKEN"] = token
    return env


def point_client_at(monkeypatch, hub: HubServer, home: str | Path) -> None:
    """Make this process's ``huggingface_hub`` talk to ``hub``. Its settings are module constants read
    at import, so the constants are patched, not the environment: offline mode off (conftest sets it),
    Xet off, the endpoint and every path under HF_HOME moved into ``home``, no token unless a test sets
    HF_TOKEN. The environment is set too, for code that reads it (peft) and for child processes.
    The shared HTTP client is closed so it is rebuilt with NO_PROXY in force."""
    from huggingface_hub import close_session, constants

    home = Path(home)
    for name, value in hub_env(hub, home=home).items():
        if os.environ.get(name) != value:
            monkeypatch.setenv(name, value)
    for name in _FOREIGN_ENV:
        monkeypatch.delenv(name, raising=False)
    paths = {"HF_HOME": "", "HF_HUB_CACHE": "hub", "HF_ASSETS_CACHE": "assets", "HF_XET_CACHE": "xet",
             "HF_TOKEN_PATH": "token", "HF_STORED_TOKENS_PATH": "stored_tokens",
             "AGENT_HARNESSES_PATH": ".agent_harnesses.json", "CHECK_FOR_UPDATE_DONE_PATH": ".check_for_update_done"}
    for name, rel in paths.items():
        if hasattr(constants, name):
            monkeypatch.setattr(constants, name, str(home / rel) if rel else str(home))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")
    close_session()


@contextmanager
def serving(monkeypatch, home: str | Path, tokens: dict[str, str] | None = None,
            orgs: dict[str, list[str]] | None = None) -> Iterator[HubServer]:
    """A running HubServer with this process's client pointed at it (see :func:`point_client_at`);
    the ``hub`` fixture in conftest.py. On exit the client's connections are closed; ``monkeypatch``
    restores the rest when the test ends."""
    from huggingface_hub import close_session

    with HubServer(tokens, orgs) as server:
        point_client_at(monkeypatch, server, home)
        try:
            yield server
        finally:
            close_session()
