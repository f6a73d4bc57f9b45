"""Configuration: pydantic models for data, model and training, with YAML in and out.

Every option of ``vaelab train`` lives here, with its default and the reason for
it. Unknown keys are rejected, and a bad value becomes a one-line
:class:`~vaelab.errors.ConfigError` that names the key.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from vaelab.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


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


# mog: one component per class of the digit data sets (VaDE's choice); vamp: Tomczak & Welling's 500.
DEFAULT_COMPONENTS = {"mog": 10, "vamp": 500}


class ModelConfig(_Strict):
    """Architecture and objective.

    Defaults: hidden 512 and latent 16. The thesis does not state them; 512 is
    the usual width of a one-hidden-layer MNIST VAE (Kingma & Welling used 500),
    and 16 dimensions are enough for sharp MNIST reconstructions while small
    enough for the KL term to prune unused units, which the measures can show.
    """

    encoder: Literal["mlp", "conv"] = Field("mlp", description="encoder: mlp or conv (overrides the preset)")
    decoder: Literal["mlp", "conv"] = Field("mlp", description="decoder: mlp or conv (overrides the preset)")
    objective: Literal["ae", "vae", "iwae", "btcvae", "vade", "gmvae", "factorvae"] = Field(
        "vae", description="objective: ae, vae, iwae, btcvae, vade, gmvae or factorvae (overrides the preset)")
    beta: float = Field(1.0, ge=0.0, allow_inf_nan=False,
                        description="weight of the KL term (vae: beta-VAE, 1 is the VAE) or of the total "
                                    "correlation (btcvae; factorvae: Kim & Mnih's gamma)")
    hidden: int = Field(512, gt=0, le=16384, description="hidden width of the MLP parts")
    hidden_layers: tuple[int, ...] | None = Field(
        None, min_length=1, max_length=16, description="widths of several hidden layers of the MLP parts, "
        "encoder order (e.g. 500,500,2000 as in VaDE; the decoder mirrors them); overrides hidden")
    latent: int = Field(16, gt=0, le=4096, description="latent dimensions")
    negative_slope: float = Field(0.3, ge=0.0, lt=1.0, description="LeakyReLU slope (Keras default)")
    likelihood: Literal["bernoulli", "gaussian", "gaussian-learned", "continuous-bernoulli"] = Field(
        "bernoulli", description="p(x|z): bernoulli (the thesis's BCE), gaussian (scale 0.1), gaussian-learned (a "
        "learned scale per channel) or continuous-bernoulli (Loaiza-Ganem & Cunningham 2019)")
    prior: Literal["normal", "mog", "vamp"] = Field(
        "normal", description="prior p(z): normal N(0, I), mog (K learned Gaussians) or vamp (VampPrior, "
                              "K learned pseudo-inputs)")
    components: int | None = Field(
        None, gt=0, le=100000, description=f"K of the mog/vamp prior (default mog {DEFAULT_COMPONENTS['mog']}, "
                                           f"vamp {DEFAULT_COMPONENTS['vamp']})")
    samples: int = Field(5, gt=0, le=5000, description="importance samples per image of the iwae objective")
    conditional: bool = Field(False, description="condition the encoder and decoder on the class label (CVAE, "
                                                 "with the vae objective)")
    pretrain_epochs: int = Field(0, ge=0, le=100000,
                                 description="vade: first epochs trained as an AE, then the GMM initialisation")
    balance: float = Field(1.0, ge=0.0, allow_inf_nan=False,
                           description="gmvae: weight of the term against collapsing into one cluster")

    @model_validator(mode="after")
    def _settings_of_their_model(self) -> "ModelConfig":
        # A setting that the model does not use is refused rather than ignored: it would change the run's
        # identity without changing the run.
        if self.objective in ("ae", "iwae") and self.beta != 1.0:
            raise ValueError(f"beta applies to the vae, btcvae and factorvae objectives, not {self.objective}")
        if self.objective == "ae" and self.prior != "normal":
            raise ValueError("prior applies to the stochastic objectives (vae, iwae, btcvae), not the ae")
        if self.objective in ("btcvae", "factorvae") and self.prior != "normal":
            raise ValueError(f"the {self.objective} objective's total correlation is measured against the "
                             "factorised prior: prior normal")
        if self.objective in ("vade", "gmvae") and self.prior != "mog":
            raise ValueError(f"the {self.objective} objective needs the mixture prior: prior mog")
        if self.objective != "vade" and self.pretrain_epochs != 0:
            raise ValueError("pretrain_epochs applies to the vade objective only")
        if self.conditional and self.objective != "vae":
            raise ValueError("conditional applies to the vae objective (the CVAE) only")
        if self.objective != "gmvae" and self.balance != 1.0:
            raise ValueError("balance applies to the gmvae objective only")
        if self.prior == "normal" and self.components is not None:
            raise ValueError("components applies to the mog and vamp priors only")
        if self.objective != "iwae" and self.samples != 5:
            raise ValueError("samples applies to the iwae objective only")
        return self

    @field_validator("hidden_layers", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):  # the command line gives "500,500,2000"
            try:
                return tuple(int(part) for part in value.split(",") if part.strip())
            except ValueError:
                raise ValueError("give the widths as integers separated by commas, e.g. 500,500,2000") from None
        return value

    @field_validator("hidden_layers")
    @classmethod
    def _positive_widths(cls, value: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if value is not None and not all(0 < width <= 16384 for width in value):
            raise ValueError("every width must be between 1 and 16384")
        return value

    def mlp_widths(self) -> tuple[int, ...]:
        """The hidden widths of the MLP encoder (the decoder uses them reversed): ``hidden_layers`` or ``(hidden,)``."""
        return tuple(self.hidden_layers) if self.hidden_layers else (self.hidden,)

    def prior_components(self) -> int:
        """K of the mog/vamp prior, its default where not given (0 for the normal prior)."""
        if self.prior == "normal":
            return 0
        return self.components if self.components is not None else DEFAULT_COMPONENTS[self.prior]


class TrainConfig(_Strict):
    """Optimiser and schedule.

    Adam with learning rate 1e-3 and batch 128 are the defaults of pytorch/examples
    vae/main.py and of most Keras VAE tutorials the thesis follows.
    """

    epochs: int = Field(10, gt=0, le=100000, description="training epochs")
    batch_size: int = Field(128, gt=0, le=65536, description="batch size")
    lr: float = Field(1e-3, gt=0.0, lt=1.0, allow_inf_nan=False, description="Adam learning rate")
    seed: int = Field(0, ge=0, lt=2**63, description="the one seed behind all randomness")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="auto (bf16 autocast where the hardware runs it natively, else fp32), fp32 or bf16")


class RunConfig(_Strict):
    """Everything one training run needs."""

    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()

    @model_validator(mode="after")
    def _a_stage_after_pretraining(self) -> "RunConfig":
        if self.model.pretrain_epochs and self.train.epochs <= self.model.pretrain_epochs:
            raise ValueError(f"train.epochs ({self.train.epochs}) must exceed model.pretrain_epochs "
                             f"({self.model.pretrain_epochs}): the vade stage comes after the pre-training")
        return self

    def identity(self) -> str:
        """A stable hash of the resolved config (data, model, training, seed): equal identities are the same run."""
        return config_hash(self.model_dump(mode="json"))


def config_hash(values: dict[str, Any]) -> str:
    """16 hex digits of the SHA-256 of a config dict's canonical JSON (sorted keys, no spaces)."""
    canonical = json.dumps(values, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}


