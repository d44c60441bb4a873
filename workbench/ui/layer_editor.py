"""The Design page's layer editor: one bordered block per layer, its fields as widgets bound to the spec.

Edits write straight into the spec dict in st.session_state (workbench.ui.state); structural changes
(add, remove, move, the binary toggle) happen in callbacks and bump the spec version so every widget
is recreated from the new spec. Nothing here validates: the page runs spec.validate_spec afterwards and
shows its error in the slot of the layer it names.
"""

from __future__ import annotations

import json

import streamlit as st

from workbench.core.spec import (
    ACTIVATIONS,
    LAYER_TYPES,
    QUANTIZERS,
    SCALINGS,
    is_sign_quantizer,
)
from workbench.ui import state

NO_QUANTIZER = "none (float)"
NEW_LAYER = {
    "dense": {"type": "dense", "units": 64, "input_quantizer": "ste_sign", "kernel_quantizer": "ste_sign"},
    "conv2d": {
        "type": "conv2d",
        "filters": 32,
        "kernel_size": 3,
        "input_quantizer": "ste_sign",
        "kernel_quantizer": "ste_sign",
    },
    "max_pool": {"type": "max_pool", "pool_size": 2},
    "avg_pool": {"type": "avg_pool", "pool_size": 2},
    "batch_norm": {"type": "batch_norm"},
    "flatten": {"type": "flatten"},
    "dropout": {"type": "dropout", "rate": 0.2},
    "activation": {"type": "activation", "fn": "hardtanh"},
    "shortcut": {"type": "shortcut", "layers": [{"type": "batch_norm"}]},
}
BIAS_CHOICES = {"auto": None, "yes": True, "no": False}


# ------------------------------------------------------------------ structural edits (callbacks)
# A layer is addressed by its path: (3,) is layer 3, (3, 1) is inner layer 1 of the shortcut at 3.


def _siblings(path: tuple[int, ...]) -> list:
    """The list that holds the layer at ``path`` (the spec's layers, or a shortcut's inner layers)."""
    layers = state.get_spec()["layers"]
    for index in path[:-1]:
        layers = layers[index]["layers"]
    return layers


def _key(path: tuple[int, ...]) -> str:
    return ".".join(str(index) for index in path)


def add_layer(layer_type: str, position: int | None = None, parent: tuple[int, ...] = ()) -> None:
    layers = _siblings(parent + (0,))
    layers.insert(len(layers) if position is None else position, json.loads(json.dumps(NEW_LAYER[layer_type])))
    state.bump_version()


def remove_layer(path: tuple[int, ...]) -> None:
    del _siblings(path)[path[-1]]
    state.bump_version()


def move_layer(path: tuple[int, ...], offset: int) -> None:
    layers, index = _siblings(path), path[-1]
    target = index + offset
    if 0 <= target < len(layers):
        layers[index], layers[target] = layers[target], layers[index]
        state.bump_version()


def _has_weights(layer: dict) -> bool:
    if layer.get("type") == "shortcut":
        return any(_has_weights(inner) for inner in layer.get("layers") or [] if isinstance(inner, dict))
    return layer.get("type") in ("dense", "conv2d")


def _first_weight_layer(path: tuple[int, ...]) -> bool:
    """No dense/conv2d comes before ``path`` (in the order the network runs), so its input is the data."""
    layers = state.get_spec()["layers"]
    for depth, index in enumerate(path):
        if any(_has_weights(layer) for layer in layers[:index]):
            return False
        if depth < len(path) - 1:
            layers = layers[index]["layers"]
    return True


def set_binary(path: tuple[int, ...], key: str) -> None:
    """The float/binary toggle: ste_sign on weights (and on inputs after the first weight layer) or no quantizers."""
    layer = _siblings(path)[path[-1]]
    if st.session_state[key]:
        layer["kernel_quantizer"] = {"name": "ste_sign", **QUANTIZERS["ste_sign"].params}
        layer["input_quantizer"] = (
            None if _first_weight_layer(path) else {"name": "ste_sign", **QUANTIZERS["ste_sign"].params}
        )
    else:
        layer["kernel_quantizer"] = layer["input_quantizer"] = None
        layer["scaling"] = "none"
    state.bump_version()


def set_quantizer(path: tuple[int, ...], field: str, key: str) -> None:
    """A new quantizer starts from its default parameters (and the binary toggle follows)."""
    choice = st.session_state[key]
    role = _role(field)
    _siblings(path)[path[-1]][field] = (
        None if choice == NO_QUANTIZER else {"name": choice, **QUANTIZERS[choice].defaults(role)}
    )
    state.bump_version()


# ------------------------------------------------------------------ field widgets


