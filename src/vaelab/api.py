"""The Python API: the same powers as the CLI.

>>> import vaelab
>>> run = vaelab.train("vae", dataset="mnist-5k", epochs=5, out="runs/vae")  # doctest: +SKIP
>>> codes = vaelab.encode(run)                                               # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vaelab.analysis.encode import Codes, encode_split
from vaelab.config import RunConfig, build_config, merge, preset, read_yaml
from vaelab.training.trainer import TrainedRun, fit, load_run, resume_config


def make_config(model: str | None = None, *, config_file: str | Path | None = None,
                base: RunConfig | None = None, **options: Any) -> RunConfig:
    """Resolve a run config from ``base``, a preset, a YAML file and keyword options (later wins).

    Keyword options are the leaf names of :class:`~vaelab.config.RunConfig`
    (``dataset``/``data_dir``/``holdout``/``binarize``, ``encoder``/``decoder``/
    ``objective``/``beta``/``hidden``/``latent``, ``epochs``/``batch_size``/``lr``/
    ``seed``/``precision``); None values are ignored.
    """
    values: dict[str, Any] = base.model_dump() if base is not None else {}
    if config_file:
        values = merge(values, read_yaml(config_file))
    if model is not None:
        values = merge(values, {"model": preset(model)})
    sections = {"data": ("data_dir", "holdout", "binarize"),
                "model": ("encoder", "decoder", "objective", "beta", "hidden", "latent", "negative_slope"),
                "train": ("epochs", "batch_size", "lr", "seed", "precision")}
    overrides: dict[str, dict[str, Any]] = {}
    dataset = options.pop("dataset", None)
    if dataset is not None:
        overrides["data"] = {"name": dataset}
    for section, keys in sections.items():
        for key in keys:
            value = options.pop(key, None)
            if value is not None:
                overrides.setdefault(section, {})[key] = value
    if options:
        raise TypeError(f"unknown option(s): {', '.join(options)}")
    return build_config(merge(values, overrides))


def train(model: str | None = "vae", *, out: str | Path | None = None, config_file: str | Path | None = None,
          resume: bool = False, progress: bool = False, device: str = "auto", **options: Any) -> TrainedRun:
    """Train a model and write its run directory.

    ``model`` is a preset (``ae``, ``vae``, ``conv-vae``, ``convenc-vae``) or
    None to take the model from ``config_file``/``options``. ``out`` defaults
    to ``runs/<model>-<dataset>-seed<seed>``. ``device``: ``auto`` (a CUDA GPU
    if there is one), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``. With
    ``resume=True`` an existing run continues from its saved config; only
    ``epochs`` may change (any other option that differs is refused).
    Returns the :class:`TrainedRun`.
    """
    saved = None
    if resume and out is not None and (Path(out) / "model.json").exists():
        saved = resume_config(out)
    config = make_config(model, config_file=config_file, base=saved, **options)
    run_dir = Path(out) if out is not None else default_run_dir(model, config)
    return fit(config, run_dir, resume=resume, progress=progress, device=device)


def default_run_dir(model: str | None, config: RunConfig) -> Path:
    """``runs/<model>-<dataset>-seed<k>``; an ``idx:PATH`` data set is named after its folder."""
    name = model or f"{config.model.encoder}-{config.model.decoder}-{config.model.objective}"
    dataset = config.data.name
    if dataset.startswith("idx:"):
        dataset = "idx-" + (Path(dataset[4:]).expanduser().resolve().name or "data")
    return Path("runs") / f"{name}-{dataset}-seed{config.train.seed}"


def load(run_dir: str | Path, device: str = "auto") -> TrainedRun:
    """Load a trained run directory (model in eval mode on ``device``, config, history)."""
    return load_run(run_dir, device)


def encode(run: TrainedRun | str | Path, split: str = "test", device: str = "auto") -> Codes:
    """Encode a split (``test`` or ``train``) of the run's data set: mean, logvar, labels.

    ``device`` applies when ``run`` is a path; a loaded run encodes where its model is.
    """
    if not isinstance(run, TrainedRun):
        run = load_run(run, device)
    data = run.load_data()
    if split == "test":
        return encode_split(run.model, data.test_images, data.test_labels)
    if split == "train":
        return encode_split(run.model, data.train_images, data.train_labels)
    raise ValueError(f"split must be 'test' or 'train', not {split!r}")
