"""Health: ``GET /health`` (cheap liveness, no authentication), ``GET /health/detailed`` (every service
checked now), and the platform admins' ``GET /admin/health`` and ``GET /admin/health/history``."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import json

from logmail import __version__
from logmail.api.admin_platform import platform_admin
from logmail.api.params import int_arg, page, page_args, str_arg
from logmail.api.util import blocking, require

bp = Blueprint("health")
MAX_HOURS = 24 * 90


@bp.get("/health")
async def health(request: Request):
    return json({"status": "healthy", "service": "logmail", "version": __version__})


@bp.get("/health/detailed")
async def detailed(request: Request):
    """Checked now, in parallel; 503 when a core store (database, content, queue) is down."""
    require(request, "read")
    report = await blocking(request.app.ctx.services.health.detailed)
    return json({**report, "version": __version__}, status=503 if report["status"] == "down" else 200)


@bp.get("/admin/health")
async def admin_health(request: Request):
    platform_admin(request)
    return json(await blocking(request.app.ctx.services.health.latest))


@bp.get("/admin/health/history")
async def admin_history(request: Request):
    platform_admin(request)
    services = request.app.ctx.services
    hours = int_arg(request, "hours", minimum=1, maximum=MAX_HOURS) or 24
    service = str_arg(request, "service", max_length=64)
    limit, offset = page_args(request)
    since = services.auth.now() - hours * 3_600_000
    items, total = await blocking(services.health.history, service=service, since_ms=since, limit=limit,
                                  offset=offset)
    return json(page("samples", items, total, limit, offset))
