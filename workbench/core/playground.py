"""The playground's settings, its 2-D data sets, its network spec and its guided scenarios: torch-free.

The URL is the playground's state: every setting, the seed and the epoch live in the query string, so a link
reproduces a run (training is deterministic, workbench/train/playground.py). ``parse_query`` turns any query
string into valid settings, replacing each bad value by its default with a note the page shows; ``to_query``
writes them back, and ``parse_query(to_query(s)) == s``. Here, not in the train room, so that a link can be read,
checked and rewritten without loading torch. docs/PLAYGROUND.md lists the parameters.
"""

from __future__ import annotations

import dataclasses
import math
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from workbench.core.spec import SCALINGS, float_twin, validate_spec

DATASETS = ("circle", "xor", "gaussian", "spiral", "moons")
QUANTIZER_CHOICES = ("ste_sign", "approx_sign", "soft_sign")
OPTIMIZERS = ("adam", "bop")
ACTIVATION_CHOICES = ("hardtanh", "tanh", "relu")
MAX_LAYERS = 6
MAX_UNITS = 16
MAX_EPOCH = 3000  # a link's epoch is replayed on opening: a few seconds at most
GRID = 60  # decision-boundary grid: GRID x GRID points over [-EXTENT, EXTENT]^2
EXTENT = 1.3
SOFT_TEMPERATURES = (1.0, 0.01)  # soft_sign: tanh(x / T), T from the first to the second over `anneal` epochs
SECTIONS = ("scenarios", "link", "diagram", "curves", "stats", "compare")  # parts of the page `hide=` can hide too


@dataclass(frozen=True)
class Settings:
    """One playground run: data, network, training, and how many epochs it has trained (``epoch``)."""

    dataset: str = "circle"
    noise: int = 10  # percent
    points: int = 500
    train: int = 50  # percent of the points that train; the rest test
    seed: int = 1
    layers: tuple[int, ...] = (8, 8)
    bw: tuple[bool, ...] = (True, True)  # binary weights, per hidden layer
    ba: tuple[bool, ...] = (True, True)  # binary activations (the sign of the layer's output), per hidden layer
    scaling: tuple[str, ...] = ("none", "none")  # scaling factor of the binary weights, per hidden layer
    quantizer: str = "ste_sign"
    clip: bool = True  # clip latent weights to [-bound, bound] after each step
    bound: float = 1.0
    optimizer: str = "adam"
    lr: float = 0.01
    batch: int = 16
    bop_threshold: float = 1e-6
    bop_gamma: float = 1e-3
    anneal: int = 100  # soft_sign: epochs over which T falls from 1 to 0.01
    bn: bool = True  # batch norm after each hidden dense layer (folds into the sign's threshold at export)
    activation: str = "hardtanh"  # of hidden layers whose activations are not binary
    epoch: int = 0

    def run_key(self) -> tuple:
        """Everything that defines the run except how far it has trained: the same key, the same run."""
        return dataclasses.astuple(dataclasses.replace(self, epoch=0))


# ---------------------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    query: str  # a query string: the scenario is just a link
    watch: str  # what to look at, two sentences


