"""What the playground's live view draws, as one small JSON payload per frame: a plain function, no Streamlit.

The page hands ``live_payload`` the session's frame and points and mounts one ``st.components.v2`` component
(workbench/ui/playground_view.py) whose JavaScript (playground_live.js) draws everything on canvases: the
epoch, both decision boundaries with the points, the test accuracy and loss of each, the flips / clip-bound /
memory figures, the two charts, the network diagram and the large map of the picked neuron. Grids travel as
uint8 (a value in [0, 1] quantised to 0..255, row 0 at the top: y = +EXTENT), base64; points as uint16
coordinates; the curves as thinned, rounded lists. Every colour, label and position is decided here, so the
script only paints what it is told. A part named in ``hide`` (``stats``, ``curves``, ``diagram``, ``link``) is
left out of the payload, and the view does not draw it.
"""

from __future__ import annotations

import base64
import math

import numpy as np

from workbench.core.playground import EXTENT, MAX_EPOCH, grid_axis
from workbench.ui.figures import BINARY_COLOR, CLIP_COLOR, FP32_COLOR

NET_TITLES = {"bnn": "BNN", "float": "float twin"}
NET_COLORS = {"bnn": BINARY_COLOR, "float": FP32_COLOR}
CLASS_COLORS = ("#1f77b4", "#ff7f0e")  # class 0, class 1 (TensorFlow Playground's blue and orange)
# Diverging blue-white-orange for values in [0, 1] (probabilities) or [-1, 1] (neuron outputs).
SCALE = ("#0b62a4", "#f7f7f7", "#e8710a")
LINK_COLORS = {"+": SCALE[2], "-": SCALE[0]}  # a link's binarized sign: orange +1, blue -1; sign(0) = +1
MAX_CURVE_POINTS = 400  # per line of the charts: a longer history is drawn every k-th epoch (and the last)
THUMB = 20  # side of a neuron's map in the diagram, in cells
DIAGRAM_WIDTH_PX = 560  # the diagram's nominal width: positions are in these pixels; the view scales them
POINT_SPAN = 2 * EXTENT  # point coordinates are quantised over [-POINT_SPAN, POINT_SPAN] (noise can leave the map)
SECTIONS = ("stats", "curves", "diagram", "link")  # the parts of the live view that ``hide`` can leave out


