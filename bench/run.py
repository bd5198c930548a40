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

from bench import cache, load, renders
from bench.report import MIB, Row, Section, Target, machine, machine_line, table, write_json
from bench.servers import (
    UNCAPPED,
    MotoServer,
    Process,
    free_port,
    spawn_capped_proxy,
    spawn_mediasrv,
    spawn_nginx,
    spawn_upstream,
    spawn_uvicorn,
)

BENCH_DIR = Path(__file__).resolve().parent
BUCKET = "bench-media"
CEILING = "bare ASGI app, from memory, no log"
QUIET = UNCAPPED + "access_log = false\n"  # mediasrv without its access log
KIB = 1024
ONE_GET = "mediasrv s3, one GET"  # parallel_parts = 1
PARTS = "mediasrv s3, parallel parts"
CAPPED_DIRECT = "direct GET through capped nginx"


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
    cap: int = 50_000_000  # bytes per second per connection of the capped S3 (nginx limit_rate)
    slow_client: int = 25_000_000  # bytes per second of the client in the memory row that fills the window
    part_size: int = 4 * MIB  # the S3 backends' part settings: by default, S3Settings' defaults
    parallel_threshold: int = 16 * MIB
    parallel_parts: int = 8

    @property
    def parts(self) -> str:
        """The part settings, as lines of a ``[backends.NAME]`` table."""
        return (
            f"part_size = {self.part_size}\nparallel_threshold = {self.parallel_threshold}\n"
            f"parallel_parts = {self.parallel_parts}\n"
        )

    @property
    def parts_bound_mib(self) -> float:
        """The memory bound of one S3 stream in parts: parallel_parts x part_size."""
        return self.parallel_parts * self.part_size / MIB


FULL = Plan("full", 10 * MIB, 100 * MIB, 16 * KIB, 1024 * MIB, 200 * MIB, runs=5, load_runs=5, load_seconds=5)
SMOKE = Plan(
    "smoke",
    256 * KIB,
    1 * MIB,
    16 * KIB,
    4 * MIB,
    2 * MIB,
    runs=1,
    load_runs=1,
    load_seconds=1,
    slow_client=10_000_000,
    part_size=64 * KIB,  # so that the smoke run's objects have parts
    parallel_threshold=128 * KIB,
)


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
    capped: Process | None  # nginx in front of moto, each connection capped at plan.cap


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
def running_servers(workdir: Path, data: Path, sizes: dict[str, int], plan: Plan) -> Iterator[Servers]:
    """Start every server at once, fill the bucket, and stop them all afterwards."""
    moto = MotoServer(free_port(), str(workdir / "moto.log"))
    with ExitStack() as stack:

        def started(process: Process) -> Process:
            stack.callback(process.stop)
            return process

        upstream = started(spawn_upstream(workdir, data))
        capped = spawn_capped_proxy(workdir, moto.port, plan.cap)
        backends = mediasrv_backends(moto, data, upstream.port, capped, plan)
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
            mediasrv_quiet=started(spawn_mediasrv("mediasrv-quiet", workdir, backends, QUIET)),
            files=started(spawn_uvicorn("fileresponse", "bench.apps:files_app", workdir, env)),
            # No access log at all: the most any app can get from this uvicorn.
            ceiling=started(spawn_uvicorn("ceiling", "bench.apps:ceiling_app", workdir, env, "--no-access-log")),
            naive=started(spawn_uvicorn("naive-async", "bench.apps:naive_s3_app", workdir, env)),
            sync=started(spawn_uvicorn("sync-boto3", "bench.apps:sync_s3_app", workdir, env)),
            upstream=upstream,
            nginx=started(nginx) if nginx is not None else None,
            capped=started(capped) if capped is not None else None,
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
            *([capped] if capped is not None else []),
        ):
            process.wait_listening()
        yield servers


