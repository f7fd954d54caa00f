"""Process-level speed devices, in one place so that each is seen, named and tested
(tests/test_perf.py); what each saves is measured by `make bench`.

- `raise_gc_threshold`: fewer young collections for a process holding ~1M long-lived objects.
- `gc_paused`: no collection while loading RMB (~1M small acyclic objects).
- `return_freed_memory`: hand heap pages freed by dropping texts back to the OS (glibc).
- `intern` and `TextPool`: one string per distinct model name / text."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import sys
from collections.abc import Iterator

# A run holds ~1M long-lived objects (items, plan, answers, verdicts) and makes many more; at
# the default threshold (700) the collector ran ~770 times in a full-RMB rerun, ~1.5 s of
# scanning them. 50k allocations between young collections: ~10 collections.
GC_THRESHOLD = 50_000


def raise_gc_threshold() -> None:
    gc.set_threshold(GC_THRESHOLD)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No collection inside. Loading makes ~1M small acyclic objects; each allocation burst
    triggered a full collection that walks everything alive, so load time grew with what the
    process already held."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def return_freed_memory() -> bool:
    """Give the heap pages just freed back to the OS (glibc): texts are malloc'd one by one, and
    Python's own allocator takes new memory from fresh arenas, never from those pages. False
    where there is no glibc (nothing to do)."""
    try:
        return bool(ctypes.CDLL(None).malloc_trim(0))
    except (OSError, AttributeError):
        return False


def intern(name: object) -> str:
    """One string per distinct short name that repeats across the dataset (a few dozen model
    names over 50k responses)."""
    return sys.intern(name if type(name) is str else str(name))


# Text -> the one copy kept (`pool.setdefault(text, text)`, inline where it runs 100k times).
# In RMB 70 of 111 MB of texts repeat an earlier one (the same prompt and answers across pairs
# and BoN lists), so a load shares them; the pool is dropped with the load, unlike interned
# strings.
TextPool = dict[str, str]
