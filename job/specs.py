"""The model family as data: one ModelSpec per model, and nothing that imports Keras.

Families are TOML files (`job.family`); the seed's four models are the built-in one,
`job/seed_family.toml`. `job.training.model.build_model` turns a spec into layers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from job.errors import JobError

DEFAULT_EPOCHS = 10  # a family file's models without `epochs`: the seed trained Models 1-3 for 10
# the initializers a spec may name; `job.training.init.INITIALIZERS` holds how each one draws
INITIALIZER_NAMES = ("lecun_normal", "lecun_uniform", "he_normal", "he_uniform", "glorot_normal", "glorot_uniform")
LOSS_FUNCTION = "sparse categorical cross-entropy from logits (log-softmax), float32"  # every backend alike


@dataclass(frozen=True)
class LayerRow:
    """One row of a model's architecture table."""

    layer: str  # the layer's name
    units: int  # its width
    activation: str  # its activation
    params: int  # its parameters


@dataclass(frozen=True)
class ModelSpec:
    """One MLP of the family: hidden widths plus the protocol knobs the seed varied."""

    key: str  # what `--models` takes: "1".."4"
    name: str  # what tables and files show: "Model 1"
    hidden: tuple[int, ...]  # widths of the hidden layers
    epochs: int  # at most; early stopping may end it sooner
    activation: str = "selu"  # of the hidden layers (the seed's selu with lecun_normal: self-normalising)
    initializer: str = "lecun_normal"  # of the kernels, drawn with NumPy from the seed
    batch_size: int = 32  # rows per training step (the seed's 32; speed work must not change it)
    patience: int = 3  # epochs without improvement of `monitor` before early stopping
    monitor: str = "loss"  # what early stopping watches (the seed: training loss, not validation loss)
    optimizer: str = "adam"  # adam, adamw, sgd or rmsprop (the seed: Adam, Keras's defaults)
    learning_rate: float = 0.001  # the optimizer's step size (the seed: Adam's default)
    optimizer_args: tuple[tuple[str, float | bool], ...] = ()  # beyond the learning rate, e.g. momentum
    dropout: float = 0.0  # a Dropout layer after each hidden layer when above 0
    notes: str = field(default="", compare=False)  # the family file's notes

    @property
    def slug(self) -> str:
        """File-safe name used for `models/<slug>.keras`: letters, digits, `_` and `-`."""
        return slugify(self.name)

    def layer_count(self) -> int:
        """Layers as the seed counted them: the input (Flatten) layer, hidden, output."""
        return len(self.hidden) + 2

    def architecture(self, n_features: int = 784, n_classes: int = 10) -> list[LayerRow]:
        """Layer rows as the report shows them, with parameters computed without building the model."""
        rows = [LayerRow("input (min-max scale, clip 0..1)", n_features, "", 0)]
        fan_in = n_features
        for i, units in enumerate(self.hidden, start=1):
            rows.append(LayerRow(f"hidden {i}", units, self.activation, fan_in * units + units))
            fan_in = units
        rows.append(LayerRow("output", n_classes, "softmax", fan_in * n_classes + n_classes))
        return rows

    def param_count(self, n_features: int = 784, n_classes: int = 10) -> int:
        """Trainable parameters of the dense stack, computed without building it."""
        return sum(row.params for row in self.architecture(n_features, n_classes))


def slugify(name: str) -> str:
    """'Model 1' -> 'model_1'; anything but letters, digits, '_' and '-' becomes '_'."""
    return re.sub(r"[^a-z0-9_-]", "_", name.strip().lower())


class SpecError(JobError, ValueError):
    """A bad family file or a `--models` selection that names no model: one line, exit 2."""


def select_specs(selection: str | None, specs: tuple[ModelSpec, ...]) -> list[ModelSpec]:
    """Resolve `--models 1,3` or `--models "Model 1,wide"` (positions or names; None: all) in family order."""
    if selection is None or selection.strip() == "all":
        return list(specs)
    by_key = {s.key: s for s in specs} | {s.name: s for s in specs}
    wanted = [part.strip() for part in selection.split(",") if part.strip()]
    unknown = [w for w in wanted if w not in by_key]
    if unknown or not wanted:
        known = ",".join(s.key for s in specs)
        raise SpecError(
            f"--models {selection!r}: unknown model {', '.join(unknown) or '(none)'}; "
            f"choose positions {known} or names (see `job models`)"
        )
    chosen = {by_key[w].key for w in wanted}
    return [s for s in specs if s.key in chosen]
