"""Regressions of issue 12's attack pass, each over a real socket to ``mediasrv serve`` with
real local, S3 (moto) and HTTP (aiohttp) backends: aborted downloads, the per-client stream
cap, a stalled stdout, streams cut at shutdown, a file overwritten while served, secrets in
URL settings, Host reflected into redirects and the token-less admin behind a proxy."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from conftest import (
    Server,
    abort_after_first_bytes,
    free_port,
    isolated_environment,
    open_stalled_stream,
    start_server,
    wait_until,
    write_settings,
)
from s3_server import MotoServer, terminate
from upstreams import Upstream, UpstreamLoop, files_app

MakeServer = Callable[..., Server]
BIG_SIZE = 10 * 1024 * 1024
HEALTH_SECRET = "health-query-s3cr3t"
INCOMPLETE = "ASGI callable returned without completing response"


@dataclass
class Backends:
    root: Path
    files: Upstream
    moto: MotoServer

    def settings(self, server: str = "") -> str:
        return f"""
[server]
{server}

[backends.disk]
kind = "local"
root = "{self.root}"

[backends.web]
kind = "http"
base_url = "{self.files.origin}/files/"
health_path = "/health?token={HEALTH_SECRET}"

{self.moto.backend_settings("bucket", "attack")}
"""


@pytest.fixture(scope="module")
def backends(tmp_path_factory: pytest.TempPathFactory, moto: MotoServer) -> Iterator[Backends]:
    root = tmp_path_factory.mktemp("attack-files")
    big = os.urandom(BIG_SIZE)
    (root / "big.bin").write_bytes(big)
    (root / "small.txt").write_text("small")
    s3 = moto.client()
    s3.create_bucket(Bucket="attack")
    s3.put_object(Bucket="attack", Key="big.bin", Body=big)
    loop = UpstreamLoop()
    try:
        yield Backends(root, loop.serve(files_app(root)), moto)
    finally:
        loop.close()


@pytest.fixture(scope="module")
def server(backends: Backends, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("attack-server"), backends.settings())
    yield server
    server.stop()


def test_aborted_downloads_from_s3_and_http_log_no_incomplete_response(server: Server) -> None:
    for backend in ("bucket", "web", "disk"):
        for _ in range(25):
            abort_after_first_bytes(server, f"/media/{backend}/big.bin")
    assert wait_until(lambda: httpx.get(server.url + "/healthz").status_code == 200)
    time.sleep(0.5)
    assert INCOMPLETE not in server.log()


def test_one_address_gets_at_most_max_streams_per_client(backends: Backends, make_server: MakeServer) -> None:
    server = make_server(backends.settings("max_streams_per_client = 3"))
    held = [open_stalled_stream(server, f"/media/{name}/big.bin") for name in ("disk", "web", "disk")]
    try:
        refused = httpx.get(server.url + "/media/disk/small.txt")
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.json() == {"detail": "too many concurrent streams from this address"}
        other = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"))
        assert other.get(server.url + "/media/disk/small.txt").text == "small"  # from 127.0.0.2
        other.close()
        assert httpx.head(server.url + "/media/disk/small.txt").status_code == 200  # HEAD takes no slot
        held.pop().close()
        assert wait_until(lambda: httpx.get(server.url + "/media/disk/small.txt").status_code == 200)
    finally:
        for sock in held:
            sock.close()


def test_max_streams_per_client_zero_is_no_cap(backends: Backends, make_server: MakeServer) -> None:
    server = make_server(backends.settings("max_streams_per_client = 0"))
    held = [open_stalled_stream(server, "/media/disk/big.bin") for _ in range(33)]  # one more than the default
    try:
        assert httpx.get(server.url + "/media/disk/small.txt").status_code == 200
    finally:
        for sock in held:
            sock.close()


def test_a_stdout_nobody_reads_does_not_stop_serving(backends: Backends, tmp_path: Path) -> None:
    path = write_settings(tmp_path, backends.settings())
    port = free_port()
    with (tmp_path / "stderr.log").open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "mediasrv", "serve", "--config", str(path), "--port", str(port)],
            stdout=subprocess.PIPE,  # never read: the pipe fills after about 64 KiB of log lines
            stderr=stderr,
            env=isolated_environment(),
            cwd=tmp_path,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_until(lambda: _answers(url), timeout=20)
        with httpx.Client(timeout=5) as client:
            for index in range(5000):  # until lines are dropped: the pipe and the queue are full
                assert client.get(f"{url}/media/disk/small.txt?n={index}").status_code == 200
                if index % 100 == 99 and _dropped_lines(client.get(f"{url}/metrics").text) > 0:
                    break
            assert _dropped_lines(client.get(f"{url}/metrics").text) > 0
    finally:
        assert process.stdout is not None
        process.stdout.close()  # unblocks the writer thread, so the server can stop
        terminate(process)


def _dropped_lines(metrics: str) -> float:
    found = re.search(r"^mediasrv_access_log_dropped_lines_total (\S+)$", metrics, re.MULTILINE)
    assert found is not None
    return float(found.group(1))


def _answers(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_a_stream_cut_at_shutdown_is_logged_cancelled(backends: Backends, make_server: MakeServer) -> None:
    server = make_server(backends.settings("shutdown_timeout = 1"))
    sock = open_stalled_stream(server, "/media/disk/big.bin")
    try:
        server.stop()
    finally:
        sock.close()
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    line = next(line for line in lines if line["path"] == "/media/disk/big.bin")
    assert line["outcome"] == "cancelled"
    assert line["bytes"] < BIG_SIZE


def test_a_file_overwritten_while_served_aborts_the_transfer(backends: Backends, server: Server) -> None:
    path = backends.root / "changing.bin"
    path.write_bytes(os.urandom(32 * 1024 * 1024))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(b"GET /media/disk/changing.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    received = sock.recv(65536)
    time.sleep(0.2)  # the server is now blocked on this client, far from the file's end
    with path.open("r+b") as file:
        file.seek(30 * 1024 * 1024)
        file.write(b"new version")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024 * 1024)
    try:
        while chunk := sock.recv(1024 * 1024):
            received += chunk
    except ConnectionResetError:
        pass
    sock.close()
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"content-length: 33554432" in head.lower()
    assert len(body) < 32 * 1024 * 1024


def test_query_secrets_in_health_path_are_masked(backends: Backends, server: Server) -> None:
    listing = httpx.get(server.url + "/admin/backends/web")
    assert listing.status_code == 200
    assert HEALTH_SECRET not in listing.text
    assert listing.json()["settings"]["health_path"] == "/health?token=**********"
    cli = subprocess.run(
        [sys.executable, "-m", "mediasrv", "backends", "--json", "--config", str(server.config_dir / "settings.toml")],
        capture_output=True,
        text=True,
        env=isolated_environment(),
        timeout=60,
    )
    assert "health_path" in cli.stdout
    assert HEALTH_SECRET not in cli.stdout + cli.stderr


@pytest.mark.parametrize("path", ["/media/disk", "/admin", "/healthz/", "/admin/backends/", "/metrics/"])
def test_no_redirect_reflects_the_host_header(server: Server, path: str) -> None:
    status, headers, body = server.raw_get(path, headers={"Host": "evil.example"})
    assert status == 404
    assert "location" not in headers
    assert json.loads(body) == {"detail": "Not Found"}


@pytest.mark.parametrize(
    "header",
    [
        "Via",
        "X-Forwarded-Host",
        "X-Forwarded-Proto",
        "True-Client-IP",
        "CF-Connecting-IP",
        "X-Client-IP",
        "X-Cluster-Client-IP",
        "Fastly-Client-IP",
        "Forwarded",
        "X-Forwarded-For",
        "X-Real-IP",
    ],
)
def test_token_less_admin_refuses_any_proxy_header(server: Server, header: str) -> None:
    assert httpx.get(server.url + "/admin/backends").status_code == 200
    refused = httpx.get(server.url + "/admin/backends", headers={header: "1.1 proxy"})
    assert refused.status_code == 403
    assert "came through a proxy" in refused.json()["detail"]
