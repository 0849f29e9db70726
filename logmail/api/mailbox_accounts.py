"""``/api/accounts``: the caller's external IMAP/POP3 mailboxes (the contract of the accounts API seed).

Every call is the caller's own: another user's or another tenant's account is a 403. Bodies are
strict JSON (``Content-Type: application/json``; unknown fields, wrong types and bad UUIDs are 400s).
"""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import json

from logmail.api.body import json_object
from logmail.api.params import page, page_args, uuid_param
from logmail.api.util import blocking, require
from logmail.services.principal import Principal

bp = Blueprint("mailbox_accounts")


async def _caller(request: Request) -> Principal:
    who = require(request, "read")
    await blocking(request.app.ctx.services.accounts.limit, who)
    return who


@bp.get("/api/accounts")
async def list_accounts(request: Request):
    who = await _caller(request)
    limit, offset = page_args(request)
    items, total = await blocking(request.app.ctx.services.accounts.list, who, limit=limit, offset=offset)
    return json(page("accounts", items, total, limit, offset))


@bp.post("/api/accounts")
async def create_account(request: Request):
    who = await _caller(request)
    body = json_object(request)
    return json(await blocking(request.app.ctx.services.accounts.create, who, body), status=201)


@bp.get("/api/accounts/<account_id:str>")
async def get_account(request: Request, account_id: str):
    who = await _caller(request)
    return json(await blocking(request.app.ctx.services.accounts.get, who, uuid_param(account_id, "account id")))


@bp.put("/api/accounts/<account_id:str>")
async def update_account(request: Request, account_id: str):
    who = await _caller(request)
    account_id = uuid_param(account_id, "account id")
    body = json_object(request)
    return json(await blocking(request.app.ctx.services.accounts.update, who, account_id, body))


@bp.delete("/api/accounts/<account_id:str>")
async def delete_account(request: Request, account_id: str):
    who = await _caller(request)
    account_id = uuid_param(account_id, "account id")
    await blocking(request.app.ctx.services.accounts.delete, who, account_id)
    return json({"message": "Account deleted successfully", "id": account_id})


@bp.post("/api/accounts/<account_id:str>/sync")
async def sync_account(request: Request, account_id: str):
    who = await _caller(request)
    account = await blocking(request.app.ctx.services.accounts.request_sync, who, uuid_param(account_id, "account id"))
    return json({"message": "Sync requested; it starts within a few seconds", "account": account}, status=202)


@bp.post("/api/accounts/<account_id:str>/test")
async def test_account(request: Request, account_id: str):
    who = await _caller(request)
    return json(await blocking(request.app.ctx.services.accounts.test_login, who, uuid_param(account_id, "account id")))
