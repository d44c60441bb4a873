"""The playground's widgets and its live view: the URL-bound controls and the one component that draws a frame.

The URL is the truth (workbench.core.playground): every run starts from ``parse_query(st.query_params)``,
each control's value is written into its session-state key from those settings before the control is drawn,
and a change goes back into the URL through a callback. Opening a link, a scenario button or a reload
therefore all show what the query string says.
"""

from __future__ import annotations

import contextlib
import dataclasses
import pathlib
import random
import time

import streamlit as st
from streamlit.errors import StreamlitPageNotFoundError

from workbench.core.playground import (
    ACTIVATION_CHOICES,
    DATASETS,
    FIELDS,
    MAX_EPOCH,
    MAX_LAYERS,
    MAX_UNITS,
    OPTIMIZERS,
    QUANTIZER_CHOICES,
    SCALINGS,
    Settings,
    View,
    parse_query_string,
    query_string,
    scenario,
    to_query,
    with_layers,
)
from workbench.train.playground import PlaygroundSession
from workbench.train.playground import warm_up as warm_up_training
from workbench.ui.playground_live import NET_TITLES, live_payload, neuron_options

KEY = "pg_"  # prefix of every playground session-state key
SESSION_KEY = KEY + "session"
LIVE_KEY = KEY + "live"  # the live view component: its state (a clicked neuron, the diagram's network)
NEURON_KEY = KEY + "neuron"  # the neuron shown large: (column, row)
DIAGRAM_NET_KEY = KEY + "diagram_net"  # the network the diagram shows: bnn or float
FRAME_SECONDS = 0.1  # while playing, the live view asks for the next frame this long after the last at the earliest
URL_EPOCH_SECONDS = 1.0  # while playing, the address bar's epoch follows the run this often
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


# ------------------------------------------------------------------------------------ the live view
# One st.components.v2 component draws the whole live view on canvases from a small payload per frame
# (workbench/ui/playground_live.py builds it, playground_live.js paints it). Streamlit keeps the component
# mounted while its data changes, so a frame is one element for Streamlit to update and a repaint in the
# browser, instead of a dozen re-rendered images, metrics and Vega charts; and a click on a neuron or on the
# network switch lands while the run plays. While playing, the view itself asks for each next frame (its
# ``frame`` trigger reruns the live fragment) once it has painted the last: a busy browser is never sent frames
# it cannot paint, which a timed fragment did (with 4 tabs on 2 cores the server trained 5 frames a second per
# tab and the browser painted 1.2 of them).

_ASSETS = pathlib.Path(__file__).resolve().parent
_LIVE_HTML = """<div class="pg-live">
<h3 class="pg-epoch"></h3><p class="pg-summary"></p>
<div class="pg-boundaries">
<figure class="pg-net" data-net="bnn">
<figcaption><span class="pg-title"></span><span class="pg-text"></span></figcaption>
<canvas role="img"></canvas></figure>
<figure class="pg-net" data-net="float">
<figcaption><span class="pg-title"></span><span class="pg-text"></span></figcaption>
<canvas role="img"></canvas></figure>
</div>
<div class="pg-stats">
<div class="pg-metric"><div class="pg-label"></div><div class="pg-value"></div><div class="pg-delta"></div></div>
<div class="pg-metric"><div class="pg-label"></div><div class="pg-value"></div><div class="pg-delta"></div></div>
<div class="pg-metric"><div class="pg-label"></div><div class="pg-value"></div><div class="pg-delta"></div></div>
</div>
<div class="pg-charts"><canvas class="pg-curves" role="img"></canvas><canvas class="pg-flips" role="img"></canvas></div>
<div class="pg-diagram">
<div class="pg-diagram-left">
<div class="pg-switch" role="group" aria-label="network diagram of">
<button type="button"></button><button type="button"></button></div>
<div class="pg-diagram-view"><canvas role="img"></canvas></div>
<p class="pg-caption">Click a neuron to see its map large (or tab to it and press Enter).</p>
</div>
<div class="pg-diagram-right"><div class="pg-map-title"></div><canvas role="img"></canvas></div>
</div>
<div class="pg-link"><p class="pg-caption">Link to this run at this epoch (it opens paused):</p>
<div class="pg-row"><code></code><button type="button" class="pg-copy">Copy link</button><span class="pg-copied"
 aria-live="polite"></span></div></div>
</div>"""
_live_component = st.components.v2.component(
    "bnn_workbench_playground_live",
    html=_LIVE_HTML,
    css=(_ASSETS / "playground_live.css").read_text(),
    js=(_ASSETS / "playground_live.js").read_text(),
)


