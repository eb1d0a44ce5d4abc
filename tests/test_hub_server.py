"""The local Hub server with the real huggingface_hub client: push, list, download, branches, errors, offline."""

import io
import json
import re
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from PIL import Image
from safetensors.numpy import save as save_safetensors

from hub_server import DUMMY_TOKEN, HubServer, go_offline, hub_fixture  # noqa: F401  (provides the `hub` fixture)

REPO = "user/demo"
WEIGHTS = ["*.json", "*.safetensors"]
README = """---
library_name: gancore
tags:
- gan
- image-generation
---
# Demo generator
"""


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def demo_files() -> dict[str, bytes]:
    return {
        "config.json": json.dumps({"z_dim": 8, "img_resolution": 16}).encode(),
        "model.safetensors": save_safetensors({"w": np.arange(1024, dtype=np.float32)}),
        "README.md": README.encode(),
        "images/sample.png": _png(),
    }


@pytest.fixture
def demo_folder(tmp_path: Path, demo_files: dict[str, bytes]) -> Path:
    folder = tmp_path / "demo"
    for name, data in demo_files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


@pytest.fixture
def pushed(hub: HubServer, demo_folder: Path) -> str:
    api = HfApi()
    api.create_repo(REPO, exist_ok=True)
    return api.upload_folder(folder_path=demo_folder, repo_id=REPO, commit_message="Add demo model").oid


def test_create_repo_and_upload_folder(hub: HubServer, demo_folder: Path, demo_files: dict[str, bytes]) -> None:
    api = HfApi()
    url = api.create_repo(REPO, exist_ok=True)
    assert url.repo_id == REPO and url.startswith(hub.url)
    assert api.create_repo(REPO, exist_ok=True).repo_id == REPO
    with pytest.raises(HfHubHTTPError) as conflict:
        api.create_repo(REPO)
    assert conflict.value.response.status_code == 409

    info = api.upload_folder(folder_path=demo_folder, repo_id=REPO, commit_message="Add demo model")
    assert re.fullmatch(r"[0-9a-f]{40}", info.oid) and info.commit_url.startswith(hub.url)
    assert api.list_repo_files(REPO) == sorted([".gitattributes", *demo_files])
    stored = hub.repo_files(REPO)
    assert {name: stored[name] for name in demo_files} == demo_files

    model = api.model_info(REPO)
    assert model.sha == info.oid
    assert model.card_data.library_name == "gancore" and model.tags == ["gan", "image-generation"]
    assert api.list_repo_commits(REPO)[0].title == "Add demo model"

    # Unchanged files are skipped (preupload answers their oids), so a second push makes no commit.
    assert api.upload_folder(folder_path=demo_folder, repo_id=REPO).oid == info.oid
    assert len(hub.history(REPO)) == 2

    posted = hub.paths("POST")
    for path in ("/api/repos/create", "/api/validate-yaml", f"/api/models/{REPO}/preupload/main"):
        assert path in posted
    assert posted.count(f"/api/models/{REPO}/commit/main") == 1
    assert {r.authorization for r in hub.requests} == {f"Bearer {DUMMY_TOKEN}"}
    assert hub.unhandled == [] and hub.errors == []


def test_hf_hub_download_one_file(hub: HubServer, pushed: str, demo_files: dict[str, bytes]) -> None:
    path = Path(hf_hub_download(REPO, "config.json"))
    assert path.read_bytes() == demo_files["config.json"]
    assert path.parent == Path(constants.HF_HUB_CACHE) / "models--user--demo" / "snapshots" / pushed
    assert "/user/demo/resolve/main/config.json" in hub.paths("HEAD")
    assert "/user/demo/resolve/main/config.json" in hub.paths("GET")


def test_snapshot_download_with_allow_patterns(hub: HubServer, pushed: str, demo_files: dict[str, bytes]) -> None:
    folder = Path(snapshot_download(REPO, allow_patterns=WEIGHTS))
    assert folder.name == pushed
    got = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert got == {name: demo_files[name] for name in ("config.json", "model.safetensors")}
    assert f"/api/models/{REPO}/revision/main" in hub.paths("GET")
    assert hub.unhandled == [] and hub.errors == []


