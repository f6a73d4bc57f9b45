"""The VQ-VAE (van den Oord, Vinyals & Kavukcuoglu 2017, "Neural discrete representation learning").

The encoder's continuous output z_e, ``latent`` wide, is read as ``latent / code_dim`` positions of
``code_dim`` dimensions; each position is replaced by its nearest of K codebook vectors (squared Euclidean
distance), giving the quantised code z_q that the decoder reads and every measure sees. Trained on

    recon + ‖sg[z_e] - z_q‖² + β ‖z_e - sg[z_q]‖²

(the codebook term and the commitment term, β = 0.25 as the paper, the squared norms summed over the code
as the paper writes them), with the straight-through estimator: the decoder's gradient with respect to z_q
is passed to z_e unchanged. With ``codebook_update: ema`` the codebook is not trained by its term but
moved to the running mean of the encoder outputs assigned to each vector (the paper's appendix), with
decay γ (0.99), zero-debiased running averages and Laplace smoothing of the counts (ε = 1e-5), as DeepMind's
Sonnet ``VectorQuantizerEMA``; the codebook term is then reported but not trained. The codebook starts as
Sonnet's: uniform in ±sqrt(3 / D), or N(0, 1) with EMA.

Departures from Sonnet, named: its terms are means over the code's elements, vaelab's sums over the code
(the paper's squared norms, beside a reconstruction summed over pixels); and an EMA vector that no position
has ever taken keeps its place, where Sonnet's update sends it to the origin.

The training prior is uniform over the K vectors at every position (the paper's: its KL is the constant
``positions × log K`` and is left out). The paper generates from a PixelCNN fitted to the training codes'
indices afterwards; vaelab's ex-post density for this model is a categorical per position fitted to the
training indices (:mod:`vaelab.analysis.expost`), which ignores the positions' dependence: honest, simpler.

Measures of its own: ``codebook_usage`` (the share of the K vectors the test codes use) and
``codebook_perplexity`` (exp of the entropy of the test codes' index frequencies: K when all are used
equally, 1 when one is).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, model_validator
from torch import nn

from vaelab.models import base
from vaelab.models.encoders import Encoder

LAPLACE_EPSILON = 1e-5  # the smoothing of the EMA counts
DEFAULT_CODE_DIMS = (4, 2, 1)  # code_dim left out: the first that divides latent


class Settings(base.ModelSettings):
    """VQ-VAE: K codebook vectors of ``code_dim`` dimensions; ``latent / code_dim`` positions; β the commitment."""

    objective: Literal["vqvae"] = Field("vqvae", description="the model: its objective (overrides the preset)")
    codebook_size: int = Field(512, ge=2, le=65536, description="vqvae: K, the codebook's vectors (the paper's 512)")
    code_dim: int | None = Field(
        None, ge=1, le=4096, description="vqvae: dimensions of one codebook vector; the code's latent dimensions are "
                                         "latent / code_dim positions [4, or the largest of 2 and 1 that divides latent]")
    commitment: float = Field(0.25, ge=0.0, description="vqvae: β, the weight of the commitment term (the paper's 0.25)")
    codebook_update: Literal["loss", "ema"] = Field(
        "loss", description="vqvae: how the codebook learns: loss (its term, by Adam) or ema (running means of the "
                            "assigned encoder outputs)")
    ema_decay: float = Field(0.99, gt=0.0, lt=1.0, description="vqvae: γ, the decay of the EMA codebook update")

    @model_validator(mode="before")
    @classmethod
    def _a_code_dim_that_divides_the_latent(cls, values: Any) -> Any:
        # code_dim left out is written into the settings (and the run's identity): 4 where it divides latent
        if isinstance(values, dict) and values.get("code_dim") is None and isinstance(values.get("latent", 16), int):
            latent = values.get("latent", 16)
            values = {**values, "code_dim": next(d for d in DEFAULT_CODE_DIMS if latent % d == 0)}
        return values

    @model_validator(mode="after")
    def _whole_positions(self) -> "Settings":
        if self.code_dim is not None and self.latent % self.code_dim:
            raise ValueError(f"latent ({self.latent}) must be a multiple of code_dim ({self.code_dim}): the code is "
                             "latent / code_dim positions; give a code_dim that divides latent, or leave it out")
        return self

    @property
    def vector_dim(self) -> int:
        """D, the dimensions of one codebook vector (never None once validated)."""
        return self.code_dim if self.code_dim is not None else next(d for d in DEFAULT_CODE_DIMS
                                                                    if self.latent % d == 0)

    @property
    def positions(self) -> int:
        """The code's positions, each quantised to one codebook vector."""
        return self.latent // self.vector_dim

    def prior_reason(self) -> str:
        return ": its prior is uniform over the codebook's vectors at every position"

    def weight(self) -> tuple[str, str, float] | None:
        return ("commitment", "β", self.commitment)

    def extras(self) -> list[str]:
        return [f"K={self.codebook_size}", *(["EMA"] if self.codebook_update == "ema" else []), *super().extras()]


