"""Who is buying which keys of a shared cache (`CacheStore.claim`): an owner is one process,
named by host, pid and start time, and its claims lapse once it is dead or silent."""

from __future__ import annotations

import os
import random
import socket
from dataclasses import dataclass

LEASE_S = 60.0  # a claim whose owner has not been heard of for this long is free again


def new_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{random.getrandbits(64):016x}"


def process_start(pid: int) -> str:
    """When process `pid` started (Linux clock ticks), so a recycled pid is not taken for the
    owner; '' where /proc does not say."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return ""


def owner_alive(host: str, pid: int, started: str) -> bool:
    """On this host a claim's owner is checked directly (a killed run frees its keys at once);
    on another host only its heartbeat tells."""
    if host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return not started or process_start(pid) == started


@dataclass(frozen=True, slots=True)
class Claimed:
    """What `CacheStore.claim` found for some keys."""

    mine: list[str]  # this process buys these now
    cached: list[str]  # answered meanwhile (by another process)
    others: list[str]  # another live process is buying these
