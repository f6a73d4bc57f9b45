"""The CLI as a user sees it: output, exit codes, files written, one-line errors."""

from __future__ import annotations

import json

import numpy as np
import yaml

from tests.conftest import run_cli, run_cli_subprocess


def test_help_lists_every_command():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("info", "datasets", "train", "encode", "reproduce", "study", "report", "evaluate", "compare"):
        assert command in result.stdout


def test_a_fresh_process_answers_help_and_a_bad_option_as_in_process():
    # The other CLI tests call the entry point in the test's process; this one runs `python -m vaelab` itself.
    helped = run_cli_subprocess("--help")
    assert helped.returncode == 0 and "reproduce" in helped.stdout
    refused = run_cli_subprocess("train", "--epochs", "many")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    in_process = run_cli("train", "--epochs", "many")
    assert refused.stderr.replace("python -m vaelab", "vaelab") == in_process.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "--epochs" in refused.stderr


def test_version():
    from vaelab import __version__

    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"vaelab {__version__}"


def test_every_command_has_help():
    for command in ("info", "datasets", "train", "encode"):
        result = run_cli(command, "--help")
        assert result.returncode == 0 and "Usage:" in result.stdout


def test_datasets_lists_the_embedded_default():
    result = run_cli("datasets")
    assert result.returncode == 0
    assert "mnist-5k" in result.stdout and "fashion-mnist" in result.stdout and "idx:PATH" in result.stdout


def test_train_then_encode_writes_the_run_and_the_codes(tmp_path):
    result = run_cli("train", "--model", "vae", "--epochs", "2", "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    assert "trained mlp/mlp vae on mnist-5k: 2 epochs" in result.stdout
    for name in ("weights.safetensors", "checkpoint.safetensors", "model.json", "metrics.jsonl"):
        assert (tmp_path / "run" / name).is_file()
    result = run_cli("encode", str(tmp_path / "run"), "--out", str(tmp_path / "codes.npz"))
    assert result.returncode == 0, result.stderr
    with np.load(tmp_path / "codes.npz") as codes:
        assert sorted(codes.files) == ["labels", "logvar", "mean"]
        assert codes["mean"].shape == (1000, 16) and codes["labels"].shape == (1000,)


def test_train_on_an_idx_folder(tiny_idx_folder, tmp_path):
    result = run_cli("train", "--model", "ae", "--epochs", "1", "--latent", "4",
                     "--dataset", f"idx:{tiny_idx_folder}", "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    info = json.loads((tmp_path / "run" / "model.json").read_text())
    assert info["dataset"]["n_train"] == 120 and info["config"]["model"]["latent"] == 4


def test_config_file_is_read_and_cli_options_win(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"model": {"objective": "ae", "latent": 5}, "train": {"epochs": 3}}))
    result = run_cli("train", "--config", str(config), "--epochs", "1", "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    saved = json.loads((tmp_path / "run" / "model.json").read_text())["config"]
    assert saved["model"]["objective"] == "ae" and saved["model"]["latent"] == 5 and saved["train"]["epochs"] == 1


def _one_line_error(result, *fragments: str) -> None:
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_unknown_config_key_is_a_one_line_error_naming_the_key(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("train:\n  epoch: 3\n")
    _one_line_error(run_cli("train", "--config", str(config)), "unknown config key 'train.epoch'")


def test_bad_config_value_is_a_one_line_error_naming_the_key(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("model:\n  latent: -2\n")
    _one_line_error(run_cli("train", "--config", str(config)), "'model.latent'", "greater than 0")
    _one_line_error(run_cli("train", "--precision", "fp8"), "'train.precision'")


def test_broken_yaml_and_missing_config_file(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("model: [unclosed\n")
    _one_line_error(run_cli("train", "--config", str(config)), "not valid YAML")
    _one_line_error(run_cli("train", "--config", str(tmp_path / "absent.yaml")), "does not exist")


def test_bad_data_and_missing_runs_are_one_line_errors(tmp_path):
    _one_line_error(run_cli("train", "--dataset", "idx:" + str(tmp_path)), "no IDX pair found")
    _one_line_error(run_cli("encode", str(tmp_path / "nope"), "--out", str(tmp_path / "c.npz")), "no such run directory")
    assert not (tmp_path / "c.npz").exists()


def test_corrupt_idx_file_is_named_in_the_error(tmp_path, tiny_idx_folder):
    broken = tiny_idx_folder / "t10k-images-idx3-ubyte.gz"
    broken.write_bytes(broken.read_bytes()[:100])
    _one_line_error(run_cli("train", "--dataset", f"idx:{tiny_idx_folder}", "--out", str(tmp_path / "r")),
                    "t10k-images-idx3-ubyte.gz")
    assert not (tmp_path / "r").exists()


def test_resume_rejects_options_that_would_change_the_run(tmp_path):
    _one_line_error(run_cli("train", "--resume", str(tmp_path), "--lr", "0.1"), "only --epochs")


def test_default_run_directory_is_named_after_model_data_and_seed(tmp_path, tiny_idx_folder):
    result = run_cli("train", "--model", "ae", "--epochs", "1", "--seed", "4", "--dataset", f"idx:{tiny_idx_folder}",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "runs" / "ae-idx-tiny-seed4" / "model.json").is_file()


def test_reproduce_rejects_bad_profile_and_seeds(tmp_path):
    _one_line_error(run_cli("reproduce", "--profile", "huge", "--out", str(tmp_path / "o")), "unknown profile 'huge'")
    _one_line_error(run_cli("reproduce", "--seeds", "0", "--out", str(tmp_path / "o")), "--seeds must be a whole number between 1")
    assert not (tmp_path / "o").exists()


def test_every_study_command_has_help():
    for command in ("reproduce", "report", "evaluate", "compare", "study", "study run", "study show", "study list"):
        result = run_cli(*command.split(), "--help")
        assert result.returncode == 0 and "Usage:" in result.stdout, command
