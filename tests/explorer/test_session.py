"""The explorer's answers, without a server: what it loads, what it decodes, and hand-checked cases."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest

from tests.conftest import needs_umap
from tests.explorer.conftest import folder_digest
from vaelab.analysis.expost import ExPostDensity
from vaelab.analysis.generate import decode, prior_draws
from vaelab.errors import RunError
from vaelab.explorer.session import BadRequest, Explorer, _slerp, find_runs


def pixels(uri: str) -> np.ndarray:
    """A data URI's PNG as an array (matplotlib's reader, an independent decoder)."""
    import matplotlib.image

    assert uri.startswith("data:image/png;base64,")
    return matplotlib.image.imread(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])), format="png")


def as_uri_pixels(image: np.ndarray) -> np.ndarray:
    from vaelab.pixels import data_uri

    return pixels(data_uri(image))


def test_a_study_folder_opens_its_models_on_the_shared_test_images(explorer, tiny_study):
    summary = explorer.summary()
    assert [m["key"] for m in summary["models"]] == ["vae", "ae", "conv-vae", "cvae", "mog-vae"]
    assert [m["label"] for m in summary["models"]][:2] == ["VAE", "AE"]
    assert summary["points"] == 25  # the saved t-SNE maps' images
    (part,) = json.loads((tiny_study / "results.json").read_text())["datasets"].values()
    assert explorer.models["vae"].run_dir == tiny_study / part["runs"]["vae"]["0"]
    with np.load(explorer.models["vae"].run_dir / "map.npz") as saved:
        assert np.array_equal(explorer.index, saved["index"])
    assert summary["projections"][:2] == ["tsne", "pca"]
    by_key = {m["key"]: m for m in summary["models"]}
    assert by_key["vae"]["order_by"] == "KL" and by_key["ae"]["order_by"] == "variance"
    assert by_key["mog-vae"]["order_by"] == "variance"  # a learned prior's KL does not split by dimension
    assert sorted(by_key["vae"]["order"]) == [0, 1, 2, 3]
    assert "silhouette" in by_key["vae"]["measures"]


def test_dimensions_are_ordered_by_their_kl(explorer):
    m = explorer.models["vae"]
    kl = [m.measures[f"kl_dim_{j}"] for j in range(m.latent)]
    assert [kl[j] for j in m.order] == sorted(kl, reverse=True)


@pytest.mark.slow  # umap compiles its kernels in each process
@needs_umap
def test_umap_is_offered_where_the_extra_is_installed(explorer):
    assert explorer.projections()[-1] == "umap"
    first = explorer.map("umap")
    assert len(first["maps"]["vae"]["x"]) == 25 and first == explorer.map("umap")  # seeded and kept


def test_a_bare_run_opens_with_what_it_has(bare_run):
    before = folder_digest(bare_run)
    explorer = Explorer(find_runs([bare_run]))
    summary = explorer.summary()
    assert summary["projections"][0] == "pca"  # no saved t-SNE map
    assert summary["models"][0]["measures"] == {} and summary["models"][0]["order_by"] == "variance"
    assert summary["points"] == 30  # every test image
    with pytest.raises(BadRequest, match="unknown projection 'tsne'"):
        explorer.map("tsne")
    explorer.point(0)
    assert folder_digest(bare_run) == before


def test_a_run_whose_measures_hold_a_nan_opens_with_that_value_missing(bare_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(bare_run, run)
    # Python's JSON writer allows NaN (vaelab 0.1 wrote it): the page must still load, the value shown missing
    (run / "measures.json").write_text('{"measures": {"silhouette": NaN, "recon_bce": 12.5, "mig": Infinity}}')
    summary = Explorer(find_runs([run])).summary()
    assert summary["models"][0]["measures"] == {"recon_bce": 12.5}
    json.dumps(summary, allow_nan=False)  # what the server sends: valid JSON


def test_the_point_answer_decodes_the_image_s_own_code(explorer):
    answer = explorer.point(3)
    m = explorer.models["vae"]
    expected = decode(m.model, m.codes[3][None].astype(np.float32))[0]
    assert np.array_equal(pixels(answer["reconstructions"]["vae"]), as_uri_pixels(expected))
    assert np.array_equal(pixels(answer["image"]), as_uri_pixels(explorer.images[3] / 255.0))
    assert answer["class"] == explorer.class_names[explorer.labels[3]]
    assert answer["codes"]["ae"] == explorer.models["ae"].codes[3].tolist()


def test_pca_coordinates_match_scikit_learn_up_to_sign(explorer):
    from sklearn.decomposition import PCA

    for m in explorer.models.values():
        oracle = PCA(n_components=2).fit_transform(m.codes)
        for k in range(2):
            assert np.allclose(np.abs(m.pca[:, k]), np.abs(oracle[:, k]), atol=1e-8)


def test_the_plane_s_origin_decodes_the_mean_code_and_a_model_maps_onto_itself(explorer, bare_run):
    m = explorer.models["vae"]
    answer = explorer.plane(["vae"], "vae", 0.0, 0.0)
    assert np.allclose(answer["codes"]["vae"], m.pca_mean)
    answer = explorer.plane(["vae"], "vae", 1.5, -0.5)
    assert np.allclose(answer["codes"]["vae"], m.pca_mean + 1.5 * m.pca_axes[0] - 0.5 * m.pca_axes[1])
    twice = Explorer(find_runs([bare_run, bare_run]))  # the same run twice: keys vae-bare, vae-bare-2
    assert list(twice.models) == ["vae-bare", "vae-bare-2"]
    answer = twice.plane(None, "vae-bare", 0.7, 0.2)
    assert np.allclose(answer["codes"]["vae-bare"], answer["codes"]["vae-bare-2"])


def test_the_plane_carries_the_point_to_another_model_s_plane_by_a_rotation(explorer):
    """A model's map rotated 90° is laid back onto it: a point maps to the rotated place."""
    from scipy.linalg import orthogonal_procrustes

    a, b = explorer.models["vae"], explorer.models["ae"]
    rotation, _ = orthogonal_procrustes(b.pca / b.pca.std(0), a.pca / a.pca.std(0))
    assert np.allclose(rotation @ rotation.T, np.eye(2))
    answer = explorer.plane(["ae"], "vae", 1.0, 0.0)
    mapped = (np.array([1.0, 0.0]) / a.pca.std(0)) @ rotation.T * b.pca.std(0)
    assert np.allclose(answer["codes"]["ae"], b.pca_mean + mapped @ b.pca_axes)


