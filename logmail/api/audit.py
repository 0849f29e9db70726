"""``/audit``: the organisation's audit log, newest first (admins and owners only; read-only)."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import json

from logmail.api.params import choice_arg, int_arg, page, page_args, uuid_arg
from logmail.api.util import blocking, require
from logmail.errors import BadRequestError
from logmail.services.audit import ACTIONS
from logmail.store.audit import AuditFilter

bp = Blueprint("audit")



@bp.get("/audit")
async def list_audit(request: Request):
    who = require(request, "admin")
    limit, offset = page_args(request)
    items, total = await blocking(request.app.ctx.services.auth.audit.list, who, audit_filter(request),
                                  limit=limit, offset=offset)
    return json(page("entries", items, total, limit, offset))


def audit_filter(request: Request) -> AuditFilter:
    """``actor``, ``action``, ``since`` and ``until``: the filters of /audit and /admin/audit."""
    since = int_arg(request, "since", minimum=0)
    until = int_arg(request, "until", minimum=0)
    if since is not None and until is not None and until < since:
        raise BadRequestError("until must not be earlier than since")
    return AuditFilter(actor_user_uuid=uuid_arg(request, "actor"), action=choice_arg(request, "action", ACTIONS),
                       since=since, until=until)
