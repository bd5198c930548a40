"""``python -m bench.run [--smoke]``: set up moto, a folder, an upstream, mediasrv and the
comparison servers on 127.0.0.1, measure them side by side, print one table, and write
``results.json`` and ``results.png``.

Every server runs in its own process; the subjects of one comparison are measured in the
same run, interleaved (run 1 of each, then run 2 of each...), after one warm-up request each.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench import load
from bench.report import MIB, Row, Section, Target, machine, machine_line, table, write_json
from bench.servers import MotoServer, Process, free_port, spawn_mediasrv, spawn_nginx, spawn_upstream, spawn_uvicorn

BENCH_DIR = Path(__file__).resolve().parent
BUCKET = "bench-media"
CEILING = "bare ASGI app, from memory, no log"
KIB = 1024


@dataclass(frozen=True)
class Plan:
    """Object sizes, runs and load durations of one benchmark run."""

    name: str
    medium: int  # S3 object every pattern is compared on
    large: int  # S3, disk and HTTP object for throughput and time to first byte
    small: int  # the image for requests per second
    huge_local: int  # memory: the big local object
    huge_s3: int  # memory: the big S3 object
    runs: int  # throughput runs per subject, after one warm-up
    load_runs: int  # wrk runs per subject, and memory runs per object
    load_seconds: int
    connections: int = 64


FULL = Plan("full", 10 * MIB, 100 * MIB, 16 * KIB, 1024 * MIB, 200 * MIB, runs=5, load_runs=5, load_seconds=5)
SMOKE = Plan("smoke", 256 * KIB, 1 * MIB, 16 * KIB, 4 * MIB, 2 * MIB, runs=1, load_runs=1, load_seconds=1)


@dataclass
class Servers:
    """Everything under test, by role."""

    moto: MotoServer
    mediasrv: Process
    mediasrv_memory: Process  # a fresh instance, used for nothing but the memory figures
    mediasrv_quiet: Process  # without its access log: what the log costs a small file
    files: Process
    ceiling: Process  # the bare ASGI app: uvicorn's own requests per second
    naive: Process
    sync: Process
    upstream: Process
    nginx: Process | None


Subject = tuple[str, Callable[[], float]]


def objects(plan: Plan) -> dict[str, int]:
    """Object names and sizes: the same on disk and in the bucket."""
    return {
        "small.jpg": plan.small,
        "medium.bin": plan.medium,
        "large.bin": plan.large,
        "huge-local.bin": plan.huge_local,
        "huge-s3.bin": plan.huge_s3,
    }


def make_files(folder: Path, sizes: dict[str, int]) -> None:
    """Incompressible files (one random MiB, repeated)."""
    block = os.urandom(MIB)
    folder.mkdir(mode=0o755)
    for name, size in sizes.items():
        with (folder / name).open("wb") as file:
            for start in range(0, size, MIB):
                file.write(block[: min(MIB, size - start)])
        (folder / name).chmod(0o644)


def upload(moto: MotoServer, folder: Path, names: list[str]) -> None:
    """Put the files in the bucket, readable by anyone: curl and wrk GET them unsigned."""
    client = moto.client()
    client.create_bucket(Bucket=BUCKET)
    for name in names:
        with (folder / name).open("rb") as file:
            client.put_object(Bucket=BUCKET, Key=name, Body=file, ACL="public-read")


@contextmanager
def running_servers(workdir: Path, data: Path, sizes: dict[str, int]) -> Iterator[Servers]:
    """Start every server at once, fill the bucket, and stop them all afterwards."""
    moto = MotoServer(free_port(), str(workdir / "moto.log"))
    with ExitStack() as stack:

        def started(process: Process) -> Process:
            stack.callback(process.stop)
            return process

        upstream = started(spawn_upstream(workdir, data))
        backends = mediasrv_backends(moto, data, upstream.port)
        env = {
            "BENCH_ROOT": str(data),
            "BENCH_S3_ENDPOINT": moto.endpoint_url,
            "BENCH_BUCKET": BUCKET,
            "BENCH_CEILING_FILE": "small.jpg",
        }
        nginx = spawn_nginx(workdir, data)
        servers = Servers(
            moto=moto,
            mediasrv=started(spawn_mediasrv("mediasrv", workdir, backends)),
            mediasrv_memory=started(spawn_mediasrv("mediasrv-memory", workdir, backends)),
            mediasrv_quiet=started(spawn_mediasrv("mediasrv-quiet", workdir, backends, "access_log = false\n")),
            files=started(spawn_uvicorn("fileresponse", "bench.apps:files_app", workdir, env)),
            # No access log at all: the most any app can get from this uvicorn.
            ceiling=started(spawn_uvicorn("ceiling", "bench.apps:ceiling_app", workdir, env, "--no-access-log")),
            naive=started(spawn_uvicorn("naive-async", "bench.apps:naive_s3_app", workdir, env)),
            sync=started(spawn_uvicorn("sync-boto3", "bench.apps:sync_s3_app", workdir, env)),
            upstream=upstream,
            nginx=started(nginx) if nginx is not None else None,
        )
        moto.start()
        stack.callback(moto.stop)
        upload(moto, data, [name for name in sizes if name != "huge-local.bin"])
        for process in (
            servers.mediasrv,
            servers.mediasrv_memory,
            servers.mediasrv_quiet,
            servers.files,
            servers.ceiling,
            servers.naive,
            servers.sync,
            upstream,
            *([nginx] if nginx is not None else []),
        ):
            process.wait_listening()
        yield servers


def mediasrv_backends(moto: MotoServer, data: Path, upstream_port: int) -> str:
    """The three built-in backends over the same objects: ``disk``, ``s3`` and ``web``; and
    ``s3http``, the HTTP backend reading the bucket's public objects from moto, which shows
    the cost of the proxy hop without botocore's."""
    return (
        f'[backends.disk]\nkind = "local"\nroot = "{data}"\n\n'
        + moto.backend_settings("s3", BUCKET)
        + f'\n[backends.web]\nkind = "http"\nbase_url = "http://127.0.0.1:{upstream_port}/"\n'
        + f'\n[backends.s3http]\nkind = "http"\nbase_url = "{moto.endpoint_url}/{BUCKET}/"\n'
    )