def _role(field: str) -> str:
    """ "kernel" or "input": where a quantizer field applies (some defaults and values differ)."""
    return field.split("_")[0]


def _quantizer_name(value) -> str | None:
    if isinstance(value, dict):
        return value.get("name")
    return value


def quantizer_editor(path: tuple, layer: dict, field: str, label: str) -> None:
    """Selectbox over the catalogue plus one number input per parameter of the chosen quantizer."""
    current = layer.get(field)
    name = _quantizer_name(current)
    options = [NO_QUANTIZER, *QUANTIZERS]
    key = state.widget_key(_key(path), field)
    choice = st.selectbox(
        label,
        options,
        index=options.index(name) if name in QUANTIZERS else 0,
        key=key,
        help=_quantizer_help(),
        on_change=set_quantizer,
        args=(path, field, key),
    )
    if choice == NO_QUANTIZER:
        layer[field] = None
        return
    info = QUANTIZERS[choice]
    given = current if isinstance(current, dict) and name == choice else {}
    st.caption(f"{info.bits}-bit{', ±1 (XNOR-packable)' if info.is_sign else ''}: {info.description}")
    params = {}
    role = _role(field)
    for param, default in info.defaults(role).items():
        value = given.get(param, default)
        widget_key = state.widget_key(_key(path), field, choice, param)
        if param in info.choices:
            allowed = [c for c in info.choices[param] if role == "kernel" or info.kernel_only.get(param) != c]
            params[param] = st.selectbox(
                param, allowed, index=allowed.index(value) if value in allowed else 0, key=widget_key
            )
        elif isinstance(default, bool):
            params[param] = st.checkbox(param, value=bool(value), key=widget_key)
        elif isinstance(default, int):
            params[param] = int(st.number_input(param, value=int(value), step=1, key=widget_key))
        else:
            params[param] = float(st.number_input(param, value=float(value), step=0.1, format="%g", key=widget_key))
    layer[field] = {"name": choice, **params}


def _quantizer_help() -> str:
    return "\n".join(f"- **{q.name}**: {q.description}" for q in QUANTIZERS.values())


def _int_field(path: tuple, layer: dict, field: str, label: str, default: int | None = None) -> None:
    value = layer.get(field, default)
    number = st.number_input(
        label,
        value=value if isinstance(value, int) else None,
        step=1,
        key=state.widget_key(_key(path), field),
        placeholder="default" if default is None else None,
    )
    if number is None:
        layer.pop(field, None)
    else:
        layer[field] = int(number)


def _float_field(path: tuple, layer: dict, field: str, label: str, default: float) -> None:
    value = layer.get(field, default)
    layer[field] = float(
        st.number_input(
            label,
            value=float(value) if isinstance(value, (int, float)) else default,
            format="%g",
            step=0.05,
            key=state.widget_key(_key(path), field),
        )
    )


def _choice_field(path: tuple, layer: dict, field: str, label: str, options, default) -> None:
    value = layer.get(field, default)
    layer[field] = st.selectbox(
        label,
        options,
        index=list(options).index(value) if value in options else 0,
        key=state.widget_key(_key(path), field),
    )


def weight_layer_fields(path: tuple, layer: dict) -> None:
    """dense / conv2d: size fields, the float/binary toggle, both quantizers, scaling and bias."""
    columns = st.columns(4)
    if layer["type"] == "dense":
        with columns[0]:
            _int_field(path, layer, "units", "units")
    else:
        with columns[0]:
            _int_field(path, layer, "filters", "filters")
        with columns[1]:
            _int_field(path, layer, "kernel_size", "kernel size", 3)
        with columns[2]:
            _int_field(path, layer, "stride", "stride", 1)
        with columns[3]:
            _choice_field(path, layer, "padding", "padding", ("same", "valid"), "same")
    toggle_key = state.widget_key(_key(path), "binary")
    st.toggle(
        "binary (1-bit weights)",
        value=layer.get("kernel_quantizer") is not None,
        key=toggle_key,
        on_change=set_binary,
        args=(path, toggle_key),
        help="On: ste_sign on the weights, and on the inputs unless this is the first weight layer. "
        "Off: a full-precision layer.",
    )
    kernel_column, input_column, extra_column = st.columns(3)
    with kernel_column:
        quantizer_editor(path, layer, "kernel_quantizer", "weight quantizer")
    with input_column:
        quantizer_editor(path, layer, "input_quantizer", "input quantizer")
    with extra_column:
        _choice_field(path, layer, "scaling", "scaling", SCALINGS, "none")
        bias = layer.get("use_bias")
        choice = st.selectbox(
            "bias",
            list(BIAS_CHOICES),
            index=list(BIAS_CHOICES.values()).index(bias) if bias in (True, False) else 0,
            key=state.widget_key(_key(path), "use_bias"),
            help="auto: a bias only when the weights are not quantized",
        )
        if BIAS_CHOICES[choice] is None:
            layer.pop("use_bias", None)
        else:
            layer["use_bias"] = BIAS_CHOICES[choice]


