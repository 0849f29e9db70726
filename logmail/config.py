"""One typed settings model for the whole of logmail.

Settings come, in rising order of precedence, from the defaults below, a ``logmail.toml`` file and
``LOGMAIL_<SECTION>__<KEY>`` environment variables (``LOGMAIL_<KEY>`` for top-level keys). Every
field carries its help text here, and ``logmail.toml.example`` documents every key; a test keeps the
two in step.

The file is searched for in this order: ``--config PATH``, ``$LOGMAIL_CONFIG``, ``./logmail.toml``,
the user's config directory (``$XDG_CONFIG_HOME/logmail/logmail.toml``) and
``/etc/logmail/logmail.toml``. Nothing here is read at import time.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

from logmail.errors import ConfigError

MiB = 1024 * 1024


def setting(default: Any, help: str, **kw: Any) -> Any:
    """A settings field with its help text kept beside its default."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


def section(cls: type) -> Any:
    return field(default_factory=cls)


def _default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "logmail")


@dataclass
class SmtpSettings:
    host: str = setting("127.0.0.1", "Address the SMTP listener binds to.")
    port: int = setting(1025, "Port of the SMTP listener (1025 is where Mailpit/MailHog users point their apps).")
    enabled: bool = setting(True, "Run the SMTP listener in `logmail daemon`.")
    hostname: str = setting("logmail", "Name the listener announces in its greeting and EHLO reply.")
    max_message_size: int = setting(25 * MiB, "Largest message accepted, in bytes (announced with SIZE; larger gets 552).")
    max_recipients: int = setting(100, "Most recipients accepted per message (more get 452).")
    tls_cert: str = setting("", "PEM certificate file; with tls_key, enables STARTTLS. Empty: STARTTLS off.")
    tls_key: str = setting("", "PEM private key file for STARTTLS.")
    require_tls: bool = setting(False, "Refuse mail until the client has issued STARTTLS.")
    auth_username: str = setting("", "With auth_password, require SMTP AUTH (PLAIN/LOGIN) with these credentials. Empty: AUTH off.")
    auth_password: str = setting("", "Password for SMTP AUTH; never logged.", secret=True)
    timeout: int = setting(300, "Seconds an idle SMTP connection is kept open.")


@dataclass
class ApiSettings:
    host: str = setting("127.0.0.1", "Address the REST API binds to.")
    port: int = setting(8025, "Port of the REST API.")
    enabled: bool = setting(True, "Run the REST API in `logmail daemon`.")
    max_body_size: int = setting(30 * MiB, "Largest request body accepted, in bytes (larger gets 413).")
    request_timeout: int = setting(60, "Seconds a request may take before it is answered with 503.")
    cors_origins: list[str] = setting([], "Browser origins allowed to call the API from their pages (CORS), e.g. "
                                          "[\"https://app.example.com\"]; from the environment, comma-separated. "
                                          "Empty: no CORS headers at all.")


@dataclass
class AuthSettings:
    open_registration: bool = setting(False, "Let anyone create an account and a new organisation with "
                                             "POST /auth/register. Off: only admins (POST /users) create users.")
    jwt_secret: str = setting("", "Key that signs access tokens (HS256), at least 32 characters. Empty: a random "
                                  "key is made on first start in `<data_dir>/jwt.key`; daemons on several "
                                  "machines must then share one key set here.", secret=True)
    access_token_lifetime_minutes: int = setting(15, "Minutes an access token (JWT) is valid.")
    refresh_token_lifetime_days: int = setting(30, "Days a refresh token is valid; each refresh issues a new one.")
    session_absolute_limit_days: int = setting(90, "Days after login when a session ends however often it is "
                                                   "refreshed: rotation never extends it.")
    session_idle_limit_days: int = setting(30, "Days without a refresh after which a session ends.")
    refresh_reuse_leeway_seconds: int = setting(5, "Seconds in which the refresh token just replaced is still "
                                                   "accepted (two browser tabs refreshing at once); any other "
                                                   "reuse ends the session.")
    login_attempts_per_account: int = setting(5, "Login attempts allowed per account in login_attempt_window_minutes.")
    login_attempts_per_address: int = setting(20, "Login attempts allowed per client address in "
                                                  "login_attempt_window_minutes.")
    login_attempt_window_minutes: int = setting(15, "Sliding window of the login attempt limits, in minutes.")
    rate_limit_per_minute: int = setting(50, "Requests per minute allowed per user or API token (and per client "
                                             "address on the unauthenticated /auth endpoints); 0 turns it off.")
    password_min_length: int = setting(10, "Shortest password accepted for a new user.")
    trust_headers: bool = setting(False, "Take the caller from the X-Tenant-ID and X-User-ID headers (set by a "
                                         "trusted gateway) when a request has no bearer token. Refused unless the "
                                         "API listens on loopback only or behind_tls_proxy is true.")
    behind_tls_proxy: bool = setting(False, "The API is reached only through a reverse proxy that terminates TLS: "
                                            "trust its X-Forwarded-Proto and X-Forwarded-For headers.")