class Codebook(nn.Module):
    """K vectors of D dimensions; the nearest to each position, and (EMA) their running-mean update."""

    vectors: torch.Tensor  # a parameter (trained by the codebook term) or a buffer (moved by the EMA)
    counts: torch.Tensor  # EMA only: running sums of the assignments and of the assigned outputs, before
    sums: torch.Tensor  # debiasing, and the number of updates
    steps: torch.Tensor

    def __init__(self, size: int, dim: int, ema: bool, decay: float):
        super().__init__()
        self.size, self.dim, self.ema, self.decay = size, dim, ema, decay
        if ema:  # moved by running means, not by Adam
            self.register_buffer("vectors", torch.zeros(size, dim))
            self.register_buffer("counts", torch.zeros(size))  # running sums, before debiasing
            self.register_buffer("sums", torch.zeros(size, dim))
            self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        else:
            self.vectors = nn.Parameter(torch.zeros(size, dim))

    def reset_parameters(self) -> None:
        """The authors' initial vectors (DeepMind's Sonnet), from the current RNG (seeded by ``build_model``):
        uniform in ±sqrt(3 / D) (``uniform_unit_scaling``) for the loss-trained codebook, N(0, 1) for the EMA
        one; the EMA's running sums empty."""
        with torch.no_grad():
            if self.ema:
                self.vectors.normal_()
            else:
                limit = math.sqrt(3.0 / self.dim)
                self.vectors.uniform_(-limit, limit)
            if self.ema:
                self.counts.zero_()
                self.sums.zero_()
                self.steps.zero_()

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """The index of the nearest vector to each position: (B, P * D) -> (B, P)."""
        flat = z.float().reshape(-1, self.dim)
        vectors = self.vectors.float()
        # ‖z - e‖² = ‖z‖² - 2 z·e + ‖e‖²; ties go to the lowest index (argmin's first)
        distances = flat.pow(2).sum(1, keepdim=True) - 2.0 * flat @ vectors.T + vectors.pow(2).sum(1)
        return distances.argmin(1).reshape(len(z), -1)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """The code of given indices: (B, P) -> (B, P * D)."""
        return self.vectors[indices].reshape(len(indices), -1)

    @torch.no_grad()
    def ema_update(self, z: torch.Tensor, indices: torch.Tensor) -> None:
        """Move each vector to the (debiased, smoothed) running mean of the positions assigned to it."""
        flat, assigned = z.float().reshape(-1, self.dim), indices.reshape(-1)
        batch_counts = torch.bincount(assigned, minlength=self.size).float()
        batch_sums = torch.zeros_like(self.sums).index_add_(0, assigned, flat)
        self.counts.mul_(self.decay).add_(batch_counts, alpha=1.0 - self.decay)
        self.sums.mul_(self.decay).add_(batch_sums, alpha=1.0 - self.decay)
        self.steps.add_(1)
        debias = 1.0 - self.decay ** float(self.steps)
        counts, sums = self.counts / debias, self.sums / debias
        total = counts.sum()
        smoothed = (counts + LAPLACE_EPSILON) / (total + self.size * LAPLACE_EPSILON) * total
        used = counts > 0  # a vector no position ever took keeps its place rather than collapsing to 0
        self.vectors[used] = sums[used] / smoothed[used].unsqueeze(1)


class QuantisedEncoder(nn.Module):
    """The configured encoder's output z_e, quantised: ``forward`` returns ``(z_q, None)`` (the code every
    measure reads); :meth:`continuous` gives z_e."""

    def __init__(self, base_encoder: Encoder, codebook: Codebook):
        super().__init__()
        self.features = base_encoder.features
        self.trunk = base_encoder.trunk
        self.heads = base_encoder.heads
        self.codebook = codebook

    def continuous(self, x: torch.Tensor) -> torch.Tensor:
        """z_e, the encoder's output before quantisation."""
        return self.heads(self.trunk(x))[0]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        z = self.continuous(x)
        return self.codebook.lookup(self.codebook.nearest(z)).to(z.dtype), None


