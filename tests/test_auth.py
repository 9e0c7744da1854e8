"""Auth: local HS256 and JWKS RS256 tokens (real HTTP JWKS), passwords, request helpers."""

from __future__ import annotations

import asyncio
import logging
import stat
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.errors_support import assert_error
from tests.fixtures.jwks import JwksServer, RsaKey, hs256_token, unsigned_token
from tests.support import free_port
from videoforge import keys
from videoforge.auth.passwords import hash_password, verify_password
from videoforge.auth.tokens import (
    Authenticator,
    JwksAuthenticator,
    LocalAuthenticator,
    Principal,
    auth_ctx,
    create_authenticator,
    get_principal,
    require_admin,
    require_user,
    secret_path,
)
from videoforge.config import Config, ConfigError, build_config
from videoforge.errors import Unauthorized, VideoforgeError
from videoforge.support.secretfile import load_or_create_secret

AiohttpClient = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]


def _config(tmp_path: Path, **auth: Any) -> Config:
    return build_config({"server": {"data_dir": str(tmp_path)}, "auth": auth})


def _jwks_config(tmp_path: Path, server: JwksServer, **auth: Any) -> Config:
    settings = {"mode": "jwks", "jwks_url": server.url, "issuer": server.issuer}
    settings["audience"] = server.audience
    return _config(tmp_path, **{**settings, **auth})


def _local_claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"sub": "alice", "iat": now, "exp": now + 300, "iss": "videoforge"}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


async def _rejects(authenticator: Authenticator, token: str) -> str:
    """The Unauthorized message `authenticator` gives for `token` (fails if it accepts it)."""
    with pytest.raises(Unauthorized) as info:
        await authenticator.verify(token)
    return info.value.message


# --- local tokens ------------------------------------------------------------------------------


async def test_local_token_round_trip_returns_user_and_admin_flag(tmp_path: Path) -> None:
    auth = LocalAuthenticator(_config(tmp_path))
    admin = await auth.verify(auth.issue("alice", admin=True))
    assert admin == Principal("alice", True, ("admin",))
    assert await auth.verify(auth.issue("bob")) == Principal("bob", False, ())


async def test_local_token_with_custom_admin_group_uses_that_group(tmp_path: Path) -> None:
    auth = LocalAuthenticator(_config(tmp_path, admin_group="ops"))
    principal = await auth.verify(auth.issue("alice", admin=True))
    assert principal.is_admin
    assert principal.groups == ("ops",)


def test_local_token_claims_carry_sub_iss_iat_exp_and_groups(tmp_path: Path) -> None:
    config = _config(tmp_path, token_ttl=120)
    token = LocalAuthenticator(config).issue("alice", admin=True)
    claims = jwt.decode(token, load_or_create_secret(secret_path(config)), algorithms=["HS256"])
    assert claims["sub"] == "alice"
    assert claims["iss"] == "videoforge"
    assert claims["exp"] - claims["iat"] == 120
    assert claims["cognito:groups"] == ["admin"]


def test_local_issue_with_unsafe_user_id_raises(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        LocalAuthenticator(_config(tmp_path)).issue("../x")


async def test_local_secret_file_is_private_and_reused_by_second_authenticator(
    tmp_path: Path,
) -> None:
    first = LocalAuthenticator(_config(tmp_path))
    path = tmp_path / "auth.secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = LocalAuthenticator(_config(tmp_path))
    assert (await second.verify(first.issue("alice"))).user_id == "alice"


def test_local_secret_created_concurrently_is_the_same_everywhere(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "auth.secret"
    with ThreadPoolExecutor(max_workers=8) as pool:
        secrets = list(pool.map(lambda _: load_or_create_secret(path), range(16)))
    assert len(set(secrets)) == 1
    assert len(secrets[0]) == 32
    assert [p.name for p in path.parent.iterdir()] == ["auth.secret"]  # no temp files left


async def test_local_secret_file_setting_is_used(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere" / "secret"
    auth = LocalAuthenticator(_config(tmp_path / "data", secret_file=str(path)))
    assert path.is_file()
    assert (await auth.verify(auth.issue("alice"))).user_id == "alice"


def test_local_secret_file_with_garbage_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "auth.secret").write_text("not hex")
    with pytest.raises(ConfigError, match=r"auth\.secret.*hex"):
        LocalAuthenticator(_config(tmp_path))


async def test_local_expired_token_is_unauthorized(tmp_path: Path) -> None:
    auth = LocalAuthenticator(_config(tmp_path))
    assert await _rejects(auth, auth.issue("alice", ttl=-3600)) == "Token expired"


async def test_local_token_signed_with_other_secret_is_unauthorized(tmp_path: Path) -> None:
    forger = LocalAuthenticator(_config(tmp_path / "other"))
    auth = LocalAuthenticator(_config(tmp_path / "mine"))
    assert await _rejects(auth, forger.issue("alice", admin=True)) == "Invalid token"


async def test_local_alg_none_token_is_unauthorized(tmp_path: Path) -> None:
    auth = LocalAuthenticator(_config(tmp_path))
    await _rejects(auth, unsigned_token(_local_claims()))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"iss": "someone-else"}, "Invalid token issuer"),
        ({"exp": None}, "Invalid token: missing exp claim"),
        ({"iss": None}, "Invalid token: missing iss claim"),
        ({"sub": None}, "Invalid token: missing sub claim"),
    ],
)
async def test_local_token_with_bad_claims_is_unauthorized(
    tmp_path: Path, overrides: dict[str, Any], message: str
) -> None:
    config = _config(tmp_path)
    auth = LocalAuthenticator(config)
    secret = load_or_create_secret(secret_path(config))
    token = jwt.encode(_local_claims(**overrides), secret, algorithm="HS256")
    assert await _rejects(auth, token) == message


