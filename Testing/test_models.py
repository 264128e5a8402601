"""Model registry and downloads: manifest validation, resource and cache locations, verified downloads
against a loopback HTTP server (Range, dropped connections, bad hashes), error messages, manual drop,
and the ``ddic models`` CLI end to end. Nothing here reaches beyond 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import ssl
import threading
import urllib.error
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from ddic.cli.main import main
from ddic.errors import DDICModelError
from ddic.models import (
    cached_path,
    default_cache_dir,
    download,
    is_cached,
    load_manifest,
    model_cache_dir,
    remove,
    resolve_model,
    resources_dir,
    verify,
)
from ddic.models.cache import partial_path, stamp_path
from ddic.models.manifest import parse_manifest
from ddic.models.resolve import verify_bundled

REPO = Path(__file__).resolve().parents[1]
PAYLOAD = np.random.default_rng(7).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
SHA = hashlib.sha256(PAYLOAD).hexdigest()
PROXY_VARS = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")


# --------------------------------------------------------------------------- loopback server

class FileServer:
    """Serves ``files`` on 127.0.0.1 with HTTP Range support; can drop a connection mid-file, ignore
    ranges or answer with an error status, and records every request (path, Range header)."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.drop_after: dict[str, int] = {}  # path -> bytes sent before the first response is cut
        self.ignore_range = False
        self.status: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                if self.path in server.status:
                    self.send_error(server.status[self.path])
                    return
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng and not server.ignore_range:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                cut = server.drop_after.pop(self.path, None)
                if cut is not None:
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = FileServer()
    srv.files["/m.bin"] = PAYLOAD
    yield srv
    srv.close()