def mediasrv_backends(moto: MotoServer, data: Path, upstream_port: int, capped: Process | None, plan: Plan) -> str:
    """The three built-in backends over the same objects: ``disk``, ``s3`` and ``web``; and
    ``s3http``, the HTTP backend reading the bucket's public objects from moto, which shows
    the cost of the proxy hop without botocore's. ``s3one`` is ``s3`` with one GET per request
    (``parallel_parts = 1``, as before parts), and ``capped``/``cappedone`` the same two
    through the nginx that caps each connection's speed, as real S3 does."""
    s3 = moto.backend_settings("s3", BUCKET) + plan.parts
    s3one = moto.backend_settings("s3one", BUCKET, parallel_parts=1)
    if capped is not None:
        capped_url = f"http://127.0.0.1:{capped.port}"
        s3one += moto.backend_settings("capped", BUCKET, endpoint_url=capped_url) + plan.parts
        s3one += moto.backend_settings("cappedone", BUCKET, endpoint_url=capped_url, parallel_parts=1)
    return (
        f'[backends.disk]\nkind = "local"\nroot = "{data}"\n\n'
        + s3
        + s3one
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


def memory_section(servers: Servers, plan: Plan) -> Section:
    """RSS growth of a fresh mediasrv over its idle RSS while streaming one object, for a
    small and a large object from disk and from S3; and one S3 stream in parts read by a
    client slower than the source, so that its window of parts fills."""
    server = servers.mediasrv_memory
    load.download(server.url("/media/disk/small.jpg"), plan.small)  # the request path's imports
    load.download(server.url("/media/s3/small.jpg"), plan.small)
    cases: list[tuple[str, str, int, int]] = [
        (f"local {_size(plan.large)}", "/media/disk/large.bin", plan.large, 0),
        (f"local {_size(plan.huge_local)}", "/media/disk/huge-local.bin", plan.huge_local, 0),
        (f"S3 {_size(plan.medium)}", "/media/s3/medium.bin", plan.medium, 0),
        (f"S3 {_size(plan.huge_s3)}", "/media/s3/huge-s3.bin", plan.huge_s3, 0),
    ]
    if servers.capped is not None:
        cases.append((f"S3 {_size(plan.large)}, slow client", "/media/capped/large.bin", plan.large, plan.slow_client))
    rows = []
    for label, path, size, rate in cases:
        idle = None
        growth = []
        for _ in range(plan.load_runs):
            memory = load.memory_during_download(server.pid, server.url(path), size, rate)
            idle = idle or memory.idle
            growth.append((memory.peak - idle) / MIB)
        client = f"; parts from the capped nginx, client at {rate / 1e6:g} MB/s" if rate else ""
        rows.append(Row(f"mediasrv {label}", growth, note=f"idle RSS {(idle or 0) / MIB:.0f} MiB{client}"))
    return Section("Memory: peak RSS over idle, one stream", "MiB", rows)


def first_byte_cost_section(servers: Servers, plan: Plan) -> Section:
    """The time of a 1-byte ranged GET of the large object, against a whole GET: what each
    part costs its source. moto reads the whole object for any range; nginx's cache does not."""
    direct = servers.moto.endpoint_url + f"/{BUCKET}/large.bin"
    capped = servers.capped.url(f"/{BUCKET}/large.bin") if servers.capped is not None else None

    def once(url: str) -> Callable[[], float]:
        return lambda: load.download(url, 1, byte_range="0-0").total * 1000

    urls = {"1 byte from moto": direct, "1 byte from the capped nginx": capped}
    present = [(name, once(url)) for name, url in urls.items() if url is not None]
    samples = side_by_side(present, plan.runs, [measure for _, measure in present])
    rows = [_row(name, samples, "nginx is not installed") for name in urls]
    return Section(f"Ranged GET of 1 byte of the {_size(plan.large)} object", "ms", rows)


def capped_title(plan: Plan) -> str:
    return f"S3 {_size(plan.large)} capped at {plan.cap / 1e6:g} MB/s per connection"


def _size(size: int) -> str:
    if size >= 1024 * MIB:
        return f"{size // (1024 * MIB)} GiB"
    return f"{size // MIB} MiB" if size >= MIB else f"{size // KIB} KiB"


def measure_all(servers: Servers, plan: Plan) -> list[Section]:
    """Every comparison of the issue, in order."""
    media, nginx, capped = servers.mediasrv, servers.nginx, servers.capped
    direct_s3 = servers.moto.endpoint_url + f"/{BUCKET}"
    no_nginx = "nginx is not installed"
    ttfb = Section(f"Time to first byte, {_size(plan.large)}", "ms", [])
    sections = [
        throughput_section(
            f"S3 {_size(plan.medium)}",
            {
                "direct GET from moto": f"{direct_s3}/medium.bin",
                "mediasrv s3": media.url("/media/s3/medium.bin"),
                ONE_GET: media.url("/media/s3one/medium.bin"),
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
                ONE_GET: media.url("/media/s3one/large.bin"),
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
            capped_title(plan),
            {
                CAPPED_DIRECT: capped.url(f"/{BUCKET}/large.bin") if capped else None,
                PARTS: media.url("/media/capped/large.bin") if capped else None,
                ONE_GET: media.url("/media/cappedone/large.bin") if capped else None,
            },
            plan.large,
            plan,
            skipped=no_nginx,
        ),
        first_byte_cost_section(servers, plan),
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
        memory_section(servers, plan),
    ]
    return sections


def targets(sections: list[Section], plan: Plan) -> list[Target]:
    """The issue's targets, computed from the sections."""
    by_title = {section.title.split(",")[0]: section for section in sections}

    def median(title: str, name: str) -> float | None:
        return by_title[title].row(name).median

    def quotient(a: float | None, b: float | None) -> float | None:
        return a / b if a and b else None

    s3_medium, s3_small, s3_large = f"S3 {_size(plan.medium)}", f"S3 {_size(plan.small)}", f"S3 {_size(plan.large)}"
    capped = capped_title(plan)
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
        Target(
            f"{capped}: mediasrv speed / direct GET speed",
            quotient(median(capped, PARTS), median(capped, CAPPED_DIRECT)),
            3,
            True,
        ),
        *[
            Target(
                f"{title} on moto: parallel parts speed / one GET speed (no slower than before)",
                quotient(median(title, "mediasrv s3"), median(title, ONE_GET)),
                1,
                True,
            )
            for title in (s3_medium, s3_large)
        ],
        *[
            Target(f"RSS growth, {row.name} (MiB)", max(row.samples) if row.samples else None, 16, False)
            for row in memory[:4]
        ],
        *[
            # A full window of parts, over what any one stream costs (aiohttp's and uvicorn's
            # buffers, the chunk being sent: the S3 10 MiB row).
            Target(
                f"RSS growth, {row.name}, over one stream's own (MiB)",
                max(row.samples) - max(memory[2].samples) if row.samples and memory[2].samples else None,
                plan.parts_bound_mib,
                False,
            )
            for row in memory[4:]
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
        with running_servers(workdir, workdir / "data", sizes, plan) as servers:
            sections = measure_all(servers, plan)
        # After the streaming servers have stopped: the result cache rows and the render
        # benchmarks each load both cores.
        cache_sections, cache_goals = cache.measure(workdir, smoke=args.smoke)
        render_sections, render_goals = renders.measure(workdir, renders.SMOKE if args.smoke else renders.FULL)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    sections += cache_sections
    goals = targets(sections, plan) + cache_goals + render_goals
    info = machine()
    print(f"mediasrv benchmarks ({plan.name}) on {machine_line(info)}")
    print(table(sections + render_sections, goals))
    args.out.mkdir(parents=True, exist_ok=True)
    everything = sections + render_sections
    write_json(args.out / "results.json", plan.name, time.monotonic() - started, info, everything, goals)
    charts = [(sections, args.out / "results.png", "mediasrv benchmarks")]
    charts.append((render_sections, args.out / "renders.png", "mediasrv render benchmarks"))
    chart_written = all(_chart(*chart) for chart in charts)
    print(
        f"\n{time.monotonic() - started:.0f} s; wrote {args.out / 'results.json'}"
        + (" and the charts results.png, renders.png" if chart_written else " (no chart: matplotlib is not installed)")
    )
    return 0


def _chart(sections: list[Section], path: Path, title: str) -> bool:
    try:
        from bench.chart import draw
    except ImportError:
        return False
    draw(sections, path, title)
    return True


if __name__ == "__main__":
    sys.exit(main())
