"""The parts of authentication without HTTP: devices, passwords, access tokens, keys and settings."""

from __future__ import annotations

import threading

import jwt
import pytest

from logmail.config import load_settings
from logmail.errors import BadRequestError, ConfigError, UnauthorisedError
from logmail.services.auth import check_settings, is_loopback
from logmail.services.devices import parse_user_agent
from logmail.services.jwt_tokens import AccessTokens, signing_key
from logmail.services.passwords import Passwords
from logmail.services.principal import Principal, scopes_for


@pytest.mark.parametrize("ua, browser, platform", [
    ("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", "Firefox", "Linux"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 "
     "Safari/537.36", "Chrome", "Windows"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 "
     "Safari/537.36 Edg/126.0.2592.87", "Edge", "Windows"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 "
     "Safari/605.1.15", "Safari", "macOS"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.5 Mobile/15E148 Safari/604.1", "Safari", "iOS"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "CriOS/126.0.6478.54 Mobile/15E148 Safari/604.1", "Chrome", "iOS"),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.71 "
     "Mobile Safari/537.36", "Chrome", "Android"),
    ("Mozilla/5.0 (Android 14; Mobile; rv:127.0) Gecko/127.0 Firefox/127.0", "Firefox", "Android"),
    ("curl/8.5.0", "curl", "other"),
    ("python-httpx/0.28.1", "python-httpx", "other"),
    ("Wget/1.21", "other", "other"),
    ("", "other", "other"),
])
def test_device_rules(ua, browser, platform):
    device = parse_user_agent(ua)
    assert (device.browser, device.platform) == (browser, platform)
    assert device.label == f"{browser} on {platform}"


def test_versions_do_not_change_the_device():
    old = parse_user_agent("Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Firefox/115.0")
    new = parse_user_agent("Mozilla/5.0 (X11; Linux x86_64; rv:129.0) Gecko/20100101 Firefox/129.0")
    assert old.fingerprint == new.fingerprint == "firefox/linux"
    assert parse_user_agent("curl/7.1").fingerprint == parse_user_agent("curl/8.9").fingerprint


def test_passwords():
    pw = Passwords(min_length=10)
    digest = pw.hash("correct horse battery")
    assert digest.startswith("$argon2id$") and "correct" not in digest
    assert pw.verify(digest, "correct horse battery")
    assert not pw.verify(digest, "wrong horse battery")
    assert not pw.verify(None, "anything at all")
    assert not pw.verify("not a hash", "anything at all")
    assert not pw.verify(digest, "x" * 5000)
    assert not pw.needs_rehash(digest)
    with pytest.raises(BadRequestError, match="at least 10"):
        pw.check_policy("short")
    with pytest.raises(BadRequestError, match="at most 1024"):
        pw.check_policy("x" * 1025)


def test_access_tokens_round_trip_and_expire_by_the_clock():
    now = [1_700_000_000_000]
    codec = AccessTokens(b"k" * 32, 15, lambda: now[0])
    token, lifetime = codec.issue("user-uuid", "org-uuid", "session-uuid")
    assert lifetime == 900
    claims = jwt.decode(token, b"k" * 32, algorithms=["HS256"], options={"verify_exp": False})
    assert set(claims) == {"sub", "org", "sid", "iat", "exp", "typ", "jti"} and claims["typ"] == "access"
    decoded = codec.decode(token)
    assert (decoded.user_uuid, decoded.organization_uuid, decoded.session_uuid) == ("user-uuid", "org-uuid",
                                                                                    "session-uuid")
    now[0] += 899_000
    codec.decode(token)
    now[0] += 1_000
    with pytest.raises(UnauthorisedError):
        codec.decode(token)
    with pytest.raises(UnauthorisedError):
        AccessTokens(b"j" * 32, 15, lambda: now[0]).decode(codec.issue("u", "o", "s")[0])


def test_short_secrets_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="at least 32"):
        AccessTokens(b"short", 15, lambda: 0)
    assert signing_key("s" * 40, tmp_path) == b"s" * 40
    assert not (tmp_path / "jwt.key").exists()


def test_the_signing_key_is_made_once_even_by_daemons_starting_together(tmp_path):
    keys, barrier = [], threading.Barrier(8)

    def start():
        barrier.wait()
        keys.append(signing_key("", tmp_path))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(keys)) == 1 and len(keys[0]) == 64
    assert (tmp_path / "jwt.key").stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["jwt.key"]  # no temporary files left behind
    assert signing_key("", tmp_path) == keys[0]
    (tmp_path / "jwt.key").write_text("tiny\n")
    with pytest.raises(ConfigError, match="shorter than 32"):
        signing_key("", tmp_path)


def test_cors_origins_from_file_and_environment(tmp_path):
    cfg = tmp_path / "logmail.toml"
    cfg.write_text('[api]\ncors_origins = ["https://a.example", "https://b.example"]\n')
    assert load_settings(cfg, environ={}).api.cors_origins == ["https://a.example", "https://b.example"]
    env = {"LOGMAIL_API__CORS_ORIGINS": "https://a.example, https://c.example,"}
    assert load_settings(cfg, environ=env).api.cors_origins == ["https://a.example", "https://c.example"]
    cfg.write_text("[api]\ncors_origins = [1, 2]\n")
    with pytest.raises(ConfigError, match="api.cors_origins must be a list of strings"):
        load_settings(cfg, environ={})
    assert load_settings(None, environ={}).api.cors_origins == []


def test_auth_settings_are_checked(tmp_path):
    def settings(**auth):
        return load_settings(None, environ={}, overrides={"data_dir": str(tmp_path), "auth": auth,
                                                          "api": {"host": auth.pop("host", "127.0.0.1")}})

    check_settings(settings(trust_headers=True))
    check_settings(settings(trust_headers=True, host="::1"))
    check_settings(settings(trust_headers=True, host="0.0.0.0", behind_tls_proxy=True))
    with pytest.raises(ConfigError, match="trust_headers"):
        check_settings(settings(trust_headers=True, host="0.0.0.0"))
    with pytest.raises(ConfigError, match="access_token_lifetime_minutes must be at least 1"):
        check_settings(settings(access_token_lifetime_minutes=0))
    assert is_loopback("localhost") and is_loopback("127.0.0.5") and not is_loopback("example.com")


def test_roles_bound_token_scopes():
    assert scopes_for("member") == {"read"}
    assert scopes_for("member", frozenset({"read", "write", "admin"})) == {"read"}
    assert scopes_for("admin", frozenset({"read"})) == {"read"}
    assert scopes_for(None, frozenset({"write"})) == {"write"}  # organisation tokens: an owner's ceiling
    who = Principal(1, "org", None, 7, frozenset({"admin"}))
    assert who.can("write") and who.rate_key == "token:7" and who.ceiling_role == "owner"


def test_the_dummy_hash_costs_what_a_real_one_does():
    pw = Passwords()
    real = pw.hash("some password here")
    assert pw._dummy_hash.split("$")[:4] == real.split("$")[:4]  # same algorithm, version and parameters
