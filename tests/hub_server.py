"""A local Hugging Face Hub HTTP server for tests, and helpers that point the real `huggingface_hub` client at it."""

from __future__ import annotations

import base64
import hashlib
import importlib
import json
import logging
import mimetypes
import os
import re
import socket
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

logger = logging.getLogger(__name__)

DUMMY_TOKEN = "hf_local_test_token"
"""Token the helpers put in `HF_TOKEN`; the server accepts any token."""

_COMMIT_SHA = re.compile(r"[0-9a-f]{40}")
_SHORT_SHA = re.compile(r"[0-9a-f]{7,40}")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_REPO_ACTIONS = {None, "revision", "tree", "paths-info", "refs", "commits", "preupload", "commit", "branch", "tag"}
# What the Hub puts in every new repo's first commit (trimmed to a few lines).
_GITATTRIBUTES = (
    b"*.bin filter=lfs diff=lfs merge=lfs -text\n"
    b"*.pt filter=lfs diff=lfs merge=lfs -text\n"
    b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
)


class HubRequest(NamedTuple):
    """One request the server received."""

    method: str
    path: str
    query: dict[str, list[str]]
    authorization: str | None


class _HubError(Exception):
    """An error answered as JSON, with the `X-Error-Code` header the client maps to its exceptions."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}
        self.extra: dict[str, Any] = {}


@dataclass
class _Commit:
    oid: str
    parent: str | None
    title: str
    message: str
    date: str
    files: dict[str, str]  # path -> blob oid, the full tree at this commit


@dataclass
class _Repo:
    repo_id: str
    private: bool
    created_at: str
    commits: dict[str, _Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)  # also holds pull requests as "refs/pr/N"
    tags: dict[str, str] = field(default_factory=dict)
    pr_count: int = 0

    def resolve(self, revision: str) -> _Commit:
        """Resolve a branch, tag, full or abbreviated commit sha."""
        oid = self.branches.get(revision) or self.tags.get(revision)
        if oid is None and _SHORT_SHA.fullmatch(revision):
            matches = [sha for sha in self.commits if sha.startswith(revision)]
            oid = matches[0] if len(matches) == 1 else None
        if oid is None:
            raise _HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return self.commits[oid]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def git_blob_sha(data: bytes) -> str:
    """The git blob sha1 of `data`: the oid and ETag the Hub gives a file stored in git (not LFS)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _clean_path(path: str) -> str:
    parts = path.strip("/").split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise _HubError(400, f"Invalid path in repo: {path!r}")
    return "/".join(parts)