@pytest.fixture(autouse=True)
def no_proxy_env(monkeypatch):
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "")
    for var in ("DDIC_CACHE_DIR", "DDIC_MODEL_MANIFEST", "DDIC_RESOURCES_DIR", "SSL_CERT_FILE",
                "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(var, raising=False)


def entry_dict(url, **over):
    d = {"id": "test-model", "kind": "sam", "title": "Test model", "url": url, "bytes": len(PAYLOAD),
         "sha256": SHA, "license": "Apache-2.0", "memory": {"ram_gb": 1.0, "vram_gb": None, "note": "test"},
         "description": "a test entry", "arch": "vit_b"}
    d.update(over)
    return {k: v for k, v in d.items() if v is not ...}


def write_manifest(folder: Path, *entries) -> Path:
    path = folder / "manifest.json"
    path.write_text(json.dumps({"format": "ddic-model-manifest", "format_version": 1, "models": list(entries)}))
    return path


def make_manifest(tmp_path, *entries):
    return load_manifest(write_manifest(tmp_path, *entries))


def refused_url() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/m.bin"


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --------------------------------------------------------------------------- downloads

def test_download_stores_verified_file_and_reports_progress(tmp_path, server):
    entry = make_manifest(tmp_path, entry_dict(server.url + "/m.bin")).get("test-model")
    cache = tmp_path / "cache"
    calls = []
    path = download(entry, cache_dir=cache, progress=lambda d, t, m: calls.append((d, t)))
    assert path == cache / "m.bin" and path.read_bytes() == PAYLOAD
    assert not partial_path(entry, cache).exists()
    assert json.loads(stamp_path(path).read_text())["sha256"] == SHA
    assert calls[-1] == (len(PAYLOAD), len(PAYLOAD)) and all(t == len(PAYLOAD) for _, t in calls)
    assert is_cached(entry, cache) and verify(entry, cache_dir=cache) == path


def test_bad_hash_leaves_nothing_behind(tmp_path, server):
    wrong = hashlib.sha256(b"something else").hexdigest()
    url = server.url + "/m.bin"
    entry = make_manifest(tmp_path, entry_dict(url, sha256=wrong)).get("test-model")
    cache = tmp_path / "cache"
    with pytest.raises(DDICModelError) as err:
        download(entry, cache_dir=cache)
    msg = str(err.value)
    assert url in msg and wrong in msg and SHA in msg
    assert files_in(cache) == []


def test_cached_file_is_reused_without_a_request(tmp_path, server):
    entry = make_manifest(tmp_path, entry_dict(server.url + "/m.bin")).get("test-model")
    cache = tmp_path / "cache"
    download(entry, cache_dir=cache)
    assert len(server.requests) == 1
    assert download(entry, cache_dir=cache).read_bytes() == PAYLOAD
    assert resolve_model("test-model", manifest=load_manifest(tmp_path / "manifest.json"),
                         cache_dir=cache) == cache / "m.bin"
    assert len(server.requests) == 1


def test_dropped_connection_is_resumed_with_range(tmp_path, server):
    server.drop_after["/m.bin"] = 100_000
    entry = make_manifest(tmp_path, entry_dict(server.url + "/m.bin")).get("test-model")
    cache = tmp_path / "cache"
    messages = []
    path = download(entry, cache_dir=cache, progress=lambda d, t, m: messages.append(m))
    assert path.read_bytes() == PAYLOAD
    assert server.requests == [("/m.bin", None), ("/m.bin", "bytes=100000-")]
    assert any("dropped" in m for m in messages)
    assert files_in(cache) == [".m.bin.verified.json", "m.bin"]


def test_cancel_from_progress_keeps_partial_for_resume(tmp_path, server, monkeypatch):
    import importlib

    monkeypatch.setattr(importlib.import_module("ddic.models.download"), "CHUNK", 1 << 16)
    entry = make_manifest(tmp_path, entry_dict(server.url + "/m.bin")).get("test-model")
    cache = tmp_path / "cache"

    class Cancelled(Exception):
        pass

    def cancel_midway(done, total, message):
        if done >= 100_000:
            raise Cancelled

    with pytest.raises(Cancelled):
        download(entry, cache_dir=cache, progress=cancel_midway)
    kept = partial_path(entry, cache).stat().st_size
    assert 0 < kept < len(PAYLOAD) and not (cache / "m.bin").exists()
    assert download(entry, cache_dir=cache).read_bytes() == PAYLOAD
    assert server.requests[-1] == ("/m.bin", f"bytes={kept}-")


def test_dropped_connection_restarts_when_server_ignores_range(tmp_path, server):
    server.drop_after["/m.bin"] = 50_000
    server.ignore_range = True
    entry = make_manifest(tmp_path, entry_dict(server.url + "/m.bin")).get("test-model")
    path = download(entry, cache_dir=tmp_path / "cache")
    assert path.read_bytes() == PAYLOAD and len(server.requests) == 2


def test_failed_forced_download_keeps_the_good_file(tmp_path, server):
    entry = make_manifest(tmp_path, entry_dict(server.url + "/m.bin")).get("test-model")
    cache = tmp_path / "cache"
    path = download(entry, cache_dir=cache)
    server.status["/m.bin"] = 503
    with pytest.raises(DDICModelError, match="HTTP 503"):
        download(entry, cache_dir=cache, force=True)
    assert verify(entry, cache_dir=cache, use_stamp=False) == path
    del server.status["/m.bin"]
    assert download(entry, cache_dir=cache, force=True) == path and len(server.requests) == 3


def test_partial_from_an_earlier_run_is_resumed(tmp_path, server):
    entry = make_manifest(tmp_path, entry_dict(server.url + "/m.bin")).get("test-model")
    cache = tmp_path / "cache"
    cache.mkdir()
    partial_path(entry, cache).write_bytes(PAYLOAD[:123_456])
    assert download(entry, cache_dir=cache).read_bytes() == PAYLOAD
    assert server.requests == [("/m.bin", "bytes=123456-")]


def test_corrupt_partial_is_deleted_with_the_hash_error(tmp_path, server):
    entry = make_manifest(tmp_path, entry_dict(server.url + "/m.bin")).get("test-model")
    cache = tmp_path / "cache"
    cache.mkdir()
    partial_path(entry, cache).write_bytes(b"\0" * 1000)
    with pytest.raises(DDICModelError, match="SHA-256"):
        download(entry, cache_dir=cache)
    assert files_in(cache) == []


def test_connection_dropping_twice_keeps_partial_and_names_url_and_folder(tmp_path):
    srv = FileServer()
    srv.files["/m.bin"] = PAYLOAD
    try:
        class Dropper:
            def open(self, request, timeout=None):
                raise urllib.error.URLError(ConnectionResetError(104, "Connection reset by peer"))

        entry = make_manifest(tmp_path, entry_dict(srv.url + "/m.bin")).get("test-model")
        cache = tmp_path / "cache"
        with pytest.raises(DDICModelError, match="dropped") as err:
            download(entry, cache_dir=cache, opener=Dropper())
        assert srv.url + "/m.bin" in str(err.value) and str(cache / "m.bin") in str(err.value)
    finally:
        srv.close()


def test_mirror_is_used_when_main_url_fails(tmp_path, server):
    server.files["/mirror.bin"] = PAYLOAD
    entry = make_manifest(tmp_path, entry_dict(server.url + "/gone.bin", filename="m.bin",
                                               mirrors=[server.url + "/mirror.bin"])).get("test-model")
    assert download(entry, cache_dir=tmp_path / "cache").read_bytes() == PAYLOAD
    assert [p for p, _ in server.requests] == ["/gone.bin", "/mirror.bin"]


def test_size_mismatch_fails_fast_as_proxy_page(tmp_path, server):
    server.files["/blocked"] = b"<html>Access denied by your proxy</html>"
    entry = make_manifest(tmp_path, entry_dict(server.url + "/blocked", filename="m.bin")).get("test-model")
    cache = tmp_path / "cache"
    with pytest.raises(DDICModelError, match="proxy or firewall") as err:
        download(entry, cache_dir=cache)
    assert str(len(PAYLOAD)) in str(err.value)
    assert files_in(cache) == []


# --------------------------------------------------------------------------- hashes and manual drop

def test_unpinned_hash_is_refused_unless_given(tmp_path, server):
    entry = make_manifest(tmp_path, entry_dict(server.url + "/m.bin", sha256=None)).get("test-model")
    cache = tmp_path / "cache"
    with pytest.raises(DDICModelError, match="--sha256"):
        download(entry, cache_dir=cache)
    assert server.requests == []
    path = download(entry, cache_dir=cache, expected_sha256=SHA.upper())
    assert path.read_bytes() == PAYLOAD
    # the explicit hash is remembered in the stamp, so the file now verifies
    assert verify(entry, cache_dir=cache) == path


def test_user_hash_contradicting_the_pin_is_refused(tmp_path, server):
    entry = make_manifest(tmp_path, entry_dict(server.url + "/m.bin")).get("test-model")
    with pytest.raises(DDICModelError, match="differs from the one pinned"):
        download(entry, cache_dir=tmp_path / "cache", expected_sha256="0" * 64)
    assert server.requests == []


def test_manual_drop_is_verified_and_accepted(tmp_path):
    manifest = make_manifest(tmp_path, entry_dict("https://example.invalid/m.bin"))
    entry = manifest.get("test-model")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "m.bin").write_bytes(PAYLOAD)
    assert resolve_model("test-model", manifest=manifest, cache_dir=cache) == cache / "m.bin"
    # download() accepts it as well, without any request (the URL cannot resolve)
    assert download(entry, cache_dir=cache) == cache / "m.bin"


