"""The measure registry: one entry per measure, and everything that lists measures derived from it."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import run_cli
from vaelab.analysis import evaluate, registry
from vaelab.cli import app
from vaelab.errors import ConfigError
from vaelab.studies.spec import load_study


def test_every_group_has_one_function_in_the_registry_s_order():
    assert tuple(evaluate.GROUP_FUNCTIONS) == registry.GROUPS
    assert registry.DEFAULT_GROUPS == tuple(g for g in registry.GROUPS if g not in ("manifold", "disentanglement"))
    assert registry.CLASSIFIER_GROUPS == {"generation", "expost", "perturbation"}
    assert registry.TRAIN_CODE_GROUPS == {"knn", "probe", "attributes", "expost"}


def test_each_measure_has_one_entry():
    names = [m.name for group in registry.REGISTRY for m in group.measures]
    assert len(names) == len(set(names))
    assert all(m.direction in (-1, 0, 1) for group in registry.REGISTRY for m in group.measures)


def test_the_headline_columns_keep_their_order():
    # the study table's columns (the tour, docs/guide/tour.md, shows them): unchanged by the move to the registry
    assert list(registry.HEADLINE.values()) == ["silhouette", "5-NN acc", "probe acc", "own clusters acc",
                                                "recon BCE", "prior FD", "ex-post FD", "IWAE NLL", "FactorVAE score", "MIG",
                                                "DCI dis.", "SAP", "bits/dim", "N2D acc", "attr. AUC"]
    assert registry.BAR_MEASURES == ("silhouette", "knn5_accuracy", "linear_probe_accuracy", "kmeans_nmi",
                                     "tsne_trustworthiness")


@pytest.mark.parametrize("name,meaning,direction,detail", [
    ("silhouette", "mean silhouette of the classes (Rousseeuw 1987)", 1, False),
    ("silhouette_class_7", "silhouette of class 7", 1, True),
    ("perturb_accuracy_s0.5", "classifier accuracy on decoded codes + noise, sigma 0.5", 1, False),
    ("kl_dim_3", "KL of latent dimension 3", 0, True),
    ("mig_factor_2", "MIG of factor 2", 1, True),
    ("recon_bce", "reconstruction BCE, nats per image", -1, False),
    ("iwae_k", "importance samples per image of the IWAE bound", 0, True),
    ("no_such_measure", "no_such_measure", 0, False),
])
def test_describe_and_is_detail(name, meaning, direction, detail):
    assert registry.describe(name) == (meaning, direction)
    assert registry.is_detail(name) is detail


def test_a_family_needs_its_suffix():
    assert registry.entry("silhouette_class_") is None and registry.entry("perturb_accuracy_s") is None
    assert registry.entry("perturb_accuracy_s2")[0].name == "perturbation"


def test_measure_names_are_checked_against_the_study_s_groups():
    assert registry.check_measure("silhouette", ["separation"]) is None
    assert registry.check_measure("silhoutte", ["separation"]) == (
        "unknown measure 'silhoutte': did you mean 'silhouette'? `vaelab measures` lists them")
    assert "measured by the 'generation' group" in registry.check_measure("prior_fd", ["separation"])


STUDY = {"name": "s", "datasets": ["mnist-5k"], "seeds": 1, "measures": ["separation", "knn"],
         "models": {"ae": {"preset": "ae"}, "vae": {"preset": "vae"}}}


@pytest.mark.parametrize("part,message", [
    ({"comparisons": [{"a": "ae", "b": "vae", "measures": ["silhoutte"]}]},
     "comparisons.0.measures: unknown measure 'silhoutte': did you mean 'silhouette'?"),
    ({"finding": {"b": "vae", "measure": "mig"}},
     "finding.measure: 'mig' is measured by the 'disentanglement' group"),
    ({"finding": [{"b": "vae"}, {"a": "ae", "b": "vae", "measure": "prior_fdd"}]},
     "finding.1.measure: unknown measure 'prior_fdd': did you mean 'prior_fd'?"),
    ({"reference": {"title": "t", "measure": "knn_accuracy", "values": {"ae": 0.1}}},
     "reference.measure: unknown measure 'knn_accuracy'"),
])
def test_a_study_naming_an_unknown_measure_is_refused_when_read(tmp_path, part, message):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({**STUDY, **part}))
    with pytest.raises(ConfigError) as error:
        load_study(path)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_study_run_refuses_it_before_anything_is_written(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({**STUDY, "comparisons": [{"a": "ae", "b": "vae", "measures": ["silhoutte"]}]}))
    for command in (["study", "run", str(path), "--out", str(tmp_path / "out")], ["study", "show", str(path)]):
        result = run_cli(*command)
        assert result.returncode == 2 and "unknown measure 'silhoutte'" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""
    assert not (tmp_path / "out").exists()


def test_the_cli_lists_the_groups_and_the_measures_from_the_registry():
    runner = CliRunner()
    help_text = "".join(runner.invoke(app, ["evaluate", "--help"]).output.split())  # unwrapped
    assert ",".join(registry.GROUPS) in help_text  # disentanglement included
    listed = runner.invoke(app, ["measures"])
    assert listed.exit_code == 0
    for group in registry.REGISTRY:
        for measure in group.measures:
            assert (measure.name in listed.output) is not measure.detail, measure.name
    assert runner.invoke(app, ["measures", "--details"]).output.count("silhouette_class_*") == 1
    wrong = run_cli("measures", "vibes")
    assert wrong.returncode == 2 and wrong.stderr.startswith("error: unknown measure group 'vibes'")


MISSING_UMAP = "error: the manifold measures need umap, which is not installed: pip install 'vaelab[umap]'"


def test_a_group_whose_package_is_missing_is_named_with_its_install_line(without_umap):
    assert registry.missing_extra(["separation", "manifold"]) == MISSING_UMAP.removeprefix("error: ")
    assert registry.missing_extra(["separation"]) is None
    with pytest.raises(ConfigError, match="pip install 'vaelab\\[umap\\]'"):
        evaluate.parse_groups("separation,manifold")
    assert "manifold" not in evaluate.parse_groups("all")  # every other group, with a note


def test_study_run_without_the_package_a_group_needs_is_one_line_and_writes_nothing(tmp_path, without_umap):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({**STUDY, "measures": ["separation", "manifold"]}))
    result = run_cli("study", "run", str(path), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and result.stderr.strip() == MISSING_UMAP
    assert not (tmp_path / "out").exists()
