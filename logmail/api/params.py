"""Query-string parsing with clear 400s."""

from __future__ import annotations

import re

from sanic import Request

from logmail.errors import BadRequestError

MAX_INT = 2**63 - 1
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def int_arg(request: Request, name: str, default: int | None = None, *, minimum: int | None = None,
            maximum: int | None = None) -> int | None:
    value = _arg(request, name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise BadRequestError(f"{name} must be an integer, not {value[:40]!r}") from None
    if minimum is not None and number < minimum:
        raise BadRequestError(f"{name} must be at least {minimum}")
    if maximum is not None and number > maximum:
        raise BadRequestError(f"{name} must be at most {maximum}")
    if not -MAX_INT <= number <= MAX_INT:  # what a database integer holds; beyond it SQL would fail
        raise BadRequestError(f"{name} must be at most {MAX_INT}")
    return number


def str_arg(request: Request, name: str, *, max_length: int = 1000) -> str | None:
    value = request.args.get(name)
    if value is None or value == "":
        return None
    if len(value) > max_length:
        raise BadRequestError(f"{name} is longer than {max_length} characters")
    return value


def uuid_param(value: str, what: str) -> str:
    if not _UUID.match(value):
        raise BadRequestError(f"{what} must be a UUID, not {value[:40]!r}")
    return value.lower()


def uuid_arg(request: Request, name: str) -> str | None:
    value = _arg(request, name)
    if value is None:
        return None
    return uuid_param(value, name)


def choice_arg(request: Request, name: str, choices: tuple[str, ...]) -> str | None:
    value = _arg(request, name)
    if value is not None and value not in choices:
        raise BadRequestError(f"{name} must be one of {', '.join(choices)}")
    return value


def bool_arg(request: Request, name: str, default: bool = False) -> bool:
    """``true``/``false`` (or ``1``/``0``); absent is the default, anything else (a blank included) a 400."""
    value = _arg(request, name)
    if value is None:
        return default
    if value.lower() not in ("true", "false", "1", "0"):
        raise BadRequestError(f"{name} must be true or false")
    return value.lower() in ("true", "1")


def _arg(request: Request, name: str) -> str | None:
    # Blank values kept: "?since=" is a bad number, not an absent one (request.args drops blanks).
    return request.get_args(keep_blank_values=True).get(name)


MAX_LIMIT = 1000


def page_args(request: Request, default_limit: int = 50) -> tuple[int, int]:
    """``limit`` (1..MAX_LIMIT) and ``offset`` (>= 0) of a list endpoint, with clear 400s."""
    return (int_arg(request, "limit", default_limit, minimum=1, maximum=MAX_LIMIT),
            int_arg(request, "offset", 0, minimum=0))


def page(key: str, items: list, total: int, limit: int, offset: int, **pagination) -> dict:
    """The body every list endpoint returns: ``{key: [...], "pagination": {...}}``."""
    return {key: items, "pagination": {"total": total, "limit": limit, "offset": offset, **pagination}}