def test_wrong_manual_drop_is_rejected_with_both_hashes(tmp_path):
    manifest = make_manifest(tmp_path, entry_dict("https://example.invalid/m.bin"))
    cache = tmp_path / "cache"
    cache.mkdir()
    wrong = bytes(reversed(PAYLOAD))
    (cache / "m.bin").write_bytes(wrong)
    with pytest.raises(DDICModelError) as err:
        resolve_model("test-model", manifest=manifest, cache_dir=cache)
    assert SHA in str(err.value) and hashlib.sha256(wrong).hexdigest() in str(err.value)


def test_stamp_is_invalidated_when_the_file_changes(tmp_path, server):
    entry = make_manifest(tmp_path, entry_dict(server.url + "/m.bin")).get("test-model")
    cache = tmp_path / "cache"
    path = download(entry, cache_dir=cache)
    path.write_bytes(bytes(reversed(PAYLOAD)))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    with pytest.raises(DDICModelError, match="not the expected file"):
        verify(entry, cache_dir=cache)


def test_remove_deletes_file_partial_and_stamp(tmp_path, server):
    entry = make_manifest(tmp_path, entry_dict(server.url + "/m.bin")).get("test-model")
    cache = tmp_path / "cache"
    path = download(entry, cache_dir=cache)
    partial_path(entry, cache).write_bytes(b"x")
    removed = remove(entry, cache)
    assert set(removed) == {path, partial_path(entry, cache), stamp_path(path)}
    assert files_in(cache) == [] and not is_cached(entry, cache)


