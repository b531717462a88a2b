"""The `metering` command: run the service or its parts, and administer tenants.

    metering up | serve | gateway | worker | migrate
    metering orgs create NAME | orgs list
    metering projects create --org ORG NAME | projects list --org ORG
    metering users create --org ORG --username U --password P [--role admin|member]
    metering keys create --org ORG [--project P] [--user U] [--role admin|member] [--name N]
    metering keys revoke --org ORG KEY | keys list --org ORG
    metering prices sync|load|set|list|reprice|unpriced|costs --org ORG ...   (server/runtime/prices_cli.py)
    metering export usage|events [filters] --out FILE [--format csv|ndjson] [--resume]   (server/runtime/export_cli.py)

Admin verbs reach the service that runs: --target (or METERING_TARGET), else the
`up` of the data dir given (--data-dir, METERING_DATA_DIR), else the database named
by METERING_DATABASE_URL, else the one `up` this user runs; with none of these they
refuse. They never start a database of their own (server/runtime/admin_cli.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from metering.logs import configure_logging
from server.core.config import ConfigError, load_settings


def _add_org(p: argparse.ArgumentParser) -> None:
    p.add_argument("--org", required=True, help="organization id or name")


def _parser() -> argparse.ArgumentParser:
    data_dir_help = "where embedded Postgres/Redis live (default $METERING_DATA_DIR or ~/.local/share/metering)"
    parser = argparse.ArgumentParser(prog="metering", description="Usage metering for AI APIs.")
    parser.add_argument("--data-dir", help=data_dir_help)
    # The service verbs take it after the verb too (`metering up --data-dir DIR`, what `./dev up --data-dir DIR`
    # runs); SUPPRESS keeps a global --data-dir when the verb's own is not given.
    service = argparse.ArgumentParser(add_help=False)
    service.add_argument("--data-dir", default=argparse.SUPPRESS, help=data_dir_help)
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")
    verbs.add_parser("up", parents=[service], help="migrations, gRPC server, gateway and worker in one command")
    serve_verb = verbs.add_parser("serve", parents=[service], help="run the gRPC server")
    serve_verb.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)  # one of a multi-process serve
    verbs.add_parser("gateway", parents=[service], help="run the REST gateway")
    verbs.add_parser("worker", parents=[service], help="run the rollup worker")
    verbs.add_parser("migrate", parents=[service], help="apply database migrations")

    target_help = "gRPC address of a running service (default $METERING_TARGET; unset: the running up)"
    orgs = verbs.add_parser("orgs", help="organizations").add_subparsers(dest="action", required=True)
    p = orgs.add_parser("create", help="create an organization")
    p.add_argument("name")
    p.add_argument("--target", help=target_help)
    p = orgs.add_parser("list", help="list organizations")
    p.add_argument("--target", help=target_help)

    projects = verbs.add_parser("projects", help="projects").add_subparsers(dest="action", required=True)
    p = projects.add_parser("create", help="create a project")
    _add_org(p)
    p.add_argument("name")
    p.add_argument("--id", default="", help="project id used in events (default: the name)")
    p.add_argument("--target", help=target_help)
    p = projects.add_parser("list", help="list projects")
    _add_org(p)
    p.add_argument("--target", help=target_help)

    users = verbs.add_parser("users", help="users").add_subparsers(dest="action", required=True)
    p = users.add_parser("create", help="create a user")
    _add_org(p)
    p.add_argument("--username", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--role", choices=["admin", "member"], default="member")
    p.add_argument("--id", default="", help="user id used in events (default: a new uuid)")
    p.add_argument("--target", help=target_help)
    p = users.add_parser("list", help="list users")
    _add_org(p)
    p.add_argument("--target", help=target_help)

    keys = verbs.add_parser("keys", help="API keys").add_subparsers(dest="action", required=True)
    p = keys.add_parser("create", help="create an API key; the key is printed once, alone on the last line")
    _add_org(p)
    p.add_argument("--project", default="", help="restrict the key to this project")
    p.add_argument("--user", default="", help="bind the key to this user")
    p.add_argument("--role", choices=["admin", "member"], default=None,
                   help="default: the user's role with --user, else admin")
    p.add_argument("--name", default="")
    p.add_argument("--target", help=target_help)
    p = keys.add_parser("revoke", help="revoke an API key")
    _add_org(p)
    p.add_argument("key", help="the key's id (key_...) or the key itself")
    p.add_argument("--target", help=target_help)
    p = keys.add_parser("list", help="list API keys")
    _add_org(p)
    p.add_argument("--target", help=target_help)

    from server.runtime.prices_cli import add_parser as add_prices_parser

    add_prices_parser(verbs, target_help)
    from server.runtime.export_cli import add_parser as add_export_parser

    add_export_parser(verbs, target_help)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.data_dir:
        os.environ["METERING_DATA_DIR"] = args.data_dir
    try:
        settings = load_settings()
        configure_logging()  # METERING_LOG_LEVEL, METERING_LOG_FORMAT, METERING_ACCESS_LOG (metering/logs.py)
    except ValueError as exc:  # ConfigError too: the message names the variable
        print(f"metering: {exc}", file=sys.stderr)
        return 2
    if args.verb == "up":
        from server.runtime.up import up

        return up(settings)
    if args.verb == "serve":
        from server.runtime.up import serve

        return serve(settings, reuse_port=args.reuse_port)
    if args.verb in ("gateway", "worker"):
        os.execv(sys.executable, [sys.executable, "-m", args.verb])
    if args.verb == "migrate":
        from server.runtime.up import migrate

        return migrate(settings)
    if args.verb == "export":
        from server.runtime.export_cli import run_export

        try:
            return asyncio.run(run_export(args, settings, data_dir_given=bool(os.environ.get("METERING_DATA_DIR"))))
        except ConfigError as exc:
            print(f"metering: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"metering: interrupted; the same command with --resume continues {args.out}", file=sys.stderr)
            return 130
    from server.runtime.admin_cli import run_admin
    from server.runtime.running import AlreadyRunning

    try:
        return asyncio.run(run_admin(args, settings, data_dir_given=bool(os.environ.get("METERING_DATA_DIR"))))
    except (ConfigError, AlreadyRunning) as exc:
        print(f"metering: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
