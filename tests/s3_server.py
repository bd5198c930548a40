"""A real S3 server for the tests: moto's standalone server in a subprocess on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

import boto3
import httpx

ACCESS_KEY_ID = "AKIDTESTMEDIASRV"
SECRET_ACCESS_KEY = "s3cr3t-never-in-a-log"
REGION = "us-east-1"
START_TIMEOUT = 30.0


class MotoServer:
    """``python -m moto.server`` on ``port``; ``stop`` and ``start`` again for outages.

    moto keeps its buckets in memory, so a restarted server is empty.
    """

    def __init__(self, port: int, log_path: str, env: dict[str, str] | None = None) -> None:
        self.port = port
        self.log_path = log_path
        self.env = env or {}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        environment = {**os.environ, "AWS_EC2_METADATA_DISABLED": "true", **self.env}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"moto exited with {self.process.returncode}; see {self.log_path}")
            try:
                httpx.get(f"{self.endpoint_url}/moto-api/", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise AssertionError(f"moto did not answer within {START_TIMEOUT}s; see {self.log_path}")

    def stop(self) -> None:
        if self.process is not None:
            terminate(self.process)
        self.process = None

    def kill(self) -> None:
        """Die at once, as a crashed server does: open connections are reset."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def client(self, service: str = "s3", key_id: str = ACCESS_KEY_ID, secret: str = SECRET_ACCESS_KEY) -> Any:
        """A boto3 client for setting up buckets and objects (or IAM users)."""
        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
        )

    def backend_values(self, bucket: str, **extra: object) -> dict[str, object]:
        """The settings of an S3 backend for ``bucket`` on this server, ``extra`` beside them."""
        return {
            "kind": "s3",
            "bucket": bucket,
            "endpoint_url": self.endpoint_url,
            "region": REGION,
            "access_key_id": ACCESS_KEY_ID,
            "secret_access_key": SECRET_ACCESS_KEY,
            **extra,
        }

    def backend_settings(self, name: str, bucket: str, **extra: object) -> str:
        """A ``[backends.NAME]`` table for ``bucket`` on this server."""
        return toml_table(f"backends.{name}", self.backend_values(bucket, **extra))


def result_store_table(endpoint_url: str, bucket: str, **extra: object) -> dict[str, object]:
    """The keys of a ``[cache.s3]`` table for ``bucket`` at ``endpoint_url``."""
    return {
        "bucket": bucket,
        "prefix": "variants",
        "endpoint_url": endpoint_url,
        "region": REGION,
        "access_key_id": ACCESS_KEY_ID,
        "secret_access_key": SECRET_ACCESS_KEY,
        "timeout": 2,
        **extra,
    }


def toml_table(name: str, table: dict[str, object]) -> str:
    """``[name]`` and its keys, as TOML."""
    return "\n".join([f"[{name}]"] + [f"{key} = {_toml(value)}" for key, value in table.items()]) + "\n"


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def terminate(process: subprocess.Popen[Any], timeout: float = 10.0) -> int:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; the exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
