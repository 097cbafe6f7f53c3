"""What the test Hub answers: repositories kept in memory and the routes ``huggingface_hub`` calls.

Our reading of the Hub (see ../shared/hub-api.md), with Xet off: uploads go through preupload, the
Git LFS batch API with one basic PUT per new object, and an ndjson commit; downloads through HEAD and
GET on ``/resolve/``. Each rule mirrors what the Hub does where the client depends on it (409 with the
url for an existing repo, ``X-Error-Code`` so the client raises its typed errors, a preupload ``oid``
so unchanged files are skipped) and no more. One rule is stricter on purpose: ``/api/validate-yaml``
rejects card metadata that holds a local path, so a leaked ``/tmp/...`` fails a test.
"""
from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import unquote

# The Hub's default .gitattributes (abridged): files it matches go through LFS, as on the Hub.
LFS_PATTERNS = ("*.7z *.arrow *.bin *.bz2 *.ckpt *.ftz *.gz *.h5 *.joblib *.lfs.* *.mlmodel *.model *.msgpack "
                "*.npy *.npz *.onnx *.ot *.parquet *.pb *.pickle *.pkl *.pt *.pth *.rar *.safetensors "
                "saved_model/**/* *.tar.* *.tar *.tflite *.tgz *.wasm *.xz *.zip *.zst *tfevents*").split()
GITATTRIBUTES = "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in LFS_PATTERNS).encode()
LFS_MIN_SIZE = 10 * 1024 * 1024  # the Hub sends bigger files through LFS whatever their name
TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}  # as in /api/{type}s/ and url prefixes
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
REPO_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
BAD_CREDENTIALS = "Invalid credentials in Authorization header"  # the client then raises a plain 401


class HubError(Exception):
    """An answer other than success: status, message, the Hub's ``X-Error-Code`` and extra JSON fields."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None, **extra):
        super().__init__(message)
        self.status, self.message, self.code, self.headers, self.extra = status, message, code, headers or {}, extra

    def reply(self) -> "Reply":
        # headers travel as latin-1: keep the message ASCII so a non-ASCII path cannot crash the reply
        head = {"X-Error-Message": self.message.replace("\n", " ").encode("ascii", "replace").decode(), **self.headers}
        if self.code:
            head["X-Error-Code"] = self.code
        return Reply(self.status, {"error": self.message, **self.extra}, head)


@dataclass
class Reply:
    status: int = 200
    body: bytes | dict | list = b""
    headers: dict = field(default_factory=dict)

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        self.headers.setdefault("Content-Type", "application/json")
        return json.dumps(self.body).encode()


def git_sha1(data: bytes) -> str:
    """Git's blob id, which the Hub reports (and the client compares) for regular files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class StoredFile:
    data: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def pointer(self) -> bytes:
        return f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {len(self.data)}\n".encode()

    @property
    def blob_id(self) -> str:
        """What git stores: the content itself, or for LFS files the pointer to it."""
        return git_sha1(self.pointer if self.lfs else self.data)

    def entry(self, path: str) -> dict:
        """The file as ``/tree`` lists it (and ``siblings`` with ``blobs=True``)."""
        out = {"type": "file", "path": path, "size": len(self.data), "oid": self.blob_id}
        if self.lfs:
            out["lfs"] = {"oid": self.sha256, "size": len(self.data), "pointerSize": len(self.pointer)}
        return out

    def sibling(self, path: str, blobs: bool) -> dict:
        """The file as repo info's ``siblings`` lists it: sizes and hashes only when asked (``blobs``)."""
        if not blobs:
            return {"rfilename": path}
        out = {"rfilename": path, "size": len(self.data), "blobId": self.blob_id}
        if self.lfs:
            out["lfs"] = {"sha256": self.sha256, "size": len(self.data), "pointerSize": len(self.pointer)}
        return out


