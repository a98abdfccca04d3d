"""Load a digit dataset from any supported source, validate it, and split it.

Modules: `load` (the entry point and the table of readers), one reader module per family
(`tabular` for CSV/Parquet/pickle, `npz`, `idx`, `builtin`), `validate` (the one validator every
reader goes through), `files` (regular files only, bounded reads, hashes), `dataset` (the records)
and `split` (stratified, seeded splits).
"""

from job.data.builtin import BUILTIN_SOURCES, DEFAULT_SOURCE, mnist5k_path
from job.data.dataset import DataError, Dataset
from job.data.idx import read_idx
from job.data.load import load_dataset
from job.data.split import (
    MIN_ROWS_PER_CLASS,
    SPLIT_FRACTIONS,
    Split,
    duplicates_across,
    stratified_sample,
    stratified_split,
)

__all__ = [
    "BUILTIN_SOURCES",
    "DEFAULT_SOURCE",
    "MIN_ROWS_PER_CLASS",
    "SPLIT_FRACTIONS",
    "DataError",
    "Dataset",
    "Split",
    "duplicates_across",
    "load_dataset",
    "mnist5k_path",
    "read_idx",
    "stratified_sample",
    "stratified_split",
]