def shortcut_fields(path: tuple, layer: dict) -> None:
    """A shortcut's inner layers (output = layers(x) + x), each with the same editor, and an add control."""
    inner = layer.get("layers")
    if not isinstance(inner, list):
        inner = layer["layers"] = []
    st.caption("output = inner layers(x) + x: the inner layers must keep the shape of x")
    for index, inner_layer in enumerate(inner):
        layer_block(path + (index,), inner_layer, len(inner))
    add_layer_controls(path)


def layer_fields(path: tuple, layer: dict) -> None:
    """The widgets for one layer's fields, by type."""
    kind = layer.get("type")
    if kind in ("dense", "conv2d"):
        weight_layer_fields(path, layer)
    elif kind in ("max_pool", "avg_pool"):
        left, right = st.columns(2)
        with left:
            _int_field(path, layer, "pool_size", "pool size", 2)
        with right:
            _int_field(path, layer, "stride", "stride (empty: = pool size)")
    elif kind == "batch_norm":
        left, middle, right = st.columns(3)
        with left:
            _float_field(path, layer, "momentum", "momentum", 0.1)
        with middle:
            _float_field(path, layer, "eps", "eps", 1e-5)
        with right:
            layer["affine"] = st.checkbox(
                "affine", value=bool(layer.get("affine", True)), key=state.widget_key(_key(path), "affine")
            )
    elif kind == "dropout":
        _float_field(path, layer, "rate", "rate", 0.2)
    elif kind == "activation":
        _choice_field(path, layer, "fn", "function", ACTIVATIONS, "hardtanh")
    elif kind == "shortcut":
        shortcut_fields(path, layer)


def layer_title(index: int, layer: dict) -> str:
    """Bold "index · type" plus the precision of a normalised weight layer (XNOR, binary weights, float)."""
    text = f"**{index} · {layer['type']}**"
    if layer["type"] in ("dense", "conv2d"):
        weights, inputs = is_sign_quantizer(layer["kernel_quantizer"]), is_sign_quantizer(layer["input_quantizer"])
        if weights and inputs:
            text += " · XNOR (±1 weights and inputs)"
        elif weights:
            text += " · binary weights, real inputs"
        elif layer["kernel_quantizer"] or layer["input_quantizer"]:
            text += " · quantized"
        else:
            text += " · float"
    return text


def layer_block(path: tuple[int, ...], layer: dict, count: int):
    """One layer (``path``: (index,), or (shortcut index, inner index, ...)): a header with move/remove
    buttons, an error slot, its fields.

    Returns (title slot, error slot): the page fills them once the edited spec has been validated.
    """
    index = path[-1]
    with st.container(border=True):
        title, up, down, remove = st.columns([8, 1, 1, 1], vertical_alignment="center")
        title = title.empty()
        title.markdown(f"**{_key(path)} · {layer.get('type', '?')}**")
        up.button(
            "↑",
            key=state.widget_key(_key(path), "up"),
            on_click=move_layer,
            args=(path, -1),
            disabled=index == 0,
            help="move up",
        )
        down.button(
            "↓",
            key=state.widget_key(_key(path), "down"),
            on_click=move_layer,
            args=(path, 1),
            disabled=index == count - 1,
            help="move down",
        )
        remove.button(
            "✕",
            key=state.widget_key(_key(path), "remove"),
            on_click=remove_layer,
            args=(path,),
            help="remove this layer",
        )
        slot = st.empty()
        layer_fields(path, layer)
    return title, slot


def add_layer_controls(parent: tuple[int, ...] = ()) -> None:
    """Add a layer to the network, or (``parent``: a shortcut's path) to a shortcut's inner layers."""
    where = f"_{_key(parent)}" if parent else ""
    kind_column, position_column, button_column = st.columns([2, 2, 1], vertical_alignment="bottom")
    kind = kind_column.selectbox(
        "layer type" if not parent else "inner layer type", LAYER_TYPES, key=f"design_new_layer_type{where}"
    )
    count = len(_siblings(parent + (0,)))
    position = position_column.number_input(
        "at position",
        min_value=0,
        max_value=count,
        value=count,
        step=1,
        key=state.widget_key("new_layer_position" + where),
    )
    button_column.button(
        "Add layer" if not parent else "Add inner layer",
        key=f"design_add_layer{where}",
        on_click=add_layer,
        args=(kind, int(position), parent),
        type="primary",
    )