@dataclass
class Commit:
    """One commit. ``added``: paths it wrote; ``lfs_uploaded``: those of them whose bytes were PUT
    for it (an unchanged or already stored LFS file is referenced, not sent again)."""

    oid: str
    title: str
    description: str
    parent: str | None
    branch: str
    author: str
    date: str
    files: dict[str, StoredFile]
    added: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    lfs_uploaded: tuple[str, ...] = ()


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    created: str = field(default_factory=_now)
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)  # in the order they were made
    lfs: dict[str, bytes] = field(default_factory=dict)  # stored objects by sha256
    announced: dict[str, int] = field(default_factory=dict)  # oid -> size the batch API allowed a PUT for
    put_since_commit: set[str] = field(default_factory=set)
    prs: int = 0

    @property
    def namespace(self) -> str:
        return self.repo_id.split("/")[0]

    @property
    def url_path(self) -> str:
        return URL_PREFIX[self.repo_type] + self.repo_id

    def resolve(self, revision: str) -> Commit:
        """A branch name (also as ``refs/heads/...``) or a full commit id, as downloads accept."""
        name = revision.removeprefix("refs/heads/")
        oid = self.branches.get(name, revision)
        if oid not in self.commits:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return self.commits[oid]

    def commit(self, branch: str, title: str, description: str, author: str, files: dict[str, StoredFile],
               added=(), deleted=()) -> Commit:
        parent = self.branches.get(branch)
        oid = hashlib.sha1(f"{self.repo_id}\n{parent}\n{branch}\n{title}\n{len(self.commits)}".encode()).hexdigest()
        uploaded = tuple(p for p in added if files[p].lfs and files[p].sha256 in self.put_since_commit)
        self.put_since_commit -= {files[p].sha256 for p in uploaded}
        made = Commit(oid, title, description, parent, branch, author, _now(), files, tuple(added), tuple(deleted),
                      uploaded)
        self.commits[oid] = made
        self.branches[branch] = oid
        return made


