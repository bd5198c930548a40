"""The servers a benchmark compares, each in its own process on a free 127.0.0.1 port:
moto's S3 server, an aiohttp upstream, mediasrv, the comparison apps under uvicorn, nginx."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
# MotoServer lives beside the tests, which use it first; the benchmarks start the same server.
sys.path.insert(0, str(PROJECT_DIR / "tests"))
from s3_server import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, MotoServer, terminate  # noqa: E402

START_TIMEOUT = 30.0
# The same uvicorn settings mediasrv runs with (mediasrv.server): httptools, uvloop, one
# worker, no proxy headers; uvicorn's access log stays on, as it is in mediasrv.
UVICORN_FLAGS = ("--http", "httptools", "--loop", "uvloop", "--no-proxy-headers", "--workers", "1")

__all__ = ["ACCESS_KEY_ID", "REGION", "SECRET_ACCESS_KEY", "MotoServer", "Process", "free_port"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def bench_environment(**extra: str) -> dict[str, str]:
    """This environment without mediasrv or AWS settings and with no way to reach AWS."""
    inherited = {key: value for key, value in os.environ.items() if not key.startswith(("MEDIASRV_", "AWS_"))}
    return {
        **inherited,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials",
        "AWS_CONFIG_FILE": "/nonexistent/config",
        **extra,
    }


@dataclass
class Process:
    """A server under test: its process, port and log file."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_listening(self, timeout: float = START_TIMEOUT) -> None:
        """Return once the port accepts connections; fail if the process dies first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log_path}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not listen within {timeout}s; see {self.log_path}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        terminate(self.process)


def spawn(name: str, argv: list[str], workdir: Path, env: dict[str, str] | None = None) -> Process:
    """Start ``argv`` (which listens on the port in ``{port}``) with its output in a log file."""
    port = free_port()
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [part.replace("{port}", str(port)) for part in argv],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env or bench_environment(),
            cwd=PROJECT_DIR,
        )
    return Process(name, process, port, log_path)


# Every benchmark load comes from one address (wrk's 64 connections): the per-client cap is
# off, as behind a CDN, or it would refuse what the benchmark measures.
UNCAPPED = "max_streams_per_client = 0\n"


def spawn_mediasrv(name: str, workdir: Path, backends: str, server: str = UNCAPPED) -> Process:
    """``mediasrv serve`` with a settings file holding ``server`` (``[server]`` lines) and
    ``backends`` (TOML tables)."""
    config = workdir / f"{name}.toml"
    config.write_text(f'[server]\nhost = "127.0.0.1"\n{server}\n{backends}')
    argv = [sys.executable, "-m", "mediasrv", "serve", "--config", str(config), "--port", "{port}"]
    return spawn(name, argv, workdir)


def spawn_uvicorn(name: str, app: str, workdir: Path, env: dict[str, str], *flags: str) -> Process:
    """``uvicorn bench.apps:APP`` with mediasrv's uvicorn settings (and ``flags``)."""
    argv = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", "{port}", *UVICORN_FLAGS, *flags]
    return spawn(name, argv, workdir, bench_environment(**env))


def spawn_upstream(workdir: Path, root: Path) -> Process:
    """An aiohttp static file server for ``root`` (the HTTP backend's upstream)."""
    app = "bench.apps:upstream_app"
    argv = [sys.executable, "-m", "aiohttp.web", "-H", "127.0.0.1", "-P", "{port}", app, str(root)]
    return spawn("upstream", argv, workdir)


