#!/usr/bin/env python3
"""Capture-path benchmark for logmail: SMTP acceptance, end-to-end ingest and read-path latency.

Starts ``logmail daemon`` as a subprocess on free ports with a fresh data directory, then

1. throughput: sends N pre-encoded messages of a realistic mix over C concurrent SMTP connections
   and measures acceptance (until the last 250) and end to end (until the API lists all N);
2. read path: seeds the store up to M messages and times the API's list, cursor, search and
   detail requests with a keep-alive HTTP client, and reports memory and disk use at that size.

The engines are SQLite files (``--stack embedded``, the default) or, with ``--stack production``, a
private MariaDB database, RabbitMQ vhost, Redis key prefix and SecantusDB server created for the run
and removed after it (``benchmarks/stack.py``). ``--daemons D`` starts D daemons on the same engines
and spreads the SMTP connections over them; ``--scaling`` compares one daemon with two. During the
throughput run the ingest queue's depth is sampled every 0.5 s and every process's CPU is noted; at
the end the stores' sizes are measured and scaled per 100,000 messages.

Example:
    python benchmarks/capture.py --messages 20000 --connections 16 --skip-read
    python benchmarks/capture.py --messages 20000 --connections 16 --seed-stored 100000 --json out.json
    python benchmarks/capture.py --stack production --content embedded --scaling --messages 20000 --skip-read

See benchmarks/README.md for what every figure means. This is a benchmark, not a test: it exits 0
when it ran, whether or not the targets were met (2 when the daemon or the API failed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402
import psutil  # noqa: E402

import mailmix  # noqa: E402
import smtpload  # noqa: E402
from stack import StackError, make_stack  # noqa: E402

MB = 1024 * 1024

TARGETS = {
    "accepted_per_s": 800,        # at 16 connections
    "end_to_end_per_s": 400,
    "rss_mb_at_100k": 200,
    "list_p99_ms": 50,
    "search_p99_ms": 200,
}


class BenchError(Exception):
    """The daemon or the API did something the benchmark cannot carry on from."""


# -- small helpers ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Linear interpolation between closest ranks (p in 0..100)."""
    if not sorted_values:
        return None
    if len(sorted_values) == 1:
        return sorted_values[0]
    k = (len(sorted_values) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def latency_summary(seconds: list[float]) -> dict:
    s = sorted(seconds)
    ms = lambda v: None if v is None else round(v * 1000, 2)  # noqa: E731
    return {"count": len(s), "p50_ms": ms(percentile(s, 50)), "p90_ms": ms(percentile(s, 90)),
            "p99_ms": ms(percentile(s, 99)), "max_ms": ms(s[-1] if s else None),
            "mean_ms": ms(sum(s) / len(s) if s else None)}


def toml_value(text: str) -> str:
    low = text.lower()
    if low in ("true", "false"):
        return low
    for cast in (int, float):
        try:
            cast(text)
            return text
        except ValueError:
            pass
    return json.dumps(text)


def log(msg: str = "") -> None:
    print(msg, flush=True)


def fmt_int(n) -> str:
    return "-" if n is None else f"{n:,}"


def fmt_num(v, unit: str = "", nd: int = 1) -> str:
    return "-" if v is None else f"{v:,.{nd}f}{unit}"


# -- the daemon under test --------------------------------------------------------------------------


class Daemon:
    def __init__(self, command: list[str], workdir: Path, *, workers: int, overrides: list[str],
                 data_dir: Path | None = None, label: str = "logmail daemon",
                 engine_settings: dict[str, dict[str, object]] | None = None) -> None:
        self.command = command
        self.workdir = workdir
        self.data_dir = data_dir or workdir / "data"
        self.label = label
        self.engine_settings = engine_settings or {}
        self.config_path = workdir / "logmail.toml"
        self.log_path = workdir / "daemon.log"
        self.smtp_port = free_port()
        self.api_port = free_port()
        self.workers = workers
        self.overrides = overrides
        self.proc: subprocess.Popen | None = None
        self._ps: psutil.Process | None = None
        self._log_file = None
        self.token = ""

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def write_config(self) -> str:
        sections: dict[str, dict[str, str]] = {"": {"data_dir": json.dumps(str(self.data_dir)),
                                                    "log_level": json.dumps("warning")},
                                               "smtp": {"host": '"127.0.0.1"', "port": str(self.smtp_port)},
                                               "api": {"host": '"127.0.0.1"', "port": str(self.api_port)},
                                               "ingest": {"workers": str(self.workers)}}
        for section, values in self.engine_settings.items():   # the stack's engines ([database] url, ...)
            for name, value in values.items():
                sections.setdefault(section, {})[name] = json.dumps(value)
        for item in self.overrides:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise SystemExit(f"--set expects KEY=VALUE (e.g. database.sqlite_synchronous=normal), not {item!r}")
            section, _, name = key.strip().rpartition(".")
            sections.setdefault(section, {})[name] = toml_value(value.strip())
        lines = [f"{k} = {v}" for k, v in sections.pop("").items()]
        for section, values in sections.items():
            lines.append(f"\n[{section}]")
            lines += [f"{k} = {v}" for k, v in values.items()]
        text = "\n".join(lines) + "\n"
        self.config_path.write_text(text)
        return text

    def start(self, timeout: float) -> None:
        self.write_config()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOGMAIL_")}
        self._log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen([*self.command, "daemon", "--config", str(self.config_path)],
                                     stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT,
                                     # cwd: its worker processes run ``python -m``, which puts the current
                                     # directory first on sys.path; a source tree there would win.
                                     env=env, start_new_session=True, cwd=self.workdir)
        self._ps = psutil.Process(self.proc.pid)
        deadline = time.monotonic() + timeout
        token_file = self.data_dir / "owner.token"
        last_error = "no answer yet"
        with httpx.Client(timeout=2) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise BenchError(f"{self.label} exited with code {self.proc.returncode} while starting "
                                     f"(log: {self.log_path})")
                try:
                    r = client.get(f"{self.api_url}/health")
                    if r.status_code == 200 and token_file.exists() and token_file.read_text().strip():
                        self.token = token_file.read_text().strip()
                        self.version = (r.json() or {}).get("version", "?")
                        return
                    last_error = f"GET /health: HTTP {r.status_code} {r.text[:200]!r}"
                except httpx.HTTPError as exc:
                    last_error = f"GET /health: {type(exc).__name__}: {exc}"
                time.sleep(0.1)
        raise BenchError(f"{self.label} was not ready after {timeout:.0f} s ({last_error})")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def processes(self) -> list[psutil.Process]:
        if not self.alive():
            return []
        try:
            return [self._ps] + self._ps.children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def rss(self) -> tuple[int, list[tuple[int, str, int]]]:
        """Total RSS of the daemon and its descendants, and (pid, name, rss) per process."""
        total, per = 0, []
        for p in self.processes():
            try:
                rss = p.memory_info().rss
                name = self.process_name(p)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            total += rss
            per.append((p.pid, name, rss))
        return total, per

    def process_name(self, p: psutil.Process) -> str:
        if p is self._ps:
            return self.label
        name = process_label(p.cmdline())
        return name if self.label == "logmail daemon" else f"{self.label}: {name}"

    def cpu_seconds(self) -> float:
        total = 0.0
        for p in self.processes():
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        return total

    def wait_quiet(self, *, below: float = 0.05, window: float = 0.5, max_wait: float = 20.0) -> float:
        """Wait until the daemon tree uses less than ``below`` of a core; returns seconds waited."""
        start = time.monotonic()
        while time.monotonic() - start < max_wait:
            before = self.cpu_seconds()
            time.sleep(window)
            if (self.cpu_seconds() - before) / window < below:
                break
        return time.monotonic() - start

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def log_problems(self) -> list[str]:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        keys = ("WARNING", "ERROR", "CRITICAL", "Traceback", "Exception")
        return [line for line in text.splitlines() if any(k in line for k in keys)]

    def stop(self, grace: float = 30.0) -> dict:
        """SIGINT, wait, SIGKILL (with its descendants) after ``grace`` seconds."""
        if self.proc is None:
            return {}
        if self.proc.poll() is not None:
            return {"exit_code": self.proc.returncode, "already_exited": True}
        try:
            descendants = self._ps.children(recursive=True)
        except psutil.NoSuchProcess:
            descendants = []
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        killed = False
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            killed = True
            self.proc.kill()
            self.proc.wait()
        # Anything the daemon started and left behind goes too (we started the daemon, so these are ours).
        gone, alive = psutil.wait_procs(descendants, timeout=0 if killed else 5)
        for p in alive:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        if self._log_file:
            self._log_file.close()
        return {"exit_code": self.proc.returncode, "seconds": round(time.monotonic() - t0, 2), "killed": killed,
                "orphans_killed": len(alive)}


def process_label(cmdline: list[str]) -> str:
    text = " ".join(cmdline)
    if "resource_tracker" in text:
        return "multiprocessing resource tracker"
    if "spawn_main" in text or "--multiprocessing-fork" in text:
        return "spawned child (ingest worker)"
    if "logmail.daemon.worker" in text:
        return f"ingest worker {cmdline[-1]}"
    return text[-60:]


class Fleet:
    """The daemons of one run on the same engines, seen as one: what the phases need of "the daemon".

    The API of the first daemon is the one polled and read (every daemon serves the same store);
    SMTP load is spread over every daemon's port. Memory and CPU are summed over all of them."""

    def __init__(self, daemons: list[Daemon]) -> None:
        self.daemons = daemons
        self.first = daemons[0]

    api_url = property(lambda self: self.first.api_url)
    token = property(lambda self: self.first.token)
    data_dir = property(lambda self: self.first.data_dir)
    smtp_ports = property(lambda self: [d.smtp_port for d in self.daemons])
    data_dirs = property(lambda self: list(dict.fromkeys(d.data_dir for d in self.daemons)))

    def alive(self) -> bool:
        return all(d.alive() for d in self.daemons)

    def exit_status(self) -> str:
        gone = [f"{d.label} (code {d.proc.returncode})" for d in self.daemons if d.proc is not None and not d.alive()]
        return ", ".join(gone) or "none"

    def processes(self) -> list[psutil.Process]:
        return [p for d in self.daemons for p in d.processes()]

    def named_processes(self) -> list[tuple[str, psutil.Process]]:
        out = []
        for d in self.daemons:
            for p in d.processes():
                try:
                    out.append((d.process_name(p), p))
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass
        return out

    def rss(self) -> tuple[int, list[tuple[int, str, int]]]:
        total, per = 0, []
        for d in self.daemons:
            t, p = d.rss()
            total += t
            per += p
        return total, per

    def cpu_seconds(self) -> float:
        return sum(d.cpu_seconds() for d in self.daemons)

    def wait_quiet(self, *, below: float = 0.05, window: float = 0.5, max_wait: float = 20.0) -> float:
        """Wait until all the daemons together use less than ``below`` of a core."""
        start = time.monotonic()
        while time.monotonic() - start < max_wait:
            before = self.cpu_seconds()
            time.sleep(window)
            if (self.cpu_seconds() - before) / window < below * len(self.daemons):
                break
        return time.monotonic() - start


class RssSampler(threading.Thread):
    """Samples the daemon tree's RSS every ``interval`` seconds; keeps the peak per phase."""

    def __init__(self, daemon: Daemon, interval: float = 0.25) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.daemon_ = daemon
        self.interval = interval
        self.peak = 0
        self.phase_peak = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        while not self._stop.wait(self.interval):
            total, _ = self.daemon_.rss()
            with self._lock:
                self.peak = max(self.peak, total)
                self.phase_peak = max(self.phase_peak, total)

    def new_phase(self) -> int:
        """Start a new phase; returns the peak of the one that ended (including a sample now)."""
        total, _ = self.daemon_.rss()
        with self._lock:
            peak = max(self.phase_peak, total)
            self.phase_peak = total
            self.peak = max(self.peak, total)
        return peak

    def stop(self) -> None:
        self._stop.set()


class Api:
    def __init__(self, base_url: str, token: str) -> None:
        self.client = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"},
                                   timeout=httpx.Timeout(60), limits=httpx.Limits(max_keepalive_connections=4))

    def get(self, path: str, params: dict | None = None) -> tuple[float, httpx.Response]:
        t0 = time.perf_counter()
        r = self.client.get(path, params=params)
        return time.perf_counter() - t0, r

    def get_json(self, path: str, params: dict | None = None) -> dict:
        _, r = self.get(path, params)
        return checked_json(r, path, params)

    def total(self, params: dict | None = None) -> int:
        return page_total(self.get_json("/messages", {"limit": 1, **(params or {})}), "/messages")

    def close(self) -> None:
        self.client.close()


