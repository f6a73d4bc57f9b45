"""Configuration: pydantic models for data, model and training, with YAML in and out.

Every option of ``vaelab train`` lives here, with its default and the reason for
it. Unknown keys are rejected, and a bad value becomes a one-line
:class:`~vaelab.errors.ConfigError` that names the key.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from vaelab.errors import ConfigError
from vaelab.models import registry as models
from vaelab.models.base import ModelSettings


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class DataConfig(_Strict):
    """Which data set, and how to prepare it."""

    name: str = Field("mnist-5k", description="data set name (see `vaelab datasets`) or idx:PATH")
    data_dir: str | None = Field(None, description="folder holding the IDX files of mnist/fashion-mnist")
    holdout: float = Field(0.2, gt=0.0, lt=1.0, description="test fraction when only one split exists")
    binarize: bool = Field(False, description="dynamic binarisation: pixels ~ Bernoulli(intensity)")
    protocol: Literal["holdout", "transductive"] = Field(
        "holdout", description="holdout: train on the train split, measure the test split; transductive: train "
                               "and measure on every image (the clustering literature's protocol)")

    @field_validator("name")
    @classmethod
    def _absolute_idx_path(cls, value: str) -> str:
        # idx:PATH is stored absolute, so that the run can be used from any working directory.
        if value.startswith("idx:") and len(value) > 4:
            return "idx:" + str(Path(value[4:]).expanduser().resolve())
        return value


# The model section: one model's settings, told apart by their `objective` (each model's module declares its
# own; see vaelab.models.base). A section of any earlier vaelab version is upgraded before it is read.
# The union is built at run time from the registry, which a type checker cannot follow: it reads the section
# as the base every model's settings share.
if TYPE_CHECKING:
    ModelSection = ModelSettings
else:
    ModelSection = Annotated[Union[models.settings_classes()], Field(discriminator="objective")]
_MODEL_SECTION: TypeAdapter[ModelSettings] = TypeAdapter(ModelSection)


def ModelConfig(**values: Any) -> ModelSettings:  # noqa: N802 (the name of the model section's type in vaelab 0.1)
    """A model's settings from keyword settings, read as a run config's model section is (the ``vae`` model
    where ``objective`` is not given; the forms of earlier versions upgraded). Raises pydantic's
    ``ValidationError``; :func:`build_config` turns it into one line."""
    return _MODEL_SECTION.validate_python(models.upgrade(values))


class TrainConfig(_Strict):
    """Optimiser and schedule.

    Adam with learning rate 1e-3 and batch 128 are the defaults of pytorch/examples
    vae/main.py and of most Keras VAE tutorials the thesis follows.
    """

    epochs: int = Field(10, gt=0, le=100000, description="training epochs")
    batch_size: int = Field(128, gt=0, le=65536, description="batch size")
    lr: float = Field(1e-3, gt=0.0, lt=1.0, description="Adam learning rate")
    seed: int = Field(0, ge=0, lt=2**63, description="the one seed behind all randomness")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="auto (bf16 autocast where the hardware runs it natively, else fp32), fp32 or bf16")


class RunConfig(_Strict):
    """Everything one training run needs."""

    data: DataConfig = DataConfig()
    model: ModelSection = Field(default_factory=lambda: ModelConfig())
    train: TrainConfig = TrainConfig()

    @model_validator(mode="before")
    @classmethod
    def _model_section_of_any_version(cls, values: Any) -> Any:
        if isinstance(values, dict) and isinstance(values.get("model"), dict):
            values = {**values, "model": models.upgrade(values["model"])}
        return values

    @model_validator(mode="after")
    def _a_schedule_the_model_fits(self) -> "RunConfig":
        self.model.check_epochs(self.train.epochs)
        return self

    def identity(self) -> str:
        """A stable hash of the resolved config (data, model, training, seed): equal identities are the same run."""
        return config_hash(self.model_dump(mode="json"))


def config_hash(values: dict[str, Any]) -> str:
    """16 hex digits of the SHA-256 of a config dict's canonical JSON (sorted keys, no spaces)."""
    canonical = json.dumps(values, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


SECTIONS = ("data", "model", "train")


def run_options() -> dict[str, tuple[str, str, Any]]:
    """Every leaf setting of :class:`RunConfig` as a flat option: name -> (section, key, pydantic field).

    The one list behind ``vaelab train``'s options and the API's keyword options;
    ``data.name`` is called ``dataset``.
    """
    fields = {"data": DataConfig.model_fields, "model": models.options(), "train": TrainConfig.model_fields}
    options = {}
    for section in SECTIONS:
        for key, field in fields[section].items():
            options["dataset" if (section, key) == ("data", "name") else key] = (section, key, field)
    return options


class EvalSettings(_Strict):
    """How much work the costly measures may do (the evaluation settings of a run or a study).

    Saved beside the measures in ``measures.json``: measures made with other
    settings are redone, never mixed.
    """

    iwae_k: int = Field(1000, gt=0, le=100000, description="importance samples per image for the IWAE bound")
    iwae_examples: int | None = Field(None, gt=0, description="test images for IWAE (None: all)")
    generation_samples: int = Field(1000, gt=1, le=1000000, description="prior (and ex-post density) samples for the Fréchet distance")
    sigmas: tuple[Annotated[float, Field(ge=0.0)], ...] = Field((0.0, 0.5, 1.0, 2.0, 4.0), min_length=1,
                                      description="noise scales of the perturbation experiment")
    perturbation_examples: int | None = Field(None, gt=0, description="test codes perturbed (None: all)")
    tsne_points: int = Field(2000, gt=10, description="codes on the t-SNE map (a seeded subsample)")
    tsne_iterations: int = Field(500, gt=0, le=100000, description="openTSNE steps after early exaggeration")
    classifier_epochs: int = Field(4, gt=0, le=1000, description="epochs of the feature classifier")
    factor_points: int | None = Field(None, gt=1, description="points of the factor grid encoded for the "
                                      "disentanglement metrics (None: the whole grid, as Locatello et al. draw "
                                      "from the generative process; N: a seeded subset, said in the report)")
    manifold_inits: int = Field(
        1, gt=0, le=1000, description="starts of the manifold group's Gaussian mixture, the fit of highest "
        "likelihood kept (1: N2D's code, scikit-learn's default; more: fewer merged clusters, no labels used)")
    expost_components: int = Field(10, gt=0, le=1000, description="components K of the ex-post density, the "
                                   "Gaussian mixture fitted to the training codes (10: Ghosh et al. 2020)")
    dci_estimator: Literal["boosted", "forest"] = Field(
        "boosted", description="DCI's importances: boosted (gradient-boosted trees, as disentanglement_lib) or "
        "forest (a random forest, about 30x faster, not comparable with Locatello et al.)")


def preset(name: str) -> dict[str, Any]:
    """The model settings of a named preset (one of :data:`vaelab.models.registry.PRESETS`)."""
    if name not in models.PRESETS:
        raise ConfigError(f"unknown model preset {name!r}: choose one of {', '.join(models.PRESETS)}")
    return dict(models.PRESETS[name])


def format_validation_error(error: ValidationError) -> str:
    """One line naming the first offending key and why it is wrong."""
    first = error.errors()[0]
    loc = list(first["loc"])
    objective = None
    if len(loc) >= 2 and loc[0] == "model" and loc[1] in models.MODELS:  # the union's tag: not a key
        objective = loc.pop(1)
    key = ".".join(str(part) for part in loc) or "config"
    message = first["msg"]
    if first["type"] == "union_tag_invalid":
        return (f"invalid config value for '{key}.objective': choose one of {', '.join(models.MODELS)} "
                f"(got {first['ctx']['tag']!r})")
    if first["type"] == "extra_forbidden":
        owners = [name for name, module in models.MODELS.items() if loc[-1] in module.Settings.model_fields]
        if objective is not None and owners:
            return (f"invalid config: {loc[-1]} applies to the {', '.join(owners)} objective"
                    f"{'s' if len(owners) > 1 else ''} only, not {objective}: remove it or choose that model")
        return f"unknown config key {key!r}: remove it or check its spelling"
    if first["type"] == "value_error" and key in ("config", *SECTIONS):  # a rule across settings
        return f"invalid config: {message.removeprefix('Value error, ')}"
    given = first.get("input")
    shown = "" if isinstance(given, (dict, list)) or given is None else f" (got {given!r})"
    return f"invalid config value for {key!r}: {message}{shown}"


def build_config(values: dict[str, Any]) -> RunConfig:
    """Validate a nested dict into a :class:`RunConfig`, raising :class:`ConfigError`."""
    try:
        return RunConfig.model_validate(values)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error)) from None