def test_interpolation_ends_at_the_two_images_codes(explorer):
    answer = explorer.interpolate(["vae", "cvae"], 2, 7, 5, "linear")
    assert answer["steps"] == 5 and all(len(strip) == 5 for strip in answer["strips"].values())
    ends = explorer.point(2)["reconstructions"]["vae"], explorer.point(7)["reconstructions"]["vae"]
    assert answer["strips"]["vae"][0] == ends[0] and answer["strips"]["vae"][-1] == ends[1]
    spherical = explorer.interpolate(["vae"], 2, 7, 5, "spherical")["strips"]["vae"]
    assert spherical[0] == ends[0] and spherical[-1] == ends[1]


def test_slerp_by_hand():
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    path = _slerp(a, b, np.array([0.0, 0.5, 1.0]))
    assert np.allclose(path, [[1, 0], [np.sqrt(0.5), np.sqrt(0.5)], [0, 1]])
    assert np.allclose(_slerp(a, 2 * a, np.array([0.0, 0.5, 1.0])), [[1, 0], [1.5, 0], [2, 0]])  # parallel: linear


def test_centroids_without_noise_decode_the_class_means(explorer):
    answer = explorer.centroids(["vae", "cvae"], 0.0, 0)
    m = explorer.models["vae"]
    means = np.stack([m.codes[explorer.labels == k].mean(0) for k in range(3)]).astype(np.float32)
    expected = decode(m.model, means)
    assert [np.array_equal(pixels(uri), as_uri_pixels(image)) for uri, image in zip(answer["rows"]["vae"], expected)] \
        == [True] * 3
    assert answer["classes"] == explorer.class_names[:3]
    noisy = explorer.centroids(["vae"], 2.0, 0)["rows"]["vae"]
    assert noisy != answer["rows"]["vae"] and noisy == explorer.centroids(["vae"], 2.0, 0)["rows"]["vae"]
    assert explorer.centroids(["vae"], 2.0, 1)["rows"]["vae"] != noisy  # the seed picks the noise


