"""What every model module builds on: the settings every model shares, and the objective's hooks.

A model is one module under :mod:`vaelab.models` (``ae.py``, ``vae.py``, ...). It holds

- ``Settings``: a subclass of :class:`ModelSettings` whose ``objective`` field is the model's
  name (a ``Literal``), with the settings only that model has and its rules;
- ``Objective``: a subclass of :class:`Objective`, its loss and the hooks below;
- ``PRESETS``: the named presets it contributes to ``vaelab train --model``;
- where earlier versions wrote its settings otherwise, ``Settings.upgrade`` converts them (old
  ``model.json`` files keep loading).

:mod:`vaelab.models.registry` maps the names to the modules; nothing else names a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from vaelab.models.encoders import Encoder

# Batch size for inference (evaluation, encoding, decoding). Conv layers on CPU are
# memory-bound in large batches: 128 runs 2-3x faster than 1000 or 4096 (measured here).
INFERENCE_BATCH = 128

# mog: one component per class of the digit data sets (VaDE's choice); vamp: Tomczak & Welling's 500.
DEFAULT_COMPONENTS = {"mog": 10, "vamp": 500}


class ModelSettings(BaseModel):
    """Architecture and prior, shared by every model; each model's module adds its own settings.

    Defaults: hidden 512 and latent 16. The thesis does not state them; 512 is
    the usual width of a one-hidden-layer MNIST VAE (Kingma & Welling used 500),
    and 16 dimensions are enough for sharp MNIST reconstructions while small
    enough for the KL term to prune unused units, which the measures can show.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    # The priors the model accepts; a model with a fixed prior lists one.
    PRIORS: ClassVar[tuple[str, ...]] = ("normal",)
    # Whether the encoder and decoder read the class label (the CVAE).
    conditional: ClassVar[bool] = False
    # Options of `vaelab train` kept for settings of earlier versions: name -> (type, pydantic Field);
    # upgrade() turns them into this version's settings.
    LEGACY_OPTIONS: ClassVar[dict[str, tuple[type, Any]]] = {}

    encoder: Literal["mlp", "conv"] = Field("mlp", description="encoder: mlp or conv (overrides the preset)")
    decoder: Literal["mlp", "conv"] = Field("mlp", description="decoder: mlp or conv (overrides the preset)")
    objective: str = Field("vae", description="the model: its objective (overrides the preset)")
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

    @classmethod
    def upgrade(cls, values: dict[str, Any]) -> dict[str, Any]:
        """A model section of any vaelab version, with what this model knows of earlier forms converted.

        Every model's ``upgrade`` sees every section (whichever model it names): the CVAE, say, was
        once a VAE with ``conditional: true``. The default changes nothing.
        """
        return values

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

    @model_validator(mode="after")
    def _a_prior_of_the_model(self) -> "ModelSettings":
        # A setting that the model does not use is refused rather than ignored: it would change the run's
        # identity without changing the run.
        if self.prior not in self.PRIORS:
            raise ValueError(f"the {self.objective} model takes the prior {' or '.join(self.PRIORS)}, "
                             f"not {self.prior}{self.prior_reason()}")
        if self.prior == "normal" and self.components is not None:
            raise ValueError("components applies to the mog and vamp priors only")
        return self

    def prior_reason(self) -> str:
        """Why the model takes only the priors it takes (said after a refused prior)."""
        return ""

    def mlp_widths(self) -> tuple[int, ...]:
        """The hidden widths of the MLP encoder (the decoder uses them reversed): ``hidden_layers`` or ``(hidden,)``."""
        return tuple(self.hidden_layers) if self.hidden_layers else (self.hidden,)

    def prior_components(self) -> int:
        """K of the mog/vamp prior, its default where not given (0 for the normal prior)."""
        if self.prior == "normal":
            return 0
        return self.components if self.components is not None else DEFAULT_COMPONENTS[self.prior]

    def weight(self) -> tuple[str, str, float] | None:
        """The model's main weight as (setting, symbol, value), e.g. ("beta", "β", 4.0); None if it has none."""
        return None

    def learned_prior(self) -> str | None:
        """The name of the model's prior where it is not the fixed N(0, I) (``mog``, ``vamp``); else None."""
        return self.prior if self.prior != "normal" else None

    def extras(self) -> list[str]:
        """What sets the model apart beyond its objective: a learned prior, labels (the CVAE)."""
        prior = self.learned_prior()
        return ([f"{prior} prior"] if prior else []) + (["conditional"] if self.conditional else [])

    def settings_note(self) -> str:
        """What the report's model table says after the objective: ``(β=4.0), mog prior``; the model's weight,
        its own other settings, its prior and its labels."""
        main = self.weight()
        own = [f"({main[1]}={main[2]})"] if main else []
        shared = set(ModelSettings.model_fields) | ({main[0]} if main else set())
        own += [f"({key}={value})" for key, value in self.model_dump().items() if key not in shared]
        prior = self.learned_prior()
        tail = ([f"{prior} prior"] if prior else []) + (["conditional on the label"] if self.conditional else [])
        return "".join(f" {part}" for part in own) + "".join(f", {part}" for part in tail)

    def describe(self, weight: bool = True) -> str:
        """The model in a few words: ``vae β=4 (vamp prior)`` (without the weight: ``vae (vamp prior)``)."""
        text = self.objective
        main = self.weight() if weight else None
        if main is not None:
            text += f" {main[1]}={main[2]:g}"
        extras = self.extras()
        return text + (f" ({', '.join(extras)})" if extras else "")

    def divergence_advice(self) -> str:
        """What else to lower, beside the learning rate, when the loss diverged (e.g. " or --beta below 4")."""
        return ""

    def check_epochs(self, epochs: int) -> None:
        """Raise ValueError if ``epochs`` cannot hold the model's schedule (e.g. its pre-training stage)."""

    def scaled_stages(self, scale: float) -> dict[str, Any]:
        """Overrides that scale the model's own stages with the epochs (a study shrunk for tests)."""
        return {}

    def stage_epochs(self) -> int:
        """Epochs of the model's own stages before its main one (0 for a single-stage model)."""
        return 0


