"""Network and training specs: validation, normalisation and shape inference, in pure Python.

The spec is the one description of a network (docs/SPEC.md). It is validated once, here, so that
every other module can read the normalised form without re-checking: every layer carries every
field, defaults filled in, and each quantizer is ``None`` or ``{"name": ..., **all its params}``.
No torch import: the CLI and the Design page can validate without loading torch.
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import re

from workbench.core import limits

# QUANTIZERS stays importable from here, next to the helpers that read it (is_sign_quantizer, quantizer_bits).
from workbench.core.quantizer_catalog import QUANTIZERS
from workbench.core.shapes import conv_output_size, padding_pair, pool_output_size


class SpecError(ValueError):
    """A spec mistake, named by layer (index and type) and field, with what was expected and what came."""

    def __init__(
        self,
        message: str,
        *,
        layer_index: int | None = None,
        layer_type: str | None = None,
        field: str | None = None,
        path: str | None = None,
    ):
        super().__init__(message)
        self.layer_index = layer_index
        self.layer_type = layer_type
        self.field = field
        self.path = path


LAYER_TYPES = ("dense", "conv2d", "max_pool", "avg_pool", "batch_norm", "flatten", "dropout", "activation", "shortcut")
ACTIVATIONS = ("relu", "hardtanh", "tanh", "prelu", "identity")
SCALINGS = ("none", "xnor", "learnable")

MAX_NESTING = 32  # shortcut blocks inside shortcut blocks: deeper is a mistake (and Python's recursion limit)
_REQUIRED = object()  # a field without a default
_AUTO = object()  # a default that depends on other fields

_QUANT_FIELDS = {"input_quantizer": None, "kernel_quantizer": None, "scaling": "none", "use_bias": _AUTO}
LAYER_FIELDS: dict[str, dict] = {
    "dense": {"units": _REQUIRED, **_QUANT_FIELDS},
    "conv2d": {"filters": _REQUIRED, "kernel_size": 3, "stride": 1, "padding": "same", **_QUANT_FIELDS},
    "max_pool": {"pool_size": 2, "stride": _AUTO},
    "avg_pool": {"pool_size": 2, "stride": _AUTO},
    "batch_norm": {"momentum": 0.1, "eps": 1e-5, "affine": True},
    "flatten": {},
    "dropout": {"rate": 0.2},
    "activation": {"fn": _REQUIRED},
    "shortcut": {"layers": _REQUIRED},
}
_NETWORK_FIELDS = ("name", "description", "input_shape", "num_classes", "layers")


class _Bad(Exception):
    """Internal: a value check failed; carries 'what was expected' for the caller to place."""


def _show(value) -> str:
    """A value as the user wrote it (JSON where possible)."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _bound(value) -> str:
    """A bound as messages show it: 1000000.0 -> "1,000,000", 0.5 -> "0.5"."""
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


def _positive_int(value, high=None):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0 or (high is not None and value > high):
        raise _Bad("a positive integer" + (f" at most {_bound(high)}" if high is not None else ""))
    return value


def _count_up_to(high):
    return lambda value: _positive_int(value, high)


