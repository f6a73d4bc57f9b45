"""The hyperspherical VAE, S-VAE (Davidson, Falorsi, De Cao, Kipf & Tomczak 2018, "Hyperspherical
variational auto-encoders").

The code lives on the unit sphere S^{m-1} of the ``latent`` = m dimensions. The posterior is the von
Mises-Fisher distribution vMF(μ, κ), density C_m(κ) exp(κ μᵀz), with mean direction μ (the encoder's
output, normalised: the code every measure reads) and one concentration κ = softplus(h) + 1 per image (the
``+ 1`` against collapse, as the authors' code); the prior is uniform on the sphere. The ELBO's KL has a
closed form,

    KL(vMF(μ, κ) || U(S^{m-1})) = κ A_m(κ) + log C_m(κ) + log |S^{m-1}|,
    log C_m(κ) = (m/2 - 1) log κ - (m/2) log 2π - log I_{m/2-1}(κ),   A_m(κ) = I_{m/2}(κ) / I_{m/2-1}(κ),
    |S^{m-1}| = 2 π^{m/2} / Γ(m/2),

with the modified Bessel functions I_v computed through scipy's exponentially scaled ``ive`` in float64,
and their gradient d/dκ log I_v(κ) = I_{v+1}(κ)/I_v(κ) + v/κ (:func:`log_bessel_i`); where ``ive``
underflows (large v, small κ) the first term of the series, v log(κ/2) - log Γ(v+1), takes its place.

Draws use Wood's (1994) rejection sampler for w = μᵀz, then a direction uniform on the orthogonal
sphere, then the Householder reflection that takes e₁ to μ. The Beta((m-1)/2, (m-1)/2) proposal is drawn
as ‖g₁‖² / (‖g₁‖² + ‖g₂‖²) of two standard normal vectors of m - 1 dimensions, so that every draw comes from
the objective's seeded generator. The gradient is the reparameterisation part of Davidson et al.'s
estimator: w is differentiated through its formula in κ with the accepted proposal held fixed, as in the
authors' PyTorch code (nicola-decao/s-vae-pytorch); the correction term for the acceptance step is not
computed. Its absence biases the gradient in κ (measured, d/dκ E[w] against the exact dA_m/dκ, 400,000
draws): -20% at m = 3 and κ of 1 to 5, -2.5% at κ = 40; -0.2% to -3% at m = 16. The log-concentration log κ is returned in the place of the
Gaussian's log-variance, repeated along the code's dimensions.
"""

from __future__ import annotations

import math
from typing import Literal, cast

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn

from vaelab.models import base
from vaelab.models.encoders import Encoder


class Settings(base.ModelSettings):
    """The S-VAE: the code on the unit sphere of ``latent`` dimensions (at least 2)."""

    objective: Literal["svae"] = Field("svae", description="the model: its objective (overrides the preset)")

    @field_validator("latent")
    @classmethod
    def _a_sphere(cls, value: int) -> int:
        if value < 2:
            raise ValueError("the svae's code lives on the sphere of latent dimensions, which needs 2 or more")
        return value

    def prior_reason(self) -> str:
        return ": its prior is the uniform distribution on the sphere"


# --- the modified Bessel function of the first kind, in log, with its gradient -------------------------------


def _log_bessel_i_numpy(order: float, kappa: np.ndarray) -> np.ndarray:
    """log I_order(κ) in float64: log ive + κ, or the series' first term where ive underflows."""
    from scipy.special import gammaln, ive

    scaled = ive(order, kappa)
    with np.errstate(divide="ignore"):
        value = np.log(scaled) + kappa
    small = ~np.isfinite(value) | (scaled <= 0)
    value[small] = order * np.log(kappa[small] / 2.0) - gammaln(order + 1.0)
    return value


def _bessel_ratio_numpy(order: float, kappa: np.ndarray) -> np.ndarray:
    """I_{order+1}(κ) / I_order(κ) in float64 (κ / (2 (order + 1)) where both underflow)."""
    return np.exp(_log_bessel_i_numpy(order + 1.0, kappa) - _log_bessel_i_numpy(order, kappa))


class _LogBesselI(torch.autograd.Function):
    @staticmethod
    def forward(ctx, kappa: torch.Tensor, order: float) -> torch.Tensor:
        ctx.order = order
        ctx.save_for_backward(kappa)
        values = _log_bessel_i_numpy(order, kappa.detach().double().cpu().numpy())
        return torch.as_tensor(values, dtype=kappa.dtype, device=kappa.device)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (kappa,) = ctx.saved_tensors
        k = kappa.detach().double().cpu().numpy()
        derivative = _bessel_ratio_numpy(ctx.order, k) + ctx.order / k  # d/dκ log I_v(κ) = I_{v+1}/I_v + v/κ
        return grad * torch.as_tensor(derivative, dtype=kappa.dtype, device=kappa.device), None