@dataclass
class DatabaseSettings:
    url: str = setting("", "SQLAlchemy URL of the metadata database. Empty: SQLite file `logmail.db` in data_dir. "
                           "Production: mysql+pymysql://user:pass@host/db?charset=utf8mb4")
    pool_size: int = setting(10, "Connections kept open per process (MySQL).")
    pool_recycle: int = setting(1800, "Seconds after which a pooled connection is replaced (MySQL).")
    sqlite_synchronous: Literal["full", "normal"] = setting(
        "full", "SQLite durability: `full` survives power loss, `normal` survives a crashed process only.")


@dataclass
class ContentSettings:
    url: str = setting("", "Where raw messages, bodies and attachments live. Empty: compressed blobs in "
                           "`content.db` inside data_dir. Production: mongodb://host/db")
    compression_level: int = setting(3, "zstd level (1-19) for stored content; 0 stores it uncompressed.")
    gridfs_threshold: int = setting(8 * MiB, "MongoDB only: blobs larger than this (after compression) go to "
                                             "GridFS instead of a document (documents are capped at 16 MB).")


@dataclass
class QueueSettings:
    url: str = setting("", "The work queue. Empty: a durable outbox table in the SQL database. "
                           "Production: amqp://user:pass@host/vhost")
    batch_size: int = setting(100, "Jobs a consumer claims at once.")
    lease_seconds: int = setting(120, "How long a claimed job stays invisible to other consumers before it is redelivered.")
    max_attempts: int = setting(5, "Failed attempts before a job is dead-lettered.")
    retry_base_delay: float = setting(2.0, "Seconds before the first retry of a failed job; doubles per attempt.")
    poll_interval: float = setting(0.2, "Seconds an idle consumer waits before it looks for work again.")
    prefix: str = setting("logmail", "RabbitMQ only: prefix of queue and exchange names, so several "
                                     "installations can share a vhost.")
    prefetch: int = setting(200, "RabbitMQ only: unacknowledged messages a consumer may hold.")


@dataclass
class CacheSettings:
    url: str = setting("", "Shared cache for rate limits, counters, locks and cached decisions. Empty: "
                           "in-process memory (one daemon). Production: redis://host:6379/0")
    prefix: str = setting("logmail:", "Prefix of every key logmail writes, so installations can share a Redis.")
    retry_interval: float = setting(5.0, "Seconds between attempts to reach Redis again after it failed; "
                                         "meanwhile logmail falls back to memory and the database.")


@dataclass
class RetentionSettings:
    max_age_days: int = setting(0, "Delete messages received more than this many days ago, content included "
                                   "(0: no installation-wide limit). A tier's retentionDays, if shorter, "
                                   "applies to its organisations.")
    interval: int = setting(3600, "Seconds between retention runs (the `scheduler` role runs them).")
    batch_size: int = setting(500, "Messages deleted per transaction, so a large purge never holds long locks.")


@dataclass
class LmtpSettings:
    enabled: bool = setting(False, "Run the LMTP listener in `logmail daemon` (for Postfix's `lmtp` transport).")
    host: str = setting("127.0.0.1", "Address the LMTP listener binds to.")
    port: int = setting(2424, "Port of the LMTP listener.")


@dataclass
class PolicySettings:
    enabled: bool = setting(False, "Run the Postfix policy delegation service in `logmail daemon` "
                                   "(for `check_policy_service` in Postfix's smtpd_recipient_restrictions).")
    host: str = setting("127.0.0.1", "Address the policy service binds to.")
    port: int = setting(10040, "Port of the policy service.")
    cache_seconds: float = setting(5.0, "Seconds a recipient's address and its organisation's limits are "
                                        "remembered between checks (0 looks them up every time).")


@dataclass
class PlatformSettings:
    domains: list[str] = setting([], "Platform mode: shared mail domains where any organisation may claim exact "
                                     "addresses, first come first served (e.g. [\"in.example.com\"]). Catch-alls "
                                     "are only for domains a platform admin assigns to one organisation.")
    default_tier: str = setting("free", "Platform mode: the tier a newly registered organisation starts on.")


