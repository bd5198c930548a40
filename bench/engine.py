"""``python -m bench.engine [--smoke]``: the JPEG shrink-on-load choice, measured.

One process, no HTTP: 2-4 MP photo-like JPEGs (gradients, noise, sharp text and fine stripes)
resized to 400 px wide, by libvips' own ``thumbnail_buffer`` (its shrink-on-load stops where a
2x final resize is left) and by mediasrv's engine at several JPEG_SHRINK_MARGIN values. Each
output is compared with the reference, a full-resolution decode resized by Lanczos3 (PSNR in
dB over the resized pixels before encoding, higher is closer; above ~40 dB differences are hard
to see), and timed (median CPU ms per image, decode + resize + JPEG encode at quality 80: CPU time, since
other work on the machine stretches wall time; libvips runs one thread here, as in a worker).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import pyvips

from mediasrv.transforms import engine
from mediasrv.transforms.engine import RenderPlan

WIDTH = 400
SIZES = ((2000, 1500), (2400, 1600), (1800, 1200))  # 3.0, 3.8 and 2.2 MP
MARGINS = (1.0, 1.5, 2.0)


def photo_like(width: int, height: int) -> bytes:
    """Smooth gradients, sensor-like noise, fine stripes and sharp text: what resamplers get wrong."""
    xyz = pyvips.Image.xyz(width, height)
    red = xyz[0] * (200 / width) + 30
    green = xyz[1] * (180 / height) + 40
    stripes = ((xyz[0] * 0.35).sin() * 40) + 100  # a period of ~18 px: survives a 5x reduction
    image = red.bandjoin([green, stripes]) + pyvips.Image.gaussnoise(width, height, sigma=8).bandjoin([0, 0])
    text = pyvips.Image.text("mediasrv shrink-on-load", dpi=600).gravity("centre", width, height) > 128
    image = text.ifthenelse([250, 250, 250], image)
    return bytes(image.cast("uchar").copy(interpretation="srgb").jpegsave_buffer(Q=90))


def plan() -> RenderPlan:
    return RenderPlan(
        width=WIDTH,
        height=None,
        fit="contain",
        gravity="center",
        enlarge=False,
        format="jpeg",
        format_token="jpeg",
        quality=80,
        steps=(),
        qualities=(("jpeg", 80),),
        avif_effort=2,
        webp_effort=4,
        max_source_pixels=50_000_000,
        max_dimension=4096,
        animation=False,
    )


def reference(source: bytes) -> Any:
    full = pyvips.Image.new_from_buffer(source, "")
    return full.resize(WIDTH / full.width, kernel="lanczos3")


def psnr(image: Any, reference_image: Any) -> float:
    height = min(image.height, reference_image.height)
    a = image.crop(0, 0, WIDTH, height).cast("float")
    b = reference_image.crop(0, 0, WIDTH, height).cast("float")
    mse = ((a - b) ** 2).avg()
    return 99.0 if mse == 0 else 10 * math.log10(255**2 / mse)


def interleaved(subjects: dict[str, Callable[[], object]], runs: int) -> dict[str, float]:
    """Median milliseconds of each subject, measured round-robin after one warm-up each."""
    times: dict[str, list[float]] = {name: [] for name in subjects}
    for function in subjects.values():
        function()
    for _ in range(runs):
        for name, function in subjects.items():
            started = time.process_time()
            function()
            times[name].append(time.process_time() - started)
    return {name: statistics.median(values) * 1000 for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="one size, three runs")
    args = parser.parse_args()
    engine.configure()
    runs, sizes = (3, SIZES[:1]) if args.smoke else (15, SIZES)
    renders: dict[str, Callable[[bytes], object]] = {
        "libvips thumbnail_buffer": lambda source: pyvips.Image.thumbnail_buffer(source, WIDTH).jpegsave_buffer(
            Q=80, keep="none", optimize_coding=True
        ),
    }
    resizes: dict[str, Callable[[bytes], Any]] = {"libvips thumbnail_buffer": lambda source: _thumbnail(source)}
    for margin in MARGINS:
        renders[f"mediasrv, margin {margin:g}"] = lambda source, margin=margin: _engine(source, margin)
        resizes[f"mediasrv, margin {margin:g}"] = lambda source, margin=margin: _engine_pixels(source, margin)
    print(f"{'subject':28} {'size':>10} {'shrink':>6} {'ms':>7} {'PSNR dB':>8}")
    summary: dict[str, list[float]] = {name: [] for name in renders}
    for width, height in sizes:
        source = photo_like(width, height)
        truth = reference(source)
        milliseconds = interleaved({name: partial(render, source) for name, render in renders.items()}, runs)
        for name in renders:
            quality = psnr(resizes[name](source), truth)
            summary[name].append(milliseconds[name])
            shrink = _shrink_of(name, width, height)
            print(f"{name:28} {f'{width}x{height}':>10} {shrink:>6} {milliseconds[name]:7.1f} {quality:8.1f}")
    print()
    base = statistics.mean(summary["libvips thumbnail_buffer"])
    for name, times in summary.items():
        mean = statistics.mean(times)
        print(f"{name:28} mean {mean:6.1f} ms, {base / mean:4.2f}x thumbnail_buffer")


def _thumbnail(source: bytes) -> Any:
    return pyvips.Image.thumbnail_buffer(source, WIDTH).copy_memory()


def _engine_pixels(source: bytes, margin: float) -> Any:
    engine.JPEG_SHRINK_MARGIN = margin
    header = engine.read_header(source, 50_000_000, False)
    return engine._resized(source, plan(), header, False).copy_memory()


def _engine(source: bytes, margin: float) -> bytes:
    engine.JPEG_SHRINK_MARGIN = margin
    return engine.render(source, plan()).body


def _shrink_of(name: str, width: int, height: int) -> str:
    if not name.startswith("mediasrv"):
        return "auto"
    engine.JPEG_SHRINK_MARGIN = float(name.rsplit(" ", 1)[1])
    return str(engine.jpeg_shrink(engine.plan_geometry(plan(), width, height), width, height))


if __name__ == "__main__":
    main()