class ModelModule(Protocol):
    """What a model's module declares (checked when :mod:`vaelab.models.registry` lists it)."""

    # Read-only members: a module's classes are what the registry reads, never assigns.
    @property
    def Settings(self) -> type[ModelSettings]: ...  # noqa: N802
    @property
    def Objective(self) -> type["Objective"]: ...  # noqa: N802
    @property
    def PRESETS(self) -> dict[str, dict[str, Any]]: ...  # noqa: N802


@dataclass(frozen=True)
class Phase:
    """One step of a batch for an objective that alternates: the loss ``term`` steps ``params`` with an Adam
    of their own (own moments; ``lr`` the run's where None)."""

    term: str
    params: list
    lr: float | None = None
    betas: tuple[float, float] = (0.9, 0.999)


class Objective:
    """What every objective has: its name, whether its encoder is stochastic, its loss terms, and hooks.

    An objective is made from its model's settings (``Objective(settings)``). Every call takes the
    batch's ``labels`` too, which only supervised objectives read.
    """

    stochastic = True
    terms: tuple[str, ...] = ("loss",)
    dataset_size: int | None = None  # the training set's size, set by the trainer (β-TCVAE's N)

    def __init__(self, settings: ModelSettings):
        self.settings = settings

    def build_encoder(self, encoder: Encoder, n_classes: int) -> torch.nn.Module:
        """The posterior network built on the configured encoder (that encoder itself, by default)."""
        return encoder

    def build_decoder(self, decoder: torch.nn.Module, n_classes: int) -> torch.nn.Module:
        """The likelihood network built on the configured decoder (that decoder itself, by default)."""
        return decoder

    def decoder_input(self, n_classes: int) -> int:
        """The width of what the decoder reads: the code (and, for the CVAE, the one-hot label)."""
        return self.settings.latent

    def prepare(self, model) -> None:
        """Adjust a freshly built model (e.g. freeze parameters the objective keeps fixed)."""

    def begin_epoch(self, model, epoch: int, train_images: torch.Tensor, seed: int) -> bool:
        """Called before each training epoch (0-based); True when a stage changed the model and Adam restarts.

        Must be deterministic: a resumed run calls it again at the epoch it resumes from.
        """
        return False

    def param_groups(self, model):
        """What Adam trains: every parameter at the configured rate, by default."""
        return model.parameters()

    def phases(self, model) -> list[Phase]:
        """The steps of one batch, for an objective that alternates (the AAE's reconstruction, discriminator and
        generator steps): each its own loss term, parameters and Adam. Empty (the default): one joint step of
        ``loss`` over :meth:`param_groups`."""
        return []

    def clusters(self, model, x: torch.Tensor) -> torch.Tensor | None:
        """The model's own cluster of each image, or None if it has none: argmax p(c|z) at the posterior
        mean under a prior with clusters (VaDE's q(c|x)); models with a cluster head override this."""
        if getattr(model.prior, "has_clusters", False):
            return model.prior.responsibilities(model.encoder(x)[0].float()).argmax(-1)
        return None

    def has_clusters(self, model) -> bool:
        """Whether the model assigns images to clusters of its own (a mixture prior, a categorical y)."""
        return bool(getattr(model.prior, "has_clusters", False))

    def quantised(self, model, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """For a quantised code (the VQ-VAE's): the index of each position's vector (N, P) and the vectors
        (K, D) they index, its ex-post density being a categorical over them per position; None for a
        continuous code (the default)."""
        return None

    def code_measures(self, model, codes: np.ndarray) -> dict[str, float]:
        """Measures of the test codes that only this model has (the VQ-VAE's codebook usage); none by default."""
        return {}

    def __call__(self, model, x: torch.Tensor, target: torch.Tensor, noise: torch.Generator | None = None,
                 labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        raise NotImplementedError


@dataclass(frozen=True)
class ElboParts:
    """The pieces of one batch's ELBO: the posterior's parameters, one draw, -log p(x|z) and KL, each averaged."""

    mean: torch.Tensor
    logvar: torch.Tensor
    z: torch.Tensor
    recon: torch.Tensor
    kl: torch.Tensor


def elbo_parts(model, x: torch.Tensor, target: torch.Tensor, noise: torch.Generator | None,
               labels: torch.Tensor | None = None) -> ElboParts:
    """Encode (with the labels a conditional model reads), draw z from q(z|x), decode: the reconstruction
    term -E log p(x|z) and KL(q(z|x) || p(z)) (closed form where the prior has one), averaged over the batch."""
    mean, logvar = model.encode(x, labels)
    z = model.posterior.sample(mean, logvar, noise)
    recon = -model.likelihood.log_prob(model.decode(z, labels), target).mean()
    kl = model.kl(mean.float(), logvar.float(), z.float()).mean()
    return ElboParts(mean, logvar, z, recon, kl)


class WeightedSettings(ModelSettings):
    """Settings with β, the weight of the KL term or of a part of it (β-VAE, CVAE, β-TCVAE)."""

    beta: float = Field(1.0, ge=0.0,
                        description="weight of the KL term (vae: beta-VAE, 1 is the VAE) or of the total "
                                    "correlation (btcvae)")

    def weight(self) -> tuple[str, str, float] | None:
        return ("beta", "β", self.beta)

    def divergence_advice(self) -> str:
        return f" or --beta below {self.beta:g}" if self.beta > 1 else ""
