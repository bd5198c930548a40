"""``[cache]`` settings: the disk tier's keys, ``[cache.KIND]`` store tables validated by their
store's Settings, mistakes stopping start-up with one line naming the key, store plugins
loaded like any plugin, and a plugin's store serving variants over a real uvicorn."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cached_render import renders, settings
from conftest import TEST_PLUGINS_DIR, get, scrape, start_server, value
from images import jpeg
from mediasrv.cache.disk import DiskStore
from mediasrv.configuration import load_configuration
from mediasrv.plugins import PluginError, get_plugin_manager, result_store_kinds
from mediasrv.settings import ConfigError
from mediasrv_s3 import S3Store
from test_plugin_mistakes import assert_one_line, run_serve


def configure(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(text)
    return path


def test_the_builtin_store_kinds_are_registered_as_plugins() -> None:
    kinds = result_store_kinds(get_plugin_manager())
    assert kinds["disk"].store_class is DiskStore and kinds["disk"].plugin_name == "disk"
    assert kinds["s3"].store_class is S3Store and kinds["s3"].plugin_name == "s3"


def test_no_cache_table_means_no_store(tmp_path: Path) -> None:
    assert load_configuration(configure(tmp_path, "")).stores == []


def test_cache_path_and_s3_table_build_the_tiers_in_order(tmp_path: Path) -> None:
    text = '[cache]\npath = "cache"\nmax_bytes = 2097152\n\n[cache.s3]\nbucket = "variants"\nprefix = "v1"\n'
    stores = load_configuration(configure(tmp_path, text)).stores
    assert [store.kind for store in stores] == ["disk", "s3"]
    disk, s3 = stores
    assert isinstance(disk, DiskStore) and disk.settings.path == tmp_path / "cache"  # relative to the file
    assert disk.settings.max_bytes == 2097152
    assert isinstance(s3, S3Store) and s3.settings.prefix == "v1/"


def test_the_environment_sets_cache_keys_and_store_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDIASRV_CACHE__PATH", str(tmp_path / "from-env"))
    monkeypatch.setenv("MEDIASRV_CACHE__S3__SECRET_ACCESS_KEY", "env-secret")
    text = '[cache.s3]\nbucket = "variants"\naccess_key_id = "AKID"\n'
    disk, s3 = load_configuration(configure(tmp_path, text)).stores
    assert isinstance(disk, DiskStore) and disk.settings.path == tmp_path / "from-env"
    assert isinstance(s3, S3Store) and s3.settings.secret_access_key.get_secret_value() == "env-secret"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[cache]\npath = "c"\nmax_bytes = 10\n', "cache.max_bytes: Input should be greater than or equal to 1048576"),
        ("[cache.s3]\nprefix = 'x'\n", "cache.s3.bucket: Field required (plugin 's3')"),
        ("[cache.s3]\nbucket = 'b'\nbuckett = 'b'\n", "cache.s3.buckett: Extra inputs are not permitted"),
        ("[cache.redis]\nurl = 'x'\n", "cache.redis: no plugin provides result store kind 'redis' (available: disk, s3)"),
        ("[cache]\nsize = 3\n", "unknown key 'size' (a store is a table: [cache.size])"),
    ],
)
def test_a_cache_mistake_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_configuration(configure(tmp_path, text))
    assert message in str(caught.value)


def test_serve_stops_with_one_line_on_a_cache_mistake(tmp_path: Path) -> None:
    configure(tmp_path, "[cache.redis]\nurl = 'x'\n")
    status, stderr = run_serve(tmp_path, tmp_path)
    assert status == 2
    assert_one_line(stderr, "settings.toml", "cache.redis: no plugin provides result store kind 'redis'")


def test_a_store_kind_registered_twice_stops_start_up(tmp_path: Path) -> None:
    for name in ("memory_store", "memory_store_again"):
        shutil.copy(TEST_PLUGINS_DIR / "memory_store.py", tmp_path / f"{name}.py")
    with pytest.raises(PluginError, match="result store kind 'memory' is already registered by plugin"):
        result_store_kinds(get_plugin_manager(["memory_store", "memory_store_again"], search_path=tmp_path))


def test_a_plugins_store_serves_variants(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    (media / "photo.jpg").write_bytes(jpeg(400, 300))
    text = 'plugins = ["memory_store"]\n' + settings(media, None, "[cache.memory]\nmax_entries = 10\n")
    server = start_server(tmp_path / "server", text, plugins=("memory_store",))
    try:
        first = get(server, "/media/local/photo.jpg?width=100")
        second = get(server, "/media/local/photo.jpg?width=100")
        assert first.status_code == second.status_code == 200 and first.content == second.content
        assert renders(server) == 1
        hits = value(scrape(server), "mediasrv_result_cache_requests_total", tier="memory", result="hit")
        assert hits == 1
    finally:
        server.stop()