SCENARIOS = (
    Scenario(
        "staircase",
        "Staircase",
        "dataset=moons&layers=4,4&quantizer=approx_sign",
        "With 1-bit weights a first-layer neuron sees x + y or x - y: it can only cut at 45 degrees, so the "
        "BNN's boundary is a coarse staircase of a few such cuts and stalls near 80% here, while the float twin "
        "bends around the moons. Open 'Widened' next.",
    ),
    Scenario(
        "widened",
        "Widened",
        "dataset=moons&layers=16,16&quantizer=approx_sign",
        "Sixteen neurons per layer instead of four: many more 45-degree cuts to combine, and the binary "
        "network's staircase now follows the moons (100% test accuracy here within 100 epochs). Its parameters "
        "take a fraction of the float twin's bits, shown under the boundaries.",
    ),
    Scenario(
        "real-first-layer",
        "Real first layer",
        "dataset=spiral&layers=16,16&bw=0,1&quantizer=approx_sign",
        "On a spiral an all-binary network stays near chance: 45-degree cuts cannot follow the arms. Keep the "
        "first layer's weights real, as BinaryNet and Larq do: its neurons cut at any angle and the binary "
        "layer behind them combines those cuts (80 to 90% here).",
    ),
    Scenario(
        "no-clip",
        "No clipping",
        "dataset=moons&layers=16,16&clip=0&lr=0.05",
        "Without clipping Adam pushes latent weights past |w| = 1, where the straight-through gradient is "
        "zero: watch 'at the clip bound' climb past 90% and the flips die out, the BNN freezes (here after it "
        "has fit the moons). Turn clipping on: the share stays near 10% and the weights keep flipping.",
    ),
    Scenario(
        "soft-to-hard",
        "Soft-to-hard",
        "dataset=moons&layers=16,16&quantizer=soft_sign&anneal=100",
        "Training uses tanh(x / T) for every sign, T falling from 1 to 0.01 over 100 epochs, so the BNN "
        "first trains like a smooth network. Its boundary is drawn as deployed, with the hard sign: coarse at "
        "first, it snaps onto the moons as T approaches 0 (about 98% by epoch 60 here).",
    ),
    Scenario(
        "bop",
        "Bop",
        "dataset=moons&layers=16,16&optimizer=bop&bop_threshold=1e-05&bop_gamma=0.001",
        "Bop keeps no latent weights, only a gradient momentum per bit, and flips a weight when the momentum "
        "is stronger than the threshold and points against its sign: every link has one width and 'at the clip "
        "bound' is empty. The flips are the learning: tens per epoch even late on, with no latent weight to "
        "soak up a small gradient; raise bop_threshold and fewer bits flip.",
    ),
    Scenario(
        "activations",
        "Binary activations only",
        "dataset=circle&layers=6&bw=0&ba=1",
        "Real weights, binary activations: each neuron is a half-plane at any angle and passes on only which "
        "side a point lies, so six neurons cut a hexagon around the circle. Compare 'Staircase', where the "
        "binary weights fix the angles.",
    ),
)


def scenario(name: str) -> Scenario:
    for item in SCENARIOS:
        if item.name == name:
            return item
    raise KeyError(f"unknown playground scenario {name!r}, expected one of {', '.join(s.name for s in SCENARIOS)}")


@dataclass(frozen=True)
class View:
    """How the page shows a run; none of it changes what trains."""

    play: bool = False
    speed: int = 2  # epochs per frame while playing
    lecture: bool = False
    hide: tuple[str, ...] = ()
    scenario: str = ""  # the guided scenario the run came from: the page shows what to watch


@dataclass(frozen=True)
class _Field:
    kind: str  # "choice", "int", "float", "bool", "units", "bools", "choices"
    low: float | None = None
    high: float | None = None
    options: tuple = ()
    advanced: bool = False