def _number(value, *, low=None, high=None, low_open=False, high_open=False, what="a number"):
    """A finite int or float within the bounds (inf, NaN and ints beyond float range are never numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Bad(what)
    try:
        if not math.isfinite(value):
            raise _Bad(what)
    except OverflowError:  # an int too large for a float
        raise _Bad(what) from None
    if low is not None and (value < low or (low_open and value == low)):
        raise _Bad(what)
    if high is not None and (value > high or (high_open and value == high)):
        raise _Bad(what)
    return float(value)


def _positive_up_to(high):
    return lambda value: _number(
        value, low=0.0, low_open=True, high=high, what=f"a positive number at most {_bound(high)}"
    )


def _bool(value):
    if not isinstance(value, bool):
        raise _Bad("true or false")
    return value


def _or_none(check):
    """Accept None as 'not set' (the normalised form fills unset alternatives with None)."""
    return lambda value: None if value is None else check(value)


def _choice(options):
    def check(value):
        if value not in options:
            raise _Bad("one of " + ", ".join(repr(o) for o in options))
        return value

    return check


_QMAX = limits.QUANTIZER_PARAM_MAX
_PARAM_CHECKS = {
    "clip": _positive_up_to(_QMAX["clip"]),
    "beta": _positive_up_to(_QMAX["beta"]),
    "temperature": _positive_up_to(_QMAX["temperature"]),
    "threshold": lambda v: _number(
        v, low=0.0, high=_QMAX["threshold"], what=f"a number from 0 to {_bound(_QMAX['threshold'])}"
    ),
    "bits": lambda v: _check_bits(v),
    "ternary_weight_networks": lambda v: _bool(v),
}


def _check_bits(value):
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 8:
        raise _Bad("an integer from 1 to 8")
    return value


def _did_you_mean(word, options) -> str:
    close = difflib.get_close_matches(str(word), list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def normalize_quantizer(q, role: str | None = None) -> dict | None:
    """None, a name, or {"name": ..., params} -> None or {"name": ..., **every param}; raises _Bad.

    ``role`` is "kernel" or "input" where the spec says which (a layer's kernel_quantizer or input_quantizer):
    a kernel takes the catalogue's kernel defaults (dorefa's mode "weights"), an input may not use the
    kernel-only values. Without a role the plain defaults fill in and nothing is refused.
    """
    if q is None:
        return None
    if isinstance(q, str):
        q = {"name": q}
    if not isinstance(q, dict) or not isinstance(q.get("name"), str):
        raise _Bad("null, a quantizer name or an object with a 'name'")
    info = QUANTIZERS.get(q["name"])
    if info is None:
        raise _Bad("a known quantizer (" + ", ".join(QUANTIZERS) + ")" + _did_you_mean(q["name"], QUANTIZERS))
    if role is not None and info.role not in ("any", role):
        raise _Bad(f"a quantizer for {role}s; {info.name} quantizes {info.role}s only")
    out = {"name": info.name, **info.defaults(role)}
    for key, value in q.items():
        if key == "name":
            continue
        if key not in info.params:
            known = ", ".join(info.params) or "none"
            raise _Bad(f"only the parameters of {info.name} ({known}), not {key!r}{_did_you_mean(key, info.params)}")
        check = _choice(info.choices[key]) if key in info.choices else _PARAM_CHECKS[key]
        try:
            out[key] = check(value)
        except _Bad as bad:
            raise _Bad(f"{info.name} parameter {key!r} to be {bad}") from None
    for key, value in info.kernel_only.items():
        if role == "input" and out[key] == value:
            raise _Bad(
                f"a quantizer for inputs; {info.name} with {key} {_show(value)} quantizes kernels only "
                f"(it normalises over the whole tensor: a sample's output would depend on its batch)"
            )
    return out


def quantizer_bits(q) -> int:
    """Bit width of a quantizer's output (32 for full precision); a "bits" parameter (dorefa) sets it."""
    q = normalize_quantizer(q)
    if q is None:
        return 32
    return q.get("bits", QUANTIZERS[q["name"]].bits)


def is_sign_quantizer(q) -> bool:
    """True when the quantizer's (eval-time) output is +-1: the engine can pack it and use XNOR-popcount."""
    q = normalize_quantizer(q)
    return q is not None and QUANTIZERS[q["name"]].is_sign


def layer_name(index, layer: dict) -> str:
    """Key of a layer in metrics, histograms and reports: "3_conv2d"; nested shortcut layers: "3.1_conv2d"."""
    return f"{index}_{layer['type']}"


# ---------------------------------------------------------------------------------------- network spec


def _error(path, layer_type, field_name, message) -> SpecError:
    top = int(str(path).split(".")[0]) if path is not None else None
    where = f"layer {path} ({layer_type})" if path is not None else "network spec"
    text = f"{where}: field {field_name!r} {message}" if field_name else f"{where}: {message}"
    return SpecError(
        text, layer_index=top, layer_type=layer_type, field=field_name, path=str(path) if path is not None else None
    )


def _check_field(path, layer_type, name, value):
    if name in ("units", "filters", "kernel_size", "pool_size", "stride"):
        return _positive_int(value)
    if name == "padding":
        return _choice(("same", "valid"))(value)
    if name in ("input_quantizer", "kernel_quantizer"):
        return normalize_quantizer(value, role=name.split("_")[0])
    if name == "scaling":
        return _choice(SCALINGS)(value)
    if name in ("use_bias", "affine"):
        return _bool(value)
    if name == "momentum":
        return _number(value, low=0.0, high=1.0, what="a number in [0, 1]")
    if name == "eps":
        high = limits.BATCH_NORM_EPS_MAX
        return _number(value, low=0.0, low_open=True, high=high, what=f"a positive number at most {_bound(high)}")
    if name == "rate":
        return _number(value, low=0.0, high=1.0, high_open=True, what="a number in [0, 1)")
    if name == "fn":
        return _choice(ACTIVATIONS)(value)
    if name == "layers":
        if not isinstance(value, list) or not value:
            raise _Bad("a non-empty list of layers")
        return value
    raise AssertionError(name)