def side_by_side(subjects: list[Subject], runs: int, warm_ups: list[Callable[[], object]]) -> dict[str, list[float]]:
    """The warm-ups, then ``runs`` rounds calling each subject in turn."""
    for warm_up in warm_ups:
        warm_up()
    samples: dict[str, list[float]] = {name: [] for name, _ in subjects}
    for _ in range(runs):
        for name, measure in subjects:
            samples[name].append(measure())
    return samples


def throughput_section(
    title: str,
    urls: dict[str, str | None],
    size: int,
    plan: Plan,
    references: int = 1,
    skipped: str = "",
    ttfb: Section | None = None,
) -> Section:
    """MB/s (10^6 bytes per second) for each URL; None URLs are skipped with ``skipped``.
    Ratios are to the first URL (or the next of the first ``references`` measured).

    With ``ttfb``, each subject's time to first byte (and its whole transfer's time) go there too.
    """
    first_bytes: dict[str, list[float]] = {name: [] for name in urls}
    totals: dict[str, list[float]] = {name: [] for name in urls}

    def measure(name: str, url: str) -> Callable[[], float]:
        def once() -> float:
            transfer = load.download(url, size)
            first_bytes[name].append(transfer.first_byte * 1000)
            totals[name].append(transfer.total * 1000)
            return transfer.bytes_per_second / 1e6

        return once

    subjects = [(name, measure(name, url)) for name, url in urls.items() if url is not None]
    samples = side_by_side(subjects, plan.runs, [measure for _, measure in subjects])
    rows = [_row(name, samples, skipped) for name in urls]
    if ttfb is not None:
        for name in samples:  # without the warm-up transfer
            whole = statistics.median(totals[name][1:])
            ttfb.rows.append(Row(name, first_bytes[name][1:], note=f"whole body {whole:,.0f} ms"))
    return Section(title, "MB/s", rows, references=tuple(urls)[:references])


def _row(name: str, samples: dict[str, list[float]], skipped: str) -> Row:
    return Row(name, samples[name]) if name in samples else Row(name, skipped=skipped)