# The query parameters, in the order links write them. Per-layer lists are comma-separated ("8,8", "1,0").
FIELDS: dict[str, _Field] = {
    "dataset": _Field("choice", options=DATASETS),
    "noise": _Field("int", 0, 50),
    "points": _Field("int", 50, 1000, advanced=True),
    "train": _Field("int", 10, 90, advanced=True),
    "seed": _Field("int", 0, 999_999, advanced=True),
    "layers": _Field("units", 1, MAX_UNITS),
    "bw": _Field("bools"),
    "ba": _Field("bools"),
    "scaling": _Field("choices", options=SCALINGS, advanced=True),
    "quantizer": _Field("choice", options=QUANTIZER_CHOICES),
    "clip": _Field("bool"),
    "bound": _Field("float", 0.05, 10.0, advanced=True),
    "optimizer": _Field("choice", options=OPTIMIZERS),
    "lr": _Field("float", 1e-5, 1.0),
    "batch": _Field("int", 1, 1000, advanced=True),
    "bop_threshold": _Field("float", 0.0, 1.0, advanced=True),
    "bop_gamma": _Field("float", 1e-6, 1.0, advanced=True),
    "anneal": _Field("int", 1, MAX_EPOCH, advanced=True),
    "bn": _Field("bool", advanced=True),
    "activation": _Field("choice", options=ACTIVATION_CHOICES, advanced=True),
    "epoch": _Field("int", 0, MAX_EPOCH),
}
VIEW_FIELDS: dict[str, _Field] = {
    "play": _Field("bool"),
    "speed": _Field("int", 1, 20),
    "lecture": _Field("bool"),
    "hide": _Field("names"),
    "scenario": _Field("choice", options=tuple(item.name for item in SCENARIOS)),
}
PER_LAYER = ("bw", "ba", "scaling")
HIDEABLE = tuple(name for name in FIELDS if name != "epoch") + ("play", "speed") + SECTIONS
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


class _Bad(ValueError):
    """A query value that does not parse; its text says what was expected."""


def _expected(field: _Field) -> str:
    if field.kind in ("choice", "choices"):
        return "one of " + ", ".join(field.options)
    if field.kind == "int":
        return f"an integer from {field.low:g} to {field.high:g}"
    if field.kind == "float":
        return f"a number from {field.low:g} to {field.high:g}"
    if field.kind == "bool":
        return "1 or 0"
    if field.kind == "units":
        return f"1 to {MAX_LAYERS} layer widths from 1 to {MAX_UNITS}, comma-separated"
    if field.kind == "bools":
        return "1 or 0 per hidden layer, comma-separated"
    return "names from " + ", ".join(HIDEABLE)


def _one(field: _Field, text: str):
    """One scalar value of a field from its text; raises _Bad."""
    text = text.strip()
    if field.kind in ("choice", "choices"):
        if text.lower() not in field.options:
            raise _Bad
        return text.lower()
    if field.kind == "bool" or field.kind == "bools":
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise _Bad
    if field.kind in ("int", "units"):
        try:
            value = int(text)
        except ValueError:
            raise _Bad from None
    else:
        try:
            value = float(text)
        except ValueError:
            raise _Bad from None
        if not math.isfinite(value):
            raise _Bad
    if not field.low <= value <= field.high:
        raise _Bad
    return value


def _value(name: str, field: _Field, text: str):
    """A field's value from its query text; raises _Bad."""
    if field.kind in ("units", "bools", "choices", "names"):
        parts = [part for part in text.split(",") if part.strip()]
        if field.kind == "names":
            bad = [p for p in parts if p.strip() not in HIDEABLE]
            if bad:
                raise _Bad(", ".join(bad))
            return tuple(dict.fromkeys(p.strip() for p in parts))
        if not parts or len(parts) > MAX_LAYERS:
            raise _Bad
        return tuple(_one(field, part) for part in parts)
    return _one(field, text)


def _last(value) -> str:
    """st.query_params.to_dict() gives strings; a raw parse_qs gives lists: the last value counts."""
    if isinstance(value, (list, tuple)):
        return str(value[-1]) if value else ""
    return str(value)


def _fit(values: tuple, count: int, default) -> tuple:
    """A per-layer list fitted to ``count`` layers: one value stands for all; a short list repeats its last."""
    values = values or (default,)
    return tuple(values[i] if i < len(values) else values[-1] for i in range(count))