@dataclass
class AccountsSettings:
    encryption_keys: list[str] = setting([], "Keys (base64, 32 bytes each) that encrypt stored mailbox passwords; the "
                                             "first encrypts, every one decrypts. Empty: a key file "
                                             "`credentials.keys` (0600) in data_dir, made on first start. Several "
                                             "daemons need the same keys.", secret=True)
    min_sync_interval: int = setting(60, "Shortest syncInterval (seconds) an account may ask for.")
    timeout: float = setting(30.0, "Seconds allowed to connect to a mailbox server and for each reply.")
    dispatch_interval: float = setting(5.0, "Seconds between looks for accounts that are due a sync (the "
                                            "`scheduler` role).")
    max_parallel_syncs: int = setting(4, "Accounts one daemon syncs at the same time.")
    rate_limit_per_minute: int = setting(50, "Requests a minute each user may make to /api/accounts (0: no limit).")


@dataclass
class OutboundSettings:
    smtp_host: str = setting("", "Primary SMTP server for the mail logmail sends (notifications, alerts). Empty: "
                                 "nothing is sent; notifications stay in the app. Env also SMTP_HOST.")
    smtp_port: int = setting(587, "Port of the primary server. Env also SMTP_PORT.")
    smtp_user: str = setting("", "User name for SMTP AUTH on both servers (empty: no AUTH). Env also SMTP_USER.")
    smtp_password: str = setting("", "Password for SMTP AUTH; never logged. Env also SMTP_PASSWORD.", secret=True)
    smtp_use_tls: bool = setting(True, "STARTTLS before sending (implicit TLS on port 465). Env also SMTP_USE_TLS.")
    smtp_backup_host: str = setting("", "Backup server, tried when the primary cannot be reached, times out or "
                                        "answers 4xx (empty: none). Env also SMTP_BACKUP_HOST.")
    smtp_backup_port: int = setting(587, "Port of the backup server. Env also SMTP_BACKUP_PORT.")
    from_email: str = setting("logmail@localhost", "Sender address of logmail's mail. Env also SMTP_FROM_EMAIL.")
    from_name: str = setting("logmail", "Sender name of logmail's mail. Env also SMTP_FROM_NAME.")
    timeout: float = setting(30.0, "Seconds allowed to connect to a server and for each reply.")
    retry_base_delay: int = setting(60, "Seconds before the first retry; doubles per attempt (60, 120, 240, 480, "
                                        "960). Env also EMAIL_RETRY_BASE_DELAY.")
    max_attempts: int = setting(5, "Attempts before a mail is given up as failed. Env also EMAIL_MAX_ATTEMPTS.")
    expiry_hours: int = setting(48, "Hours after which unsent mail expires. Env also EMAIL_EXPIRY_HOURS.")
    interval: int = setting(60, "Seconds between runs of the outbound retry job (the `scheduler` role).")


@dataclass
class WebhookSettings:
    allow_private: bool = setting(False, "Allow webhook URLs that resolve to private, loopback or link-local "
                                         "addresses (off: such targets are refused, against SSRF).")
    timeout: float = setting(10.0, "Seconds a webhook endpoint has to answer.")
    history_days: int = setting(10, "Days delivery history is kept.")
    interval: float = setting(5.0, "Seconds between looks for webhook deliveries that are due.")


@dataclass
class HealthSettings:
    interval: int = setting(60, "Seconds between health samples of every configured service.")
    history_days: int = setting(7, "Days of health history kept.")


@dataclass
class BillingSettings:
    stripe_secret_key: str = setting("", "Stripe secret API key (sk_live_... or sk_test_...). Empty: billing is "
                                         "off and every /billing endpoint answers 503; the rest of logmail works "
                                         "as before. Env also STRIPE_SECRET_KEY.", secret=True)
    stripe_webhook_secret: str = setting("", "Signing secret of the Stripe webhook endpoint (whsec_...) that "
                                             "POST /billing/webhook checks every Stripe-Signature with. Empty: "
                                             "the webhook answers 503. Env also STRIPE_WEBHOOK_SECRET.", secret=True)
    stripe_price_id: str = setting("", "Stripe price (price_...) of a tier that has no priceId of its own. "
                                       "Env also STRIPE_PRICE_ID.")
    success_url: str = setting("", "Where Stripe Checkout sends the buyer after paying (may contain "
                                   "{CHECKOUT_SESSION_ID}); a checkout request may name its own successUrl instead.")
    cancel_url: str = setting("", "Where Stripe Checkout sends the buyer who turns back; a checkout request may "
                                  "name its own cancelUrl instead.")
    free_tier: str = setting("free", "The tier an organisation returns to when its subscription ends (at the end "
                                     "of the period it paid for).")
    api_base: str = setting("", "Base URL of Stripe's API. Empty: Stripe's own (https://api.stripe.com); tests "
                                "point it at a local stand-in.")
    webhook_tolerance_seconds: int = setting(300, "Age in seconds of the oldest Stripe-Signature timestamp "
                                                  "accepted; older is refused as a replay (0: any age).")
    interval: int = setting(300, "Seconds between looks for organisations whose paid period has ended and who go "
                                 "back to free_tier (the `scheduler` role).")


