"""The `videoforge` command: serve, migrate, token, doctor, user; and upload, jobs (clients of a
running server, in client/commands.py)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from aiohttp import web

from videoforge import __version__
from videoforge.app import ROLES, create_app
from videoforge.client import commands as client_commands
from videoforge.client import multipart
from videoforge.config import Config, ConfigError, load_config
from videoforge.model import STATUSES, VISIBILITIES, Visibility
from videoforge.storage.multipart import MiB

EXIT_CONFIG = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="videoforge", description="Self-hosted video platform.")
    parser.add_argument("--version", action="version", version=f"videoforge {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the API, pages and/or worker pool")
    serve.add_argument("--role", choices=ROLES, default="all")
    serve.add_argument("--host", help="listen address (server.host)")
    serve.add_argument("--port", type=int, help="listen port (server.port)")
    serve.add_argument("--workers", type=int, help="concurrent transcodes (transcode.workers)")

    commands.add_parser("migrate", help="apply pending database migrations")

    token = commands.add_parser("token", help="print a bearer token (local auth)")
    token.add_argument("--user", required=True, help="user id (the token's sub)")
    token.add_argument("--admin", action="store_true", help="member of the admin group")
    token.add_argument("--ttl", type=_positive_seconds, help="lifetime in seconds (auth.token_ttl)")

    commands.add_parser("doctor", help="check ffmpeg, database, storage, queue and cache")

    account = commands.add_parser("user", help="make a local account an admin, or not")
    account.add_argument("action", choices=("promote", "demote"), help="grant or withdraw admin")
    account.add_argument("name", metavar="NAME", help="the account's username")

    for sub in commands.choices.values():
        sub.add_argument(
            "--config", help="config file (default: $VIDEOFORGE_CONFIG or ./config.toml)"
        )
    _add_client_commands(commands)  # after --config: they read no config, they call a server
    return parser


def _add_client_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    upload = commands.add_parser("upload", help="upload a video file and transcode it")
    upload.add_argument("file", metavar="FILE")
    upload.add_argument("--title", help="default: the file name without its extension")
    upload.add_argument("--description", default="")
    upload.add_argument("--visibility", choices=_values(VISIBILITIES), default=Visibility.PUBLIC)
    upload.add_argument(
        "--transcode",
        type=client_commands.parse_qualities,
        default="high,medium,low",
        metavar="high,medium,low",
        help="renditions to make (default: all three)",
    )
    upload.add_argument("--content-type", help="default: from the file name (video/* only)")
    upload.add_argument("--wait", action="store_true", help="follow the transcode to its end")
    upload.add_argument(
        "--multipart-threshold",
        type=client_commands.parse_threshold,
        default=multipart.THRESHOLD,
        metavar="MIB",
        help=f"larger files go up in resumable parts (default: {multipart.THRESHOLD // MiB})",
    )
    upload.add_argument(
        "--part-size",
        type=client_commands.parse_part_size,
        default=multipart.PART_SIZE,
        metavar="MIB",
        help=(
            "part size, larger if a file needs over 10000 parts "
            f"(default: {multipart.PART_SIZE // MiB})"
        ),
    )

    jobs = commands.add_parser("jobs", help="list your transcoding jobs, or follow one")
    jobs.add_argument("--watch", type=int, metavar="ID", help="follow job ID to its end")
    jobs.add_argument(
        "--status", type=str.upper, choices=_values(STATUSES), help="only jobs in this status"
    )

    for sub in (upload, jobs):
        sub.add_argument(
            "--server",
            help=f"API base URL (default: $VIDEOFORGE_SERVER or {client_commands.DEFAULT_SERVER})",
        )
        sub.add_argument("--token", help="bearer token (default: $VIDEOFORGE_TOKEN)")


def _positive_seconds(value: str) -> int:
    """`--ttl 3600`; checked here so that the error names the option, not the setting."""
    if not value.isdigit() or int(value) <= 0:
        raise argparse.ArgumentTypeError(f"{value!r}: expected a whole number of seconds, over 0")
    return int(value)


def _values(members: Sequence[StrEnum]) -> list[str]:
    """An enum's values as plain strings: argparse lists choices by their repr, and an enum
    member's repr is `<Visibility.PUBLIC: 'public'>`."""
    return [member.value for member in members]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in CLIENT_COMMANDS:
        return CLIENT_COMMANDS[args.command](args)
    try:
        config = load_config(args.config, overrides=_cli_overrides(args))
    except ConfigError as exc:
        print(f"videoforge: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    _setup_logging(config)
    command = COMMANDS[args.command]
    return command(config, args)


def _cli_overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    overrides: dict[str, dict[str, Any]] = {}
    for option, section, key in (
        ("host", "server", "host"),
        ("port", "server", "port"),
        ("workers", "transcode", "workers"),
        ("ttl", "auth", "token_ttl"),
    ):
        value = getattr(args, option, None)
        if value is not None:
            overrides.setdefault(section, {})[key] = value
    return overrides


def _setup_logging(config: Config) -> None:
    logging.basicConfig(
        level=config.server.log_level.upper(),
        format="[%(asctime)s] %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )


def serve(config: Config, args: argparse.Namespace) -> int:
    """Run until SIGINT or SIGTERM; every resource (embedded PostgreSQL too) is stopped on exit."""
    from videoforge.web.middlewares import AccessLogger

    app = create_app(config, args.role)
    web.run_app(
        app,
        host=config.server.host,
        port=config.server.port,
        access_log_class=AccessLogger,
        print=lambda _: _print_banner(config, args.role),
        shutdown_timeout=30,
    )
    return 0


def _print_banner(config: Config, role: str) -> None:
    url = config.server.base_url
    lines = [
        f"videoforge {__version__} ({role}) serving on {url}",
        f"  health: {url}/api/health",
    ]
    if config.auth.mode == "local" and role != "worker":
        lines += [
            "  token:  videoforge token --user alice   (add --admin for an admin token)",
            f"          or POST {url}/api/auth/register with a username and password",
        ]
    print("\n".join(lines), flush=True)


def migrate(config: Config, args: argparse.Namespace) -> int:
    """Apply pending migrations (also done at every start) and say which."""
    from videoforge.db import open_database
    from videoforge.db.migrations import schema_version

    async def run() -> int:
        async with open_database(config) as pool:
            return await schema_version(pool)

    print(f"database schema at version {asyncio.run(run())}")
    return 0


def token(config: Config, args: argparse.Namespace) -> int:
    """Print a bearer token on its last line: TOKEN=$(videoforge token --user u | tail -1)."""
    from videoforge.auth.tokens import LocalAuthenticator, is_safe_user_id

    if config.auth.mode != "local":
        print(
            "videoforge: auth.mode is jwks: tokens come from your identity provider",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    if not is_safe_user_id(args.user):
        print(f"videoforge: --user {args.user!r} is not a valid user id", file=sys.stderr)
        return EXIT_CONFIG
    auth = LocalAuthenticator(config)
    role = "admin" if args.admin else "user"
    print(f"# {role} token for {args.user!r}, valid {config.auth.token_ttl} s")
    print(auth.issue(args.user, admin=args.admin))
    return 0


def doctor(config: Config, args: argparse.Namespace) -> int:
    """Check each component and say in words what is wrong."""
    from videoforge.ops.doctor import run_doctor

    return asyncio.run(run_doctor(config))


def user(config: Config, args: argparse.Namespace) -> int:
    """Grant (promote) or withdraw (demote) a local account's admin rights; the tokens it is
    issued from then on carry the change."""
    from videoforge.db import open_database
    from videoforge.db.users import User, set_admin

    if config.auth.mode != "local":
        print(
            "videoforge: auth.mode is jwks: admins are the identity provider's "
            f"{config.auth.admin_group!r} group",
            file=sys.stderr,
        )
        return EXIT_CONFIG

    async def run() -> User | None:
        async with open_database(config) as pool:
            return await set_admin(pool, args.name, args.action == "promote")

    account = asyncio.run(run())
    if account is None:
        print(f"videoforge: no local account named {args.name!r}", file=sys.stderr)
        return 1
    role = "an admin" if account.is_admin else "not an admin"
    print(f"{account.username} is now {role}; it takes effect when they next sign in")
    return 0


COMMANDS = {"serve": serve, "migrate": migrate, "token": token, "doctor": doctor, "user": user}


def upload(args: argparse.Namespace) -> int:
    """Upload FILE through signed URLs (in resumable parts if large), confirm it, and with
    --wait follow its job."""
    return client_commands.run(client_commands.upload(args))


def jobs(args: argparse.Namespace) -> int:
    """List the caller's jobs, or follow one to its end (--watch)."""
    return client_commands.run(client_commands.jobs(args))


CLIENT_COMMANDS = {"upload": upload, "jobs": jobs}
