"""The console's HTTP client: the only module of the TUI that speaks to logmail.

It talks to the public REST API exactly like any other frontend, so the console works against a
remote installation as well as a local daemon. Every failure becomes an :class:`ApiError` (a
daemon that cannot be reached is :class:`ApiUnavailable`), so screens have one thing to catch.

Signed-in users get a short-lived access token and a rotating refresh token; the client refreshes
silently on a 401 and keeps the newest refresh token in a 0600 file in the user's config
directory, so the next start needs no password.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator
from urllib.parse import quote, urlsplit

import httpx

DEFAULT_URL = "http://127.0.0.1:8025"
USER_AGENT = "logmail-tui"
MAX_RATE_LIMIT_WAIT = 5.0  # seconds a rate-limited read waits before it is shown as an error


class ApiError(Exception):
    """The API said no (``status`` and its ``error``/``message``), or could not be asked (status 0)."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(f"{error}: {message}")
        self.status = status
        self.error = error
        self.message = message


class ApiUnavailable(ApiError):
    """The daemon did not answer: refused, reset, timed out, or a reply that is not logmail's."""

    def __init__(self, message: str) -> None:
        super().__init__(0, "Unavailable", message)


class AuthRequired(ApiError):
    """No valid credentials: the token was refused and no refresh token could replace it."""


@dataclass(frozen=True)
class ServerEvent:
    """One server-sent event from ``GET /events``."""

    type: str
    data: Any
    id: str | None = None