# --------------------------------------------------------------------------- error messages

def test_connection_refused_names_url_and_cache_folder(tmp_path):
    url = refused_url()
    entry = make_manifest(tmp_path, entry_dict(url)).get("test-model")
    cache = tmp_path / "cache"
    with pytest.raises(DDICModelError, match="refused") as err:
        download(entry, cache_dir=cache, timeout=5)
    assert url in str(err.value) and str(cache / "m.bin") in str(err.value)
    assert SHA in str(err.value)  # the manual-drop hint gives the hash to check
    assert files_in(cache) == []


def test_http_404_names_status_url_and_cache_folder(tmp_path, server):
    url = server.url + "/missing.bin"
    entry = make_manifest(tmp_path, entry_dict(url)).get("test-model")
    cache = tmp_path / "cache"
    with pytest.raises(DDICModelError, match="HTTP 404") as err:
        download(entry, cache_dir=cache)
    assert url in str(err.value) and str(cache / "missing.bin") in str(err.value)


def test_unreachable_proxy_is_reported_as_proxy_error(tmp_path, monkeypatch):
    proxy = refused_url().rsplit("/", 1)[0]
    monkeypatch.setenv("http_proxy", proxy)
    url = "http://models.example.org/m.bin"
    entry = make_manifest(tmp_path, entry_dict(url)).get("test-model")
    with pytest.raises(DDICModelError) as err:
        download(entry, cache_dir=tmp_path / "cache", timeout=5)
    msg = str(err.value)
    assert "proxy" in msg and proxy in msg and url in msg


class RaisingOpener:
    def __init__(self, exc):
        self.exc = exc
        self.calls = 0

    def open(self, request, timeout=None):
        self.calls += 1
        raise self.exc


