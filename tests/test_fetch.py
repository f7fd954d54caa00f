"""`rmb data fetch` against a loopback HTTP server serving an archive built from real RMB files."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from benchmark.cli import main
from benchmark.data import Manifest, ManifestFile, load_dataset, pinned_manifest
from benchmark.data.fetch import STAMP, FetchError, fetch_dataset, git_blob_sha1, verified_dataset

# three small real files of the pinned commit (their blob ids are the real ones)
FILES = (
    "BoN_set/Helpfulness/Reasoning/Pattern Recognition.json",
    "BoN_set/Helpfulness/Rewrite/Paraphrasing.json",
    "Pairwise_set/Helpfulness/Open QA/Hypothetical Scenarios.json",
)
TOP = "RMB-Reward-Model-Benchmark-" + pinned_manifest().commit


@dataclass
class Archive:
    """What the server serves, and what it saw."""

    body: bytes = b""
    ranges: bool = True  # honour Range requests
    cut_after: int | None = None  # next response: send this many body bytes, then hang up
    requests: list[str | None] = field(default_factory=list)  # the Range header of each GET


def _handler(state: Archive) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/archive.tar.gz":
                self.send_error(404)
                return
            rng = self.headers.get("Range")
            state.requests.append(rng)
            body, start = state.body, 0
            if rng and state.ranges:
                start = int(rng.removeprefix("bytes=").split("-")[0])
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            part = body[start:]
            self.send_header("Content-Type", "application/x-gzip")
            self.send_header("Content-Length", str(len(part)))
            self.end_headers()
            if state.cut_after is not None:
                part, state.cut_after = part[: state.cut_after], None
                self.wfile.write(part)
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(part)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def server() -> Iterator[tuple[Archive, str]]:
    state = Archive()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{httpd.server_port}/archive.tar.gz"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _tar_gz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{TOP}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def real(rmb_dir: Path) -> dict[str, bytes]:
    return {rel: (rmb_dir / rel).read_bytes() for rel in FILES}


@pytest.fixture
def manifest() -> Manifest:
    """The pinned manifest cut down to the three files."""
    pinned = pinned_manifest()
    return Manifest(pinned.repo, pinned.commit, tuple(f for f in pinned.files if f.path in FILES))


def _archive_of(real: dict[str, bytes], **override: bytes) -> bytes:
    files = {f"RMB_dataset/{rel}": override.get(rel, data) for rel, data in real.items()}
    files["README.md"] = b"# RMB\n"  # outside RMB_dataset/: never extracted
    files["RMB_dataset/notes.json"] = b"[]"  # not in the manifest: never extracted
    return _tar_gz(files)


def _write_manifest(manifest: Manifest, path: Path) -> Path:
    path.write_text(
        json.dumps(
            {
                "repo": manifest.repo,
                "commit": manifest.commit,
                "files": [
                    {"path": f"RMB_dataset/{f.path}", "git_blob_sha1": f.git_blob_sha1}
                    for f in manifest.files
                ],
            }
        )
    )
    return path


def test_git_blob_id_is_gits(tmp_path: Path) -> None:
    f = tmp_path / "x.json"
    f.write_bytes(b'[{"a": "\xc3\xa9"}]\n')
    out = subprocess.run(["git", "hash-object", str(f)], capture_output=True, text=True, check=True)
    assert git_blob_sha1(f.read_bytes()) == out.stdout.strip()


def test_shared_copy_matches_pinned_blob_ids(rmb_dir: Path) -> None:
    pinned = pinned_manifest()
    present = [f for f in pinned.files if (rmb_dir / f.path).exists()]
    assert len(present) == 95
    bad = [
        f.path for f in present if git_blob_sha1((rmb_dir / f.path).read_bytes()) != f.git_blob_sha1
    ]
    assert bad == []


def test_fetch_verify_and_rerun_does_nothing(
    tmp_path: Path,
    server: tuple[Archive, str],
    real: dict[str, bytes],
    manifest: Manifest,
    capsys: pytest.CaptureFixture[str],
) -> None:
    state, url = server
    state.body = _archive_of(real)
    mpath = _write_manifest(manifest, tmp_path / "manifest.json")
    dest = tmp_path / "copy"
    argv = ["data", "fetch", "--dest", str(dest), "--url", url, "--manifest", str(mpath)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"downloaded {len(state.body)} bytes" in out and "installed 3 verified files" in out
    for rel, data in real.items():
        assert (dest / "RMB_dataset" / rel).read_bytes() == data
    assert not (dest / "RMB_dataset" / "notes.json").exists()
    assert not (dest / "README.md").exists()
    assert sorted(p.name for p in dest.iterdir()) == ["RMB_dataset", STAMP]  # archive removed
    assert state.requests == [None]
    # the fetched copy loads, with the other 95 pinned files reported absent
    ds = load_dataset(dest / "RMB_dataset")
    assert len(ds.file_records) == 3 and len(ds.absent_files) == 95

    assert main(argv) == 0
    assert "already verified; nothing to do" in capsys.readouterr().out
    assert state.requests == [None]  # no second download


def test_interrupted_download_resumes(
    tmp_path: Path, server: tuple[Archive, str], real: dict[str, bytes], manifest: Manifest
) -> None:
    state, url = server
    state.body = _archive_of(real)
    cut = len(state.body) // 3
    state.cut_after = cut
    home = tmp_path / "home"
    with pytest.raises(
        FetchError, match=r"stopped after \d+ bytes.*rerun `rmb data fetch` to resume"
    ):
        fetch_dataset(home, url, manifest)
    part = home / f"{manifest.commit}.tar.gz.part"
    assert part.stat().st_size == cut
    assert not (home / STAMP).exists()

    report = fetch_dataset(home, url, manifest)
    assert state.requests == [None, f"bytes={cut}-"]
    assert report.resumed_from == cut
    assert report.downloaded_bytes == len(state.body) - cut
    assert sorted(report.installed) == sorted(FILES)
    assert not part.exists()
    assert (home / STAMP).read_text().strip() == manifest.commit


def test_server_without_ranges_restarts(
    tmp_path: Path, server: tuple[Archive, str], real: dict[str, bytes], manifest: Manifest
) -> None:
    state, url = server
    state.body = _archive_of(real)
    state.ranges = False
    state.cut_after = 1000
    home = tmp_path / "home"
    with pytest.raises(FetchError):
        fetch_dataset(home, url, manifest)
    report = fetch_dataset(home, url, manifest)
    assert report.resumed_from == 0 and report.downloaded_bytes == len(state.body)
    assert len(report.installed) == 3


def test_corrupted_file_is_reported_and_not_installed(
    tmp_path: Path,
    server: tuple[Archive, str],
    real: dict[str, bytes],
    manifest: Manifest,
    capsys: pytest.CaptureFixture[str],
) -> None:
    state, url = server
    bad_rel = FILES[1]
    damaged = bytearray(real[bad_rel])
    damaged[100] ^= 0x01
    state.body = _archive_of(real, **{bad_rel: bytes(damaged)})
    mpath = _write_manifest(manifest, tmp_path / "manifest.json")
    dest = tmp_path / "copy"
    argv = ["data", "fetch", "--dest", str(dest), "--url", url, "--manifest", str(mpath)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "2 of 3 files verified" in err
    assert f"{bad_rel} (blob {git_blob_sha1(bytes(damaged))[:12]}, expected" in err
    assert not (dest / "RMB_dataset" / bad_rel).exists()
    assert not (dest / STAMP).exists()
    assert not list(dest.glob("*.tar.gz*"))  # the bad archive is not kept

    # the good archive: only the missing file is taken from it
    state.body = _archive_of(real)
    report = fetch_dataset(dest, url, manifest)
    assert report.installed == [bad_rel]
    assert (dest / "RMB_dataset" / bad_rel).read_bytes() == real[bad_rel]

    # a file damaged on disk later is noticed and replaced
    (dest / "RMB_dataset" / FILES[0]).write_bytes(b"[]")
    report = fetch_dataset(dest, url, manifest)
    assert report.installed == [FILES[0]] and len(state.requests) == 3


def test_file_missing_from_archive(
    tmp_path: Path, server: tuple[Archive, str], real: dict[str, bytes], manifest: Manifest
) -> None:
    state, url = server
    state.body = _tar_gz({f"RMB_dataset/{FILES[0]}": real[FILES[0]]})
    with pytest.raises(
        FetchError, match=r"1 of 3 files verified.*2 file\(s\) are not in the archive"
    ):
        fetch_dataset(tmp_path, url, manifest)


def test_damaged_archive(
    tmp_path: Path, server: tuple[Archive, str], real: dict[str, bytes], manifest: Manifest
) -> None:
    state, url = server
    whole = _archive_of(real)
    for body in (whole[:-200], whole[: len(whole) // 2]):  # served in full, but cut short
        state.body = body
        with pytest.raises(FetchError, match="archive is damaged"):
            fetch_dataset(tmp_path, url, manifest)
        assert list(tmp_path.iterdir()) == []


def test_http_error_and_env_url(
    tmp_path: Path,
    server: tuple[Archive, str],
    real: dict[str, bytes],
    manifest: Manifest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state, url = server
    state.body = _archive_of(real)
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch_dataset(tmp_path / "a", url.replace("archive", "other"), manifest)
    # the default cache home and $RMB_ARCHIVE_URL; then the copy is the default data source
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("RMB_ARCHIVE_URL", url)
    report = fetch_dataset(manifest=manifest)
    assert (
        report.dataset_dir
        == tmp_path / "cache" / "rmb-judge" / f"rmb-{manifest.commit[:12]}" / "RMB_dataset"
    )
    assert verified_dataset() == report.dataset_dir


def test_manifest_paths_cannot_escape(tmp_path: Path, server: tuple[Archive, str]) -> None:
    _, url = server
    evil = Manifest("x/y", "0" * 40, (ManifestFile("../escape.json", "0" * 40),))
    with pytest.raises(FetchError, match="not a relative path"):
        fetch_dataset(tmp_path, url, evil)


class _Zeros(io.RawIOBase):
    def __init__(self, n: int) -> None:
        self.left = n

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = min(len(b), self.left)
        b[:n] = bytes(n)
        self.left -= n
        return n


def _bomb(rel: str, size: int) -> bytes:
    """A small archive whose one member inflates to `size` bytes of zeros."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        info = tarfile.TarInfo(f"{TOP}/RMB_dataset/{rel}")
        info.size = size
        tar.addfile(info, io.BufferedReader(_Zeros(size)))
    return buf.getvalue()


