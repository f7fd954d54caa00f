"""How long loading the whole RMB copy takes and how much memory it needs (target: < 3 s,
< 400 MB RSS). Measured in a fresh Python process so the peak RSS is the loader's alone.

    python bench/data_load.py [PATH]        # default: $RMB_DATA, else ../shared/rmb/RMB_dataset

`measure_load(path)` returns the numbers for a benchmark script to report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT = Path(os.environ.get("RMB_DATA") or REPO.parent / "shared" / "rmb" / "RMB_dataset")

# VmHWM, not ru_maxrss: ru_maxrss starts at the parent's peak (Linux carries the high-water
# mark across fork and exec), and `make bench` is a big parent by the time it gets here
_CHILD = """
import json, resource, sys, time
def peak_kb():
    try:
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
from benchmark.data import load_dataset
t1 = time.perf_counter()
c0 = time.process_time()
ds = load_dataset(sys.argv[1])
print(json.dumps({
    "import_seconds": round(t1 - t0, 3),
    "seconds": round(time.perf_counter() - t1, 3),
    "cpu_seconds": round(time.process_time() - c0, 3),
    "peak_rss_mb": round(peak_kb() / 1024, 1),
    "items": len(ds.items),
    "files": len(ds.file_records),
    "absent_files": len(ds.absent_files),
}))
"""


def measure_load(path: Path = DEFAULT) -> dict[str, Any]:
    """Seconds (wall) and CPU seconds of `load_dataset`, the import before it, peak RSS in MB.

    Wall time on a shared machine is CPU time plus waiting for a core: both are reported."""
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    r = measure_load(path)
    ok = r["seconds"] < 3 and r["peak_rss_mb"] < 400
    print(
        f"load {path}: {r['items']} items from {r['files']} files ({r['absent_files']} absent) "
        f"in {r['seconds']:.2f} s ({r['cpu_seconds']:.2f} s CPU; import {r['import_seconds']:.2f} s), peak RSS {r['peak_rss_mb']:.0f} MB "
        f"[{'ok' if ok else 'OVER'}: target < 3 s, < 400 MB]"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
