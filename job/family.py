"""A model family as a TOML file: `[[model]]` tables of variants, validated without importing Keras.

    margin = 1.0                    # optional: the choice's margin in pp (job.stats.choice); --margin beats it
    splits = 3                      # optional: development splits per model (1..100); --splits beats it

    [defaults]                      # optional: any key below except name and hidden, for every model
    activation = "relu"

    [[model]]
    name = "wide"                   # required: tables and file names (models/<slug>.keras)
    hidden = [512, 256]             # required: hidden widths
    activation = "selu"             # ACTIVATIONS
    initializer = "lecun_normal"    # job.specs.INITIALIZER_NAMES (drawn with NumPy from the seed)
    dropout = 0.2                   # after each hidden layer, in [0, 1)
    epochs = 10
    batch_size = 32
    optimizer = { name = "adam", learning_rate = 0.001 }   # OPTIMIZERS and their arguments
    early_stopping = { monitor = "loss", patience = 3 }    # MONITORS
    notes = "free text"

Every problem is one `SpecError` line naming the file, the model (position and name), the key and
the fix. The seed's four models are the built-in family, `job/seed_family.toml`.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import re
import tomllib
import unicodedata  # Python 3.11+, which the project requires
from collections.abc import Iterable
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

from job.config import MAX_MARGIN_PP, MAX_SPLITS
from job.data.dataset import DataError
from job.data.files import open_regular, read_bounded
from job.specs import DEFAULT_EPOCHS, INITIALIZER_NAMES, ModelSpec, SpecError, slugify

BUILTIN = Path(__file__).with_name("seed_family.toml")
ACTIVATIONS = ("selu", "relu", "elu", "gelu", "tanh", "sigmoid", "silu", "softplus", "leaky_relu", "linear")
OPTIMIZERS: dict[str, tuple[str, ...]] = {  # name -> the arguments a family file may set
    "adam": ("learning_rate", "beta_1", "beta_2", "epsilon"),
    "adamw": ("learning_rate", "weight_decay", "beta_1", "beta_2", "epsilon"),
    "sgd": ("learning_rate", "momentum", "nesterov"),
    "rmsprop": ("learning_rate", "rho", "momentum", "epsilon"),
}
MONITORS = ("loss", "val_loss", "accuracy", "val_accuracy")  # the direction follows the metric
MODEL_KEYS = (
    "name",
    "hidden",
    "activation",
    "initializer",
    "dropout",
    "epochs",
    "batch_size",
    "optimizer",
    "early_stopping",
    "notes",
)
_SEED = {f.name: f.default for f in fields(ModelSpec) if f.default is not MISSING}  # the seed's protocol, once
DEFAULTS = {  # a family file's keys, defaulting to the seed's protocol as `ModelSpec` holds it
    "activation": _SEED["activation"],
    "initializer": _SEED["initializer"],
    "dropout": _SEED["dropout"],
    "epochs": DEFAULT_EPOCHS,
    "batch_size": _SEED["batch_size"],
    "optimizer": {"name": _SEED["optimizer"], "learning_rate": _SEED["learning_rate"]},
    "early_stopping": {"monitor": _SEED["monitor"], "patience": _SEED["patience"]},
    "notes": _SEED["notes"],
}
MAX_MODELS = 100
FLOAT32_TINY = 1.1754943508222875e-38  # the smallest normal float32: below it an optimizer value is lost
MAX_NAME = 64
MAX_LAYERS = 100  # hidden layers: 100 build and train in under a minute; 1,000 hit Keras's recursion limit
MAX_FAMILY_BYTES = 1 << 20  # 100 models take about 10 KB: anything near this is the wrong file
MAX_PARAMS = 1_000_000_000  # 4 GB of float32 weights before Adam's moments
ARG_RANGES = {  # optimizer argument -> (low, high, high included); the learning rate must be above 0
    "learning_rate": (0.0, 10.0, True),
    "beta_1": (0.0, 1.0, False),
    "beta_2": (0.0, 1.0, False),
    "rho": (0.0, 1.0, False),
    "momentum": (0.0, 1.0, False),
    "weight_decay": (0.0, 1.0, False),
    "epsilon": (0.0, 1.0, True),
}


@dataclass(frozen=True)
class Family:
    specs: tuple[ModelSpec, ...]
    source: str  # the path given, or "built-in"
    sha256: str
    text: str  # the file as read: copied into the run directory
    margin_pp: float | None = None  # the top-level `margin`; None: not set (the command line or the default)
    splits: int | None = None  # the top-level `splits`; None: not set (the command line or 1)


def load_family(path: str | Path | None) -> Family:
    """The family in `path` (None: the built-in seed family), every model validated."""
    file = Path(path) if path is not None else BUILTIN
    data = _read(file)
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")  # a BOM, as some editors on Windows save it
        raw = tomllib.loads(text)
    except UnicodeDecodeError:
        raise SpecError(f"{file}: not UTF-8 text; save the family file as UTF-8 TOML") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{file}: not valid TOML ({exc}); fix that line") from None
    except RecursionError:
        raise SpecError(f"{file}: arrays or tables nested too deeply; a family file is a few flat tables") from None
    specs = _specs(raw, str(file))
    source = str(path) if path is not None else "built-in"
    margin, splits = _margin(raw.get("margin"), str(file)), _splits(raw.get("splits"), str(file))
    return Family(specs, source, hashlib.sha256(data).hexdigest(), text, margin, splits)


def _read(file: Path) -> bytes:
    """Like the data readers: a regular file only (a FIFO would block, /dev/zero never end), and bounded."""
    try:
        with open_regular(file, fix="pass a TOML file to --spec-file") as fh:
            data = bytes(read_bounded(fh, MAX_FAMILY_BYTES + 1))
    except DataError as exc:
        raise SpecError(str(exc)) from None
    except OSError as exc:
        raise SpecError(f"{file}: cannot read it ({exc.strerror}); check --spec-file") from None
    if len(data) > MAX_FAMILY_BYTES:
        raise SpecError(
            f"{file}: larger than {MAX_FAMILY_BYTES // 2**20} MiB; a family file is a few small tables, "
            "check that --spec-file names the right file"
        )
    return data


def _margin(value: Any, where: str) -> float | None:
    if value is None:
        return None
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or not 0 <= value <= MAX_MARGIN_PP:
        raise SpecError(
            f"{where}: 'margin' is {value!r}; give the margin in percentage points, "
            f"a number from 0 to {MAX_MARGIN_PP:g} (e.g. margin = 1.0)"
        )
    return float(value)


TOP_KEYS = ("margin", "splits")  # the keys that sit at the top of a family file, before any table


def _splits(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_SPLITS:
        shown = str(value).lower() if isinstance(value, bool) else repr(value)  # as TOML spells it
        raise SpecError(
            f"{where}: 'splits' is {shown}; give the number of development splits, "
            f"a whole number from 1 to {MAX_SPLITS} (e.g. splits = 3)"
        )
    return value


def seed_specs() -> tuple[ModelSpec, ...]:
    """The seed notebook's four models, from the built-in family file."""
    return load_family(None).specs