FETCH_AND_MEASURE = """
import resource, sys
from benchmark.cli import main
rc = main(["data", "fetch", "--dest", sys.argv[1], "--url", sys.argv[2], "--manifest", sys.argv[3]])
print(rc, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def test_a_member_inflating_to_hundreds_of_mb_is_hashed_in_chunks(
    tmp_path: Path, server: tuple[Archive, str], manifest: Manifest
) -> None:
    state, url = server
    state.body = _bomb(FILES[0], 400_000_000)
    assert len(state.body) < 3_000_000
    mpath = _write_manifest(manifest, tmp_path / "manifest.json")  # no sizes: every byte hashed
    r = subprocess.run(
        [sys.executable, "-c", FETCH_AND_MEASURE, str(tmp_path / "d"), url, str(mpath)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
        timeout=300,
    )
    rc, rss_kb = r.stdout.split()
    assert rc == "2" and f"{FILES[0]} (blob" in r.stderr, r.stderr
    assert int(rss_kb) < 250_000, f"peak RSS {int(rss_kb) / 1e3:.0f} MB"  # was 400 MB and more
    assert not list((tmp_path / "d").rglob("*.tmp"))


def test_a_member_of_the_wrong_size_is_refused_unread(
    tmp_path: Path, server: tuple[Archive, str], manifest: Manifest
) -> None:
    state, url = server
    state.body = _bomb(FILES[0], 50_000_000)
    sized = Manifest(
        manifest.repo,
        manifest.commit,
        tuple(ManifestFile(f.path, f.git_blob_sha1, bytes=1000) for f in manifest.files),
    )
    with pytest.raises(FetchError, match=r"50,000,000 bytes, expected 1,000"):
        fetch_dataset(tmp_path / "d", url, sized)
