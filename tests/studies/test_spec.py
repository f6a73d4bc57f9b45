"""Study files: what is accepted, and the one-line errors (exit 2) for what is not."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import run_cli
from vaelab.data.registry import load_dataset
from vaelab.errors import ConfigError
from vaelab.studies.spec import builtin_studies, load_study
from vaelab.studies.study import plan

BUILTIN_STUDIES = sorted(builtin_studies())

GOOD = {
    "name": "latent-size",
    "datasets": ["mnist-5k"],
    "seeds": 2,
    "train": {"epochs": 3, "batch_size": 64},
    "models": {
        "vae-z8": {"preset": "vae", "model": {"latent": 8}},
        "vae-z32": {"preset": "vae", "model": {"latent": 32}, "train": {"lr": 0.002}},
        "bvae4": {"preset": "vae", "model": {"beta": 4.0}, "label": "β-VAE (β=4)"},
    },
    "comparisons": [{"a": "vae-z8", "b": "vae-z32", "measures": ["silhouette", "knn5_accuracy"]}],
}


def _write(tmp_path: Path, values) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(values if isinstance(values, str) else yaml.safe_dump(values), encoding="utf-8")
    return path


def test_a_hand_written_study_resolves_every_cell(tmp_path):
    spec = load_study(_write(tmp_path, GOOD))
    assert spec.seeds == [0, 1] and spec.label("bvae4") == "β-VAE (β=4)" and spec.label("vae-z8") == "vae-z8"
    cells = plan(spec)
    assert len(cells) == 6 and {c.seed for c in cells} == {0, 1}
    z32 = next(c for c in cells if c.model == "vae-z32" and c.seed == 1)
    assert z32.config.model.latent == 32 and z32.config.train.lr == 0.002 and z32.config.train.epochs == 3
    assert z32.config.train.batch_size == 64 and z32.config.train.seed == 1
    # the identity is a stable hash of the resolved config: same config, same identity; any change, another
    identities = {c.identity for c in cells}
    assert len(identities) == 6
    assert {c.identity for c in plan(load_study(_write(tmp_path, GOOD)))} == identities


def test_seeds_as_a_list_and_the_builtin_studies_load():
    assert set(builtin_studies()) >= {"thesis", "thesis-full"}
    thesis = load_study("thesis")
    assert list(thesis.models) == ["ae", "vae", "conv-vae", "convenc-vae"] and thesis.seeds == [0, 1, 2]
    (table42,) = thesis.reference
    assert table42.values == {"ae": 0.1475, "vae": 0.1117, "conv-vae": 0.1182}
    full = load_study("thesis-full")
    assert full.datasets == ["mnist"] and plan(full)[0].config.train.epochs == 50


def test_the_builtin_thesis_study_is_the_quick_profile_of_before():
    cells = {c.model: c.config for c in plan(load_study("thesis")) if c.seed == 0}
    assert (cells["vae"].train.epochs, cells["vae"].train.batch_size, cells["vae"].train.lr) == (15, 256, 0.003)
    assert (cells["conv-vae"].train.epochs, cells["conv-vae"].train.batch_size) == (1, 16)
    assert cells["convenc-vae"].model.encoder == "conv" and cells["convenc-vae"].model.decoder == "mlp"


@pytest.mark.parametrize("change,message", [
    (lambda v: v["models"].update({"x": {"preset": "vae", "model": {"latnt": 8}}}), "models.x: unknown config key 'model.latnt'"),
    (lambda v: v["models"].update({"x": {"preset": "gan"}}), "unknown preset 'gan'"),
    (lambda v: v["models"].update({"x": {"preset": "vae", "encoder": "conv"}}), "unknown key 'models.x.encoder'"),
    (lambda v: v.update(datasets=["cifar100"]), "unknown data set 'cifar100'"),
    (lambda v: v["comparisons"].append({"a": "vae-z8", "b": "vae-z64"}), "comparisons.1.b: 'vae-z64' is not one"),
    (lambda v: v.update(seeds=[]), "seeds"),
    (lambda v: v.update(seeds=0), "a seed count must be between 1 and 1000"),
    (lambda v: v.update(seeds=[0, 0]), "seeds must be distinct"),
    (lambda v: v.update(models={}), "models"),
    (lambda v: v.pop("name"), "missing key 'name'"),
    (lambda v: v.update(name="My Study"), "name"),
    (lambda v: v.update(measures=["separation", "vibes"]), "unknown measure group 'vibes'"),
    (lambda v: v.update(train={"seed": 3}), "seed and precision are study settings"),
    (lambda v: v["models"]["vae-z8"]["train"].update(seed=1) if "train" in v["models"]["vae-z8"]
     else v["models"]["vae-z8"].update(train={"seed": 1}), "seed comes from the study's seeds"),
    (lambda v: v["models"]["vae-z8"].update(model={"beta": -1}), "models.vae-z8: invalid config value for 'model.beta'"),
    (lambda v: v.update(evaluation={"iwae_k": 0}), "evaluation.iwae_k"),
    # a NaN or infinite number anywhere is refused by name (YAML's .nan / .inf), not met later in every cell
    (lambda v: v.update(evaluation={"sigmas": [float("nan"), float("inf")]}),
     "'evaluation.sigmas.0': Input should be a finite number (got nan)"),
    (lambda v: v.update(evaluation={"sigmas": [0.5, float("inf")]}), "'evaluation.sigmas.1': Input should be a finite"),
    (lambda v: v.update(evaluation={"sigmas": [0.5, -1.0]}), "'evaluation.sigmas.1': Input should be greater than"),
    (lambda v: v.update(train={"lr": float("inf")}), "should be a finite number"),
    (lambda v: v["models"]["vae-z8"].update(model={"beta": float("nan")}), "model.beta': Input should be a finite"),
    (lambda v: v.update(reference={"title": "t", "measure": "silhouette", "values": {"vae-z8": float("nan")}}),
     "should be a finite number"),
    (lambda v: v.update(reference={"title": "t", "measure": "silhouette", "values": {"gan": 0.1}}), "'gan' is not one"),
    (lambda v: v.update(reference=[{"title": "t", "measure": "silhouette", "values": {"vae-z8": 0.1}},
                                   {"title": "u", "measure": "silhouette", "values": {"gan": 0.1}}]),
     "reference.1.values: 'gan' is not one"),
    (lambda v: v.update(finding=[{"b": "vae-z8"}, {"a": "gan", "b": "vae-z8"}]), "finding.1.a: 'gan' is not one"),
    (lambda v: v.update(finding={"a": "vae-z8", "b": "gan"}), "finding.b: 'gan' is not one"),
    (lambda v: v.update(reference={"title": "t", "measure": "silhouette", "values": {"vae-z8": 0.1},
                                   "fingerprints": ["not-a-sha256"]}), "should match pattern"),
])
def test_bad_study_files_give_one_line_errors(tmp_path, change, message):
    values = yaml.safe_load(yaml.safe_dump(GOOD))
    change(values)
    with pytest.raises(ConfigError) as error:
        plan(load_study(_write(tmp_path, values)))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_duplicate_model_names_are_refused(tmp_path):
    text = yaml.safe_dump(GOOD) + ""
    text = text.replace("  vae-z8:\n", "  vae-z8:\n    preset: ae\n  vae-z8:\n", 1)
    text = text.replace("models:\n", "models:\n  twice:\n    preset: vae\n  twice:\n    preset: ae\n", 1)
    with pytest.raises(ConfigError, match="key 'twice' appears twice"):
        load_study(_write(tmp_path, text))


@pytest.mark.parametrize("content,message", [
    ("", "is empty"),
    ("- a\n- b\n", "must hold a mapping"),
    ("name: [unclosed\n", "not valid YAML"),
    ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nests too deeply to read"),  # PyYAML's own recursion
    ("name: x\ntrain: " + "{a: " * 40 + "1" + "}" * 40 + "\n", "nests 41 levels deep"),
])
def test_broken_study_files(tmp_path, content, message):
    with pytest.raises(ConfigError, match=message):
        load_study(_write(tmp_path, content))


def test_a_deeply_nested_run_config_is_one_line_too(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("model: " + "[" * 5000 + "]" * 5000 + "\n")
    result = run_cli("train", "--config", str(path))
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"error: config file {path} nests too deeply to read: vaelab's files nest a few levels (at most 32)"]


def test_the_cli_gives_one_line_errors_for_bad_studies(tmp_path):
    values = yaml.safe_load(yaml.safe_dump(GOOD))
    values["comparisons"][0]["b"] = "nope"
    for args, message in [
        (("study", "run", str(_write(tmp_path, values)), "--out", str(tmp_path / "o")), "'nope' is not one"),
        (("study", "show", str(tmp_path / "missing.yaml")), "no study file"),
        (("study", "run", "thesis", "--executor", "dask", "--out", str(tmp_path / "o")), "unknown executor 'dask'"),
        (("study", "run", "thesis", "--gpus-per-cell", "1", "--out", str(tmp_path / "o")), "apply to the ray executor"),
        (("study", "run", "thesis", "--cpus-per-cell", "0", "--out", str(tmp_path / "o")), "at least 1"),
    ]:
        result = run_cli(*args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr, (args, lines)
    assert not (tmp_path / "o" / "results.json").exists()


def test_study_list_and_show(tmp_path):
    listed = run_cli("study", "list")
    assert listed.returncode == 0 and "thesis " in listed.stdout and "thesis-full" in listed.stdout
    # the cell counts line up, whatever the longest name and however many cells (3 digits: generative-aes)
    columns = {line.index(" cells ") for line in listed.stdout.splitlines() if " cells " in line}
    assert len(columns) == 1 and all(" " in line.split(" cells ")[0].rstrip() for line in listed.stdout.splitlines()
                                     if " cells " in line)
    shown = run_cli("study", "show", str(_write(tmp_path, GOOD)), "--no-estimate")
    assert shown.returncode == 0, shown.stderr
    assert "6 cells (1 data sets x 3 models x 2 seeds), 18 epochs in all" in shown.stdout
    assert "compare vae-z8 - vae-z32: silhouette, knn5_accuracy" in shown.stdout
    spec = load_study(tmp_path / "study.yaml")
    assert plan(spec)[0].identity in shown.stdout


@pytest.mark.parametrize("name", BUILTIN_STUDIES)
def test_study_show_with_its_time_estimate_works_on_every_builtin_study(name):
    # the estimate trains a few batches of every model: the CVAE of `variants` needs labels for it
    shown = run_cli("study", "show", name)
    assert shown.returncode == 0, shown.stderr
    assert "estimated training time here:" in shown.stdout
    if name == "n2d":  # transductive: a cell trains on every image, the 60,000 and the 10,000 test images
        assert "fashion-mnist: 70,000 training images" in shown.stdout


def test_the_example_study_files_are_valid_and_match_the_tour():
    root = Path(__file__).resolve().parents[2]
    tour = (root / "docs" / "guide" / "tour.md").read_text(encoding="utf-8")
    examples = sorted((root / "examples").glob("*.yaml"))
    assert examples
    for path in examples:
        spec = load_study(path)
        assert len(plan(spec)) == len(spec.models) * len(spec.seeds) * len(spec.datasets)
    shown = load_study(root / "examples" / "latent-and-beta.yaml")
    for key in shown.models:  # the tour shows this file's models
        assert f"  {key}:" in tour


MNIST_TEST_FOLDER = Path(__file__).resolve().parents[3] / "shared" / "data" / "mnist"  # beside the checkout, if here
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.parametrize("title, dataset, folder", [
    ("N2D on Fashion-MNIST", "fashion-mnist", DEBIAN_FASHION),
    ("N2D on MNIST-test", f"idx:{MNIST_TEST_FOLDER}", MNIST_TEST_FOLDER),
])
def test_the_n2d_study_s_published_figures_name_the_real_data(title, dataset, folder):
    """Each reference's content fingerprint is that of the real files (read here when they are on this machine)."""
    if not folder.is_dir():
        pytest.skip(f"{folder} is not on this machine")
    (reference,) = [r for r in load_study("n2d").reference if r.title.startswith(title)]
    data = load_dataset(dataset, protocol="transductive", download=False)
    assert reference.fingerprints == [data.content_fingerprint]