def test_push_to_branch_keeps_main(
    hub: HubServer, pushed: str, demo_folder: Path, demo_files: dict[str, bytes]
) -> None:
    api = HfApi()
    new_config = json.dumps({"z_dim": 16, "img_resolution": 32}).encode()
    (demo_folder / "config.json").write_bytes(new_config)
    # Like the Hub, a commit to a branch that does not exist is refused: create it first.
    with pytest.raises(RevisionNotFoundError):
        api.upload_folder(folder_path=demo_folder, repo_id=REPO, revision="v1")
    api.create_branch(REPO, branch="v1")
    api.create_branch(REPO, branch="v1", exist_ok=True)
    info = api.upload_folder(folder_path=demo_folder, repo_id=REPO, revision="v1", commit_message="Wider")

    assert Path(hf_hub_download(REPO, "config.json", revision="v1")).read_bytes() == new_config
    assert Path(hf_hub_download(REPO, "config.json")).read_bytes() == demo_files["config.json"]
    v1 = Path(snapshot_download(REPO, revision="v1", allow_patterns=WEIGHTS))
    assert v1.name == info.oid and (v1 / "config.json").read_bytes() == new_config
    assert (v1 / "model.safetensors").read_bytes() == demo_files["model.safetensors"]
    by_sha = hf_hub_download(REPO, "config.json", revision=pushed)
    assert Path(by_sha).read_bytes() == demo_files["config.json"]

    assert {b.name: b.target_commit for b in api.list_repo_refs(REPO).branches} == {"main": pushed, "v1": info.oid}
    assert [c.title for c in api.list_repo_commits(REPO, revision="v1")] == [
        "Wider",
        "Add demo model",
        "initial commit",
    ]
    assert api.model_info(REPO, revision="v1").sha == info.oid
    assert hub.unhandled == [] and hub.errors == []


def test_missing_repo_file_and_revision(hub: HubServer, pushed: str) -> None:
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("user/missing", "config.json")
    with pytest.raises(RepositoryNotFoundError):
        snapshot_download("user/missing")
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(REPO, "missing.json")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(REPO, "config.json", revision="no-such-branch")
    assert hub.unhandled == [] and hub.errors == []


def test_offline_mode_serves_the_cache(
    hub: HubServer, pushed: str, demo_files: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    online = snapshot_download(REPO, allow_patterns=WEIGHTS)
    hub.stop()
    seen = len(hub.requests)
    go_offline(monkeypatch)

    # The same patterns as online: the cached tree listing lets the client tell that the snapshot is complete.
    assert snapshot_download(REPO, allow_patterns=WEIGHTS) == online
    assert Path(hf_hub_download(REPO, "config.json")).read_bytes() == demo_files["config.json"]
    with pytest.raises(LocalEntryNotFoundError):
        hf_hub_download(REPO, "README.md")
    assert len(hub.requests) == seen


def test_module_level_functions_reach_the_server(hub: HubServer) -> None:
    huggingface_hub.create_repo("user/other", private=True)
    huggingface_hub.upload_file(path_or_fileobj=b"hello", path_in_repo="notes/a.txt", repo_id="user/other")
    assert hub.repo_files("user/other")["notes/a.txt"] == b"hello"
    assert huggingface_hub.model_info("user/other").private is True
    assert huggingface_hub.hf_hub_url("user/other", "notes/a.txt").startswith(hub.url)
    with pytest.raises(Exception, match="only the local Hub server"):
        HfApi(endpoint="https://huggingface.co").model_info("openai-community/gpt2")


def test_pull_requests_parent_commit_and_seeded_repos(hub: HubServer) -> None:
    api = HfApi()
    first = hub.commit("user/seeded", {"config.json": b"{}", "weights/a.bin": b"\x00" * 10})
    assert Path(hf_hub_download("user/seeded", "weights/a.bin")).read_bytes() == b"\x00" * 10

    pr = api.upload_file(path_or_fileobj=b'{"a": 1}', path_in_repo="config.json", repo_id="user/seeded", create_pr=True)
    assert pr.pr_num == 1
    assert Path(hf_hub_download("user/seeded", "config.json", revision=pr.pr_revision)).read_bytes() == b'{"a": 1}'
    assert hub.repo_files("user/seeded")["config.json"] == b"{}"

    api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="user/seeded", parent_commit=first)
    with pytest.raises(HfHubHTTPError) as stale:
        api.upload_file(path_or_fileobj=b"y", path_in_repo="y.txt", repo_id="user/seeded", parent_commit=first)
    assert stale.value.response.status_code == 412
    assert [e.path for e in api.list_repo_tree("user/seeded")] == ["weights", ".gitattributes", "config.json", "x.txt"]
    assert hub.unhandled == [] and hub.errors == []
