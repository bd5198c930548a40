"""Results: rows of samples grouped in sections, the targets they are held to, the table
printed to stdout and the JSON file."""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MIB = 1024 * 1024


@dataclass
class Row:
    """One subject of a comparison: its samples (one per run), or why it was skipped."""

    name: str
    samples: list[float] = field(default_factory=list)
    note: str = ""
    skipped: str = ""

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None


@dataclass
class Section:
    """Subjects measured side by side in one run; ratios are to the first measured of
    ``references`` (the direct source, else the next best thing)."""

    title: str
    unit: str
    rows: list[Row]
    references: tuple[str, ...] = ()
    bound: float | None = None  # the most a row may be (memory), drawn on the chart

    def row(self, name: str) -> Row:
        return next(row for row in self.rows if row.name == name)

    def reference(self) -> Row | None:
        for name in self.references:
            row = self.row(name)
            if row.median:
                return row
        return None

    def ratio(self, row: Row) -> float | None:
        reference = self.reference()
        if reference is None or row.median is None or not reference.median:
            return None
        return row.median / reference.median


@dataclass(frozen=True)
class Target:
    """A figure the issue asks for: ``value`` must be at least (or at most) ``threshold``."""

    name: str
    value: float | None
    threshold: float
    at_least: bool

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return self.value >= self.threshold if self.at_least else self.value <= self.threshold

    def describe(self) -> str:
        verdict = {True: "met", False: "MISSED", None: "not measured"}[self.met]
        value = "-" if self.value is None else f"{self.value:.2f}"
        sign = ">=" if self.at_least else "<="
        return f"{verdict:>12}  {self.name}: {value} (target {sign} {self.threshold:g})"


def _figure(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"


def table(sections: list[Section], targets: list[Target]) -> str:
    """The one table: median, min, max and ratio of every row, then the targets."""
    lines = []
    header = f"{'':34} {'median':>10} {'min':>10} {'max':>10} {'ratio':>7}  note"
    for section in sections:
        reference = section.reference()
        suffix = f", ratio to {reference.name}" if reference is not None else ""
        lines += ["", f"{section.title} [{section.unit}{suffix}]", header]
        for row in section.rows:
            if row.skipped:
                lines.append(f"  {row.name:32} {'skipped: ' + row.skipped}")
                continue
            ratio = section.ratio(row)
            lines.append(
                f"  {row.name:32} {_figure(row.median):>10} {_figure(min(row.samples)):>10}"
                f" {_figure(max(row.samples)):>10} {'-' if ratio is None else f'{ratio:.2f}':>7}  {row.note}"
            )
    lines += ["", "Targets"] + [target.describe() for target in targets]
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """What the figures came from."""
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        model = next(
            (
                line.split(":", 1)[1].strip()
                for line in cpuinfo.read_text().splitlines()
                if line.startswith("model name")
            ),
            "",
        )
    return {
        "cores": os.cpu_count(),
        "cpu": model or platform.processor(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3, 1),
        "kernel": platform.release(),
        # Other work on the machine skews the figures; this is the load when the run ended.
        "load_average": [round(load, 2) for load in os.getloadavg()],
        "python": platform.python_version(),
        "nginx": _version(["nginx", "-v"]),
        "wrk": _version(["wrk", "--version"]),
        "curl": _version(["curl", "--version"]),
    }


def _version(argv: list[str]) -> str:
    if shutil.which(argv[0], path=os.environ.get("PATH", "") + ":/usr/sbin") is None:
        return "not installed"
    result = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    return (result.stdout + result.stderr).strip().splitlines()[0]


def machine_line(info: dict[str, Any]) -> str:
    """The machine, in one line above the table."""
    load = ", ".join(f"{value:g}" for value in info["load_average"])
    return f"{info['cores']} cores ({info['cpu']}), {info['memory_gib']} GiB, load average {load}"


def write_json(
    path: Path, mode: str, seconds: float, info: dict[str, Any], sections: list[Section], targets: list[Target]
) -> None:
    """Every sample, median and ratio, and the targets, as JSON."""
    document = {
        "mode": mode,
        "machine": info,
        "duration_s": round(seconds, 1),
        "sections": [
            {
                "title": section.title,
                "unit": section.unit,
                "reference": getattr(section.reference(), "name", None),
                "rows": [{**asdict(row), "median": row.median, "ratio": section.ratio(row)} for row in section.rows],
            }
            for section in sections
        ],
        "targets": [{**asdict(target), "met": target.met} for target in targets],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