def _normalise_layer(path, layer) -> dict:
    if not isinstance(layer, dict):
        raise _error(path, "?", None, f"must be an object with a 'type', got {_show(layer)}")
    layer_type = layer.get("type")
    if not isinstance(layer_type, str) or layer_type not in LAYER_FIELDS:  # a list or dict is not hashable
        raise _error(
            path,
            layer_type if isinstance(layer_type, str) else "?",
            "type",
            "must be one of "
            + ", ".join(LAYER_TYPES)
            + f", got {_show(layer_type)}{_did_you_mean(layer_type, LAYER_TYPES)}",
        )
    fields = LAYER_FIELDS[layer_type]
    for key in layer:
        if key != "type" and key not in fields:
            known = ", ".join(fields) or "none"
            raise _error(
                path, layer_type, key, f"is not a field of {layer_type} (fields: {known})" + _did_you_mean(key, fields)
            )
    out = {"type": layer_type}
    for name, default in fields.items():
        if name not in layer:
            if default is _REQUIRED:
                raise _error(path, layer_type, name, "is required")
            out[name] = None if default is _AUTO else default
            continue
        try:
            out[name] = _check_field(path, layer_type, name, layer[name])
        except _Bad as bad:
            raise _error(path, layer_type, name, f"must be {bad}, got {_show(layer[name])}") from None
    if layer_type in ("dense", "conv2d"):
        if out["use_bias"] is None:
            out["use_bias"] = out["kernel_quantizer"] is None
        if out["scaling"] != "none" and out["kernel_quantizer"] is None:
            raise _error(
                path,
                layer_type,
                "scaling",
                f"must be 'none' when kernel_quantizer is null "
                f"(scaling factors rescale binarized weights), got {out['scaling']!r}",
            )
    if layer_type == "conv2d" and out["padding"] == "same" and out["kernel_size"] % 2 == 0:
        raise _error(
            path,
            layer_type,
            "padding",
            f"'same' needs an odd kernel_size, got kernel_size {out['kernel_size']}; use 'valid' or an odd kernel",
        )
    if layer_type in ("max_pool", "avg_pool") and out["stride"] is None:
        out["stride"] = out["pool_size"]
    return out


def _output_shape(path, layer, shape):
    """Shape after one normalised layer (channels-first, no batch dim); raises SpecError on a mismatch."""
    kind = layer["type"]
    if kind in ("conv2d", "max_pool", "avg_pool") and len(shape) != 3:
        raise _error(path, kind, "input", f"expects a [C, H, W] image input, got {list(shape)}")
    if kind == "dense" and len(shape) != 1:
        raise _error(path, kind, "input", f"expects a flat [F] input, got {list(shape)}; add a flatten layer first")
    if kind == "dense":
        return (layer["units"],)
    if kind == "conv2d":
        k, s = layer["kernel_size"], layer["stride"]
        h, w = (conv_output_size(n, k, s, *padding_pair(layer["padding"], k)) for n in shape[1:])
        if h <= 0 or w <= 0:
            raise _error(
                path,
                kind,
                "kernel_size",
                f"must fit the input {list(shape)} with padding {layer['padding']!r}, got {k}",
            )
        return (layer["filters"], h, w)
    if kind in ("max_pool", "avg_pool"):
        k, s = layer["pool_size"], layer["stride"]
        if k > shape[1] or k > shape[2]:
            raise _error(
                path, kind, "pool_size", f"must be at most the input's height and width {list(shape[1:])}, got {k}"
            )
        return (shape[0], pool_output_size(shape[1], k, s), pool_output_size(shape[2], k, s))
    if kind == "flatten":
        size = 1
        for n in shape:
            size *= n
        return (size,)
    return tuple(shape)


def _shortcut_output(path, shape, inner_shapes) -> tuple:
    if inner_shapes[-1][1] != tuple(shape):
        raise _error(
            path,
            "shortcut",
            "layers",
            f"must keep the shape {list(shape)} (output = layers(x) + x), got {list(inner_shapes[-1][1])}",
        )
    return tuple(shape)


def _check_nesting(layers) -> None:
    """SpecError for shortcuts nested deeper than MAX_NESTING, found without recursion (before anything recurses)."""
    stack = [(layers, "")]
    while stack:
        items, prefix = stack.pop()
        for index, layer in enumerate(items if isinstance(items, list) else []):
            if isinstance(layer, dict) and layer.get("type") == "shortcut":
                path = f"{prefix}{index}"
                if path.count(".") >= MAX_NESTING:
                    raise _error(
                        path, "shortcut", "layers", f"must nest shortcuts at most {MAX_NESTING} deep, got deeper"
                    )
                stack.append((layer.get("layers"), f"{path}."))