def checked_json(r: httpx.Response, path: str, params: dict | None = None) -> dict:
    where = f"GET {path}" + (f"?{httpx.QueryParams(params)}" if params else "")
    if r.status_code != 200:
        raise BenchError(f"{where} answered HTTP {r.status_code}: {r.text[:300]!r}")
    try:
        return r.json()
    except ValueError:
        raise BenchError(f"{where} answered 200 with a body that is not JSON: {r.text[:300]!r}") from None


def page_total(body: dict, where: str) -> int:
    try:
        return int(body["pagination"]["total"])
    except (KeyError, TypeError, ValueError):
        raise BenchError(f"GET {where}: no pagination.total in the answer: {json.dumps(body)[:300]}") from None


class StoredPoller(threading.Thread):
    """Polls GET /messages?limit=1 every ``interval`` s until pagination.total reaches the target."""

    def __init__(self, daemon: Fleet, t0: float, target: int, *, interval: float = 0.05, stall: float = 120.0,
                 progress: Callable[[float, int], None] | None = None, progress_every: float = 5.0) -> None:
        super().__init__(name="stored-poller", daemon=True)
        self.api = Api(daemon.api_url, daemon.token)
        self.daemon_ = daemon
        self.t0 = t0
        self.target = target
        self.interval = interval
        self.stall = stall
        self.progress = progress
        self.progress_every = progress_every
        self.samples: list[tuple[float, int]] = []
        self.reached_at: float | None = None
        self.error: str | None = None
        self.api_error: str | None = None
        self.load_done = threading.Event()
        self.load_done_at: float | None = None

    def run(self) -> None:
        perf = time.perf_counter
        last_total, last_change, next_progress = -1, perf(), self.t0 + self.progress_every
        try:
            while True:
                start = perf()
                try:
                    total = self.api.total()
                except (httpx.HTTPError, BenchError) as exc:
                    if not self.daemon_.alive():
                        self.error = f"a daemon exited during the run: {self.daemon_.exit_status()}"
                        return
                    self.api_error = f"{type(exc).__name__}: {exc}"[:300]
                    total = last_total
                now = perf()
                self.samples.append((now - self.t0, total))
                if total != last_total:
                    last_total, last_change = total, now
                if total >= self.target:
                    self.reached_at = now
                    return
                if self.progress and now >= next_progress:
                    self.progress(now - self.t0, total)
                    next_progress += self.progress_every
                if self.load_done.is_set() and now - max(last_change, self.load_done_at or 0) > self.stall:
                    self.error = (f"stored count stalled at {total:,} of {self.target:,} for {self.stall:.0f} s "
                                  "after the load ended" + (f" (last API error: {self.api_error})" if self.api_error else ""))
                    return
                time.sleep(max(0.0, self.interval - (perf() - start)))
        finally:
            self.api.close()

    def stored_at(self, t: float) -> int | None:
        """The last observed total at or before ``t`` seconds after t0."""
        best = None
        for ts, total in self.samples:
            if ts <= t:
                best = total
            else:
                break
        return best


# -- phases -----------------------------------------------------------------------------------------


class DepthSampler(threading.Thread):
    """Samples the ingest queue's depth every ``interval`` s with accepted and listed counts beside it,
    and prints a line every ``print_every`` s."""

    def __init__(self, probe, t0: float, accepted: Callable[[], int], listed: Callable[[], int | None], *,
                 interval: float = 0.5, print_every: float = 2.0) -> None:
        super().__init__(name="depth-sampler", daemon=True)
        self.probe, self.t0, self.accepted, self.listed = probe, t0, accepted, listed
        self.interval, self.print_every = interval, print_every
        self.series: list[list] = []   # [seconds, accepted, listed, depth]
        self.errors: Counter = Counter()
        self.probe_seconds: list[float] = []
        self._halt = threading.Event()

    def run(self) -> None:
        perf = time.perf_counter
        next_print = self.t0 + self.print_every
        log(f"  {'time':>7}  {'accepted':>9}  {'listed':>9}  {'backlog':>9}  {'queue depth':>11}")
        try:
            while True:
                start = perf()
                try:
                    depth = self.probe()
                except Exception as exc:  # a probe failure must not end the run; it is counted
                    depth = None
                    self.errors[f"{type(exc).__name__}: {exc}"[:200]] += 1
                    close = getattr(self.probe, "close", None)
                    if close:
                        try:
                            close()
                        except Exception:
                            pass
                now = perf()
                self.probe_seconds.append(now - start)
                row = [round(now - self.t0, 2), self.accepted(), self.listed(), depth]
                self.series.append(row)
                if now >= next_print:
                    backlog = row[1] - row[2] if row[2] is not None else None
                    log(f"  {row[0]:6.1f}s  {fmt_int(row[1]):>9}  {fmt_int(row[2]):>9}  {fmt_int(backlog):>9}  "
                        f"{fmt_int(row[3]):>11}")
                    next_print += self.print_every
                if self._halt.wait(max(0.0, self.interval - (perf() - start))):
                    return
        finally:
            close = getattr(self.probe, "close", None)
            if close:
                close()

    def stop(self) -> None:
        self._halt.set()
        self.join(10)

    def summary(self, source: str) -> dict:
        depths = [(r[3], r[0]) for r in self.series if r[3] is not None]
        peak = max(depths) if depths else (None, None)
        return {"source": source, "interval_s": self.interval, "samples": len(self.series),
                "max": peak[0], "max_at_s": peak[1],
                "probe_p50_ms": latency_summary(self.probe_seconds)["p50_ms"],
                "probe_errors": dict(self.errors.most_common()),
                "series_columns": ["seconds", "accepted", "listed", "depth"], "series": self.series}