@dataclass
class IngestSettings:
    workers: int = setting(1, "Ingest consumer processes `logmail daemon` starts beside the API and listeners "
                              "(0 runs the consumer in the daemon's own process).")


@dataclass
class Settings:
    data_dir: str = setting(_default_data_dir(), "Directory for the SQLite database, content, keys and owner.token.")
    mode: Literal["local", "platform"] = setting(
        "local", "`local`: every address is caught into the built-in organisation, on an unlimited tier. "
                 "`platform`: organisations own addresses, tiers set limits, and unknown recipients are refused.")
    log_level: Literal["debug", "info", "warning", "error"] = setting("info", "Logging threshold.")
    smtp: SmtpSettings = section(SmtpSettings)
    api: ApiSettings = section(ApiSettings)
    auth: AuthSettings = section(AuthSettings)
    database: DatabaseSettings = section(DatabaseSettings)
    content: ContentSettings = section(ContentSettings)
    queue: QueueSettings = section(QueueSettings)
    cache: CacheSettings = section(CacheSettings)
    ingest: IngestSettings = section(IngestSettings)
    retention: RetentionSettings = section(RetentionSettings)
    lmtp: LmtpSettings = section(LmtpSettings)
    policy: PolicySettings = section(PolicySettings)
    platform: PlatformSettings = section(PlatformSettings)
    accounts: AccountsSettings = section(AccountsSettings)
    outbound: OutboundSettings = section(OutboundSettings)
    webhooks: WebhookSettings = section(WebhookSettings)
    health: HealthSettings = section(HealthSettings)
    billing: BillingSettings = section(BillingSettings)

    source: str = field(default="", metadata={"internal": True})

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser()

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.data_path / 'logmail.db'}"

    @property
    def content_url(self) -> str:
        return self.content.url or f"sqlite:///{self.data_path / 'content.db'}"


SECTIONS: dict[str, type] = {
    f.name: f.default_factory  # type: ignore[misc]
    for f in dataclasses.fields(Settings)
    if f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(f.default_factory)
}


def iter_keys() -> list[tuple[str, str, dataclasses.Field]]:
    """Every public setting as (section or "", key, field), in declaration order."""
    out = []
    for f in dataclasses.fields(Settings):
        if f.metadata.get("internal"):
            continue
        if f.name in SECTIONS:
            out.extend((f.name, sf.name, sf) for sf in dataclasses.fields(SECTIONS[f.name]))
        else:
            out.append(("", f.name, f))
    return out


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    origin = get_origin(annotation)
    if origin is Literal:
        choices = get_args(annotation)
        if value not in choices:
            raise ConfigError(f"{where} must be one of {', '.join(map(str, choices))}, not {value!r}")
        return value
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
            return value.lower() in {"1", "true", "yes", "on"}
        raise ConfigError(f"{where} must be true or false, not {value!r}")
    if annotation in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{where} must be a number, not {value!r}")
        try:
            return annotation(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be a number, not {value!r}") from None
    if annotation is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where} must be a string, not {value!r}")
        return str(value)
    if origin is list and get_args(annotation) == (str,):
        if isinstance(value, str):  # from the environment: comma-separated
            return [item.strip() for item in value.split(",") if item.strip()]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ConfigError(f"{where} must be a list of strings, not {value!r}")
        return list(value)
    return value


def _apply(target: Any, values: dict[str, Any], prefix: str) -> None:
    hints = get_type_hints(type(target))
    names = {f.name for f in dataclasses.fields(target) if not f.metadata.get("internal")}
    for key, value in values.items():
        where = f"{prefix}{key}"
        if key not in names:
            raise ConfigError(f"unknown setting {where!r}")
        if key in SECTIONS and target is not None and isinstance(target, Settings):
            if not isinstance(value, dict):
                raise ConfigError(f"[{key}] must be a table")
            _apply(getattr(target, key), value, f"{key}.")
        else:
            setattr(target, key, _coerce(value, hints[key], where))


