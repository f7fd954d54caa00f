"""`rmb data fetch`: the RMB dataset from the authors' repository archive at the pinned commit,
verified file by file against its git blob ids, safe to interrupt and rerun.

Layout under the cache directory (platformdirs' user cache dir for "rmb-judge"):

    rmb-<commit[:12]>/
        RMB_dataset/...          verified files only (each written to a temp name, then renamed)
        <commit>.tar.gz.part     a download in progress (resumed with a Range request)
        <commit>.tar.gz          a complete download not yet extracted (removed once used)
        VERIFIED                 written when every manifest file is in place and verified
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from benchmark.data import DATASET_DIR, DataError, Manifest, ManifestFile, pinned_manifest
from benchmark.files import write_atomic
from judges.errors import UserError

URL_ENV = "RMB_ARCHIVE_URL"
ARCHIVE_URL = "https://codeload.github.com/{repo}/tar.gz/{commit}"
STAMP = "VERIFIED"
_CHUNK = 1 << 20

Progress = Callable[[int, int | None], None]  # bytes so far, total bytes if known


class FetchError(UserError):
    """The dataset could not be downloaded or did not verify."""


def git_blob_sha1(data: bytes) -> str:
    """The id git gives a file's content: sha1 of b"blob <size>\\0" + content."""
    return _hash_copy(io.BytesIO(data), len(data))


def _hash_copy(src: IO[bytes], size: int, out: IO[bytes] | None = None) -> str:
    """git_blob_sha1 of `size` bytes read from `src` a chunk at a time (also written to `out`):
    a member is never held whole, so a small archive that inflates to gigabytes costs 1 MB."""
    h = hashlib.sha1(b"blob %d\0" % size, usedforsecurity=False)
    seen = 0
    while chunk := src.read(_CHUNK):
        seen += len(chunk)
        if seen > size:  # more than declared: the hash could only mismatch
            return "longer than its declared size"
        h.update(chunk)
        if out is not None:
            out.write(chunk)
    return h.hexdigest() if seen == size else "shorter than its declared size"


def cache_root() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("rmb-judge"))


def fetch_home(manifest: Manifest | None = None, root: Path | None = None) -> Path:
    """Where `rmb data fetch` keeps the copy of one commit."""
    manifest = manifest or pinned_manifest()
    return (root or cache_root()) / f"rmb-{manifest.commit[:12]}"


def verified_dataset(manifest: Manifest | None = None, root: Path | None = None) -> Path | None:
    """The fetched RMB_dataset directory if a fetch completed and verified it, else None."""
    manifest = manifest or pinned_manifest()
    home = fetch_home(manifest, root)
    try:
        stamped = (home / STAMP).read_text().strip()
    except OSError:
        return None
    return home / DATASET_DIR if stamped == manifest.commit else None


def archive_url(manifest: Manifest, url: str | None = None) -> str:
    return (
        url
        or os.environ.get(URL_ENV)
        or ARCHIVE_URL.format(repo=manifest.repo, commit=manifest.commit)
    )


@dataclass
class FetchReport:
    dataset_dir: Path
    commit: str
    verified: int  # manifest files in place with the right blob id
    installed: list[str] = field(default_factory=list)  # of those, written by this run
    downloaded_bytes: int = 0
    resumed_from: int = 0  # bytes of an earlier interrupted download that were kept


def _target(data_dir: Path, rel: str) -> Path:
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise FetchError(f"manifest path {rel!r} is not a relative path inside {DATASET_DIR}/")
    return data_dir.joinpath(*p.parts)


def _unverified(data_dir: Path, files: tuple[ManifestFile, ...]) -> list[ManifestFile]:
    bad = []
    for f in files:
        path = _target(data_dir, f.path)
        try:
            size = path.stat().st_size
            if f.bytes is not None and size != f.bytes:
                bad.append(f)
                continue
            with path.open("rb") as fh:
                if _hash_copy(fh, size) != f.git_blob_sha1:
                    bad.append(f)
        except FileNotFoundError:
            bad.append(f)
    return bad


def _download(
    url: str, archive: Path, progress: Progress | None, timeout: float
) -> tuple[int, int]:
    """Stream `url` into `<archive>.part`, resuming a previous part with a Range request; check
    the archive reads through, then rename it into place. Returns (bytes fetched, resumed from)."""
    import httpx

    part = archive.with_name(archive.name + ".part")
    for _ in range(2):  # a second try only when the server refuses to resume (416)
        have = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        fetched = 0
        try:
            with httpx.stream(
                "GET", url, headers=headers, follow_redirects=True, timeout=timeout
            ) as r:
                if r.status_code == 416:
                    part.unlink()
                    continue
                if r.status_code not in (200, 206):
                    raise FetchError(f"{url}: HTTP {r.status_code} {r.reason_phrase}")
                resumed = r.status_code == 206 and r.headers.get("content-range", "").startswith(
                    f"bytes {have}-"
                )
                if not resumed:
                    have = 0
                length = r.headers.get("content-length")
                total = have + int(length) if length and length.isdigit() else None
                with part.open("ab" if resumed else "wb") as out:
                    # raw: Range offsets count bytes on the wire; unbuffered: what arrived
                    # before a hang-up is kept for the resume
                    for chunk in r.iter_raw():
                        out.write(chunk)
                        fetched += len(chunk)
                        if progress:
                            progress(have + fetched, total)
        except httpx.HTTPError as e:
            size = part.stat().st_size if part.exists() else 0
            raise FetchError(
                f"download from {url} stopped after {size} bytes ({type(e).__name__}: {e}); "
                "rerun `rmb data fetch` to resume"
            ) from None
        break
    else:
        raise FetchError(f"{url}: the server refused to resume or restart the download")
    try:
        _read_through(part)
    except FetchError:
        part.unlink()
        raise
    os.replace(part, archive)
    return fetched, have


