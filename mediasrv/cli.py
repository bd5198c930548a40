"""The ``mediasrv`` command: serve, and the operator's checks (backends, plugins, check)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mediasrv.app import build_app
from mediasrv.configuration import Configuration, load_configuration, load_plugins
from mediasrv.health import HealthMonitor
from mediasrv.inventory import Inventory, plugin_document
from mediasrv.plugins import (
    TRACE_ENV,
    PluginError,
    Problems,
    backend_kinds,
    get_plugin_manager,
    plugin_infos,
    transform_operations,
)
from mediasrv.settings import CONFIG_ENV, ConfigError, find_settings_file, load_settings

EXIT_UNHEALTHY = 1
EXIT_CONFIG_ERROR = 2
EXIT_USAGE = 2  # argparse's status for a bad command line

# Flags are handed to the workers as environment variables, the layer they override.
_FLAG_ENVIRONMENT = {
    "host": "MEDIASRV_SERVER__HOST",
    "port": "MEDIASRV_SERVER__PORT",
    "workers": "MEDIASRV_SERVER__WORKERS",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    if os.environ.get(TRACE_ENV, "") not in ("", "0"):
        _log_traces_to_stderr()
    try:
        status: int = args.run(args)
        return status
    except (ConfigError, PluginError) as exc:
        print(f"mediasrv: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR


def _log_traces_to_stderr() -> None:
    """Plugin trace lines on stderr from the start, so that they are there when loading fails
    (the server's own logging is set up only once it runs)."""
    logger = logging.getLogger("mediasrv")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def serve(args: argparse.Namespace) -> int:
    """``mediasrv serve``: check the settings and plugins, then serve."""
    from mediasrv.server import serve as run_server

    for flag, variable in _FLAG_ENVIRONMENT.items():
        value = getattr(args, flag)
        if value is not None:
            os.environ[variable] = str(value)
    path = find_settings_file(args.config)
    app = build_app(path)  # fail here, with one line, rather than in every worker
    run_server(path, app.state.settings)
    return 0


def check(args: argparse.Namespace) -> int:
    """``mediasrv check``: validate the settings file, its plugins and every backend table."""
    configuration = load_configuration(args.config)
    backends = configuration.registry.backends
    names = ", ".join(f"{name} ({backend.kind})" for name, backend in backends.items()) or "none"
    print(f"{configuration.path}: OK; backends: {names}")
    return 0


def backends(args: argparse.Namespace) -> int:
    """``mediasrv backends``: start each backend, check its health, print them; 1 if any is unhealthy."""
    listing = asyncio.run(_check_backends(load_configuration(args.config)))
    if args.json:
        print(json.dumps({"backends": listing}, indent=2))
    else:
        print(_backends_table(listing))
    return 0 if all(backend["health"]["ok"] for backend in listing) else EXIT_UNHEALTHY


def plugins(args: argparse.Namespace) -> int:
    """``mediasrv plugins``: the installed plugins, plus the settings file's when there is one.

    A broken plugin is listed as such, after the ones that loaded; the status is then 1."""
    explicit = args.config or os.environ.get(CONFIG_ENV)
    problems = Problems()
    if explicit or find_settings_file().is_file():
        _, _, pm = load_plugins(args.config, problems)
    else:
        pm = get_plugin_manager(problems=problems)
    infos = plugin_infos(pm, backend_kinds(pm, problems), transform_operations(pm, problems))
    if args.json:
        broken = [{"name": plugin.name, "problem": plugin.problem} for plugin in problems.broken]
        print(json.dumps({"plugins": [plugin_document(info) for info in infos], "broken": broken}, indent=2))
    else:
        rows = [
            [
                info.name,
                info.module,
                info.distribution or "-",
                info.version or "-",
                ", ".join(info.kinds) or "-",
                ", ".join(info.operations) or "-",
            ]
            for info in infos
        ]
        rows += [[plugin.name, "BROKEN", "-", "-", "-", plugin.problem] for plugin in problems.broken]
        print(format_table(["NAME", "MODULE", "DISTRIBUTION", "VERSION", "KINDS", "OPERATIONS"], rows))
    return EXIT_UNHEALTHY if problems.broken else 0


def new_backend(args: argparse.Namespace) -> int:
    """``mediasrv new-backend NAME``: write a backend plugin distribution to start from."""
    from mediasrv.scaffold import backend_names, write_backend

    names = backend_names(args.name)
    return _scaffold(args, write_backend, f"the {names['class_name']} plugin (kind {args.name!r})", "backend.py")


def new_transform(args: argparse.Namespace) -> int:
    """``mediasrv new-transform NAME``: write a transform plugin distribution to start from."""
    from mediasrv.scaffold import write_transform

    return _scaffold(args, write_transform, f"the ?{args.name}= transform plugin", "operation.py")


def _scaffold(args: argparse.Namespace, write: Callable[[str, Path], Path], what: str, module: str) -> int:
    """Write the distribution for ``args.name`` in ``args.dir``, then say what to do next."""
    target = write(args.name, Path(args.dir))
    print(f"wrote {target}: {what}. Next:")
    print(f"  cd {target} && pip install -e '.[test]' && python -m pytest")
    print(f"  then write mediasrv_{args.name}/{module} until the tests pass")
    return 0


def sign(args: argparse.Namespace) -> int:
    """``mediasrv sign``: print URL signed with the first ``[signing]`` key."""
    path = find_settings_file(args.config)
    signer = load_settings(path).signing.signer()
    if signer is None:
        raise ConfigError(f"{path}: signing.keys: empty; set it (or MEDIASRV_SIGNING__KEYS) to sign URLs")
    try:
        print(signer.sign(args.url, args.expires))
    except ValueError as exc:
        print(f"mediasrv: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    """Columns padded to their widest cell, the last one left ragged."""
    table = [headers, *rows]
    widths = [max(len(row[column]) for row in table) for column in range(len(headers))]
    lines = ("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in table)
    return "\n".join(line.rstrip() for line in lines)


def _backends_table(listing: list[dict[str, Any]]) -> str:
    rows = []
    for backend in listing:
        health, plugin = backend["health"], backend["plugin"]
        rows.append(
            [
                backend["name"],
                backend["kind"],
                f"{plugin['module']} {plugin['version'] or ''}".strip(),
                "ok" if health["ok"] else "FAILING",
                f"{health['latency_ms']} ms",
                health["error"] or "",
            ]
        )
    return format_table(["NAME", "KIND", "PLUGIN", "HEALTH", "LATENCY", "ERROR"], rows)


async def _check_backends(configuration: Configuration) -> list[dict[str, Any]]:
    registry = configuration.registry
    monitor = HealthMonitor(registry, configuration.settings.admin.health_timeout, max_age=0)
    await registry.start()
    try:
        return await Inventory.of(configuration, monitor).backends()
    finally:
        await registry.stop()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mediasrv", description="Plugin-based media delivery server.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    config_help = "settings file (default: $MEDIASRV_CONFIG, else ./settings.toml)"

    serve_parser = commands.add_parser("serve", help="serve the configured backends over HTTP")
    serve_parser.add_argument("--config", help=config_help)
    serve_parser.add_argument("--host", help="address to listen on")
    serve_parser.add_argument("--port", type=int, help="port to listen on")
    serve_parser.add_argument("--workers", type=int, help="worker processes")
    serve_parser.set_defaults(run=serve)

    check_parser = commands.add_parser("check", help="validate a settings file and its plugins; exit 2 if invalid")
    check_parser.add_argument("--config", help=config_help)
    check_parser.set_defaults(run=check)

    backends_parser = commands.add_parser(
        "backends", help="check and list the configured backends; exit 1 if any is unhealthy"
    )
    backends_parser.add_argument("--config", help=config_help)
    backends_parser.add_argument("--json", action="store_true", help="print the /admin/backends document")
    backends_parser.set_defaults(run=backends)

    plugins_parser = commands.add_parser("plugins", help="list the loaded plugins and their versions")
    plugins_parser.add_argument("--config", help=config_help)
    plugins_parser.add_argument("--json", action="store_true", help="print the /admin/plugins document")
    plugins_parser.set_defaults(run=plugins)

    sign_parser = commands.add_parser("sign", help="print a URL (or /media/... path) signed with [signing] keys")
    sign_parser.add_argument("url", metavar="URL", help="the URL or path to sign; an exp already in it is kept")
    sign_parser.add_argument("--expires", type=_positive_int, metavar="SECONDS", help="valid for SECONDS from now")
    sign_parser.add_argument("--config", help=config_help)
    sign_parser.set_defaults(run=sign)

    new_backend_parser = commands.add_parser(
        "new-backend", help="write a backend plugin distribution (package, entry point, tests) to start from"
    )
    new_backend_parser.add_argument("name", help="the backend kind, e.g. sqlite (lower case, digits, _)")
    new_backend_parser.add_argument("--dir", default=".", help="folder to write it in (default: the current one)")
    new_backend_parser.set_defaults(run=new_backend)
    new_transform_parser = commands.add_parser(
        "new-transform", help="write a transform plugin distribution (package, entry point, tests) to start from"
    )
    new_transform_parser.add_argument("name", help="the query parameter, e.g. sepia (lower case, digits, _)")
    new_transform_parser.add_argument("--dir", default=".", help="folder to write it in (default: the current one)")
    new_transform_parser.set_defaults(run=new_transform)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value
