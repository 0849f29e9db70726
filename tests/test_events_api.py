"""``GET /events``: new mail of the caller's organisation, live, as server-sent events, against a real
daemon on loopback: mail sent over SMTP, streams read with httpx."""

from __future__ import annotations

import contextlib
import json
import queue
import smtplib
import socket
import threading
import time
import uuid
from dataclasses import replace

import httpx
import pytest
from sqlalchemy import insert, select

from conftest import make_settings, smtp_send_code, wait_for_messages
from logmail.api import events as events_api
from logmail.daemon.runner import Daemon
from logmail.services.tokens import create_token
from logmail.store.models import Message, Organization, TierLimit
from platform_helpers import add_org, platform_settings, stored


class EventStream:
    """One open ``GET /events``, read on a thread: its events (dicts of field -> value) queue up as
    they arrive; comment lines are kept apart."""

    def __init__(self, daemon, token: str, *, headers: dict | None = None, **params) -> None:
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{daemon.api_port}", timeout=httpx.Timeout(10, read=60))
        self._context = self.http.stream("GET", "/events", params=params,
                                         headers={"Authorization": f"Bearer {token}", **(headers or {})})
        self.response = self._context.__enter__()
        self.events: queue.Queue[dict] = queue.Queue()
        self.comments: list[str] = []
        self.ended = threading.Event()
        self.error: BaseException | None = None
        self._closing = False
        if self.response.status_code == 200:
            threading.Thread(target=self._read, daemon=True).start()
        else:
            self.response.read()
            self.ended.set()

    def _read(self) -> None:
        fields: dict[str, str] = {}
        try:
            for line in self.response.iter_lines():
                if line == "":
                    if fields:
                        self.events.put(fields)
                    fields = {}
                elif line.startswith(":"):
                    self.comments.append(line)
                else:
                    name, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    fields[name] = fields[name] + "\n" + value if name in fields else value
        except Exception as exc:  # a stream we closed ourselves ends this way
            if not self._closing:
                self.error = exc
        finally:
            self.ended.set()

    def next(self, timeout: float = 10) -> dict:
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no event within {timeout} s") from None

    def opening(self) -> dict:
        """The retry line and the ready event; returns the ready event."""
        assert self.next() == {"retry": "2000"}
        ready = self.next()
        assert ready["event"] == "ready", ready
        return ready

    def received(self, count: int, timeout: float = 20) -> list[dict]:
        """The next ``count`` message.received events (keep-alives are comments, not events)."""
        deadline = time.monotonic() + timeout
        out = []
        while len(out) < count:
            event = self.next(max(0.01, deadline - time.monotonic()))
            assert event["event"] == "message.received", event
            out.append(event)
        return out

    def quiet(self, seconds: float) -> None:
        """Nothing more arrives for ``seconds``."""
        try:
            event = self.events.get(timeout=seconds)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected event {event}")

    def close(self) -> None:
        self._closing = True
        # Closing a socket another thread is reading from would neither wake that thread nor tell the
        # server; shutting it down does both, as a client that goes away does.
        network = self.response.extensions.get("network_stream")
        sock = network.get_extra_info("socket") if network is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.ended.wait(5)
        self._context.__exit__(None, None, None)
        self.http.close()
        self.ended.wait(5)

    def __enter__(self) -> "EventStream":
        return self

    def __exit__(self, *_) -> None:
        self.close()


def send_many(port: int, subjects: list[str], to: str = "b@example.com") -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        for subject in subjects:
            client.sendmail("a@example.com", [to], f"Subject: {subject}\r\nTo: {to}\r\n\r\nbody of {subject}\r\n")


def summaries(events: list[dict]) -> list[dict]:
    return [json.loads(e["data"]) for e in events]


def watcher_of(daemon):
    return getattr(daemon._sanic.app.ctx, "mail_watcher", None)