@pytest.mark.parametrize("sub", ["../x", "a/b", ".hidden", "", "a b", "x" * 200, "é", "a\n"])
async def test_local_token_with_unsafe_sub_is_unauthorized(tmp_path: Path, sub: str) -> None:
    config = _config(tmp_path)
    auth = LocalAuthenticator(config)
    token = jwt.encode(_local_claims(sub=sub), load_or_create_secret(secret_path(config)))
    assert await _rejects(auth, token) == "Invalid token subject"


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "e30.e30.", "Bearer x"])
async def test_local_garbage_token_is_unauthorized(tmp_path: Path, token: str) -> None:
    assert await _rejects(LocalAuthenticator(_config(tmp_path)), token) == "Invalid token"


def test_create_authenticator_follows_auth_mode(tmp_path: Path, jwks_server: JwksServer) -> None:
    assert isinstance(create_authenticator(_config(tmp_path)), LocalAuthenticator)
    jwks = create_authenticator(_jwks_config(tmp_path, jwks_server))
    assert isinstance(jwks, JwksAuthenticator)


# --- JWKS tokens -------------------------------------------------------------------------------


def test_jwks_url_that_is_not_http_is_a_config_error(tmp_path: Path) -> None:
    config = _config(tmp_path, mode="jwks", jwks_url="file:///etc/passwd", issuer="x")
    with pytest.raises(ConfigError, match=r"auth\.jwks_url"):
        JwksAuthenticator(config)


async def test_jwks_valid_token_returns_user_and_admin_from_groups(
    tmp_path: Path, jwks_server: JwksServer
) -> None:
    auth = JwksAuthenticator(_jwks_config(tmp_path, jwks_server))
    token = jwks_server.mint(jwks_server.claims(**{"cognito:groups": ["editors", "admin"]}))
    principal = await auth.verify(token)
    assert principal == Principal("user-1", True, ("editors", "admin"))
    assert not (await auth.verify(jwks_server.mint())).is_admin


async def test_jwks_access_token_with_matching_client_id_is_accepted(
    tmp_path: Path, jwks_server: JwksServer
) -> None:
    auth = JwksAuthenticator(_jwks_config(tmp_path, jwks_server))
    access = jwks_server.claims(aud=None, client_id=jwks_server.audience, token_use="access")
    assert (await auth.verify(jwks_server.mint(access))).user_id == "user-1"


@pytest.mark.parametrize(
    "overrides",
    [{"aud": "other-client"}, {"aud": None, "client_id": "other-client"}, {"aud": None}],
)
async def test_jwks_token_for_other_audience_is_unauthorized(
    tmp_path: Path, jwks_server: JwksServer, overrides: dict[str, Any]
) -> None:
    auth = JwksAuthenticator(_jwks_config(tmp_path, jwks_server))
    token = jwks_server.mint(jwks_server.claims(**overrides))
    assert await _rejects(auth, token) == "Invalid token audience"