@pytest.mark.parametrize("exc, expected, calls", [
    (urllib.error.URLError(ssl.SSLCertVerificationError(1, "certificate verify failed: self-signed "
                                                          "certificate in certificate chain")),
     ["SSL certificate", "corporate proxy", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"], 1),
    (urllib.error.URLError(socket.gaierror(-2, "Name or service not known")), ["could not be found", "offline"], 1),
    (urllib.error.URLError(TimeoutError("timed out")), ["timed out", "firewall"], 2),
    (OSError("Tunnel connection failed: 403 Forbidden"), ["proxy", "refused to connect"], 1),
    (urllib.error.HTTPError("https://models.example.org/m.bin", 407, "Proxy Authentication Required", {}, None),
     ["HTTP 407", "proxy"], 1),
])
def test_network_errors_are_told_apart(tmp_path, exc, expected, calls):
    url = "https://models.example.org/m.bin"
    entry = make_manifest(tmp_path, entry_dict(url)).get("test-model")
    opener = RaisingOpener(exc)
    with pytest.raises(DDICModelError) as err:
        download(entry, cache_dir=tmp_path / "cache", opener=opener)
    msg = str(err.value)
    for part in expected:
        assert part in msg, (part, msg)
    assert url in msg and str(tmp_path / "cache" / "m.bin") in msg
    assert opener.calls == calls  # one retry for a dropped / timed-out connection only


def test_disk_full_is_reported_before_any_request(tmp_path, server, monkeypatch):
    import importlib
    import shutil

    download_module = importlib.import_module("ddic.models.download")
    entry = make_manifest(tmp_path, entry_dict(server.url + "/m.bin")).get("test-model")
    monkeypatch.setattr(download_module.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10, 10, 10))
    with pytest.raises(DDICModelError, match="Not enough disk space") as err:
        download(entry, cache_dir=tmp_path / "cache")
    assert str(tmp_path / "cache") in str(err.value) and server.requests == []


def test_missing_model_error_names_the_download_command(tmp_path):
    manifest = make_manifest(tmp_path, entry_dict("https://example.invalid/m.bin"))
    with pytest.raises(DDICModelError, match="ddic models download test-model"):
        resolve_model("test-model", manifest=manifest, cache_dir=tmp_path / "cache")


def test_local_file_specs(tmp_path):
    manifest = make_manifest(tmp_path, entry_dict("https://example.invalid/m.bin"))
    mine = tmp_path / "my_weights.pth"
    mine.write_bytes(b"weights")
    assert resolve_model(str(mine), manifest=manifest) == mine
    named = tmp_path / "local" / "m.bin"  # same name as a manifest entry → its hash is checked
    named.parent.mkdir()
    named.write_bytes(b"not the model")
    with pytest.raises(DDICModelError, match="has 13 bytes, but model 'test-model' has 300000"):
        resolve_model(named, manifest=manifest)
    named.write_bytes(bytes(reversed(PAYLOAD)))
    with pytest.raises(DDICModelError, match=f"expected {SHA}"):
        resolve_model(named, manifest=manifest)
    assert resolve_model(named, manifest=manifest, check_sha256=False) == named
    named.write_bytes(PAYLOAD)
    assert resolve_model(named, manifest=manifest) == named
    with pytest.raises(DDICModelError, match="neither a model id"):
        resolve_model("no-such-model", manifest=manifest)


# --------------------------------------------------------------------------- manifest

def test_shipped_manifest_pins_the_documented_checkpoints():
    manifest = load_manifest(REPO / "Resources" / "models" / "manifest.json")
    vit_b = manifest.get("sam-vit-b")
    assert vit_b.bytes == 375_042_383
    assert vit_b.sha256 == "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912"
    assert vit_b.file_name == "sam_vit_b_01ec64.pth" and vit_b.arch == "vit_b"
    assert manifest.get("sam-vit-h").bytes == 2_564_550_879
    assert manifest.get("sam2.1-hiera-tiny").sha256.startswith("7402e0d8")
    assert {e.id for e in manifest if e.kind == "sam"} == {"sam-vit-b", "sam-vit-l", "sam-vit-h",
                                                          "sam2.1-hiera-tiny", "mobile-sam"}
    for e in manifest:
        if e.is_bundled:
            assert e.url is None and e.bundled_path.parent == REPO / "Resources" / "models"
        else:
            assert e.sha256 and e.bytes and e.url.startswith("https://") and e.license


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["models"][0].pop("license"), "missing field(s) license"),
    (lambda d: d["models"][0].update(sha256="01ec64d29a2fca3f0661936605ae66f8"), "64 lower-case hex"),
    (lambda d: d["models"][0].update(bytes=-5), "'bytes' must be a positive integer"),
    (lambda d: d["models"][0].update(kind="gan"), "'kind' must be one of"),
    (lambda d: d["models"][0].update(sha_256="x"), "unknown field(s) sha_256"),
    (lambda d: d["models"][0].update(url="ftp://x/y.pth"), "is not an http(s) URL"),
    (lambda d: d["models"][0].update(memory="4 GB"), "'memory' must be an object"),
    (lambda d: d["models"].append(dict(d["models"][0])), "lists the id 'test-model' twice"),
    (lambda d: d["models"].append({**d["models"][0], "id": "b", "kind": "bundled", "url": None,
                                   "path": "../outside"}), "relative path inside"),
    (lambda d: d.update(format="other"), "not a DDIC model manifest"),
    (lambda d: d.update(format_version=99), "format_version 99"),
])
def test_manifest_validation_errors(tmp_path, mutate, message):
    data = {"format": "ddic-model-manifest", "format_version": 1,
            "models": [entry_dict("https://example.org/m.bin")]}
    mutate(data)
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DDICModelError) as err:
        load_manifest(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_manifest_bad_json_and_missing_file(tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text('{"format": "ddic-model-manifest",\n "models": [,]}')
    with pytest.raises(DDICModelError, match="not valid JSON \\(line 2"):
        load_manifest(path)
    with pytest.raises(DDICModelError, match="not found"):
        load_manifest(tmp_path / "nope.json")
    with pytest.raises(DDICModelError, match="Unknown model id 'x'"):
        parse_manifest({"format": "ddic-model-manifest", "format_version": 1, "models": []}, path).get("x")


def test_bundled_model_resolves_and_verifies_against_its_card(tmp_path):
    # a card as `ddic train` writes it; verification only reads the weights hash, so the bytes are arbitrary
    folder = tmp_path / "demo-us"
    folder.mkdir()
    (folder / "us.safetensors").write_bytes(PAYLOAD[:1000])
    card = {"format": "ddic-model", "format_version": 1, "domain": "us", "preset": "tiny", "network": {},
            "image_size": 64, "pixel_spacing_mm": 2.188, "schedule": {}, "normalisation": {"kind": "uint8"},
            "weights_file": "us.safetensors", "weights_sha256": hashlib.sha256(PAYLOAD[:1000]).hexdigest()}
    (folder / "us.json").write_text(json.dumps(card))
    manifest = make_manifest(tmp_path, {"id": "demo", "kind": "bundled", "title": "Demo", "path": "demo-us",
                                        "license": "MIT", "memory": {"ram_gb": 0.5},
                                        "description": "bundled demo"})
    entry = manifest.get("demo")
    assert resolve_model("demo", manifest=manifest) == folder
    assert download(entry) == folder  # bundled: nothing to download
    assert verify_bundled(entry) == folder
    weights = folder / "us.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x01")
    with pytest.raises(DDICModelError, match="damaged"):
        verify_bundled(entry)


# --------------------------------------------------------------------------- locations

def test_resources_dir_finds_the_checkout_and_env_overrides(tmp_path, monkeypatch):
    assert resources_dir() == REPO / "Resources" / "models"
    other = tmp_path / "Resources" / "models"
    other.mkdir(parents=True)
    write_manifest(other)
    monkeypatch.setenv("DDIC_RESOURCES_DIR", str(other))
    assert resources_dir() == other
    monkeypatch.setenv("DDIC_RESOURCES_DIR", str(other.parent))  # the Resources folder is accepted too
    assert resources_dir() == other
    monkeypatch.setenv("DDIC_RESOURCES_DIR", str(tmp_path / "nothing"))
    with pytest.raises(DDICModelError, match="DDIC_RESOURCES_DIR"):
        resources_dir()


def test_resources_dir_handles_slicer_and_wheel_layouts(tmp_path):
    slicer_pkg = tmp_path / "lib" / "Slicer-5.12" / "qt-scripted-modules" / "ddic"
    slicer_pkg.mkdir(parents=True)
    slicer_res = slicer_pkg.parent / "Resources" / "models"
    slicer_res.mkdir(parents=True)
    write_manifest(slicer_res)
    assert resources_dir(package_dir=slicer_pkg) == slicer_res

    wheel_pkg = tmp_path / "site-packages" / "ddic"
    wheel_res = wheel_pkg / "_resources" / "models"
    wheel_res.mkdir(parents=True)
    write_manifest(wheel_res)
    assert resources_dir(package_dir=wheel_pkg) == wheel_res

    bare = tmp_path / "bare" / "ddic"
    bare.mkdir(parents=True)
    with pytest.raises(DDICModelError, match="Cannot find the DDICSlicer model resources") as err:
        resources_dir(package_dir=bare)
    assert str(bare / "_resources" / "models") in str(err.value)


def test_manifest_env_var_is_used(tmp_path, monkeypatch):
    path = write_manifest(tmp_path, entry_dict("https://example.org/m.bin"))
    monkeypatch.setenv("DDIC_MODEL_MANIFEST", str(path))
    assert load_manifest().ids == ("test-model",)


def test_cache_locations(tmp_path, monkeypatch):
    home = tmp_path / "home"
    assert default_cache_dir("linux", {}, home) == home / ".cache" / "ddicslicer" / "models"
    assert default_cache_dir("linux", {"XDG_CACHE_HOME": str(tmp_path / "xdg")}, home) == \
        tmp_path / "xdg" / "ddicslicer" / "models"
    assert default_cache_dir("darwin", {}, home) == home / "Library" / "Caches" / "ddicslicer" / "models"
    assert default_cache_dir("win32", {"LOCALAPPDATA": str(tmp_path / "local")}, home) == \
        tmp_path / "local" / "ddicslicer" / "Cache" / "models"
    monkeypatch.setenv("DDIC_CACHE_DIR", str(tmp_path / "envcache"))
    assert model_cache_dir() == tmp_path / "envcache"
    assert model_cache_dir(tmp_path / "explicit") == tmp_path / "explicit"
    entry = make_manifest(tmp_path, entry_dict("https://example.org/x/sam.pth")).get("test-model")
    assert cached_path(entry) == tmp_path / "envcache" / "sam.pth"
    with pytest.raises(DDICModelError, match="inside the installed code"):
        model_cache_dir(REPO / "DDICSlicer" / "ddic" / "weights")


# --------------------------------------------------------------------------- CLI

def test_cli_list_download_verify_remove_path(tmp_path, server, monkeypatch, capsys):
    manifest = write_manifest(tmp_path, entry_dict(server.url + "/m.bin"))
    monkeypatch.setenv("DDIC_MODEL_MANIFEST", str(manifest))
    cache = tmp_path / "cache"
    c = ["--cache-dir", str(cache)]

    assert main(["models", "list", *c]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("test-model"))
    assert "sam" in line and "300.0 KB" in line and "Apache-2.0" in line and " - " in line

    assert main(["models", "download", "test-model", *c]) == 0
    assert (cache / "m.bin").read_bytes() == PAYLOAD
    assert str(cache / "m.bin") in capsys.readouterr().out

    assert main(["models", "list", *c]) == 0
    assert "cached" in next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("test-model"))

    assert main(["models", "verify", *c]) == 0
    assert "OK      test-model" in capsys.readouterr().out
    (cache / "m.bin").write_bytes(bytes(reversed(PAYLOAD)))
    assert main(["models", "verify", *c]) == 1
    assert "FAILED  test-model" in capsys.readouterr().out
    assert main(["models", "verify", "test-model", *c]) == 2
    assert "not the expected file" in capsys.readouterr().err

    assert main(["models", "path", "test-model", *c]) == 0
    assert capsys.readouterr().out.strip() == str(cache / "m.bin")

    assert main(["models", "remove", "test-model", *c]) == 0
    assert "removed" in capsys.readouterr().out and not (cache / "m.bin").exists()
    assert main(["models", "download", "nope", *c]) == 2
    assert "Unknown model id 'nope'" in capsys.readouterr().err
    assert len(server.requests) == 1