def wait_until(condition, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def org_uuid(daemon, organization_id: int | None = None) -> str:
    with daemon.services.db.read() as session:
        query = select(Organization.uuid)
        if organization_id is not None:
            query = query.where(Organization.id == organization_id)
        return session.execute(query).scalars().one()


# -- the stream ------------------------------------------------------------------------------------


def test_mail_sent_over_smtp_is_on_the_stream_within_a_second_as_the_listing_shows_it(daemon, api, owner_token):
    send_many(daemon.smtp_port, ["before"])
    wait_for_messages(api, 1)
    time.sleep(0.6)  # well before the stream: not on it
    with EventStream(daemon, owner_token) as stream:
        assert stream.response.headers["content-type"] == "text/event-stream"
        assert stream.response.headers["cache-control"] == "no-cache"
        assert stream.response.headers["x-accel-buffering"] == "no"
        ready = stream.opening()
        assert json.loads(ready["data"]) == {"organisationId": org_uuid(daemon)}
        assert smtp_send_code(daemon.smtp_port, "live one") == 250
        sent = time.monotonic()
        (event,) = stream.received(1, timeout=5)
        latency = time.monotonic() - sent
        assert latency < 1.0, f"arrived {latency:.2f} s after it was accepted"
        listed = api.get("/messages").json()["messages"]
        assert [m["subject"] for m in listed] == ["live one", "before"]
        assert json.loads(event["data"]) == listed[0]
        assert event["id"] and event["id"] != ready["id"]
        stream.quiet(0.6)


def test_a_burst_arrives_in_order_and_once(daemon, api, owner_token):
    with EventStream(daemon, owner_token) as stream:
        stream.opening()
        subjects = [f"burst {n:02d}" for n in range(20)]
        threading.Thread(target=send_many, args=(daemon.smtp_port, subjects[:10])).start()
        send_many(daemon.smtp_port, subjects[10:])
        got = stream.received(20)
        stream.quiet(1.0)
    listed = wait_for_messages(api, 20)
    assert [s["id"] for s in summaries(got)] == [m["id"] for m in reversed(listed)]  # stored order, oldest first
    assert sorted(s["subject"] for s in summaries(got)) == subjects
    assert len({e["id"] for e in got}) == 20


def test_last_event_id_resumes_with_exactly_what_was_missed(daemon, api, owner_token):
    with EventStream(daemon, owner_token) as stream:
        stream.opening()
        send_many(daemon.smtp_port, ["seen 1", "seen 2", "seen 3"])
        seen = stream.received(3)
    # Missed while disconnected: more than one batch of 100.
    missed = [f"missed {n:03d}" for n in range(130)]
    send_many(daemon.smtp_port, missed)
    wait_for_messages(api, 133)
    last = seen[1]["id"]  # as if the connection dropped after the second
    with EventStream(daemon, owner_token, headers={"Last-Event-ID": last}) as stream:
        ready = stream.opening()
        assert ready["id"] == last
        got = stream.received(131)
        stream.quiet(0.6)
        send_many(daemon.smtp_port, ["live after resume"])
        (live,) = stream.received(1)
    assert [s["subject"] for s in summaries(got)] == ["seen 3", *missed]
    assert json.loads(live["data"])["subject"] == "live after resume"
    # The query parameter does the same; the header wins when both are sent.
    with EventStream(daemon, owner_token, lastEventId=got[-2]["id"]) as stream:
        stream.opening()
        assert [s["subject"] for s in summaries(stream.received(2))] == [missed[-1], "live after resume"]
        stream.quiet(0.5)
    with EventStream(daemon, owner_token, headers={"Last-Event-ID": got[-1]["id"]}, lastEventId=seen[0]["id"]) as s:
        s.opening()
        assert json.loads(s.received(1)[0]["data"])["subject"] == "live after resume"
        s.quiet(0.5)


def test_the_ready_id_resumes_a_stream_that_saw_no_mail(daemon, api, owner_token):
    with EventStream(daemon, owner_token) as stream:
        ready = stream.opening()
    send_many(daemon.smtp_port, ["while away 1", "while away 2"])
    wait_for_messages(api, 2)
    with EventStream(daemon, owner_token, headers={"Last-Event-ID": ready["id"]}) as stream:
        stream.opening()
        assert [s["subject"] for s in summaries(stream.received(2))] == ["while away 1", "while away 2"]
        stream.quiet(0.5)


def test_new_mail_after_everything_was_deleted_is_not_skipped(daemon, api, owner_token):
    # Ids deleted while connected: a database restored from a backup hands them out again.
    with EventStream(daemon, owner_token) as stream:
        stream.opening()
        send_many(daemon.smtp_port, ["old 1", "old 2", "old 3"])
        stream.received(3)
        assert api.delete("/messages", params={"since": 0}).json()["deleted"] == 3
        time.sleep(0.6)
        send_many(daemon.smtp_port, ["new after clearing"])
        (event,) = stream.received(1, timeout=5)
        assert json.loads(event["data"])["subject"] == "new after clearing"


def test_resuming_from_before_everything_was_deleted_skips_nothing(daemon, api, owner_token):
    """Ids are never handed out twice, so an id from before "delete all" is still a place to resume."""
    with EventStream(daemon, owner_token) as stream:
        stream.opening()
        send_many(daemon.smtp_port, ["old 1", "old 2", "old 3"])
        last = stream.received(3)[-1]["id"]
    assert api.delete("/messages", params={"since": 0}).json()["deleted"] == 3
    send_many(daemon.smtp_port, ["new after clearing"])
    wait_for_messages(api, 1)
    with EventStream(daemon, owner_token, headers={"Last-Event-ID": last}) as stream:
        stream.opening()
        (event,) = stream.received(1, timeout=5)
        assert json.loads(event["data"])["subject"] == "new after clearing"


def test_a_commit_out_of_id_order_is_waited_for_and_delivered_in_order(daemon, api, owner_token):
    """Two consumers on MySQL may commit ids 11 and 10 in that order: 10 must not be skipped."""
    send_many(daemon.smtp_port, ["first"])
    (first,) = wait_for_messages(api, 1)
    with daemon.services.db.read() as session:
        base = session.execute(select(Message.id, Message.organization_id).where(Message.uuid == first["id"])).one()

    def store(pk: int, subject: str) -> None:
        with daemon.services.db.write() as session:
            session.execute(insert(Message).values(
                id=pk, uuid=str(uuid.uuid4()), organization_id=base.organization_id, ingest_id=str(uuid.uuid4()),
                raw_key="none", subject=subject, received_at=int(time.time() * 1000), size=1))

    with EventStream(daemon, owner_token) as stream:
        stream.opening()
        store(base.id + 2, "committed first")
        stream.quiet(0.8)  # base + 1 is still missing: held back
        store(base.id + 1, "committed second")
        got = stream.received(2, timeout=3)
        assert [s["subject"] for s in summaries(got)] == ["committed second", "committed first"]
        # An id that never appears (a rolled-back transaction) holds the stream back only for a while.
        store(base.id + 4, "after a rollback")
        (late,) = stream.received(1, timeout=5)
        assert json.loads(late["data"])["subject"] == "after a rollback"


def test_keep_alive_comments_and_the_timeout_end_the_stream_cleanly(daemon, owner_token, monkeypatch):
    monkeypatch.setattr(events_api, "KEEP_ALIVE_SECONDS", 0.3)
    started = time.monotonic()
    with EventStream(daemon, owner_token, timeout=2) as stream:
        stream.opening()
        assert stream.ended.wait(5)
        took = time.monotonic() - started
        assert stream.error is None
        assert stream.events.empty()
        assert 1.9 < took < 3.5
        assert len(stream.comments) >= 4 and set(stream.comments) == {": keep-alive"}


# -- refusals ----------------------------------------------------------------------------------------


def test_refusals_are_json_before_any_stream(daemon, owner_token):
    base = f"http://127.0.0.1:{daemon.api_port}"
    auth = {"Authorization": f"Bearer {owner_token}"}
    missing = httpx.get(f"{base}/events", timeout=10)
    assert missing.status_code == 401 and missing.json()["error"]
    assert missing.headers["content-type"] == "application/json"
    for headers, params in [({"Last-Event-ID": "not-an-id"}, {}), ({"Last-Event-ID": "x" * 101}, {}),
                            ({}, {"lastEventId": "bm9wZQ"}), ({}, {"timeout": "0"}), ({}, {"timeout": "3601"}),
                            ({}, {"timeout": "soon"})]:
        resp = httpx.get(f"{base}/events", headers={**auth, **headers}, params=params, timeout=10)
        assert resp.status_code == 400, (headers, params, resp.text)
        assert resp.json()["error"] and resp.json()["message"]
    token, _ = create_token(daemon.services.db, 1, "ingest only", scopes=("ingest",))
    forbidden = httpx.get(f"{base}/events", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert forbidden.status_code == 403 and "read" in forbidden.json()["message"]
    assert watcher_of(daemon) is None or watcher_of(daemon).subscribers == 0


def test_a_revoked_token_ends_its_open_stream(daemon, api, owner_token, monkeypatch):
    monkeypatch.setattr(events_api, "RECHECK_SECONDS", 0.3)
    created = api.post("/tokens", json={"name": "tui", "scopes": ["read"]}).json()
    with EventStream(daemon, created["token"]) as stream:
        stream.opening()
        time.sleep(0.6)
        assert not stream.ended.is_set()
        assert api.delete(f"/tokens/{created['id']}").status_code == 200
        assert stream.ended.wait(3)
        assert stream.error is None


# -- tenants -----------------------------------------------------------------------------------------


@pytest.fixture
def platform(tmp_path):
    d = Daemon(platform_settings(tmp_path / "data")).start_in_thread()
    yield d
    d.stop()


def api_tier(services) -> str:
    """A tier whose API tokens may call the API."""
    with services.db.write() as session:
        session.add(TierLimit(name="streams", display_name="Streams", features={"api": True}))
    return "streams"


def test_two_organisations_never_see_each_others_mail(platform):
    s = platform.services
    tier = api_tier(s)
    acme, globex = add_org(s, "dev@acme.test", tier=tier), add_org(s, "*@globex.test", tier=tier)
    acme_token, _ = create_token(s.db, acme, "acme", scopes=("read",))
    globex_token, _ = create_token(s.db, globex, "globex", scopes=("read",))
    with EventStream(platform, acme_token) as a, EventStream(platform, globex_token) as g:
        assert json.loads(a.opening()["data"]) == {"organisationId": org_uuid(platform, acme)}
        assert json.loads(g.opening()["data"]) == {"organisationId": org_uuid(platform, globex)}
        for n in range(3):
            send_many(platform.smtp_port, [f"acme {n}"], to="dev@acme.test")
            send_many(platform.smtp_port, [f"globex {n}"], to="who@globex.test")
        got_a, got_g = a.received(3), g.received(3)
        a.quiet(0.8)
        g.quiet(0.1)
    assert [m["subject"] for m in summaries(got_a)] == ["acme 0", "acme 1", "acme 2"]
    assert [m["subject"] for m in summaries(got_g)] == ["globex 0", "globex 1", "globex 2"]
    # Another organisation's event id resumes nothing of that organisation's mail.
    (acme_first,) = [m for m in stored(s, acme) if m.uuid == summaries(got_a)[0]["id"]]
    expected = [m.subject for m in stored(s, globex) if m.id > acme_first.id]
    assert expected
    with EventStream(platform, globex_token, headers={"Last-Event-ID": got_a[0]["id"]}) as g:
        g.opening()
        assert [m["subject"] for m in summaries(g.received(len(expected)))] == expected
        g.quiet(0.6)


def test_an_id_from_the_future_does_not_reveal_how_far_other_tenants_ids_have_gone(platform):
    s = platform.services
    tier = api_tier(s)
    acme, globex = add_org(s, "dev@acme.test", tier=tier), add_org(s, "*@globex.test", tier=tier)
    acme_token, _ = create_token(s.db, acme, "acme", scopes=("read",))
    send_many(platform.smtp_port, ["acme 0"], to="dev@acme.test")
    send_many(platform.smtp_port, [f"globex {n}" for n in range(3)], to="who@globex.test")
    wait_until(lambda: len(stored(s, globex)) == 3 and len(stored(s, acme)) == 1)
    acme_newest = max(m.id for m in stored(s, acme))
    assert max(m.id for m in stored(s, globex)) > acme_newest
    far = events_api.encode_cursor(2**62)
    with EventStream(platform, acme_token, headers={"Last-Event-ID": far}) as a:
        ready = a.opening()
        assert events_api.decode_cursor(ready["id"]) == acme_newest
        send_many(platform.smtp_port, ["acme 1"], to="dev@acme.test")
        assert [m["subject"] for m in summaries(a.received(1))] == ["acme 1"]


def test_mail_for_one_organisation_does_not_wake_the_streams_of_another(platform, monkeypatch):
    s = platform.services
    tier = api_tier(s)
    acme, globex = add_org(s, "dev@acme.test", tier=tier), add_org(s, "*@globex.test", tier=tier)
    asked: list[int] = []
    real = s.messages.received_after

    def counted(who, *args, **kwargs):
        asked.append(who.organization_id)
        return real(who, *args, **kwargs)

    monkeypatch.setattr(s.messages, "received_after", counted)
    with EventStream(platform, create_token(s.db, acme, "a", scopes=("read",))[0]) as a, \
            EventStream(platform, create_token(s.db, globex, "g", scopes=("read",))[0]) as g:
        a.opening()
        g.opening()
        time.sleep(0.5)
        globex_queries, acme_queries = asked.count(globex), asked.count(acme)
        send_many(platform.smtp_port, [f"acme {n}" for n in range(5)], to="dev@acme.test")
        a.received(5)
        g.quiet(0.6)
        assert asked.count(globex) == globex_queries
        assert asked.count(acme) > acme_queries
        send_many(platform.smtp_port, ["globex"], to="x@globex.test")
        assert json.loads(g.received(1)[0]["data"])["subject"] == "globex"
        a.quiet(0.3)


# -- ending ------------------------------------------------------------------------------------------


def test_a_client_that_disconnects_ends_its_handler(daemon, owner_token):
    stream = EventStream(daemon, owner_token)
    stream.opening()
    other = EventStream(daemon, owner_token)
    other.opening()
    watcher = watcher_of(daemon)
    assert watcher.subscribers == 2 and watcher.running
    stream.close()
    wait_until(lambda: watcher.subscribers == 1)
    assert watcher.running
    other.close()
    wait_until(lambda: watcher.subscribers == 0 and not watcher.running)


def test_stopping_the_daemon_with_a_stream_open_is_prompt(tmp_path):
    d = Daemon(make_settings(tmp_path / "data")).start_in_thread()
    token = (tmp_path / "data" / "owner.token").read_text().strip()
    stream = EventStream(d, token)
    stream.opening()
    started = time.monotonic()
    d.stop()
    assert time.monotonic() - started < 5
    assert stream.ended.wait(2)
    assert stream.error is None  # the stream was ended, not cut
    stream.close()


def test_mail_stored_by_another_daemon_is_on_the_stream(tmp_path):
    """Scale-out: this daemon only serves the API; another one (its own services, nothing in common
    but the database and the content store) accepts and stores the mail."""
    settings = make_settings(tmp_path / "data")
    api_only = Daemon(settings, roles=("api",)).start_in_thread()
    capture = Daemon(replace(settings, api=replace(settings.api, enabled=False)),
                     roles=("smtp", "worker")).start_in_thread()
    try:
        token = (tmp_path / "data" / "owner.token").read_text().strip()
        with EventStream(api_only, token) as stream:
            stream.opening()
            send_many(capture.smtp_port, ["from the other daemon"])
            sent = time.monotonic()
            (event,) = stream.received(1, timeout=5)
            assert time.monotonic() - sent < 1.0
            assert json.loads(event["data"])["subject"] == "from the other daemon"
    finally:
        capture.stop()
        api_only.stop()
