"""The search language of ``q``: parsed with errors that say where, compiled to index lookups, and
each operator selecting exactly the right messages of exactly one organisation over HTTP."""

from __future__ import annotations

import base64
import time
from datetime import datetime, timezone

import pytest
from sqlalchemy import func, insert, select, update

from auth_helpers import PASSWORD, client, login
from conftest import make_settings, mariadb_database
from logmail.errors import BadRequestError
from logmail.services.accept import Envelope
from logmail.store.messages import LIST_COLUMNS, MessageFilter
from logmail.store.models import Message, MessageTag, Organization
from logmail.mail.query_language import QuerySyntaxError, Term, parse_query


def _short(value):
    """Test ids for long queries: their start and length."""
    return f"{value[:20]}…({len(value)})" if isinstance(value, str) and len(value) > 40 else None


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).replace(tzinfo=timezone.utc).timestamp() * 1000)


# -- the parser ----------------------------------------------------------------------------------


@pytest.mark.parametrize("q, expected", [
    ("invoice", [Term(None, "invoice")]),
    ('"almost full" disk', [Term(None, "almost full", phrase=True), Term(None, "disk", position=15)]),
    ("-spam", [Term(None, "spam", negated=True)]),
    ('-"big deal"', [Term(None, "big deal", negated=True, phrase=True)]),
    ("from:Jane@Example.COM", [Term("from", "jane@example.com")]),
    ('from:"Jane Doe"', [Term("from", "Jane Doe", phrase=True)]),
    ("-from:example.com", [Term("from", "example.com", negated=True)]),
    ("to:ops@example.com", [Term("to", "ops@example.com")]),
    ("cc:Jane", [Term("cc", "Jane")]),
    ('subject:"re: march"', [Term("subject", "re: march", phrase=True)]),
    ("message-id:<a.b@example.com>", [Term("message-id", "a.b@example.com")]),
    ("message-id:a.b@example.com", [Term("message-id", "a.b@example.com")]),
    ("tag:Finance", [Term("tag", "finance")]),
    ("has:attachment", [Term("has", True)]),
    ("is:read", [Term("is", True)]),
    ("IS:Unread", [Term("is", False)]),
    ("larger:500", [Term("larger", 500)]),
    ("larger:10k", [Term("larger", 10 * 1024)]),
    ("smaller:2M", [Term("smaller", 2 * 1024 ** 2)]),
    ("smaller:1.5MB", [Term("smaller", 1536 * 1024)]),
    ("larger:1gib", [Term("larger", 1024 ** 3)]),
    ("after:2026-01-31", [Term("after", ms("2026-01-31T00:00:00"))]),
    ("before:2026/01/31", [Term("before", ms("2026-01-31T00:00:00"))]),
    ("after:2026-01-31T09:30:00Z", [Term("after", ms("2026-01-31T09:30:00"))]),
    ("after:2026-01-31T09:30", [Term("after", ms("2026-01-31T09:30:00"))]),
    ("before:2026-01-31T11:30:00+02:00", [Term("before", ms("2026-01-31T09:30:00"))]),
    ("10:30 https://example.com/x", [Term(None, "10:30"), Term(None, "https://example.com/x", position=7)]),
    ("  a   -b  ", [Term(None, "a", position=3), Term(None, "b", negated=True, position=7)]),
    ('"" -""', []),
])
def test_parse(q, expected):
    assert list(parse_query(q).terms) == expected


@pytest.mark.parametrize("q, message", [
    ('"unclosed', "q: unclosed quote starting at character 1"),
    ('invoice subject:"march', "q: unclosed quote starting at character 17"),
    ("larger:", 'q: "larger:" needs a size such as 10k or 2M (at character 1)'),
    ("a larger:abc", 'q: "larger:" needs a size such as 10k or 2M, not "abc" (at character 10)'),
    ("smaller:10kk", 'q: "smaller:" needs a size such as 10k or 2M, not "10kk" (at character 9)'),
    ("is:maybe", 'q: unknown value "maybe" for is: (expected read or unread) (at character 4)'),
    ("has:pictures", 'q: unknown value "pictures" for has: (expected attachment) (at character 5)'),
    ("before:2026-13-45", 'q: "before:" needs a date such as 2026-01-31 or 2026-01-31T09:30:00Z, '
                          'not "2026-13-45" (at character 8)'),
    ("after:yesterday", 'q: "after:" needs a date such as'),
    ("after:", 'q: "after:" needs a date such as 2026-01-31 or 2026-01-31T09:30:00Z (at character 1)'),
    ("-", 'q: "-" must be followed by the word, phrase or field:value to leave out (at character 1)'),
    ("invoice - march", "(at character 9)"),
    ("from: jane", 'q: "from:" needs a value (at character 1)'),
    ('subject:""', 'q: "subject:" needs a value (at character 1)'),
    ("message-id:<>", 'q: "message-id:" needs a value (at character 12)'),
    (" ".join(["w"] * 51), "q: more than 50 terms (at character 101)"),
    ("from:" + "a" * 321, "q: a term is longer than 320 characters (at character 6)"),
    ("x" * 1001, "q: longer than 1000 characters"),
], ids=_short)
def test_malformed_queries_say_where(q, message):
    with pytest.raises(QuerySyntaxError) as caught:
        parse_query(q)
    assert message in str(caught.value)
    with pytest.raises(BadRequestError):  # refused when the filter is made, before any query runs
        MessageFilter(q=q)


