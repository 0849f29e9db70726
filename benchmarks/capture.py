#!/usr/bin/env python3
"""Capture-path benchmark for logmail: SMTP acceptance, end-to-end ingest and read-path latency.

Starts ``logmail daemon`` as a subprocess on free ports with a fresh data directory, then

1. throughput: sends N pre-encoded messages of a realistic mix over C concurrent SMTP connections
   and measures acceptance (until the last 250) and end to end (until the API lists all N);
2. read path: seeds the store up to M messages and times the API's list, cursor, search and
   detail requests with a keep-alive HTTP client, and reports memory and disk use at that size.

Example:
    python benchmarks/capture.py --messages 20000 --connections 16 --skip-read
    python benchmarks/capture.py --messages 20000 --connections 16 --seed-stored 100000 --json out.json

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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402
import psutil  # noqa: E402

import mailmix  # noqa: E402
import smtpload  # noqa: E402

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
    def __init__(self, command: list[str], workdir: Path, *, workers: int, overrides: list[str]) -> None:
        self.command = command
        self.workdir = workdir
        self.data_dir = workdir / "data"
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
                                     env=env, start_new_session=True)
        self._ps = psutil.Process(self.proc.pid)
        deadline = time.monotonic() + timeout
        token_file = self.data_dir / "owner.token"
        last_error = "no answer yet"
        with httpx.Client(timeout=2) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise BenchError(f"the daemon exited with code {self.proc.returncode} while starting")
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
        raise BenchError(f"the daemon was not ready after {timeout:.0f} s ({last_error})")

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
                name = "logmail daemon" if p is self._ps else process_label(p.cmdline())
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            total += rss
            per.append((p.pid, name, rss))
        return total, per

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
    return text[-60:]


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

    def __init__(self, daemon: Daemon, t0: float, target: int, *, interval: float = 0.05, stall: float = 120.0,
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
                        self.error = f"the daemon exited (code {self.daemon_.proc.returncode}) during the run"
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


@dataclass
class Run:
    args: argparse.Namespace
    daemon: Daemon
    sampler: RssSampler
    results: dict = field(default_factory=dict)
    mix: mailmix.MixStats = field(default_factory=mailmix.MixStats)
    sent_ok: int = 0   # messages accepted with 250 so far, i.e. the number the API should list

    def load(self, messages: list, *, progress: Callable | None = None) -> smtpload.LoadResult:
        return asyncio.run(smtpload.run_load("127.0.0.1", self.daemon.smtp_port, messages, self.args.connections,
                                             pipelining=not self.args.no_pipelining, on_progress=progress))


def phase_throughput(run: Run) -> None:
    args, daemon = run.args, run.daemon
    log(f"Generating {args.messages:,} messages (seed {args.seed}) ...")
    t = time.perf_counter()
    messages = mailmix.make_messages(args.seed, 0, args.messages)
    run.mix.add(messages)
    mix = mailmix.MixStats()
    mix.add(messages)
    log(f"  done in {time.perf_counter() - t:.1f} s: {mix.total_bytes / MB:,.1f} MB, median "
        f"{mix.as_dict()['size_p50']:,} bytes, {mix.big_attachments} with a ~200 KB attachment")

    waited = daemon.wait_quiet()
    api = Api(daemon.api_url, daemon.token)
    before = api.total()
    api.close()
    rss_start, _ = daemon.rss()
    run.sampler.new_phase()
    cpu_daemon0, cpu_client0 = daemon.cpu_seconds(), time.process_time()
    log(f"Throughput: {args.messages:,} messages over {args.connections} connection(s), "
        f"{'pipelined' if not args.no_pipelining else 'not pipelined'}; daemon idle after {waited:.1f} s, "
        f"RSS {rss_start / MB:.0f} MB")

    holder: list = [None]

    def progress(elapsed: float, stored: int) -> None:
        r = holder[0]
        log(f"  {elapsed:6.1f} s  accepted {fmt_int(r.ok if r else 0):>9}  listed {fmt_int(stored - before):>9}")

    t0 = time.perf_counter()
    poller = StoredPoller(daemon, t0, before + len(messages), stall=args.stall_timeout, progress=progress)
    poller.start()
    result = run.load(messages, progress=lambda r: holder.__setitem__(0, r))
    poller.load_done_at = time.perf_counter()
    poller.target = before + result.ok   # failures are never listed
    poller.load_done.set()
    cpu_client = time.process_time() - cpu_client0
    cpu_daemon_load = daemon.cpu_seconds() - cpu_daemon0
    rss_after_load, _ = daemon.rss()
    poller.join()
    cpu_daemon = daemon.cpu_seconds() - cpu_daemon0
    rss_end, per_process = daemon.rss()
    rss_peak = run.sampler.new_phase()
    run.sent_ok = before + result.ok
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
    }
    th = run.results["throughput"]
    log(f"  accepted {result.ok:,} in {fmt_num(accept_s, ' s', 2)} ({fmt_num(th['accepted_per_s'], ' msgs/s')}); "
        f"listed all in {fmt_num(e2e_s, ' s', 2)} ({fmt_num(th['end_to_end_per_s'], ' msgs/s')}); "
        f"{result.failed} failure(s)")
    if poller.error:
        log(f"  end to end NOT reached: {poller.error}")
    if result.failed:
        for reason, n in result.failures.most_common(5):
            log(f"    {n:>6} x {reason}")


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
            raise BenchError(f"the daemon exited (code {daemon.proc.returncode}) while seeding")
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
    log()
    log("Summary")
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
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (data, config, daemon log)")
    p.add_argument("--json", metavar="FILE", help="write every figure to FILE as JSON")
    args = p.parse_args(argv)
    for name in ("messages", "connections", "read_requests", "seed_chunk", "cursor_depth"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.workers < 0 or args.seed_stored < 0:
        p.error("--workers and --seed-stored must not be negative")
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    machine = machine_info()
    params = {k: v for k, v in vars(args).items() if k not in ("json",)}
    log(f"logmail capture benchmark: {machine['cpu_count']} CPUs ({machine['cpus_usable']} usable)"
        f"{', ' + machine['cpu_model'] if machine['cpu_model'] else ''}, {machine['memory_gb']} GB RAM, "
        f"Python {machine['python']}, {machine['platform']}" + (f", tree {machine['git']}" if machine["git"] else "")
        + f"; load average {' '.join(str(x) for x in machine['load_average_at_start'])}")
    log("Parameters: " + ", ".join(f"{k}={v}" for k, v in params.items() if v not in (None, [], False)))

    workdir = Path(tempfile.mkdtemp(prefix="logmail-bench-"))
    daemon = Daemon(logmail_command(args.logmail), workdir, workers=args.workers, overrides=args.overrides)
    sampler = RssSampler(daemon)
    run = Run(args, daemon, sampler)
    run.results.update({"machine": machine, "parameters": params, "targets": TARGETS})
    status = 0
    try:
        log(f"Starting {' '.join(daemon.command)} daemon (SMTP 127.0.0.1:{daemon.smtp_port}, "
            f"API {daemon.api_url}, data in {daemon.data_dir})")
        run.results["config"] = daemon.write_config()
        daemon.start(args.startup_timeout)
        run.results["daemon_version"] = getattr(daemon, "version", None)
        sampler.start()
        phase_throughput(run)
        if not args.skip_read:
            phase_seed(run)
            phase_read(run)
    except BenchError as exc:
        status = 2
        run.results["error"] = str(exc)
        log(f"\nBENCHMARK ABORTED: {exc}")
        tail = daemon.log_tail()
        if tail:
            log("Last lines of the daemon's output:\n" + "\n".join("  | " + line for line in tail.splitlines()))
    except KeyboardInterrupt:
        status = 130
        run.results["error"] = "interrupted"
        log("\ninterrupted")
    finally:
        sampler.stop()
        rss_final, _ = daemon.rss()
        stopped = daemon.stop()
        run.results["shutdown"] = stopped
        if stopped.get("already_exited"):
            log(f"The daemon had already exited with code {stopped.get('exit_code')}")
        elif stopped:
            log(f"Daemon stopped with SIGINT: exit code {stopped.get('exit_code')}"
                + (f" after {stopped['seconds']} s" if "seconds" in stopped else "")
                + (" (killed after 30 s)" if stopped.get("killed") else ""))
            if stopped.get("exit_code") not in (0, None) or stopped.get("killed"):
                log("  the daemon did not stop cleanly; last lines of its output:\n"
                    + "\n".join("  | " + line for line in daemon.log_tail(15).splitlines()))
        run.results["rss_final_mb"] = round(rss_final / MB, 1)
        run.results["rss_overall_peak_mb"] = round(sampler.peak / MB, 1)
        if "read" in run.results and daemon.data_dir.exists():
            run.results["read"]["storage_after_stop"] = storage(daemon.data_dir, run.results["read"]["stored"])
        problems = daemon.log_problems()
        run.results["daemon_log_problems"] = problems[:50]
        if problems:
            log(f"The daemon logged {len(problems)} warning/error line(s); the first few:")
            for line in problems[:5]:
                log("  | " + line[:200])
        if args.keep:
            log(f"Kept {workdir} (config, data, daemon.log)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    if "throughput" in run.results:
        print_summary(run)
    if args.json:
        Path(args.json).write_text(json.dumps(run.results, indent=2, ensure_ascii=False) + "\n")
        log(f"\nWrote {args.json}")
    return status


if __name__ == "__main__":
    sys.exit(main())
