"""Compare models across run and study folders: one table of every measure, mean and 95% CI over seeds."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from vaelab.analysis import stats
from vaelab.analysis.registry import MEASURE_INFO, describe, is_detail
from vaelab.config import flatten
from vaelab.errors import RunError
from vaelab.io import json_text
from vaelab.models.registry import PRESET_KEYS, PRESETS
from vaelab.records import is_run_folder, is_study_folder, load_results, read_measures, read_model_json


def run_label(config) -> str:
    """A short name for a run's model: its preset name where it matches one, else encoder/decoder/objective."""
    model = config.model
    weight = model.weight()
    usual = type(model).model_fields[weight[0]].default if weight else None
    matching = [name for name, settings in PRESETS.items()
                if all(getattr(model, key) == settings[key] for key in PRESET_KEYS)]
    if matching:  # the preset that names most of the run's other settings (rae-gp over rae), else the first
        label = max(matching, key=lambda name: sum(getattr(model, key, None) == value
                                                   for key, value in PRESETS[name].items()
                                                   if key not in PRESET_KEYS and (not weight or key != weight[0])))
        usual = PRESETS[label].get(weight[0], usual) if weight else None
    else:
        label = f"{model.encoder}/{model.decoder}/{model.objective}"
        if model.learned_prior():
            label += f"/{model.learned_prior()}"
    if weight and weight[2] != usual:
        label += f" {weight[1]}={weight[2]:g}"
    return f"{label} ({config.data.name}, {config.train.epochs} ep)"


def collect(folders: list[str | Path]) -> dict[str, dict[str, dict[str, float]]]:
    """Measures per model label per seed from study folders (results.json) and run folders (measures.json).

    Runs are grouped by their whole config except the seed, so two runs that differ in
    anything (latent size, learning rate, ...) are never merged: where two groups would
    get the same short label, the settings that tell them apart are added to it. Two
    studies are told apart by their folder names, or by their paths where those clash.
    """
    table: dict[str, dict[str, dict[str, float]]] = {}
    studies = [Path(f) for f in folders if is_study_folder(Path(f))]
    study_names = _distinct_names(studies)
    groups: dict[str, dict[str, Any]] = {}  # config without seed (JSON) -> config and {seed: (folder, measures)}
    for folder in map(Path, folders):
        if is_study_folder(folder):
            results = load_results(folder)
            parts = results["datasets"]
            for dataset, part in parts.items():
                for model, seeds in part["per_seed"].items():
                    label = model if len(parts) == 1 else f"{model} ({dataset})"
                    label = label if len(studies) == 1 else f"{study_names[folder]}:{label}"
                    table.setdefault(label, {}).update(seeds)
        elif is_run_folder(folder):
            saved = read_measures(folder)
            if saved is None:
                raise RunError(f"{folder}: no measures.json: run `vaelab evaluate {folder}` first")
            info = read_model_json(folder)
            config = info["config"]
            key = json.dumps(_without_seed(config), sort_keys=True)
            group = groups.setdefault(key, {"config": config, "seeds": {}})
            seed = str(info["seed"])
            if seed in group["seeds"]:
                raise RunError(f"{group['seeds'][seed]} and {folder} are the same run (same config and seed): "
                               "compare one of them")
            group["seeds"][seed] = folder
            group.setdefault("measures", {})[seed] = saved["measures"]
        else:
            raise RunError(f"{folder}: neither a study folder (results.json) nor a run directory (model.json)")
    for label, group in _labelled(list(groups.values())):
        table[label] = group["measures"]
    return table


def reference_applies(reference: dict, dataset: str, contents: list[str] | None = None) -> bool:
    """Whether published numbers (one of a study's ``reference``) are about ``dataset``, whose runs were trained
    on data of the content fingerprints ``contents`` (None: not recorded, as in results.json files written before
    content fingerprints).

    They are when they name neither data sets nor fingerprints; when they name the data set; when they name
    the content it holds (an ``idx:`` folder holding MNIST's test split is MNIST-test). An ``idx:`` folder whose
    content is not recorded, or compared against numbers that name no fingerprint, may hold that data: shown.
    """
    named, fingerprints = reference.get("datasets"), reference.get("fingerprints")
    if not named and not fingerprints:
        return True
    if dataset in (named or []) or set(fingerprints or []) & set(contents or []):
        return True
    return dataset.startswith("idx:") and (not fingerprints or contents is None)


