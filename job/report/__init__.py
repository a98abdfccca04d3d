"""The HTML report, rendered from a run directory alone (never imports TensorFlow)."""
