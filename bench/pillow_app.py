"""The naive render route people write first: FastAPI and Pillow, open, resize, save, all in
the event loop (``BENCH_ROOT`` names the folder of sources)."""

from __future__ import annotations

import io
import os
from pathlib import Path

from fastapi import FastAPI, Response
from PIL import Image

app = FastAPI()
CONTENT_TYPES = {"jpeg": "image/jpeg", "webp": "image/webp"}


@app.get("/render/{name}")
async def render(name: str, width: int, format: str = "jpeg") -> Response:
    """``name`` resized to ``width`` (aspect ratio kept) in ``format``, quality 80."""
    with Image.open(Path(os.environ["BENCH_ROOT"]) / Path(name).name) as image:
        height = round(image.height * width / image.width)
        resized = image.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
    body = io.BytesIO()
    resized.save(body, format=format.upper(), quality=80)
    return Response(body.getvalue(), media_type=CONTENT_TYPES[format])