def _read_through(archive: Path) -> None:
    """The gzip stream ends with its end marker and CRC: the download is whole. (tarfile alone
    does not notice a stream cut inside the archive's end padding.)"""
    try:
        with gzip.open(archive) as z:
            while z.read(1 << 20):
                pass
    except (OSError, EOFError, zlib.error) as e:
        raise FetchError(
            f"{archive.name}: the downloaded archive is damaged ({e}); it was removed, "
            "rerun `rmb data fetch` to download it again"
        ) from None


def _extract(
    archive: Path, data_dir: Path, needed: dict[str, ManifestFile]
) -> tuple[list[str], dict[str, str]]:
    """Write the needed RMB_dataset files whose blob id matches; return (installed paths,
    mismatched path -> what was found instead).

    Archives from GitHub have one top folder (`<repo>-<commit>/`); only files under its
    RMB_dataset/ are read, and only paths the manifest names are written."""
    installed: list[str] = []
    mismatched: dict[str, str] = {}
    if data_dir.is_dir():  # left by an extraction that was interrupted
        for stray in data_dir.rglob("*.json.tmp"):
            stray.unlink()
    with tarfile.open(archive, "r|gz") as tar:
        for member in tar:
            parts = PurePosixPath(member.name).parts
            if not member.isfile() or len(parts) < 3 or parts[1] != DATASET_DIR:
                continue
            rel = "/".join(parts[2:])
            want = needed.get(rel)
            if want is None:
                continue
            if want.bytes is not None and member.size != want.bytes:
                # refused before a byte is read (a gzip bomb declares its size too)
                mismatched[rel] = f"{member.size:,} bytes, expected {want.bytes:,}"
                continue
            dest = _target(data_dir, rel)
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(dest.name + ".tmp")
            src = tar.extractfile(member)
            with tmp.open("wb") as out:
                got = _hash_copy(src, member.size, out) if src else git_blob_sha1(b"")
            if got != want.git_blob_sha1:
                tmp.unlink()
                mismatched[rel] = f"blob {got[:12]}, expected {want.git_blob_sha1[:12]}"
                continue
            os.replace(tmp, dest)
            installed.append(rel)
    return installed, mismatched


def fetch_dataset(
    home: Path | None = None,
    url: str | None = None,
    manifest: Manifest | None = None,
    progress: Progress | None = None,
    timeout: float = 60.0,
) -> FetchReport:
    """Make `home/RMB_dataset` hold every manifest file, verified; download only if needed.

    `home` defaults to `fetch_home()`; `url` to $RMB_ARCHIVE_URL, else the GitHub archive of the
    pinned commit. Raises FetchError naming what failed; whatever verified stays in place."""
    manifest = manifest or pinned_manifest()
    home = home or fetch_home(manifest)
    data_dir = home / DATASET_DIR
    stamp = home / STAMP
    bad = _unverified(data_dir, manifest.files)
    report = FetchReport(data_dir, manifest.commit, verified=len(manifest.files) - len(bad))
    if not bad:
        if not stamp.exists():
            write_atomic(stamp, manifest.commit + "\n")
        return report
    stamp.unlink(missing_ok=True)
    home.mkdir(parents=True, exist_ok=True)
    archive = home / f"{manifest.commit}.tar.gz"
    if not archive.exists():
        url = archive_url(manifest, url)
        report.downloaded_bytes, report.resumed_from = _download(url, archive, progress, timeout)
    needed = {f.path: f for f in bad}
    try:
        report.installed, mismatched = _extract(archive, data_dir, needed)
    except (tarfile.TarError, EOFError, OSError) as e:
        archive.unlink(missing_ok=True)
        raise FetchError(
            f"{archive}: cannot extract ({e}); it was removed, rerun `rmb data fetch`"
        ) from None
    # used up: a rerun that still lacks files must download afresh, not reuse a bad archive
    archive.unlink(missing_ok=True)
    report.verified += len(report.installed)
    missing = sorted(set(needed) - set(report.installed) - set(mismatched))
    problems = []
    if mismatched:
        problems.append(
            f"{len(mismatched)} file(s) do not match the pinned manifest: "
            + "; ".join(f"{rel} ({found})" for rel, found in sorted(mismatched.items()))
        )
    if missing:
        problems.append(f"{len(missing)} file(s) are not in the archive: " + "; ".join(missing))
    if problems:
        raise FetchError(
            f"{report.verified} of {len(manifest.files)} files verified in {data_dir}; "
            + "; ".join(problems)
            + ". Rerun `rmb data fetch` (or `--url` another archive of commit "
            + f"{manifest.commit[:12]})"
        )
    write_atomic(stamp, manifest.commit + "\n")
    return report


DATA_ENV = "RMB_DATA"


def default_data_source() -> Path:
    """Where the data is when no --data is given: $RMB_DATA, else the copy `rmb data fetch` made."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env)
    fetched = verified_dataset()
    if fetched is not None:
        return fetched
    raise DataError(
        f"no dataset: run `rmb data fetch` to download RMB, or pass --data PATH (or set {DATA_ENV})"
    )