def test_prior_draws_are_seeded_and_shared_by_models_with_one_prior(explorer):
    first = explorer.prior(["vae", "conv-vae"], 5, 4)
    assert first == explorer.prior(["vae", "conv-vae"], 5, 4)
    assert explorer.prior(["vae"], 6, 4)["rows"]["vae"] != first["rows"]["vae"]
    m = explorer.models["conv-vae"]
    expected = decode(m.model, prior_draws(m.model, 4, 5).numpy())
    assert np.array_equal(pixels(first["rows"]["conv-vae"][1]), as_uri_pixels(expected[1]))


def test_ex_post_draws_are_each_model_s_own_density_decoded(explorer, bare_run):
    answer = explorer.prior(["ae", "cvae"], 5, 4, "expost")
    assert answer["source"] == "expost" and answer["missing"] == [] and answer == explorer.prior(["ae", "cvae"], 5, 4,
                                                                                                  "expost")
    m = explorer.models["ae"]
    density = ExPostDensity.load(m.run_dir / "expost.npz")
    assert density.components == 3 and summary_of(explorer, "ae")["expost"] is True
    expected = decode(m.model, density.sample(4, 5))
    assert np.array_equal(pixels(answer["rows"]["ae"][2]), as_uri_pixels(expected[2]))
    assert answer["rows"]["ae"] != explorer.prior(["ae"], 5, 4)["rows"]["ae"]  # not the prior's draws
    # a run evaluated without the expost measures has none: named, the others still drawn
    both = Explorer(find_runs([m.run_dir, bare_run]))
    mixed = both.prior(None, 5, 4, "expost")
    assert list(mixed["rows"]) == ["ae-seed0"] and mixed["missing"] == ["vae-bare"]
    assert [model["expost"] for model in both.summary()["models"]] == [True, False]


def summary_of(explorer, key: str) -> dict:
    return next(model for model in explorer.summary()["models"] if model["key"] == key)


def test_decode_is_the_decoder_s_image(explorer):
    m = explorer.models["conv-vae"]
    z = [0.5, -1.0, 0.25, 2.0]
    expected = decode(m.model, np.array([z], dtype=np.float32))[0]
    assert np.array_equal(pixels(explorer.decode("conv-vae", z)["image"]), as_uri_pixels(expected))
    label0 = explorer.decode("cvae", z, 0)["image"]
    assert label0 != explorer.decode("cvae", z, 2)["image"]  # the CVAE decodes with the label


