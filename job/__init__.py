"""Train a family of Keras models as a batch job, compare them honestly, and report."""

__version__ = "0.2.0"
