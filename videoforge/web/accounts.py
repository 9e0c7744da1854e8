"""Local accounts (`POST /api/auth/register`, `POST /api/auth/login`) and browser sessions."""

from __future__ import annotations

from typing import Any

import marshmallow
from aiohttp import web
from marshmallow import fields, validate

from videoforge import keys
from videoforge.auth import accounts
from videoforge.auth.tokens import LocalAuthenticator, require_user
from videoforge.errors import Forbidden
from videoforge.web.bodies import load_body
from videoforge.web.openapi import documented
from videoforge.web.schemas import FullMatch

USERNAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{2,31}$"

routes = web.RouteTableDef()


class RegisterSchema(marshmallow.Schema):
    @marshmallow.pre_load
    def _lowercase_username(self, data: Any, **_: Any) -> Any:
        # User names are case-insensitive: "Alice" registers (and later signs in as) "alice".
        if isinstance(data, dict) and isinstance(data.get("username"), str):
            return {**data, "username": data["username"].lower()}
        return data

    username = fields.String(
        required=True,
        validate=FullMatch(
            USERNAME_PATTERN,
            error="Username must be 3-32 letters, digits, '.', '_' or '-'",
        ),
    )
    password = fields.String(required=True, validate=validate.Length(min=8, max=256))


class LoginSchema(marshmallow.Schema):
    username = fields.String(required=True, validate=validate.Length(min=1, max=64))
    password = fields.String(required=True, validate=validate.Length(min=1, max=256))


# Built once: building a schema costs more than using it (it showed in the HTTP benchmark).
LOGIN = LoginSchema()
REGISTER = RegisterSchema()


def _local_auth(request: web.Request) -> LocalAuthenticator:
    auth = request.app[keys.AUTH]
    if not isinstance(auth, LocalAuthenticator):
        raise Forbidden("Local accounts are disabled: sign in with your identity provider")
    return auth


def _session(auth: LocalAuthenticator, user: accounts.User) -> dict[str, Any]:
    return {
        "token": auth.issue(user.id, admin=user.is_admin),
        "user": {
            "id": user.id,
            "username": user.username,
            "isAdmin": user.is_admin,
            "createdAt": user.created_at.isoformat().replace("+00:00", "Z"),
        },
    }


@routes.post("/api/auth/register")
@documented(auth="none", body=RegisterSchema, statuses=(201,), errors=(403, 409))
async def register(request: web.Request) -> web.Response:
    """Create a local account and sign it in."""
    auth = _local_auth(request)
    if not request.app[keys.CONFIG].auth.allow_registration:
        raise Forbidden("Registration is closed")
    body = await load_body(request, REGISTER)
    user = await accounts.register(request.app[keys.DB], body["username"], body["password"])
    return web.json_response(_session(auth, user), status=201)


@routes.post("/api/auth/login")
@documented(auth="none", body=LoginSchema, errors=(401, 403))
async def login(request: web.Request) -> web.Response:
    """Exchange a username and password for a bearer token."""
    auth = _local_auth(request)
    body = await load_body(request, LOGIN)
    user = await accounts.sign_in(request.app[keys.DB], body["username"], body["password"])
    return web.json_response(_session(auth, user))


@routes.get("/api/auth/me")
@documented(auth="user")
async def me(request: web.Request) -> web.Response:
    """Who the bearer token says the caller is (any auth mode)."""
    principal = await require_user(request)
    return web.json_response(
        {
            "user": {
                "id": principal.user_id,
                "isAdmin": principal.is_admin,
                "groups": list(principal.groups),
            }
        }
    )


class SessionSchema(marshmallow.Schema):
    token = fields.String(required=True, validate=validate.Length(min=1, max=8192))


SESSION = SessionSchema()


@routes.post("/api/auth/session")
@documented(auth="none", body=SessionSchema, errors=(401,))
async def start_session(request: web.Request) -> web.Response:
    """Move a bearer token into the HttpOnly session cookie the pages use; answers the CSRF
    token that state changes made with that cookie must carry."""
    # Only a script of ours can send JSON (`load_body` refuses the rest): a form on another site
    # cannot sign a browser in.
    body = await load_body(request, SESSION)
    principal = await request.app[keys.AUTH].verify(body["token"])
    sessions = request.app[keys.SESSIONS]
    response = web.json_response(
        {
            "user": {"id": principal.user_id, "isAdmin": principal.is_admin},
            "csrfToken": sessions.csrf_token(body["token"]),
        }
    )
    sessions.set_cookie(response, body["token"], principal.expires_at)
    return response


@routes.delete("/api/auth/session")
@documented(auth="none")
async def end_session(request: web.Request) -> web.Response:
    """Sign the browser out: forget the session cookie."""
    response = web.json_response({"message": "Signed out"})
    request.app[keys.SESSIONS].clear_cookie(response)
    return response
