"""Bearer JWT verification: local HS256 tokens or JWKS/OIDC (Cognito) RS256 tokens, and roles.

Handlers call `get_principal`, `require_user` or `require_admin`; they never see which
authenticator is configured.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from aiohttp import hdrs, web

from videoforge import keys
from videoforge.auth.sessions import SESSION_COOKIE, Sessions
from videoforge.config import Config, ConfigError
from videoforge.errors import Forbidden, Unauthorized
from videoforge.support.secretfile import load_or_create_secret

log = logging.getLogger(__name__)

LOCAL_ISSUER = "videoforge"
GROUPS_CLAIM = "cognito:groups"
# Tolerated clock difference between the token issuer and this machine.
LEEWAY_S = 10
# The user id ends up in storage keys (`gallery/{userId}/...`): no slashes, no leading dot.
_SAFE_USER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9@._:+-]{0,127}")
_SECRET_BYTES = 32


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    user_id: str
    is_admin: bool
    groups: tuple[str, ...]
    # When the token stops being valid (epoch seconds); a session cookie ends with it.
    expires_at: int = field(default=0, compare=False)


def is_safe_user_id(value: str) -> bool:
    """True if `value` may be used as a user id (and so inside a storage key)."""
    return _SAFE_USER_ID.fullmatch(value) is not None


class Authenticator(abc.ABC):
    """Turns a bearer token into a `Principal` or raises `Unauthorized`."""

    @abc.abstractmethod
    async def verify(self, token: str) -> Principal:
        """The principal the token names; `Unauthorized` if it is not valid."""

    async def close(self) -> None:  # noqa: B027 - a no-op unless a backend holds resources
        """Release whatever the authenticator holds."""


# --- local HS256 -------------------------------------------------------------------------------


class LocalAuthenticator(Authenticator):
    """HS256 tokens signed with a secret generated once under the data directory."""

    def __init__(self, config: Config) -> None:
        self._secret = load_or_create_secret(secret_path(config))
        self._ttl = config.auth.token_ttl
        self._admin_group = config.auth.admin_group

    def issue(self, user_id: str, *, admin: bool = False, ttl: int | None = None) -> str:
        """A signed token for `user_id`, valid for `ttl` seconds (default `auth.token_ttl`)."""
        if not is_safe_user_id(user_id):
            raise ValueError(f"unsafe user id: {user_id!r}")
        now = int(time.time())
        claims = {
            "sub": user_id,
            "iat": now,
            "exp": now + (self._ttl if ttl is None else ttl),
            "iss": LOCAL_ISSUER,
            GROUPS_CLAIM: [self._admin_group] if admin else [],
        }
        return jwt.encode(claims, self._secret, algorithm="HS256")

    async def verify(self, token: str) -> Principal:
        """Check signature, expiry and issuer of a local token."""
        claims = _decode(token, self._secret, "HS256", issuer=LOCAL_ISSUER)
        return _principal(claims, self._admin_group)


def secret_path(config: Config) -> Path:
    """Where the local HS256 secret lives: `auth.secret_file`, else `data_dir/auth.secret`."""
    if config.auth.secret_file:
        return Path(config.auth.secret_file)
    return config.data_dir / "auth.secret"


# --- JWKS / OIDC RS256 -------------------------------------------------------------------------


class JwksKeys:
    """RSA signing keys from a JWKS URL, cached for `ttl` seconds.

    An unknown `kid` (key rotation) triggers a refetch, but never more often than every
    `cooldown` seconds, so a flood of made-up key ids cannot hammer the identity provider.
    """

    def __init__(self, url: str, *, ttl: float, cooldown: float = 5.0, timeout: float = 10.0):
        # PyJWKClient is synchronous (urllib): only its fetch is used, always in a thread.
        self._client = jwt.PyJWKClient(url, cache_jwk_set=False, timeout=timeout)
        self._url = url
        self._ttl = ttl
        self._cooldown = cooldown
        self._keys: dict[str, Any] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._last_fetch_failed = False
        self._lock = asyncio.Lock()

    async def get(self, kid: str) -> Any:
        """The public key for `kid`; `Unauthorized` if unknown or the JWKS cannot be fetched."""
        if not self._usable(kid):
            await self._refresh(kid)
        key = self._keys.get(kid)
        if key is not None:
            return key
        if self._last_fetch_failed:
            raise Unauthorized("Unable to verify token")
        raise Unauthorized("Invalid token: unknown signing key")

    def _usable(self, kid: str) -> bool:
        fresh = self._fetched_at is not None and time.monotonic() - self._fetched_at < self._ttl
        return fresh and kid in self._keys

    def _cooling_down(self) -> bool:
        return (
            self._attempted_at is not None
            and time.monotonic() - self._attempted_at < self._cooldown
        )

    async def _refresh(self, kid: str) -> None:
        # The lock makes concurrent requests for a new kid share one fetch.
        async with self._lock:
            if self._usable(kid) or self._cooling_down():
                return
            self._attempted_at = time.monotonic()
            try:
                self._keys = await asyncio.to_thread(self._fetch)
            except (jwt.PyJWTError, OSError, ValueError) as exc:
                # Stale keys (if any) stay in use while the identity provider is unreachable.
                log.warning("JWKS fetch from %s failed: %s", self._url, exc)
                self._last_fetch_failed = True
                return
            self._fetched_at = time.monotonic()
            self._last_fetch_failed = False

    def _fetch(self) -> dict[str, Any]:
        jwk_set = self._client.get_jwk_set(refresh=True)
        return {
            jwk.key_id: jwk.key
            for jwk in jwk_set.keys
            if jwk.key_id
            and jwk.key_type == "RSA"
            and jwk.algorithm_name == "RS256"
            and jwk.public_key_use in (None, "sig")
        }


class JwksAuthenticator(Authenticator):
    """RS256 tokens from an OIDC provider such as Cognito, checked against its JWKS."""

    def __init__(self, config: Config, *, refetch_cooldown: float = 5.0) -> None:
        auth = config.auth
        if not auth.jwks_url.startswith(("https://", "http://")):
            raise ConfigError("auth.jwks_url: must be an https:// (or http://) URL")
        if not auth.issuer:
            raise ConfigError("auth.issuer: is required when auth.mode is jwks")
        self._keys = JwksKeys(auth.jwks_url, ttl=auth.jwks_cache_ttl, cooldown=refetch_cooldown)
        self._issuer = auth.issuer
        self._audience = auth.audience
        self._admin_group = auth.admin_group

    async def verify(self, token: str) -> Principal:
        """Check alg, signature (JWKS key by `kid`), expiry, issuer and audience."""
        kid = _rs256_kid(token)
        key = await self._keys.get(kid)
        claims = _decode(token, key, "RS256", issuer=self._issuer)
        self._check_audience(claims)
        return _principal(claims, self._admin_group)

    def _check_audience(self, claims: dict[str, Any]) -> None:
        if not self._audience:
            return
        aud = claims.get("aud")
        if aud is None:
            # Cognito access tokens name the app client in `client_id` and carry no `aud`.
            ok = claims.get("client_id") == self._audience
        elif isinstance(aud, list):
            ok = self._audience in aud
        else:
            ok = aud == self._audience
        if not ok:
            raise Unauthorized("Invalid token audience")


def _rs256_kid(token: str) -> str:
    """The `kid` of an RS256 token, read before any key is fetched."""
    _check_token_text(token)
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise Unauthorized("Invalid token") from None
    if header.get("alg") != "RS256":
        raise Unauthorized("Invalid token algorithm")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise Unauthorized("Invalid token: no key id")
    return kid


# --- shared ------------------------------------------------------------------------------------


def _check_token_text(token: str) -> None:
    """A JWT is base64url and dots: ASCII. Anything else is refused before PyJWT encodes it
    (a header's non-UTF-8 bytes reach us as lone surrogates, which cannot be encoded)."""
    if not token.isascii():
        raise Unauthorized("Invalid token")


def _decode(token: str, key: Any, algorithm: str, *, issuer: str) -> dict[str, Any]:
    """Verify a token with exactly one allowed algorithm; map PyJWT errors to 401 messages."""
    _check_token_text(token)
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            issuer=issuer,
            leeway=LEEWAY_S,
            # The audience is checked by the caller (Cognito access tokens have none).
            options={"require": ["exp", "iss", "sub"], "verify_aud": False},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("Token expired") from None
    except jwt.ImmatureSignatureError:
        raise Unauthorized("Token not yet valid") from None
    except jwt.InvalidIssuerError:
        raise Unauthorized("Invalid token issuer") from None
    except jwt.MissingRequiredClaimError as exc:
        raise Unauthorized(f"Invalid token: missing {exc.claim} claim") from None
    except jwt.PyJWTError:
        raise Unauthorized("Invalid token") from None
    return claims


def _principal(claims: dict[str, Any], admin_group: str) -> Principal:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not is_safe_user_id(sub):
        raise Unauthorized("Invalid token subject")
    raw = claims.get(GROUPS_CLAIM)
    groups = tuple(g for g in raw if isinstance(g, str)) if isinstance(raw, list) else ()
    expires_at = claims.get("exp")
    return Principal(
        user_id=sub,
        is_admin=admin_group in groups,
        groups=groups,
        expires_at=expires_at if isinstance(expires_at, int) else 0,
    )


def create_authenticator(config: Config) -> Authenticator:
    """The authenticator `auth.mode` asks for."""
    if config.auth.mode == "jwks":
        return JwksAuthenticator(config)
    return LocalAuthenticator(config)


async def auth_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: set `app[keys.AUTH]`, close it on shutdown."""
    # A thread because the local authenticator may create and read its secret file.
    authenticator = await asyncio.to_thread(create_authenticator, app[keys.CONFIG])
    app[keys.AUTH] = authenticator
    app[keys.SESSIONS] = await asyncio.to_thread(Sessions, app[keys.CONFIG])
    try:
        yield
    finally:
        await authenticator.close()


# --- request helpers ---------------------------------------------------------------------------


async def get_principal(request: web.Request) -> Principal | None:
    """The caller, from the Authorization header or else the session cookie; None without
    either, `Unauthorized` for a bad token."""
    if keys.PRINCIPAL in request:
        return request[keys.PRINCIPAL]
    token = _bearer_token(request)
    if token is None:
        token = _session_token(request)
    principal = None if token is None else await request.config_dict[keys.AUTH].verify(token)
    request[keys.PRINCIPAL] = principal
    return principal


async def require_user(request: web.Request) -> Principal:
    """The caller; 401 if the request carries no token."""
    principal = await get_principal(request)
    if principal is None:
        raise Unauthorized("Authentication required")
    return principal


async def require_admin(request: web.Request) -> Principal:
    """The caller if an admin; 401 without a token, 403 for anyone else."""
    principal = await require_user(request)
    if not principal.is_admin:
        raise Forbidden("Admin access required")
    return principal


def _session_token(request: web.Request) -> str | None:
    if hdrs.COOKIE not in request.headers:  # API clients: skip parsing cookies
        return None
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    _check_token_text(token)  # before the CSRF check encodes it
    request.config_dict[keys.SESSIONS].check_csrf(request, token)
    return token


def _bearer_token(request: web.Request) -> str | None:
    header = request.headers.get(hdrs.AUTHORIZATION)
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("Invalid Authorization header")
    return token


__all__ = [
    "Authenticator",
    "JwksAuthenticator",
    "JwksKeys",
    "LocalAuthenticator",
    "Principal",
    "auth_ctx",
    "create_authenticator",
    "get_principal",
    "is_safe_user_id",
    "require_admin",
    "require_user",
    "secret_path",
]
