"""``GET /health``: cheap liveness, no authentication."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import json

from logmail import __version__

bp = Blueprint("health")


@bp.get("/health")
async def health(request: Request):
    return json({"status": "healthy", "service": "logmail", "version": __version__})
