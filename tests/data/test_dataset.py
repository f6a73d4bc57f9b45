"""The data-set contract: every module behind the registry declares it; Dataset lives in a leaf module."""

from __future__ import annotations

import ast
import inspect

import pytest

from vaelab.data import cifar10, dataset, dsprites, registry
from vaelab.data.dataset import DatasetModule


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