def run_options() -> dict[str, tuple[str, str, Any]]:
    """Every leaf setting of :class:`RunConfig` as a flat option: name -> (section, key, pydantic field).

    The one list behind ``vaelab train``'s options and the API's keyword options;
    ``data.name`` is called ``dataset``.
    """
    options = {}
    for section, model in SECTIONS.items():
        for key, field in model.model_fields.items():
            options["dataset" if (section, key) == ("data", "name") else key] = (section, key, field)
    return options


# The study's three models, the "better encoder, same decoder" variant of its future work, and the
# variants that its conclusion asks for (see the README's "The models"). Each preset names the settings
# that make it what it is, so that a run's label can be read back from its config.
_MLP = {"encoder": "mlp", "decoder": "mlp"}
PRESETS: dict[str, dict[str, Any]] = {
    "ae": {**_MLP, "objective": "ae", "prior": "normal"},
    "vae": {**_MLP, "objective": "vae", "prior": "normal"},
    "conv-vae": {"encoder": "conv", "decoder": "conv", "objective": "vae", "prior": "normal"},
    "convenc-vae": {"encoder": "conv", "decoder": "mlp", "objective": "vae", "prior": "normal"},
    "iwae": {**_MLP, "objective": "iwae", "prior": "normal"},  # Burda et al. 2016, k = 5
    "vamp": {**_MLP, "objective": "vae", "prior": "vamp"},  # Tomczak & Welling 2018, K = 500
    "mog-vae": {**_MLP, "objective": "vae", "prior": "mog"},  # a learned 10-Gaussian prior, trained jointly
    "btcvae": {**_MLP, "objective": "btcvae", "prior": "normal", "beta": 6.0},  # Chen et al. 2018
    "vade": {**_MLP, "objective": "vade", "prior": "mog", "pretrain_epochs": 5},  # Jiang et al. 2017
    "gmvae": {**_MLP, "objective": "gmvae", "prior": "mog"},  # Dilokthanakul et al. 2016, Shu's formulation
    "cvae": {**_MLP, "objective": "vae", "prior": "normal", "conditional": True},  # Sohn et al. 2015
    # Kim & Mnih 2018; gamma (here beta) = 30, from the grid of Locatello et al. 2019 (10 to 100)
    "factorvae": {**_MLP, "objective": "factorvae", "prior": "normal", "beta": 30.0},
}
for _settings in PRESETS.values():
    _settings.setdefault("conditional", False)
