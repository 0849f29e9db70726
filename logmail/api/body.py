"""JSON request bodies: parsed, checked field by field, and described for OpenAPI from one definition.

A handler declares its body as a :class:`Body` of named fields and calls :meth:`Body.parse`; every
problem becomes a 400 (or 413) with a message that names the field. The same declaration renders
the request's JSON Schema (:meth:`Body.schema`), so the document and the check cannot drift apart.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from sanic import Request

from logmail.errors import BadRequestError, PayloadTooLargeError

MAX_INT = 2**63 - 1  # what a database integer column holds
MAX_JSON_BODY = 64 * 1024  # every JSON body logmail takes is a handful of short fields
_MAX_DEPTH_ERRORS = (RecursionError,)


@dataclass(frozen=True)
class Str:
    min_length: int = 0
    max_length: int = 1000
    description: str = ""
    fmt: str | None = None

    def check(self, name: str, value: Any) -> str:
        if not isinstance(value, str):
            raise BadRequestError(f"{name} must be a string")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate escaped in the JSON ("\ud800"): not text
            raise BadRequestError(f"{name} must be valid Unicode text") from None
        if len(value) < self.min_length:
            raise BadRequestError(f"{name} must be at least {self.min_length} characters long"
                                  if self.min_length > 1 else f"{name} must not be empty")
        if len(value) > self.max_length:
            raise BadRequestError(f"{name} must be at most {self.max_length} characters long")
        if self.fmt == "uuid" and not _UUID.match(value):
            raise BadRequestError(f"{name} must be a UUID")
        return value

    def schema(self) -> dict:
        out: dict[str, Any] = {"type": "string", "minLength": self.min_length, "maxLength": self.max_length}
        if self.fmt:
            out["format"] = self.fmt
        return out


@dataclass(frozen=True)
class Bool:
    description: str = ""

    def check(self, name: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise BadRequestError(f"{name} must be true or false")
        return value

    def schema(self) -> dict:
        return {"type": "boolean"}


@dataclass(frozen=True)
class Int:
    minimum: int | None = None
    description: str = ""
    nullable: bool = False
    maximum: int = MAX_INT

    def check(self, name: str, value: Any) -> int | None:
        if value is None and self.nullable:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            raise BadRequestError(f"{name} must be an integer")
        if self.minimum is not None and value < self.minimum:
            raise BadRequestError(f"{name} must be at least {self.minimum}")
        if value > self.maximum:
            raise BadRequestError(f"{name} must be at most {self.maximum}")
        return value

    def schema(self) -> dict:
        out: dict[str, Any] = {"type": ["integer", "null"] if self.nullable else "integer", "maximum": self.maximum}
        if self.minimum is not None:
            out["minimum"] = self.minimum
        return out


@dataclass(frozen=True)
class Choice:
    choices: tuple[str, ...]
    description: str = ""

    def check(self, name: str, value: Any) -> str:
        if value not in self.choices or not isinstance(value, str):
            raise BadRequestError(f"{name} must be one of {', '.join(self.choices)}")
        return value

    def schema(self) -> dict:
        return {"type": "string", "enum": list(self.choices)}


@dataclass(frozen=True)
class ChoiceList:
    choices: tuple[str, ...]
    description: str = ""

    def check(self, name: str, value: Any) -> list[str]:
        if (not isinstance(value, list) or not value
                or not all(isinstance(v, str) and v in self.choices for v in value)):
            raise BadRequestError(f"{name} must be a non-empty list of {', '.join(self.choices)}")
        return list(dict.fromkeys(value))

    def schema(self) -> dict:
        return {"type": "array", "minItems": 1, "items": {"type": "string", "enum": list(self.choices)}}


_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


@dataclass(frozen=True)
class Body:
    """A JSON object body: ``required`` and ``optional`` fields by name; anything else is refused."""

    required: dict[str, Any] = field(default_factory=dict)
    optional: dict[str, Any] = field(default_factory=dict)

    def parse(self, request: Request, *, allow_empty: bool = False) -> dict[str, Any]:
        """The checked fields (optional ones only when given). ``allow_empty``: no body at all is ``{}``."""
        if not (request.body or b"").strip() and allow_empty:
            return self.check({})
        return self.check(json_object(request))

    def check(self, data: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(data) - set(self.required) - set(self.optional))
        if unknown:
            raise BadRequestError(f"unknown field{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}")
        missing = [name for name in self.required if name not in data]
        if missing:
            raise BadRequestError(f"missing required field{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
        out = {}
        for name, spec in {**self.required, **self.optional}.items():
            if name in data:
                out[name] = spec.check(name, data[name])
        return out

    def schema(self) -> dict:
        props = {}
        for name, spec in {**self.required, **self.optional}.items():
            props[name] = spec.schema()
            if spec.description:
                props[name]["description"] = spec.description
        out: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
        if self.required:
            out["required"] = list(self.required)
        return out


def json_object(request: Request) -> dict[str, Any]:
    """The request's body as a JSON object, unchecked: size, Content-Type and syntax are 400/413s."""
    raw = request.body or b""
    if len(raw) > MAX_JSON_BODY:
        raise PayloadTooLargeError(f"a JSON request body may be at most {MAX_JSON_BODY} bytes")
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype != "application/json":
        raise BadRequestError("Content-Type must be application/json")
    data = parse_json(raw)
    if not isinstance(data, dict):
        raise BadRequestError("request body must be a JSON object")
    return data


def parse_json(raw: bytes) -> Any:
    def refuse_constant(name: str) -> Any:
        raise ValueError(name)

    try:
        # NaN and Infinity are not JSON, whatever Python's json module accepts by default.
        return json.loads(raw.decode("utf-8"), parse_constant=refuse_constant)
    except (ValueError, UnicodeDecodeError, *_MAX_DEPTH_ERRORS):
        raise BadRequestError("request body is not valid JSON") from None