def machine_busy(seconds: float) -> float:
    """Cores the whole machine used over the next ``seconds``."""
    a = psutil.cpu_times()
    time.sleep(seconds)
    b = psutil.cpu_times()
    busy = lambda m: sum(m) - m.idle - getattr(m, "iowait", 0.0)  # noqa: E731
    return (busy(b) - busy(a)) / seconds


def wait_for_idle_machine(limit: float, *, below: float = 0.2, quiet: int = 3) -> float:
    """Wait (at most ``limit`` s) until the machine has used less than ``below`` cores for ``quiet``
    seconds in a row: on a shared machine, someone's test suite may be running."""
    start, calm, said = time.monotonic(), 0, False
    while time.monotonic() - start < limit:
        busy = machine_busy(1.0)
        calm = calm + 1 if busy < below else 0
        if calm >= quiet:
            break
        if not said and time.monotonic() - start > 5:
            log(f"  waiting up to {limit:.0f} s for the machine to be idle ({busy:.2f} cores busy) ...")
            said = True
    waited = time.monotonic() - start
    if said:
        log(f"  ... {'idle' if calm >= quiet else 'still busy'} after {waited:.0f} s")
    return waited


def _machine_times() -> dict:
    m = psutil.cpu_times()
    return {f: getattr(m, f) for f in m._fields}


def cpu_snapshot(named: list[tuple[str, psutil.Process]]) -> dict:
    """CPU seconds (user + system) per labelled process, this process and the whole machine."""
    out: dict = {}
    for label, p in named:
        try:
            t = p.cpu_times()
            out[f"{label} [{p.pid}]"] = t.user + t.system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    t = psutil.Process().cpu_times()
    out["load generator + pollers (this process)"] = t.user + t.system
    out["__machine__"] = _machine_times()
    return out


class OtherProcesses(threading.Thread):
    """Every other process on the machine, sampled every ``interval`` s during the run, so that CPU
    used by someone else (the machine may be shared: test suites, ...) is seen even when the process
    started or ended meanwhile (all but those that lived less than ``interval``)."""

    def __init__(self, exclude: set[int], interval: float = 0.5) -> None:
        super().__init__(name="process-sampler", daemon=True)
        self.exclude, self.interval = exclude, interval
        self.base: dict[tuple[int, float], float] = {}
        self.last: dict[tuple[int, float], tuple[float, str]] = {}
        self.t0 = time.time()
        self._halt = threading.Event()
        self._sample(self.base)

    def _sample(self, into: dict | None = None) -> None:
        # cpu_times and create_time only (about 4 ms for 130 processes); the command line, ten times
        # dearer, once per process.
        for p in psutil.process_iter(["pid", "cpu_times", "create_time"]):
            info = p.info
            if info["pid"] in self.exclude or not info["cpu_times"] or info["create_time"] is None:
                continue
            key = (info["pid"], info["create_time"])
            cpu = info["cpu_times"].user + info["cpu_times"].system
            if into is not None:
                into[key] = cpu
                continue
            cmd = self.last[key][1] if key in self.last else None
            if cmd is None:
                try:
                    cmd = " ".join(p.cmdline()) or f"[{p.name()}]"
                except psutil.Error:
                    cmd = "?"
            self.last[key] = (cpu, cmd)

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            self._sample()

    def stop(self, seconds: float) -> list[dict]:
        self._halt.set()
        self.join(5)
        self._sample()
        out = []
        for key, (cpu, cmd) in self.last.items():
            used = cpu - self.base.get(key, 0.0)  # a process that started during the run: all of it
            if used > 0:
                out.append({"pid": key[0], "cores": used / seconds, "command": cmd[:160],
                            "started_during_run": key not in self.base})
        return sorted(out, key=lambda o: -o["cores"])


def _group(cmd: str) -> str:
    """What a process is, for grouping: its first words ("python -m logmail daemon", "[kworker]")."""
    words = cmd.split()
    if not words:
        return cmd
    if words[0].startswith("["):
        return "[" + words[0].strip("[]").split("/")[0].split(":")[0].split("-")[0] + "]"
    head = [Path(words[0]).name] + words[1:4]
    return " ".join(w if len(w) < 40 else "..." + w[-37:] for w in head)


def cpu_breakdown(before: dict, after: dict, seconds: float, others: list[dict] | None = None) -> dict:
    """Cores used per process between two snapshots, who else used the machine, and what is left of
    the machine's busy time (processes too short-lived to be sampled, the kernel)."""
    if not seconds:
        return {}
    per = {k: round((after[k] - before[k]) / seconds, 3) for k in after if k in before and not k.startswith("__")}
    per = dict(sorted(per.items(), key=lambda kv: -kv[1]))
    m0, m1 = before["__machine__"], after["__machine__"]
    split = {f: round((m1[f] - m0[f]) / seconds, 3) for f in m1 if f not in ("guest", "guest_nice")}
    busy = sum(v for f, v in split.items() if f not in ("idle", "iowait"))
    groups: dict[str, dict] = {}
    for o in others or []:
        g = groups.setdefault(_group(o["command"]), {"cores": 0.0, "processes": 0})
        g["cores"] += o["cores"]
        g["processes"] += 1
    grouped = [{"command": k, "cores": round(v["cores"], 3), "processes": v["processes"]}
               for k, v in sorted(groups.items(), key=lambda kv: -kv[1]["cores"]) if v["cores"] >= 0.005]
    other_sum = sum(g["cores"] for g in grouped)
    return {"seconds": round(seconds, 2), "cores": per, "machine_busy_cores": round(busy, 3),
            "machine_split_cores": split, "cpus": psutil.cpu_count(),
            "other_processes": grouped, "other_processes_cores": round(other_sum, 3),
            "unaccounted_cores": round(busy - sum(per.values()) - other_sum, 3)}


@dataclass
class Run:
    args: argparse.Namespace
    daemon: Fleet
    sampler: RssSampler
    stack: object = None
    results: dict = field(default_factory=dict)
    mix: mailmix.MixStats = field(default_factory=mailmix.MixStats)
    sent_ok: int = 0   # messages accepted with 250 so far, i.e. the number the API should list

    def load(self, messages: list, *, progress: Callable | None = None) -> smtpload.LoadResult:
        return asyncio.run(smtpload.run_load("127.0.0.1", self.daemon.smtp_ports, messages, self.args.connections,
                                             pipelining=not self.args.no_pipelining, on_progress=progress))


def generate(args: argparse.Namespace) -> list:
    log(f"Generating {args.messages:,} messages (seed {args.seed}) ...")
    t = time.perf_counter()
    messages = mailmix.make_messages(args.seed, 0, args.messages)
    mix = mailmix.MixStats()
    mix.add(messages)
    log(f"  done in {time.perf_counter() - t:.1f} s: {mix.total_bytes / MB:,.1f} MB, median "
        f"{mix.as_dict()['size_p50']:,} bytes, {mix.big_attachments} with a ~200 KB attachment")
    return messages


