"""``/admin/emails``: the outbound mail queue, for platform admins (everyone else: 403)."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import json

from logmail.api.admin_platform import platform_admin, platform_admin_change
from logmail.api.params import choice_arg, int_arg, page, page_args, uuid_param
from logmail.api.util import blocking
from logmail.services.audit import EMAIL_RETRIED, EMAILS_PROCESSED
from logmail.services.outbound import KINDS
from logmail.services.principal import Principal
from logmail.store.outbound import STATUSES

bp = Blueprint("admin_emails")

MAX_WINDOW_HOURS = 24 * 366


@bp.get("/admin/emails")
async def list_emails(request: Request):
    platform_admin(request)
    limit, offset = page_args(request)
    status = choice_arg(request, "status", STATUSES)
    kind = choice_arg(request, "kind", KINDS)
    items, total = await blocking(request.app.ctx.services.outbound.list, status=status, kind=kind, limit=limit,
                                  offset=offset)
    return json(page("emails", items, total, limit, offset))


@bp.get("/admin/emails/stats")
async def email_stats(request: Request):
    platform_admin(request)
    hours = int_arg(request, "hours", 24, minimum=1, maximum=MAX_WINDOW_HOURS)
    return json(await blocking(request.app.ctx.services.outbound.stats, hours))


@bp.post("/admin/emails/process")
async def process_emails(request: Request):
    """Run the retry job's pass now, in this process (it may take as long as the servers do)."""
    who = platform_admin_change(request)
    services = request.app.ctx.services
    report = await blocking(services.outbound.process_due)
    await blocking(_audit, services, who, EMAILS_PROCESSED, None, report)
    return json({"processed": report, "configured": services.outbound.enabled})


@bp.get("/admin/emails/<email_id:str>")
async def get_email(request: Request, email_id: str):
    platform_admin(request)
    return json(await blocking(request.app.ctx.services.outbound.get, uuid_param(email_id, "email id")))


@bp.post("/admin/emails/<email_id:str>/retry")
async def retry_email(request: Request, email_id: str):
    who = platform_admin_change(request)
    services = request.app.ctx.services
    email_id = uuid_param(email_id, "email id")
    email = await blocking(services.outbound.retry, email_id)
    await blocking(_audit, services, who, EMAIL_RETRIED, email_id, {"status": email["status"]})
    return json(email)


def _audit(services, who: Principal, action: str, email_id: str | None, details: dict) -> None:
    with services.db.write() as session:
        services.auth.audit.add(session, who, action, target_type="email" if email_id else None,
                                target_id=email_id, details=details)