def _walk(layers, input_shape, prefix=""):
    """Normalise a layer list and infer its shapes in one pass (each shortcut's layers walked once: linear)."""
    normalised, shapes, shape = [], [], tuple(input_shape)
    for index, layer in enumerate(layers):
        path = f"{prefix}{index}"
        norm = _normalise_layer(path, layer)
        if norm["type"] == "shortcut":
            norm["layers"], inner_shapes = _walk(norm["layers"], shape, prefix=f"{path}.")
            out = _shortcut_output(path, shape, inner_shapes)
        else:
            out = _output_shape(path, norm, shape)
        normalised.append(norm)
        shapes.append((shape, out))
        shape = out
    return normalised, shapes


def layer_shapes(layers: list[dict], input_shape) -> list[tuple[tuple, tuple]]:
    """(input, output) shape of each layer of a layer list, for a given input shape (validates the list)."""
    return _walk(layers, tuple(input_shape))[1]


def _validate(spec) -> tuple[dict, list]:
    if not isinstance(spec, dict):
        raise SpecError(f"network spec: must be a JSON object, got {type(spec).__name__}")
    for key in spec:
        if key not in _NETWORK_FIELDS:
            raise _error(
                None,
                None,
                key,
                "is not a network spec field (fields: "
                + ", ".join(_NETWORK_FIELDS)
                + ")"
                + _did_you_mean(key, _NETWORK_FIELDS),
            )
    for key in ("input_shape", "num_classes", "layers"):
        if key not in spec:
            raise _error(None, None, key, "is required")
    name = spec.get("name", "network")
    if not isinstance(name, str):
        raise _error(None, None, "name", f"must be a string, got {_show(name)}")
    description = spec.get("description", "")
    if not isinstance(description, str):
        raise _error(None, None, "description", f"must be a string, got {_show(description)}")
    shape = spec["input_shape"]
    if (
        not isinstance(shape, (list, tuple))
        or len(shape) not in (1, 3)
        or any(isinstance(n, bool) or not isinstance(n, int) or n <= 0 for n in shape)
    ):
        raise _error(None, None, "input_shape", f"must be [F] or [C, H, W] with positive integers, got {_show(shape)}")
    num_classes = spec["num_classes"]
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise _error(None, None, "num_classes", f"must be an integer >= 2, got {_show(num_classes)}")
    if not isinstance(spec["layers"], list) or not spec["layers"]:
        raise _error(None, None, "layers", f"must be a non-empty list of layers, got {_show(spec['layers'])}")
    _check_nesting(spec["layers"])
    layers, shapes = _walk(copy.deepcopy(spec["layers"]), tuple(shape))
    out = shapes[-1][1]
    if out != (num_classes,):
        last = len(layers) - 1
        raise _error(
            last,
            layers[-1]["type"],
            "units" if layers[-1]["type"] == "dense" else None,
            f"the network must end with [{num_classes}] (num_classes) logits, got {list(out)}",
        )
    _check_memory(_memory_rows(layers, shapes, tuple(shape), limits.REFERENCE_BATCH))
    normalised = {
        "name": name,
        "description": description,
        "input_shape": list(shape),
        "num_classes": num_classes,
        "layers": layers,
    }
    return normalised, shapes


# ---------------------------------------------------------------------------------------- memory budget


def _kernel_weights(layer: dict, shape_in: tuple) -> int:
    """Kernel weights of a dense or conv layer. Per-channel vectors (bias, scale, batch norm) are left out: none
    is larger than its layer's output, counted as activations."""
    if layer["type"] == "dense":
        return shape_in[0] * layer["units"]
    if layer["type"] == "conv2d":
        return shape_in[0] * layer["kernel_size"] ** 2 * layer["filters"]
    return 0


