"""Figures of the study, drawn with matplotlib from what a study folder holds.

Each function takes plain arrays and writes one PNG atomically; the caller
(:mod:`vaelab.report.build`) loads the arrays. Colours: matplotlib's tab10,
one per class, the same in every map.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from vaelab.io import atomic_path  # noqa: E402

DPI = 110


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight",
                    metadata={"Software": None})  # no version/date stamp: identical runs, identical bytes
    plt.close(fig)
    return path


PAD = 2  # white pixels between the cells of an image grid


def _rgb(image: np.ndarray) -> np.ndarray:
    """One image as (H, W, 3) RGB in [0, 1]: grey (H, W) drawn dark on light, as the thesis's figures (ink, 1,
    is black), or colour (3, H, W)."""
    if image.ndim == 3:
        return np.clip(np.moveaxis(image, 0, -1), 0, 1)
    return np.repeat(1.0 - np.clip(image, 0, 1)[..., None], 3, axis=2)


def image_rows(rows: dict[str, np.ndarray], path: Path, title: str, column_labels: list[str] | None = None) -> Path:
    """A grid of images: one labelled row per entry of ``rows``, each (n, H, W) grey (drawn dark on light,
    as the thesis's figures) or (n, 3, H, W) colour, in [0, 1]; a shorter row leaves its last cells blank.

    The grid is one picture on one axes (a mosaic with white gaps), not an axes per image: a report's
    grids of 4 models x 10 images draw about 20x faster, and look the same.
    """
    n_cols = max(len(images) for images in rows.values())
    height, width = next(images for images in rows.values() if len(images)).shape[-2:]
    step_y, step_x = height + PAD, width + PAD
    mosaic = np.ones((len(rows) * step_y - PAD, n_cols * step_x - PAD, 3))
    for r, images in enumerate(rows.values()):
        for c, image in enumerate(images):
            mosaic[r * step_y:r * step_y + height, c * step_x:c * step_x + width] = _rgb(image)
    fig, ax = plt.subplots(figsize=(0.8 * n_cols + 1.6, 0.85 * len(rows) + 0.5))
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_yticks([r * step_y + (height - 1) / 2 for r in range(len(rows))], list(rows), fontsize=9)
    if column_labels:
        ax.xaxis.tick_top()
        ax.set_xticks([c * step_x + (width - 1) / 2 for c in range(n_cols)], column_labels[:n_cols], fontsize=9)
    else:
        ax.set_xticks([])
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def latent_maps(maps: dict[str, tuple[np.ndarray, np.ndarray]], class_names: list[str], path: Path,
                title: str) -> Path:
    """Side-by-side 2-D maps (t-SNE), points coloured by class; ``maps[label] = (xy, labels)``."""
    fig, axes = plt.subplots(1, len(maps), figsize=(4.2 * len(maps), 4.4), squeeze=False)
    colors = plt.get_cmap("tab10")
    for ax, (label, (xy, labels)) in zip(axes[0], maps.items()):
        for k in range(len(class_names)):
            mask = labels == k
            ax.scatter(xy[mask, 0], xy[mask, 1], s=4, color=colors(k % 10), label=class_names[k], alpha=0.8,
                       linewidths=0)
        ax.set_title(label, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=len(class_names), markerscale=3, frameon=False, fontsize=9)
    fig.suptitle(title, fontsize=11)
    fig.subplots_adjust(bottom=0.1, wspace=0.05)
    return _save(fig, path)


def silhouette_plots(values: dict[str, tuple[np.ndarray, np.ndarray, float]], class_names: list[str],
                     path: Path, title: str) -> Path:
    """Per-class silhouette plots (as the thesis's figures 4.6/4.7), x in [-0.5, 0.5].

    ``values[label] = (per-point silhouettes, labels, mean)``.
    """
    fig, axes = plt.subplots(1, len(values), figsize=(3.6 * len(values), 4.6), squeeze=False, sharey=True)
    colors = plt.get_cmap("tab10")
    for ax, (label, (sil, labels, mean)) in zip(axes[0], values.items()):
        y = 0
        for k in range(len(class_names)):
            part = np.sort(sil[labels == k])
            ax.fill_betweenx(np.arange(y, y + len(part)), 0, part, color=colors(k % 10), linewidth=0)
            ax.text(-0.48, y + len(part) / 2, class_names[k], fontsize=8, va="center")
            y += len(part) + 10
        ax.axvline(mean, color="black", linestyle="--", linewidth=1)
        ax.set_xlim(-0.5, 0.5)
        ax.set_title(f"{label}\nmean {mean:.4f}", fontsize=10)
        ax.set_yticks([])
        ax.set_xlabel("silhouette")
    fig.suptitle(title, fontsize=11, y=1.04)  # above the two-line panel titles
    return _save(fig, path)


def curves(series: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], path: Path, title: str,
           xlabel: str, ylabel: str, logy: bool = False) -> Path:
    """Lines with shaded bands: ``series[label] = (x, mean, half-width)``."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for label, (x, mean, half) in series.items():
        line, = ax.plot(x, mean, marker="o", markersize=3, label=label)
        ax.fill_between(x, mean - half, mean + half, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=9)
    ax.set_title(title, fontsize=11)
    return _save(fig, path)


def bars(groups: list[str], series: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, title: str) -> Path:
    """Grouped bars with error bars: ``series[model] = (means per group, half-widths per group)``."""
    fig, ax = plt.subplots(figsize=(1.6 * len(groups) + 2.5, 3.8))
    width = 0.8 / max(1, len(series))
    x = np.arange(len(groups))
    for i, (label, (mean, half)) in enumerate(series.items()):
        ax.bar(x + i * width - 0.4 + width / 2, mean, width, yerr=half, capsize=3, label=label)
    ax.set_xticks(x)
    ax.set_xticklabels(groups, fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(frameon=False, fontsize=8, ncol=2)
    ax.set_title(title, fontsize=11)
    return _save(fig, path)


def heatmap(table: np.ndarray, row_labels: list[str], column_labels: list[str], path: Path, title: str) -> Path:
    """A table of values in [0, 1] as coloured cells, each written in (rows: e.g. attributes; columns: models);
    a missing value (NaN) is left blank."""
    fig, ax = plt.subplots(figsize=(1.3 * len(column_labels) + 2.8, 0.24 * len(row_labels) + 1.2))
    shown = np.ma.masked_invalid(table)
    ax.imshow(shown, cmap="viridis", vmin=0.5, vmax=1.0, aspect="auto", interpolation="nearest")
    for (r, c), value in np.ndenumerate(table):
        if np.isfinite(value):
            ax.text(c, r, f"{value:.2f}", ha="center", va="center", fontsize=7,
                    color="black" if value > 0.8 else "white")
    ax.set_yticks(range(len(row_labels)), [name.replace("_", " ") for name in row_labels], fontsize=8)
    ax.xaxis.tick_top()
    ax.set_xticks(range(len(column_labels)), column_labels, fontsize=9)
    ax.tick_params(length=0)
    ax.set_title(title, fontsize=10, pad=24)
    return _save(fig, path)
