"""The models by name: the one place that lists them.

Adding a model is one module under :mod:`vaelab.models` (see :mod:`vaelab.models.base` for what it
holds) and one line in :data:`MODELS`. Everything else (the run config's model section, the presets of
``vaelab train --model``, its options, the objective of a built model) is derived from here.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field
from pydantic.fields import FieldInfo

from vaelab.models import aae, ae, btcvae, cvae, dipvae, factorvae, gmvae, infovae, iwae, rae, svae, vade, vae, vqvae, wae
from vaelab.models.base import ModelModule, ModelSettings, Objective

MODELS: dict[str, ModelModule] = {
    "ae": ae,
    "vae": vae,
    "iwae": iwae,
    "btcvae": btcvae,
    "vade": vade,
    "gmvae": gmvae,
    "cvae": cvae,
    "factorvae": factorvae,
    "dipvae": dipvae,
    "wae": wae,
    "infovae": infovae,
    "rae": rae,
    "aae": aae,
    "vqvae": vqvae,
    "svae": svae,
}

# Each module's named presets, in the order of MODELS (each names the settings that make it what it is,
# so that a run's label can be read back from its config).
PRESETS: dict[str, dict[str, Any]] = {name: dict(settings) for module in MODELS.values()
                                      for name, settings in module.PRESETS.items()}
# The settings that say which model a run is (the others, such as beta, are its tuning).
PRESET_KEYS = ("encoder", "decoder", "objective", "prior")

# vaelab 0.1 wrote every model's settings into one flat section; these are the values it wrote for the
# settings a model did not have (it refused any other), dropped when such a section is read.
_FLAT_DEFAULTS = {"beta": 1.0, "samples": 5, "pretrain_epochs": 0, "balance": 1.0}


def settings_classes() -> tuple[type[ModelSettings], ...]:
    """Every model's settings class, in the order of :data:`MODELS`."""
    return tuple(module.Settings for module in MODELS.values())


def settings_class(name: str) -> type[ModelSettings]:
    """The settings class of the model called ``name`` (KeyError if there is none)."""
    return MODELS[name].Settings


def make_objective(settings: ModelSettings) -> Objective:
    """The objective of a model's settings."""
    return MODELS[settings.objective].Objective(settings)


def upgrade(values: dict[str, Any]) -> dict[str, Any]:
    """A model section as given (a preset merged with options, or read from a file of any vaelab version)
    made into this version's form: the model named (``vae`` where it is not), each module's own
    conversions applied, and the flat section of vaelab 0.1 reduced to the model's settings."""
    values = {"objective": "vae", **values}
    for settings in settings_classes():
        values = settings.upgrade(values)
    own = settings_class(values["objective"]).model_fields if values["objective"] in MODELS else {}
    return {key: value for key, value in values.items()
            if key in own or key not in _FLAT_DEFAULTS or value != _FLAT_DEFAULTS[key]}


def options() -> dict[str, FieldInfo]:
    """Every model setting as an option (name -> pydantic field; the first model to declare it describes it),
    and the options some modules keep for earlier versions (e.g. ``--conditional``)."""
    fields: dict[str, FieldInfo] = {}
    for settings in settings_classes():
        for key, field in settings.model_fields.items():
            fields.setdefault(key, field)
        for key, (annotation, default) in settings.LEGACY_OPTIONS.items():
            fields.setdefault(key, FieldInfo.from_annotated_attribute(annotation, default))
    fields["objective"] = FieldInfo.from_annotated_attribute(str, Field(
        "vae", description=f"the model: {', '.join(MODELS)} (overrides the preset)"))
    return fields
