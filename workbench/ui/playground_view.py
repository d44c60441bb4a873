"""The playground's widgets and pictures: the URL-bound controls, boundary maps, curves, the network diagram.

The URL is the truth (workbench.core.playground): every run starts from ``parse_query(st.query_params)``,
each control's value is written into its session-state key from those settings before the control is drawn,
and a change goes back into the URL through a callback. Opening a link, a scenario button or a reload
therefore all show what the query string says.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import random
import time

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image, ImageDraw, ImageFont

from workbench.core.playground import (
    ACTIVATION_CHOICES,
    DATASETS,
    EXTENT,
    FIELDS,
    MAX_EPOCH,
    MAX_LAYERS,
    MAX_UNITS,
    OPTIMIZERS,
    QUANTIZER_CHOICES,
    SCALINGS,
    Settings,
    View,
    grid_axis,
    parse_query_string,
    query_string,
    scenario,
    to_query,
    with_layers,
)
from workbench.train.playground import PlaygroundSession
from workbench.train.playground import warm_up as warm_up_training
from workbench.ui.figures import BINARY_COLOR, FP32_COLOR

KEY = "pg_"  # prefix of every playground session-state key
SESSION_KEY = KEY + "session"
DIAGRAM_KEY = KEY + "diagram"
NEURON_KEY = KEY + "neuron"
TICK_SECONDS = 0.1  # while playing, the live fragment asks for a frame this often (pending ticks coalesce)
URL_EPOCH_SECONDS = 1.0  # while playing, the address bar's epoch follows the run this often
DIAGRAM_WIDTH_PX = 560  # about the diagram's column on a laptop screen: sizes the neuron maps (kept square anyway)
NET_TITLES = {"bnn": "BNN", "float": "float twin"}
NET_COLORS = {"bnn": BINARY_COLOR, "float": FP32_COLOR}
CLASS_COLORS = ("#1f77b4", "#ff7f0e")  # class 0, class 1 (TensorFlow Playground's blue and orange)
# Diverging blue-white-orange for values in [0, 1] (probabilities) or [-1, 1] (neuron outputs).
SCALE = [[0.0, "#0b62a4"], [0.5, "#f7f7f7"], [1.0, "#e8710a"]]
LR_CHOICES = (1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1.0)
BOP_THRESHOLDS = (0.0, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3)
BOP_GAMMAS = (1e-5, 1e-4, 1e-3, 1e-2, 0.1)
QUANTIZER_LABELS = {
    "ste_sign": "ste_sign (straight-through)",
    "approx_sign": "approx_sign (Bi-Real)",
    "soft_sign": "soft_sign (soft-to-hard)",
}
LECTURE_CSS = """<style>
section[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"], [data-testid="stExpandSidebarButton"],
[data-testid="stSidebarCollapseButton"] {display: none !important;}
html {font-size: 21px;}
</style>"""

# While playing, the parts of the page below the one being redrawn count as stale for Streamlit, which fades
# them out whenever a frame takes long (a busy machine): the lower half of the page would flicker every frame.
PLAYING_CSS = """<style>
[data-testid="stElementContainer"][data-stale="true"], [data-stale="true"] {opacity: 1 !important;
transition: none !important;}
</style>"""


# ------------------------------------------------------------------------------------ URL <-> widgets


def write_url(settings: Settings, view: View) -> None:
    """Replace the whole query string by the settings and view."""
    st.query_params.from_dict(to_query(settings, view))


def normalise_url(settings: Settings, view: View) -> None:
    """Write every setting into the address bar (a link opened with a few parameters shows them all)."""
    if st.query_params.to_dict() != to_query(settings, view):
        write_url(settings, view)


def share_link(settings: Settings, view: View, epoch: int) -> str:
    """The link that opens this run on this page at ``epoch``, paused."""
    base = st.context.url or ""
    return f"{base}?{query_string(dataclasses.replace(settings, epoch=epoch), dataclasses.replace(view, play=False))}"


def _set(settings: Settings, view: View, **changes) -> None:
    """A callback's write: a changed setting starts the run again from epoch 0."""
    write_url(dataclasses.replace(settings, epoch=0, **changes), view)


def _on_field(name: str, settings: Settings, view: View) -> None:
    _set(settings, view, **{name: st.session_state[KEY + name]})


def _on_layer_count(settings: Settings, view: View) -> None:
    count = int(st.session_state[KEY + "layer_count"])
    units = settings.layers[:count] + (settings.layers[-1],) * (count - len(settings.layers))
    write_url(dataclasses.replace(with_layers(settings, units), epoch=0), view)


def _on_layer(name: str, index: int, settings: Settings, view: View) -> None:
    values = list(getattr(settings, name))
    values[index] = st.session_state[f"{KEY}{name}_{index}"]
    _set(settings, view, **{name: tuple(values)})


def _on_regenerate(settings: Settings, view: View) -> None:
    _set(settings, view, seed=random.randrange(FIELDS["seed"].high + 1))


def _on_speed(settings: Settings, view: View) -> None:
    write_url(_at(settings), dataclasses.replace(view, speed=int(st.session_state[KEY + "speed"])))


def follow_epoch(epoch: int) -> None:
    """While playing, write the epoch into the address bar at most once a second: each write is a browser
    history entry whose page-info update and re-render took a sixth of the browser's main thread at every
    frame. Pause, step and every other control write the exact epoch (``_at``), so a link is never behind."""
    now = time.monotonic()
    if now - st.session_state.get(KEY + "url_epoch_at", -URL_EPOCH_SECONDS) >= URL_EPOCH_SECONDS:
        st.query_params["epoch"] = str(epoch)
        st.session_state[KEY + "url_epoch_at"] = now


# ------------------------------------------------------------------------------------ the session


def session_for(settings: Settings) -> PlaygroundSession:
    """This tab's session, at the URL's epoch: a new one when the settings changed, replayed from the seed.

    One session per browser tab (st.session_state), trained on the script thread by the page's fragment: a
    few milliseconds per epoch, no thread to start or stop, and a closed tab leaves nothing running.
    """
    session = st.session_state.get(SESSION_KEY)
    if session is None or session.settings.run_key() != settings.run_key():
        session = PlaygroundSession(settings)
        st.session_state[SESSION_KEY] = session
    if settings.epoch < session.epoch:
        session.reset()
    if settings.epoch > session.epoch:
        with st.spinner(f"Replaying {settings.epoch - session.epoch} epochs from the link…"):
            session.advance_to(settings.epoch)
    return session


def play_steps(session: PlaygroundSession, view: View) -> int:
    """Epochs the next frame trains while playing: the speed, up to the last epoch a link can hold."""
    return max(min(view.speed, MAX_EPOCH - session.epoch), 0) if view.play else 0


def stop_at_the_end(settings: Settings, view: View) -> None:
    """Playing has reached the last epoch a link can hold: pause there (the caller reruns the app)."""
    write_url(_at(settings), dataclasses.replace(view, play=False))


def _at(settings: Settings) -> Settings:
    """The settings at the tab's session's epoch."""
    return dataclasses.replace(settings, epoch=st.session_state[SESSION_KEY].epoch)


def on_play(settings: Settings, view: View) -> None:
    write_url(_at(settings), dataclasses.replace(view, play=not view.play))


def on_step(settings: Settings, view: View) -> None:
    session = st.session_state[SESSION_KEY]
    session.step(1 if session.epoch < MAX_EPOCH else 0)
    write_url(_at(settings), dataclasses.replace(view, play=False))


def on_reset(settings: Settings, view: View) -> None:
    st.session_state[SESSION_KEY].reset()
    write_url(dataclasses.replace(settings, epoch=0), view)


def on_scenario(name: str, view: View) -> None:
    """Open a scenario: its query string, playing, in the current view (lecture mode and hidden controls)."""
    settings, _, _ = parse_query_string(scenario(name).query)
    write_url(settings, dataclasses.replace(view, play=True, scenario=name))


def _choices(values: tuple, current) -> list:
    """A select box's options: the usual values and, where a link gave another one, that one too."""
    return sorted(set(values) | {current})


class Controls:
    """Draws the setting controls into a container; skips hidden ones and, in lecture mode, advanced ones."""

    def __init__(self, settings: Settings, view: View):
        self.settings, self.view = settings, view
        self.args = (settings, view)

    def shown(self, name: str) -> bool:
        if name in self.view.hide:
            return False
        field = FIELDS.get(name)
        return not (self.view.lecture and field is not None and field.advanced)

    def _sync(self, key: str, value) -> str:
        st.session_state[KEY + key] = value
        return KEY + key

    def _field(self, widget, name: str, label: str, **kwargs) -> None:
        if self.shown(name):
            key = self._sync(name, getattr(self.settings, name))
            widget(label, key=key, on_change=_on_field, args=(name, *self.args), **kwargs)

    def draw(self) -> None:
        s = self.settings
        st.subheader("Data")
        self._field(st.selectbox, "dataset", "dataset", options=DATASETS)
        self._field(st.slider, "noise", "noise (%)", min_value=0, max_value=50, step=5)
        self._field(st.slider, "points", "points", min_value=50, max_value=1000, step=50)
        self._field(st.slider, "train", "training share (%)", min_value=10, max_value=90, step=10)
        if self.shown("seed"):
            left, right = st.columns([3, 2], vertical_alignment="bottom")
            with left:
                self._field(st.number_input, "seed", "seed", min_value=0, max_value=int(FIELDS["seed"].high))
            right.button(
                "Regenerate",
                key=KEY + "regenerate",
                on_click=_on_regenerate,
                args=self.args,
                help="new points and a new start: a new seed",
            )
        st.subheader("Network")
        self.layer_controls()
        self._field(
            st.selectbox, "quantizer", "binarization", options=QUANTIZER_CHOICES, format_func=QUANTIZER_LABELS.get
        )
        if s.quantizer == "soft_sign":
            self._field(
                st.number_input,
                "anneal",
                "soft-to-hard over (epochs)",
                min_value=1,
                max_value=int(FIELDS["anneal"].high),
            )
        self._field(st.toggle, "bn", "batch norm before each sign")
        self._field(
            st.selectbox,
            "activation",
            "float activation",
            options=ACTIVATION_CHOICES,
            help="of hidden layers whose activations are not binary",
        )
        st.subheader("Training")
        self._field(
            st.selectbox,
            "optimizer",
            "optimizer",
            options=OPTIMIZERS,
            format_func=lambda o: {"adam": "Adam", "bop": "Bop (binary weights) + Adam"}[o],
        )
        self._field(st.selectbox, "lr", "learning rate", options=_choices(LR_CHOICES, s.lr), format_func=_g)
        if s.optimizer == "bop":
            self._field(
                st.selectbox,
                "bop_threshold",
                "Bop threshold",
                options=_choices(BOP_THRESHOLDS, s.bop_threshold),
                format_func=_g,
            )
            self._field(
                st.selectbox, "bop_gamma", "Bop gamma", options=_choices(BOP_GAMMAS, s.bop_gamma), format_func=_g
            )
        self._field(st.number_input, "batch", "batch size", min_value=1, max_value=int(FIELDS["batch"].high))
        self._field(st.toggle, "clip", "clip latent weights")
        if s.clip:
            self._field(
                st.number_input,
                "bound",
                "clip bound",
                min_value=FIELDS["bound"].low,
                max_value=FIELDS["bound"].high,
                step=0.25,
                format="%.2f",
            )
        if self.shown("speed"):
            self._sync("speed", self.view.speed)
            st.slider(
                "epochs per frame", min_value=1, max_value=20, key=KEY + "speed", on_change=_on_speed, args=self.args
            )

    def layer_controls(self) -> None:
        s = self.settings
        if self.shown("layers"):
            key = self._sync("layer_count", len(s.layers))
            st.number_input(
                "hidden layers", min_value=1, max_value=MAX_LAYERS, key=key, on_change=_on_layer_count, args=self.args
            )
        for i in range(len(s.layers)):
            top = [name for name in ("layers", "scaling") if self.shown(name)]
            bottom = [name for name in ("bw", "ba") if self.shown(name)]
            if top or bottom:
                st.caption(f"hidden layer {i + 1}")
            for names in (top, bottom):
                for column, name in zip(st.columns(2, vertical_alignment="bottom") if names else (), names):
                    with column:
                        self._layer_field(name, i)

    def _layer_field(self, name: str, i: int) -> None:
        s, key = self.settings, self._sync(f"{name}_{i}", getattr(self.settings, name)[i])
        args = (name, i, *self.args)
        if name == "layers":
            st.number_input("neurons", min_value=1, max_value=MAX_UNITS, key=key, on_change=_on_layer, args=args)
        elif name == "scaling":
            st.selectbox(
                "scaling",
                SCALINGS,
                key=key,
                on_change=_on_layer,
                args=args,
                disabled=not s.bw[i],
                help="of the binary weights: none, xnor (mean |W| per neuron) or learnable",
            )
        else:
            label = {"bw": "binary weights", "ba": "binary activations"}[name]
            st.checkbox(label, key=key, on_change=_on_layer, args=args)


def _g(value: float) -> str:
    return f"{value:g}"


# ------------------------------------------------------------------------------------ live images
# What changes every frame is drawn as PNG images and Vega-Lite charts, not Plotly: st.plotly_chart keys its
# element by an id computed from the figure, so a new figure remounts the chart (a blank flash and a full
# redraw on every frame), while st.image and a selection-free st.vega_lite_chart update in place. An image goes
# to st.image as a data URI: handed bytes or a PIL image, Streamlit decodes and re-encodes it (about 3 ms) and
# the browser fetches it from the media endpoint in a second round trip; a data URI travels in the frame itself.

IMAGE_PX = 360  # side of a boundary or neuron map image
MAX_CURVE_POINTS = 400  # per line of the curves: a longer history is drawn every k-th epoch (and the last)
_FONT = ImageFont.load_default(size=12)
_OVERLAYS: dict[tuple, tuple] = {}  # (id(points), show_test, size) -> (points, the layer drawn over a map)


def _colours(t: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> RGB along the blue-white-orange scale."""
    low, mid, high = (np.array(_rgb(c), dtype=np.float32) for _, c in SCALE)
    t = np.clip(t, 0, 1)[..., None]
    return np.where(t < 0.5, low + (mid - low) * (t * 2), mid + (high - mid) * (t * 2 - 1)).astype(np.uint8)


def _to_pixels(x: np.ndarray, size: int) -> np.ndarray:
    """Data coordinates in [-EXTENT, EXTENT] -> pixel coordinates (y up)."""
    pixels = (x + EXTENT) / (2 * EXTENT) * size
    return np.c_[pixels[:, 0], size - pixels[:, 1]]


def _overlay(points, show_test: bool, size: int) -> Image.Image:
    """The training points (filled), test points (rings), frame and ticks on a transparent layer: the same for
    every frame of a run, so drawn once (500 points cost about 3 ms in PIL) and laid over each new map."""
    key = (id(points), show_test, size)
    cached = _OVERLAYS.get(key)
    if cached is not None and cached[0] is points:  # the cache holds `points`: its id cannot be reused meanwhile
        return cached[1]
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    sets = [(points.x_train, points.y_train, False)] + ([(points.x_test, points.y_test, True)] if show_test else [])
    for x, y, test in sets:
        for (px, py), label in zip(_to_pixels(x, size), y, strict=True):
            colour = CLASS_COLORS[int(label)]
            if test:
                draw.ellipse((px - 3.5, py - 3.5, px + 3.5, py + 3.5), outline=colour, width=2)
            else:
                draw.ellipse((px - 3, py - 3, px + 3, py + 3), fill=colour, outline="white")
    draw.rectangle((0, 0, size - 1, size - 1), outline="#999999")
    for tick in (-1, 0, 1):  # axis ticks, in data units
        at = (tick + EXTENT) / (2 * EXTENT) * size
        draw.line((at, size - 6, at, size - 1), fill="#666666")
        draw.line((0, size - at, 5, size - at), fill="#666666")
        draw.text((at + 2, size - 16), str(tick), fill="#444444", font=_FONT)
    while len(_OVERLAYS) >= 16:  # a few runs' worth: the tabs of one lecture
        del _OVERLAYS[next(iter(_OVERLAYS))]
    _OVERLAYS[key] = (points, image)
    return image


def map_image(
    values: np.ndarray, points, low: float, high: float, show_test: bool = True, size: int = IMAGE_PX
) -> Image.Image:
    """A map over the grid (a boundary: low 0, high 1) with the training points (filled) and test points (rings)."""
    cells = _colours((np.asarray(values, dtype=np.float32) - low) / (high - low))[::-1]  # row 0 at the top
    image = Image.fromarray(cells).resize((size, size), Image.Resampling.NEAREST).convert("RGBA")
    image.alpha_composite(_overlay(points, show_test, size))
    return image.convert("RGB")


def boundary_image(boundary: np.ndarray, points, show_test: bool = True) -> Image.Image:
    return map_image(boundary, points, 0.0, 1.0, show_test)


def neuron_image(net, choice: tuple[int, int], points) -> Image.Image:
    """The large map of one neuron of the diagram (the output neuron: the decision boundary)."""
    col, row = choice
    if col == len(net.neurons) + 1:
        return boundary_image(net.boundary, points, show_test=False)
    values = input_maps()[row] if col == 0 else net.neurons[col - 1][row]
    reach = float(np.max(np.abs(values))) or 1.0
    return map_image(values, points, -reach, reach, show_test=False)


def neuron_title(net, choice: tuple[int, int]) -> str:
    return _neuron_label(choice[0], choice[1], len(net.neurons) + 2)


def _thinned(count: int, most: int = MAX_CURVE_POINTS) -> np.ndarray:
    """Indices of the epochs a curve draws: all of them up to ``most``, else every k-th and the last."""
    if count <= most:
        return np.arange(count)
    return np.unique(np.r_[np.arange(0, count, -(-count // most)), count - 1])


def _history_frame(history: dict, keys: dict[str, str]) -> pd.DataFrame:
    """Long-form rows (epoch, value, network, metric) for Vega-Lite, NaN (not measured) left out; built as whole
    columns into one frame: a row loop (at epoch 3,000) or a frame per line and a concat cost more than training."""
    epochs, values, networks, metrics = [], [], [], []
    for name, history_of in history.items():
        for key, label in keys.items():
            keep = _thinned(len(history_of[key]))
            line = np.asarray(history_of[key], dtype=np.float64)[keep]
            measured = ~np.isnan(line)
            epochs.append(keep[measured] + 1)
            values.append(line[measured])
            networks += [NET_TITLES[name]] * int(measured.sum())
            metrics += [label] * int(measured.sum())
    return pd.DataFrame(
        {"epoch": np.concatenate(epochs), "value": np.concatenate(values), "network": networks, "metric": metrics}
    )


def _layered(layers: list[dict], title: str, height: int) -> dict:
    """A Vega-Lite spec of layers with independent y axes, as a plain dict: st.vega_lite_chart takes it as it is,
    where an Altair chart would be validated against the Vega-Lite schema on every frame (about 80 ms each)."""
    return {"layer": layers, "resolve": {"scale": {"y": "independent"}}, "height": height, "title": title}


def _where(metric: str) -> list[dict]:
    return [{"filter": {"field": "metric", "equal": metric}}]


_EPOCH = {"field": "epoch", "type": "quantitative", "title": "epoch"}


def curves_spec(height: int = 300) -> dict:
    """Test loss (solid, left axis) and test accuracy (dotted, right axis) of both networks, per epoch."""
    colour = {
        "field": "network",
        "type": "nominal",
        "scale": {"domain": list(NET_TITLES.values()), "range": [NET_COLORS[n] for n in NET_TITLES]},
    }
    tooltip = [
        {"field": "epoch", "type": "quantitative"},
        {"field": "network", "type": "nominal"},
        {"field": "metric", "type": "nominal"},
        {"field": "value", "type": "quantitative", "format": ".3f"},
    ]
    loss = {
        "mark": "line",
        "transform": _where("test loss"),
        "encoding": {
            "x": _EPOCH,
            "color": colour,
            "tooltip": tooltip,
            "y": {"field": "value", "type": "quantitative", "title": "test loss (solid)", "scale": {"zero": True}},
        },
    }
    accuracy = {
        "mark": {"type": "line", "strokeDash": [4, 3]},
        "transform": _where("test accuracy"),
        "encoding": {
            "x": _EPOCH,
            "color": colour,
            "tooltip": tooltip,
            "y": {
                "field": "value",
                "type": "quantitative",
                "title": "test accuracy (dotted)",
                "scale": {"domain": [0, 1]},
            },
        },
    }
    return _layered([loss, accuracy], "Test loss and accuracy", height)


def curves_data(history: dict) -> pd.DataFrame:
    return _history_frame(history, {"test_loss": "test loss", "test_accuracy": "test accuracy"})


def flips_spec(height: int = 300) -> dict:
    """The BNN's weight flips per epoch (bars, left axis) and its share of latent weights at the clip bound."""
    tooltip = [
        {"field": "epoch", "type": "quantitative"},
        {"field": "metric", "type": "nominal"},
        {"field": "value", "type": "quantitative", "format": ".3g"},
    ]
    flips = {
        "mark": {"type": "bar", "color": BINARY_COLOR},
        "transform": _where("flips"),
        "encoding": {
            "x": _EPOCH,
            "tooltip": tooltip,
            "y": {"field": "value", "type": "quantitative", "title": "flips per epoch"},
        },
    }
    bound = {
        "mark": {"type": "line", "color": "#d62728"},
        "transform": _where("at the clip bound"),
        "encoding": {
            "x": _EPOCH,
            "tooltip": tooltip,
            "y": {
                "field": "value",
                "type": "quantitative",
                "title": "share at the clip bound (line)",
                "scale": {"domain": [0, 1]},
            },
        },
    }
    return _layered([flips, bound], "BNN: weight flips and saturation", height)


def flips_data(history: dict) -> pd.DataFrame:
    return _history_frame({"bnn": history["bnn"]}, {"flips": "flips", "at_bound": "at the clip bound"})


def png(image: Image.Image) -> bytes:
    """PNG bytes with light compression (level 1: a 360 px map in about 2 ms, 20 kB)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def data_uri(image: Image.Image) -> str:
    """The image as a PNG data URI, for st.image and the diagram component (see the top of this section)."""
    return "data:image/png;base64," + base64.b64encode(png(image)).decode("ascii")


# ------------------------------------------------------------------------------------ the network diagram
# One still image of the whole network, redrawn every frame, under a layer of transparent buttons, one per
# neuron, that st.components.v2 keeps mounted while the image changes: a click picks a neuron while the run
# plays, which a Plotly figure could not (it would be remounted, and lose the click, on every frame).

_DIAGRAM_HTML = '<div class="diagram"><img alt="network diagram"></div>'
_DIAGRAM_CSS = """
.diagram {position: relative; width: 100%; line-height: 0;}
.diagram img {width: 100%; height: auto; display: block;}
.diagram button {position: absolute; margin: 0; padding: 0; border: 0; background: transparent; cursor: pointer;}
.diagram button:hover, .diagram button:focus-visible {outline: 2px solid #333; outline-offset: 2px;}
"""
_DIAGRAM_JS = """
export default function ({ data, parentElement, setTriggerValue }) {
  const root = parentElement.querySelector(".diagram");
  const image = root.querySelector("img");
  if (image.getAttribute("src") !== data.src) image.setAttribute("src", data.src);
  const layout = JSON.stringify([data.width, data.height, data.boxes]);
  if (root.dataset.layout === layout) return;  // the same network: keep the buttons (and a hover on them)
  root.dataset.layout = layout;
  root.querySelectorAll("button").forEach((old) => old.remove());
  for (const [left, top, side, column, row, label] of data.boxes) {
    const hit = document.createElement("button");
    hit.type = "button";
    hit.title = label;
    hit.setAttribute("aria-label", label);
    hit.dataset.neuron = column + "," + row;
    Object.assign(hit.style, {
      left: (100 * left) / data.width + "%",
      top: (100 * top) / data.height + "%",
      width: (100 * side) / data.width + "%",
      height: (100 * side) / data.height + "%",
    });
    hit.addEventListener("click", () => setTriggerValue("neuron", [column, row]));
    root.appendChild(hit);
  }
}
"""
_diagram_component = st.components.v2.component(
    "bnn_workbench_playground_diagram", html=_DIAGRAM_HTML, css=_DIAGRAM_CSS, js=_DIAGRAM_JS
)


def diagram(net, selected: tuple[int, int] | None, key: str) -> None:
    """Draw the clickable diagram of ``net``; a click on a neuron makes it the one shown large (pick_neuron)."""
    image, boxes = diagram_picture(net, selected)
    _diagram_component(
        key=key,
        data={"src": data_uri(image), "width": image.width, "height": image.height, "boxes": boxes},
        on_neuron_change=_on_neuron_click,
    )


def _on_neuron_click() -> None:
    clicked = clicked_neuron(st.session_state.get(DIAGRAM_KEY))
    if clicked is not None:
        st.session_state[NEURON_KEY] = clicked


def diagram_picture(
    net, selected: tuple[int, int] | None = None, width: int = DIAGRAM_WIDTH_PX
) -> tuple[Image.Image, list[list]]:
    """The network as an image (neurons as small maps of what they compute, links coloured by the binarized
    sign, orange +1 and blue -1, as wide as the latent weight is large; a box marks the selected neuron) and
    where each neuron lies on it: [left, top, side, column, row, label], in pixels."""
    layout = _diagram_layout(net)
    height = layout["height"]
    x_range, y_range = layout["x_range"], layout["y_range"]

    def pixel(x: float, y: float) -> tuple[float, float]:
        return (x + 0.6) / x_range * width, (y_range / 2 + 0.4 - y) / (y_range + 0.4) * height

    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image, "RGBA")
    for (colour, line_width), (xs, ys) in layout["segments"]:
        rgba = (*_rgb(colour), 150)
        for i in range(0, len(xs), 3):
            draw.line((*pixel(xs[i], ys[i]), *pixel(xs[i + 1], ys[i + 1])), fill=rgba, width=line_width)
    side = int(layout["box_px"])
    boxes = []
    for (x, y), values, cell, label in zip(
        layout["positions"], layout["maps"], layout["ids"], layout["labels"], strict=True
    ):
        px, py = pixel(x, y)
        left, top = int(px - side / 2), int(py - side / 2)
        thumb = Image.fromarray(_thumbnail_pixels(values)).resize((side, side), Image.Resampling.NEAREST)
        image.paste(thumb, (left, top))
        if selected is not None and cell == list(selected):
            draw.rectangle((left - 3, top - 3, left + side + 3, top + side + 3), outline="black", width=2)
        boxes.append([left, top, side, *cell, label])
    for col, label in enumerate(layout["column_labels"]):
        px, _ = pixel(col * 2.0, 0)
        draw.text((px, 4), label, fill="#555555", font=_FONT, anchor="ma")
    return image, boxes


def _thumbnail_pixels(values: np.ndarray, size: int = 20) -> np.ndarray:
    """A neuron map as a small RGB array (blue for negative, orange for positive; up is +y)."""
    step = max(values.shape[0] // size, 1)
    small = values[::step, ::step][::-1]
    reach = float(np.max(np.abs(small))) or 1.0
    return _colours((small / reach + 1) / 2)


def _rgb(color: str) -> tuple[int, int, int]:
    return tuple(int(color[i : i + 2], 16) for i in (1, 3, 5))


def input_maps() -> list[np.ndarray]:
    """What the two input neurons pass on: the x and the y coordinate over the grid."""
    gx, gy = np.meshgrid(grid_axis(), grid_axis())
    return [gx, gy]


def _diagram_layout(net) -> dict:
    """Where the diagram puts neurons and links, in data units: columns 2 apart, neurons 1 apart."""
    columns = [input_maps()] + [list(layer) for layer in net.neurons] + [[net.boundary * 2 - 1]]
    tallest = max(len(c) for c in columns)
    height = 120 + 30 * max(tallest, 6)
    x_range, y_range = 2.0 * (len(columns) - 1) + 1.2, tallest + 0.6
    box_px = min(0.8 * (height - 40) / y_range, 48.0)
    box_x = box_px * x_range / DIAGRAM_WIDTH_PX

    def position(col: int, row: int) -> tuple[float, float]:
        return float(col) * 2.0, (len(columns[col]) - 1) / 2.0 - row

    largest = max(float(np.max(np.abs(w))) for w in net.weights) or 1.0
    segments: dict[tuple[str, int], tuple[list, list]] = {}
    for layer, weight in enumerate(net.weights):
        for out in range(weight.shape[0]):
            for inp in range(weight.shape[1]):
                value = float(weight[out, inp])
                colour = "#e8710a" if value >= 0 else "#0b62a4"  # sign(0) = +1
                width = 1 + int(round(4 * abs(value) / largest))
                xs, ys = segments.setdefault((colour, width), ([], []))
                (x0, y0), (x1, y1) = position(layer, inp), position(layer + 1, out)
                xs += [x0 + box_x / 2, x1 - box_x / 2, None]
                ys += [y0, y1, None]
    cells = [(col, row) for col, maps in enumerate(columns) for row in range(len(maps))]
    return dict(
        height=height,
        x_range=x_range,
        y_range=y_range,
        box_px=box_px,
        segments=sorted(segments.items()),
        positions=[position(*c) for c in cells],
        maps=[columns[col][row] for col, row in cells],
        ids=[list(c) for c in cells],
        labels=[_neuron_label(col, row, len(columns)) for col, row in cells],
        column_labels=[_column_label(col, len(columns)) for col in range(len(columns))],
    )


def _column_label(col: int, count: int) -> str:
    return "input" if col == 0 else "output" if col == count - 1 else f"layer {col}"


def _neuron_label(col: int, row: int, count: int) -> str:
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


def neuron_choice_label(choice: tuple[int, int], net) -> str:
    return _neuron_label(choice[0], choice[1], len(net.neurons) + 2)


def pick_neuron(options: list[tuple[int, int]]) -> str:
    """The select box key of the neuron shown large (a click on the diagram sets it, _on_neuron_click), and the
    output neuron where the one chosen is no longer in the network."""
    if st.session_state.get(NEURON_KEY) not in options:
        st.session_state[NEURON_KEY] = options[-1]
    return NEURON_KEY


def clicked_neuron(state) -> tuple[int, int] | None:
    """The neuron a click on the diagram picked, from the component's state (its ``neuron`` trigger)."""
    try:
        data = state["neuron"]
    except (KeyError, TypeError):
        return None
    if isinstance(data, (list, tuple)) and len(data) == 2 and all(isinstance(v, int) for v in data):
        return int(data[0]), int(data[1])
    return None


def warm_up() -> None:
    """Train and draw one tiny frame, so that the first visitor pays neither torch's first-call costs nor the
    drawing's: the app command runs this in a thread while the server starts."""
    session = warm_up_training()
    frame = session.snapshot()
    net = frame.nets["bnn"]
    data_uri(boundary_image(net.boundary, session.points))
    data_uri(neuron_image(net, (1, 0), session.points))
    diagram_picture(net, (1, 0))
    curves_data(frame.history)
    flips_data(frame.history)


def memory_text(bits: dict[str, int]) -> tuple[str, str]:
    """('2,704 bits', '1.9x smaller than the float twin's 5,184 bits')."""
    bnn, fp = bits["bnn"], bits["float"]
    return f"{bnn:,} bits", f"{fp / max(bnn, 1):.1f}x smaller than float32's {fp:,} bits"
