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

# QUANTIZERS stays importable from here, next to the helpers that read it (is_sign_quantizer, quantizer_bits).
from workbench.core.quantizer_catalog import QUANTIZERS
from workbench.core.shapes import conv_output_size, padding_pair, pool_output_size


class SpecError(ValueError):
    """A spec mistake, named by layer (index and type) and field, with what was expected and what came."""

    def __init__(self, message: str, *, layer_index: int | None = None, layer_type: str | None = None,
                 field: str | None = None, path: str | None = None):
        super().__init__(message)
        self.layer_index = layer_index
        self.layer_type = layer_type
        self.field = field
        self.path = path


LAYER_TYPES = ("dense", "conv2d", "max_pool", "avg_pool", "batch_norm", "flatten", "dropout", "activation",
               "shortcut")
ACTIVATIONS = ("relu", "hardtanh", "tanh", "prelu", "identity")
SCALINGS = ("none", "xnor", "learnable")

_REQUIRED = object()  # a field without a default
_AUTO = object()      # a default that depends on other fields

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


def _positive_int(value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _Bad("a positive integer")
    return value


def _number(value, *, low=None, high=None, low_open=False, high_open=False, what="a number"):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise _Bad(what)
    if low is not None and (value < low or (low_open and value == low)):
        raise _Bad(what)
    if high is not None and (value > high or (high_open and value == high)):
        raise _Bad(what)
    return float(value)


def _positive(value):
    return _number(value, low=0.0, low_open=True, what="a positive number")


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


_PARAM_CHECKS = {
    "clip": _positive,
    "beta": _positive,
    "temperature": _positive,
    "threshold": lambda v: _number(v, low=0.0, what="a number >= 0"),
    "bits": lambda v: _check_bits(v),
}


def _check_bits(value):
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 8:
        raise _Bad("an integer from 1 to 8")
    return value


def _did_you_mean(word, options) -> str:
    close = difflib.get_close_matches(str(word), list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def normalize_quantizer(q) -> dict | None:
    """None, a name, or {"name": ..., params} -> None or {"name": ..., **every param}; raises _Bad."""
    if q is None:
        return None
    if isinstance(q, str):
        q = {"name": q}
    if not isinstance(q, dict) or not isinstance(q.get("name"), str):
        raise _Bad("null, a quantizer name or an object with a 'name'")
    info = QUANTIZERS.get(q["name"])
    if info is None:
        raise _Bad("a known quantizer (" + ", ".join(QUANTIZERS) + ")" + _did_you_mean(q["name"], QUANTIZERS))
    out = {"name": info.name, **info.params}
    for key, value in q.items():
        if key == "name":
            continue
        if key not in info.params:
            known = ", ".join(info.params) or "none"
            raise _Bad(f"only the parameters of {info.name} ({known}), not {key!r}{_did_you_mean(key, info.params)}")
        try:
            out[key] = _PARAM_CHECKS[key](value)
        except _Bad as bad:
            raise _Bad(f"{info.name} parameter {key!r} to be {bad}") from None
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
    return SpecError(text, layer_index=top, layer_type=layer_type, field=field_name,
                     path=str(path) if path is not None else None)


def _check_field(path, layer_type, name, value):
    if name in ("units", "filters", "kernel_size", "pool_size", "stride"):
        return _positive_int(value)
    if name == "padding":
        return _choice(("same", "valid"))(value)
    if name in ("input_quantizer", "kernel_quantizer"):
        q = normalize_quantizer(value)
        role = "input" if name == "kernel_quantizer" else "kernel"
        if q is not None and QUANTIZERS[q["name"]].role == role:
            raise _Bad(f"a quantizer for {name.split('_')[0]}s; {q['name']} quantizes {role}s only")
        return q
    if name == "scaling":
        return _choice(SCALINGS)(value)
    if name in ("use_bias", "affine"):
        return _bool(value)
    if name == "momentum":
        return _number(value, low=0.0, high=1.0, what="a number in [0, 1]")
    if name == "eps":
        return _positive(value)
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
    if layer_type not in LAYER_FIELDS:
        raise _error(path, layer_type, "type", "must be one of " + ", ".join(LAYER_TYPES)
                     + f", got {_show(layer_type)}{_did_you_mean(layer_type, LAYER_TYPES)}")
    fields = LAYER_FIELDS[layer_type]
    for key in layer:
        if key != "type" and key not in fields:
            known = ", ".join(fields) or "none"
            raise _error(path, layer_type, key, f"is not a field of {layer_type} (fields: {known})"
                         + _did_you_mean(key, fields))
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
            raise _error(path, layer_type, "scaling", f"must be 'none' when kernel_quantizer is null "
                         f"(scaling factors rescale binarized weights), got {out['scaling']!r}")
    if layer_type == "conv2d" and out["padding"] == "same" and out["kernel_size"] % 2 == 0:
        raise _error(path, layer_type, "padding", f"'same' needs an odd kernel_size, got kernel_size "
                     f"{out['kernel_size']}; use 'valid' or an odd kernel")
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
            raise _error(path, kind, "kernel_size", f"must fit the input {list(shape)} with padding "
                         f"{layer['padding']!r}, got {k}")
        return (layer["filters"], h, w)
    if kind in ("max_pool", "avg_pool"):
        k, s = layer["pool_size"], layer["stride"]
        if k > shape[1] or k > shape[2]:
            raise _error(path, kind, "pool_size", f"must be at most the input's height and width "
                         f"{list(shape[1:])}, got {k}")
        return (shape[0], pool_output_size(shape[1], k, s), pool_output_size(shape[2], k, s))
    if kind == "flatten":
        size = 1
        for n in shape:
            size *= n
        return (size,)
    if kind == "shortcut":
        _, shapes = _walk(layer["layers"], shape, prefix=f"{path}.")
        if shapes[-1][1] != tuple(shape):
            raise _error(path, kind, "layers", f"must keep the shape {list(shape)} (output = layers(x) + x), "
                         f"got {list(shapes[-1][1])}")
    return tuple(shape)


def _walk(layers, input_shape, prefix=""):
    normalised, shapes, shape = [], [], tuple(input_shape)
    for index, layer in enumerate(layers):
        path = f"{prefix}{index}"
        norm = _normalise_layer(path, layer)
        if norm["type"] == "shortcut":
            norm["layers"] = _walk(norm["layers"], shape, prefix=f"{path}.")[0]
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
            raise _error(None, None, key, "is not a network spec field (fields: " + ", ".join(_NETWORK_FIELDS)
                         + ")" + _did_you_mean(key, _NETWORK_FIELDS))
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
    if (not isinstance(shape, (list, tuple)) or len(shape) not in (1, 3)
            or any(isinstance(n, bool) or not isinstance(n, int) or n <= 0 for n in shape)):
        raise _error(None, None, "input_shape", f"must be [F] or [C, H, W] with positive integers, got {_show(shape)}")
    num_classes = spec["num_classes"]
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise _error(None, None, "num_classes", f"must be an integer >= 2, got {_show(num_classes)}")
    if not isinstance(spec["layers"], list) or not spec["layers"]:
        raise _error(None, None, "layers", f"must be a non-empty list of layers, got {_show(spec['layers'])}")
    layers, shapes = _walk(copy.deepcopy(spec["layers"]), tuple(shape))
    out = shapes[-1][1]
    if out != (num_classes,):
        last = len(layers) - 1
        raise _error(last, layers[-1]["type"], "units" if layers[-1]["type"] == "dense" else None,
                     f"the network must end with [{num_classes}] (num_classes) logits, got {list(out)}")
    normalised = {"name": name, "description": description, "input_shape": list(shape),
                  "num_classes": num_classes, "layers": layers}
    return normalised, shapes


def validate_spec(spec: dict) -> dict:
    """Check a network spec and return a normalised deep copy; raises SpecError naming layer and field."""
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

_OPTIMIZERS = {"adam": {"lr": 0.001}, "sgd": {"lr": 0.01, "momentum": 0.9},
               "bop": {"threshold": 1e-8, "gamma": 1e-4, "lr": 0.001}}
_SCHEDULES = {"constant": {}, "cosine": {}, "step": {"step_size": 1, "gamma": 0.1}, "exponential": {"gamma": 0.95}}
_TRAINING_FIELDS = ("epochs", "batch_size", "seed", "optimizer", "bop_schedule", "lr_schedule", "weight_clip",
                    "distillation", "soft_binarization", "two_stage", "validation_split", "test_split",
                    "split_method")
SPLIT_METHODS = ("stratified", "random")


def default_training_spec() -> dict:
    """The training spec of docs/SPEC.md with every field present."""
    return {"epochs": 5, "batch_size": 128, "seed": 0, "optimizer": {"name": "adam", "lr": 0.001},
            "bop_schedule": None, "lr_schedule": {"name": "cosine"}, "weight_clip": 1.0, "distillation": None,
            "soft_binarization": None, "two_stage": None, "validation_split": 0.1, "test_split": 0.2,
            "split_method": "stratified"}


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
            raise _training_error(f"{key}.{sub}", "one of the fields " + ", ".join(checks)
                                  + _did_you_mean(sub, checks), "an unknown field")
        try:
            out[sub] = checks[sub](sub_value)
        except _Bad as bad:
            raise _training_error(f"{key}.{sub}", str(bad), sub_value) from None
    return out


def _named_object(ts, key, catalogue, checks):
    value = ts.get(key)
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict) or value.get("name") not in catalogue:
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
            raise SpecError(f"training spec: field {key!r} is not a training spec field (fields: "
                            + ", ".join(_TRAINING_FIELDS) + ")" + _did_you_mean(key, _TRAINING_FIELDS), field=key)
    out = default_training_spec()
    out.update(ts)
    for key in ("epochs", "batch_size"):
        try:
            _positive_int(out[key])
        except _Bad as bad:
            raise _training_error(key, str(bad), out[key]) from None
    if isinstance(out["seed"], bool) or not isinstance(out["seed"], int) or out["seed"] < 0:
        raise _training_error("seed", "an integer >= 0", out["seed"])
    fraction = lambda v: _number(v, low=0.0, high=1.0, what="a number in [0, 1]")  # noqa: E731
    out["optimizer"] = _named_object(out, "optimizer", _OPTIMIZERS,
                                     {"lr": _positive, "momentum": fraction, "threshold": _positive,
                                      "gamma": _positive})
    out["lr_schedule"] = _named_object(out, "lr_schedule", _SCHEDULES,
                                       {"step_size": _positive_int, "gamma": _positive})
    out["bop_schedule"] = _sub_object(out, "bop_schedule", {"threshold_decay": 0.1, "gamma_decay": 0.1, "every": 2},
                                      {"threshold_decay": _positive, "gamma_decay": _positive,
                                       "every": _positive_int}, optional=True)
    if out["bop_schedule"] is not None and out["optimizer"]["name"] != "bop":
        raise _training_error("bop_schedule", "null unless optimizer.name is 'bop'", out["bop_schedule"])
    if out["weight_clip"] is not None:
        try:
            out["weight_clip"] = _positive(out["weight_clip"])
        except _Bad as bad:
            raise _training_error("weight_clip", f"{bad} or null", out["weight_clip"]) from None
    out["distillation"] = _sub_object(
        out, "distillation", {"teacher_run": None, "teacher": None, "alpha": 0.9, "temperature": 4.0},
        {"teacher_run": _or_none(_non_empty_string), "teacher": _or_none(_choice(("float_twin",))), "alpha": fraction,
         "temperature": _positive}, optional=True)
    if out["distillation"] is not None and (out["distillation"]["teacher_run"] is None) == (
            out["distillation"]["teacher"] is None):
        raise _training_error("distillation", "an object with exactly one of 'teacher_run' or 'teacher'",
                              ts.get("distillation"))
    out["soft_binarization"] = _sub_object(
        out, "soft_binarization", {"start_temperature": 1.0, "end_temperature": 0.01},
        {"start_temperature": _positive, "end_temperature": _positive}, optional=True)
    soft = out["soft_binarization"]
    if soft is not None and soft["end_temperature"] > soft["start_temperature"]:
        raise _training_error("soft_binarization.end_temperature",
                              f"at most start_temperature ({soft['start_temperature']})", soft["end_temperature"])
    out["two_stage"] = _sub_object(out, "two_stage", {"first_epochs": 2}, {"first_epochs": _positive_int},
                                   optional=True)
    if out["two_stage"] is not None and out["two_stage"]["first_epochs"] >= out["epochs"]:
        raise _training_error("two_stage.first_epochs", f"less than epochs ({out['epochs']})",
                              out["two_stage"]["first_epochs"])
    try:
        out["validation_split"] = _number(out["validation_split"], low=0.0, high=1.0, high_open=True,
                                          what="a number in [0, 1)")
    except _Bad as bad:
        raise _training_error("validation_split", str(bad), out["validation_split"]) from None
    try:
        out["test_split"] = _number(out["test_split"], low=0.0, high=1.0, low_open=True, high_open=True,
                                    what="a number in (0, 1)")
    except _Bad as bad:
        raise _training_error("test_split", str(bad), out["test_split"]) from None
    if out["split_method"] not in SPLIT_METHODS:
        raise _training_error("split_method", "one of " + ", ".join(SPLIT_METHODS), out["split_method"])
    return out


def _non_empty_string(value):
    if not isinstance(value, str) or not value:
        raise _Bad("a run id (a non-empty string)")
    return value
