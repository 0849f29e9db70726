"""The /messages API: auth, pagination, filters, search, errors, deletion, OpenAPI."""

from __future__ import annotations

import re
import smtplib

import httpx
import pytest

from conftest import wait_for_messages


def send(daemon, n=1, *, sender="a@example.com", to="b@example.com", subject="msg {i}", body="hello {i}"):
    with smtplib.SMTP("127.0.0.1", daemon.smtp_port) as client:
        for i in range(n):
            raw = (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject.format(i=i)}\r\n"
                   f"Message-ID: <m{i}.{subject.format(i=i).replace(' ', '')}@x>\r\n\r\n{body.format(i=i)}\r\n")
            client.sendmail(sender, [to], raw.encode())


def test_every_endpoint_but_health_needs_a_valid_token(daemon, api):
    base = f"http://127.0.0.1:{daemon.api_port}"
    assert httpx.get(f"{base}/health").status_code == 200
    assert httpx.get(f"{base}/openapi.json").status_code == 200
    for headers in ({}, {"Authorization": "Bearer lm_wrong"}, {"Authorization": "Basic abc"},
                    {"Authorization": "Bearer"}, {"Authorization": "lm_no_scheme"}):
        resp = httpx.get(f"{base}/messages", headers=headers)
        assert resp.status_code == 401
        assert set(resp.json()) == {"error", "message"}


def test_newest_first_with_offset_and_stable_cursor(daemon, api):
    send(daemon, 7)
    wait_for_messages(api, 7)
    page1 = api.get("/messages", params={"limit": 3}).json()
    assert [m["subject"] for m in page1["messages"]] == ["msg 6", "msg 5", "msg 4"]
    assert page1["pagination"]["total"] == 7
    cursor = page1["pagination"]["nextCursor"]
    send(daemon, 2, subject="new {i}")  # mail arriving between pages must not shift the next page
    wait_for_messages(api, 9)
    page2 = api.get("/messages", params={"limit": 3, "cursor": cursor}).json()
    assert [m["subject"] for m in page2["messages"]] == ["msg 3", "msg 2", "msg 1"]
    page3 = api.get("/messages", params={"limit": 3, "cursor": page2["pagination"]["nextCursor"]}).json()
    assert [m["subject"] for m in page3["messages"]] == ["msg 0"]
    assert page3["pagination"]["nextCursor"] is None
    offset = api.get("/messages", params={"limit": 2, "offset": 2}).json()
    assert [m["subject"] for m in offset["messages"]] == ["msg 6", "msg 5"]


def test_filters_and_full_text_search(daemon, api):
    send(daemon, 2, sender="ops@example.com", to="alerts@example.net", subject="disk {i} full",
         body="the volume is almost full")
    send(daemon, 3, sender="shop@example.com", to="orders@example.org", subject="order {i}",
         body="your parcel has been dispatched")
    wait_for_messages(api, 5)

    def subjects(**params):
        resp = api.get("/messages", params=params)
        assert resp.status_code == 200, resp.text
        return sorted(m["subject"] for m in resp.json()["messages"])

    assert subjects(to="alerts@example.net") == ["disk 0 full", "disk 1 full"]
    assert subjects(to="ALERTS@example.net") == ["disk 0 full", "disk 1 full"]
    assert subjects(**{"from": "shop@example.com"}) == ["order 0", "order 1", "order 2"]
    assert subjects(q="parcel") == ["order 0", "order 1", "order 2"]
    assert subjects(q="dispatched order") == ["order 0", "order 1", "order 2"]
    assert subjects(q="disk") == ["disk 0 full", "disk 1 full"]
    assert subjects(q="alerts") == ["disk 0 full", "disk 1 full"]  # addresses are indexed
    assert subjects(q="nothing-like-this") == []
    assert subjects(q='"almost full"') == ["disk 0 full", "disk 1 full"]
    assert subjects(q='" AND OR NOT ( * "') == []  # FTS syntax in user input is just text
    everything = api.get("/messages").json()["messages"]
    newest = max(m["receivedAt"] for m in everything)
    assert len(subjects(since=newest)) >= 1
    assert subjects(until=0) == []


@pytest.mark.parametrize("params, fragment", [
    ({"limit": "0"}, "limit must be at least 1"),
    ({"limit": "1001"}, "limit must be at most 1000"),
    ({"limit": "ten"}, "limit must be an integer"),
    ({"offset": "-1"}, "offset must be at least 0"),
    ({"cursor": "not-a-cursor"}, "cursor is not one this server issued"),
    ({"since": "yesterday"}, "since must be an integer"),
    ({"since": "10", "until": "5"}, "until must not be earlier than since"),
])
def test_bad_parameters_are_400_with_a_clear_message(api, params, fragment):
    resp = api.get("/messages", params=params)
    assert resp.status_code == 400
    body = resp.json()
    assert body["error"] == "Bad request" and fragment in body["message"]


def test_unknown_and_malformed_ids(api):
    missing = "00000000-0000-4000-8000-000000000000"
    for path in (f"/messages/{missing}", f"/messages/{missing}/raw",
                 f"/messages/{missing}/attachments/{missing}"):
        resp = api.get(path)
        assert resp.status_code == 404 and set(resp.json()) == {"error", "message"}
    resp = api.get("/messages/../../etc/passwd")
    assert resp.status_code in (400, 404)
    resp = api.get("/messages/1%20OR%201=1")
    assert resp.status_code == 400 and "must be a UUID" in resp.json()["message"]
    assert api.delete(f"/messages/{missing}").status_code == 404
    assert api.post("/messages").status_code == 405
    assert api.get("/no/such/thing").json()["error"] == "Not found"


def test_delete_removes_message_and_content(daemon, api):
    send(daemon, 2)
    first, second = wait_for_messages(api, 2)
    resp = api.delete(f"/messages/{first['id']}")
    assert resp.status_code == 200 and resp.json()["id"] == first["id"]
    assert api.get(f"/messages/{first['id']}").status_code == 404
    assert api.get(f"/messages/{first['id']}/raw").status_code == 404
    assert [m["id"] for m in api.get("/messages").json()["messages"]] == [second["id"]]
    assert api.get("/messages", params={"q": "hello"}).json()["pagination"]["total"] == 1
    stats = daemon.services.content.stats()
    assert stats["blobs"] == 2  # the survivor's raw and body; the deleted message left nothing behind


def test_openapi_describes_every_route(daemon, api):
    doc = api.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    described = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    from logmail.api.app import create_app

    app = create_app(daemon.services)
    served = set()
    for route in app.router.routes:
        path = re.sub(r"<(\w+):str>", r"{\1}", "/" + route.path)
        for method in route.methods:
            if method not in ("HEAD", "OPTIONS"):
                served.add((path.replace("//", "/"), method))
    assert served == described