def quantise(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Values in [low, high] -> uint8 0..255, row 0 of the result at the top (the grid's last row: y up)."""
    t = (np.asarray(values, dtype=np.float64) - low) / ((high - low) or 1.0)
    return np.round(np.clip(t, 0.0, 1.0) * 255).astype(np.uint8)[::-1]


def b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def _points(x: np.ndarray, y: np.ndarray) -> dict:
    """Points as little-endian uint16 (x, y) pairs over [-POINT_SPAN, POINT_SPAN] and uint8 labels."""
    t = (np.clip(np.asarray(x, dtype=np.float64), -POINT_SPAN, POINT_SPAN) + POINT_SPAN) / (2 * POINT_SPAN)
    return {"xy": b64(np.round(t * 65535).astype("<u2")), "labels": b64(np.asarray(y, dtype=np.uint8))}


def points_payload(points) -> dict:
    return {
        "span": POINT_SPAN,
        "train": _points(points.x_train, points.y_train),
        "test": _points(points.x_test, points.y_test),
    }


def _thinned(count: int, most: int = MAX_CURVE_POINTS) -> np.ndarray:
    """Indices of the epochs a curve draws: all of them up to ``most``, else every k-th and the last."""
    if count <= most:
        return np.arange(count)
    return np.unique(np.r_[np.arange(0, count, -(-count // most)), count - 1])


def _line(values: list[float], keep: np.ndarray, digits: int = 4) -> list[float | None]:
    """The kept values, rounded; None where not measured (NaN: JSON has no NaN) or not finite."""
    out = []
    for value in np.asarray(values, dtype=np.float64)[keep] if len(values) else []:
        out.append(round(float(value), digits) if math.isfinite(value) else None)
    return out


def curves_payload(history: dict) -> dict:
    """Test loss and accuracy of both networks and the BNN's flips and share at the clip bound, per epoch."""
    keep = _thinned(len(history["bnn"]["test_loss"]))
    return {
        "epochs": [int(i) + 1 for i in keep],
        "loss": {name: _line(history[name]["test_loss"], keep) for name in NET_TITLES},
        "accuracy": {name: _line(history[name]["test_accuracy"], keep) for name in NET_TITLES},
        "flips": _line(history["bnn"]["flips"], keep, 0),
        "at_bound": _line(history["bnn"]["at_bound"], keep),
        "titles": {
            "curves": "Test loss and accuracy",
            "loss": "test loss (solid)",
            "accuracy": "test accuracy (dotted)",
            "flips_chart": "BNN: weight flips and saturation",
            "flips": "flips per epoch (bars)",
            "at_bound": "share at the clip bound (line)",
        },
        "bound_color": CLIP_COLOR,
    }


def memory_text(bits: dict[str, int]) -> tuple[str, str]:
    """('2,704 bits', '1.9x smaller than float32's 5,184 bits')."""
    bnn, fp = bits["bnn"], bits["float"]
    return f"{bnn:,} bits", f"{fp / max(bnn, 1):.1f}x smaller than float32's {fp:,} bits"


def stats_payload(frame) -> list[dict]:
    bnn = frame.nets["bnn"]
    bits, smaller = memory_text(frame.memory_bits)
    return [
        {
            "label": "BNN flips in the last epoch",
            "value": f"{bnn.flips:,}",
            "help": "binary weights whose sign changed",
        },
        {
            "label": "latent weights at the clip bound",
            "value": "—" if bnn.at_bound is None else f"{bnn.at_bound:.0%}",
            "help": "at |w| = bound, or past the straight-through window |w| = 1 without clipping; "
            "— with Bop, which keeps no latent weights",
        },
        {
            "label": "BNN parameters",
            "value": bits,
            "delta": smaller,
            "help": "1-bit weights count one bit; biases, batch norm and the float output layer 32",
        },
    ]


# ------------------------------------------------------------------------------------ the network diagram


def input_maps() -> list[np.ndarray]:
    """What the two input neurons pass on: the x and the y coordinate over the grid."""
    gx, gy = np.meshgrid(grid_axis(), grid_axis())
    return [gx, gy]


def _columns(net) -> list[list[np.ndarray]]:
    """The diagram's columns of neuron maps: the inputs, each hidden layer, the output (p(orange) as +-1)."""
    return [input_maps()] + [list(layer) for layer in net.neurons] + [[net.boundary * 2 - 1]]


def column_label(col: int, count: int) -> str:
    return "input" if col == 0 else "output" if col == count - 1 else f"layer {col}"


def neuron_label(col: int, row: int, count: int) -> str:
    if col == 0:
        return ("x", "y")[row]
    if col == count - 1:
        return "output: p(orange)"
    return f"layer {col}, neuron {row + 1}"


def neuron_options(net) -> list[tuple[int, int]]:
    """(column, row) of every neuron the diagram shows: inputs, hidden neurons, the output."""
    out = [(0, 0), (0, 1)]
    for col, layer in enumerate(net.neurons, start=1):
        out += [(col, row) for row in range(len(layer))]
    return out + [(len(net.neurons) + 1, 0)]


def neuron_title(net, choice: tuple[int, int]) -> str:
    return neuron_label(choice[0], choice[1], len(net.neurons) + 2)


def _thumbnail(values: np.ndarray) -> np.ndarray:
    """A neuron map as THUMB x THUMB cells in [0, 1] (0 the most negative, 1 the most positive), up is +y."""
    step = max(values.shape[0] // THUMB, 1)
    small = np.asarray(values)[::step, ::step][:THUMB, :THUMB]
    reach = float(np.max(np.abs(small))) or 1.0
    return quantise(small, -reach, reach)


def diagram_weights(weights: list[np.ndarray]) -> list[np.ndarray]:
    """The weights the diagram's links stand for: every dense layer's, except that the two logits' rows become
    one, logit 1 minus logit 0, what the one output neuron p(orange) = sigmoid(z1 - z0) weighs its inputs by."""
    out = [np.asarray(w, dtype=np.float64) for w in weights]
    if out and out[-1].shape[0] == 2:
        out[-1] = (out[-1][1] - out[-1][0])[None, :]
    return out


def link_widths(weights: list[np.ndarray]) -> list[list[int]]:
    """Per dense layer, (out, in) flattened row by row: the link's width 1..5 by |latent weight| against the
    largest of the network, negative for a weight whose sign is -1 (sign(0) = +1)."""
    largest = max((float(np.max(np.abs(w))) for w in weights if w.size), default=0.0) or 1.0
    out = []
    for weight in weights:
        w = np.asarray(weight, dtype=np.float64)
        width = 1 + np.round(4 * np.abs(w) / largest).astype(int)
        out.append(np.where(w >= 0, width, -width).reshape(-1).tolist())
    return out


def diagram_layout(net, width: int = DIAGRAM_WIDTH_PX) -> dict:
    """Where the diagram puts its columns and neurons, in pixels of a ``width`` wide picture: columns evenly
    apart, each column's neurons centred, a neuron a square map of ``box`` pixels."""
    columns = _columns(net)
    tallest = max(len(c) for c in columns)
    height = 120 + 30 * max(tallest, 6)
    x_range, y_range = 2.0 * (len(columns) - 1) + 1.2, tallest + 0.6
    box = int(min(0.8 * (height - 40) / y_range, 48.0))

    def pixel(col: int, row: int) -> tuple[float, float]:
        x, y = col * 2.0, (len(columns[col]) - 1) / 2.0 - row
        return (x + 0.6) / x_range * width, (y_range / 2 + 0.4 - y) / (y_range + 0.4) * height

    neurons = []
    for col, maps in enumerate(columns):
        for row in range(len(maps)):
            cx, cy = pixel(col, row)
            neurons.append([int(cx - box / 2), int(cy - box / 2), col, row, neuron_label(col, row, len(columns))])
    return {
        "width": width,
        "height": height,
        "box": box,
        "columns": [
            {"x": round(pixel(col, 0)[0], 1), "label": column_label(col, len(columns)), "count": len(maps)}
            for col, maps in enumerate(columns)
        ],
        "neurons": neurons,
    }


def diagram_payload(frame, which: str, selected: tuple[int, int]) -> dict:
    """The diagram of network ``which`` (links, neuron thumbnails, the selected one) and the selected neuron's
    map large over the training points."""
    net = frame.nets[which]
    columns = _columns(net)
    col, row = selected
    if col == len(columns) - 1:
        big, low, high = net.boundary, 0.0, 1.0  # the output neuron: the decision boundary itself
    else:
        big = columns[col][row]
        reach = float(np.max(np.abs(big))) or 1.0
        low, high = -reach, reach
    return {
        **diagram_layout(net),
        "net": which,
        "nets": [[name, title] for name, title in NET_TITLES.items()],
        "links": link_widths(diagram_weights(net.weights)),
        "link_colors": [LINK_COLORS["+"], LINK_COLORS["-"]],
        "thumb": THUMB,
        "thumbs": [b64(_thumbnail(maps[r])) for maps in columns for r in range(len(maps))],
        "selected": [col, row],
        "map_title": f"{NET_TITLES[which]}: {neuron_title(net, selected)}",
        "map": b64(quantise(big, low, high)),
    }


# ------------------------------------------------------------------------------------ the whole frame


def accuracy_text(net) -> str:
    return f"test accuracy {net.test_accuracy:.0%}, loss {net.test_loss:.3f}"


def live_payload(
    frame,
    points,
    *,
    hide: frozenset[str] | set[str] = frozenset(),
    diagram_net: str = "bnn",
    neuron: tuple[int, int] | None = None,
    link: str | None = None,
    playing: bool = False,
    frame_ms: int = 100,
) -> dict:
    """Everything one frame of the live view draws (see the module's docstring); ``neuron`` None or not in the
    network picks the output neuron; ``link`` is the share link (None: no link part). While ``playing`` the view
    asks for the next frame once it has painted this one, ``frame_ms`` after it asked for this one at the
    earliest."""
    heading = f"Epoch {frame.epoch}" + (" (the last a link can hold)" if frame.epoch >= MAX_EPOCH else "")
    nets = {
        name: {
            "title": title,
            "color": NET_COLORS[name],
            "text": accuracy_text(frame.nets[name]),
            "boundary": b64(quantise(frame.nets[name].boundary, 0.0, 1.0)),
        }
        for name, title in NET_TITLES.items()
    }
    grid = frame.nets["bnn"].boundary.shape[0]
    payload = {
        "epoch": frame.epoch,
        "heading": heading,
        "playing": bool(playing),
        "frame_ms": int(frame_ms),
        "grid": grid,
        "extent": EXTENT,
        "ticks": [-1, 0, 1],
        "scale": list(SCALE),
        "classes": list(CLASS_COLORS),
        "nets": nets,
        "points": points_payload(points),
        "summary": f"{heading}. " + ". ".join(f"{n['title']}: {n['text']}" for n in nets.values()) + ".",
    }
    if "stats" not in hide:
        payload["stats"] = stats_payload(frame)
    if "curves" not in hide:
        payload["curves"] = curves_payload(frame.history)
    if "diagram" not in hide:
        which = diagram_net if diagram_net in NET_TITLES else "bnn"
        options = neuron_options(frame.nets[which])
        selected = tuple(neuron) if neuron is not None and tuple(neuron) in options else options[-1]
        payload["diagram"] = diagram_payload(frame, which, selected)
    if link is not None and "link" not in hide:
        payload["link"] = link
    return payload