def find_config_file(explicit: str | os.PathLike | None = None) -> Path | None:
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        return path
    env = os.environ.get("LOGMAIL_CONFIG")
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise ConfigError(f"$LOGMAIL_CONFIG names {path}, which does not exist")
        return path
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    for candidate in (Path("logmail.toml"), Path(xdg) / "logmail" / "logmail.toml", Path("/etc/logmail/logmail.toml")):
        if candidate.is_file():
            return candidate
    return None


# Some settings also answer to the names deployments of the seed (and Stripe's documentation) already
# use: alias → (section, key). A LOGMAIL_<SECTION>__<KEY> variable wins over its alias.
ENV_ALIASES: dict[str, tuple[str, str]] = {
    **{alias: ("outbound", key) for alias, key in {
        "SMTP_HOST": "smtp_host", "SMTP_PORT": "smtp_port", "SMTP_USER": "smtp_user",
        "SMTP_PASSWORD": "smtp_password", "SMTP_USE_TLS": "smtp_use_tls", "SMTP_FROM_EMAIL": "from_email",
        "SMTP_FROM_NAME": "from_name", "SMTP_BACKUP_HOST": "smtp_backup_host", "SMTP_BACKUP_PORT": "smtp_backup_port",
        "EMAIL_RETRY_BASE_DELAY": "retry_base_delay", "EMAIL_MAX_ATTEMPTS": "max_attempts",
        "EMAIL_EXPIRY_HOURS": "expiry_hours",
    }.items()},
    "STRIPE_SECRET_KEY": ("billing", "stripe_secret_key"),
    "STRIPE_WEBHOOK_SECRET": ("billing", "stripe_webhook_secret"),
    "STRIPE_PRICE_ID": ("billing", "stripe_price_id"),
}


def env_overrides(environ: dict[str, str] | os._Environ) -> dict[str, Any]:
    """``LOGMAIL_SMTP__PORT=2525`` → ``{"smtp": {"port": "2525"}}``; ``LOGMAIL_MODE`` → ``{"mode": ...}``;
    ``SMTP_HOST`` (and the other :data:`ENV_ALIASES`) → ``{"outbound": {"smtp_host": ...}}``."""
    out: dict[str, Any] = {}
    for alias, (sect, key) in ENV_ALIASES.items():
        if alias in environ:
            out.setdefault(sect, {})[key] = environ[alias]
    known = {(s, k) for s, k, _ in iter_keys()}
    for name, value in environ.items():
        if not name.startswith("LOGMAIL_") or name == "LOGMAIL_CONFIG":
            continue
        rest = name[len("LOGMAIL_"):].lower()
        sect, _, key = rest.partition("__") if "__" in rest else ("", "", rest)
        if (sect, key) not in known:
            continue  # other tools' LOGMAIL_* variables are not ours to refuse
        if sect:
            out.setdefault(sect, {})[key] = value
        else:
            out[key] = value
    return out


def load_settings(path: str | os.PathLike | None = None, *, environ: dict[str, str] | None = None,
                  overrides: dict[str, Any] | None = None) -> Settings:
    """Build the settings from defaults, the config file, the environment and explicit overrides."""
    settings = Settings()
    file = find_config_file(path)
    if file is not None:
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read {file}: {exc}") from None
        _apply(settings, data, "")
        settings.source = str(file)
    _apply(settings, env_overrides(os.environ if environ is None else environ), "")
    if overrides:
        _apply(settings, overrides, "")
    return settings


def settings_from_dict(data: dict[str, Any]) -> Settings:
    """Settings from plain data alone (defaults underneath), as ``as_dict`` produced it."""
    settings = Settings()
    _apply(settings, data, "")
    return settings


def as_dict(settings: Settings, *, reveal_secrets: bool = False) -> dict[str, Any]:
    """The settings as nested plain data; secrets masked unless asked for."""
    out: dict[str, Any] = {}
    for sect, key, f in iter_keys():
        value = getattr(getattr(settings, sect), key) if sect else getattr(settings, key)
        if f.metadata.get("secret") and value and not reveal_secrets:
            value = "********"
        if key in ("url",) and isinstance(value, str) and "@" in value and not reveal_secrets:
            value = _mask_url_password(value)
        (out.setdefault(sect, {}) if sect else out)[key] = value
    return out


def _mask_url_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in creds:
        return url
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:********@{host}"
