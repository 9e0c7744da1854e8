"""Browser sessions: the bearer token in an HttpOnly cookie, and CSRF tokens bound to it.

Scripts on the pages never see the token: the cookie is HttpOnly and SameSite=Lax. A request
that authenticates with the cookie and changes state must also carry `X-CSRF-Token`, an HMAC of
the session token that only our own pages know (they render it into a meta tag), or else
`Sec-Fetch-Site: same-origin`, which a browser sets on every fetch and no script can: for
clients that send no headers of ours, such as Uppy 6's S3 plugin (our own pages send the
token). A request with an `Authorization` header needs neither, since no other site can make a
browser send one.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from aiohttp import web

from videoforge.config import Config
from videoforge.errors import Forbidden
from videoforge.support.secretfile import server_secret

SESSION_COOKIE = "vf_session"
CSRF_HEADER = "X-CSRF-Token"
FETCH_SITE_HEADER = "Sec-Fetch-Site"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Sessions:
    """Sets and clears the session cookie; issues and checks its CSRF token."""

    def __init__(self, config: Config) -> None:
        self._key = hashlib.sha256(b"videoforge csrf\0" + server_secret(config)).digest()
        self._secure = config.server.base_url.startswith("https://")

    def csrf_token(self, session_token: str) -> str:
        return hmac.new(self._key, session_token.encode(), hashlib.sha256).hexdigest()

    def check_csrf(self, request: web.BaseRequest, session_token: str) -> None:
        """Refuse a state change made with the cookie, unless it carries the matching CSRF token
        or comes from one of our own pages (OWASP's Fetch Metadata defence)."""
        if (
            request.method in SAFE_METHODS
            or request.headers.get(FETCH_SITE_HEADER) == "same-origin"
        ):
            return
        sent = request.headers.get(CSRF_HEADER, "")
        # compare_digest refuses non-ASCII text (a TypeError); our tokens are hex digits.
        if not sent.isascii() or not hmac.compare_digest(sent, self.csrf_token(session_token)):
            raise Forbidden("Missing or invalid CSRF token")

    def set_cookie(self, response: web.StreamResponse, token: str, expires_at: int) -> None:
        """Carry `token` in the session cookie until it expires."""
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=max(0, expires_at - int(time.time())),
            path="/",
            httponly=True,
            samesite="Lax",
            secure=self._secure,
        )

    def clear_cookie(self, response: web.StreamResponse) -> None:
        response.del_cookie(
            SESSION_COOKIE, path="/", httponly=True, samesite="Lax", secure=self._secure
        )
