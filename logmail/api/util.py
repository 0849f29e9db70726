"""Small helpers shared by the blueprints."""

from __future__ import annotations

import asyncio
from functools import partial

from sanic import Request

from logmail.errors import ForbiddenError
from logmail.services.principal import METHOD_TOKEN, Principal


async def blocking(fn, *args, **kwargs):
    """Run database and content-store work off the event loop, so listeners stay responsive."""
    return await asyncio.get_running_loop().run_in_executor(None, partial(fn, *args, **kwargs))


def require(request: Request, scope: str) -> Principal:
    who: Principal = request.ctx.principal
    if not who.can(scope):
        if who.method == METHOD_TOKEN:
            raise ForbiddenError(f"this token lacks the {scope!r} scope")
        raise ForbiddenError(f"this needs the {scope!r} scope, which the role {who.role!r} does not have")
    return who