def _specs(raw: dict, where: str) -> tuple[ModelSpec, ...]:
    _known_keys(raw, ("model", "defaults", *TOP_KEYS), where, "at the top level")
    defaults = raw.get("defaults", {})
    if not isinstance(defaults, dict):
        raise SpecError(f"{where}: [defaults] must be a table; write it as [defaults] with keys under it")
    for key in ("name", "hidden"):
        if key in defaults:
            raise SpecError(f"{where}: [defaults] sets '{key}', which each model must set itself; move it to [[model]]")
    for key in ("margin", "splits"):  # TOML puts a key written after [defaults] inside it
        if key in defaults:
            raise SpecError(f"{where}: '{key}' is inside [defaults]; move it to the top of the file, before any table")
    _known_keys(defaults, MODEL_KEYS, where, "in [defaults]")
    defaults = _as_tables(defaults)
    check_defaults(defaults, where)
    models = raw.get("model", [])
    if not isinstance(models, list) or not models:
        raise SpecError(f"{where}: no [[model]] tables; add at least one with a name and hidden widths")
    if len(models) > MAX_MODELS:
        raise SpecError(f"{where}: {len(models)} models; at most {MAX_MODELS} in one family")
    specs = [_spec(i, table, defaults, where) for i, table in enumerate(models, start=1)]
    check_params(specs, where)  # on MNIST's shape here; the pipeline checks again on the data's own
    _unique(specs, where)
    return tuple(specs)


def check_params(specs: Iterable[ModelSpec], where: str, features: int = 784, classes: int = 10) -> None:
    """Every model within MAX_PARAMS on `features` pixels and `classes` classes."""
    for spec in specs:
        params = spec.param_count(features, classes)
        if params > MAX_PARAMS:
            raise SpecError(
                f"{where}: model {spec.key} ({spec.name!r}) has {params:,} parameters on {features:,} pixels and "
                f"{classes:,} classes; at most {MAX_PARAMS:,}: use narrower or fewer hidden layers"
            )


def _known_keys(table: dict, allowed: tuple[str, ...], where: str, place: str) -> None:
    for key in table:
        if key not in allowed:
            near = difflib.get_close_matches(key, allowed, n=1)
            hint = f"did you mean '{near[0]}'?" if near else f"known keys: {', '.join(allowed)}"
            if key in TOP_KEYS and "model" not in allowed:  # TOML puts a key written after a table inside it
                hint = "it belongs at the top of the file: move it before the first table"
            raise SpecError(f"{where}: unknown key '{key}'{' ' + place if place else ''}; {hint}")


