"""results.png: one panel per comparison, each subject's median as a ratio to the section's
reference (min and max as error bars); time to first byte in ms, and memory in MiB against its
bound."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from bench.report import Row, Section  # noqa: E402


def draw(sections: list[Section], path: Path, title: str = "mediasrv benchmarks") -> None:
    """Write the chart of ``sections`` to ``path``."""
    figure, axes = plt.subplots(len(sections), 1, figsize=(9, 2.2 * len(sections) + 0.8), squeeze=False)
    for axis, section in zip(axes[:, 0], sections, strict=True):
        _panel(axis, section)
    figure.suptitle(f"{title} (median; bars: min-max)")
    figure.tight_layout(rect=(0, 0, 1, 0.985))
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _panel(axis: plt.Axes, section: Section) -> None:
    reference = section.reference()
    rows = [row for row in section.rows if row.samples]
    scale = reference.median if reference is not None and reference.median else 1.0
    medians = [(row.median or 0) / scale for row in rows]
    errors = [
        [m - min(row.samples) / scale for m, row in zip(medians, rows, strict=True)],
        [max(row.samples) / scale - m for m, row in zip(medians, rows, strict=True)],
    ]
    positions = range(len(rows))
    axis.barh(positions, medians, xerr=errors, color=[_colour(row) for row in rows], capsize=3)
    axis.set_yticks(list(positions), [row.name for row in rows], fontsize=8)
    axis.invert_yaxis()
    for position, value in zip(positions, medians, strict=True):
        axis.text(value, position, f" {value:.2f}", va="center", fontsize=8)
    if reference is not None:
        axis.axvline(1.0, color="grey", linewidth=0.8, linestyle="--")
        axis.set_title(f"{section.title}: {section.unit} relative to {reference.name}", fontsize=9)
    elif section.bound is not None:
        axis.axvline(section.bound, color="red", linewidth=0.8, linestyle="--")
        axis.set_title(f"{section.title} ({section.unit}; bound {section.bound:g} {section.unit})", fontsize=9)
    else:
        axis.set_title(f"{section.title} ({section.unit})", fontsize=9)
    axis.margins(x=0.15)


def _colour(row: Row) -> str:
    return "tab:blue" if row.name.startswith("mediasrv") else "tab:grey"
