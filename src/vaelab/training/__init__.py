"""Training: the loop, checkpoints and seeding."""

from vaelab.training.trainer import TrainedRun, fit, load_run

__all__ = ["TrainedRun", "fit", "load_run"]