@pytest.mark.parametrize("call,message", [
    (lambda e: e.decode("nope", [0, 0, 0, 0]), "unknown model 'nope': choose one of vae, ae"),
    (lambda e: e.decode("vae", [0, 0, 0]), "z must be a list of 4 numbers, not 3"),
    (lambda e: e.decode("vae", "0,0,0,0"), "z must be a list of 4 numbers"),
    (lambda e: e.decode("vae", [0, float("nan"), 0, 0]), "finite numbers only"),
    (lambda e: e.decode("vae", [0, float("inf"), 0, 0]), "finite numbers only"),
    (lambda e: e.decode("vae", [0, True, 0, 0]), "finite numbers only"),
    (lambda e: e.decode("vae", [0, 1e9, 0, 0]), "out of range"),
    (lambda e: e.decode("cvae", [0, 0, 0, 0], 7), "label must be an integer from 0 to 2"),
    (lambda e: e.point(-1), "point must be an integer from 0 to 24"),
    (lambda e: e.point(25), "point must be an integer from 0 to 24"),
    (lambda e: e.point("x"), "point must be an integer"),
    (lambda e: e.point(None), "point must be an integer"),
    (lambda e: e.map("umap-nope"), "unknown projection"),
    (lambda e: e.plane(["vae"], "vae", float("nan"), 0), "finite numbers only"),
    (lambda e: e.plane([], "vae", 0, 0), "non-empty list"),
    (lambda e: e.plane(["vae"], "zzz", 0, 0), "unknown model 'zzz'"),
    (lambda e: e.interpolate(["vae"], 0, 1, 1, "linear"), "steps must be an integer from 2 to 64"),
    (lambda e: e.interpolate(["vae"], 0, 1, 500, "linear"), "steps must be an integer from 2 to 64"),
    (lambda e: e.interpolate(["vae"], 0, 1, 4, "curly"), "path must be 'linear' or 'spherical'"),
    (lambda e: e.interpolate(["vae"], 0, 99, 4, "linear"), "b must be an integer from 0 to 24"),
    (lambda e: e.centroids(["vae"], -1, 0), "sigma must be a number from 0 to 10"),
    (lambda e: e.centroids(["vae"], float("nan"), 0), "sigma must be a number"),
    (lambda e: e.centroids(["vae"], 1, -3), "seed must be an integer"),
    (lambda e: e.prior(["vae"], 0, 0), "n must be an integer from 1 to 64"),
    (lambda e: e.prior("vae", 0, 4), "non-empty list"),
    (lambda e: e.prior(["vae"], 0, 4, "posterior"), "source must be 'prior' or 'expost', not 'posterior'"),
    (lambda e: e.prior(["vae"], 0, 4, ["expost"]), "source must be 'prior' or 'expost'"),
])
def test_bad_requests_say_what_to_send(explorer, call, message):
    with pytest.raises(BadRequest, match=message.replace("(", r"\(").replace(")", r"\)")):
        call(explorer)


def test_runs_tested_on_other_images_are_refused(tmp_path, bare_run):
    from tests.conftest import write_idx_pair

    rng = np.random.default_rng(1)
    other = tmp_path / "other"
    write_idx_pair(other, "train", rng.integers(0, 255, (40, 28, 28)), np.arange(40) % 2)
    write_idx_pair(other, "t10k", rng.integers(0, 255, (10, 28, 28)), np.arange(10) % 2)
    from vaelab import api

    api.train("ae", out=tmp_path / "ae-other", dataset=f"idx:{other}", epochs=1, latent=4, hidden=16)
    with pytest.raises(RunError, match="were tested on different images"):
        Explorer(find_runs([bare_run, tmp_path / "ae-other"]))


def test_folders_that_are_not_runs_or_studies_are_refused(tmp_path, tiny_study):
    with pytest.raises(RunError, match="no such folder"):
        find_runs([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError, match="neither a run folder"):
        find_runs([tmp_path / "empty"])
    with pytest.raises(RunError, match="has no data set 'mnist'"):
        find_runs([tiny_study], dataset="mnist")
    with pytest.raises(RunError, match="no runs to explore"):
        Explorer([])


def test_exploring_writes_nothing_into_the_runs(tiny_study, explorer):
    before = folder_digest(tiny_study)
    explorer.summary()
    explorer.map("pca")
    explorer.map("tsne")
    explorer.point(1)
    explorer.decode("vae", [0, 0, 0, 0])
    explorer.plane(None, "ae", 0.3, 0.3)
    explorer.interpolate(None, 0, 1, 3, "spherical")
    explorer.centroids(None, 1.0, 0)
    explorer.prior(None, 0, 3)
    assert folder_digest(tiny_study) == before
