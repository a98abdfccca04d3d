"""Load a digit dataset from any supported source, validate it, and split it.

Modules: `load` (the entry point and the table of readers), one reader module per family
(`tabular` for CSV/Parquet/pickle, `npz`, `idx`, `builtin`), `validate` (the one validator every
reader goes through), `files` (regular files only, bounded reads, hashes), `dataset` (the records)
and `split` (stratified, seeded splits).
"""
