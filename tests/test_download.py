"""The download helper against a loopback HTTP server: cache, checksums, atomic writes, offline."""

import hashlib

import pytest

from gancore.download import DownloadError, cached_path, download


@pytest.fixture
def server(http_files):
    return http_files.base, http_files.folder, http_files.requests


def test_a_file_is_fetched_once_and_checked(server):
    base, www, requests = server
    payload = b"weights" * 1000
    (www / "net.bin").write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()
    path = download(f"{base}/net.bin", sha256=digest, progress=False)
    assert path.read_bytes() == payload and path == cached_path(f"{base}/net.bin")
    assert download(f"{base}/net.bin", sha256=digest, progress=False) == path
    assert requests == ["/net.bin"]  # the second call found it in the cache
    assert not list(path.parent.glob("*.part-*"))


def test_a_wrong_checksum_leaves_nothing_behind(server):
    base, www, _ = server
    (www / "net.bin").write_bytes(b"tampered")
    with pytest.raises(DownloadError, match="does not match"):
        download(f"{base}/net.bin", sha256="0" * 64, progress=False)
    folder = cached_path(f"{base}/net.bin").parent
    assert not (folder / "net.bin").exists() and not list(folder.glob("*.part-*"))


def test_the_hash_prefix_in_a_name_is_checked(server):
    base, www, _ = server
    payload = b"alexnet"
    good = f"alexnet-{hashlib.sha256(payload).hexdigest()[:8]}.pth"
    (www / good).write_bytes(payload)
    (www / "alexnet-deadbeef.pth").write_bytes(payload)
    assert download(f"{base}/{good}", progress=False).read_bytes() == payload
    with pytest.raises(DownloadError, match="deadbeef"):
        download(f"{base}/alexnet-deadbeef.pth", progress=False)


def test_a_corrupt_cached_file_is_fetched_again(server):
    base, www, requests = server
    (www / "net.bin").write_bytes(b"good")
    digest = hashlib.sha256(b"good").hexdigest()
    target = cached_path(f"{base}/net.bin")
    target.parent.mkdir(parents=True)
    target.write_bytes(b"go")  # an earlier, broken copy
    assert download(f"{base}/net.bin", sha256=digest, progress=False).read_bytes() == b"good"
    assert requests == ["/net.bin"]


def test_offline_and_unreachable_name_the_file_and_where_to_put_it(server, monkeypatch):
    base, www, requests = server
    (www / "net.bin").write_bytes(b"x")
    monkeypatch.setenv("GANCORE_OFFLINE", "1")
    with pytest.raises(DownloadError, match=r"net\.bin.*downloads are off.*put it at .*net\.bin"):
        download(f"{base}/net.bin", progress=False)
    assert requests == []
    monkeypatch.delenv("GANCORE_OFFLINE")
    with pytest.raises(DownloadError, match=r"could not download .*missing\.bin.*put it at"):
        download(f"{base}/missing.bin", progress=False)
