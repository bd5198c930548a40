"""The sources the render benchmarks use, made with libvips: photo-like JPEGs of 2 to 4 MP,
one of 50 MP, and a pixel bomb (a 20000x20000 PNG of a few KB)."""

from __future__ import annotations

from pathlib import Path

import pyvips

import bench.servers  # noqa: F401  (puts tests/ on sys.path, for the tests' image makers)
from images import pixel_bomb_png  # noqa: E402

# (width, height): 2.1 to 3.8 MP, landscape and portrait, like phone and camera photos.
PHOTO_SIZES = ((1800, 1200), (2048, 1536), (1536, 2048), (2400, 1600), (2560, 1440), (1920, 1280))
HUGE_SIZE = (8640, 5760)  # 49.8 MP: just under the default max_source_pixels (50 000 000)
BOMB_SIDE = 20000


def photo(width: int, height: int, seed: int) -> pyvips.Image:
    """Smooth gradients and soft shapes under sensor-like noise: compresses like a photo
    (about 1 to 2 bits a pixel at Q 85), not like a flat test card."""
    xyz = pyvips.Image.xyz(width, height)
    x, y = xyz[0], xyz[1]
    waves = ((x * (0.25 + seed * 0.04)).sin() * 60 + (y * 0.35).cos() * 50).cast("float")  # degrees a pixel
    noise = pyvips.Image.gaussnoise(width, height, sigma=14, mean=0, seed=seed)
    red = x * (180 / width) + waves + noise + 30
    green = y * (160 / height) - waves * 0.5 + noise + 50
    blue = (x + y) * (120 / (width + height)) + waves * 0.8 + noise + 60
    return red.bandjoin([green, blue]).cast("uchar").copy(interpretation="srgb")


def write_photos(folder: Path, count: int = len(PHOTO_SIZES)) -> list[str]:
    """The first ``count`` photo-like JPEGs, as photo-N.jpg in ``folder``; their names."""
    names = []
    for seed, (width, height) in enumerate(PHOTO_SIZES[:count]):
        name = f"photo-{seed}.jpg"
        photo(width, height, seed).jpegsave(str(folder / name), Q=85)
        names.append(name)
    return names


def write_huge(folder: Path) -> str:
    """A 50 MP photo-like JPEG (libvips writes it in strips: flat memory here too)."""
    name = "huge-50mp.jpg"
    photo(*HUGE_SIZE, seed=7).jpegsave(str(folder / name), Q=80)
    return name


def write_bomb(folder: Path) -> str:
    """A valid 1-bit greyscale PNG of BOMB_SIDE x BOMB_SIDE (400 MP): 48 KB on disk, 1.2 GB as
    decoded RGB (the tests' pixel bomb)."""
    name = "bomb.png"
    (folder / name).write_bytes(pixel_bomb_png(BOMB_SIDE))
    return name
