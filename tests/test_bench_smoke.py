"""The benchmark suite still runs: ``python -m bench.run --smoke`` (tiny objects, one run,
1 s loads) sets everything up, measures every row and writes its JSON. Rows needing wrk or
nginx may be skipped when those are missing, but must then say why."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import PROJECT_DIR

SECTIONS = ("S3 256 KiB", "S3 1 MiB", "Disk 1 MiB", "HTTP upstream 1 MiB", "Time to first byte", "Local 16 KiB")
# Rows that need nginx: the disk comparison, and the S3 behind nginx's per-connection cap.
NEEDS_NGINX = (
    "nginx (sendfile)",
    "direct GET through capped nginx",
    "mediasrv s3, parallel parts",
    "mediasrv s3, one GET",
    "1 byte from the capped nginx",
)


def test_bench_smoke_measures_every_row(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--out", str(tmp_path)],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["mode"] == "smoke"
    assert results["machine"]["cores"] >= 1
    titles = [section["title"] for section in results["sections"]]
    assert all(any(title.startswith(expected) for title in titles) for expected in SECTIONS), titles
    for section in results["sections"]:
        for row in section["rows"]:
            if row["skipped"]:
                assert _may_skip(row["name"], row["skipped"]), (section["title"], row)
                continue
            lowest = 0 if section["unit"] == "MiB" else 1e-9  # memory growth may be nil; speeds may not
            assert row["samples"] and min(row["samples"]) >= lowest, (section["title"], row)
    assert "Targets" in result.stdout


def _may_skip(name: str, reason: str) -> bool:
    """Only the naive patterns at the large size, and what needs a missing tool."""
    if reason.startswith("naive patterns"):
        return True
    if reason == "wrk is not installed":
        return shutil.which("wrk") is None
    return name in NEEDS_NGINX and reason == "nginx is not installed"