def rps_section(title: str, urls: dict[str, str | None], plan: Plan, skipped: str) -> Section:
    """Requests per second at ``plan.connections`` connections for each URL, with wrk."""
    if not load.have_wrk():
        return Section(title, "req/s", [Row(name, skipped="wrk is not installed") for name in urls])

    def measure(url: str) -> Callable[[], float]:
        return lambda: load.requests_per_second(url, plan.connections, plan.load_seconds)

    present = {name: url for name, url in urls.items() if url is not None}
    warm_ups = [lambda url=url: load.download(url, plan.small) for url in present.values()]
    samples = side_by_side([(name, measure(url)) for name, url in present.items()], plan.load_runs, warm_ups)
    return Section(title, "req/s", [_row(name, samples, skipped) for name in urls], references=tuple(urls)[:1])


def memory_section(server: Process, plan: Plan) -> Section:
    """RSS growth of a fresh mediasrv over its idle RSS while streaming one object, for a
    small and a large object from disk and from S3."""
    load.download(server.url("/media/disk/small.jpg"), plan.small)  # the request path's imports
    load.download(server.url("/media/s3/small.jpg"), plan.small)
    rows = []
    for label, path, size in (
        ("local", "/media/disk/large.bin", plan.large),
        ("local", "/media/disk/huge-local.bin", plan.huge_local),
        ("S3", "/media/s3/medium.bin", plan.medium),
        ("S3", "/media/s3/huge-s3.bin", plan.huge_s3),
    ):
        idle = None
        growth = []
        for _ in range(plan.load_runs):
            memory = load.memory_during_download(server.pid, server.url(path), size)
            idle = idle or memory.idle
            growth.append((memory.peak - idle) / MIB)
        rows.append(Row(f"mediasrv {label} {_size(size)}", growth, note=f"idle RSS {(idle or 0) / MIB:.0f} MiB"))
    return Section("Memory: peak RSS over idle, one stream", "MiB", rows)


def _size(size: int) -> str:
    if size >= 1024 * MIB:
        return f"{size // (1024 * MIB)} GiB"
    return f"{size // MIB} MiB" if size >= MIB else f"{size // KIB} KiB"


def measure_all(servers: Servers, plan: Plan) -> list[Section]:
    """Every comparison of the issue, in order."""
    media, nginx = servers.mediasrv, servers.nginx
    direct_s3 = servers.moto.endpoint_url + f"/{BUCKET}"
    no_nginx = "nginx is not installed"
    ttfb = Section(f"Time to first byte, {_size(plan.large)}", "ms", [])
    sections = [
        throughput_section(
            f"S3 {_size(plan.medium)}",
            {
                "direct GET from moto": f"{direct_s3}/medium.bin",
                "mediasrv s3": media.url("/media/s3/medium.bin"),
                "mediasrv http backend on moto": media.url("/media/s3http/medium.bin"),
                "naive async (client per request)": servers.naive.url("/s3/medium.bin"),
                "sync boto3 StreamingResponse": servers.sync.url("/s3/medium.bin"),
            },
            plan.medium,
            plan,
        ),
        throughput_section(
            f"S3 {_size(plan.large)}",
            {
                "direct GET from moto": f"{direct_s3}/large.bin",
                "mediasrv s3": media.url("/media/s3/large.bin"),
                "mediasrv http backend on moto": media.url("/media/s3http/large.bin"),
                "naive async (client per request)": None,
                "sync boto3 StreamingResponse": None,
            },
            plan.large,
            plan,
            skipped="naive patterns measured at the smaller size only",
            ttfb=ttfb,
        ),
        throughput_section(
            f"Disk {_size(plan.large)}",
            {
                "nginx (sendfile)": nginx.url("/large.bin") if nginx else None,
                "Starlette FileResponse": servers.files.url("/files/large.bin"),
                "mediasrv local": media.url("/media/disk/large.bin"),
            },
            plan.large,
            plan,
            references=2,
            skipped=no_nginx,
            ttfb=ttfb,
        ),
        throughput_section(
            f"HTTP upstream {_size(plan.large)}",
            {
                "direct GET from aiohttp upstream": servers.upstream.url("/large.bin"),
                "mediasrv http": media.url("/media/web/large.bin"),
            },
            plan.large,
            plan,
            ttfb=ttfb,
        ),
        ttfb,
        rps_section(
            f"Local {_size(plan.small)}, {plan.connections} connections",
            {
                "Starlette FileResponse": servers.files.url("/files/small.jpg"),
                "mediasrv local": media.url("/media/disk/small.jpg"),
                "mediasrv local, access log off": servers.mediasrv_quiet.url("/media/disk/small.jpg"),
                CEILING: servers.ceiling.url("/small.jpg"),
                "nginx (sendfile)": nginx.url("/small.jpg") if nginx else None,
            },
            plan,
            skipped=no_nginx,
        ),
        rps_section(
            f"S3 {_size(plan.small)}, {plan.connections} connections",
            {
                "direct GET from moto": f"{direct_s3}/small.jpg",
                "mediasrv s3": media.url("/media/s3/small.jpg"),
            },
            plan,
            skipped="",
        ),
        rps_section(
            f"HTTP upstream {_size(plan.small)}, {plan.connections} connections",
            {
                "direct GET from aiohttp upstream": servers.upstream.url("/small.jpg"),
                "mediasrv http": media.url("/media/web/small.jpg"),
            },
            plan,
            skipped="",
        ),
        memory_section(servers.mediasrv_memory, plan),
    ]
    return sections


