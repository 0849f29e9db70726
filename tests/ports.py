"""Loopback ports for the servers tests start: daemons, Dovecot, Postfix, Redis, MongoDB peers.

``bind(("127.0.0.1", 0))`` hands out a port from the kernel's ephemeral range, the same range every
outgoing connection's local port is drawn from. Between the test closing its probe socket and the
server binding the port, any client on the machine (another xdist worker's SMTP burst, a MariaDB
connection) may take it, and the server then fails to start; CI met exactly that once. Ports below
the ephemeral range are never handed to outgoing connections, and each xdist worker draws from its
own slice of them, so two tests running side by side cannot pick the same port either.
"""

from __future__ import annotations

import itertools
import os
import random
import socket

_LOW, _HIGH = 20000, 32000  # below Linux's default ephemeral range (32768-60999)


def _slice() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    index = int(worker.removeprefix("gw") or 0) if worker.startswith("gw") else 0
    size = (_HIGH - _LOW) // max(count, 1)
    start = _LOW + size * (index % max(count, 1))
    return range(start, start + size)


def _candidates():
    ports = _slice()
    # A random starting point: two pytest runs at once (a developer's and CI's) rarely meet, and
    # a port just released by the previous test is not handed straight out again.
    offset = random.randrange(len(ports))
    return itertools.cycle([*ports[offset:], *ports[:offset]])


_next = _candidates()


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A loopback port nothing is bound to now, and that no outgoing connection will take."""
    for _ in range(2000):
        port = next(_next)
        if _is_free(port):
            return port
    raise RuntimeError(f"no free loopback port in {_slice()}")


__all__ = ["free_port"]