MAX_NESTING = 32  # levels of mappings and lists in a config or study file; vaelab's own use 4


def nesting(value: Any) -> int:
    """How many levels of dicts and lists ``value`` nests (0 for a scalar), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
        else:
            continue
        deepest = max(deepest, depth + 1)
    return deepest


def read_yaml(path: str | Path, holds: str = "data/model/train sections") -> dict[str, Any]:
    """Read a YAML config file into a dict (empty file -> empty dict); ``holds`` says what it should hold."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist: check the path given to --config")
    try:
        loaded = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except _DuplicateKey as error:
        raise ConfigError(f"config file {path}: {error}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text: save it as UTF-8 YAML") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config file {path} is not valid YAML{where}: fix its syntax") from None
    except RecursionError:  # PyYAML composes nested collections recursively
        raise ConfigError(f"config file {path} nests too deeply to read: vaelab's files nest a few levels "
                          f"(at most {MAX_NESTING})") from None
    if loaded is None:
        return {}
    depth = nesting(loaded)
    if depth > MAX_NESTING:  # pydantic, hashing and JSON would recurse through it too
        raise ConfigError(f"config file {path} nests {depth} levels deep: vaelab's files nest a few "
                          f"levels (at most {MAX_NESTING})")
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must hold a mapping with {holds}")
    return loaded


class _DuplicateKey(Exception):
    pass


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error (not silently the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise _DuplicateKey(f"key {key!r} appears twice (line {key_node.start_mark.line + 1}): "
                                    "give each key once")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``override`` into a copy of ``base`` (override wins)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config dict as dotted keys: ``{"train": {"lr": 1e-3}}`` -> ``{"train.lr": 1e-3}``."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def to_yaml(config: RunConfig) -> str:
    """The config as YAML text, readable back with ``--config``."""
    return yaml.safe_dump(config.model_dump(), sort_keys=False)
