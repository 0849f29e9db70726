"""The events webhooks carry: their names and the exact JSON bodies sent (Standard Webhooks shape).

A body is ``{"type": <event>, "timestamp": <ISO 8601, UTC>, "data": {...}}``. Times inside ``data``
are epoch milliseconds, like everywhere else in logmail's API. Message events carry a summary of
the message, never its text, HTML or attachments: a receiver that wants them asks the API.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

MESSAGE_RECEIVED = "message.received"
MESSAGE_DELETED = "message.deleted"
ACCOUNT_SYNC_FAILED = "account.sync_failed"
QUOTA_WARNING = "quota.warning"
EVENTS = (MESSAGE_RECEIVED, MESSAGE_DELETED, ACCOUNT_SYNC_FAILED, QUOTA_WARNING)
TEST_EVENT = "webhook.test"  # sent by POST /webhooks/{id}/test whatever the endpoint subscribes to
MAX_LISTED_ADDRESSES = 100  # of To, Cc and envelope recipients in message.received; the message has them all


def event_body(event: str, data: dict[str, Any], now_ms: int) -> str:
    """The exact JSON body of a delivery (it is stored, signed and sent as it is)."""
    stamp = datetime.fromtimestamp(now_ms / 1000, timezone.utc).isoformat(timespec="milliseconds")
    envelope = {"type": event, "timestamp": stamp.replace("+00:00", "Z"), "data": data}
    body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":"))
    try:
        body.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a broken header: escape everything instead
        body = json.dumps(envelope, separators=(",", ":"))
    return body


def received_data(message: dict[str, Any]) -> dict[str, Any]:
    """``message.received``: the stored message's summary (from a message row dict of ingest)."""
    sender = ({"name": message["from_name"], "address": message["from_address"]}
              if message.get("from_address") or message.get("from_name") else None)
    return {"id": message["uuid"], "messageId": message.get("message_id"), "subject": message.get("subject"),
            "from": sender, "to": (message.get("to") or [])[:MAX_LISTED_ADDRESSES],
            "cc": (message.get("cc") or [])[:MAX_LISTED_ADDRESSES],
            "envelope": {"mailFrom": message.get("envelope_from"),
                         "rcptTo": (message.get("envelope_to") or [])[:MAX_LISTED_ADDRESSES]},
            "receivedAt": message.get("received_at"), "size": message.get("size"),
            "attachmentCount": message.get("attachment_count", 0), "source": message.get("source")}


def deleted_data(message: Any) -> dict[str, Any]:
    """``message.deleted``: which message was deleted (from a Message row)."""
    return {"id": message.uuid, "messageId": message.message_id, "subject": message.subject,
            "receivedAt": message.received_at}
