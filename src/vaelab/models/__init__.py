"""Models: one module per model (its settings, presets, loss and stages), the thesis's encoders and
decoders, the probabilistic parts, and their assembly.

:mod:`vaelab.models.registry` lists the models; :func:`build_model` assembles one from its settings.
"""

from vaelab.models.latent import LatentModel, build_model
from vaelab.models.registry import MODELS, PRESETS, make_objective

__all__ = ["LatentModel", "MODELS", "PRESETS", "build_model", "make_objective"]
