"""The ``mediasrv`` command."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from mediasrv.app import build_app
from mediasrv.plugins import PluginError
from mediasrv.settings import ConfigError, find_settings_file

EXIT_CONFIG_ERROR = 2

# Flags are handed to the workers as environment variables, the layer they override.
_FLAG_ENVIRONMENT = {
    "host": "MEDIASRV_SERVER__HOST",
    "port": "MEDIASRV_SERVER__PORT",
    "workers": "MEDIASRV_SERVER__WORKERS",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        status: int = args.run(args)
        return status
    except (ConfigError, PluginError) as exc:
        print(f"mediasrv: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR


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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mediasrv", description="Plugin-based media delivery server.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    serve_parser = commands.add_parser("serve", help="serve the configured backends over HTTP")
    serve_parser.add_argument("--config", help="settings file (default: $MEDIASRV_CONFIG, else ./settings.toml)")
    serve_parser.add_argument("--host", help="address to listen on")
    serve_parser.add_argument("--port", type=int, help="port to listen on")
    serve_parser.add_argument("--workers", type=int, help="worker processes")
    serve_parser.set_defaults(run=serve)
    return parser
