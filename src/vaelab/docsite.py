"""The documentation site's generated pages: written from the code itself, so that they cannot drift from it.

``mkdocs build`` (``docs/hooks.py``) adds these pages to the site at build time:

- the command-line reference, every command's ``--help`` as the command prints it;
- the measures' reference, from the measure registry (:data:`vaelab.analysis.registry.REGISTRY`);
- the models' reference, from each model module's settings and presets (:data:`vaelab.models.registry.MODELS`);
- the data sets' reference, from the data-set registry;
- the built-in studies, from their YAML files.

Each function returns a page's Markdown; :func:`pages` maps each page's path in the site to it.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import typer
from pydantic.fields import FieldInfo
from typer.testing import CliRunner

from vaelab.analysis.registry import REGISTRY
from vaelab.bundle import markdown_cell
from vaelab.cli import app
from vaelab.data.registry import EMBEDDED, MADE_HERE, list_datasets
from vaelab.models.base import ModelSettings
from vaelab.models.registry import MODELS
from vaelab.studies.spec import builtin_studies, load_study

HELP_WIDTH = 100  # the terminal width the help is rendered at: the options' help wraps less than at 80
DIRECTION = {1: "higher", -1: "lower", 0: "—"}


def pages() -> dict[str, str]:
    """Every generated page: its path in the site (under ``docs/``) -> its Markdown."""
    return {
        "reference/cli.md": cli_page(),
        "reference/measures.md": measures_page(),
        "reference/models.md": models_page(),
        "reference/datasets.md": datasets_page(),
        "reference/studies.md": studies_page(),
    }


SPHINX_ROLE = re.compile(r":(?:mod|class|func|meth|attr|data|exc|obj):<code>(~?)([^<]+)</code>")


def plain_roles(html: str) -> str:
    """Rendered docstrings' Sphinx roles (``:class:`~a.B```, which mkdocstrings shows as typed) as plain code:
    ``a.B``, or ``B`` where the role's ``~`` asks for the last name only."""
    return SPHINX_ROLE.sub(lambda m: f"<code>{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}</code>", html)


def command_help(*words: str) -> str:
    """What ``vaelab WORDS --help`` prints, at :data:`HELP_WIDTH` columns."""
    result = CliRunner().invoke(app, [*words, "--help"], prog_name="vaelab", terminal_width=HELP_WIDTH,
                                env={"COLUMNS": str(HELP_WIDTH), "NO_COLOR": "1"})
    if result.exit_code != 0:
        raise RuntimeError(f"vaelab {' '.join(words)} --help failed: {result.output}")
    return result.output.rstrip() + "\n"


def command_paths() -> list[tuple[str, ...]]:
    """Every command's words, in the order ``vaelab --help`` lists them, groups before their commands."""
    def walk(command: Any, words: tuple[str, ...]) -> list[tuple[str, ...]]:
        found = [words] if words else []
        if hasattr(command, "list_commands"):  # a group (typer vendors click: no isinstance against it)
            for name in command.list_commands(typer.Context(command)):
                sub = command.get_command(typer.Context(command), name)
                if sub is not None and not sub.hidden:
                    found += walk(sub, (*words, name))
        return found
    return walk(typer.main.get_command(app), ())


def cli_page() -> str:
    """The command-line reference: ``vaelab --help`` and each command's."""
    paths = command_paths()
    lines = ["# Command-line reference", "",
             "Generated from the commands themselves when the site is built: each block is what "
             "`--help` prints. Every command ends a mistake with one line on stderr and exit status 2.", "",
             "| command | what it does |", "|---|---|"]
    for words in paths:
        lines.append(f"| [`vaelab {' '.join(words)}`](#{_anchor(words)}) | {_summary(words)} |")
    lines += ["", "## vaelab", "", "```text", command_help().rstrip(), "```", ""]
    for words in paths:
        lines += [f"## vaelab {' '.join(words)}", "", "```text", command_help(*words).rstrip(), "```", ""]
    return "\n".join(lines)


def _anchor(words: tuple[str, ...]) -> str:
    # MkDocs' toc slug of the heading "vaelab WORDS": lower case, spaces to hyphens
    return "-".join(("vaelab", *words)).lower()


def _summary(words: tuple[str, ...]) -> str:
    command: Any = typer.main.get_command(app)
    for word in words:
        command = command.get_command(typer.Context(command), word)
    return markdown_cell(_first_paragraph(command.help or command.short_help))


