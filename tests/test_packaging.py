"""The wheel installs and runs: built from the repository, installed into a fresh virtual environment.

The fresh environment gets the wheel alone (``--no-deps``); its dependencies (torch 2.13.0 among them)
come from the test environment through a ``.pth`` file, so that nothing is downloaded. What this checks is
the wheel itself: its modules, its package data (templates, built-in studies, the explorer's page) and its
entry point.
"""

import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_wheel_installs_and_trains(tmp_path, tiny_idx_folder):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(wheels), str(ROOT)], check=True, capture_output=True)
    (wheel,) = wheels.glob("vaelab-*.whl")
    env_dir = tmp_path / "env"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)], check=True,
                   capture_output=True)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # the test environment's packages come after the wheel's own, so the wheel's vaelab is the one imported
    # (checked below: the test environment also has this checkout installed, editable)
    (Path(site) / "zz-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    vaelab = env_dir / "bin" / "vaelab"

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(vaelab), *args], capture_output=True, text=True, cwd=tmp_path, timeout=600)

    version = run("--version")
    assert version.returncode == 0 and version.stdout.startswith("vaelab "), version.stderr
    located = subprocess.run([str(python), "-c", "import vaelab; print(vaelab.__file__)"], capture_output=True,
                             text=True, check=True).stdout
    assert str(env_dir) in located  # the installed wheel, not this checkout
    datasets = run("datasets")
    assert datasets.returncode == 0 and "mnist-5k" in datasets.stdout, datasets.stderr
    listed = run("study", "list")
    assert listed.returncode == 0 and "thesis" in listed.stdout, listed.stderr
    trained = run("train", "--dataset", f"idx:{tiny_idx_folder}", "--epochs", "1", "--hidden", "16", "--latent", "2",
                  "--out", str(tmp_path / "run"), "--quiet")
    assert trained.returncode == 0, trained.stderr
    assert (tmp_path / "run" / "weights.safetensors").is_file()
