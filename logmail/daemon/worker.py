"""Ingest worker processes.

The daemon starts each worker as ``python -m logmail.daemon.worker`` and writes the settings to
its stdin as one JSON line, then keeps the pipe open. The worker stops on SIGTERM, or when the
pipe closes because the daemon has gone away (even by SIGKILL): its unfinished jobs are simply
leased to someone else later. A plain subprocess, not multiprocessing: no resource-tracker
process, and nothing of the daemon's memory is inherited.
"""

from __future__ import annotations

import json
import os
import logging
import signal
import subprocess
import sys
import threading

from logmail.config import Settings, as_dict, settings_from_dict

log = logging.getLogger("logmail.worker")

NICENESS = 10
STOP_GRACE_SECONDS = 5.0


def spawn(settings: Settings, name: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "logmail.daemon.worker", name], stdin=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(as_dict(settings, reveal_secrets=True)).encode() + b"\n")
    proc.stdin.flush()
    return proc


def main() -> None:
    from logmail.daemon.ingest_consumer import IngestConsumer
    from logmail.logs import configure_logging
    from logmail.services.container import build_services

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the daemon decides
    # Taking mail in is more urgent than filing it: under a burst the listener gets the CPU and
    # the queue absorbs the difference, which the worker drains as soon as there is room.
    os.nice(NICENESS)
    settings = settings_from_dict(json.loads(_read_line(0)))
    configure_logging(settings.log_level)
    services = build_services(settings, migrate=False)
    consumer = IngestConsumer(services.queue, services.ingest, batch_size=settings.queue.batch_size,
                              poll_interval=settings.queue.poll_interval)

    def stop(*_) -> None:
        consumer.stop()
        # A batch blocked in a driver call may not notice for a while. Leaving mid-batch is safe
        # (nothing is acked before it commits; the jobs come back), so do not make the daemon wait.
        deadline = threading.Timer(STOP_GRACE_SECONDS, os._exit, args=(0,))
        deadline.daemon = True  # a worker that stops in time exits without waiting for it
        deadline.start()

    signal.signal(signal.SIGTERM, stop)

    def watch_parent() -> None:
        # os.read, not sys.stdin: a thread blocked inside a buffered reader at interpreter exit
        # aborts the process ("_enter_buffered_busy").
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        consumer.stop()  # EOF: the daemon closed the pipe or died

    threading.Thread(target=watch_parent, daemon=True).start()
    try:
        consumer.run()
    finally:
        services.close()


def _read_line(fd: int) -> bytes:
    """One line from a file descriptor, unbuffered, so nothing after it is swallowed."""
    data = bytearray()
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 1)
        if not chunk:
            break
        data += chunk
    return bytes(data)


if __name__ == "__main__":
    main()