def parse_query(query: Mapping[str, object]) -> tuple[Settings, View, list[str]]:
    """Settings and view from a query string's parameters; each bad or unknown one becomes a note."""
    notes, settings, view = [], {}, {}
    for name, text in query.items():
        field = FIELDS.get(name) or VIEW_FIELDS.get(name)
        if field is None:
            notes.append(f"`{name}` is not a playground parameter; ignored.")
            continue
        text = _last(text)
        try:
            value = _value(name, field, text)
        except _Bad as bad:
            detail = f" ({bad} unknown)" if str(bad) else ""
            default = getattr(Settings, name, getattr(View, name, None))
            shown = ",".join(_text(v) for v in default) if isinstance(default, tuple) else _text(default)
            notes.append(f"`{name}={text}` is not valid{detail}: expected {_expected(field)}; using {shown or 'none'}.")
            continue
        (settings if name in FIELDS else view)[name] = value
    count = len(settings.get("layers", Settings.layers))
    defaults = Settings()
    for name in PER_LAYER:
        given = settings.get(name)
        if given is not None and len(given) not in (1, count):
            notes.append(
                f"`{name}` has {len(given)} values for {count} hidden layers; "
                f"{'the last one repeats' if len(given) < count else 'the extra ones are ignored'}."
            )
        settings[name] = _fit(given or (), count, getattr(defaults, name)[0])
    return Settings(**settings), View(**view), notes


