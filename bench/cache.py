"""Result cache benchmarks (issues 16 and 18): a cached variant's requests per second against
the same bytes served as a plain local file by the same server, both from memory and (with
``[small_objects]`` off) from disk, and against thumbor's file result storage; and ten widths of
one 4 MP S3 photo cold (rendered) with and without the source cache, and warm (result cache hits).

Two mediasrv instances over one moto bucket, each with its own disk cache; the second keeps
no originals (``source_max_bytes = 0``) and nothing in memory (``[small_objects] max_bytes = 0``).
thumbor (when bench/.thumbor exists) loads the same photo from the folder with its file result
storage on. Subjects are measured interleaved, run by run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyvips

from bench import load
from bench.renders import processes
from bench.report import Row, Section, Target
from bench.servers import THUMBOR_MISSING, MotoServer, Process, free_port, spawn_mediasrv, spawn_thumbor

BUCKET = "bench-cache"
PHOTO = "photo.jpg"
PLAIN = "variant.jpg"  # the cached variant's bytes, as a plain file beside the photo
VARIANT_QUERY = "?width=400&format=webp"
THUMBOR_PATH = f"/unsafe/400x0/filters:format(webp)/{PHOTO}"  # the same 400 px WebP, from thumbor
PLAIN_ROW = "plain local file (same bytes), from memory"
CACHED_ROW = "cached variant, from memory"
PLAIN_DISK_ROW = "plain local file, [small_objects] off"
CACHED_DISK_ROW = "cached variant, disk tier, [small_objects] off"
THUMBOR_ROW = "thumbor 7.8, file result storage"
COLD_OFF, COLD_ON, WARM = "cold, no source cache", "cold, source cache", "warm (result cache hits)"


@dataclass(frozen=True)
class CachePlan:
    """Sizes, runs and load durations of the cache benchmarks."""

    photo: tuple[int, int]  # the S3 photo's width and height
    runs: int
    seconds: int
    connections: int = 64
    widths: tuple[int, ...] = (160, 240, 320, 400, 480, 640, 800, 960, 1120, 1280)


FULL = CachePlan(photo=(2304, 1728), runs=5, seconds=5)  # 4 MP
SMOKE = CachePlan(photo=(640, 480), runs=1, seconds=1)


@dataclass
class Instances:
    with_sources: Process
    without_sources: Process
    thumbor: Process | None


def photo_jpeg(width: int, height: int) -> bytes:
    """A photo-like JPEG (gradient and noise), so decoding and encoding cost what a photo's do."""
    xyz = pyvips.Image.xyz(width, height)
    gradient = (xyz[0] * (200 / width) + xyz[1] * (50 / height)).cast("uchar")
    noise = pyvips.Image.gaussnoise(width, height, sigma=12, mean=128).cast("uchar")
    return bytes(gradient.bandjoin([noise, gradient]).copy(interpretation="srgb").jpegsave_buffer(Q=85))


def settings(moto: MotoServer, media: Path, cache: Path, source_max_bytes: int, memory: bool) -> str:
    return (
        "[transforms]\nallow_unsigned = true\n\n"
        + ("" if memory else "[small_objects]\nmax_bytes = 0\n\n")
        +
        f'[backends.disk]\nkind = "local"\nroot = "{media}"\n\n'
        + moto.backend_settings("s3", BUCKET)
        + f'\n[cache]\npath = "{cache}"\nsource_max_bytes = {source_max_bytes}\n'
    )


@contextmanager
def running(workdir: Path, plan: CachePlan) -> Iterator[Instances]:
    """moto with the photo, and the two instances."""
    media = workdir / "cache-media"
    media.mkdir(mode=0o755)
    photo = photo_jpeg(*plan.photo)
    (media / PHOTO).write_bytes(photo)
    with ExitStack() as stack:
        moto = MotoServer(free_port(), str(workdir / "cache-moto.log"))
        moto.start()
        stack.callback(moto.stop)
        moto.client().create_bucket(Bucket=BUCKET)
        moto.client().put_object(Bucket=BUCKET, Key=PHOTO, Body=photo, ContentType="image/jpeg")
        instances = []
        for name, keep in (("mediasrv-cache", 256 * 1024 * 1024), ("mediasrv-cache-nosource", 0)):
            folder = workdir / f"{name}-folder"
            process = spawn_mediasrv(name, workdir, settings(moto, media, folder, keep, memory=bool(keep)))
            stack.callback(process.stop)
            instances.append(process)
        thumbor = spawn_thumbor(workdir, media, processes(), workdir / "thumbor-results", "thumbor-results")
        if thumbor is not None:
            stack.callback(thumbor.stop)
        for process in [*instances, *([thumbor] if thumbor else [])]:
            process.wait_listening()
        yield Instances(instances[0], instances[1], thumbor)


def measure(workdir: Path, smoke: bool) -> tuple[list[Section], list[Target]]:
    """Both sections and their targets."""
    plan = SMOKE if smoke else FULL
    with running(workdir, plan) as instances:
        prepare_plain_copy(instances.with_sources, workdir / "cache-media")
        render_once(instances.without_sources)
        if instances.thumbor is not None:
            warm_thumbor(instances.thumbor, workdir / "thumbor-results")
        sections = [rps_section(instances, plan), widths_section(instances, plan)]
    return sections, targets(sections)


