"""Small helpers shared by the blueprints."""

from __future__ import annotations

import asyncio
from functools import partial

from sanic import Request

from logmail.errors import ForbiddenError
from logmail.services.tokens import Principal


async def blocking(fn, *args, **kwargs):
    """Run database and content-store work off the event loop, so listeners stay responsive."""
    return await asyncio.get_running_loop().run_in_executor(None, partial(fn, *args, **kwargs))


def require(request: Request, scope: str) -> Principal:
    who: Principal = request.ctx.principal
    if not who.can(scope):
        raise ForbiddenError(f"this token lacks the {scope!r} scope")
    return who
