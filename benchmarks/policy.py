#!/usr/bin/env python3
"""Postfix policy service benchmark: how many RCPT decisions a second logmail answers, and how fast.

Creates a platform-mode data directory holding ``--orgs`` organisations with ``--addresses`` exact
addresses each (plus one catch-all domain per ten organisations), starts ``logmail daemon`` as a
subprocess with the policy service on a free port, and sends Postfix-format policy requests
(``request=smtpd_access_policy``, ``protocol_state=RCPT``, about 30 attributes, as Postfix 3.7 sends)
over ``--connections`` kept-open connections, one request at a time per connection, exactly as
Postfix's smtpd processes do. Recipients are a mix: 70 % known exact addresses, 10 % plus-addresses,
10 % catch-all domains and 10 % unknown. It reports requests per second and the latency of each
request, first with decisions remembered for ``policy.cache_seconds`` (the default, 5 s), then
with ``cache_seconds = 0`` (every decision read from SQL).

Example:
    python benchmarks/policy.py --requests 20000 --connections 8

A benchmark, not a test: it exits 0 when it ran (2 when the daemon did not start).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ATTRIBUTES = (
    "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\nclient_address=192.0.2.10\n"
    "client_name=mail.example.net\nclient_port=53214\nreverse_client_name=mail.example.net\n"
    "server_address=127.0.0.1\nserver_port=25\nhelo_name=mail.example.net\nsender=app@example.net\n"
    "recipient={rcpt}\nrecipient_count=0\nqueue_id=\ninstance={instance}\nsize=0\netrn_domain=\n"
    "stress=\nsasl_method=\nsasl_username=\nsasl_sender=\nccert_subject=\nccert_issuer=\n"
    "ccert_fingerprint=\nccert_pubkey_fingerprint=\nencryption_protocol=\nencryption_cipher=\n"
    "encryption_keysize=0\npolicy_context=\ncompatibility_level=3.6\nmail_version=3.7.11\n\n"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed(data_dir: Path, orgs: int, per_org: int) -> list[str]:
    """Write the organisations and addresses; returns the recipients to ask about."""
    from logmail.config import settings_from_dict
    from logmail.services.container import build_services
    from logmail.store.models import EmailAddress, Organization, OrganizationDomain

    settings = settings_from_dict({"data_dir": str(data_dir), "mode": "platform"})
    services = build_services(settings)
    known, catchall_domains = [], []
    with services.db.write() as session:
        for o in range(orgs):
            org = Organization(name=f"org{o}", tier="enterprise")
            session.add(org)
            session.flush()
            rows = []
            for a in range(per_org):
                address = f"user{a}.org{o}@in.bench.example"
                rows.append({"organization_id": org.id, "address": address, "kind": "exact",
                             "domain": "in.bench.example", "uuid": f"{o:08d}-0000-4000-8000-{a:012d}",
                             "created_at": 0, "description": ""})
                known.append(address)
            session.execute(EmailAddress.__table__.insert(), rows)
            if o % 10 == 0:
                domain = f"org{o}.bench.example"
                session.add(OrganizationDomain(domain=domain, organization_id=org.id))
                session.add(EmailAddress(organization_id=org.id, address=f"*@{domain}", kind="catchall",
                                         domain=domain))
                catchall_domains.append(domain)
    services.close()
    rng = random.Random(7)
    mix = []
    for i in range(20_000):
        roll = rng.random()
        if roll < 0.7:
            mix.append(rng.choice(known))
        elif roll < 0.8:
            local, _, domain = rng.choice(known).partition("@")
            mix.append(f"{local}+tag{i}@{domain}")
        elif roll < 0.9:
            mix.append(f"anyone{i}@{rng.choice(catchall_domains)}")
        else:
            mix.append(f"nobody{i}@in.bench.example")
    return mix


def start_daemon(data_dir: Path, cache_seconds: float) -> tuple[subprocess.Popen, int]:
    port = free_port()
    config = data_dir.parent / f"logmail-{cache_seconds}.toml"
    config.write_text(
        f'data_dir = "{data_dir}"\nmode = "platform"\nlog_level = "warning"\n'
        f'[smtp]\nenabled = false\n[api]\nenabled = false\n[ingest]\nworkers = 0\n'
        f'[policy]\nenabled = true\nport = {port}\ncache_seconds = {cache_seconds}\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGMAIL_")}
    proc = subprocess.Popen([sys.executable, "-m", "logmail", "daemon", "--config", str(config)], env=env,
                            cwd=ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    proc.kill()
    sys.exit("the daemon did not start")


async def client(port: int, recipients: list[str], latencies: list[float], actions: dict) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for n, rcpt in enumerate(recipients):
        request = ATTRIBUTES.format(rcpt=rcpt, instance=f"{n:x}.{id(recipients):x}").encode()
        t0 = time.perf_counter()
        writer.write(request)
        reply = await reader.readuntil(b"\n\n")
        latencies.append(time.perf_counter() - t0)
        action = reply.decode().split("=", 1)[1].split()[0]
        actions[action] = actions.get(action, 0) + 1
    writer.close()


async def run(port: int, mix: list[str], requests: int, connections: int) -> dict:
    per = requests // connections
    latencies: list[float] = []
    actions: dict = {}
    chunks = [[mix[(c * per + i) % len(mix)] for i in range(per)] for c in range(connections)]
    await asyncio.gather(*(client(port, chunks[0][:50], [], {}) for _ in range(1)))  # warm the caches a little
    t0 = time.perf_counter()
    await asyncio.gather(*(client(port, chunk, latencies, actions) for chunk in chunks))
    elapsed = time.perf_counter() - t0
    latencies.sort()
    return {"requests": len(latencies), "seconds": elapsed, "per_second": len(latencies) / elapsed,
            "p50_ms": latencies[len(latencies) // 2] * 1000, "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
            "actions": actions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orgs", type=int, default=100)
    parser.add_argument("--addresses", type=int, default=100, help="exact addresses per organisation")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="logmail-policy-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        t0 = time.perf_counter()
        mix = seed(data_dir, args.orgs, args.addresses)
        print(f"seeded {args.orgs} organisations, {args.orgs * args.addresses} addresses "
              f"in {time.perf_counter() - t0:.1f} s")
        for cache_seconds in (5.0, 0.0):
            proc, port = start_daemon(data_dir, cache_seconds)
            try:
                result = asyncio.run(run(port, mix, args.requests, args.connections))
            finally:
                proc.send_signal(signal.SIGINT)
                proc.wait(30)
            print(f"cache_seconds={cache_seconds:<4} {args.connections} connections: "
                  f"{result['per_second']:,.0f} requests/s, p50 {result['p50_ms']:.2f} ms, "
                  f"p99 {result['p99_ms']:.2f} ms, actions {result['actions']}")


if __name__ == "__main__":
    main()
