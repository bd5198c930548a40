"""Render benchmarks (issue 15): 2-4 MP photo-like JPEGs to 400 px wide JPEG and WebP at 4 and
16 concurrent clients, mediasrv against thumbor 7.8 (Pillow engine, one process per core), a
naive FastAPI + Pillow route and the engine floor; the peak RSS of mediasrv's process group
while 16 clients ask for 50 MP sources; how fast a pixel bomb is refused.

Each load cycles through the sources (wrk with a path list), so no answer is a repeat of the
one before. Subjects run one after another, interleaved over the runs, each after a warm-up.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench import load
from bench import sources as source_files
from bench.floor import measure_floor
from bench.report import MIB, Row, Section, Target
from bench.servers import THUMBOR_MISSING, Process, spawn_mediasrv, spawn_thumbor, spawn_uvicorn

OUTPUTS = ("jpeg", "webp")
CLIENTS = (4, 16)
WIDTH = 400
FLOOR = "engine floor (thumbnail_buffer)"
MEDIASRV = "mediasrv"
THUMBOR = "thumbor 7.8 (Pillow)"
NAIVE = "naive FastAPI + Pillow"
MEMORY_LIMIT_MIB = 1024
BOMB_REQUESTS = 20


@dataclass(frozen=True)
class RenderPlan:
    """How long and how often the render benchmarks load each subject."""

    runs: int
    seconds: int
    memory_seconds: int
    huge: bool  # False (smoke): the memory row uses a 2-4 MP photo instead of 50 MP
    photos: int  # how many of source_files.PHOTO_SIZES


FULL = RenderPlan(runs=3, seconds=3, memory_seconds=6, huge=True, photos=len(source_files.PHOTO_SIZES))
SMOKE = RenderPlan(runs=1, seconds=1, memory_seconds=1, huge=False, photos=2)


@dataclass
class RenderServers:
    mediasrv: Process
    thumbor: Process | None
    naive: Process


@dataclass
class Sources:
    folder: Path
    photos: list[str]
    huge: str
    bomb: str


def processes() -> int:
    """Render processes for every subject that has them: one per core, as mediasrv's default."""
    return os.cpu_count() or 1


def make_sources(folder: Path, plan: RenderPlan) -> Sources:
    folder.mkdir(mode=0o755, exist_ok=True)
    photos = source_files.write_photos(folder, plan.photos)
    huge = source_files.write_huge(folder) if plan.huge else photos[0]
    return Sources(folder, photos, huge, source_files.write_bomb(folder))


@contextmanager
def running(workdir: Path, sources: Sources) -> Iterator[RenderServers]:
    """mediasrv (transforms unsigned, on a local backend ``disk``), thumbor and the naive app.

    mediasrv keeps nothing in memory here (``[small_objects] max_bytes = 0``): the same URLs
    come again and again, and every one of them must be rendered."""
    settings = (
        "[transforms]\nallow_unsigned = true\n\n[small_objects]\nmax_bytes = 0\n\n"
        f'[backends.disk]\nkind = "local"\nroot = "{sources.folder}"\n'
    )
    with ExitStack() as stack:
        started: list[Process] = []
        for process in (
            spawn_mediasrv("mediasrv-render", workdir, settings),
            spawn_thumbor(workdir, sources.folder, processes()),
            spawn_uvicorn("naive-pillow", "bench.pillow_app:app", workdir, {"BENCH_ROOT": str(sources.folder)}),
        ):
            if process is not None:
                stack.callback(process.stop)
                started.append(process)
        for process in started:
            process.wait_listening()
        by_name = {process.name: process for process in started}
        yield RenderServers(by_name["mediasrv-render"], by_name.get("thumbor"), by_name["naive-pillow"])


def paths(subject: str, output: str, names: list[str]) -> list[str]:
    """The request path of each source for ``subject``, 400 px wide in ``output``."""
    if subject == MEDIASRV:
        return [f"/media/disk/{name}?width={WIDTH}&format={output}" for name in names]
    if subject == THUMBOR:
        spec = "" if output == "jpeg" else "filters:format(webp)/"
        return [f"/unsafe/{WIDTH}x0/{spec}{name}" for name in names]
    return [f"/render/{name}?width={WIDTH}&format={output}" for name in names]


def measure(workdir: Path, plan: RenderPlan) -> tuple[list[Section], list[Target]]:
    """Every render section and its targets."""
    sources = make_sources(workdir / "render-sources", plan)
    with running(workdir, sources) as servers:
        sections = throughput_sections(workdir, servers, sources, plan)
        # The bomb first: the 50 MP renders the memory load leaves queued would delay its answer.
        sections.append(bomb_section(servers.mediasrv, sources))
        sections.append(memory_section(servers.mediasrv, sources, plan))
    return sections, targets(sections)


