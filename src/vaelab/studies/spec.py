"""A study file: which models, on which data sets, over which seeds, measured how, compared how.

A study is data, not code: a YAML file validated by :class:`StudySpec`. The
thesis's own study is one (``studies/builtin/thesis.yaml``); a user's question
("latent size 8 or 32?", "β = 1, 4, 16 over 10 seeds?") is another::

    name: latent-size
    datasets: [mnist-5k]
    seeds: 5                     # or a list: [0, 1, 2, 7]
    train: {epochs: 10, batch_size: 128}
    models:
      vae-z8:  {preset: vae, model: {latent: 8}}
      vae-z32: {preset: vae, model: {latent: 32}}
    comparisons:
      - {a: vae-z8, b: vae-z32, measures: [silhouette, knn5_accuracy]}

Every mistake (an unknown key or preset, a comparison naming a model the study
lacks, no seeds, a key given twice) is a one-line :class:`ConfigError` naming
the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator,
                      model_validator)

from vaelab.analysis.registry import DEFAULT_GROUPS, GROUPS, check_measure
from vaelab.config import EvalSettings, RunConfig, build_config, format_validation_error, merge, read_yaml
from vaelab.data.registry import unknown_dataset
from vaelab.errors import ConfigError
from vaelab.models.registry import PRESETS

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"  # also a folder name: no spaces, slashes or upper case
BUILTIN_DIR = Path(__file__).parent / "builtin"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ModelSpec(_Strict):
    """A named model of the study: a preset plus overrides of its model, training and data settings."""

    preset: str = Field(description="a model preset (`vaelab train --help` lists them)")
    label: str | None = Field(None, description="the name shown in tables and figures [the model's key]")
    model: dict[str, Any] = Field(default_factory=dict, description="overrides of the model settings (latent, beta...)")
    train: dict[str, Any] = Field(default_factory=dict, description="overrides of the training settings (epochs, lr...)")
    data: dict[str, Any] = Field(default_factory=dict, description="overrides of the data settings (binarize, holdout)")

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str) -> str:
        if value not in PRESETS:
            raise ValueError(f"unknown preset {value!r}: choose one of {', '.join(PRESETS)}")
        return value

    @field_validator("train")
    @classmethod
    def _no_seed(cls, value: dict[str, Any]) -> dict[str, Any]:
        if "seed" in value:
            raise ValueError("a model's seed comes from the study's seeds: remove train.seed")
        return value

    @field_validator("data")
    @classmethod
    def _no_dataset(cls, value: dict[str, Any]) -> dict[str, Any]:
        if {"name", "data_dir", "protocol"} & set(value):
            raise ValueError("data sets come from the study's datasets, data_dir and protocol: remove "
                             "data.name/data.data_dir/data.protocol")
        return value


class ComparisonSpec(_Strict):
    """A paired comparison: per seed, model ``a`` minus model ``b``, for each measure (mean and 95% CI)."""

    a: str
    b: str
    measures: list[str] = Field(default_factory=lambda: ["silhouette"], min_length=1)

    def key(self, measure: str) -> str:
        """How the difference is named in ``results.json``: ``measure:a-b``."""
        return f"{measure}:{self.a}-{self.b}"


class FindingSpec(_Strict):
    """The study's question as one sentence with a verdict: ``a`` minus ``b`` on ``measure``.

    Without ``a`` the question is "which model is best by ``measure``?": the model with
    the best mean is named, with its paired difference against ``b``. The sentences
    are the study's own words for the three outcomes; without them a neutral
    sentence is written.
    """

    a: str | None = Field(None, description="the model compared with b [the best model by the measure]")
    b: str
    measure: str = "silhouette"
    higher: str | None = Field(None, description="said when a - b is above zero beyond the seeds' noise")
    lower: str | None = Field(None, description="said when a - b is below zero beyond the seeds' noise")
    within_noise: str | None = Field(None, description="said when the interval includes zero")


class ReferenceSpec(_Strict):
    """Published numbers to show beside the study's own (e.g. the thesis's Table 4.2)."""

    title: str
    measure: str
    source: str = ""
    protocol: str = Field("", description="how the published numbers were made (data, split, runs), shown "
                                          "under the table's title")
    values: dict[str, float] = Field(min_length=1, description="model key -> the published value")
    datasets: list[str] | None = Field(None, description="the data sets the published numbers are about: the "
                                       "table is shown for these and for idx: folders only (none: for every data "
                                       "set)")
    fingerprints: list[Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]] | None = Field(
        None, description="the content fingerprints (a run's model.json, dataset.content) of the data the numbers "
                          "are about: an idx: folder gets the table only when it holds that data")


class StudySpec(_Strict):
    """A whole study: validated from YAML by :func:`load_study`."""

    name: str = Field(pattern=NAME_PATTERN)
    title: str = ""
    description: str = ""
    datasets: list[str] = Field(min_length=1, description="data set names (see `vaelab datasets`) or idx:PATH")
    data_dir: str | None = Field(None, description="folder holding the IDX files of mnist/fashion-mnist")
    protocol: Literal["holdout", "transductive"] = Field(
        "holdout", description="holdout: train on the train split, measure the test split; transductive: train "
                               "and measure on every image (the clustering literature's protocol)")
    seeds: list[int] = Field(min_length=1, description="the seeds, or a count n for seeds 0..n-1")
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    log: Literal["none", "tensorboard"] = Field(
        "none", description="tensorboard: every cell's loss terms, image grids, measures and test-code projector "
                            "under STUDY/tensorboard/DATASET/CELL (the tensorboard extra)")
    train: dict[str, Any] = Field(default_factory=dict, description="training settings shared by every model")
    models: dict[str, ModelSpec] = Field(min_length=1)
    evaluation: EvalSettings = Field(default_factory=EvalSettings)
    measures: list[str] = Field(default_factory=lambda: list(DEFAULT_GROUPS), min_length=1, description="measure groups")
    comparisons: list[ComparisonSpec] = Field(default_factory=list)
    finding: list[FindingSpec] = Field(
        default_factory=list, description="the study's questions, each answered in one sentence: one, or a list "
                                          "(the first is the headline)")
    reference: list[ReferenceSpec] = Field(
        default_factory=list, description="published numbers beside the study's own: one, or a list (each shown "
                                          "for the data it is about)")
    panels: list[Literal["thesis"]] = Field(default_factory=list, description="study-specific report parts")

    @field_validator("reference", "finding", mode="before")
    @classmethod
    def _one_or_a_list(cls, value: Any) -> Any:
        if value is None:
            return []
        return [value] if isinstance(value, dict) else value

    @field_validator("seeds", mode="before")
    @classmethod
    def _count_or_list(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            if not 1 <= value <= 1000:
                raise ValueError(f"a seed count must be between 1 and 1000, not {value}")
            return list(range(value))
        return value

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, value: list[int]) -> list[int]:
        if any(seed < 0 for seed in value) or len(set(value)) != len(value):
            raise ValueError("seeds must be distinct non-negative integers")
        return value

    @field_validator("datasets")
    @classmethod
    def _known_datasets(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a data set is listed twice")
        for name in value:
            if unknown_dataset(name):
                raise ValueError(unknown_dataset(name))
        return value

    @field_validator("measures")
    @classmethod
    def _known_groups(cls, value: list[str]) -> list[str]:
        unknown = [group for group in value if group not in GROUPS]
        if unknown:
            raise ValueError(f"unknown measure group {unknown[0]!r}: choose from {', '.join(GROUPS)}")
        return value

    @field_validator("train")
    @classmethod
    def _shared_train(cls, value: dict[str, Any]) -> dict[str, Any]:
        if {"seed", "precision"} & set(value):
            raise ValueError("seed and precision are study settings (seeds:, precision:), not train settings")
        return value

    @field_validator("models")
    @classmethod
    def _model_names(cls, value: dict[str, ModelSpec]) -> dict[str, ModelSpec]:
        import re

        for name in value:
            if not re.match(NAME_PATTERN, name):
                raise ValueError(f"model name {name!r} must be lower case letters, digits, '-', '_' or '.'")
        return value

    @model_validator(mode="after")
    def _names_refer_to_models(self) -> "StudySpec":
        for i, comparison in enumerate(self.comparisons):
            for side in ("a", "b"):
                if getattr(comparison, side) not in self.models:
                    raise ValueError(f"comparisons.{i}.{side}: {getattr(comparison, side)!r} is not one of the "
                                     f"study's models ({', '.join(self.models)})")
        for i, question in enumerate(self.finding):
            for side in ("a", "b") if question.a is not None else ("b",):
                if getattr(question, side) not in self.models:
                    raise ValueError(f"{self._finding_where(i)}.{side}: {getattr(question, side)!r} is not one of "
                                     "the study's models")
        for i, reference in enumerate(self.reference):
            for key in reference.values:
                if key not in self.models:
                    raise ValueError(f"{self._reference_where(i)}.values: {key!r} is not one of the study's models")
        self._measures_are_measured()
        return self

    def _measures_are_measured(self) -> None:
        """Every measure a comparison, the finding or the reference names exists and is in a measured group."""
        named = [(f"comparisons.{i}.measures", name) for i, c in enumerate(self.comparisons) for name in c.measures]
        named += [(f"{self._finding_where(i)}.measure", question.measure) for i, question in enumerate(self.finding)]
        named += [(f"{self._reference_where(i)}.measure", reference.measure) for i, reference in enumerate(self.reference)]
        for where, name in named:
            problem = check_measure(name, self.measures)
            if problem:
                raise ValueError(f"{where}: {problem}")

    def _finding_where(self, index: int) -> str:
        """Where a finding is in the study file: ``finding`` (one) or ``finding.N`` (a list)."""
        return "finding" if len(self.finding) == 1 else f"finding.{index}"

    def _reference_where(self, index: int) -> str:
        """Where a reference is in the study file: ``reference`` (one) or ``reference.N`` (a list)."""
        return "reference" if len(self.reference) == 1 else f"reference.{index}"

    def label(self, model: str) -> str:
        """The display name of a model."""
        return self.models[model].label or model

    def run_config(self, model: str, dataset: str, seed: int, precision: str | None = None) -> RunConfig:
        """The resolved config of one cell: preset, shared training settings, the model's overrides, seed."""
        spec = self.models[model]
        values = {
            "data": {**spec.data, "name": dataset, "data_dir": self.data_dir, "protocol": self.protocol},
            "model": merge(PRESETS[spec.preset], spec.model),
            "train": {**self.train, **spec.train, "seed": seed, "precision": precision or self.precision},
        }
        try:
            return build_config(values)
        except ConfigError as error:
            raise ConfigError(f"models.{model}: {error}") from None

    def with_overrides(self, *, datasets: list[str] | None = None, seeds: int | list[int] | None = None,
                       data_dir: str | None = None, epochs_scale: float | None = None,
                       protocol: str | None = None, log: str | None = None) -> "StudySpec":
        """The same study on other data sets, seeds or protocol, logged elsewhere, or with training scaled
        (tests use ``epochs_scale``)."""
        values = self.model_dump()
        if log is not None:
            values["log"] = log
        if protocol is not None:
            values["protocol"] = protocol
        if datasets:
            values["datasets"] = datasets
        if seeds is not None:
            values["seeds"] = seeds
        if data_dir is not None:
            values["data_dir"] = data_dir
        if epochs_scale is not None:
            for name, spec in values["models"].items():
                settings = self.run_config(name, self.datasets[0], self.seeds[0]).model
                stages = settings.scaled_stages(epochs_scale)  # a staged model keeps each of its stages
                spec["model"].update(stages)
                scaled = settings.model_copy(update=stages)
                epochs = spec["train"].get("epochs", self.train.get("epochs", 10))
                spec["train"]["epochs"] = max(1 + scaled.stage_epochs(), round(epochs * epochs_scale))
        return validate_study(values, "the study")

    def to_yaml(self) -> str:
        """The resolved study as YAML, readable back with :func:`load_study`."""
        return yaml.safe_dump(self.model_dump(mode="json", exclude_defaults=False), sort_keys=False,
                              allow_unicode=True)