def _spec(position: int, table: Any, defaults: dict, where: str) -> ModelSpec:
    if not isinstance(table, dict):
        raise SpecError(f"{where}: model {position} is not a table; write it as [[model]] with keys under it")
    name = table.get("name")
    who = f"{where}: model {position}" + (f" ({name!r})" if isinstance(name, str) else "")
    _known_keys(table, MODEL_KEYS, who, "")
    merged = _merge(DEFAULTS, _merge(defaults, _as_tables(table)))
    check = _Checker(who)
    return ModelSpec(
        key=str(position), name=check.name(name), hidden=check.hidden(table.get("hidden")), **_settings(check, merged)
    )


def check_defaults(defaults: dict, where: str) -> None:
    """[defaults] checked on its own, so that a bad value there is blamed on [defaults], not on model 1."""
    merged = _merge(DEFAULTS, defaults)
    if "name" not in defaults.get("optimizer", {}):  # arguments for the models' own optimizers: checked there
        merged["optimizer"] = DEFAULTS["optimizer"]
    _settings(_Checker(f"{where}: [defaults]"), merged)


def _settings(check: _Checker, merged: dict) -> dict[str, Any]:
    """Every key but name and hidden, checked: the same for a model and for [defaults]."""
    optimizer, args, learning_rate = check.optimizer(merged["optimizer"])
    stopping = check.early_stopping(merged["early_stopping"])
    return dict(
        epochs=check.positive_int("epochs", merged["epochs"]),
        activation=check.choice("activation", merged["activation"], ACTIVATIONS),
        initializer=check.choice("initializer", merged["initializer"], INITIALIZER_NAMES),
        batch_size=check.positive_int("batch_size", merged["batch_size"]),
        patience=stopping[1],
        monitor=stopping[0],
        optimizer=optimizer,
        learning_rate=learning_rate,
        optimizer_args=args,
        dropout=check.dropout(merged["dropout"]),
        notes=check.text("notes", merged["notes"]),
    )


def _as_tables(table: dict) -> dict:
    """`optimizer = "sgd"` is short for `optimizer = { name = "sgd" }`."""
    if isinstance(table.get("optimizer"), str):
        return table | {"optimizer": {"name": table["optimizer"]}}
    return table


def _merge(base: dict, over: dict) -> dict:
    """`over` on top of `base`. The early_stopping table merges key by key, and so does the optimizer
    table unless the two name different optimizers (another optimizer's arguments would not fit it)."""
    out = dict(base)
    for key, value in over.items():
        below = out.get(key)
        if isinstance(value, dict) and isinstance(below, dict):
            names = [repr(t["name"]) for t in (value, below) if "name" in t]
            value = below | value if key != "optimizer" or len(set(names)) <= 1 else dict(value)
        out[key] = value
    return out