def test_field_filters_are_answered_by_indexes_on_sqlite(tmp_path):
    """EXPLAIN QUERY PLAN: nothing reads messages (or recipients, or tags) beyond index ranges."""
    from logmail.store.database import Database
    from logmail.store.migrate import upgrade

    db = Database(f"sqlite:///{tmp_path / 'plan.db'}")
    upgrade(db)
    queries = ["from:jane@example.com", "from:jane", "to:ops@example.com", "to:example.com", "cc:a@example.com",
               "cc:jane", "subject:invoice", "message-id:<a@b>", "tag:finance", "has:attachment", "is:read",
               "larger:10k", "smaller:1M", "before:2026-01-01", "after:2026-01-01", "invoice -paid",
               "-from:jane", "-to:ops@example.com", "-tag:finance", 'from:jane subject:"march" -"big deal" is:unread']
    try:
        with db.engine.connect() as conn:
            for q in queries:
                conds = MessageFilter(q=q).conditions(1, "sqlite")
                for stmt in (select(func.count()).select_from(Message).where(*conds),
                             select(*LIST_COLUMNS).where(*conds).order_by(Message.id.desc()).limit(51)):
                    compiled = stmt.compile(conn)
                    params = tuple(compiled.construct_params()[name] for name in compiled.positiontup)
                    plan = [row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", params)]
                    assert not [line for line in plan if line.startswith("SCAN") and "VIRTUAL TABLE" not in line], \
                        (q, plan)
                    assert any("organization_id=?" in line for line in plan if " messages " in line), (q, plan)
    finally:
        db.dispose()


# -- end to end over HTTP ----------------------------------------------------------------------------

ATTACHMENT = base64.encodebytes(bytes(range(256)) * 80).decode()  # 20 KiB, so ~27 KB encoded

# name: (From, To, Cc, envelope recipients, Subject, text, received at (UTC), read, tags)
CORPUS = {
    "invoice": ('"Billing Team" <billing@shop.example>', "Jane Doe <jane@corp.example>", None,
                ["jane@corp.example"], "Your invoice for March", "Please find the invoice attached.",
                "2026-01-10T08:00:00", False, ["finance"]),
    "party": ("Bob <bob@friends.example>", "team@corp.example", '"Jane Doe" <jane@corp.example>',
              ["team@corp.example", "jane@corp.example"], "Friday party at 10:30", "Bring snacks and drinks.",
              "2026-01-15T12:00:00", True, []),
    "alert": ("monitor@ops.example", "oncall@corp.example", None, ["oncall@corp.example", "hidden@corp.example"],
              "Disk almost full", "The volume /var is 95% full.", "2026-01-20T00:00:00", False, ["ops"]),
    "reply": ("Jane Doe <jane@corp.example>", "billing@shop.example", None, ["billing@shop.example"],
              "Re: Your invoice for March", "Thanks, I paid the invoice today.", "2026-01-31T23:59:59.999",
              True, ["finance", "followup"]),
    "digest": ("news@letters.example", "jane@corp.example", None, ["jane@corp.example"], "Weekly digest",
               "Top stories of the week.", "2026-02-01T00:00:00", False, []),
}
EVERYTHING = set(CORPUS)


def raw_message(name: str, tenant: str) -> bytes:
    sender, to, cc, _, subject, body, *_ = CORPUS[name]
    head = f"From: {sender}\r\nTo: {to}\r\n" + (f"Cc: {cc}\r\n" if cc else "")
    head += f"Subject: {subject}\r\nMessage-ID: <{name}.{tenant}@test>\r\nMIME-Version: 1.0\r\n"
    if name != "invoice":
        return (head + f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n").encode()
    return (head + "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
            f"{body}\r\n--b\r\nContent-Type: application/octet-stream; name=march.bin\r\n"
            "Content-Disposition: attachment; filename=march.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            f"{ATTACHMENT}--b--\r\n").encode()


@pytest.fixture(params=["stack", pytest.param("mariadb", marks=pytest.mark.mariadb)])
def settings(request, tmp_path):
    """The stack under test, and (marked mariadb) the embedded stack with its SQL on MariaDB."""
    overrides: dict = {"auth": {"open_registration": True}}
    if request.param == "mariadb":
        overrides["database"] = {"url": mariadb_database()}
    return make_settings(tmp_path / "data", **overrides)


@pytest.fixture
def tenants(daemon, api):
    """Two organisations holding the same five messages (Message-IDs end in .a / .b), each with its
    own receive times, read flags and tags; the API credentials of each."""
    http = client(daemon)
    resp = http.post("/auth/register", json={"email": "owner@b.example", "password": PASSWORD,
                                             "organisationName": "B"})
    assert resp.status_code == 201, resp.text
    b_auth = login(http, "owner@b.example").auth
    db = daemon.services.db
    with db.read() as session:
        b_org = session.execute(select(Organization.id).where(
            Organization.uuid == resp.json()["user"]["organisationId"])).scalar_one()
    orgs = {"a": daemon.services.boot.organization_id, "b": b_org}
    daemon.services.acceptor.accept_many([
        (raw_message(name, tenant), Envelope("sender@test", CORPUS[name][3], organization_id=org))
        for tenant, org in orgs.items() for name in CORPUS
    ])
    auth = {"a": {"Authorization": api.headers["Authorization"]}, "b": b_auth}
    deadline = time.monotonic() + 30
    for tenant in orgs:
        while http.get("/messages", headers=auth[tenant]).json()["pagination"]["total"] < len(CORPUS):
            assert time.monotonic() < deadline, "the corpus was not ingested in time"
            time.sleep(0.05)
    with db.write() as session:
        for tenant, org in orgs.items():
            for name, (*_, received, read, tags) in CORPUS.items():
                mid = f"{name}.{tenant}@test"
                session.execute(update(Message).where(Message.organization_id == org, Message.message_id == mid)
                                .values(received_at=ms(received), is_read=read))
                pk = session.execute(select(Message.id).where(Message.organization_id == org,
                                                              Message.message_id == mid)).scalar_one()
                extra = ["a-only"] if (tenant, name) == ("a", "digest") else []
                if tags + extra:
                    session.execute(insert(MessageTag), [{"message_id": pk, "tag": t, "organization_id": org}
                                                         for t in tags + extra])
    yield lambda tenant, q: _search(http, auth[tenant], tenant, q)
    http.close()


def _search(http, headers: dict, tenant: str, q: str) -> set[str]:
    resp = http.get("/messages", params={"q": q, "limit": 100}, headers=headers)
    assert resp.status_code == 200, (q, resp.text)
    body = resp.json()
    assert body["pagination"]["total"] == len(body["messages"]), q
    names = set()
    for message in body["messages"]:
        name, _, rest = message["messageId"].partition(".")
        assert rest == f"{tenant}@test", f"{q!r} for tenant {tenant} returned another tenant's {message['messageId']}"
        names.add(name)
    return names


SELECTIONS = [
    # words and phrases, from the index alone
    ("invoice", {"invoice", "reply"}),
    ("jane", {"invoice", "party", "reply", "digest"}),
    ('"almost full"', {"alert"}),
    ('"full almost"', set()),
    ("10:30", {"party"}),
    ("weekly:digest", {"digest"}),  # not a field: text
    ("-invoice", EVERYTHING - {"invoice", "reply"}),
    ("invoice -paid", {"invoice"}),
    ('-"almost full" -invoice', {"party", "digest"}),
    ("+invoice* -(paid)", {"invoice"}),  # the engines' operators are just text
    ('invoice\x00 -"NEAR(paid" -{subject}:x -"*"', {"invoice", "reply"}),
    ('invoice -"(paid)" -{subject}:x', {"invoice"}),
    # from:
    ("from:billing@shop.example", {"invoice"}),
    ("FROM:Billing@Shop.Example", {"invoice"}),
    ("from:jane", {"reply"}),
    ('from:"Billing Team"', {"invoice"}),
    ("from:shop.example", {"invoice"}),
    ("-from:jane", EVERYTHING - {"reply"}),
    ("-from:jane@corp.example", EVERYTHING - {"reply"}),
    # to: (envelope, To and Cc)
    ("to:jane@corp.example", {"invoice", "party", "digest"}),
    ("to:hidden@corp.example", {"alert"}),
    ("to:jane", {"invoice", "party", "digest"}),
    ("to:corp.example", {"invoice", "party", "alert", "digest"}),
    ("-to:jane@corp.example", {"alert", "reply"}),
    # cc:
    ("cc:jane@corp.example", {"party"}),
    ("cc:jane", {"party"}),
    ('cc:"Jane Doe"', {"party"}),
    ("-cc:jane@corp.example", EVERYTHING - {"party"}),
    # subject:
    ("subject:invoice", {"invoice", "reply"}),
    ("subject:paid", set()),
    ('subject:"invoice for march"', {"invoice", "reply"}),
    ("-subject:invoice", {"party", "alert", "digest"}),
    # message-id:
    ("message-id:<invoice.{t}@test>", {"invoice"}),
    ("message-id:invoice.{t}@test", {"invoice"}),
    ("-message-id:invoice.{t}@test", EVERYTHING - {"invoice"}),
    # tag:
    ("tag:finance", {"invoice", "reply"}),
    ("tag:OPS", {"alert"}),
    ("-tag:finance", {"party", "alert", "digest"}),
    ("tag:finance -tag:followup", {"invoice"}),
    ("tag:nothing", set()),
    # has:, is:, larger:, smaller:
    ("has:attachment", {"invoice"}),
    ("-has:attachment", EVERYTHING - {"invoice"}),
    ("is:read", {"party", "reply"}),
    ("is:unread", {"invoice", "alert", "digest"}),
    ("-is:read", {"invoice", "alert", "digest"}),
    ("larger:10k", {"invoice"}),
    ("smaller:10K", EVERYTHING - {"invoice"}),
    ("larger:1M", set()),
    # after: (on or after) and before: (strictly before), received time, UTC
    ("after:2026-01-20", {"alert", "reply", "digest"}),
    ("before:2026-01-20", {"invoice", "party"}),
    ("before:2026-02-01", {"invoice", "party", "alert", "reply"}),
    ("after:2026/02/01", {"digest"}),
    ("after:2026-01-15T12:00:00Z", {"party", "alert", "reply", "digest"}),
    ("before:2026-01-15T13:00:00+02:00", {"invoice"}),
    ("after:2026-01-11 before:2026-01-31", {"party", "alert"}),
    ("-after:2026-01-20", {"invoice", "party"}),
    # together
    ("from:jane subject:invoice is:read", {"reply"}),
    ("invoice has:attachment -tag:ops", {"invoice"}),
    ("to:jane@corp.example -from:news@letters.example", {"invoice", "party"}),
    ("jane -from:jane", {"invoice", "party", "digest"}),
    ("march is:unread larger:1k after:2026-01-01", {"invoice"}),
]


def test_each_operator_selects_exactly_its_messages_in_each_organisation(tenants):
    wrong = []
    for q, expected in SELECTIONS:
        for tenant in ("a", "b"):
            found = tenants(tenant, q.replace("{t}", tenant))
            if found != expected:
                wrong.append((q, tenant, sorted(found), sorted(expected)))
    assert wrong == []


def test_no_search_reaches_another_organisations_mail(tenants):
    assert tenants("a", "message-id:invoice.a@test") == {"invoice"}
    assert tenants("b", "message-id:invoice.a@test") == set()
    assert tenants("a", "tag:a-only") == {"digest"}
    assert tenants("b", "tag:a-only") == set()
    assert tenants("b", "-tag:a-only") == EVERYTHING  # and negation stays inside B as well
    # The organisation's token of the index is not a word anyone can search for.
    assert tenants("a", "o1 o2 o3") == set()


@pytest.mark.parametrize("q, fragment", [
    ('invoice subject:"march', "q: unclosed quote starting at character 17"),
    ("larger:", 'q: "larger:" needs a size such as 10k or 2M (at character 1)'),
    ("larger:abc", 'not "abc" (at character 8)'),
    ("is:maybe", 'q: unknown value "maybe" for is: (expected read or unread) (at character 4)'),
    ("before:2026-13-45", 'q: "before:" needs a date such as 2026-01-31'),
    ("-", 'q: "-" must be followed by'),
    ("x" * 1001, "q is longer than 1000 characters"),
], ids=_short)
def test_bad_queries_are_400_saying_where(api, q, fragment):
    resp = api.get("/messages", params={"q": q})
    assert resp.status_code == 400
    body = resp.json()
    assert set(body) == {"error", "message"} and body["error"] == "Bad request"
    assert fragment in body["message"]
