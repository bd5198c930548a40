"""A test plugin: the S3 backend with parallel parts started at once, without the probe that
would keep them to one more GET on moto (whose every ranged GET costs a whole-object read),
so tests over a real socket can reach the later parts of a stream."""

from __future__ import annotations

from collections.abc import Callable

from mediasrv import StorageBackend, hookimpl
from mediasrv_s3 import S3Backend


class EagerS3Backend(S3Backend):
    kind = "eager-s3"
    probe_first_part = False


@hookimpl
def mediasrv_register_backends(register: Callable[[type[StorageBackend]], None]) -> None:
    register(EagerS3Backend)