def live_view(frame, points, settings: Settings, view: View) -> None:
    """Draw one frame of the live view: both boundaries, the figures, the charts, the diagram, the link."""
    which = st.session_state.get(DIAGRAM_NET_KEY, "bnn")
    options = neuron_options(frame.nets[which if which in NET_TITLES else "bnn"])
    pick_neuron(options)
    link = None if "link" in view.hide else share_link(settings, view, frame.epoch)
    payload = live_payload(
        frame,
        points,
        hide=view.hide,
        diagram_net=which,
        neuron=st.session_state[NEURON_KEY],
        link=link,
        playing=view.play,
        frame_ms=round(1000 * FRAME_SECONDS),
    )
    _live_component(
        key=LIVE_KEY,
        data=payload,
        on_neuron_change=_on_neuron_click,
        on_net_change=_on_net_click,
        on_frame_change=_on_frame_request,
    )


def _on_frame_request() -> None:
    """The view painted a frame while playing and asks for the next: the rerun of the live fragment is the
    answer (it trains and draws), so nothing is left to do here."""


def _on_neuron_click() -> None:
    clicked = clicked_neuron(st.session_state.get(LIVE_KEY))
    if clicked is not None:
        st.session_state[NEURON_KEY] = clicked


def _on_net_click() -> None:
    picked = clicked_net(st.session_state.get(LIVE_KEY))
    if picked is not None:
        st.session_state[DIAGRAM_NET_KEY] = picked


def pick_neuron(options: list[tuple[int, int]]) -> None:
    """Keep the neuron shown large (a click on the diagram sets it, _on_neuron_click) one of ``options``: the
    output neuron where none was picked or the one picked is no longer in the network."""
    if st.session_state.get(NEURON_KEY) not in options:
        st.session_state[NEURON_KEY] = options[-1]


def clicked_neuron(state) -> tuple[int, int] | None:
    """The neuron a click on the diagram picked, from the component's state: its ``neuron`` value is
    [column, row, when], the time making every click a change."""
    try:
        data = state["neuron"]
    except (KeyError, TypeError):
        return None
    if isinstance(data, (list, tuple)) and len(data) == 3 and all(isinstance(v, int) for v in data[:2]):
        return int(data[0]), int(data[1])
    return None


def clicked_net(state) -> str | None:
    """The network the diagram's switch picked, from the component's state: its ``net`` value is [name, when]."""
    try:
        name = state["net"][0]
    except (KeyError, TypeError, IndexError):
        return None
    return name if name in NET_TITLES else None


def warm_up() -> None:
    """Train and draw one tiny frame, so that the first visitor pays neither torch's first-call costs nor the
    payload's: the app command runs this before the server starts."""
    session = warm_up_training()
    frame = session.snapshot()
    live_payload(frame, session.points, neuron=(1, 0), link="")


def page_link_if_in_app(page: str, label: str) -> None:
    """A link to another page of the app; nothing when the playground runs on its own (its tests,
    ``streamlit run pages/playground.py``), where no other page exists to link to."""
    with contextlib.suppress(StreamlitPageNotFoundError):
        st.page_link(page, label=label, icon=":material/compare:")
