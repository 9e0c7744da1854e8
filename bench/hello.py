"""The ceiling: aiohttp answering one constant small JSON, with no middleware and no access log.

`bench/http.py` starts it exactly like the videoforge server (same interpreter, same core) and
compares every gallery figure with it. Run it as `python -P bench/hello.py --port N`: without -P,
this directory comes first on sys.path and `bench/http.py` would shadow the standard library's
`http`, which aiohttp imports.
"""

from __future__ import annotations

import argparse

from aiohttp import web

GREETING = {"status": "ok", "message": "hello"}


async def hello(request: web.Request) -> web.Response:
    """The same small JSON object for every request."""
    return web.json_response(GREETING)


def create_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/", hello)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="aiohttp hello-world for bench/http.py")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(create_app(), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