def throughput_sections(workdir: Path, servers: RenderServers, sources: Sources, plan: RenderPlan) -> list[Section]:
    """Renders per second (p99 in each row's note) for every output and client count."""
    subjects = {MEDIASRV: servers.mediasrv, THUMBOR: servers.thumbor, NAIVE: servers.naive}
    have_wrk = load.have_wrk()
    samples: dict[tuple[str, int, str], list[float]] = {}
    p99s: dict[tuple[str, int, str], list[float]] = {}
    for server_name, server in subjects.items():  # warm-up: imports, first renders, worker start
        if server is not None:
            for output in OUTPUTS:
                for path in paths(server_name, output, sources.photos):
                    load.status_time(server.url(path))
    for _ in range(plan.runs):
        for output in OUTPUTS:
            floor = measure_floor([sources.folder / name for name in sources.photos], output, processes(), plan.seconds)
            for clients in CLIENTS:
                samples.setdefault((output, clients, FLOOR), []).append(floor.per_second)
                p99s.setdefault((output, clients, FLOOR), []).append(_p99(floor.latencies))
                for name, server in subjects.items():
                    if server is None or not have_wrk:
                        continue
                    result = load.load_over_paths(
                        server.url(""), paths(name, output, sources.photos), clients, plan.seconds, str(workdir)
                    )
                    samples.setdefault((output, clients, name), []).append(result.per_second)
                    p99s.setdefault((output, clients, name), []).append(result.p99)
    sections = []
    for output in OUTPUTS:
        for clients in CLIENTS:
            rows = []
            for name in (FLOOR, MEDIASRV, THUMBOR, NAIVE):
                key = (output, clients, name)
                if key in samples:
                    note = f"p99 {statistics.median(p99s[key]) * 1000:,.0f} ms"
                    if name == FLOOR:
                        note += f", {processes()} processes, no HTTP"
                    rows.append(Row(name, samples[key], note=note))
                else:
                    rows.append(Row(name, skipped=_skipped(name, have_wrk)))
            title = f"Render JPEG->{output.upper()} {WIDTH} px, {clients} clients"
            sections.append(Section(title, "renders/s", rows, references=(FLOOR,)))
    return sections


def _skipped(name: str, have_wrk: bool) -> str:
    if not have_wrk:
        return "wrk is not installed"
    return THUMBOR_MISSING if name == THUMBOR else "skipped"


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def memory_section(server: Process, sources: Sources, plan: RenderPlan) -> Section:
    """Peak RSS of mediasrv and its render workers, summed, while 16 clients ask for the 50 MP
    source at 400 px (every request a full render)."""
    title = "Memory: peak RSS of mediasrv + render workers"
    if not load.have_wrk():
        rows = [Row("16 clients, 50 MP JPEG -> 400 px WebP", skipped="wrk is not installed")]
        return Section(title, "MiB", rows, bound=MEMORY_LIMIT_MIB)
    path = f"/media/disk/{sources.huge}?width={WIDTH}&format=webp"
    idle = load.tree_rss(server.pid)
    sampler = load.PeakSampler(server.pid)
    sampler.start()
    try:
        result = load.load_over_paths(server.url(""), [path], 16, plan.memory_seconds, str(sources.folder.parent))
    finally:
        peak = sampler.stop()
    size = "50 MP" if plan.huge else "small (smoke)"
    note = f"idle {idle / MIB:.0f} MiB; {result.per_second:.1f} renders/s, p99 {result.p99 * 1000:,.0f} ms"
    rows = [Row(f"16 clients, {size} JPEG -> 400 px WebP", [peak / MIB], note=note)]
    return Section(title, "MiB", rows, bound=MEMORY_LIMIT_MIB)


def bomb_section(server: Process, sources: Sources) -> Section:
    """How long a 20000x20000 PNG (48 KB on disk) takes to be refused with 422."""
    url = server.url(f"/media/disk/{sources.bomb}?width={WIDTH}&format=webp")
    times = []
    for _ in range(BOMB_REQUESTS):
        status, seconds = load.status_time(url)
        if status != 422:
            raise load.LoadError(f"GET {url}: status {status}, expected 422")
        times.append(seconds * 1000)
    return Section(
        "Pixel bomb (400 MP PNG) refused", "ms", [Row("mediasrv 422", times, note=f"{BOMB_REQUESTS} requests")]
    )


def targets(sections: list[Section]) -> list[Target]:
    """At least 1.4x thumbor and 90% of the floor in every throughput section; memory bounded."""
    found: list[Target] = []
    for section in sections:
        if section.unit != "renders/s":
            continue
        ours = section.row(MEDIASRV).median
        for name, threshold in ((THUMBOR, 1.4), (FLOOR, 0.9)):
            other = section.row(name).median
            value = ours / other if ours and other else None
            found.append(Target(f"{section.title}: mediasrv / {name}", value, threshold, True))
    memory = next(section for section in sections if section.unit == "MiB")
    found.append(Target(f"{memory.title} (MiB)", memory.rows[0].median, MEMORY_LIMIT_MIB, False))
    return found
