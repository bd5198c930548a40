"""Fixtures that run mediasrv for real: ``mediasrv serve`` in a subprocess on a free
127.0.0.1 port, with a settings file written for the test."""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from components import chromium_binary, nginx_binary  # noqa: F401  (fixtures)
from s3_server import MotoServer, terminate

TESTS_DIR = Path(__file__).parent
PROJECT_DIR = TESTS_DIR.parent
TEST_PLUGINS_DIR = TESTS_DIR / "plugins"
START_TIMEOUT = 20.0


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def reset(sock: socket.socket) -> None:
    """Close ``sock`` with a TCP reset, as a client that goes away abruptly does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """A running ``mediasrv serve`` process."""

    process: subprocess.Popen[bytes]
    port: int
    config_dir: Path
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def open_files_under(self, folder: Path) -> list[str]:
        """Paths under ``folder`` that the server process holds open."""
        fd_dir = Path(f"/proc/{self.process.pid}/fd")
        held = []
        for fd in fd_dir.iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith(str(folder)):
                held.append(target)
        return held

    def bytes_read(self) -> int:
        """Bytes the server process has read from files and sockets (/proc/PID/io rchar)."""
        for line in Path(f"/proc/{self.process.pid}/io").read_text().splitlines():
            if line.startswith("rchar:"):
                return int(line.split()[1])
        raise AssertionError("no rchar in /proc/PID/io")

    def connections_to(self, port: int) -> int:
        """Established TCP connections from the server process to 127.0.0.1:``port``."""
        return sum(
            1
            for connection in psutil.Process(self.process.pid).net_connections("tcp")
            if connection.raddr and connection.raddr.port == port and connection.status == psutil.CONN_ESTABLISHED
        )

    def raw_get(
        self, path: str, headers: dict[str, str] | None = None, method: str = "GET"
    ) -> tuple[int, dict[str, str], bytes]:
        """A request whose path is sent exactly as given (httpx would normalise ``..``)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path, headers=headers or {})
            response = connection.getresponse()
            body = response.read()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, body
        finally:
            connection.close()

    def stop(self, timeout: float = 15.0) -> int:
        return terminate(self.process, timeout)


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(server: Server) -> Samples:
    """Every sample of the server's /metrics, by name and labels."""
    response = httpx.get(server.url + "/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value (0 when absent)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def get(server: Server, path: str, **headers: str) -> httpx.Response:
    """GET ``path`` from ``server`` with the given request headers."""
    return httpx.get(server.url + path, headers=headers, timeout=20)


def open_stalled_stream(server: Server, path: str) -> socket.socket:
    """A GET whose response headers have arrived and whose body is left unread."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    assert sock.recv(64).startswith(b"HTTP/1.1 200")
    return sock


def abort_after_first_bytes(server: Server, path: str, read: int = 65536) -> None:
    """GET ``path``, read ``read`` bytes, then reset the connection."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        received = 0
        while received < read:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += len(chunk)
        assert received >= read
    finally:
        reset(sock)


def local_server_settings(root: Path, chunk_size: int | None = None, **server: object) -> str:
    """A settings file with ``[server]`` keys (values as TOML text) and one local backend, ``local``."""
    lines = "\n".join(f"{key} = {value}" for key, value in server.items())
    chunk_line = f"chunk_size = {chunk_size}" if chunk_size is not None else ""
    return f"""
[server]
{lines}

[backends.local]
kind = "local"
root = "{root}"
{chunk_line}
"""


def write_settings(config_dir: Path, text: str, plugins: tuple[str, ...] = ()) -> Path:
    """Write settings.toml into ``config_dir``, with the named test plugins beside it."""
    config_dir.mkdir(parents=True, exist_ok=True)
    for plugin in plugins:
        shutil.copy(TEST_PLUGINS_DIR / f"{plugin}.py", config_dir / f"{plugin}.py")
    path = config_dir / "settings.toml"
    path.write_text(text)
    return path


def isolated_environment() -> dict[str, str]:
    """This process's environment without mediasrv or AWS settings, and no way to reach AWS
    credentials: no shared files, no instance metadata."""
    inherited = {key: value for key, value in os.environ.items() if not key.startswith(("MEDIASRV_", "AWS_"))}
    return {
        **inherited,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials",
        "AWS_CONFIG_FILE": "/nonexistent/config",
    }


def start_server(
    config_dir: Path,
    settings: str,
    plugins: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
) -> Server:
    """Start ``mediasrv serve`` and wait until /healthz answers."""
    path = write_settings(config_dir, settings, plugins)
    port = free_port()
    log_path = config_dir / "server.log"
    environment = {**isolated_environment(), **(env or {})}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "mediasrv", "serve", "--config", str(path), "--port", str(port), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
            cwd=config_dir,
        )
    server = Server(process, port, config_dir, log_path)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"mediasrv exited with {process.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.05)
    server.stop()
    raise AssertionError(f"mediasrv did not answer /healthz within {START_TIMEOUT}s:\n{server.log()}")


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """A function starting servers for one test; all are stopped afterwards."""
    servers: list[Server] = []

    def make(
        settings: str, plugins: tuple[str, ...] = (), env: dict[str, str] | None = None, args: tuple[str, ...] = ()
    ) -> Server:
        server = start_server(tmp_path / f"server{len(servers)}", settings, plugins, env, args)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """A real S3 server for the whole session; tests make their own buckets in it."""
    server = MotoServer(free_port(), str(tmp_path_factory.mktemp("moto") / "moto.log"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """A moto server of this test's own, with a bucket "media", to stop or kill."""
    moto = MotoServer(free_port(), str(tmp_path_factory.mktemp("own-moto") / "moto.log"))
    moto.start()
    moto.client().create_bucket(Bucket="media")
    yield moto
    moto.stop()