def _scalar(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    return text


def parse_front_matter(text: str) -> dict[str, Any] | None:
    """Parse the YAML metadata block of a model card: a small subset (scalars, lists of scalars).

    Returns `{}` without a metadata block and `None` when the block is not closed. Keys whose values this
    subset cannot read (nested mappings) are left out.
    """
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        return {}
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        return None
    data: dict[str, Any] = {}
    skipped: set[str] = set()
    key = None
    for line in lines[1:end]:
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if line[0] not in " \t-":
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if value.startswith("[") and value.endswith("]"):
                data[key] = [_scalar(v) for v in value[1:-1].split(",") if v.strip()]
            else:
                data[key] = _scalar(value) if value else []
        elif key is not None and stripped.startswith("- ") and ":" not in stripped[2:] and isinstance(data[key], list):
            data[key].append(_scalar(stripped[2:]))
        elif key is not None:
            skipped.add(key)
    return {k: v for k, v in data.items() if k not in skipped}


class HubServer:
    """A Hub-protocol server for model repos, kept in memory, on 127.0.0.1 at a free port.

    It serves what `HfApi` uploads and downloads use: repo creation and deletion, preupload (every file is
    "regular", so contents arrive base64 in the commit; no LFS, no Xet), commits with history and
    `parentCommit` checks, branches, tags, pull-request refs, repo info, tree listings, paths-info, refs,
    commit lists and `/resolve` with ETag, X-Repo-Commit and ranges. Every repo starts with the Hub's
    "initial commit" holding a `.gitattributes`. Unknown routes get a 404 JSON answer and land in
    `unhandled`; every request is recorded in `requests`.
    """

    def __init__(self, user: str = "user") -> None:
        self.user = user
        self.requests: list[HubRequest] = []
        self.unhandled: list[HubRequest] = []
        self.errors: list[str] = []
        self._repos: dict[str, _Repo] = {}
        self._blobs: dict[str, bytes] = {}
        self._lock = threading.RLock()
        self._commit_counter = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------------------

    def start(self) -> HubServer:
        """Start serving in a background thread."""
        if self._httpd is not None:
            return self
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.hub = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="hub-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the port; the repos stay readable through the helpers."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()
        self._httpd = None
        self._thread = None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the server is accepting requests."""
        return self._httpd is not None

    @property
    def url(self) -> str:
        """Base url, e.g. `http://127.0.0.1:PORT` (what `HF_ENDPOINT` must be)."""
        if self._httpd is None:
            raise RuntimeError("HubServer is not running")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # -- direct access for tests ---------------------------------------------------------------------------

    def paths(self, method: str | None = None) -> list[str]:
        """The paths of the requests received so far, optionally only those with `method`."""
        return [r.path for r in list(self.requests) if method is None or r.method == method]

    def create_repo(self, repo_id: str, private: bool = False) -> str:
        """Create a model repo with its initial commit, without HTTP; returns the commit sha."""
        with self._lock:
            if repo_id in self._repos:
                raise ValueError(f"{repo_id} exists")
            repo = _Repo(repo_id=repo_id, private=private, created_at=_now())
            self._repos[repo_id] = repo
            commit = self._new_commit(repo, None, {".gitattributes": self._store(_GITATTRIBUTES)}, "initial commit", "")
            repo.branches["main"] = commit.oid
            return commit.oid

    def commit(
        self,
        repo_id: str,
        files: dict[str, bytes],
        *,
        revision: str = "main",
        message: str = "Add files",
        deletions: tuple[str, ...] = (),
    ) -> str:
        """Commit `files` (path -> bytes) and `deletions` to a branch without HTTP; returns the commit sha.

        The repo is created if needed, and so is the branch (from `main`).
        """
        with self._lock:
            if repo_id not in self._repos:
                self.create_repo(repo_id)
            repo = self._repos[repo_id]
            if revision not in repo.branches:
                repo.branches[revision] = repo.branches["main"]
            tree = dict(repo.commits[repo.branches[revision]].files)
            for path in deletions:
                tree.pop(_clean_path(path), None)
            for path, data in files.items():
                tree[_clean_path(path)] = self._store(data)
            commit = self._new_commit(repo, repo.branches[revision], tree, message, "")
            repo.branches[revision] = commit.oid
            return commit.oid

    def repo_files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """The files of a repo at a branch, tag or commit sha, as path -> bytes."""
        with self._lock:
            _, commit = self._lookup(repo_id, revision)
            return {path: self._blobs[oid] for path, oid in commit.files.items()}

    def branches(self, repo_id: str) -> dict[str, str]:
        """Branch name -> head commit sha (pull requests included, as `refs/pr/N`)."""
        with self._lock:
            return dict(self._lookup(repo_id, "main")[0].branches)

    def history(self, repo_id: str, revision: str = "main") -> list[str]:
        """Commit shas reachable from `revision`, newest first."""
        with self._lock:
            repo, commit = self._lookup(repo_id, revision)
            return [c.oid for c in self._walk(repo, commit)]

    def _lookup(self, repo_id: str, revision: str) -> tuple[_Repo, _Commit]:
        try:
            repo = self._repo(repo_id)
            return repo, repo.resolve(revision)
        except _HubError as error:
            raise KeyError(f"{repo_id}@{revision}: {error.message}") from None

    # -- storage -------------------------------------------------------------------------------------------

    def _store(self, data: bytes) -> str:
        oid = git_blob_sha(data)
        self._blobs[oid] = data
        return oid

    def _repo(self, repo_id: str) -> _Repo:
        repo = self._repos.get(repo_id)
        if repo is None:
            raise _HubError(404, "Repository not found", "RepoNotFound")
        return repo

    def _new_commit(self, repo: _Repo, parent: str | None, files: dict[str, str], title: str, message: str) -> _Commit:
        self._commit_counter += 1
        date = _now()
        seed = json.dumps([repo.repo_id, parent, sorted(files.items()), title, message, date, self._commit_counter])
        oid = hashlib.sha1(seed.encode()).hexdigest()
        commit = _Commit(oid=oid, parent=parent, title=title, message=message, date=date, files=files)
        repo.commits[oid] = commit
        return commit

    def _walk(self, repo: _Repo, commit: _Commit) -> Iterator[_Commit]:
        current: _Commit | None = commit
        while current is not None:
            yield current
            current = repo.commits[current.parent] if current.parent else None

    def _entries(self, commit: _Commit, prefix: str, recursive: bool) -> list[dict[str, Any]]:
        """Tree entries (files and directories) under `prefix`, as the `/tree` endpoint lists them."""
        base = f"{prefix}/" if prefix else ""
        files = {p: oid for p, oid in commit.files.items() if p.startswith(base)}
        if prefix and not files:
            raise _HubError(404, f"{prefix} does not exist on this revision", "EntryNotFound")
        dirs: set[str] = set()
        entries = []
        for path in sorted(files):
            parts = path[len(base) :].split("/")
            for depth in range(1, len(parts)):
                if recursive or depth == 1:
                    dirs.add(base + "/".join(parts[:depth]))
            if recursive or len(parts) == 1:
                entries.append(self._file_entry(path, files[path]))
        entries += [self._dir_entry(commit, d) for d in dirs]
        return sorted(entries, key=lambda e: (e["type"] != "directory", e["path"]))

    def _file_entry(self, path: str, oid: str) -> dict[str, Any]:
        return {"type": "file", "path": path, "size": len(self._blobs[oid]), "oid": oid}

    def _dir_entry(self, commit: _Commit, path: str) -> dict[str, Any]:
        listing = sorted((p, oid) for p, oid in commit.files.items() if p.startswith(path + "/"))
        return {"type": "directory", "path": path, "size": 0, "oid": hashlib.sha1(repr(listing).encode()).hexdigest()}

    # -- routes --------------------------------------------------------------------------------------------

    def _route(
        self, method: str, segments: list[str], query: dict[str, list[str]], body: bytes, range_header: str | None
    ) -> Any:
        """Answer one request: returns a JSON-able value, or `_Raw` for file contents; raises `_HubError`."""
        if segments[:1] == ["api"]:
            return self._route_api(method, segments[1:], query, body)
        # /{namespace}/{name}/resolve/{revision}/{path...}
        if len(segments) >= 5 and segments[2] == "resolve" and method in ("GET", "HEAD"):
            return self._resolve(f"{segments[0]}/{segments[1]}", segments[3], "/".join(segments[4:]), range_header)
        raise _Unhandled()

    def _route_api(self, method: str, rest: list[str], query: dict[str, list[str]], body: bytes) -> Any:
        if rest == ["whoami-v2"] and method == "GET":
            return {
                "type": "user",
                "id": hashlib.sha1(self.user.encode()).hexdigest()[:24],
                "name": self.user,
                "fullname": self.user,
                "email": None,
                "orgs": [],
                "auth": {"type": "access_token", "accessToken": {"displayName": "local", "role": "write"}},
            }
        if rest == ["agent-harnesses"] and method == "GET":
            return {"standardEnvVars": [], "harnesses": {}}
        if rest == ["validate-yaml"] and method == "POST":
            return self._validate_yaml(_json(body))
        if rest == ["repos", "create"] and method == "POST":
            return self._create_repo(_json(body))
        if rest == ["repos", "delete"] and method == "DELETE":
            return self._delete_repo(_json(body))
        if len(rest) >= 3 and rest[0] in ("datasets", "spaces", "kernels"):
            raise _HubError(404, f"This test server only serves model repos (got {rest[0]})", "RepoNotFound")
        if len(rest) < 3 or rest[0] != "models":
            raise _Unhandled()
        repo_id, action, args = f"{rest[1]}/{rest[2]}", (rest[3] if len(rest) > 3 else None), rest[4:]
        if action not in _REPO_ACTIONS:
            raise _Unhandled()
        with self._lock:
            repo = self._repo(repo_id)
            if action is None and method == "GET":
                return self._info(repo, "main", query)
            if action == "revision" and len(args) == 1 and method == "GET":
                return self._info(repo, args[0], query)
            if action == "tree" and args and method == "GET":
                recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
                prefix = "/".join(args[1:]).strip("/")
                return self._entries(repo.resolve(args[0]), prefix, recursive)
            if action == "paths-info" and len(args) == 1 and method == "POST":
                return self._paths_info(repo, args[0], parse_qs(body.decode()))
            if action == "refs" and not args and method == "GET":
                return self._refs(repo, "include_prs" in query)
            if action == "commits" and len(args) == 1 and method == "GET":
                return [
                    {
                        "id": c.oid,
                        "title": c.title,
                        "message": c.message,
                        "date": c.date,
                        "authors": [{"user": self.user if c.parent else "system", "avatar": None}],
                    }
                    for c in self._walk(repo, repo.resolve(args[0]))
                ]
            if action == "preupload" and len(args) == 1 and method == "POST":
                return self._preupload(repo, args[0], _json(body))
            if action == "commit" and len(args) == 1 and method == "POST":
                return self._commit(repo, args[0], body, "create_pr" in query)
            if action == "branch" and len(args) == 1 and method == "POST":
                return self._create_branch(repo, args[0], _json(body) if body else {})
            if action == "branch" and len(args) == 1 and method == "DELETE":
                if args[0] == "main" or args[0] not in repo.branches:
                    raise _HubError(400 if args[0] == "main" else 404, f"Cannot delete branch {args[0]}")
                del repo.branches[args[0]]
                return {}
            if action == "tag" and len(args) == 1 and method == "POST":
                payload = _json(body)
                if payload["tag"] in repo.tags:
                    raise _HubError(409, f"Tag {payload['tag']} already exists")
                repo.tags[payload["tag"]] = repo.resolve(args[0]).oid
                return {}
            if action == "tag" and len(args) == 1 and method == "DELETE":
                if repo.tags.pop(args[0], None) is None:
                    raise _HubError(404, f"Tag {args[0]} not found", "RevisionNotFound")
                return {}
        raise _Unhandled()

    def _validate_yaml(self, payload: dict[str, Any]) -> Any:
        if parse_front_matter(payload.get("content", "")) is None:
            error = _HubError(400, "Invalid YAML metadata")
            error.extra = {"errors": [{"message": "the metadata block opened with '---' is never closed"}]}
            raise error
        return {"errors": [], "warnings": []}

    def _create_repo(self, payload: dict[str, Any]) -> Any:
        repo_type = payload.get("type") or "model"
        if repo_type != "model":
            raise _HubError(400, f"This test server only serves model repos (got {repo_type})")
        repo_id = f"{payload.get('organization') or self.user}/{payload['name']}"
        private = payload.get("visibility", "private" if payload.get("private") else "public") != "public"
        url = f"{self.url}/{repo_id}"
        with self._lock:
            if repo_id in self._repos:
                error = _HubError(409, "You already created this model repo")
                error.extra = {"url": url}
                raise error
            self.create_repo(repo_id, private=private)
        return {"url": url, "name": repo_id, "id": hashlib.sha1(repo_id.encode()).hexdigest()[:24]}

    def _delete_repo(self, payload: dict[str, Any]) -> Any:
        repo_id = f"{payload.get('organization') or self.user}/{payload['name']}"
        with self._lock:
            self._repo(repo_id)
            del self._repos[repo_id]
        return {}

    def _info(self, repo: _Repo, revision: str, query: dict[str, list[str]]) -> Any:
        commit = repo.resolve(revision)
        with_blobs = query.get("blobs", ["false"])[0].lower() in ("1", "true")
        siblings = []
        for path in sorted(commit.files):
            sibling: dict[str, Any] = {"rfilename": path}
            if with_blobs:
                sibling.update(size=len(self._blobs[commit.files[path]]), blobId=commit.files[path])
            siblings.append(sibling)
        card: dict[str, Any] = {}
        if "README.md" in commit.files:
            card = parse_front_matter(self._blobs[commit.files["README.md"]].decode("utf-8", "replace")) or {}
        tags = card.get("tags", [])
        info: dict[str, Any] = {
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": commit.oid,
            "lastModified": commit.date,
            "createdAt": repo.created_at,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": tags if isinstance(tags, list) else [tags],
            "siblings": siblings,
            "spaces": [],
            "usedStorage": sum(len(self._blobs[oid]) for oid in set(commit.files.values())),
        }
        if card:
            info["cardData"] = card
        for key in ("library_name", "pipeline_tag"):
            if isinstance(card.get(key), str):
                info[key] = card[key]
        return info

    def _paths_info(self, repo: _Repo, revision: str, form: dict[str, list[str]]) -> Any:
        commit = repo.resolve(revision)
        entries = []
        for path in form.get("paths", []):
            path = path.strip("/")
            if path in commit.files:
                entries.append(self._file_entry(path, commit.files[path]))
            elif any(p.startswith(path + "/") for p in commit.files):
                entries.append(self._dir_entry(commit, path))
        return entries

    def _refs(self, repo: _Repo, include_prs: bool) -> Any:
        def ref(name: str, oid: str, kind: str) -> dict[str, str]:
            return {"name": name, "ref": name if kind == "pr" else f"refs/{kind}/{name}", "targetCommit": oid}

        prs = [ref(n, oid, "pr") for n, oid in repo.branches.items() if n.startswith("refs/pr/")]
        refs: dict[str, Any] = {
            "branches": [ref(n, oid, "heads") for n, oid in repo.branches.items() if not n.startswith("refs/pr/")],
            "converts": [],
            "tags": [ref(n, oid, "tags") for n, oid in repo.tags.items()],
        }
        if include_prs:
            refs["pullRequests"] = prs
        return refs

    def _branch_head(self, repo: _Repo, revision: str) -> _Commit:
        commit = repo.resolve(revision)
        if revision not in repo.branches:
            raise _HubError(400, f"Can only commit to a branch, {revision} is not one")
        return commit

    def _preupload(self, repo: _Repo, revision: str, payload: dict[str, Any]) -> Any:
        head = self._branch_head(repo, revision)
        files = []
        for item in payload.get("files", []):
            entry: dict[str, Any] = {"path": item["path"], "uploadMode": "regular", "shouldIgnore": False}
            if item["path"] in head.files:
                entry["oid"] = head.files[item["path"]]
            files.append(entry)
        return {"files": files, "commitOid": head.oid}

    def _commit(self, repo: _Repo, revision: str, body: bytes, create_pr: bool) -> Any:
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise _HubError(400, "The first line of a commit must be its header")
        header = lines[0]["value"]
        head = self._branch_head(repo, revision)
        parent_commit = header.get("parentCommit")
        if parent_commit and not head.oid.startswith(parent_commit.lower()):
            raise _HubError(412, f"A commit has happened since {parent_commit}: {revision} is at {head.oid}")
        tree = dict(head.files)
        for line in lines[1:]:
            key, value = line.get("key"), line.get("value", {})
            path = _clean_path(value.get("path", ""))
            if key == "file":
                content = value.get("content", "")
                data = base64.b64decode(content) if value.get("encoding") == "base64" else content.encode()
                tree[path] = self._store(data)
            elif key == "deletedFile":
                if tree.pop(path, None) is None:
                    raise _HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
            elif key == "deletedFolder":
                inside = [p for p in tree if p.startswith(path + "/")]
                if not inside:
                    raise _HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
                for p in inside:
                    del tree[p]
            else:
                raise _HubError(400, f"Unsupported commit operation {key!r} (this server has no LFS or Xet storage)")
        target = revision
        if create_pr:
            repo.pr_count += 1
            target = f"refs/pr/{repo.pr_count}"
        commit = self._new_commit(repo, head.oid, tree, header.get("summary", ""), header.get("description", ""))
        repo.branches[target] = commit.oid
        answer = {
            "success": True,
            "commitOid": commit.oid,
            "commitUrl": f"{self.url}/{repo.repo_id}/commit/{commit.oid}",
            "hookOutput": "",
        }
        if create_pr:
            answer["pullRequestUrl"] = f"{self.url}/{repo.repo_id}/discussions/{repo.pr_count}"
        return answer

    def _create_branch(self, repo: _Repo, branch: str, payload: dict[str, Any]) -> Any:
        if branch in repo.branches:
            raise _HubError(409, f"Branch {branch} already exists")
        if not branch or _COMMIT_SHA.fullmatch(branch) or branch.startswith("refs/") or " " in branch:
            raise _HubError(400, f"Invalid branch name: {branch!r}")
        repo.branches[branch] = repo.resolve(payload.get("startingPoint") or "main").oid
        return {}

    def _resolve(self, repo_id: str, revision: str, path: str, range_header: str | None) -> _Raw:
        with self._lock:
            repo = self._repo(repo_id)
            commit = repo.resolve(revision)
            oid = commit.files.get(path)
            if oid is None:
                raise _HubError(
                    404, f"{path} does not exist on {revision}", "EntryNotFound", {"X-Repo-Commit": commit.oid}
                )
            data = self._blobs[oid]
        headers = {
            "ETag": f'"{oid}"',
            "X-Repo-Commit": commit.oid,
            "Accept-Ranges": "bytes",
            "Content-Type": mimetypes.guess_type(path)[0] or "application/octet-stream",
        }
        match = _RANGE.fullmatch(range_header or "")
        if match is None or not any(match.groups()):
            return _Raw(200, data, headers)
        start, end = match.groups()
        first = int(start) if start else max(len(data) - int(end), 0)
        last = min(int(end), len(data) - 1) if start and end else len(data) - 1
        if first > last:
            headers["Content-Range"] = f"bytes */{len(data)}"
            return _Raw(416, b"", headers)
        headers["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
        return _Raw(206, data[first : last + 1], headers)


class _Unhandled(Exception):
    """No route matches."""


@dataclass
class _Raw:
    status: int
    data: bytes
    headers: dict[str, str]


def _json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body or b"{}")
    except ValueError as exc:
        raise _HubError(400, f"Body is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise _HubError(400, "Body must be a JSON object")
    return value


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so the client's connection pool never holds a socket to a
    # server that a test stopped.
    protocol_version = "HTTP/1.0"
    server_version = "LocalHub/1.0"

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _dispatch(self, method: str) -> None:
        hub: HubServer = self.server.hub  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        # Split before unquoting: revisions and tree paths arrive with their "/" quoted as %2F.
        segments = [unquote(s) for s in parts.path.split("/")[1:]]
        query = parse_qs(parts.query, keep_blank_values=True)
        request = HubRequest(method, unquote(parts.path), query, self.headers.get("Authorization"))
        hub.requests.append(request)
        body = self._read_body()
        try:
            result = hub._route(method, segments, query, body, self.headers.get("Range"))
        except _Unhandled:
            hub.unhandled.append(request)
            logger.warning("HubServer: no route for %s %s", method, self.path)
            self._send_json(404, {"error": f"No route for {method} {parts.path}"}, {"X-Error-Message": "Not found"})
            return
        except _HubError as error:
            headers = {"X-Error-Message": error.message, **error.headers}
            if error.code:
                headers["X-Error-Code"] = error.code
            self._send_json(error.status, {"error": error.message, **error.extra}, headers)
            return
        except Exception:
            hub.errors.append(f"{method} {self.path}\n{traceback.format_exc()}")
            logger.exception("HubServer: error answering %s %s", method, self.path)
            self._send_json(500, {"error": "Internal error in HubServer"}, {})
            return
        if isinstance(result, _Raw):
            self._send(result.status, result.data, result.headers)
        else:
            self._send_json(200, result, {})

    def _send_json(self, status: int, value: Any, headers: dict[str, str]) -> None:
        self._send(status, json.dumps(value).encode(), {"Content-Type": "application/json", **headers})

    def _send(self, status: int, data: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


# -- client configuration ----------------------------------------------------------------------------------


def _patch(monkeypatch: pytest.MonkeyPatch, module: Any, name: str, value: Any) -> None:
    # Only names this client version has: other versions define some of them elsewhere or not at all.
    if hasattr(module, name):
        monkeypatch.setattr(module, name, value)


def forbid_remote_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any socket connection or name lookup to a host other than the loopback one fail."""
    local = {"127.0.0.1", "::1", "localhost"}
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in local:
            raise ConnectionRefusedError(f"test tried to reach {address[0]}: only the local Hub server is allowed")
        return real_connect(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name is not None and name not in local:
            raise socket.gaierror(f"test tried to look up {name}: only the local Hub server is allowed")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def configure_client(
    monkeypatch: pytest.MonkeyPatch,
    url: str,
    cache_dir: str | Path,
    *,
    token: str = DUMMY_TOKEN,
    block_remote: bool = True,
) -> Path:
    """Point an already imported `huggingface_hub` at `url`, with `cache_dir` as `HF_HOME`; returns the hub cache.

    Sets the environment (for subprocesses and later imports) and patches the module attributes the client
    read from it at import time: the endpoint, the cache and token paths, offline mode, telemetry, Xet and
    progress bars, and the endpoint of the module-level `HfApi` behind `huggingface_hub.upload_folder` etc.
    With `block_remote`, connections to any host but the loopback one fail.
    """
    from huggingface_hub import constants, hf_api
    from huggingface_hub.utils import close_session

    url = url.rstrip("/")
    home = Path(cache_dir)
    hub_cache = home / "hub"
    hub_cache.mkdir(parents=True, exist_ok=True)
    env = {
        "HF_ENDPOINT": url,
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(hub_cache),
        "HF_HUB_OFFLINE": "0",
        "HF_TOKEN": token,
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, ",".join(filter(None, [os.environ.get(name), "127.0.0.1", "localhost"])))
    for name in (
        "HUGGINGFACE_HUB_CACHE",
        "HUGGINGFACE_ASSETS_CACHE",
        "HF_TOKEN_PATH",
        "HF_XET_CACHE",
        "TRANSFORMERS_OFFLINE",
        "HF_OIDC_RESOURCE",
        "HUGGING_FACE_HUB_TOKEN",
        "HUGGINGFACE_CO_STAGING",
    ):
        monkeypatch.delenv(name, raising=False)

    host = urlsplit(url).hostname or ""
    values: dict[str, Any] = {
        "ENDPOINT": url,
        "HUGGINGFACE_CO_URL_TEMPLATE": url + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_URL_HOSTS": frozenset(getattr(constants, "HF_URL_HOSTS", frozenset()) | {host}),
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(hub_cache),
        "HUGGINGFACE_HUB_CACHE": str(hub_cache),
        "HF_ASSETS_CACHE": str(home / "assets"),
        "HUGGINGFACE_ASSETS_CACHE": str(home / "assets"),
        "HF_XET_CACHE": str(home / "xet"),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
        "AGENT_HARNESSES_PATH": str(home / ".agent_harnesses.json"),
        "CHECK_FOR_UPDATE_DONE_PATH": str(home / ".check_for_update_done"),
        "CHECK_FOR_SKILL_UPDATE_DONE_PATH": str(home / ".check_for_skill_update_done"),
        "HF_HUB_OFFLINE": False,
        "HF_HUB_DISABLE_TELEMETRY": True,
        "HF_HUB_DISABLE_XET": True,
        "HF_HUB_DISABLE_PROGRESS_BARS": True,
        "HF_HUB_DISABLE_IMPLICIT_TOKEN": False,
        "HF_HUB_DISABLE_UPDATE_CHECK": True,
    }
    for name, value in values.items():
        _patch(monkeypatch, constants, name, value)
    # Modules that copied a constant into their own namespace with `from ..constants import NAME`.
    for module_name, name, value in (
        ("huggingface_hub.utils.tqdm", "HF_HUB_DISABLE_PROGRESS_BARS", True),
        ("huggingface_hub.utils._cache_manager", "HF_HUB_CACHE", str(hub_cache)),
        ("huggingface_hub.utils._cache_assets", "HF_ASSETS_CACHE", str(home / "assets")),
    ):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue
        _patch(monkeypatch, module, name, value)
    # `huggingface_hub.create_repo`, `upload_folder`, ... are methods of one `HfApi` built at import time.
    monkeypatch.setattr(hf_api.api, "endpoint", url)
    # The shared HTTP client read the proxy settings when it was built: let the next call build a new one.
    close_session()
    if block_remote:
        forbid_remote_connections(monkeypatch)
    return hub_cache


def go_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Switch the client to offline mode: downloads are served from the cache, any HTTP call fails."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


@pytest.fixture(name="hub")
def hub_fixture(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[HubServer]:
    """Fixture `hub`: a running `HubServer`, the client pointed at it, its cache under `tmp_path / "hf-home"`.

    Import `hub_fixture` into a test module to use it there.
    """
    with HubServer() as server:
        configure_client(monkeypatch, server.url, tmp_path / "hf-home")
        yield server