def validate_study(values: dict[str, Any], where: str) -> StudySpec:
    """Validate a dict into a :class:`StudySpec` and check every model resolves; one-line errors."""
    if not isinstance(values, dict) or not values:
        raise ConfigError(f"{where} is empty: a study needs name, datasets, seeds and models")
    try:
        spec = StudySpec.model_validate(values)
    except ValidationError as error:
        raise ConfigError(f"{where}: {_study_error(error)}") from None
    for model in spec.models:  # the overrides are checked against the run config, once
        spec.run_config(model, spec.datasets[0], spec.seeds[0])
    return spec


def _study_error(error: ValidationError) -> str:
    first = error.errors()[0]
    key = ".".join(str(part) for part in first["loc"]) or "study"
    if first["type"] == "missing":
        return f"missing key {key!r}: a study needs name, datasets, seeds and models"
    if first["type"] == "extra_forbidden":
        return f"unknown key {key!r}: remove it or check its spelling"
    if first["type"] == "value_error":
        return f"{key}: {first['msg'].removeprefix('Value error, ')}"
    return format_validation_error(error).replace("config value", "value")


def builtin_studies() -> dict[str, Path]:
    """The studies shipped with vaelab: name -> YAML file."""
    return {path.stem: path for path in sorted(BUILTIN_DIR.glob("*.yaml"))}


def load_study(source: str | Path) -> StudySpec:
    """A study from a YAML file, or a built-in study by name (``thesis``, ``thesis-full``...)."""
    builtin = builtin_studies()
    path = Path(source)
    if not path.is_file() and str(source) in builtin:
        path = builtin[str(source)]
    elif not path.exists():
        raise ConfigError(f"no study file {source}: give a YAML file, or one of the built-in studies "
                          f"({', '.join(builtin)})")
    elif path.is_dir():
        raise ConfigError(f"{source} is a folder: give a study YAML file")
    return validate_study(read_yaml(path, "name, datasets, seeds and models"), str(path))
