"""The HTML admin page at ``/admin/``: the same listing as the JSON API, as tables.

Rendered on the server with no script, and every value escaped: settings and health
errors come from settings files and backends, not from us.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from mediasrv import __version__

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin-bottom: 2em; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.ok { color: #0a6b1f; font-weight: bold; }
td.failing { color: #a40e0e; font-weight: bold; }
dl { margin: 0; display: grid; grid-template-columns: auto auto; gap: 0 1em; }
dt { color: #555; } dd { margin: 0; font-family: monospace; }
p.notice { background: #eef6ee; border: 1px solid #9c9; padding: .5em; }
"""


def render_admin_page(
    backends: list[dict[str, Any]],
    plugins: list[dict[str, Any]],
    cache: dict[str, Any] | None = None,
    notice: str = "",
) -> str:
    """The whole page: a table of backends, a table of plugins, then the result cache (with
    ``notice``, the outcome of a purge, on top)."""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>mediasrv admin</title>
<style>{STYLE}</style>
</head>
<body>
<h1>mediasrv {escape(__version__)}</h1>
{f'<p class="notice">{escape(notice)}</p>' if notice else ""}
<h2>Backends</h2>
{_backends_table(backends)}
<h2>Plugins</h2>
{_plugins_table(plugins)}
{render_cache_section(cache, [backend["name"] for backend in backends]) if cache is not None else ""}
<p>JSON: <a href="backends">backends</a>, <a href="plugins">plugins</a>, <a href="cache">cache</a>.</p>
</body>
</html>
"""


def _backends_table(backends: list[dict[str, Any]]) -> str:
    if not backends:
        return "<p>No backends are configured.</p>"
    header = _row("th", ["Name", "Kind", "Plugin", "Health", "Latency (ms)", "Checked at", "Settings"])
    rows = [_backend_row(backend) for backend in backends]
    return _table("backends", header, rows)


def _backend_row(backend: dict[str, Any]) -> str:
    health = backend["health"]
    plugin = backend["plugin"]
    state = "ok" if health["ok"] else f"failing: {health['error']}"
    cells = [
        f"<td>{escape(backend['name'])}</td>",
        f"<td>{escape(backend['kind'])}</td>",
        f"<td>{escape(str(plugin['module']))} {escape(str(plugin['version'] or ''))}</td>",
        f'<td class="{"ok" if health["ok"] else "failing"}">{escape(state)}</td>',
        f"<td>{health['latency_ms']}</td>",
        f"<td>{escape(health['checked_at'])}</td>",
        f"<td>{_settings_list(backend['settings'])}</td>",
    ]
    return f"<tr>{''.join(cells)}</tr>"


def _settings_list(settings: dict[str, Any]) -> str:
    items = "".join(f"<dt>{escape(key)}</dt><dd>{escape(_show(value))}</dd>" for key, value in settings.items())
    return f"<dl>{items}</dl>"


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def render_cache_section(cache: dict[str, Any], backends: list[str]) -> str:
    """The result cache's tiers (``GET /admin/cache``'s document) and the purge form."""
    if not cache["enabled"]:
        return "<h2>Result cache</h2>\n<p>No result cache is configured.</p>"
    header = _row(
        "th", ["Tier", "Kind", "Entries", "Bytes", "Max bytes", "Hits", "Misses", "Hit ratio", "Evictions", "Error"]
    )
    tiers = list(cache["tiers"])
    if cache["sources"] is not None:
        tiers.append({"name": "source (originals)", "kind": "disk", "error": None, **cache["sources"]})
    rows = [_row("td", [_show_or_blank(tier.get(field)) for field in CACHE_FIELDS]) for tier in tiers]
    options = "".join(f"<option>{escape(name)}</option>" for name in backends)
    return f"""<h2>Result cache</h2>
{_table("cache", header, rows)}
<p>Requests that waited for another's render: {cache["coalesced"]} (hits and misses: worker {cache["worker_pid"]}).</p>
<form method="post" action="cache/purge">
<label>Purge every variant of <select name="backend">{options}</select></label>
<label>key <input name="key" required></label>
<button type="submit">Purge</button>
</form>"""


CACHE_FIELDS = ("name", "kind", "entries", "bytes", "max_bytes", "hits", "misses", "hit_ratio", "evictions", "error")


def _show_or_blank(value: Any) -> str:
    return "" if value is None else str(value)


def _plugins_table(plugins: list[dict[str, Any]]) -> str:
    header = _row("th", ["Name", "Module", "Distribution", "Version", "Hooks", "Backend kinds", "Transforms"])
    rows = [
        _row(
            "td",
            [
                plugin["name"],
                plugin["module"],
                plugin["distribution"] or "",
                plugin["version"] or "",
                ", ".join(plugin["hooks"]),
                ", ".join(plugin["kinds"]),
                ", ".join(plugin["operations"]),
            ],
        )
        for plugin in plugins
    ]
    return _table("plugins", header, rows)


def _row(cell: str, values: list[str]) -> str:
    return "<tr>" + "".join(f"<{cell}>{escape(value)}</{cell}>" for value in values) + "</tr>"


def _table(table_id: str, header: str, rows: list[str]) -> str:
    body = "\n".join(rows)
    return f'<table id="{table_id}">\n<thead>{header}</thead>\n<tbody>\n{body}\n</tbody>\n</table>'