def prepare_plain_copy(server: Process, media: Path) -> None:
    """Render the variant once (now it is cached), and write its bytes beside the photo."""
    response = httpx.get(server.url(f"/media/disk/{PHOTO}{VARIANT_QUERY}"), timeout=60)
    response.raise_for_status()
    (media / PLAIN).write_bytes(response.content)


def render_once(server: Process) -> None:
    """Render the variant on ``server`` too, so that its disk tier has it."""
    httpx.get(server.url(f"/media/disk/{PHOTO}{VARIANT_QUERY}"), timeout=60).raise_for_status()


def warm_thumbor(thumbor: Process, results: Path) -> None:
    """Render thumbor's variant once, and check that its result storage now holds it."""
    response = httpx.get(thumbor.url(THUMBOR_PATH), timeout=60)
    if response.status_code != 200 or response.content[8:12] != b"WEBP":
        raise load.LoadError(f"thumbor: status {response.status_code}; see {thumbor.log_path}")
    deadline = time.monotonic() + 10  # thumbor writes the result after it has answered
    while not any(path.is_file() for path in results.rglob("*")):
        if time.monotonic() > deadline:
            raise load.LoadError(f"thumbor stored no result in {results}; see {thumbor.log_path}")
        time.sleep(0.05)


def rps_section(instances: Instances, plan: CachePlan) -> Section:
    title = f"Cached variant vs plain file, {plan.connections} connections"
    server, thumbor, no_memory = instances.with_sources, instances.thumbor, instances.without_sources
    urls = {
        PLAIN_ROW: server.url(f"/media/disk/{PLAIN}"),
        CACHED_ROW: server.url(f"/media/disk/{PHOTO}{VARIANT_QUERY}"),
        PLAIN_DISK_ROW: no_memory.url(f"/media/disk/{PLAIN}"),
        CACHED_DISK_ROW: no_memory.url(f"/media/disk/{PHOTO}{VARIANT_QUERY}"),
        THUMBOR_ROW: thumbor.url(THUMBOR_PATH) if thumbor is not None else None,
    }
    if not load.have_wrk():
        return Section(title, "req/s", [Row(name, skipped="wrk is not installed") for name in urls])
    samples: dict[str, list[float]] = {name: [] for name, url in urls.items() if url is not None}
    for _ in range(plan.runs):
        for name, url in urls.items():
            if url is not None:
                samples[name].append(load.requests_per_second(url, plan.connections, plan.seconds))
    rows = [Row(name, samples[name]) if name in samples else Row(name, skipped=THUMBOR_MISSING) for name in urls]
    return Section(title, "req/s", rows, references=(PLAIN_ROW,))


def widths_section(instances: Instances, plan: CachePlan) -> Section:
    """Total time for the ten widths, one after another: purged first (cold), then again (warm)."""
    width, height = plan.photo
    title = f"Ten widths of one {width * height / 1e6:.1f} MP S3 photo, one after another"
    samples: dict[str, list[float]] = {COLD_OFF: [], COLD_ON: [], WARM: []}
    for _ in range(plan.runs):
        for name, server in ((COLD_OFF, instances.without_sources), (COLD_ON, instances.with_sources)):
            purge(server)
            samples[name].append(ten_widths(server, plan))
        samples[WARM].append(ten_widths(instances.with_sources, plan))
    note = "each run purged first: variants and the kept original"
    rows = [Row(name, values, note=note if name != WARM else "") for name, values in samples.items()]
    return Section(title, "ms", rows, references=(COLD_OFF,))


def purge(server: Process) -> None:
    response = httpx.delete(server.url(f"/admin/cache/s3/{PHOTO}"), timeout=30)  # loopback: no token needed
    response.raise_for_status()


def ten_widths(server: Process, plan: CachePlan) -> float:
    """Milliseconds to GET every width in turn (WebP), each checked."""
    started = time.perf_counter()
    with httpx.Client(timeout=60) as client:
        for width in plan.widths:
            response = client.get(server.url(f"/media/s3/{PHOTO}?width={width}&format=webp"))
            if response.status_code != 200 or response.content[8:12] != b"WEBP":
                raise load.LoadError(f"width {width}: status {response.status_code}")
    return (time.perf_counter() - started) * 1000


def targets(sections: list[Section]) -> list[Target]:
    rps, widths = sections

    def ratio(section: Section, name: str) -> float | None:
        return section.ratio(section.row(name))

    cached_disk, plain_disk = rps.row(CACHED_DISK_ROW).median, rps.row(PLAIN_DISK_ROW).median
    return [
        Target("Cached variant req/s / plain file req/s, both from memory", ratio(rps, CACHED_ROW), 0.9, True),
        Target(
            "Cached variant req/s / plain file req/s, both without memory (disk tier)",
            cached_disk / plain_disk if cached_disk and plain_disk else None,
            0.8,
            True,
        ),
        Target("Ten widths cold: time with source cache / without", ratio(widths, COLD_ON), 1.0, False),
    ]