NGINX_CONF = """\
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {workdir}/nginx-access.log;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    client_body_temp_path {workdir}/nginx-body;
    proxy_temp_path {workdir}/nginx-proxy;
    fastcgi_temp_path {workdir}/nginx-fastcgi;
    uwsgi_temp_path {workdir}/nginx-uwsgi;
    scgi_temp_path {workdir}/nginx-scgi;
    types {{ image/jpeg jpg; application/octet-stream bin; }}
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""


# nginx in front of moto with a per-connection rate cap, as real S3 caps each connection.
# Without these proxy buffers limit_rate paces ranges under ~50 MiB badly (PITFALLS 34).
NGINX_CAPPED_CONF = """\
worker_processes 1;
pid {workdir}/nginx-capped.pid;
error_log {workdir}/nginx-capped-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {workdir}/nginx-capped-body;
    proxy_temp_path {workdir}/nginx-capped-proxy;
    fastcgi_temp_path {workdir}/nginx-capped-fastcgi;
    uwsgi_temp_path {workdir}/nginx-capped-uwsgi;
    scgi_temp_path {workdir}/nginx-capped-scgi;
    proxy_cache_path {workdir}/nginx-capped-cache keys_zone=objects:1m max_size=2g inactive=1h use_temp_path=off;
    server {{
        listen 127.0.0.1:{port} sndbuf=64k;
        location / {{
            proxy_pass http://127.0.0.1:{upstream_port};
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_buffers 16 1m;
            proxy_busy_buffers_size 2m;
            proxy_max_temp_file_size 0;
            proxy_cache objects;
            proxy_cache_key $uri;
            proxy_cache_valid 200 1h;
            proxy_cache_lock on;
            limit_rate {rate};
        }}
    }}
}}
"""


def nginx_binary() -> str | None:
    """nginx's path (often in /usr/sbin, outside a user's PATH), or None when not installed."""
    return shutil.which("nginx", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"]))


def spawn_nginx(workdir: Path, root: Path) -> Process | None:
    """nginx in the foreground (one worker, sendfile) serving ``root``; None without nginx."""
    binary = nginx_binary()
    if binary is None:
        return None
    port = free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(workdir=workdir, port=port, root=root))
    return _run_nginx("nginx", binary, conf, port, workdir)


def spawn_capped_proxy(workdir: Path, upstream_port: int, bytes_per_second: int) -> Process | None:
    """nginx proxying to ``upstream_port`` with every response capped at ``bytes_per_second``
    (its ``limit_rate``, per connection); None without nginx."""
    binary = nginx_binary()
    if binary is None:
        return None
    port = free_port()
    conf = workdir / "nginx-capped.conf"
    conf.write_text(
        NGINX_CAPPED_CONF.format(workdir=workdir, port=port, upstream_port=upstream_port, rate=bytes_per_second)
    )
    return _run_nginx("nginx-capped", binary, conf, port, workdir)


def _run_nginx(name: str, binary: str, conf: Path, port: int, workdir: Path) -> Process:
    log_path = workdir / f"{name}.log"
    error_log = str(workdir / f"{name}-error.log")
    argv = [binary, "-c", str(conf), "-p", str(workdir), "-e", error_log, "-g", "daemon off;"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    return Process(name, process, port, log_path)


THUMBOR_DIR = PROJECT_DIR / "bench" / ".thumbor"  # its own virtualenv, made by bench/install-tools.sh
THUMBOR_CONF = """\
LOADER = 'thumbor.loaders.file_loader'
FILE_LOADER_ROOT_PATH = {root!r}
STORAGE = 'thumbor.storages.no_storage'
RESULT_STORAGE = None
QUALITY = 80
"""
# thumbor's file result storage; /unsafe/ URLs (the benchmark's) are not stored without the flag.
THUMBOR_RESULT_STORAGE_CONF = """\
RESULT_STORAGE = 'thumbor.result_storages.file_storage'
RESULT_STORAGE_FILE_STORAGE_ROOT_PATH = {path!r}
RESULT_STORAGE_STORES_UNSAFE = True
"""


@dataclass
class ProcessGroup(Process):
    """A server that forks workers of its own (thumbor's --processes): stopped as a group."""

    def stop(self) -> None:
        """SIGTERM to the whole group, then SIGKILL after 10 s."""
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # workers that outlived their parent


THUMBOR_MISSING = "thumbor is not installed (bench/install-tools.sh makes bench/.thumbor)"


def thumbor_binary() -> Path | None:
    """thumbor in bench/.thumbor, or None when bench/install-tools.sh could not install it."""
    binary = THUMBOR_DIR / "bin" / "thumbor"
    return binary if binary.exists() else None


def spawn_thumbor(
    workdir: Path, root: Path, processes: int, result_storage: Path | None = None, name: str = "thumbor"
) -> ProcessGroup | None:
    """thumbor with its default engine (Pillow), loading files from ``root``, no storage,
    ``processes`` forked processes; None without it. Without ``result_storage`` every request
    renders; with it, thumbor's file result storage keeps each result in that folder."""
    binary = thumbor_binary()
    if binary is None:
        return None
    conf = workdir / f"{name}.conf"
    text = THUMBOR_CONF.format(root=str(root))
    if result_storage is not None:
        text += THUMBOR_RESULT_STORAGE_CONF.format(path=str(result_storage))  # later assignment wins
    conf.write_text(text)
    port = free_port()
    log_path = workdir / f"{name}.log"
    argv = [str(binary), "--ip", "127.0.0.1", "--port", str(port), "--conf", str(conf)]
    argv += ["--processes", str(processes), "--log-level", "error"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=bench_environment(), cwd=workdir, start_new_session=True
        )
    return ProcessGroup(name, process, port, log_path)