def _text(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def to_query(settings: Settings, view: View = View()) -> dict[str, str]:
    """Every setting (defaults too: a link says all it means), then the view options that differ from default."""
    out = {}
    for name in FIELDS:
        value = getattr(settings, name)
        out[name] = ",".join(_text(v) for v in value) if isinstance(value, tuple) else _text(value)
    for name in VIEW_FIELDS:
        value = getattr(view, name)
        if value != getattr(View, name):
            out[name] = ",".join(value) if isinstance(value, tuple) else _text(value)
    return out


def query_string(settings: Settings, view: View = View()) -> str:
    """The query string of a link (commas left readable)."""
    return urllib.parse.urlencode(to_query(settings, view), safe=",")


def parse_query_string(text: str) -> tuple[Settings, View, list[str]]:
    """parse_query of a query string ("dataset=xor&layers=4" or "?dataset=xor...")."""
    return parse_query(urllib.parse.parse_qs(text.lstrip("?"), keep_blank_values=True))


def with_layers(settings: Settings, layers: tuple[int, ...]) -> Settings:
    """The settings with other hidden layers, per-layer lists fitted to them (new layers copy the last)."""
    count = len(layers)
    return dataclasses.replace(
        settings,
        layers=tuple(layers),
        bw=_fit(settings.bw, count, True),
        ba=_fit(settings.ba, count, True),
        scaling=_fit(settings.scaling, count, "none"),
    )


# ---------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Points:
    """A 2-D data set, float32 points in about [-1, 1]^2, labels 0/1, split into train and test."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def _circle(n, noise, rng):
    radius = np.where(np.arange(n) % 2 == 0, rng.uniform(0.0, 0.5, n), rng.uniform(0.7, 1.0, n))
    angle = rng.uniform(0, 2 * np.pi, n)
    x = radius[:, None] * np.c_[np.sin(angle), np.cos(angle)]
    return x + rng.uniform(-1, 1, (n, 2)) * noise, (radius < 0.5).astype(np.int64)


def _xor(n, noise, rng):
    x = rng.uniform(-1, 1, (n, 2))
    x += np.sign(x) * 0.05  # a small gap along the axes, as TensorFlow Playground's
    return x + rng.uniform(-1, 1, (n, 2)) * noise, (x[:, 0] * x[:, 1] >= 0).astype(np.int64)


def _gaussian(n, noise, rng):
    y = (np.arange(n) % 2).astype(np.int64)
    centre = np.where(y[:, None] == 1, 0.4, -0.4)
    return centre + rng.normal(0, 0.1 + 0.6 * noise, (n, 2)), y


def _spiral(n, noise, rng):
    y = (np.arange(n) % 2).astype(np.int64)
    r = rng.uniform(0.05, 1.0, n)
    t = 1.25 * 2 * np.pi * r + np.pi * y
    return r[:, None] * np.c_[np.sin(t), np.cos(t)] + rng.uniform(-1, 1, (n, 2)) * noise, y


def _moons(n, noise, rng):
    y = (np.arange(n) % 2).astype(np.int64)
    t = rng.uniform(0, np.pi, n)
    x = np.where(y[:, None] == 0, np.c_[np.cos(t), np.sin(t)], np.c_[1 - np.cos(t), 0.5 - np.sin(t)])
    return (x - [0.5, 0.25]) * 0.65 + rng.normal(0, 0.5 * noise, (n, 2)), y


_MAKERS = {"circle": _circle, "xor": _xor, "gaussian": _gaussian, "spiral": _spiral, "moons": _moons}


def make_points(settings: Settings) -> Points:
    """The seeded data set of the settings: the same seed, the same points (noise is a share of the extent)."""
    rng = np.random.default_rng([settings.seed, DATASETS.index(settings.dataset)])
    x, y = _MAKERS[settings.dataset](settings.points, settings.noise / 100.0, rng)
    order = rng.permutation(settings.points)
    x, y = x[order].astype(np.float32), y[order]
    n_train = min(max(round(settings.points * settings.train / 100), 1), settings.points - 1)
    return Points(x[:n_train], y[:n_train], x[n_train:], y[n_train:])


def grid_axis() -> np.ndarray:
    """The GRID coordinates along each axis of the decision-boundary grid."""
    return np.linspace(-EXTENT, EXTENT, GRID, dtype=np.float32)


def grid_points() -> np.ndarray:
    """(GRID * GRID, 2) points, row-major with y as the row: reshape outputs to (GRID, GRID) for a heatmap."""
    xs = grid_axis()
    gx, gy = np.meshgrid(xs, xs)
    return np.c_[gx.ravel(), gy.ravel()].astype(np.float32)


# ---------------------------------------------------------------------------------------- network


def _quantizer(settings: Settings) -> dict:
    if settings.quantizer == "soft_sign":
        return {"name": "soft_sign", "temperature": SOFT_TEMPERATURES[0]}
    return {"name": settings.quantizer}


def network_spec(settings: Settings) -> dict:
    """The BNN of the settings as a network spec: 2 inputs, the hidden layers, 2 logits (a float output layer).

    Hidden layer i: dense (binary weights if bw[i]; its input is binarized when the layer before has binary
    activations), batch norm (if bn), then the float activation unless ba[i]: a binary activation is the next
    layer's input quantizer. Without batch norm the dense layers keep a bias, the sign's threshold.
    """
    q, layers, binary_input = _quantizer(settings), [], False
    for units, bw, ba, scaling in zip(settings.layers, settings.bw, settings.ba, settings.scaling, strict=True):
        layers.append(
            {
                "type": "dense",
                "units": units,
                "input_quantizer": q if binary_input else None,
                "kernel_quantizer": q if bw else None,
                "scaling": scaling if bw else "none",
                "use_bias": not settings.bn,
            }
        )
        if settings.bn:
            layers.append({"type": "batch_norm"})
        if not ba:
            layers.append({"type": "activation", "fn": settings.activation})
        binary_input = ba
    layers.append(
        {
            "type": "dense",
            "units": 2,
            "input_quantizer": q if binary_input else None,
            "kernel_quantizer": None,
            "use_bias": True,
        }
    )
    return validate_spec({"name": "playground", "input_shape": [2], "num_classes": 2, "layers": layers})


def network_specs(settings: Settings) -> tuple[dict, dict]:
    """(BNN, float twin): one network, the twin by the library's float_twin (each sign becomes a hardtanh)."""
    bnn = network_spec(settings)
    return bnn, float_twin(bnn)


def soft_temperature(settings: Settings, epoch: float) -> float:
    """soft_sign's T at a (fractional) epoch: geometric from 1 to 0.01 over ``anneal`` epochs, then 0.01."""
    start, end = SOFT_TEMPERATURES
    return start * (end / start) ** min(epoch / settings.anneal, 1.0)