# The settings that say which model a run is (the others, such as beta, are its tuning).
PRESET_KEYS = ("encoder", "decoder", "objective", "prior", "conditional")


class EvalSettings(_Strict):
    """How much work the costly measures may do (the evaluation settings of a run or a study).

    Saved beside the measures in ``measures.json``: measures made with other
    settings are redone, never mixed.
    """

    iwae_k: int = Field(1000, gt=0, le=100000, description="importance samples per image for the IWAE bound")
    iwae_examples: int | None = Field(None, gt=0, description="test images for IWAE (None: all)")
    generation_samples: int = Field(1000, gt=1, le=1000000, description="prior samples for the Fréchet distance")
    sigmas: tuple[float, ...] = Field((0.0, 0.5, 1.0, 2.0, 4.0), min_length=1,
                                      description="noise scales of the perturbation experiment")
    perturbation_examples: int | None = Field(None, gt=0, description="test codes perturbed (None: all)")
    tsne_points: int = Field(2000, gt=10, description="codes on the t-SNE map (a seeded subsample)")
    tsne_iterations: int = Field(500, gt=0, le=100000, description="openTSNE steps after early exaggeration")
    classifier_epochs: int = Field(4, gt=0, le=1000, description="epochs of the feature classifier")


def preset(name: str) -> dict[str, Any]:
    """The model settings of a named preset (one of :data:`PRESETS`)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown model preset {name!r}: choose one of {', '.join(PRESETS)}")
    return dict(PRESETS[name])


def format_validation_error(error: ValidationError) -> str:
    """One line naming the first offending key and why it is wrong."""
    first = error.errors()[0]
    key = ".".join(str(part) for part in first["loc"]) or "config"
    message = first["msg"]
    if first["type"] == "extra_forbidden":
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
    if loaded is None:
        return {}
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
