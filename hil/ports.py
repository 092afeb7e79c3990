"""Free loopback TCP ports for a party that binds them moments later (a service in a thread or a child process).

A port found by binding to port 0 lies in the kernel's ephemeral range. Between the probe and the real bind the
kernel may hand that same port to anyone else, most often as the local end of an outgoing connection (a ZeroMQ
socket reconnecting). A port chosen below that range is never handed out implicitly, so only an explicit bind
can take it, and this module never hands the same port out twice in one process.
"""

from __future__ import annotations

import random
import socket

LINUX_EPHEMERAL_RANGE = (32768, 60999)  # the kernel's default net.ipv4.ip_local_port_range
_LOWEST = 20000  # clear of the low ports that common services listen on; a taken port fails the probe anyway
_RESERVED = frozenset({30431})  # iiod's, which `pluto-emu` binds by default: free now, maybe not in a moment
_handed_out: set[int] = set()


def ephemeral_range() -> tuple[int, int]:
    """The kernel's ephemeral port range (inclusive), or Linux's default where it cannot be read."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(v) for v in f.read().split())
        return lo, hi
    except (OSError, ValueError):
        return LINUX_EPHEMERAL_RANGE


def free_port(host: str = "127.0.0.1", attempts: int = 500) -> int:
    """A TCP port on `host` that is free now, outside the ephemeral range and the project's fixed ports, and not
    handed out before here."""
    lo, hi = ephemeral_range()
    below, above = range(_LOWEST, lo), range(hi + 1, 65536)
    candidates = below if len(below) >= len(above) else above
    rng = random.Random()  # seeded from the OS: parallel processes pick different ports
    for _ in range(attempts):
        port = rng.choice(candidates)
        if port in _handed_out or port in _RESERVED:
            continue
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free TCP port on {host} in {candidates.start}-{candidates.stop - 1} after {attempts} "
                       "tries; free some ports or widen the kernel's ip_local_port_range gap")


def free_endpoint(host: str = "127.0.0.1") -> str:
    """A ZeroMQ TCP endpoint on a port from free_port()."""
    return f"tcp://{host}:{free_port(host)}"
