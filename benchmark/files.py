"""The one atomic write: every file the package writes whole (a run's manifest, comparisons and
reports, a fetched dataset's files) goes through a temporary file and a rename, so a reader, or
a crash, never leaves half a file behind."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

from judges.errors import UserError


def write_atomic(path: Path, data: str | bytes | Iterable[str]) -> None:
    """`data` whole (text or bytes), or text given in chunks (never held at once). A failed
    write (a full disk, a read-only folder) leaves no temporary file and is one line."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            with tmp.open("w", encoding="utf-8") as fh:
                fh.writelines([data] if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(e, OSError):
            raise UserError(f"{path}: cannot write ({e.strerror or e})") from None
        raise