def _memory_rows(layers, shapes, input_shape, batch_size, prefix="") -> list[dict]:
    """Estimated training bytes (docs/SPEC.md, core/limits.py) of the input batch (path None) and each layer."""
    rows = []
    if not prefix:
        size = math.prod(input_shape)
        rows.append(
            {
                "path": None,
                "type": "input",
                "weights": 0,
                "output_shape": list(input_shape),
                "bytes": size * batch_size * limits.BYTES_PER_ACTIVATION,
            }
        )
    for index, (layer, (shape_in, shape_out)) in enumerate(zip(layers, shapes, strict=True)):
        path = f"{prefix}{index}"
        weights = _kernel_weights(layer, shape_in)
        outputs = 0 if layer["type"] == "flatten" else math.prod(shape_out)  # flatten is a view: no new memory
        rows.append(
            {
                "path": path,
                "type": layer["type"],
                "weights": weights,
                "output_shape": list(shape_out),
                "bytes": weights * limits.BYTES_PER_WEIGHT + outputs * batch_size * limits.BYTES_PER_ACTIVATION,
            }
        )
        if layer["type"] == "shortcut":
            rows += _memory_rows(
                layer["layers"], _normalised_shapes(layer["layers"], shape_in), shape_in, batch_size, prefix=f"{path}."
            )
    return rows


def _normalised_shapes(layers, input_shape) -> list[tuple[tuple, tuple]]:
    """(input, output) shapes of an already normalised layer list, one level (a shortcut keeps its shape)."""
    shapes, shape = [], tuple(input_shape)
    for layer in layers:
        out = shape if layer["type"] == "shortcut" else _output_shape("", layer, shape)
        shapes.append((shape, out))
        shape = out
    return shapes


def _check_memory(rows: list[dict]) -> None:
    """SpecError unless the estimate fits limits.MEMORY_BUDGET_BYTES; it names the layer that needs the most."""
    total, budget = sum(row["bytes"] for row in rows), limits.MEMORY_BUDGET_BYTES
    if total <= budget:
        return
    worst = max(rows, key=lambda row: row["bytes"])
    parts = []
    if worst["weights"]:
        parts.append(
            f"{worst['weights']:,} weights x {limits.BYTES_PER_WEIGHT} bytes (value, gradient and Adam's two moments)"
        )
    if worst["bytes"] > worst["weights"] * limits.BYTES_PER_WEIGHT:
        parts.append(
            f"output {worst['output_shape']} x {limits.BYTES_PER_ACTIVATION} bytes x a batch of "
            f"{limits.REFERENCE_BATCH}"
        )
    whose = "the input batch's" if worst["path"] is None else "this layer's"
    message = (
        f"must keep the estimated training memory within {limits.format_bytes(budget)} "
        f"(core/limits.py MEMORY_BUDGET_BYTES), got {limits.format_bytes(total)}, "
        f"{limits.format_bytes(worst['bytes'])} of it {whose}: " + " + ".join(parts)
    )
    if worst["path"] is None:
        raise _error(None, None, "input_shape", message)
    raise _error(worst["path"], worst["type"], {"dense": "units", "conv2d": "filters"}.get(worst["type"]), message)


def training_memory(spec: dict, batch_size: int | None = None) -> list[dict]:
    """Estimated training bytes of a network for one batch: one row for the input batch (path None) and one
    per layer (shortcut contents after their shortcut), each {"path", "type", "weights", "output_shape",
    "bytes"}; sum the "bytes" for the total. validate_spec refuses a total above the budget at the reference
    batch (the default); ``training_warnings`` compares it at the training spec's batch size."""
    spec = validate_spec(spec)
    return _memory_rows(
        spec["layers"],
        layer_shapes(spec["layers"], spec["input_shape"]),
        tuple(spec["input_shape"]),
        batch_size if batch_size is not None else limits.REFERENCE_BATCH,
    )


def validate_spec(spec: dict) -> dict:
    """Check a network spec and return a normalised deep copy; raises SpecError naming layer and field.

    Besides each field, it refuses a network whose estimated training memory exceeds the budget of
    core/limits.py (naming the layer that needs the most).
    """
    return _validate(spec)[0]


def infer_shapes(spec: dict) -> list[tuple[tuple, tuple]]:
    """(input shape, output shape) of each top-level layer, channels-first, without the batch dim."""
    return _validate(spec)[1]


def float_twin(spec: dict) -> dict:
    """The same network in full precision: no quantizers, scaling "none".

    A binary network's only non-linearity is the sign of its input quantizers, so removing them would leave
    a linear model; each removed input quantizer becomes an activation layer in front of its layer
    (the catalogue's twin_activation: hardtanh, the sign's straight-through surrogate, for signs and ternary;
    relu for 0/1 and DoReFa).
    """
    normalised = validate_spec(spec)

    def convert(layers):
        out = []
        for layer in layers:
            layer = dict(layer)
            if layer["type"] == "shortcut":
                layer["layers"] = convert(layer["layers"])
            if layer["type"] in ("dense", "conv2d"):
                q = layer["input_quantizer"]
                if q is not None:
                    out.append({"type": "activation", "fn": QUANTIZERS[q["name"]].twin_activation})
                layer.update(input_quantizer=None, kernel_quantizer=None, scaling="none")
            out.append(layer)
        return out

    twin = dict(normalised, name=normalised["name"] + " (float twin)", layers=convert(normalised["layers"]))
    return validate_spec(twin)


