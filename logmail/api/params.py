"""Query-string parsing with clear 400s."""

from __future__ import annotations

import re

from sanic import Request

from logmail.errors import BadRequestError

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def int_arg(request: Request, name: str, default: int | None = None, *, minimum: int | None = None,
            maximum: int | None = None) -> int | None:
    value = request.args.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise BadRequestError(f"{name} must be an integer, not {value[:40]!r}") from None
    if minimum is not None and number < minimum:
        raise BadRequestError(f"{name} must be at least {minimum}")
    if maximum is not None and number > maximum:
        raise BadRequestError(f"{name} must be at most {maximum}")
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