def targets(sections: list[Section], plan: Plan) -> list[Target]:
    """The issue's targets, computed from the sections."""
    by_title = {section.title.split(",")[0]: section for section in sections}

    def median(title: str, name: str) -> float | None:
        return by_title[title].row(name).median

    def quotient(a: float | None, b: float | None) -> float | None:
        return a / b if a and b else None

    s3_medium, s3_small = f"S3 {_size(plan.medium)}", f"S3 {_size(plan.small)}"
    disk, local_small = f"Disk {_size(plan.large)}", f"Local {_size(plan.small)}"
    memory = by_title["Memory: peak RSS over idle"].rows
    return [
        Target(
            f"{s3_medium}: mediasrv time / direct GET time",
            quotient(median(s3_medium, "direct GET from moto"), median(s3_medium, "mediasrv s3")),
            1.3,
            False,
        ),
        Target(
            f"{s3_medium}: mediasrv speed / naive async speed",
            quotient(median(s3_medium, "mediasrv s3"), median(s3_medium, "naive async (client per request)")),
            10,
            True,
        ),
        Target(
            f"{disk}: mediasrv time / nginx time",
            quotient(median(disk, "nginx (sendfile)"), median(disk, "mediasrv local")),
            1.3,
            False,
        ),
        Target(
            f"{local_small}: mediasrv req/s / FileResponse req/s",
            quotient(median(local_small, "mediasrv local"), median(local_small, "Starlette FileResponse")),
            2,
            True,
        ),
        Target(
            f"{local_small}: mediasrv req/s / bare ASGI ceiling req/s",
            quotient(median(local_small, "mediasrv local"), median(local_small, CEILING)),
            0.5,
            True,
        ),
        Target(
            f"{s3_small}: mediasrv req/s / moto direct req/s",
            quotient(median(s3_small, "mediasrv s3"), median(s3_small, "direct GET from moto")),
            0.8,
            True,
        ),
        *[
            Target(f"RSS growth, {row.name} (MiB)", max(row.samples) if row.samples else None, 16, False)
            for row in memory
        ],
        Target(
            "RSS growth, largest minus smallest object (MiB, flat in size)",
            max(max(memory[1].samples) - max(memory[0].samples), max(memory[3].samples) - max(memory[2].samples)),
            8,
            False,
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny objects, one run, 1 s loads")
    parser.add_argument("--out", type=Path, default=BENCH_DIR, help="folder for results.json and results.png")
    args = parser.parse_args(argv)
    plan = SMOKE if args.smoke else FULL
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="mediasrv-bench-"))
    workdir.chmod(0o755)  # nginx's worker (nobody) reads the data folder inside
    try:
        sizes = objects(plan)
        make_files(workdir / "data", sizes)
        with running_servers(workdir, workdir / "data", sizes) as servers:
            sections = measure_all(servers, plan)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    goals = targets(sections, plan)
    info = machine()
    print(f"mediasrv benchmarks ({plan.name}) on {machine_line(info)}")
    print(table(sections, goals))
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "results.json", plan.name, time.monotonic() - started, info, sections, goals)
    chart_written = _chart(sections, args.out / "results.png")
    print(
        f"\n{time.monotonic() - started:.0f} s; wrote {args.out / 'results.json'}"
        + (f" and {args.out / 'results.png'}" if chart_written else " (no chart: matplotlib is not installed)")
    )
    return 0


def _chart(sections: list[Section], path: Path) -> bool:
    try:
        from bench.chart import draw
    except ImportError:
        return False
    draw(sections, path)
    return True


if __name__ == "__main__":
    sys.exit(main())