# ---------------------------------------------------------------------------------------- training spec

_OPTIMIZERS = {
    "adam": {"lr": 0.001},
    "sgd": {"lr": 0.01, "momentum": 0.9},
    "bop": {"threshold": 1e-8, "gamma": 1e-4, "lr": 0.001},
}
_SCHEDULES = {"constant": {}, "cosine": {}, "step": {"step_size": 1, "gamma": 0.1}, "exponential": {"gamma": 0.95}}
_TRAINING_FIELDS = (
    "epochs",
    "batch_size",
    "seed",
    "optimizer",
    "bop_schedule",
    "lr_schedule",
    "weight_clip",
    "distillation",
    "soft_binarization",
    "two_stage",
    "validation_split",
    "test_split",
    "split_method",
    "device",
    "processes",
    "mixed_precision",
    "augmentation",
)
SPLIT_METHODS = ("stratified", "random")
# where training runs: "auto" is the first of cuda, mps, cpu this machine has (train.distributed.resolve_device)
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d{1,2})?")


def default_training_spec() -> dict:
    """The training spec of docs/SPEC.md with every field present."""
    return {
        "epochs": 5,
        "batch_size": 128,
        "seed": 0,
        "optimizer": {"name": "adam", "lr": 0.001},
        "bop_schedule": None,
        "lr_schedule": {"name": "cosine"},
        "weight_clip": 1.0,
        "distillation": None,
        "soft_binarization": None,
        "two_stage": None,
        "validation_split": 0.1,
        "test_split": 0.2,
        "split_method": "stratified",
        "device": "auto",
        "processes": 1,
        "mixed_precision": False,
        "augmentation": None,
    }


def _training_error(field_name, expected, got) -> SpecError:
    return SpecError(f"training spec: field {field_name!r} must be {expected}, got {_show(got)}", field=field_name)


def _sub_object(ts, key, defaults, checks, *, optional):
    """Normalise a nested object field: unknown keys rejected, defaults filled, each value checked."""
    value = ts.get(key, None)
    if value is None and optional:
        return None
    if not isinstance(value, dict):
        raise _training_error(key, "an object" + (" or null" if optional else ""), value)
    out = dict(defaults)
    for sub, sub_value in value.items():
        if sub not in checks:
            raise _training_error(
                f"{key}.{sub}",
                "one of the fields " + ", ".join(checks) + _did_you_mean(sub, checks),
                "an unknown field",
            )
        try:
            out[sub] = checks[sub](sub_value)
        except _Bad as bad:
            raise _training_error(f"{key}.{sub}", str(bad), sub_value) from None
    return out


def _named_object(ts, key, catalogue, checks):
    value = ts.get(key)
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict) or not isinstance(value.get("name"), str) or value["name"] not in catalogue:
        got = value.get("name") if isinstance(value, dict) else value
        raise _training_error(f"{key}.name", "one of " + ", ".join(catalogue), got)
    params = catalogue[value["name"]]
    allowed = {"name": lambda v: v, **{p: checks[p] for p in params}}
    return _sub_object({key: value}, key, {"name": value["name"], **params}, allowed, optional=False)