class UniformCodebookPrior(nn.Module):
    """The VQ-VAE's training prior: each position's vector uniform over the codebook's K."""

    name = "uniform-codebook"
    closed_form_kl = False

    def __init__(self, positions: int, size: int):
        super().__init__()
        self.positions, self.size = positions, size

    def log_prob(self, code: torch.Tensor, model=None) -> torch.Tensor:
        """log p(code) = -positions × log K for a code of codebook vectors (the prior's support)."""
        return torch.full(code.shape[:-1], -self.positions * math.log(self.size), dtype=code.dtype, device=code.device)

    def sample(self, n: int, generator: torch.Generator, model) -> torch.Tensor:
        """``n`` codes, each position's vector uniform over the codebook."""
        indices = torch.randint(self.size, (n, self.positions), generator=generator, device=generator.device)
        return model.encoder.codebook.lookup(indices.to(model.device)).detach().float().to(generator.device)

    def kl_per_dimension(self, mean: torch.Tensor, logvar: torch.Tensor) -> None:
        return None


def perplexity(indices: torch.Tensor, size: int) -> torch.Tensor:
    """exp(entropy) of the frequencies of ``indices`` over ``size`` values: ``size`` when all are used equally."""
    frequencies = torch.bincount(indices.reshape(-1), minlength=size).float() / indices.numel()
    return torch.exp(-(frequencies * torch.log(frequencies.clamp_min(1e-30))).sum())


class Objective(base.Objective):
    """recon + codebook term (unless EMA) + β commitment, straight through the quantisation; ``perplexity``
    is the batch's codebook perplexity."""

    settings: Settings  # this model's own settings (the base class types the settings every model shares)

    stochastic = False
    terms = ("loss", "recon", "codebook", "commitment", "perplexity")

    def build_encoder(self, encoder: Encoder, n_classes: int) -> nn.Module:
        s = self.settings
        return QuantisedEncoder(encoder, Codebook(s.codebook_size, s.vector_dim, s.codebook_update == "ema",
                                                  s.ema_decay))

    def prepare(self, model) -> None:
        model.prior = UniformCodebookPrior(self.settings.positions, self.settings.codebook_size)

    def quantised(self, model, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each position's codebook index (N, P), by the nearest-vector search of training, and the
        codebook's vectors (K, D)."""
        codebook = model.encoder.codebook
        indices = codebook.nearest(torch.as_tensor(codes, dtype=torch.float32, device=model.device))
        return indices.cpu().numpy(), codebook.vectors.detach().float().cpu().numpy()

    def code_measures(self, model, codes: np.ndarray) -> dict[str, float]:
        """``codebook_usage`` and ``codebook_perplexity`` of the (quantised) test codes."""
        indices, vectors = self.quantised(model, codes)
        return {"codebook_usage": len(np.unique(indices)) / len(vectors),
                "codebook_perplexity": float(perplexity(torch.as_tensor(indices), len(vectors)))}

    def __call__(self, model, x: torch.Tensor, target: torch.Tensor, noise: torch.Generator | None = None,
                 labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        codebook = model.encoder.codebook
        z_e = model.encoder.continuous(x)
        indices = codebook.nearest(z_e)
        if codebook.ema and model.training and torch.is_grad_enabled():
            codebook.ema_update(z_e.detach(), indices)
        z_q = codebook.lookup(indices).to(z_e.dtype)
        straight_through = z_e + (z_q - z_e).detach()  # the forward pass sees z_q, the backward pass z_e
        recon = -model.likelihood.log_prob(model.decode(straight_through, labels), target).mean()
        codebook_term = (z_e.detach().float() - z_q.float()).pow(2).sum(1).mean()
        commitment = (z_e.float() - z_q.detach().float()).pow(2).sum(1).mean()
        loss = recon + self.settings.commitment * commitment
        if not codebook.ema:
            loss = loss + codebook_term
        return {"loss": loss, "recon": recon, "codebook": codebook_term, "commitment": commitment,
                "perplexity": perplexity(indices, codebook.size)}


PRESETS = {
    "vqvae": {"encoder": "mlp", "decoder": "mlp", "objective": "vqvae", "prior": "normal"},
    "vqvae-ema": {"encoder": "mlp", "decoder": "mlp", "objective": "vqvae", "prior": "normal", "codebook_update": "ema"},
}
