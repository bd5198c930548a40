"""``mediasrv serve``: where settings come from, and several workers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from conftest import PROJECT_DIR, Server, free_port, write_settings

MakeServer = Callable[..., Server]


def local_settings(root: Path, port: int | None = None, workers: int = 1) -> str:
    port_line = f"port = {port}" if port is not None else ""
    return f"""
[server]
{port_line}
workers = {workers}

[backends.local]
kind = "local"
root = "{root}"
"""


def wait_for_health(url: str, process: subprocess.Popen[bytes], timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return True
        except httpx.TransportError:
            time.sleep(0.05)
    return False


def run_serve(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("MEDIASRV_")}
    return subprocess.Popen(
        [sys.executable, "-m", "mediasrv", "serve", *args],
        cwd=cwd,
        env={**environment, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def test_two_workers_serve_and_stop(make_server: MakeServer, tmp_path: Path) -> None:
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "a.txt").write_text("from a worker")
    server = make_server(local_settings(tmp_path / "media"), args=("--workers", "2"))
    for _ in range(20):
        response = httpx.get(f"{server.url}/media/local/a.txt", headers={"connection": "close"})
        assert response.text == "from a worker"
    assert server.stop() in (0, -15)
    assert server.log().count("Started server process") == 2
    assert server.log().count("Application shutdown complete") == 2


def test_config_from_environment_and_port_precedence(tmp_path: Path) -> None:
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "x.txt").write_text("x")
    file_port, env_port, flag_port = free_port(), free_port(), free_port()
    path = write_settings(tmp_path / "conf", local_settings(tmp_path / "media", port=file_port))

    # $MEDIASRV_CONFIG names the file; the environment's port beats the file's.
    process = run_serve([], tmp_path, {"MEDIASRV_CONFIG": str(path), "MEDIASRV_SERVER__PORT": str(env_port)})
    try:
        assert wait_for_health(f"http://127.0.0.1:{env_port}", process)
        assert httpx.get(f"http://127.0.0.1:{env_port}/media/local/x.txt").text == "x"
    finally:
        stop(process)

    # --port beats the environment.
    process = run_serve(
        ["--config", str(path), "--port", str(flag_port)], tmp_path, {"MEDIASRV_SERVER__PORT": str(env_port)}
    )
    try:
        assert wait_for_health(f"http://127.0.0.1:{flag_port}", process)
    finally:
        stop(process)


def test_default_settings_file_serves_the_sample_images(tmp_path: Path) -> None:
    # The embedded default, from the project folder, as `make serve` runs it (port moved).
    port = free_port()
    process = run_serve(["--port", str(port)], PROJECT_DIR, {})
    try:
        assert wait_for_health(f"http://127.0.0.1:{port}", process)
        for name, content_type in [
            ("landscape.jpg", "image/jpeg"),
            ("landscape.webp", "image/webp"),
            ("icon.png", "image/png"),
        ]:
            response = httpx.get(f"http://127.0.0.1:{port}/media/local/{name}")
            assert response.status_code == 200
            assert response.headers["content-type"] == content_type
            assert response.content == (PROJECT_DIR / "media" / name).read_bytes()
    finally:
        stop(process)