def references_for(study: dict, dataset: str, part: dict) -> list[tuple[str, dict]]:
    """The published numbers of a study (``results.json``'s ``study``) that are about one of its data sets, each
    as ``(where, reference)``: its place in results.json (``study.reference.N``; ``study.reference`` in an
    earlier results.json, which held one mapping or null: both are read).
    """
    recorded = study.get("reference") or []
    places = [("study.reference", recorded)] if isinstance(recorded, dict) else \
        [(f"study.reference.{index}", reference) for index, reference in enumerate(recorded)]
    return [(where, reference) for where, reference in places
            if reference_applies(reference, dataset, part.get("contents"))]


def _without_seed(config) -> dict[str, Any]:
    values = config.model_dump()
    values["train"].pop("seed", None)
    return values


def _labelled(groups: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """A distinct label per group: the short label, plus the settings that differ where labels clash."""
    short = [run_label(group["config"]) for group in groups]
    labelled = []
    for index, group in enumerate(groups):
        clashing = [other for other, label in zip(groups, short) if label == short[index]]
        label = short[index]
        if len(clashing) > 1:
            mine = flatten(_without_seed(group["config"]))
            others = [flatten(_without_seed(other["config"])) for other in clashing if other is not group]
            differing = [key for key in mine if any(other.get(key) != mine[key] for other in others)]
            label += " " + ", ".join(f"{key.split('.')[-1]}={mine[key]}" for key in differing)
        labelled.append((label, group))
    return labelled


def _distinct_names(studies: list[Path]) -> dict[Path, str]:
    """Each study folder's name, or its full path where two folders share a name."""
    names = [folder.name for folder in studies]
    return {folder: (folder.name if names.count(folder.name) == 1 else str(folder)) for folder in studies}


def aggregate(table: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, dict]]:
    """Mean and 95% CI over seeds of every measure, per model label."""
    result = {}
    for label, seeds in table.items():
        names = sorted({name for values in seeds.values() for name in values})
        result[label] = {n: stats.mean_ci([seeds[s].get(n) for s in sorted(seeds)]) for n in names}
    return result


def measure_order(name: str) -> tuple[int, str]:
    """Sort key: the catalogue's order, then perturbation sweeps, then the rest by name."""
    order = list(MEASURE_INFO)
    if name in order:
        return (order.index(name), name)
    return (len(order) + (0 if name.startswith("perturb") else 1), name)


def comparison_rows(aggregated: dict[str, dict[str, dict]], detail: bool = False) -> list[dict[str, Any]]:
    """Rows: measure name, description, direction, one cell per model, and the best model (if any)."""
    models = list(aggregated)
    names = sorted({n for m in models for n in aggregated[m]}, key=measure_order)
    rows = []
    for name in names:
        if is_detail(name) != detail:
            continue
        description, direction = describe(name)
        cells = {m: aggregated[m].get(name) for m in models}
        means = {m: c["mean"] for m, c in cells.items() if c and c["mean"] is not None}
        best = (max if direction > 0 else min)(means, key=lambda m: means[m]) if direction and len(means) > 1 else None
        rows.append({"name": name, "description": description, "direction": direction, "cells": cells, "best": best})
    return rows


def fmt(value) -> str:
    """How a number is shown in tables and reports (the report test parses it back)."""
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:.2f}"
    return f"{value:.4f}"


def fmt_ci(cell: dict) -> str:
    """``mean ± ci`` of an aggregate cell (the mean alone when there is no interval)."""
    if cell["ci"] is None:
        return fmt(cell["mean"])
    return f"{fmt(cell['mean'])} ± {fmt(cell['ci'])}"


def _cell_text(cell: dict | None) -> str:
    return fmt_ci(cell) if cell else "—"


def render(aggregated: dict[str, dict[str, dict]], fmt: str = "md") -> str:
    """The comparison as a Markdown table (best per row in bold), CSV, or JSON."""
    rows = comparison_rows(aggregated)
    models = list(aggregated)
    if fmt == "json":
        return json_text({"models": models, "rows": rows}, indent=2)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["measure", *[f"{m} {part}" for m in models for part in ("mean", "ci", "n")], "best"])
        for row in rows:
            values = []
            for m in models:
                cell = row["cells"][m] or {"mean": None, "ci": None, "n": 0}
                values += [cell["mean"], cell["ci"], cell["n"]]
            writer.writerow([row["name"], *["" if v is None else v for v in values], row["best"] or ""])
        return buffer.getvalue()
    if fmt != "md":
        raise ValueError(fmt)
    lines = ["| measure | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
    for row in rows:
        cells = [f"**{_cell_text(row['cells'][m])}**" if row["best"] == m else _cell_text(row["cells"][m])
                 for m in models]
        arrow = {1: " ↑", -1: " ↓"}.get(row["direction"], "")
        lines.append(f"| {row['name']}{arrow} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
