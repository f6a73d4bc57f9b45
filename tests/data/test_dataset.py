"""The data-set contract: every module behind the registry declares it; Dataset lives in a leaf module."""

from __future__ import annotations

import ast
import hashlib
import inspect

import numpy as np
import pytest

from vaelab.data import cifar10, dataset, dsprites, registry
from vaelab.data.dataset import DatasetModule
from tests.conftest import write_idx_pair


@pytest.mark.parametrize("name", sorted(registry.MADE_HERE))
def test_every_data_set_module_keeps_the_contract(name):
    module = registry.MADE_HERE[name]
    assert isinstance(module, DatasetModule)
    assert module.NAME == name and module.DESCRIPTION
    assert module.SIZES is None or (len(module.SIZES) == 2 and module.SIZES[0] < module.SIZES[1])
    assert isinstance(module.READS_FILES, bool)
    parameters = inspect.signature(module.load).parameters
    assert list(parameters)[:2] == ["seed", "holdout"]
    assert ("data_dir" in parameters and "download" in parameters) is module.READS_FILES
    assert ("size" in parameters) is (module.SIZES is not None)


def test_the_dataset_module_is_a_leaf():
    tree = ast.parse(inspect.getsource(dataset))
    imported = [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module]
    imported += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    assert not [name for name in imported if name.startswith("vaelab.data")]


def test_the_registry_reads_the_contract_not_probes_it():
    source = inspect.getsource(registry)
    assert "hasattr" not in source and "importlib" not in source


def test_class_names_come_from_each_set_s_own_module():
    assert registry.load_dataset("dsprites:200").class_names == list(dsprites.SHAPES)
    assert registry.load_dataset("digits").class_names == [str(k) for k in range(10)]
    assert cifar10.CLASS_NAMES[0] == "airplane" and len(cifar10.CLASS_NAMES) == 10
    fashion = registry.sources.REMOTE_DATASETS["fashion-mnist"]
    assert fashion.class_names[0] == "T-shirt" and len(fashion.class_names) == 10
    data = registry.load_dataset("dsprites:200")
    assert registry.transductive(data).class_names == data.class_names
    assert registry.transductive(data).splits_are_one and not data.splits_are_one  # k-NN leaves each code out


def _examples_digest(images, labels) -> str:
    """The content fingerprint written out: SHA-256 over the sorted, distinct digests of (image, label)."""
    digests = sorted({hashlib.sha256(np.ascontiguousarray(image).tobytes() + np.int64(label).tobytes()).digest()
                      for image, label in zip(images, labels)})
    head = hashlib.sha256(f"{(1, *images.shape[1:])}{images.dtype.str}".encode())
    for digest in digests:
        head.update(digest)
    return head.hexdigest()


def test_the_content_fingerprint_is_the_data_whatever_its_split_order_or_protocol(tmp_path):
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, size=(40, 28, 28)).astype(np.uint8), np.arange(40) % 4
    write_idx_pair(tmp_path / "one", "t10k", images, labels)  # a test split alone: held out by seed
    loads = [registry.load_dataset(f"idx:{tmp_path / 'one'}", seed=seed, protocol=protocol, download=False)
             for seed in (0, 3) for protocol in ("holdout", "transductive")]
    assert len({data.fingerprint for data in loads}) > 1  # the splits differ ...
    assert {data.content_fingerprint for data in loads} == {_examples_digest(images, labels)}  # ... the data not
    assert loads[0].summary()["content"] == loads[0].content_fingerprint
    shuffled = rng.permutation(40)
    write_idx_pair(tmp_path / "shuffled", "t10k", images[shuffled], labels[shuffled])
    assert registry.load_dataset(f"idx:{tmp_path / 'shuffled'}", download=False).content_fingerprint == \
        loads[0].content_fingerprint
    relabelled = labels.copy()
    relabelled[0] = 3 - relabelled[0]
    write_idx_pair(tmp_path / "relabelled", "t10k", images, relabelled)
    assert registry.load_dataset(f"idx:{tmp_path / 'relabelled'}", download=False).content_fingerprint != \
        loads[0].content_fingerprint