async def test_jwks_without_audience_setting_accepts_any_audience(
    tmp_path: Path, jwks_server: JwksServer
) -> None:
    auth = JwksAuthenticator(_jwks_config(tmp_path, jwks_server, audience=""))
    assert (await auth.verify(jwks_server.mint())).user_id == "user-1"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"iss": "https://evil.example.test"}, "Invalid token issuer"),
        ({"exp": int(time.time()) - 3600}, "Token expired"),
        ({"exp": None}, "Invalid token: missing exp claim"),
        ({"sub": "a/b"}, "Invalid token subject"),
    ],
)
async def test_jwks_token_with_bad_claims_is_unauthorized(
    tmp_path: Path, jwks_server: JwksServer, overrides: dict[str, Any], message: str
) -> None:
    auth = JwksAuthenticator(_jwks_config(tmp_path, jwks_server))
    assert await _rejects(auth, jwks_server.mint(jwks_server.claims(**overrides))) == message


async def test_jwks_token_signed_by_unknown_kid_is_unauthorized(
    tmp_path: Path, jwks_server: JwksServer, rotated_rsa_key: RsaKey
) -> None:
    auth = JwksAuthenticator(_jwks_config(tmp_path, jwks_server))
    token = jwks_server.mint(key=rotated_rsa_key)
    assert await _rejects(auth, token) == "Invalid token: unknown signing key"


async def test_jwks_token_with_known_kid_but_other_key_is_unauthorized(
    tmp_path: Path, jwks_server: JwksServer, rotated_rsa_key: RsaKey
) -> None:
    auth = JwksAuthenticator(_jwks_config(tmp_path, jwks_server))
    token = jwks_server.mint(key=rotated_rsa_key, kid=jwks_server.key.kid)
    assert await _rejects(auth, token) == "Invalid token"


async def test_jwks_hs256_token_signed_with_public_key_is_unauthorized(
    tmp_path: Path, jwks_server: JwksServer
) -> None:
    auth = JwksAuthenticator(_jwks_config(tmp_path, jwks_server))
    await auth.verify(jwks_server.mint())  # the key is cached, as an attacker would hope
    key = jwks_server.key
    token = hs256_token(jwks_server.claims(), key.public_pem(), kid=key.kid)
    assert await _rejects(auth, token) == "Invalid token algorithm"


@pytest.mark.parametrize("alg", ["RS512", "PS256"])
async def test_jwks_token_with_other_rsa_alg_is_unauthorized(
    tmp_path: Path, jwks_server: JwksServer, alg: str
) -> None:
    auth = JwksAuthenticator(_jwks_config(tmp_path, jwks_server))
    assert await _rejects(auth, jwks_server.mint(alg=alg)) == "Invalid token algorithm"


async def test_jwks_alg_none_and_garbage_tokens_are_unauthorized_without_fetch(
    tmp_path: Path, jwks_server: JwksServer
) -> None:
    auth = JwksAuthenticator(_jwks_config(tmp_path, jwks_server))
    await _rejects(auth, unsigned_token(jwks_server.claims(), kid=jwks_server.key.kid))
    for garbage in ("", "garbage", "a.b.c"):
        assert await _rejects(auth, garbage) == "Invalid token"
    assert jwks_server.requests == 0


async def test_jwks_keys_are_cached_between_verifications(
    tmp_path: Path, jwks_server: JwksServer
) -> None:
    auth = JwksAuthenticator(_jwks_config(tmp_path, jwks_server))
    await asyncio.gather(*(auth.verify(jwks_server.mint()) for _ in range(10)))
    await auth.verify(jwks_server.mint())
    assert jwks_server.requests == 1


async def test_jwks_key_rotation_triggers_one_refetch(
    tmp_path: Path, jwks_server: JwksServer, rotated_rsa_key: RsaKey
) -> None:
    auth = JwksAuthenticator(_jwks_config(tmp_path, jwks_server), refetch_cooldown=0)
    await auth.verify(jwks_server.mint())
    jwks_server.published = [rotated_rsa_key]
    assert (await auth.verify(jwks_server.mint(key=rotated_rsa_key))).user_id == "user-1"
    assert (await auth.verify(jwks_server.mint(key=rotated_rsa_key))).user_id == "user-1"
    assert jwks_server.requests == 2


async def test_jwks_flood_of_unknown_kids_does_not_refetch_within_cooldown(
    tmp_path: Path, jwks_server: JwksServer
) -> None:
    auth = JwksAuthenticator(_jwks_config(tmp_path, jwks_server))
    await auth.verify(jwks_server.mint())
    for n in range(50):
        await _rejects(auth, jwks_server.mint(kid=f"made-up-{n}"))
    assert jwks_server.requests == 1