class _Checker:
    """Type and range checks for one model; every failure names the model and the key."""

    def __init__(self, who: str):
        self.who = who

    def fail(self, key: str, problem: str, fix: str) -> SpecError:
        return SpecError(f"{self.who}: '{key}' {problem}; {fix}")

    def name(self, name: Any) -> str:
        if not isinstance(name, str) or not name.strip():
            raise self.fail("name", "is missing or not text", 'give every model a name = "..."')
        if re.fullmatch(r"\s*\d+\s*", name) or "," in name:
            raise self.fail(
                "name",
                f"is {name!r}",
                "use a name that is not a bare number and has no comma "
                "(--models takes positions and names, comma-separated)",
            )
        printable = all(c == " " or unicodedata.category(c)[0] not in "CZ" for c in name)
        slug = slugify(name)
        if len(name) > MAX_NAME or not printable or not re.search(r"[a-z0-9]", slug):
            fix = "use letters, digits, spaces, '_' or '-', with at least one ASCII letter or digit, "
            fix += f"at most {MAX_NAME}"
            raise self.fail("name", f"is {name!r}", fix)
        if not re.match(r"[a-z0-9]", slug):  # TensorFlow's name scopes, and file names that sort and glob plainly
            raise self.fail(
                "name", f"is {name!r}, saved as models/{slug}.keras", "start the name with a letter a-z or a digit"
            )
        if re.search(r"[-_]seed\d+([-_]split\d+)?$", slug):  # models/<slug>-seed<n>[-split<k>].keras, columns
            fix = "rename it: <name>-seed<n>[-split<k>].keras files and <name>_seed<n>_* columns are the repeats'"
            raise self.fail("name", f"is {name!r}, which ends like a repeat's seed suffix", fix)
        if name.strip().lower() == "all":
            raise self.fail("name", "is 'all'", "choose another name: --models all means every model")
        return unicodedata.normalize("NFC", name.strip())

    def hidden(self, hidden: Any) -> tuple[int, ...]:
        if not isinstance(hidden, list) or not hidden:
            raise self.fail("hidden", "is missing or empty", "give the hidden widths, e.g. hidden = [128, 64]")
        if len(hidden) > MAX_LAYERS:
            raise self.fail("hidden", f"has {len(hidden)} layers", f"use at most {MAX_LAYERS}")
        if not all(isinstance(w, int) and not isinstance(w, bool) and 0 < w <= 100_000 for w in hidden):
            raise self.fail("hidden", f"is {hidden}", "use whole numbers from 1 to 100,000")
        return tuple(hidden)

    def positive_int(self, key: str, value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= 1_000_000:
            raise self.fail(key, f"is {value!r}", "use a whole number above 0")
        return value

    def choice(self, key: str, value: Any, allowed: tuple[str, ...]) -> str:
        if value not in allowed:
            near = difflib.get_close_matches(str(value), allowed, n=1)
            hint = f"did you mean '{near[0]}'? " if near else ""
            raise self.fail(key, f"is {value!r}", f"{hint}choose one of {', '.join(allowed)}")
        return value

    def dropout(self, value: Any) -> float:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < 1:
            raise self.fail("dropout", f"is {value!r}", "use a rate in [0, 1), e.g. 0.2")
        return float(value)

    def text(self, key: str, value: Any) -> str:
        if not isinstance(value, str):
            raise self.fail(key, f"is {type(value).__name__}", "write it as a quoted string")
        return value

    def optimizer(self, table: Any) -> tuple[str, tuple[tuple[str, float | bool], ...], float]:
        if isinstance(table, str):
            table = {"name": table}
        if not isinstance(table, dict):
            fix = 'write optimizer = { name = "adam", learning_rate = 0.001 }'
            raise self.fail("optimizer", "is not a table", fix)
        name = self.choice("optimizer.name", table.get("name", _SEED["optimizer"]), tuple(OPTIMIZERS))
        args = {k: v for k, v in table.items() if k != "name"}
        _known_keys(args, OPTIMIZERS[name], self.who, f"in optimizer '{name}'")
        for key, value in args.items():
            if key == "nesterov":
                if not isinstance(value, bool):
                    raise self.fail("optimizer.nesterov", f"is {value!r}", "use true or false")
            elif not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise self.fail(f"optimizer.{key}", f"is {value!r}", "use a number")
            else:
                low, high, closed = ARG_RANGES[key]
                inside = low <= value and (value <= high if closed else value < high)
                if not inside or (key in ("learning_rate", "epsilon") and value == 0):
                    bound = f"({low:g}, {high:g}]" if key in ("learning_rate", "epsilon") else f"[{low:g}, {high:g})"
                    raise self.fail(f"optimizer.{key}", f"is {value}", f"use a number in {bound}")
                if key in ("learning_rate", "epsilon") and value < FLOAT32_TINY:  # 0 in float32: NaN or no step
                    raise self.fail(
                        f"optimizer.{key}",
                        f"is {value:g}, which is 0 in float32, the precision it trains in",
                        f"use at least {FLOAT32_TINY:.2g}",
                    )
        learning_rate = float(args.pop("learning_rate", _SEED["learning_rate"]))
        return name, tuple(sorted((k, v if isinstance(v, bool) else float(v)) for k, v in args.items())), learning_rate

    def early_stopping(self, table: Any) -> tuple[str, int]:
        if not isinstance(table, dict):
            fix = 'write early_stopping = { monitor = "loss", patience = 3 }'
            raise self.fail("early_stopping", "is not a table", fix)
        _known_keys(table, ("monitor", "patience"), self.who, "in early_stopping")
        monitor = self.choice("early_stopping.monitor", table.get("monitor", _SEED["monitor"]), MONITORS)
        return monitor, self.positive_int("early_stopping.patience", table.get("patience", _SEED["patience"]))


def _unique(specs: list[ModelSpec], where: str) -> None:
    seen: dict[str, ModelSpec] = {}
    for spec in specs:
        if spec.name in (s.name for s in seen.values()):
            raise SpecError(
                f"{where}: two models are named {spec.name!r} (models {_pos(seen, spec.name)} and "
                f"{spec.key}); give each model its own name"
            )
        if spec.slug in seen:
            other = seen[spec.slug]
            raise SpecError(
                f"{where}: models {other.key} ({other.name!r}) and {spec.key} ({spec.name!r}) would both be saved "
                f"as models/{spec.slug}.keras; rename one"
            )
        seen[spec.slug] = spec


def _pos(seen: dict[str, ModelSpec], name: str) -> str:
    return next(s.key for s in seen.values() if s.name == name)