def log_bessel_i(order: float, kappa: torch.Tensor) -> torch.Tensor:
    """log I_order(κ), differentiable in κ (> 0)."""
    return _LogBesselI.apply(kappa, float(order))


def log_sphere_area(m: int) -> float:
    """log |S^{m-1}| = log(2 π^{m/2} / Γ(m/2)), the surface area of the unit sphere in m dimensions."""
    return math.log(2.0) + 0.5 * m * math.log(math.pi) - math.lgamma(0.5 * m)


def log_normaliser(kappa: torch.Tensor, m: int) -> torch.Tensor:
    """log C_m(κ) = (m/2 - 1) log κ - (m/2) log 2π - log I_{m/2-1}(κ)."""
    return (0.5 * m - 1.0) * torch.log(kappa) - 0.5 * m * math.log(2 * math.pi) - log_bessel_i(0.5 * m - 1.0, kappa)


def mean_resultant_length(kappa: torch.Tensor, m: int) -> torch.Tensor:
    """A_m(κ) = I_{m/2}(κ) / I_{m/2-1}(κ) = E[μᵀz] under vMF(μ, κ)."""
    return torch.exp(log_bessel_i(0.5 * m, kappa) - log_bessel_i(0.5 * m - 1.0, kappa))


def kl_to_uniform(kappa: torch.Tensor, m: int) -> torch.Tensor:
    """KL(vMF(μ, κ) || U(S^{m-1})) = κ A_m(κ) + log C_m(κ) + log |S^{m-1}| (independent of μ)."""
    return kappa * mean_resultant_length(kappa, m) + log_normaliser(kappa, m) + log_sphere_area(m)


# --- the posterior and the prior -------------------------------------------------------------------------------


def _concentration(log_kappa: torch.Tensor) -> torch.Tensor:
    """κ from the log-concentration repeated along the code: (..., m) -> (..., 1)."""
    return log_kappa[..., :1].exp()


def _beta_draws(shape: tuple[int, ...], m: int, noise: torch.Generator | None, device) -> torch.Tensor:
    """Beta((m-1)/2, (m-1)/2) draws as ‖g₁‖² / (‖g₁‖² + ‖g₂‖²), g₁, g₂ standard normal in m - 1 dimensions."""
    g = torch.randn((*shape, 2, m - 1), generator=noise, dtype=torch.float64, device=device).pow(2).sum(-1)
    return g[..., 0] / g.sum(-1)


def wood_w(kappa: torch.Tensor, m: int, noise: torch.Generator | None) -> torch.Tensor:
    """w = μᵀz for vMF draws, by Wood's (1994) rejection sampler: differentiable in κ through its formula with
    the accepted Beta proposal held fixed. κ of shape (..., 1) -> w of the same shape, float64."""
    kappa = kappa.double()
    root = torch.sqrt(4.0 * kappa.pow(2) + (m - 1) ** 2)
    b = (m - 1) / (2.0 * kappa + root)  # = (-2κ + root) / (m - 1), without the cancellation at large κ
    a = ((m - 1) + 2.0 * kappa + root) / 4.0
    d = 4.0 * a * b / (1.0 + b) - (m - 1) * math.log(m - 1)
    flat_b, flat_a, flat_d = (t.detach().reshape(-1) for t in (b, a, d))
    accepted = torch.zeros_like(flat_b)
    pending = torch.arange(len(flat_b), device=kappa.device)
    while len(pending):
        eps = _beta_draws((len(pending),), m, noise, kappa.device)
        u = torch.rand(len(pending), generator=noise, dtype=torch.float64, device=kappa.device)
        bb, aa, dd = flat_b[pending], flat_a[pending], flat_d[pending]
        t = 2.0 * aa * bb / (1.0 - (1.0 - bb) * eps)
        ok = (m - 1) * torch.log(t) - t + dd >= torch.log(u)
        accepted[pending[ok]] = eps[ok]
        pending = pending[~ok]
    eps = accepted.reshape(b.shape)
    return (1.0 - (1.0 + b) * eps) / (1.0 - (1.0 - b) * eps)


