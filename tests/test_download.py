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


def test_a_download_cut_half_way_leaves_nothing_that_would_be_used(tmp_path, monkeypatch):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Cut(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"x" * 1000)  # then the connection closes

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Cut)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("GANCORE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GANCORE_OFFLINE", raising=False)
    url = f"http://127.0.0.1:{server.server_address[1]}/big.bin"
    try:
        with pytest.raises(DownloadError, match=r"big\.bin"):
            download(url, progress=False, timeout=10)
    finally:
        server.shutdown()
        server.server_close()
    folder = cached_path(url).parent
    assert not (folder / "big.bin").exists() and not list(folder.glob("*.part-*"))


def test_two_processes_download_once(server, tmp_path):
    import os
    import subprocess
    import sys

    base, www, requests = server
    (www / "shared.bin").write_bytes(os.urandom(2_000_000))
    script = "from gancore.download import download; import sys; print(download(sys.argv[1], progress=False))"
    procs = [subprocess.Popen([sys.executable, "-c", script, f"{base}/shared.bin"], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "GANCORE_CACHE": str(tmp_path / "cache")}) for _ in range(2)]
    paths = {p.communicate(timeout=120)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert len(paths) == 1 and requests == ["/shared.bin"]
    assert open(paths.pop(), "rb").read() == (www / "shared.bin").read_bytes()
