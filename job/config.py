"""RunConfig: every knob of a run, one field per CLI option."""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass, fields


@dataclass
class RunConfig:
    data: str | None = None  # None: the embedded 5,000 MNIST digits
    models: str | None = None  # "1,3"; None: all four
    epochs: int | None = None  # override every spec's epochs (smoke runs)
    sample: int | None = None  # stratified subsample of N rows (smoke runs)
    seed: int = 42
    precision: str = "auto"
    backend: str | None = None  # None: KERAS_BACKEND, else tensorflow
    out: str = "reports"
    image_shape: str | None = None
    label_column: str = "label"
    allow_pickle: bool = False
    steps_per_execution: int = 32
    deterministic: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> RunConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})

    def command_line(self, backend: str) -> str:
        """The command that reproduces this run (same data, seed, models and policy)."""
        parts = ["job", "run"]
        if self.data:
            parts += ["--data", self.data]
        parts += ["--seed", str(self.seed), "--precision", self.precision, "--backend", backend]
        if self.models:
            parts += ["--models", self.models]
        if self.epochs is not None:
            parts += ["--epochs", str(self.epochs)]
        if self.sample is not None:
            parts += ["--sample", str(self.sample)]
        if self.image_shape:
            parts += ["--image-shape", self.image_shape]
        if self.label_column != "label":
            parts += ["--label-column", self.label_column]
        if self.allow_pickle:
            parts.append("--allow-pickle")
        if self.steps_per_execution != RunConfig.steps_per_execution:
            parts += ["--steps-per-execution", str(self.steps_per_execution)]
        if not self.deterministic:
            parts.append("--no-deterministic")
        return shlex.join(parts)