def householder_to(direction: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reflect ``x`` by the Householder map that takes e₁ to the unit vector ``direction`` (identity where
    they are equal)."""
    e1 = torch.zeros_like(direction)
    e1[..., 0] = 1.0
    u = e1 - direction
    u = u / u.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return x - 2.0 * (x * u).sum(-1, keepdim=True) * u


class VonMisesFisherPosterior:
    """q(z|x) = vMF(μ, κ): the encoder gives ``(μ, log κ repeated along the code)``; this samples and scores."""

    name = "von-mises-fisher"

    @staticmethod
    def sample(mean: torch.Tensor, log_kappa: torch.Tensor, noise: torch.Generator | None) -> torch.Tensor:
        """One reparameterised draw per row (Wood's w, a uniform orthogonal direction, Householder to μ)."""
        m = mean.shape[-1]
        w = wood_w(_concentration(log_kappa), m, noise)
        v = torch.randn((*mean.shape[:-1], m - 1), generator=noise, dtype=torch.float64, device=mean.device)
        v = v / v.norm(dim=-1, keepdim=True)
        x = torch.cat([w, torch.sqrt((1.0 - w.pow(2)).clamp_min(0.0)) * v], -1)
        return householder_to(mean.double(), x).to(mean.dtype)

    @staticmethod
    def log_prob(z: torch.Tensor, mean: torch.Tensor, log_kappa: torch.Tensor) -> torch.Tensor:
        """log vMF(z; μ, κ) = log C_m(κ) + κ μᵀz."""
        kappa = _concentration(log_kappa)
        return (log_normaliser(kappa, mean.shape[-1]) + kappa * (mean * z).sum(-1, keepdim=True)).squeeze(-1)


class SphericalUniformPrior(nn.Module):
    """p(z) = U(S^{m-1}): the S-VAE's prior; its KL to a vMF posterior has a closed form (not per dimension)."""

    name = "spherical-uniform"
    closed_form_kl = False  # the KL does not split into per-dimension terms

    def __init__(self, latent: int):
        super().__init__()
        self.latent = latent

    def log_prob(self, z: torch.Tensor, model=None) -> torch.Tensor:
        """-log |S^{m-1}| on the sphere (the density of the uniform distribution there)."""
        return torch.full(z.shape[:-1], -log_sphere_area(self.latent), dtype=z.dtype, device=z.device)

    def sample(self, n: int, generator: torch.Generator, model=None) -> torch.Tensor:
        """``n`` points uniform on the sphere: normalised standard normal draws."""
        g = torch.randn((n, self.latent), generator=generator, device=generator.device)
        return g / g.norm(dim=-1, keepdim=True)

    def kl_per_dimension(self, mean: torch.Tensor, log_kappa: torch.Tensor) -> torch.Tensor:
        """KL(vMF || U) in closed form, as one column (..., 1): it does not split by dimension."""
        return kl_to_uniform(_concentration(log_kappa.float()), self.latent)


class SphericalEncoder(nn.Module):
    """μ = the configured encoder's mean head, normalised; κ = softplus(a one-unit head) + 1."""

    def __init__(self, base_encoder: Encoder):
        super().__init__()
        self.features = base_encoder.features
        self.trunk = base_encoder.trunk
        self.heads = base_encoder.heads
        self.heads.logvar = nn.Linear(base_encoder.features, 1)  # κ's head, in the log-variance head's place

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x)
        direction = self.heads.mean(h)
        direction = direction / direction.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        kappa = F.softplus(cast(nn.Linear, self.heads.logvar)(h).float()) + 1.0
        return direction, torch.log(kappa).expand(-1, direction.shape[-1]).to(direction.dtype)


class Objective(base.Objective):
    """The ELBO with the vMF posterior and the uniform prior on the sphere: recon + KL(vMF || U)."""

    settings: Settings  # this model's own settings (the base class types the settings every model shares)

    stochastic = True
    terms = ("loss", "recon", "kl")

    def build_encoder(self, encoder: Encoder, n_classes: int) -> nn.Module:
        return SphericalEncoder(encoder)

    def prepare(self, model) -> None:
        model.prior = SphericalUniformPrior(self.settings.latent)
        model.posterior = VonMisesFisherPosterior()

    def __call__(self, model, x: torch.Tensor, target: torch.Tensor, noise: torch.Generator | None = None,
                 labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        elbo = base.elbo_parts(model, x, target, noise, labels)  # its logvar is log κ, its KL the closed form
        return {"loss": elbo.recon + elbo.kl, "recon": elbo.recon, "kl": elbo.kl}


# Davidson et al. 2018; the code on S^{latent-1}
PRESETS = {"svae": {"encoder": "mlp", "decoder": "mlp", "objective": "svae", "prior": "normal"}}