async def test_jwks_server_down_is_unauthorized_and_logged(
    tmp_path: Path, jwks_server: JwksServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"http://127.0.0.1:{free_port()}/.well-known/jwks.json"
    auth = JwksAuthenticator(_jwks_config(tmp_path, jwks_server, jwks_url=url))
    with caplog.at_level(logging.WARNING, logger="videoforge.auth.tokens"):
        assert await _rejects(auth, jwks_server.mint()) == "Unable to verify token"
    assert "JWKS fetch" in caplog.text


async def test_jwks_endpoint_returning_garbage_is_unauthorized(
    tmp_path: Path, jwks_server: JwksServer
) -> None:
    url = jwks_server.url.replace("jwks.json", "missing.json")  # a 404 page
    auth = JwksAuthenticator(_jwks_config(tmp_path, jwks_server, jwks_url=url))
    assert await _rejects(auth, jwks_server.mint()) == "Unable to verify token"


# --- passwords ---------------------------------------------------------------------------------


async def test_password_hash_verifies_only_the_same_password() -> None:
    hashed = await hash_password("correct horse")
    assert hashed != await hash_password("correct horse")  # salted
    assert await verify_password(hashed, "correct horse")
    assert not await verify_password(hashed, "wrong horse")


@pytest.mark.parametrize("bad_hash", ["", "garbage", "$argon2id$v=19$m=1,t=1,p=1$xx$yy", None])
async def test_password_verify_with_garbage_hash_is_false(bad_hash: str | None) -> None:
    assert not await verify_password(bad_hash, "anything")


# --- request helpers ---------------------------------------------------------------------------


@web.middleware
async def _errors_as_json(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except VideoforgeError as exc:
        return web.json_response(exc.to_json(), status=exc.status)


async def _whoami(request: web.Request) -> web.Response:
    principal = await get_principal(request)
    return web.json_response({"user": principal.user_id if principal else None})


async def _me(request: web.Request) -> web.Response:
    return web.json_response({"user": (await require_user(request)).user_id})


async def _admin(request: web.Request) -> web.Response:
    principal = await require_admin(request)
    assert await get_principal(request) is principal  # cached on the request
    return web.json_response({"user": principal.user_id})


@pytest.fixture
async def client(tmp_path: Path, aiohttp_client: AiohttpClient) -> TestClient[Any, Any]:
    app = web.Application(middlewares=[_errors_as_json])
    app[keys.CONFIG] = _config(tmp_path)
    app.cleanup_ctx.append(auth_ctx)
    app.router.add_get("/whoami", _whoami)
    app.router.add_get("/me", _me)
    app.router.add_get("/admin", _admin)
    return await aiohttp_client(app)


def _bearer(client: TestClient[Any, Any], user: str, *, admin: bool = False) -> dict[str, str]:
    authenticator = client.app[keys.AUTH]
    assert isinstance(authenticator, LocalAuthenticator)
    return {"Authorization": f"Bearer {authenticator.issue(user, admin=admin)}"}


async def test_get_principal_without_header_is_anonymous(client: TestClient[Any, Any]) -> None:
    response = await client.get("/whoami")
    assert response.status == 200
    assert await response.json() == {"user": None}


async def test_require_user_without_header_is_401(client: TestClient[Any, Any]) -> None:
    response = await client.get("/me")
    assert response.status == 401
    assert await response.json() == {"error": "Authentication required"}


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Bearer garbage", "Invalid token"),
        ("Basic dXNlcjpwYXNz", "Invalid Authorization header"),
        ("Bearer", "Invalid Authorization header"),
        ("", "Invalid Authorization header"),
    ],
)
async def test_request_with_bad_authorization_header_is_401(
    client: TestClient[Any, Any], header: str, message: str
) -> None:
    for path in ("/whoami", "/me"):
        response = await client.get(path, headers={"Authorization": header})
        assert response.status == 401
        assert await response.json() == {"error": message}


async def test_require_user_with_valid_token_returns_user(client: TestClient[Any, Any]) -> None:
    response = await client.get("/me", headers=_bearer(client, "alice"))
    assert response.status == 200
    assert await response.json() == {"user": "alice"}


async def test_require_admin_without_token_is_401(client: TestClient[Any, Any]) -> None:
    await assert_error(await client.get("/admin"), 401, "Authentication required")


async def test_require_admin_with_non_admin_token_is_403(client: TestClient[Any, Any]) -> None:
    response = await client.get("/admin", headers=_bearer(client, "alice"))
    assert response.status == 403
    assert await response.json() == {"error": "Admin access required"}


async def test_require_admin_with_admin_token_returns_user(client: TestClient[Any, Any]) -> None:
    response = await client.get("/admin", headers=_bearer(client, "root", admin=True))
    assert response.status == 200
    assert await response.json() == {"user": "root"}
