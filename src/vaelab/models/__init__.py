"""Models: the thesis's encoders and decoders, objectives, and their assembly."""

from vaelab.models.decoders import ConvDecoder, MLPDecoder
from vaelab.models.encoders import ConvEncoder, MLPEncoder
from vaelab.models.distributions import (BernoulliLikelihood, GaussianPosterior, MixturePrior, StandardNormalPrior,
                                         VampPrior, make_prior)
from vaelab.models.objectives import (AutoencoderObjective, BetaTCVAEObjective, BetaVAEObjective, IWAEObjective,
                                      make_objective)
from vaelab.models.registry import LatentModel, build_model

__all__ = [
    "AutoencoderObjective", "BernoulliLikelihood", "BetaTCVAEObjective", "BetaVAEObjective", "ConvDecoder",
    "ConvEncoder", "GaussianPosterior", "IWAEObjective", "LatentModel", "MLPDecoder", "MLPEncoder", "MixturePrior",
    "StandardNormalPrior", "VampPrior", "build_model", "make_objective", "make_prior",
]