def config_dir(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "logmail"


class RefreshTokenStore:
    """The refresh tokens the console keeps, one per installation URL, in a file only its user reads.

    Several consoles of one person share it. Refresh tokens rotate and presenting a spent one ends
    the whole session (that is how theft is noticed), so a console refreshes only under the
    store's lock and with the newest token in the file, which another console may have rotated.
    """

    LOCK_WAIT = 15.0

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def load(self, url: str) -> str | None:
        token = self._read().get(url)
        return token if isinstance(token, str) and token else None

    def save(self, url: str, token: str | None, *, only_if: str | None = None) -> None:
        """Keep ``token`` for ``url`` (None forgets it); with ``only_if``, only while the file still
        holds that token, so a console never forgets a token another console has just stored."""
        data = self._read()
        if only_if is not None and data.get(url) not in (None, only_if):
            return
        if token:
            data[url] = token
        else:
            data.pop(url, None)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Written to a private temporary file first, so the token is never readable by others,
        # not even for a moment, and a crash never leaves half a file.
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(data, fh)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    @contextlib.asynccontextmanager
    async def locked(self) -> AsyncIterator[None]:
        """Hold the store's lock (another console's refresh takes well under a second)."""
        fd = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            pass  # no lock to be had (read-only home): refresh anyway, as a single console would
        try:
            if fd is not None:
                deadline = time.monotonic() + self.LOCK_WAIT
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() > deadline:
                            break  # a console stuck while holding it must not lock out the others
                        await asyncio.sleep(0.02)
            yield
        finally:
            if fd is not None:
                os.close(fd)  # closing releases the lock


class LogmailClient:
    """An async client of one logmail installation."""

    def __init__(self, url: str = DEFAULT_URL, *, token: str | None = None,
                 refresh_store: RefreshTokenStore | None = None, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        parts = urlsplit(self.url)
        try:
            parts.port  # noqa: B018 -- raises for a port that is not a number
        except ValueError:
            raise ValueError(f"not a port number in {url!r}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.token = token
        self.refresh_store = refresh_store
        self.refresh_token = refresh_store.load(self.url) if refresh_store and not token else None
        self.timeout = timeout
        self.user: dict[str, Any] | None = None
        self._http = httpx.AsyncClient(base_url=self.url, timeout=timeout,
                                       headers={"User-Agent": USER_AGENT, "Accept": "application/json"})
        self._refreshing = asyncio.Lock()

    # -- sessions --------------------------------------------------------------------------------

    @property
    def has_credentials(self) -> bool:
        return bool(self.token or self.refresh_token)

    async def login(self, email: str, password: str) -> dict[str, Any]:
        body = await self._send("POST", "/auth/login", json={"email": email, "password": password,
                                                              "refreshTokenInBody": True}, auth=False)
        self._take_tokens(body)
        self.user = body.get("user")
        return body

    async def logout(self) -> None:
        try:
            if self.token:
                await self._send("POST", "/auth/logout")
        finally:
            self.token = None
            self._keep_refresh_token(None, only_if=self.refresh_token)

    async def refresh(self) -> bool:
        """Swap the refresh token for a new pair; False when there is none or it was refused.

        A refusal (400/401/403) forgets the token; a server that cannot answer right now (5xx,
        429, unreachable) raises, and the token is kept for the next try.
        """
        presented = self.refresh_token
        async with self._refreshing:
            if self.refresh_token != presented:  # another request refreshed while this one waited
                return self.refresh_token is not None
            store = self.refresh_store
            async with (store.locked() if store is not None else contextlib.nullcontext()):
                # Another console of this person may have rotated the token: present the newest.
                token = (store.load(self.url) if store is not None else None) or self.refresh_token
                if not token:
                    return False
                try:
                    body = await self._send("POST", "/auth/refresh", json={"refreshToken": token}, auth=False)
                except ApiError as exc:
                    if isinstance(exc, ApiUnavailable) or exc.status not in (400, 401, 403):
                        raise
                    self.token = None
                    self._keep_refresh_token(None, only_if=token)
                    return False
                self._take_tokens(body)
                return True

    def _take_tokens(self, body: dict[str, Any]) -> None:
        self.token = body.get("accessToken")
        self._keep_refresh_token(body.get("refreshToken"))

    def _keep_refresh_token(self, token: str | None, *, only_if: str | None = None) -> None:
        self.refresh_token = token
        if self.refresh_store is not None:
            try:
                self.refresh_store.save(self.url, token, only_if=only_if)
            except OSError:
                pass  # the session still works; the next start just asks for the password

    # -- requests --------------------------------------------------------------------------------

    async def _send(self, method: str, path: str, *, auth: bool = True, raw: bool = False,
                    accept: tuple[int, ...] = (), **kwargs: Any) -> Any:
        """The answer's JSON (or bytes with ``raw``); a status >= 400 raises unless ``accept`` names it."""
        if auth and not self.token and self.refresh_token:
            await self.refresh()
        response = await self._request(method, path, auth=auth, **kwargs)
        if response.status_code == 401 and auth and self.refresh_token:
            if await self.refresh():
                response = await self._request(method, path, auth=auth, **kwargs)
        if response.status_code >= 400 and response.status_code not in accept:
            raise _error_of(response)
        if raw:
            return response.content
        return _json_of(response)

    async def _request(self, method: str, path: str, *, auth: bool, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        if auth and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        for attempt in (1, 2):
            try:
                response = await self._http.request(method, path, headers=headers, **kwargs)
            except httpx.TimeoutException:
                raise ApiUnavailable(f"{self.url} did not answer within {self.timeout:g} s") from None
            except httpx.HTTPError as exc:
                raise ApiUnavailable(f"cannot reach {self.url}: {_reason(exc)}") from None
            # Over the per-user request limit (auth.rate_limit_per_minute): a read that may go
            # again within a few seconds waits for it once, rather than showing an error.
            wait = _retry_after(response) if response.status_code == 429 and method == "GET" else None
            if attempt == 2 or wait is None or wait > MAX_RATE_LIMIT_WAIT:
                return response
            await asyncio.sleep(wait)
        return response

    async def get(self, path: str, **params: Any) -> Any:
        return await self._send("GET", path, params=_params(params))

    async def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return await self._send("POST", path, json=body if body is not None else {})

    async def patch(self, path: str, body: dict[str, Any]) -> Any:
        return await self._send("PATCH", path, json=body)

    async def delete(self, path: str, **params: Any) -> Any:
        return await self._send("DELETE", path, params=_params(params))

    async def close(self) -> None:
        await self._http.aclose()

    # -- who am I --------------------------------------------------------------------------------

    async def me(self) -> dict[str, Any]:
        return await self.get("/auth/me")

    # -- mail ------------------------------------------------------------------------------------

    async def messages(self, *, q: str | None = None, to: str | None = None, limit: int = 50,
                       cursor: str | None = None) -> dict[str, Any]:
        return await self.get("/messages", q=q, to=to, limit=limit, cursor=cursor)

    async def message(self, message_id: str) -> dict[str, Any]:
        return await self.get(f"/messages/{_seg(message_id)}")

    async def raw(self, message_id: str) -> bytes:
        return await self._send("GET", f"/messages/{_seg(message_id)}/raw", raw=True)

    async def attachment(self, message_id: str, attachment_id: str) -> bytes:
        return await self._send("GET", f"/messages/{_seg(message_id)}/attachments/{_seg(attachment_id)}",
                                raw=True)

    async def delete_message(self, message_id: str) -> dict[str, Any]:
        return await self.delete(f"/messages/{_seg(message_id)}")

    async def mark_read(self, message_id: str, read: bool = True) -> dict[str, Any]:
        return await self.patch(f"/messages/{_seg(message_id)}", {"isRead": read})

    async def addresses(self) -> dict[str, Any]:
        return await self.get("/addresses", limit=200)

    async def events(self, last_event_id: str | None = None) -> AsyncIterator[ServerEvent]:
        """The live stream of ``GET /events``; ends (or raises ApiUnavailable) when the connection does."""
        if not self.token and self.refresh_token:
            await self.refresh()
        headers = {"Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        for attempt in (1, 2):
            if self.token:
                headers["Authorization"] = f"Bearer {self.token}"
            # The server sends a keep-alive every 15 s: a silent minute means the connection is gone.
            timeout = httpx.Timeout(self.timeout, read=60.0)
            try:
                async with self._http.stream("GET", "/events", headers=headers, timeout=timeout) as response:
                    if response.status_code == 401 and attempt == 1 and self.refresh_token:
                        if await self.refresh():
                            continue
                    if response.status_code >= 400:
                        await response.aread()
                        raise _error_of(response)
                    async for event in _parse_sse(response.aiter_lines()):
                        yield event
                    return
            except httpx.TimeoutException:
                raise ApiUnavailable(f"the live stream from {self.url} went silent") from None
            except httpx.HTTPError as exc:
                raise ApiUnavailable(f"cannot reach {self.url}: {_reason(exc)}") from None

    # -- health ----------------------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        """The detailed health report; logmail answers 503 when a core store is down, and that
        answer is still a report (``status: "down"``), not an error."""
        try:
            body = await self._send("GET", "/health/detailed", accept=(503,))
        except ApiUnavailable:
            body = None  # a 503 that is not JSON: a proxy's, not logmail's
        if not isinstance(body, dict) or not isinstance(body.get("services"), list):
            raise ApiUnavailable("503 Service Unavailable from a proxy in front of logmail")
        return body

    async def admin_health(self) -> dict[str, Any]:
        return await self.get("/admin/health")

    async def health_history(self, limit: int = 100, *, service: str | None = None,
                             hours: int | None = None) -> dict[str, Any]:
        return await self.get("/admin/health/history", limit=limit, service=service, hours=hours)

    # -- outbound mail (platform admins) --------------------------------------------------------

    async def outbound(self, status: str | None = None, limit: int = 100) -> dict[str, Any]:
        return await self.get("/admin/emails", status=status, limit=limit)

    async def outbound_detail(self, email_id: str) -> dict[str, Any]:
        return await self.get(f"/admin/emails/{_seg(email_id)}")

    async def outbound_retry(self, email_id: str) -> dict[str, Any]:
        return await self.post(f"/admin/emails/{_seg(email_id)}/retry")

    async def outbound_stats(self) -> dict[str, Any]:
        return await self.get("/admin/emails/stats")

    # -- mailbox accounts ------------------------------------------------------------------------

    async def accounts(self, limit: int = 100) -> dict[str, Any]:
        return await self.get("/api/accounts", limit=limit)

    async def account_sync(self, account_id: str) -> dict[str, Any]:
        return await self.post(f"/api/accounts/{_seg(account_id)}/sync")

    # -- tenants (platform admins) ---------------------------------------------------------------

    async def organisations(self, limit: int = 100, offset: int = 0, search: str | None = None) -> dict[str, Any]:
        return await self.get("/admin/organizations", limit=limit, offset=offset, search=search)

    async def organisation(self, org_id: str) -> dict[str, Any]:
        return await self.get(f"/admin/organizations/{_seg(org_id)}")

    async def set_tier(self, org_id: str, tier: str) -> dict[str, Any]:
        return await self.patch(f"/admin/organizations/{_seg(org_id)}/tier", {"tier": tier})

    async def suspend(self, org_id: str, reason: str | None = None) -> dict[str, Any]:
        return await self.post(f"/admin/organizations/{_seg(org_id)}/suspend",
                               {"reason": reason} if reason else {})

    async def unsuspend(self, org_id: str) -> dict[str, Any]:
        return await self.post(f"/admin/organizations/{_seg(org_id)}/unsuspend")

    async def users(self, org_id: str | None = None, limit: int = 100) -> dict[str, Any]:
        return await self.get("/admin/users", organization=org_id, limit=limit)

    async def tiers(self) -> dict[str, Any]:
        return await self.get("/admin/tiers")

    async def usage(self, org_id: str | None = None) -> dict[str, Any]:
        return await self.get("/usage", org_uuid=org_id)

    async def revoke_user_sessions(self, user_id: str) -> dict[str, Any]:
        return await self.post(f"/admin/sessions/revoke-user/{_seg(user_id)}")

    async def revoke_organisation_sessions(self, org_id: str) -> dict[str, Any]:
        return await self.post(f"/admin/sessions/revoke-organization/{_seg(org_id)}")


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None


def _seg(value: str) -> str:
    """One path segment: ids come from the server, but a stray slash must not reach another route."""
    return quote(str(value), safe="")


def _params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None and v != ""}


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__


def _json_of(response: httpx.Response) -> Any:
    if not response.content:
        return {}
    try:
        return response.json()
    except ValueError:
        raise ApiUnavailable(f"the answer from {response.request.url.path} is not JSON: is this logmail?") from None


def _error_of(response: httpx.Response) -> ApiError:
    error, message = f"HTTP {response.status_code}", response.reason_phrase or "error"
    try:
        body = response.json()
        if isinstance(body, dict):
            error = str(body.get("error") or error)
            message = str(body.get("message") or message)
    except ValueError:
        pass
    if response.status_code == 401:
        return AuthRequired(401, error, message)
    if response.status_code in (502, 503, 504) and error.startswith("HTTP "):
        return ApiUnavailable(f"{response.status_code} {message} from a proxy in front of logmail")
    return ApiError(response.status_code, error, message)


async def _parse_sse(lines: AsyncIterator[str]) -> AsyncIterator[ServerEvent]:
    """The text/event-stream format (WHATWG HTML, "server-sent events"), minus reconnection."""
    event_type, data, event_id = "message", [], None
    async for line in lines:
        if not line:
            if data:
                text = "\n".join(data)
                try:
                    payload: Any = json.loads(text)
                except ValueError:
                    payload = text
                yield ServerEvent(event_type, payload, event_id)
            event_type, data = "message", []
            continue
        if line.startswith(":"):
            continue  # a comment: the server's keep-alive
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "event":
            event_type = value or "message"
        elif name == "data":
            data.append(value)
        elif name == "id" and "\0" not in value:
            event_id = value
