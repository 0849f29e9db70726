"""A lean SMTP load generator: asyncio raw streams, one EHLO per connection, pipelined transactions.

The point is to spend as little client CPU as possible, so that on a small machine the figures
describe the daemon rather than the load generator: no SMTP library, no per-message parsing, every
command and every message pre-encoded before the clock starts. Each transaction is

    MAIL FROM / RCPT TO ... / DATA     (pipelined, RFC 2920, when the server advertises PIPELINING)
    <dot-stuffed message> CRLF . CRLF

and every reply code is checked. A transaction succeeds only on 250 to MAIL and every RCPT, 354
to DATA and 250 after the final dot; anything else is a failure and is reported with the reply.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field


class SmtpProtocolError(Exception):
    pass


@dataclass
class LoadResult:
    attempted: int = 0
    ok: int = 0
    latencies: list[float] = field(default_factory=list)   # seconds, successful transactions only
    envelope_latencies: list[float] = field(default_factory=list)  # MAIL FROM sent -> 354 to DATA (same ones)
    failures: Counter = field(default_factory=Counter)       # reason -> count
    connect_errors: Counter = field(default_factory=Counter)  # reason -> count (retried; not messages)
    started: float = 0.0        # perf_counter when the first connection was opened
    last_ok: float = 0.0        # perf_counter of the last 250 after a final dot
    finished: float = 0.0       # perf_counter when every connection had quit
    bytes_sent: int = 0
    connections_opened: int = 0
    pipelining: bool = False
    ok_by_port: Counter = field(default_factory=Counter)   # port -> messages accepted there

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    def merge(self, other: "LoadResult") -> None:
        self.attempted += other.attempted
        self.ok += other.ok
        self.latencies.extend(other.latencies)
        self.envelope_latencies.extend(other.envelope_latencies)
        self.failures.update(other.failures)
        self.connect_errors.update(other.connect_errors)
        self.bytes_sent += other.bytes_sent
        self.connections_opened += other.connections_opened
        self.ok_by_port.update(other.ok_by_port)


def _reason(code: int, text: bytes, stage: str) -> str:
    line = text.splitlines()[0] if text else b""
    return f"{stage}: {line.decode('utf-8', 'replace')[:100]}" if line else f"{stage}: {code}"


async def _read_reply(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    lines = []
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("the server closed the connection")
        lines.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            break
    try:
        code = int(line[:3])
    except ValueError:
        raise SmtpProtocolError(f"unparseable reply {line[:80]!r}") from None
    return code, b"".join(lines)


class _Connection:
    def __init__(self, host: str, port: int, ehlo: str) -> None:
        self.host, self.port, self.ehlo = host, port, ehlo
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.pipelining = False

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        code, text = await _read_reply(self.reader)
        if code != 220:
            raise SmtpProtocolError(_reason(code, text, "greeting"))
        self.writer.write(f"EHLO {self.ehlo}\r\n".encode())
        code, text = await _read_reply(self.reader)
        if code != 250:
            raise SmtpProtocolError(_reason(code, text, "EHLO"))
        self.pipelining = b"PIPELINING" in text.upper()

    async def close(self, polite: bool = True) -> None:
        if self.writer is None:
            return
        try:
            if polite:
                self.writer.write(b"QUIT\r\n")
                await asyncio.wait_for(_read_reply(self.reader), 5)
        except (OSError, ConnectionError, asyncio.TimeoutError, asyncio.IncompleteReadError, SmtpProtocolError):
            pass
        finally:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except (OSError, ConnectionError):
                pass
            self.writer = self.reader = None

    async def transact(self, envelope: bytes, n_rcpt: int, data: bytes, pipelining: bool) -> tuple[str | None, float]:
        """One transaction: (None on success, else the reason it failed; perf_counter when 354 came)."""
        r, w = self.reader, self.writer
        if pipelining:
            w.write(envelope)
            replies = [await _read_reply(r) for _ in range(n_rcpt + 2)]
        else:
            replies = []
            for cmd in envelope.split(b"\r\n")[:-1]:
                w.write(cmd + b"\r\n")
                replies.append(await _read_reply(r))
                if replies[-1][0] >= 400:
                    break
        failure = None
        for n, (code, text) in enumerate(replies[:-1]):
            if code != 250 and failure is None:
                failure = _reason(code, text, "MAIL FROM" if n == 0 else "RCPT TO")
        code, text = replies[-1]
        t354 = time.perf_counter()
        if len(replies) == n_rcpt + 2 and code == 354:
            w.write(data)
            await w.drain()
            code, text = await _read_reply(r)
            if code != 250 and failure is None:
                failure = _reason(code, text, "end of data")
        elif failure is None:
            failure = _reason(code, text, "DATA" if len(replies) == n_rcpt + 2 else "envelope")
        if failure is not None:
            w.write(b"RSET\r\n")
            await _read_reply(r)
        return failure, t354


async def run_load(host: str, port: int | Sequence[int], messages: Iterable, connections: int, *,
                   pipelining: bool = True, timeout: float = 120.0, ehlo: str = "bench.localdomain",
                   on_progress: Callable[[LoadResult], None] | None = None) -> LoadResult:
    """Send ``messages`` (objects with ``envelope``, ``n_rcpt``, ``data``) over ``connections``
    concurrent SMTP connections, each taking the next unsent message as soon as it is free.

    ``port`` may be a list (several daemons): connection ``i`` goes to ``port[i % len(port)]``, so the
    connections are spread evenly; the messages are not (a faster daemon takes more of them)."""
    ports = [port] if isinstance(port, int) else list(port)
    result = LoadResult()
    ok_by_port = result.ok_by_port
    it = iter(messages)   # shared by the workers: next() never awaits, so no lock is needed
    perf = time.perf_counter
    latencies = result.latencies
    envelope_latencies = result.envelope_latencies

    async def worker(port: int) -> None:
        conn = _Connection(host, port, ehlo)
        broken = 0
        while True:
            if conn.writer is None:
                try:
                    async with asyncio.timeout(timeout):
                        await conn.open()
                    result.connections_opened += 1
                    result.pipelining = conn.pipelining
                    broken = 0
                except (OSError, ConnectionError, TimeoutError, asyncio.IncompleteReadError, SmtpProtocolError) as exc:
                    await conn.close(polite=False)
                    broken += 1
                    reason = f"connect: {type(exc).__name__}: {exc}"[:160]
                    result.connect_errors[reason] += 1
                    if broken >= 5:
                        # Give up on this connection slot; the messages left are counted as failures.
                        for _ in it:
                            result.attempted += 1
                            result.failures[reason] += 1
                        return
                    await asyncio.sleep(0.2 * broken)
                    continue
            msg = next(it, None)
            if msg is None:
                await conn.close()
                return
            result.attempted += 1
            t0 = perf()
            try:
                async with asyncio.timeout(timeout):
                    failure, t354 = await conn.transact(msg.envelope, msg.n_rcpt, msg.data,
                                                        pipelining and conn.pipelining)
            except (OSError, ConnectionError, TimeoutError, asyncio.IncompleteReadError, SmtpProtocolError) as exc:
                failure = f"transaction: {type(exc).__name__}: {exc}"[:160]
                await conn.close(polite=False)
            if failure is None:
                t1 = perf()
                latencies.append(t1 - t0)
                envelope_latencies.append(t354 - t0)
                result.ok += 1
                result.last_ok = t1
                result.bytes_sent += len(msg.data)
                ok_by_port[port] += 1
            else:
                result.failures[failure] += 1
            if on_progress is not None:
                on_progress(result)

    result.started = perf()
    await asyncio.gather(*(worker(ports[i % len(ports)]) for i in range(connections)))
    result.finished = perf()
    return result
