"""Models: the thesis's encoders and decoders, objectives, and their assembly."""

from vaelab.models.decoders import ConvDecoder, MLPDecoder
from vaelab.models.encoders import ConvEncoder, MLPEncoder
from vaelab.models.objectives import AutoencoderObjective, BetaVAEObjective, make_objective
from vaelab.models.registry import LatentModel, build_model

__all__ = [
    "AutoencoderObjective", "BetaVAEObjective", "ConvDecoder", "ConvEncoder", "LatentModel",
    "MLPDecoder", "MLPEncoder", "build_model", "make_objective",
]