def measures_page() -> str:
    """The measures' reference, group by group, from the measure registry."""
    lines = ["# Measures", "",
             "Generated from the measure registry (`vaelab.analysis.registry`) when the site is built. A *group* "
             "is what `vaelab evaluate --measures` and a study's `measures:` name; each writes the measures "
             "listed under it into `measures.json`. *Better* says which way is better; a name ending in `*` is "
             "a family (one per class, dimension or attribute). `vaelab measures` prints the same list.", "",
             "| group | measured by default | needs |", "|---|---|---|"]
    for group in REGISTRY:
        needs = ", ".join(sorted(group.needs)) or "—"
        lines.append(f"| [{group.name}](#{group.name}) | {'yes' if group.default else 'no'} | {needs} |")
    for group in REGISTRY:
        meaning = markdown_cell(group.meaning)
        lines += ["", f"## {group.name}", "", meaning[0].upper() + meaning[1:] + ".", "",
                  "| measure | meaning | better | headline column |", "|---|---|---|---|"]
        for measure in group.measures:
            what = measure.meaning.replace("{}", "*k*") if measure.family else measure.meaning
            lines.append(f"| `{measure.name}` | {markdown_cell(what)} | {DIRECTION[measure.direction]} | "
                         f"{markdown_cell(measure.headline) or '—'} |")
    return "\n".join(lines) + "\n"


def models_page() -> str:
    """The models' reference: the settings every model shares, then each model's own settings and presets."""
    shared = ModelSettings.model_fields
    lines = ["# Models", "",
             "Generated from the model modules (`vaelab.models`) when the site is built. A model is one module: "
             "its settings (a section `model:` of a run's config, or `vaelab train` options), its objective and "
             "its presets (`vaelab train --model PRESET`). See [how to add a model](../howto/add-a-model.md).", "",
             "## Settings every model has", "", *_settings_table(shared.items()), ""]
    for name, module in MODELS.items():
        own = [(key, field) for key, field in module.Settings.model_fields.items() if key not in shared]
        lines += [f"## {name}", "", _first_paragraph(module.__doc__), "",
                  f"Module `{module.Settings.__module__}`.", "",
                  "Presets: " + ", ".join(f"`{preset}` ({_preset_text(values)})"
                                          for preset, values in module.PRESETS.items()) + ".", ""]
        lines += _settings_table(own) if own else ["No settings of its own."]
        lines.append("")
    return "\n".join(lines)


def _settings_table(fields) -> list[str]:
    rows = ["| setting | type | default | meaning |", "|---|---|---|---|"]
    for key, field in fields:
        rows.append(f"| `{key}` | {markdown_cell(_type_name(field))} | {markdown_cell(_default(field))} | "
                    f"{markdown_cell(field.description or '')} |")
    return rows


def _type_name(field: FieldInfo) -> str:
    text = str(field.annotation).replace("typing.", "").replace("NoneType", "None")
    text = re.sub(r"<class '([\w.]+)'>", r"\1", text)
    return f"`{text}`"


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        return f"`{field.default_factory()!r}`"  # type: ignore[call-arg]
    return f"`{field.default!r}`"


def _preset_text(values: dict[str, Any]) -> str:
    return ", ".join(f"{key} {value}" for key, value in values.items() if key != "objective") or "its defaults"


def _first_paragraph(text: str | None) -> str:
    return " ".join(inspect.cleandoc(text or "").split("\n\n")[0].split())


def datasets_page() -> str:
    """The data sets: the embedded digits, the IDX sets and each data-set module."""
    lines = ["# Data sets", "",
             "Generated from the data-set registry (`vaelab.data.registry`) when the site is built. "
             "`vaelab datasets` says where each would be loaded from on your machine.", "",
             "| name | what it holds | sizes (`name:N`) | reads files |", "|---|---|---|---|"]
    for row in list_datasets():  # the rows `vaelab datasets` prints, without this machine's availability
        module = MADE_HERE.get(row["name"])
        sizes = "one" if module is None or module.SIZES is None else f"{module.SIZES[0]:,}-{module.SIZES[1]:,}"
        reads = module.READS_FILES if module is not None else row["name"] != EMBEDDED
        lines.append(f"| `{row['name']}` | {markdown_cell(row['images'])} | {sizes} | {'yes' if reads else 'no'} |")
    for name, module in MADE_HERE.items():
        lines += ["", f"## {name}", "", inspect.cleandoc(module.__doc__ or "")]
    return "\n".join(lines) + "\n"


def studies_page() -> str:
    """The built-in studies: each one's models, data sets, seeds and measures, from its YAML file."""
    lines = ["# Built-in studies", "",
             "Generated from the YAML files in `vaelab/studies/builtin` when the site is built. "
             "`vaelab study show NAME` prints one with its estimated time on your machine; "
             "[how to write a study file](../howto/write-a-study.md) shows the format.", ""]
    for name in builtin_studies():
        spec = load_study(name)
        models = ", ".join(f"`{key}` ({model.label or key})" for key, model in spec.models.items())
        lines += [f"## {name}", "", spec.title, "",
                  f"- data sets: {', '.join(f'`{d}`' for d in spec.datasets)}; protocol {spec.protocol}; "
                  f"{len(spec.seeds)} seeds",
                  f"- models: {models}",
                  f"- measures: {', '.join(spec.measures)}",
                  f"- cost: {spec.description}", ""]
    return "\n".join(lines)