def phase_throughput(run: Run, messages: list | None = None) -> None:
    """The throughput run; ``messages`` may be handed in (``--scaling`` generates them once)."""
    args, daemon = run.args, run.daemon
    keep_messages = messages is not None
    if messages is None:
        messages = generate(args)
    run.mix.add(messages)
    mix = mailmix.MixStats()
    mix.add(messages)

    waited = daemon.wait_quiet()
    api = Api(daemon.api_url, daemon.token)
    before = api.total()
    api.close()
    rss_start, _ = daemon.rss()
    run.sampler.new_phase()
    probe = run.stack.depth_probe(daemon.data_dir)
    try:
        probe()   # connect now, not on the clock
    except Exception:
        pass
    named = daemon.named_processes() + run.stack.engine_processes()
    cpu_daemon0, cpu_client0 = daemon.cpu_seconds(), time.process_time()
    n_daemons = len(daemon.daemons)
    log(f"Throughput: {args.messages:,} messages over {args.connections} connection(s)"
        + (f" spread over {n_daemons} daemons (SMTP ports {', '.join(map(str, daemon.smtp_ports))})" if n_daemons > 1 else "")
        + f", {'pipelined' if not args.no_pipelining else 'not pipelined'}; "
        f"{'daemons' if n_daemons > 1 else 'daemon'} idle after {waited:.1f} s, RSS {rss_start / MB:.0f} MB")

    if args.wait_idle > 0:
        wait_for_idle_machine(args.wait_idle)
    busy_before = machine_busy(1.0)
    if busy_before > 0.2:
        log(f"  WARNING: the machine was already busy before the load ({busy_before:.2f} cores in use with the "
            "daemons idle): something else is running, and the figures will be low")

    holder: list = [None]
    cpu0 = cpu_snapshot(named)
    others = OtherProcesses({p.pid for _, p in named} | {os.getpid()})
    others.start()
    t0 = time.perf_counter()
    poller = StoredPoller(daemon, t0, before + len(messages), stall=args.stall_timeout)
    poller.start()
    depth = DepthSampler(probe, t0, lambda: holder[0].ok if holder[0] else 0,
                         lambda: (poller.samples[-1][1] - before) if poller.samples else None)
    depth.start()
    try:
        result = run.load(messages, progress=lambda r: holder.__setitem__(0, r))
        poller.load_done_at = time.perf_counter()
        poller.target = before + result.ok   # failures are never listed
        poller.load_done.set()
        cpu_client = time.process_time() - cpu_client0
        cpu_daemon_load = daemon.cpu_seconds() - cpu_daemon0
        rss_after_load, _ = daemon.rss()
        poller.join()
        t_end = time.perf_counter()
        cpu1 = cpu_snapshot(named)
        cpu_daemon = daemon.cpu_seconds() - cpu_daemon0
        other_use = others.stop(t_end - t0)
    finally:
        depth.stop()
        others._halt.set()
        poller.load_done.set()
    rss_end, per_process = daemon.rss()
    rss_peak = run.sampler.new_phase()
    run.sent_ok = before + result.ok
    if not keep_messages:
        del messages

    accept_s = (result.last_ok - t0) if result.ok else None
    e2e_s = (poller.reached_at - t0) if poller.reached_at else None
    listed_at_last_250 = poller.stored_at(accept_s) if accept_s else None
    run.results["mix"] = mix.as_dict()
    run.results["throughput"] = {
        "messages": args.messages,
        "connections": args.connections,
        "pipelining": result.pipelining and not args.no_pipelining,
        "accepted": result.ok,
        "failures": result.failed,
        "failure_reasons": dict(result.failures.most_common()),
        "connect_errors": dict(result.connect_errors.most_common()),
        "accept_seconds": round(accept_s, 3) if accept_s else None,
        "accepted_per_s": round(result.ok / accept_s, 1) if accept_s else None,
        "accepted_mb_per_s": round(result.bytes_sent / MB / accept_s, 2) if accept_s else None,
        "end_to_end_seconds": round(e2e_s, 3) if e2e_s else None,
        "end_to_end_per_s": round(result.ok / e2e_s, 1) if e2e_s else None,
        "end_to_end_error": poller.error,
        "listed_when_last_250": None if listed_at_last_250 is None else listed_at_last_250 - before,
        "smtp_latency": latency_summary(result.latencies),
        "smtp_envelope_latency": latency_summary(result.envelope_latencies),
        "smtp_data_latency": latency_summary([a - b for a, b in zip(result.latencies, result.envelope_latencies)]),
        "rss_start_mb": round(rss_start / MB, 1),
        "rss_peak_mb": round(rss_peak / MB, 1),
        "rss_after_load_mb": round(rss_after_load / MB, 1),
        "rss_end_mb": round(rss_end / MB, 1),
        "rss_end_per_process_mb": [{"pid": pid, "process": name, "mb": round(rss / MB, 1)}
                                   for pid, name, rss in per_process],
        "daemon_cpu_seconds": round(cpu_daemon, 2),
        "daemon_cpu_seconds_during_load": round(cpu_daemon_load, 2),
        "daemon_cores_avg": round(cpu_daemon / e2e_s, 2) if e2e_s else None,
        "client_cpu_seconds": round(cpu_client, 2),
        "client_cores_avg": round(cpu_client / (poller.load_done_at - t0), 2),
        "stored_timeline": [[round(t, 2), n - before] for t, n in poller.samples[:: max(1, len(poller.samples) // 400)]],
        "daemons": n_daemons,
        "accepted_per_daemon": [result.ok_by_port.get(port, 0) for port in daemon.smtp_ports],
        "queue_depth": depth.summary(probe.source),
        "cpu": cpu_breakdown(cpu0, cpu1, t_end - t0, other_use),
        "machine_busy_cores_before": round(busy_before, 3),
    }
    th = run.results["throughput"]
    cpu = th["cpu"]
    if cpu and result.ok:
        per_msg = lambda pred: round(sum(c for k, c in cpu["cores"].items() if pred(k)) * cpu["seconds"]  # noqa: E731
                                     / result.ok * 1000, 2)
        cpu["ms_per_message"] = {
            "daemons": per_msg(lambda k: k.startswith(("logmail daemon", "daemon ", "ingest worker"))),
            "engines": per_msg(lambda k: k.startswith(("MariaDB", "RabbitMQ", "Redis", "SecantusDB"))),
            "load_generator": per_msg(lambda k: k.startswith("load generator")),
        }
        cpu["ms_per_message"]["total"] = round(sum(cpu["ms_per_message"].values()), 2)
    log(f"  accepted {result.ok:,} in {fmt_num(accept_s, ' s', 2)} ({fmt_num(th['accepted_per_s'], ' msgs/s')}); "
        f"listed all in {fmt_num(e2e_s, ' s', 2)} ({fmt_num(th['end_to_end_per_s'], ' msgs/s')}); "
        f"{result.failed} failure(s)")
    qd = th["queue_depth"]
    log(f"  queue depth: max {fmt_int(qd['max'])} at {fmt_num(qd['max_at_s'], ' s')} ({qd['samples']} samples of "
        f"{qd['source']}; a probe took {fmt_num(qd['probe_p50_ms'], ' ms', 2)} p50)"
        + (f"; probe errors: {qd['probe_errors']}" if qd["probe_errors"] else ""))
    if n_daemons > 1:
        log(f"  accepted per daemon: {' / '.join(fmt_int(x) for x in th['accepted_per_daemon'])}")
    print_cpu(th["cpu"])
    if poller.error:
        log(f"  end to end NOT reached: {poller.error}")
    if result.failed:
        for reason, n in result.failures.most_common(5):
            log(f"    {n:>6} x {reason}")


def print_cpu(cpu: dict) -> None:
    if not cpu:
        return
    sp = cpu["machine_split_cores"]
    log(f"  CPU from the start of the load until all were listed ({cpu['seconds']} s), in cores of "
        f"{cpu['cpus']}: machine busy {cpu['machine_busy_cores']:.2f} (user {sp.get('user', 0):.2f}, nice "
        f"{sp.get('nice', 0):.2f}, system {sp.get('system', 0):.2f}, softirq {sp.get('softirq', 0):.2f}, steal "
        f"{sp.get('steal', 0):.2f}; iowait {sp.get('iowait', 0):.2f})")
    for label, cores in cpu["cores"].items():
        if cores >= 0.005:
            log(f"    {cores:5.2f}  {label}")
    if cpu.get("other_processes"):
        log(f"    {cpu['other_processes_cores']:5.2f}  other processes on the machine (not part of this run):")
        for o in cpu["other_processes"][:4]:
            log(f"           {o['cores']:5.2f}  {o['command'][:80]}"
                + (f" ({o['processes']} processes)" if o["processes"] > 1 else ""))
    log(f"    {cpu['unaccounted_cores']:5.2f}  the rest (the kernel, processes too short-lived to be sampled)")
    pm = cpu.get("ms_per_message")
    if pm:
        log(f"  CPU per message: {pm['total']:.2f} ms (daemons and workers {pm['daemons']:.2f}, engine servers "
            f"{pm['engines']:.2f}, load generator {pm['load_generator']:.2f}): {cpu['cpus']} idle cores would "
            f"allow about {cpu['cpus'] * 1000 / pm['total']:,.0f} msgs/s end to end at this cost")
    if cpu.get("other_processes_cores", 0) > 0.1:
        log("  WARNING: other processes used a noticeable share of the machine during the run: the figures are low")


def phase_seed(run: Run) -> None:
    args, daemon = run.args, run.daemon
    start, stop = args.messages, args.seed_stored
    if stop <= start:
        log(f"Seeding: not needed ({run.sent_ok:,} stored, --seed-stored {args.seed_stored:,})")
        return
    log(f"Seeding the store up to {stop:,} messages ({stop - start:,} more, chunks of {args.seed_chunk:,}) ...")
    t_all = time.perf_counter()
    total = smtpload.LoadResult()
    api = Api(daemon.api_url, daemon.token)
    for lo in range(start, stop, args.seed_chunk):
        hi = min(stop, lo + args.seed_chunk)
        chunk = mailmix.make_messages(args.seed, lo, hi)
        run.mix.add(chunk)
        r = run.load(chunk)
        del chunk
        total.merge(r)
        run.sent_ok += r.ok
        rate = r.ok / (r.last_ok - r.started) if r.ok else 0
        listed = api.total()
        log(f"  {hi:>9,}/{stop:,} sent  {rate:6.0f} msgs/s accepted  {listed:>9,} listed  "
            f"{time.perf_counter() - t_all:6.0f} s" + (f"  {r.failed} failure(s)" if r.failed else ""))
        if not daemon.alive():
            raise BenchError(f"a daemon exited while seeding: {daemon.exit_status()}")
    log(f"  waiting until all {run.sent_ok:,} are listed ...")
    last, last_change, next_print = -1, time.monotonic(), time.monotonic() + 5
    while True:
        listed = api.total()
        now = time.monotonic()
        if listed >= run.sent_ok:
            break
        if listed != last:
            last, last_change = listed, now
        if now - last_change > args.stall_timeout:
            raise BenchError(f"ingest stalled: {listed:,} of {run.sent_ok:,} listed, no progress for "
                             f"{args.stall_timeout:.0f} s")
        if now >= next_print:
            log(f"    {listed:,} listed")
            next_print = now + 5
        time.sleep(0.5)
    api.close()
    elapsed = time.perf_counter() - t_all
    run.results["seeding"] = {"messages": stop - start, "accepted": total.ok, "failures": total.failed,
                              "failure_reasons": dict(total.failures.most_common()),
                              "seconds_until_listed": round(elapsed, 1),
                              "listed_per_s": round(total.ok / elapsed, 1),
                              "rss_peak_mb": round(run.sampler.new_phase() / MB, 1)}
    log(f"  seeded {total.ok:,} in {elapsed:.0f} s ({total.ok / elapsed:.0f} msgs/s end to end, "
        f"message generation included)")


def phase_read(run: Run) -> None:
    args, daemon = run.args, run.daemon
    waited = daemon.wait_quiet()
    rss_idle, per_process = daemon.rss()
    run.sampler.new_phase()
    api = Api(daemon.api_url, daemon.token)
    stored = api.total()
    R = args.read_requests
    rng = random.Random(args.seed)
    log(f"Read path with {stored:,} stored ({R} requests per kind; daemon idle after {waited:.1f} s, "
        f"RSS {rss_idle / MB:.0f} MB)")
    out: dict = {"stored": stored, "rss_idle_mb": round(rss_idle / MB, 1),
                 "rss_idle_per_process_mb": [{"pid": pid, "process": name, "mb": round(rss / MB, 1)}
                                             for pid, name, rss in per_process]}
    ids: list[str] = []

    def bench(name: str, label: str, requests: list[tuple[str, dict | None]], *, collect: bool = False) -> dict:
        for path, params in requests[:5]:   # warm-up, untimed
            api.get(path, params)
        lat, errors, first_error, totals = [], 0, None, set()
        for path, params in requests:
            dt, r = api.get(path, params)
            if r.status_code != 200:
                errors += 1
                first_error = first_error or f"HTTP {r.status_code}: {r.text[:200]}"
                continue
            lat.append(dt)
            if collect or params and "q" in params:
                body = r.json()
                if params and "q" in params:
                    totals.add(page_total(body, path))
                if collect:
                    ids.extend(m["id"] for m in body.get("messages", []))
        res = {"label": label, **latency_summary(lat), "errors": errors}
        if first_error:
            res["first_error"] = first_error
        if totals:
            res["result_total"] = sorted(totals)[-1] if len(totals) == 1 else sorted(totals)
        out[name] = res
        log(f"  {label:<44} p50 {fmt_num(res['p50_ms'], ' ms', 2):>10}  p99 {fmt_num(res['p99_ms'], ' ms', 2):>10}"
            + (f"  {errors} error(s): {first_error}" if errors else ""))
        return res

    bench("list", "GET /messages?limit=50", [("/messages", {"limit": 50})] * R, collect=True)

    # Follow nextCursor down the newest pages, then time the pages from half-way to cursor-depth.
    cursors, cursor, walk = [], None, []
    for _ in range(args.cursor_depth):
        dt, r = api.get("/messages", {"limit": 50, **({"cursor": cursor} if cursor else {})})
        body = checked_json(r, "/messages", {"limit": 50})
        walk.append(dt)
        ids.extend(m["id"] for m in body.get("messages", []))
        cursor = body["pagination"].get("nextCursor")
        if not cursor:
            break
        cursors.append(cursor)
    deep = cursors[len(cursors) // 2:] or cursors
    if deep:
        first_page = len(cursors) - len(deep) + 2
        bench("cursor", f"GET /messages?limit=50&cursor= (pages {first_page}-{len(cursors) + 1})",
              [("/messages", {"limit": 50, "cursor": deep[i % len(deep)]}) for i in range(R)])
    else:
        log("  (no nextCursor: too few messages for a cursor page)")

    common = bench("search_common", f"GET /messages?q={mailmix.COMMON_WORD}&limit=50 (common)",
                   [("/messages", {"q": mailmix.COMMON_WORD, "limit": 50})] * R)
    rare = bench("search_rare", f"GET /messages?q={mailmix.RARE_TOKEN}&limit=50 (rare)",
                 [("/messages", {"q": mailmix.RARE_TOKEN, "limit": 50})] * R, collect=True)
    common["expected_total"], rare["expected_total"] = run.mix.common, run.mix.rare
    for label, res in (("common word", common), ("rare token", rare)):
        if res.get("result_total") != res["expected_total"]:
            log(f"    note: search for the {label} found {res.get('result_total')} messages; "
                f"{res['expected_total']:,} of the messages sent contain it")

    # Detail: ids from the newest pages, the rare-token hits and pages at random offsets across the store.
    for off in sorted(rng.randrange(0, max(1, stored - 50)) for _ in range(20)):
        body = api.get_json("/messages", {"limit": 50, "offset": off})
        ids.extend(m["id"] for m in body.get("messages", []))
    unique = sorted(set(ids))
    if unique:
        picks = [rng.choice(unique) for _ in range(R)]
        bench("detail", f"GET /messages/{{id}} ({len(unique):,} ids to pick from)",
              [(f"/messages/{i}", None) for i in picks])
    api.close()

    out["cursor_walk"] = latency_summary(walk)
    out["rss_peak_mb"] = round(run.sampler.new_phase() / MB, 1)
    rss_end, _ = daemon.rss()
    out["rss_end_mb"] = round(rss_end / MB, 1)
    out["storage"] = storage(daemon.data_dir, stored)
    run.results["read"] = out
    run.results["mix_stored"] = run.mix.as_dict()


def storage(data_dir: Path, stored: int) -> dict:
    files = {}
    for p in sorted(data_dir.rglob("*")):
        if p.is_file():
            files[str(p.relative_to(data_dir))] = p.stat().st_size
    dbs = {k: v for k, v in files.items() if k.startswith(("logmail.db", "content.db"))}
    total = sum(dbs.values())
    return {"files": files, "database_bytes": total,
            "logmail_db_bytes": sum(v for k, v in dbs.items() if k.startswith("logmail.db")),
            "content_db_bytes": sum(v for k, v in dbs.items() if k.startswith("content.db")),
            "bytes_per_message": round(total / stored) if stored else None}


# -- report -----------------------------------------------------------------------------------------


def machine_info() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    commit = None
    try:
        root = Path(__file__).resolve().parent.parent
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=5).stdout.strip() or None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        if commit and dirty:
            commit += " (modified)"
    except (OSError, subprocess.SubprocessError):
        pass
    return {"cpu_count": os.cpu_count(), "cpus_usable": usable, "cpu_model": model,
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "memory_gb": round(psutil.virtual_memory().total / 1024 ** 3, 1),
            "python": platform.python_version(), "platform": platform.platform(), "git": commit}


def verdict(value, target, *, lower_is_better: bool, applies: bool = True, why: str = "") -> str:
    if value is None:
        return "not measured"
    if not applies:
        return f"n/a{(' (' + why + ')') if why else ''}"
    ok = value < target if lower_is_better else value >= target
    return "met" if ok else "MISSED"


def print_summary(run: Run) -> None:
    res, args = run.results, run.args
    rows: list[tuple[str, str, str, str]] = []

    def row(name: str, value: str, target: str = "", v: str = "") -> None:
        rows.append((name, value, target, v))

    th = res.get("throughput")
    if th:
        at16 = args.connections == 16
        lat = th["smtp_latency"]
        row("Accepted (N / time to last 250)", fmt_num(th["accepted_per_s"], " msgs/s"), ">= 800 msgs/s @16 conn",
            verdict(th["accepted_per_s"], TARGETS["accepted_per_s"], lower_is_better=False, applies=at16,
                    why=f"{args.connections} connections"))
        row("  accepted volume", fmt_num(th["accepted_mb_per_s"], " MB/s", 2))
        row("End to end (N / time until listed)", fmt_num(th["end_to_end_per_s"], " msgs/s"), ">= 400 msgs/s",
            verdict(th["end_to_end_per_s"], TARGETS["end_to_end_per_s"], lower_is_better=False))
        row("  listed when the last 250 came", fmt_int(th["listed_when_last_250"]))
        row("SMTP transaction latency p50", fmt_num(lat["p50_ms"], " ms", 2))
        row("SMTP transaction latency p99", fmt_num(lat["p99_ms"], " ms", 2))
        env, data = th["smtp_envelope_latency"], th["smtp_data_latency"]
        row("  MAIL FROM..DATA -> 354, p50 / p99", f"{fmt_num(env['p50_ms'], '', 2)} / {fmt_num(env['p99_ms'], ' ms', 2)}")
        row("  message -> 250 after the dot, p50 / p99",
            f"{fmt_num(data['p50_ms'], '', 2)} / {fmt_num(data['p99_ms'], ' ms', 2)}")
        row("SMTP failures (non-250)", fmt_int(th["failures"]), "0", "met" if th["failures"] == 0 else "MISSED")
        row("Daemon RSS, peak during the run", fmt_num(th["rss_peak_mb"], " MB"))
        row("Daemon RSS, at the end of the run", fmt_num(th["rss_end_mb"], " MB"))
        row("Daemon CPU (cores, average to listed)", fmt_num(th["daemon_cores_avg"], "", 2))
        row("Load generator CPU (cores, average)", fmt_num(th["client_cores_avg"], "", 2))
        if th.get("cpu"):
            row("Machine busy (cores, average to listed)", fmt_num(th["cpu"]["machine_busy_cores"], "", 2))
            row("  other processes on the machine (cores)", fmt_num(th["cpu"].get("other_processes_cores"), "", 2))
            pm = th["cpu"].get("ms_per_message") or {}
            row("CPU per message (daemons + engines + client)", fmt_num(pm.get("total"), " ms", 2))
        qd = th.get("queue_depth") or {}
        row("Ingest queue depth, max", fmt_int(qd.get("max")) + (f" at {qd['max_at_s']:.1f} s" if qd.get("max_at_s")
                                                                  is not None else ""))
    st = res.get("storage")
    if st:
        md, ct = st["metadata"], st["content"]
        row(f"Stored messages (for the sizes below)", fmt_int(st["stored"]))
        row("Metadata DB per 100,000 messages", fmt_num(md["bytes_per_100k_messages"] / MB, " MB")
            if md.get("bytes_per_100k_messages") is not None else "-")
        if "ibd_file_bytes" in md and st["stored"]:
            row("  .ibd files incl. FULLTEXT aux, per 100,000", fmt_num(md["ibd_file_bytes"] * 1e5 / st["stored"] / MB, " MB"))
        row("Content store per 100,000 messages", fmt_num(ct["bytes_per_100k_messages"] / MB, " MB")
            if ct.get("bytes_per_100k_messages") is not None else "-")
        if ct.get("server_data_dir_bytes") and st["stored"]:
            row("  SecantusDB data directory, per 100,000",
                fmt_num(ct["server_data_dir_bytes"] * 1e5 / st["stored"] / MB, " MB"))
        after = res.get("storage_after_stop")
        if after:
            row("  after the stop (WAL checkpointed): metadata / content",
                f"{fmt_num(after['metadata']['bytes_per_100k_messages'] / MB, '', 1)} / "
                f"{fmt_num(after['content']['bytes_per_100k_messages'] / MB, ' MB', 1)}")
    rd = res.get("read")
    if rd:
        at100k = rd["stored"] >= 100_000
        row(f"Read path, stored messages", fmt_int(rd["stored"]))
        row("Daemon RSS, idle with the store full", fmt_num(rd["rss_idle_mb"], " MB"))
        row("Daemon RSS, peak during reads", fmt_num(rd["rss_peak_mb"], " MB"), "< 200 MB @100,000",
            verdict(rd["rss_peak_mb"], TARGETS["rss_mb_at_100k"], lower_is_better=True, applies=at100k,
                    why=f"{rd['stored']:,} stored"))
        for key, target_key, target_text in (("list", "list_p99_ms", "< 50 ms"), ("cursor", "list_p99_ms", "< 50 ms"),
                                             ("search_common", "search_p99_ms", "< 200 ms"),
                                             ("search_rare", "search_p99_ms", "< 200 ms"), ("detail", None, "")):
            r = rd.get(key)
            if not r:
                continue
            row(r["label"] + " p50", fmt_num(r["p50_ms"], " ms", 2))
            row(r["label"] + " p99", fmt_num(r["p99_ms"], " ms", 2), target_text,
                verdict(r["p99_ms"], TARGETS[target_key], lower_is_better=True) if target_key else "")
            if r.get("errors"):
                row("  errors", fmt_int(r["errors"]), "0", "MISSED")
            if "expected_total" in r:
                row("  results found / messages containing it", f"{fmt_int(r.get('result_total'))} / "
                    f"{fmt_int(r['expected_total'])}")
        st = rd["storage"]
        if res.get("stack", "embedded") == "embedded":  # otherwise the store sizes are in the rows above
            row("logmail.db (incl. -wal/-shm)", fmt_num(st["logmail_db_bytes"] / MB, " MB"))
            row("content.db (incl. -wal/-shm)", fmt_num(st["content_db_bytes"] / MB, " MB"))
            row("Bytes on disk per message", fmt_int(st["bytes_per_message"]))
            if "storage_after_stop" in rd:
                row("Bytes per message after stop", fmt_int(rd["storage_after_stop"]["bytes_per_message"]))
        mix = res.get("mix_stored", {})
        if mix.get("size_mean"):
            row("  mean size of the messages sent", fmt_int(mix["size_mean"]))

    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    w2 = max(len(r[2]) for r in rows)
    stack = res.get("stack", "embedded")
    log()
    log(f"Summary ({stack} stack" + (f": content {res['content']}, queue {res['queue']}" if stack == "production" else "")
        + f"; {res.get('daemons', 1)} daemon{'s' if res.get('daemons', 1) > 1 else ''})")
    log(f"{'Figure':<{w0}}  {'Measured':>{w1}}  {'Target':<{w2}}  Verdict")
    log(f"{'-' * w0}  {'-' * w1}  {'-' * w2}  -------")
    for name, value, target, v in rows:
        log(f"{name:<{w0}}  {value:>{w1}}  {target:<{w2}}  {v}".rstrip())


# -- main -------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Benchmark logmail's capture path: SMTP acceptance, end-to-end ingest "
                                            "and API read latency with a large store.")
    p.add_argument("--messages", type=int, default=20000, metavar="N", help="messages for the throughput run (20000)")
    p.add_argument("--connections", type=int, default=16, metavar="C", help="concurrent SMTP connections (16)")
    p.add_argument("--workers", type=int, default=1, metavar="W",
                   help="ingest.workers for the daemon (1; 0 = a thread inside the daemon)")
    p.add_argument("--seed-stored", type=int, default=100_000, metavar="M",
                   help="fill the store up to M messages before timing the read path (100000)")
    p.add_argument("--skip-read", action="store_true", help="only the throughput run: no seeding, no read path")
    p.add_argument("--read-requests", type=int, default=200, metavar="R", help="requests per read-path figure (200)")
    p.add_argument("--cursor-depth", type=int, default=10, metavar="P",
                   help="follow nextCursor this many pages; pages P/2..P are timed (10)")
    p.add_argument("--seed", type=int, default=20240115, help="random seed of the message mix")
    p.add_argument("--seed-chunk", type=int, default=5000, metavar="K", help="messages generated per seeding chunk")
    p.add_argument("--no-pipelining", action="store_true", help="wait for every SMTP reply before the next command")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="extra daemon setting, e.g. --set database.sqlite_synchronous=normal (repeatable)")
    p.add_argument("--logmail", metavar="PATH", help="the logmail executable (default: the one beside this Python)")
    p.add_argument("--startup-timeout", type=float, default=60, metavar="S")
    p.add_argument("--stall-timeout", type=float, default=120, metavar="S",
                   help="give up waiting for ingest after S seconds without progress (120)")
    p.add_argument("--stack", choices=("embedded", "production"), default="embedded",
                   help="embedded: SQLite files in data_dir (default); production: a fresh MariaDB database, "
                        "RabbitMQ vhost and Redis prefix on this machine's servers (+ SecantusDB, see --content)")
    p.add_argument("--content", choices=("mongodb", "embedded"), default="mongodb",
                   help="production stack only: the content store on a private SecantusDB server (mongodb, the "
                        "default) or left embedded in content.db")
    p.add_argument("--queue", choices=("rabbitmq", "outbox"), default="rabbitmq",
                   help="production stack only: the work queue on RabbitMQ (default) or the outbox table in MariaDB")
    p.add_argument("--daemons", type=int, default=1, metavar="D",
                   help="logmail daemons on the same engines, each with its own SMTP and API port (1)")
    p.add_argument("--scaling", action="store_true",
                   help="the throughput run with 1 and then 2 daemons, each on fresh engines; prints the ratio "
                        "(implies --skip-read; --daemons is ignored)")
    p.add_argument("--wait-idle", type=float, default=0, metavar="S",
                   help="before the throughput run, wait up to S seconds until the machine is idle (other "
                        "processes using under 0.2 cores for 3 s); 0 = do not wait (default)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (data, config, daemon log)")
    p.add_argument("--json", metavar="FILE", help="write every figure to FILE as JSON")
    args = p.parse_args(argv)
    for name in ("messages", "connections", "read_requests", "seed_chunk", "cursor_depth"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.workers < 0 or args.seed_stored < 0:
        p.error("--workers and --seed-stored must not be negative")
    if args.daemons < 1:
        p.error("--daemons must be at least 1")
    if args.scaling:
        args.skip_read = True
        args.daemons = 2
    if args.connections < args.daemons:
        p.error("--connections must be at least --daemons (the connections are spread over the daemons)")
    return args


def logmail_command(explicit: str | None) -> list[str]:
    if explicit:
        return [explicit]
    beside = Path(sys.executable).parent / "logmail"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("logmail")
    if found:
        return [found]
    raise SystemExit("cannot find the logmail executable; pass --logmail PATH")


class _DeferredInterrupts:
    """While cleaning up, Ctrl-C and SIGTERM are noted, not obeyed: a half-done cleanup would leave a
    database, a vhost or a server behind. Every cleanup step has its own timeout."""

    def __enter__(self) -> "_DeferredInterrupts":
        self.interrupted = False
        self._old = {}

        def note(signum, _frame):
            if not self.interrupted:
                log("\n(interrupt noted: cleaning up first; the engines' resources must not be left behind)")
            self.interrupted = True

        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, note)
            except ValueError:   # not the main thread
                pass
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def run_once(args: argparse.Namespace, n_daemons: int, messages: list | None = None,
             title: str = "") -> tuple[int, Run, bool]:
    """One throughput run (and the read path unless skipped) on fresh engines with ``n_daemons``
    daemons; everything it created is removed before it returns. Returns (status, run, interrupted)."""
    stack = make_stack(args.stack, content=args.content, queue=args.queue, log=log)
    workdir = Path(tempfile.mkdtemp(prefix="logmail-bench-"))
    shared = workdir / "data"
    daemons = []
    for k in range(1, n_daemons + 1):
        home = workdir if n_daemons == 1 else workdir / f"daemon-{k}"
        home.mkdir(parents=True, exist_ok=True)
        daemons.append(Daemon(logmail_command(args.logmail), home, workers=args.workers, overrides=args.overrides,
                              data_dir=shared if stack.shares_data_dir else home / "data",
                              label="logmail daemon" if n_daemons == 1 else f"daemon {k}"))
    fleet = Fleet(daemons)
    sampler = RssSampler(fleet)
    run = Run(args, fleet, sampler, stack)
    run.results.update({"stack": stack.name, "content": stack.content, "queue": stack.queue, "daemons": n_daemons})
    status, interrupted = 0, False
    if title:
        log(f"\n=== {title} ===")
    try:
        stack.setup()
        log(f"Engines: {stack.describe()}")
        run.results["engines"] = stack.describe()
        if n_daemons > 1 and stack.shares_data_dir:
            log(f"  note: the {n_daemons} daemons share one data_dir ({shared}): "
                + ("the whole store is SQLite" if stack.name == "embedded" else "content.db is SQLite")
                + ", which is safe for several processes on one host (WAL mode) but serialises their writes")
        for d in daemons:
            d.engine_settings = {**stack.settings(), **bench_settings(args)}
            log(f"Starting {' '.join(d.command)} daemon{'' if n_daemons == 1 else ' ' + d.label[7:]} "
                f"(SMTP 127.0.0.1:{d.smtp_port}, API {d.api_url}, data in {d.data_dir})")
            run.results.setdefault("configs", []).append(d.write_config())
            # One after the other: the first migrates a fresh database, the others find it up to date.
            d.start(args.startup_timeout)
        run.results["config"] = run.results["configs"][0]
        run.results["daemon_version"] = getattr(daemons[0], "version", None)
        sampler.start()
        phase_throughput(run, messages)
        if not args.skip_read:
            phase_seed(run)
            phase_read(run)
        waited = fleet.wait_quiet()
        api = Api(fleet.api_url, fleet.token)
        stored = api.total()
        api.close()
        run.results["storage"] = stack.storage(fleet.data_dirs, stored)
        run.results["storage"]["daemons_idle_after_s"] = round(waited, 1)
        print_storage(run.results["storage"], stack)
    except (BenchError, StackError) as exc:
        status = 2
        run.results["error"] = str(exc)
        log(f"\nBENCHMARK ABORTED: {exc}")
        for d in daemons:
            tail = d.log_tail()
            if tail:
                log(f"Last lines of {d.label}'s output:\n" + "\n".join("  | " + line for line in tail.splitlines()))
    except KeyboardInterrupt:
        status, interrupted = 130, True
        run.results["error"] = "interrupted"
        log("\ninterrupted")
    except Exception as exc:  # a bug here, or an engine failing in a way not foreseen: still clean up
        import traceback

        status = 2
        run.results["error"] = f"{type(exc).__name__}: {exc}"
        log(f"\nBENCHMARK FAILED: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")
    finally:
        with _DeferredInterrupts() as deferred:
            sampler.stop()
            rss_final, _ = fleet.rss()
            run.results["shutdown"] = []
            for d in daemons:
                stopped = d.stop()
                run.results["shutdown"].append(stopped)
                if stopped.get("already_exited"):
                    log(f"{'The daemon' if len(daemons) == 1 else d.label.capitalize()} had already exited with code "
                        f"{stopped.get('exit_code')}")
                elif stopped:
                    log(f"{'Daemon' if len(daemons) == 1 else d.label.capitalize()} stopped with SIGINT: "
                        f"exit code {stopped.get('exit_code')}"
                        + (f" after {stopped['seconds']} s" if "seconds" in stopped else "")
                        + (" (killed after 30 s)" if stopped.get("killed") else ""))
                    if stopped.get("exit_code") not in (0, None) or stopped.get("killed"):
                        log(f"  {d.label} did not stop cleanly; last lines of its output:\n"
                            + "\n".join("  | " + line for line in d.log_tail(15).splitlines()))
            if len(daemons) == 1:
                run.results["shutdown"] = run.results["shutdown"][0]
            run.results["rss_final_mb"] = round(rss_final / MB, 1)
            run.results["rss_overall_peak_mb"] = round(sampler.peak / MB, 1)
            if "read" in run.results and fleet.data_dir.exists():
                run.results["read"]["storage_after_stop"] = storage(fleet.data_dir, run.results["read"]["stored"])
            if "storage" in run.results and (stack.name == "embedded" or stack.content == "embedded"):
                try:  # SQLite files again, now that the WAL has been checkpointed
                    after = stack.storage(fleet.data_dirs, run.results["storage"]["stored"])
                    run.results["storage_after_stop"] = after
                except Exception as exc:
                    log(f"  could not measure the storage after the stop: {exc}")
            problems = [line for d in daemons for line in d.log_problems()]
            run.results["daemon_log_problems"] = problems[:50]
            if problems:
                log(f"The daemon{'s' if len(daemons) > 1 else ''} logged {len(problems)} warning/error line(s); "
                    "the first few:")
                for line in problems[:5]:
                    log("  | " + line[:200])
            left = stack.cleanup()
            if left:
                log("CLEANUP INCOMPLETE, remove by hand: " + "; ".join(left))
                run.results["cleanup_problems"] = left
            elif stack.name == "production":
                log(f"Removed the engines' resources (database {stack.database}"
                    + (f", vhost {stack.vhost}" if stack.queue == "rabbitmq" else "")
                    + f", Redis keys {stack.redis_prefix}*" + (", SecantusDB" if stack.content == "mongodb" else "") + ")")
            if args.keep:
                log(f"Kept {workdir} (config, data, daemon log" + ("s" if len(daemons) > 1 else "") + ")")
            else:
                shutil.rmtree(workdir, ignore_errors=True)
        if deferred.interrupted:
            status, interrupted = 130, True
    return status, run, interrupted


def bench_settings(args: argparse.Namespace) -> dict[str, dict[str, object]]:
    """Settings the benchmark itself needs. The poller asks GET /messages 20 times a second with one
    token: a per-token API rate limit (``auth.rate_limit_per_minute``, where this version of logmail
    has one) would time the limiter instead of ingest, so it is turned off unless --set names it."""
    out: dict[str, dict[str, object]] = {}
    if any(o.strip().startswith("auth.rate_limit_per_minute") for o in args.overrides):
        return out
    try:
        from logmail.config import iter_keys
    except ImportError:
        return out
    if ("auth", "rate_limit_per_minute") in {(sect, key) for sect, key, _ in iter_keys()}:
        out["auth"] = {"rate_limit_per_minute": 0}
    return out


def logmail_source() -> dict:
    """Which logmail the daemons run: its version and where its package is (PYTHONPATH wins over the
    editable install, so a snapshot of a commit can be benchmarked while the tree is being edited)."""
    try:
        out = subprocess.run([sys.executable, "-c", "import logmail, importlib.metadata as m; "
                              "print(logmail.__file__); print(m.version('logmail'))"],
                             capture_output=True, text=True, timeout=30, cwd="/").stdout.split()
        return {"package": str(Path(out[0]).parent), "version": out[1]}
    except (OSError, subprocess.SubprocessError, IndexError):
        return {}


def print_storage(st: dict, stack) -> None:
    md, ct = st["metadata"], st["content"]
    log(f"Storage with {st['stored']:,} messages stored (per 100,000 messages in brackets):")
    log(f"  metadata: {md['engine']}: {fmt_num(md['bytes'] / MB, ' MB')} "
        f"({fmt_num(md['bytes_per_100k_messages'] / MB, ' MB')})"
        + (f"; data_length {fmt_num(md['data_length'] / MB, ' MB')} + index_length "
           f"{fmt_num(md['index_length'] / MB, ' MB')} after ANALYZE TABLE; .ibd files "
           f"{fmt_num(md['ibd_file_bytes'] / MB, ' MB')} of which FULLTEXT auxiliary tables "
           f"{fmt_num(md['ibd_fulltext_aux_bytes'] / MB, ' MB')}" if "data_length" in md else ""))
    if md.get("tables"):
        top = sorted(md["tables"].items(), key=lambda kv: -((kv[1]["data_length"] or 0) + (kv[1]["index_length"] or 0)))
        log("    largest tables (data + index): " + ", ".join(
            f"{name} {fmt_num(((t['data_length'] or 0) + (t['index_length'] or 0)) / MB, ' MB')}" for name, t in top[:4]))
    log(f"  content:  {ct['engine']}: {fmt_num(ct['bytes'] / MB, ' MB')} "
        f"({fmt_num(ct['bytes_per_100k_messages'] / MB, ' MB')})"
        + (f"; dbStats dataSize {fmt_num(ct['dataSize'] / MB, ' MB')}, storageSize {fmt_num(ct['storageSize'] / MB, ' MB')}, "
           f"{fmt_int(ct['objects'])} objects; the server's data directory {fmt_num((ct['server_data_dir_bytes'] or 0) / MB, ' MB')}"
           if "dataSize" in ct else ""))


def install_sigterm() -> None:
    """SIGTERM ends the run like Ctrl-C, so that the cleanup runs."""
    def handler(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_sigterm()
    machine = machine_info()
    params = {k: v for k, v in vars(args).items() if k not in ("json",)}
    log(f"logmail capture benchmark: {machine['cpu_count']} CPUs ({machine['cpus_usable']} usable)"
        f"{', ' + machine['cpu_model'] if machine['cpu_model'] else ''}, {machine['memory_gb']} GB RAM, "
        f"Python {machine['python']}, {machine['platform']}" + (f", tree {machine['git']}" if machine["git"] else "")
        + f"; load average {' '.join(str(x) for x in machine['load_average_at_start'])}")
    log("Parameters: " + ", ".join(f"{k}={v}" for k, v in params.items() if v not in (None, [], False)))
    source = logmail_source()
    machine["logmail"] = source
    if source:
        log(f"logmail {source.get('version')} from {source.get('package')}")
    if bench_settings(args).get("auth"):
        log("Note: this logmail limits API requests per token; the daemons get auth.rate_limit_per_minute = 0, "
            "since the benchmark polls GET /messages 20 times a second")
    if args.stack == "production" and args.content == "mongodb":
        log("Note: the content store is SecantusDB, a MongoDB wire-protocol server written in Python; it is much "
            "slower than mongod (1-3 ms per journaled write) and takes CPU from the daemons on this machine.")

    if not args.scaling:
        status, run, _ = run_once(args, args.daemons)
        run.results.update({"machine": machine, "parameters": params, "targets": TARGETS})
        if "throughput" in run.results:
            print_summary(run)
        if args.json:
            Path(args.json).write_text(json.dumps(run.results, indent=2, ensure_ascii=False) + "\n")
            log(f"\nWrote {args.json}")
        return status

    # --scaling: the same messages, one daemon and then two, each on fresh engines.
    try:
        messages = generate(args)
    except KeyboardInterrupt:
        log("\ninterrupted")
        return 130
    runs, status = [], 0
    for n in (1, 2):
        st, run, interrupted = run_once(args, n, messages, title=f"Scaling run with {n} daemon{'s' if n > 1 else ''}")
        runs.append(run)
        status = max(status, st)
        if st != 0 or interrupted:
            break
    del messages
    out = {"machine": machine, "parameters": params, "targets": TARGETS,
           "scaling": scaling_summary(runs), "runs": [r.results for r in runs]}
    for run in runs:
        if "throughput" in run.results:
            print_summary(run)
    print_scaling(out["scaling"])
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
        log(f"\nWrote {args.json}")
    return status


def scaling_summary(runs: list[Run]) -> dict:
    rows = []
    for run in runs:
        th = run.results.get("throughput") or {}
        cpu = th.get("cpu") or {}
        st = run.results.get("storage") or {}
        rows.append({"daemons": run.results["daemons"], "accepted_per_s": th.get("accepted_per_s"),
                     "end_to_end_per_s": th.get("end_to_end_per_s"),
                     "listed_when_last_250": th.get("listed_when_last_250"),
                     "queue_depth_max": (th.get("queue_depth") or {}).get("max"),
                     "smtp_p50_ms": (th.get("smtp_latency") or {}).get("p50_ms"),
                     "smtp_p99_ms": (th.get("smtp_latency") or {}).get("p99_ms"),
                     "daemon_cores_avg": th.get("daemon_cores_avg"),
                     "machine_busy_cores": cpu.get("machine_busy_cores"),
                     "other_processes_cores": cpu.get("other_processes_cores"),
                     "cpu_ms_per_message": (cpu.get("ms_per_message") or {}).get("total"),
                     "failures": th.get("failures"),
                     "metadata_bytes_per_100k": (st.get("metadata") or {}).get("bytes_per_100k_messages"),
                     "content_bytes_per_100k": (st.get("content") or {}).get("bytes_per_100k_messages")})
    out: dict = {"runs": rows}
    if len(rows) == 2:
        for key in ("end_to_end_per_s", "accepted_per_s"):
            a, b = rows[0][key], rows[1][key]
            out[f"ratio_{key}"] = round(b / a, 3) if a and b else None
    return out


def print_scaling(sc: dict) -> None:
    log("\nScaling (same engines, same messages, fresh engines for each run)")
    cols = [("daemons", "Daemons", "{}"), ("accepted_per_s", "Accepted msgs/s", "{:,.1f}"),
            ("end_to_end_per_s", "End to end msgs/s", "{:,.1f}"), ("listed_when_last_250", "Listed at last 250", "{:,}"),
            ("queue_depth_max", "Max queue depth", "{:,}"), ("smtp_p50_ms", "SMTP p50 ms", "{:.1f}"),
            ("smtp_p99_ms", "SMTP p99 ms", "{:.1f}"), ("daemon_cores_avg", "Daemon cores", "{:.2f}"),
            ("machine_busy_cores", "Machine busy cores", "{:.2f}"), ("other_processes_cores", "Others' cores", "{:.2f}"),
            ("cpu_ms_per_message", "CPU ms/msg", "{:.2f}")]
    table = [[h for _, h, _ in cols]]
    for row in sc["runs"]:
        table.append(["-" if row[k] is None else f.format(row[k]) for k, _, f in cols])
    widths = [max(len(r[i]) for r in table) for i in range(len(cols))]
    for n, r in enumerate(table):
        log("  ".join(c.rjust(w) for c, w in zip(r, widths)))
        if n == 0:
            log("  ".join("-" * w for w in widths))
    if "ratio_end_to_end_per_s" in sc:
        log(f"Scaling ratio, end to end (2 daemons / 1 daemon): {fmt_num(sc['ratio_end_to_end_per_s'], '', 2)}; "
            f"accepted: {fmt_num(sc['ratio_accepted_per_s'], '', 2)}")


if __name__ == "__main__":
    sys.exit(main())
