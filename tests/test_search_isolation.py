"""Search and listing never cross organisations, on either index path."""

from __future__ import annotations

import pytest

from conftest import claim_all
from logmail.services.accept import Envelope
from logmail.services.container import build_services
from logmail.store import messages as repo
from logmail.store.models import Organization


@pytest.fixture
def services(settings):
    s = build_services(settings)
    yield s
    s.close()


def test_two_organisations_never_see_each_others_mail(services):
    with services.db.write() as session:
        other = Organization(name="Other")
        session.add(other)
        session.flush()
        other_id = other.id
    mine = services.boot.organization_id
    items = []
    for org, n in ((mine, 3), (other_id, 4)):
        for i in range(n):
            items.append((f"Subject: invoice {org}-{i}\r\nFrom: billing@example.com\r\n\r\ninvoice body\r\n".encode(),
                          Envelope("billing@example.com", ["ap@example.com"], organization_id=org)))
    services.acceptor.accept_many(items)
    jobs = claim_all(services, len(items))
    services.ingest.store(jobs)
    services.queue.ack(jobs)

    def listing(org, **flt):
        with services.db.read() as session:
            return repo.list_messages(session, org, repo.MessageFilter(**flt), limit=100)

    for org, n in ((mine, 3), (other_id, 4)):
        for flt in ({}, {"q": "invoice"}, {"q": "invoice", "to": "ap@example.com"},
                    {"from_": "billing@example.com"}, {"q": "billing"}):
            page = listing(org, **flt)
            assert page.total == n, (org, flt)
            assert all(r.subject.startswith(f"invoice {org}-") for r in page.rows), (org, flt)
    # Cursor paging through the search path stays inside the organisation too.
    first = listing(other_id, q="invoice")
    with services.db.read() as session:
        nxt = repo.list_messages(session, other_id, repo.MessageFilter(q="invoice"), limit=2)
        rest = repo.list_messages(session, other_id, repo.MessageFilter(q="invoice"), limit=10, before_id=nxt.next_cursor)
    assert [r.id for r in nxt.rows] + [r.id for r in rest.rows] == [r.id for r in first.rows]