class HubState:
    """Everything the server knows; one lock, because handler threads share it."""

    def __init__(self, tokens: dict[str, str], orgs: dict[str, list[str]]):
        self.tokens, self.orgs = dict(tokens), {k: list(v) for k, v in orgs.items()}
        self.repos: dict[tuple[str, str], Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self.unhandled: list[tuple[str, str]] = []
        self.validated_yaml: list[str] = []
        self.base_url = ""
        self.lock = threading.RLock()

    def user_for(self, headers) -> str | None:
        """The token's user; no token is anonymous, a token the Hub does not know is refused outright."""
        auth = headers.get("Authorization") or ""
        if not auth:
            return None
        token = auth.removeprefix("Bearer ").strip()
        if token not in self.tokens:
            raise HubError(401, BAD_CREDENTIALS)
        return self.tokens[token]

    def can_write(self, user: str | None, namespace: str) -> bool:
        return user is not None and (user == namespace or user in self.orgs.get(namespace, ()))

    def create(self, repo_type: str, repo_id: str, private: bool, author: str) -> Repo:
        """A new repository holds one commit with the default .gitattributes, as on the Hub."""
        repo = self.repos[(repo_type, repo_id)] = Repo(repo_type, repo_id, private)
        repo.commit("main", "initial commit", "", author, {".gitattributes": StoredFile(GITATTRIBUTES, False)},
                    added=(".gitattributes",))
        return repo

    def readable(self, repo_type: str, repo_id: str, user: str | None) -> Repo:
        """Missing and private-to-someone-else look the same, as on the Hub: 404 RepoNotFound."""
        repo = self.repos.get((repo_type, repo_id))
        if repo is None or repo.private and not self.can_write(user, repo.namespace):
            raise HubError(404, f"Repository not found: {repo_type} {repo_id}", "RepoNotFound")
        return repo

    def writable(self, repo_type: str, repo_id: str, user: str | None) -> Repo:
        if user is None:
            raise HubError(401, f"You must be authenticated (send a token) to write to {repo_id}")
        repo = self.readable(repo_type, repo_id, user)
        if not self.can_write(user, repo.namespace):
            raise HubError(403, f"You don't have the rights to write to {repo_id} (logged in as {user})")
        return repo


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: object
    body: bytes
    user: str | None
    args: dict[str, str]

    def json(self) -> dict:
        try:
            return json.loads(self.body or b"{}")
        except ValueError:
            raise HubError(400, f"{self.method} {self.path}: the body is not JSON") from None

    def flag(self, name: str) -> bool:
        return (self.query.get(name) or [""])[0].lower() in ("1", "true")

    def repo(self, state: HubState, write: bool = False) -> Repo:
        repo_type = TYPES[self.args.get("type") or self.args.get("prefix") or "models"]
        repo_id = f"{self.args['ns']}/{self.args['name']}"
        return state.writable(repo_type, repo_id, self.user) if write else state.readable(repo_type, repo_id, self.user)


# --- card metadata ------------------------------------------------------------------------------------------------

def front_matter(text: str) -> dict | None:
    """The YAML block at the top of a README, parsed; None when there is none. Raises on bad YAML."""
    import yaml

    match = re.match(r"---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(\r?\n|$)", text, re.S)
    if not match:
        return None
    data = yaml.safe_load(match.group(1))
    if data is not None and not isinstance(data, dict):
        raise ValueError(f"the metadata must be a YAML mapping, got {type(data).__name__}")
    return data or {}


def _local_paths(value, where: str = "") -> list[str]:
    """Card values that are paths on the uploader's disk (``base_model: /tmp/run/bert``): stricter than
    the Hub, on purpose, because such a card is useless to anyone else and leaks the machine's layout."""
    if isinstance(value, dict):
        return [e for k, v in value.items() for e in _local_paths(v, f"{where}.{k}" if where else str(k))]
    if isinstance(value, list):
        return [e for i, v in enumerate(value) for e in _local_paths(v, f"{where}[{i}]")]
    if isinstance(value, str) and (value.startswith(("/", "~")) or re.match(r"[A-Za-z]:[\\/]", value)
                                   or ":\\" in value):
        return [f"'{where}' holds a local path ({value!r}); a card on the Hub must name Hub ids, not files"]
    return []


def card_errors(text: str) -> list[str]:
    try:
        return _local_paths(front_matter(text) or {})
    except Exception as exc:  # yaml.YAMLError or a non-mapping block
        return [f"invalid YAML metadata in README.md: {exc}"]


def _card(commit: Commit) -> dict:
    readme = commit.files.get("README.md")
    try:
        return (front_matter(readme.data.decode()) or {}) if readme else {}
    except Exception:  # the Hub shows a repo with a broken card all the same
        return {}


# --- routes -------------------------------------------------------------------------------------------------------

def whoami(state: HubState, req: Request):
    if req.user is None:
        raise HubError(401, "You must be authenticated to call whoami")
    orgs = [{"name": org, "type": "org"} for org, members in state.orgs.items() if req.user in members]
    return {"type": "user", "name": req.user, "fullname": req.user, "orgs": orgs,
            "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}}}


def create_repo(state: HubState, req: Request):
    body = req.json()
    repo_type, name = body.get("type") or "model", str(body.get("name") or "")
    namespace = body.get("organization") or req.user
    if req.user is None:
        raise HubError(401, "You must be authenticated to create a repository")
    if not REPO_NAME.fullmatch(name) or "--" in name or ".." in name or name.endswith((".", "-")):
        raise HubError(400, f"Invalid repo name {name!r}: letters, digits, '-', '_', '.', at most 96")
    if not state.can_write(req.user, namespace):
        raise HubError(403, f"You don't have the rights to create a {repo_type} under the namespace \"{namespace}\"")
    repo_id = f"{namespace}/{name}"
    url = f"{state.base_url}/{URL_PREFIX[repo_type]}{repo_id}"
    if (repo_type, repo_id) in state.repos:
        raise HubError(409, f"You already created this {repo_type} repo", url=url)
    private = body.get("visibility") == "private" or body.get("private") is True
    state.create(repo_type, repo_id, private, req.user)
    return {"url": url, "name": repo_id, "id": repo_id}


def delete_repo(state: HubState, req: Request):
    body = req.json()
    repo_type = body.get("type") or "model"
    repo_id = f"{body.get('organization') or req.user}/{body.get('name')}"
    state.writable(repo_type, repo_id, req.user)
    del state.repos[(repo_type, repo_id)]
    return {}


def validate_yaml(state: HubState, req: Request):
    content = str(req.json().get("content", ""))
    state.validated_yaml.append(content)
    errors = card_errors(content)
    return Reply(400 if errors else 200, {"errors": [{"message": e} for e in errors], "warnings": []})


def repo_info(state: HubState, req: Request):
    repo = req.repo(state)
    commit = repo.resolve(req.args.get("rev") or "main")
    card = _card(commit)
    siblings = [stored.sibling(path, req.flag("blobs")) for path, stored in sorted(commit.files.items())]
    return {"_id": repo.repo_id, "id": repo.repo_id, "author": repo.namespace, "sha": commit.oid,
            "lastModified": commit.date, "createdAt": repo.created, "private": repo.private, "gated": False,
            "disabled": False, "downloads": 0, "likes": 0, "tags": list(card.get("tags") or []),
            "pipeline_tag": card.get("pipeline_tag"), "library_name": card.get("library_name"),
            "cardData": card or None, "siblings": siblings}


def tree(state: HubState, req: Request):
    """Files and folders under a path; with ``recursive`` every level, as ``list_repo_files`` needs."""
    commit = req.repo(state).resolve(req.args["rev"])
    prefix = (req.args.get("path") or "").strip("/")
    recursive, out = req.flag("recursive"), {}
    for path, stored in sorted(commit.files.items()):
        if prefix and not path.startswith(prefix + "/"):
            continue
        parts = path[len(prefix) + 1 if prefix else 0:].split("/")
        depth = len(parts) - 1 if recursive else min(1, len(parts) - 1)
        for i in range(1, depth + 1):
            folder = "/".join(filter(None, [prefix, *parts[:i]]))
            out.setdefault(folder, {"type": "directory", "path": folder, "oid": git_sha1(folder.encode())})
        if recursive or len(parts) == 1:
            out[path] = stored.entry(path)
    if prefix and not out:
        raise HubError(404, f"{prefix} does not exist on {req.args['rev']}", "EntryNotFound")
    return list(out.values())


def refs(state: HubState, req: Request):
    repo = req.repo(state)
    ref = [{"name": b, "ref": b if b.startswith("refs/") else f"refs/heads/{b}", "targetCommit": oid}
           for b, oid in repo.branches.items()]
    return {"branches": [r for r in ref if not r["name"].startswith("refs/pr/")], "tags": [], "converts": [],
            "pullRequests": [r for r in ref if r["name"].startswith("refs/pr/")]}


def commits(state: HubState, req: Request):
    repo = req.repo(state)
    commit, out = repo.resolve(req.args["rev"]), []
    while commit is not None:
        out.append({"id": commit.oid, "title": commit.title, "message": commit.description,
                    "authors": [{"user": commit.author}], "date": commit.date})
        commit = repo.commits.get(commit.parent) if commit.parent else None
    return out


def create_branch(state: HubState, req: Request):
    repo, branch = req.repo(state, write=True), req.args["rev"]
    if branch in repo.branches:
        raise HubError(409, f"Reference already exists: refs/heads/{branch}")
    repo.branches[branch] = repo.resolve(req.json().get("startingPoint") or "main").oid
    return {}


def delete_branch(state: HubState, req: Request):
    repo, branch = req.repo(state, write=True), req.args["rev"]
    if branch not in repo.branches or branch == "main":
        raise HubError(404 if branch != "main" else 403, f"Cannot delete branch {branch}", "RevisionNotFound")
    del repo.branches[branch]
    return {}


def _wants_lfs(path: str, size: int, sample: bytes, gitattributes: StoredFile | None) -> bool:
    """As the Hub decides: a .gitattributes LFS pattern, a big file, or binary content."""
    text = (gitattributes.data if gitattributes else b"").decode(errors="replace")
    patterns = [line.split()[0] for line in text.splitlines() if "filter=lfs" in line]
    name = path.rsplit("/", 1)[-1]
    matched = any(fnmatch.fnmatch(path if "/" in p else name, p) for p in patterns)
    return matched or size >= LFS_MIN_SIZE or b"\0" in sample


def preupload(state: HubState, req: Request):
    repo = req.repo(state, write=True)
    commit = repo.resolve(req.args["rev"])
    out = []
    for item in req.json().get("files", []):
        path, known = item["path"], commit.files.get(item["path"])
        lfs = _wants_lfs(path, int(item["size"]), base64.b64decode(item.get("sample") or ""),
                         commit.files.get(".gitattributes"))
        oid = None if known is None else known.sha256 if known.lfs else git_sha1(known.data)
        out.append({"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid})
    return {"files": out, "commitOid": commit.oid}


def lfs_batch(state: HubState, req: Request):
    """Objects the repo already stores get no ``actions`` (the client skips them); others a PUT url."""
    repo = req.repo(state, write=True)
    objects = []
    for obj in req.json().get("objects", []):
        oid, size = obj["oid"], int(obj["size"])
        entry = {"oid": oid, "size": size, "authenticated": True}
        if oid not in repo.lfs:
            repo.announced[oid] = size
            entry["actions"] = {"upload": {"href": f"{state.base_url}/_lfs/{repo.repo_type}/{repo.repo_id}/{oid}"}}
        objects.append(entry)
    return Reply(200, {"transfer": "basic", "objects": objects}, {"Content-Type": "application/vnd.git-lfs+json"})


def lfs_put(state: HubState, req: Request):
    """The storage side: no token (like a signed S3 url), but only for an object the batch API announced."""
    repo = state.repos.get((req.args["kind"], f"{req.args['ns']}/{req.args['name']}"))
    oid = req.args["oid"]
    if repo is None or oid not in repo.announced:
        raise HubError(403, f"no upload of {oid} was announced through the LFS batch API")
    if hashlib.sha256(req.body).hexdigest() != oid or len(req.body) != repo.announced[oid]:
        raise HubError(400, f"the bytes PUT for {oid} do not match its sha256 and size")
    repo.lfs[oid] = req.body
    repo.put_since_commit.add(oid)
    return Reply(200, b"", {"ETag": f'"{oid}"'})


def _apply(repo: Repo, files: dict[str, StoredFile], key: str, value: dict) -> tuple[str, bool]:
    """One ndjson line onto the tree; returns (path, added?)."""
    path = str(value.get("path", ""))
    if path.startswith("/") or ".." in path.split("/") or not path.strip("/"):
        raise HubError(400, f"invalid path in commit: {path!r}")
    if key == "file":
        files[path] = StoredFile(base64.b64decode(value["content"]), False)
    elif key == "lfsFile":
        if value["oid"] not in repo.lfs:
            raise HubError(400, f"LFS object {value['oid']} for {path} was never uploaded")
        files[path] = StoredFile(repo.lfs[value["oid"]], True)
    elif key == "deletedFile":
        if files.pop(path, None) is None:
            raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
    elif key == "deletedFolder":
        gone = [p for p in files if p.startswith(path.rstrip("/") + "/")]
        if not gone:
            raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
        for p in gone:
            del files[p]
    else:
        raise HubError(400, f"the test Hub does not handle commit operation {key!r}")
    return path, key in ("file", "lfsFile")


def commit(state: HubState, req: Request):
    repo, branch = req.repo(state, write=True), req.args["rev"]
    lines = [json.loads(line) for line in req.body.splitlines() if line.strip()]
    if not lines or lines[0].get("key") != "header":
        raise HubError(400, "a commit starts with a header line")
    header, base = lines[0]["value"], repo.resolve(branch)
    if branch not in repo.branches:
        raise HubError(404, f"Invalid rev id: {branch} (commits go to a branch)", "RevisionNotFound")
    if header.get("parentCommit") not in (None, base.oid):
        raise HubError(412, "A commit has happened since. Please refresh and try again.")
    files, added, deleted = dict(base.files), [], []
    for line in lines[1:]:
        path, is_add = _apply(repo, files, line.get("key"), line.get("value") or {})
        (added if is_add else deleted).append(path)
    pr_url = None
    if req.flag("create_pr"):
        repo.prs += 1
        branch, pr_url = f"refs/pr/{repo.prs}", f"{state.base_url}/{repo.url_path}/discussions/{repo.prs}"
        repo.branches[branch] = base.oid
    made = repo.commit(branch, header.get("summary") or "", header.get("description") or "", req.user, files,
                       [p for p in added if p in files], deleted)
    return {"commitUrl": f"{state.base_url}/{repo.url_path}/commit/{made.oid}", "commitOid": made.oid,
            "pullRequestUrl": pr_url}


def resolve(state: HubState, req: Request):
    """A file's bytes, and on HEAD the headers ``hf_hub_download`` reads before it downloads."""
    commit = req.repo(state).resolve(req.args["rev"])
    stored = commit.files.get(req.args["path"])
    if stored is None:
        raise HubError(404, f"Entry not found: {req.args['path']}", "EntryNotFound",
                       headers={"X-Repo-Commit": commit.oid})
    headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{stored.sha256 if stored.lfs else stored.blob_id}"',
               "Content-Type": "application/octet-stream"}
    if stored.lfs:
        headers.update({"X-Linked-Etag": f'"{stored.sha256}"', "X-Linked-Size": str(len(stored.data))})
    return Reply(200, stored.data, headers)


def agent_harnesses(state: HubState, req: Request):
    """The client fetches this registry once a day to word its user agent; an empty one detects nothing."""
    return {"standardEnvVars": [], "harnesses": {}}


API = r"/api/(?P<type>models|datasets|spaces)/(?P<ns>[^/]+)/(?P<name>[^/]+)"
GIT = r"/(?:(?P<prefix>datasets|spaces)/)?(?P<ns>[^/]+)/(?P<name>[^/]+?)"
ROUTES = [(methods.split(), re.compile(pattern), handler) for methods, pattern, handler in [
    ("GET", r"/api/whoami-v2", whoami),
    ("GET", r"/api/agent-harnesses", agent_harnesses),
    ("POST", r"/api/repos/create", create_repo),
    ("DELETE", r"/api/repos/delete", delete_repo),
    ("POST", r"/api/validate-yaml", validate_yaml),
    ("GET", API + r"(?:/revision/(?P<rev>[^/]+))?", repo_info),
    ("GET", API + r"/tree/(?P<rev>[^/]+)(?:/(?P<path>.+))?", tree),
    ("GET", API + r"/refs", refs),
    ("GET", API + r"/commits/(?P<rev>[^/]+)", commits),
    ("POST", API + r"/branch/(?P<rev>[^/]+)", create_branch),
    ("DELETE", API + r"/branch/(?P<rev>[^/]+)", delete_branch),
    ("POST", API + r"/preupload/(?P<rev>[^/]+)", preupload),
    ("POST", API + r"/commit/(?P<rev>[^/]+)", commit),
    ("POST", GIT + r"\.git/info/lfs/objects/batch", lfs_batch),
    ("PUT", r"/_lfs/(?P<kind>model|dataset|space)/(?P<ns>[^/]+)/(?P<name>[^/]+)/(?P<oid>[0-9a-f]{64})", lfs_put),
    ("HEAD GET", GIT + r"/resolve/(?P<rev>[^/]+)/(?P<path>.+)", resolve),
]]


def dispatch(state: HubState, method: str, path: str, query: dict, headers, body: bytes) -> Reply:
    """Route one request; groups are matched on the raw path, then unquoted (revisions come as ``a%2Fb``)."""
    for methods, pattern, handler in ROUTES:
        match = pattern.fullmatch(path)
        if match and method in methods:
            args = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
            with state.lock:
                req = Request(method, path, query, headers, body, state.user_for(headers), args)
                answer = handler(state, req)
            return answer if isinstance(answer, Reply) else Reply(200, answer)
    with state.lock:
        state.unhandled.append((method, unquote(path)))
    raise HubError(404, f"the test Hub has no route for {method} {unquote(path)} (see tests/hub_routes.py)")