def validate_training_spec(ts: dict) -> dict:
    """Check a training spec (docs/SPEC.md) and return it normalised; errors name the field."""
    if not isinstance(ts, dict):
        raise SpecError(f"training spec: must be a JSON object, got {type(ts).__name__}")
    for key in ts:
        if key not in _TRAINING_FIELDS:
            raise SpecError(
                f"training spec: field {key!r} is not a training spec field (fields: "
                + ", ".join(_TRAINING_FIELDS)
                + ")"
                + _did_you_mean(key, _TRAINING_FIELDS),
                field=key,
            )
    out = default_training_spec()
    out.update(ts)
    top = limits.TRAINING_FIELD_MAX
    for key in ("epochs", "batch_size"):
        try:
            _positive_int(out[key], top[key])
        except _Bad as bad:
            raise _training_error(key, str(bad), out[key]) from None
    seed = out["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= top["seed"]:
        raise _training_error("seed", f"an integer from 0 to {_bound(top['seed'])}", seed)
    fraction = lambda v: _number(v, low=0.0, high=1.0, what="a number in [0, 1]")  # noqa: E731
    up_to = lambda field: _positive_up_to(top[field])  # noqa: E731
    out["optimizer"] = _named_object(
        out,
        "optimizer",
        _OPTIMIZERS,
        {
            "lr": up_to("optimizer.lr"),
            "momentum": fraction,
            "threshold": up_to("optimizer.threshold"),
            "gamma": up_to("optimizer.gamma"),
        },
    )
    out["lr_schedule"] = _named_object(
        out,
        "lr_schedule",
        _SCHEDULES,
        {"step_size": _count_up_to(top["lr_schedule.step_size"]), "gamma": up_to("lr_schedule.gamma")},
    )
    out["bop_schedule"] = _sub_object(
        out,
        "bop_schedule",
        {"threshold_decay": 0.1, "gamma_decay": 0.1, "every": 2},
        {
            "threshold_decay": up_to("bop_schedule.threshold_decay"),
            "gamma_decay": up_to("bop_schedule.gamma_decay"),
            "every": _count_up_to(top["bop_schedule.every"]),
        },
        optional=True,
    )
    if out["bop_schedule"] is not None and out["optimizer"]["name"] != "bop":
        raise _training_error("bop_schedule", "null unless optimizer.name is 'bop'", out["bop_schedule"])
    if out["weight_clip"] is not None:
        try:
            out["weight_clip"] = up_to("weight_clip")(out["weight_clip"])
        except _Bad as bad:
            raise _training_error("weight_clip", f"{bad} or null", out["weight_clip"]) from None
    out["distillation"] = _sub_object(
        out,
        "distillation",
        {"teacher_run": None, "teacher": None, "alpha": 0.9, "temperature": 4.0},
        {
            "teacher_run": _or_none(_non_empty_string),
            "teacher": _or_none(_choice(("float_twin",))),
            "alpha": fraction,
            "temperature": up_to("distillation.temperature"),
        },
        optional=True,
    )
    if out["distillation"] is not None and (out["distillation"]["teacher_run"] is None) == (
        out["distillation"]["teacher"] is None
    ):
        raise _training_error(
            "distillation", "an object with exactly one of 'teacher_run' or 'teacher'", ts.get("distillation")
        )
    out["soft_binarization"] = _sub_object(
        out,
        "soft_binarization",
        {"start_temperature": 1.0, "end_temperature": 0.01},
        {
            "start_temperature": up_to("soft_binarization.start_temperature"),
            "end_temperature": up_to("soft_binarization.end_temperature"),
        },
        optional=True,
    )
    soft = out["soft_binarization"]
    if soft is not None and soft["end_temperature"] > soft["start_temperature"]:
        raise _training_error(
            "soft_binarization.end_temperature",
            f"at most start_temperature ({soft['start_temperature']})",
            soft["end_temperature"],
        )
    out["two_stage"] = _sub_object(
        out, "two_stage", {"first_epochs": 2}, {"first_epochs": _positive_int}, optional=True
    )
    if out["two_stage"] is not None and out["two_stage"]["first_epochs"] >= out["epochs"]:
        raise _training_error(
            "two_stage.first_epochs", f"less than epochs ({out['epochs']})", out["two_stage"]["first_epochs"]
        )
    try:
        out["validation_split"] = _number(
            out["validation_split"], low=0.0, high=1.0, high_open=True, what="a number in [0, 1)"
        )
    except _Bad as bad:
        raise _training_error("validation_split", str(bad), out["validation_split"]) from None
    try:
        out["test_split"] = _number(
            out["test_split"], low=0.0, high=1.0, low_open=True, high_open=True, what="a number in (0, 1)"
        )
    except _Bad as bad:
        raise _training_error("test_split", str(bad), out["test_split"]) from None
    if out["split_method"] not in SPLIT_METHODS:
        raise _training_error("split_method", "one of " + ", ".join(SPLIT_METHODS), out["split_method"])
    _check_placement(out, top["processes"])
    out["augmentation"] = _sub_object(
        out,
        "augmentation",
        {"random_crop": 0, "horizontal_flip": False},
        {"random_crop": _padding_up_to(top["augmentation.random_crop"]), "horizontal_flip": _bool},
        optional=True,
    )
    return out


def _padding_up_to(high):
    def check(value):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
            raise _Bad(f"an integer from 0 to {high} (pixels of padding)")
        return value

    return check


def check_augmentation(network_spec: dict, training_spec: dict) -> None:
    """Cropping and flipping move pixels, so they need image inputs [C, H, W]."""
    shape = list(network_spec["input_shape"])
    if training_spec.get("augmentation") is not None and len(shape) != 3:
        raise _training_error("augmentation", f"null for inputs of shape {shape} (it needs images [C, H, W])", "on")


def _check_placement(out: dict, most_processes: int) -> None:
    """Where and on how many processes a run trains (docs/SPEC.md, "Devices and processes")."""
    device = out["device"]
    if not isinstance(device, str) or not DEVICE_PATTERN.fullmatch(device):
        raise _training_error("device", "one of auto, cpu, cuda, cuda:N, mps", device)
    try:
        _positive_int(out["processes"], most_processes)
    except _Bad as bad:
        raise _training_error("processes", str(bad), out["processes"]) from None
    if out["batch_size"] % out["processes"]:
        raise _training_error(
            "batch_size",
            f"a multiple of processes ({out['processes']}): each process takes an equal share of every batch",
            out["batch_size"],
        )
    if not isinstance(out["mixed_precision"], bool):
        raise _training_error("mixed_precision", "true or false", out["mixed_precision"])


def _non_empty_string(value):
    if not isinstance(value, str) or not value:
        raise _Bad("a run id (a non-empty string)")
    return value


# ---------------------------------------------------------------------------------------- plausibility warnings


def training_warnings(training_spec: dict, n_train: int | None = None, network_spec: dict | None = None) -> list[str]:
    """Settings that are valid but probably not meant (lr 1e6, a batch larger than the data), one sentence each.

    Errors stop training; these only inform, so a deliberate experiment still runs. ``n_train``: the training
    set's size (``len(dataset.x_train)``, before the validation split), when known; ``network_spec``: compare the
    network's estimated training memory at this batch size with the budget of core/limits.py. Raises SpecError
    for an invalid training spec, like validate_training_spec.
    """
    ts = validate_training_spec(training_spec)
    warnings = []
    optimizer, epochs, batch_size = ts["optimizer"], ts["epochs"], ts["batch_size"]
    if optimizer["lr"] > limits.WARN_LR_ABOVE:
        whose = {"adam": "Adam", "sgd": "SGD", "bop": "Adam (Bop's optimizer of the real-valued parameters)"}
        warnings.append(
            f"optimizer.lr {optimizer['lr']:g} is above {limits.WARN_LR_ABOVE:g}: "
            f"{whose[optimizer['name']]} steps that large make the loss diverge (the default is "
            f"{_OPTIMIZERS[optimizer['name']]['lr']:g})"
        )
    if optimizer["name"] == "sgd" and optimizer["momentum"] == 1.0:
        warnings.append("optimizer.momentum 1 never lets a gradient fade: SGD's velocity only grows (0.9 is usual)")
    n_fit = limits.fit_count(n_train, ts["validation_split"]) if n_train is not None else None
    if epochs > limits.WARN_EPOCHS_ABOVE:
        steps = f" ({epochs * max(n_fit // batch_size, 1):,} steps)" if n_fit else ""
        warnings.append(f"epochs {epochs:,} is more than {limits.WARN_EPOCHS_ABOVE:,}{steps}: is a zero too many?")
    schedule = ts["lr_schedule"]
    if schedule.get("gamma", 0.0) > 1.0:
        warnings.append(
            f"lr_schedule.gamma {schedule['gamma']:g} is above 1: the learning rate grows instead of decaying"
        )
    if schedule["name"] == "step" and schedule["step_size"] >= epochs:
        warnings.append(
            f"lr_schedule.step_size {schedule['step_size']} is at least epochs ({epochs}): the learning "
            f"rate never steps down (the 'constant' schedule says so)"
        )
    if ts["bop_schedule"] is not None and ts["bop_schedule"]["every"] >= epochs:
        warnings.append(
            f"bop_schedule.every {ts['bop_schedule']['every']} is at least epochs ({epochs}): Bop's "
            f"threshold and gamma never decay"
        )
    if n_fit is not None and batch_size > n_fit:
        held = f" ({n_train:,} minus the validation split)" if n_fit < n_train else ""
        warnings.append(
            f"batch_size {batch_size:,} is larger than the {n_fit:,} samples training steps on{held}: "
            f"every epoch is one step on all {n_fit:,}"
        )
    if network_spec is not None:
        batch = min(batch_size, n_fit) if n_fit else batch_size
        total, budget = sum(row["bytes"] for row in training_memory(network_spec, batch)), limits.MEMORY_BUDGET_BYTES
        if total > budget:
            warnings.append(
                f"batch_size {batch_size:,}: training this network needs an estimated "
                f"{limits.format_bytes(total)}, more than the {limits.format_bytes(budget)} budget "
                f"(core/limits.py); a smaller batch needs less"
            )
    return warnings
