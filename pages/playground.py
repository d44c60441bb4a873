"""Playground: a tiny 2-D BNN and its float twin learning side by side, live, from a shareable link.

Everything the run is lives in the URL (workbench.core.playground): a link, a reload or a scenario button
reproduces it, epoch included, because training is deterministic. The tab's session trains a few epochs per
tick of the live fragment (workbench.train.playground); the page only lays out controls and figures.
"""

import streamlit as st

from workbench.core.playground import SCENARIOS, parse_query, scenario
from workbench.ui import playground_view as pv

settings, view, notes = parse_query(st.query_params.to_dict())
if view.lecture:
    st.html(pv.LECTURE_CSS)
if view.play:
    st.html(pv.PLAYING_CSS)
st.title("Playground")
if "compare" not in view.hide:
    pv.page_link_if_in_app(
        "pages/compare.py", "Binary vs float on real digits: train a BNN and its float twin side by side"
    )
for note in notes:
    st.warning(note, icon=":material/warning:")
session = pv.session_for(settings)
pv.normalise_url(settings, view)
controls = pv.Controls(settings, view)
# The live view is drawn first, into its place below the controls: its component reaches the browser before the
# widgets, so its script loads and paints while they arrive.
top = st.container()


def live() -> None:
    """One frame: train while playing, then draw both networks as they stand (one component: the live view)."""
    steps = pv.play_steps(session, view)
    if steps:
        session.step(steps)
        pv.follow_epoch(session.epoch)
    elif view.play:
        pv.stop_at_the_end(settings, view)
        st.rerun()
    pv.live_view(session.snapshot(), session.points, settings, view)


st.fragment(live)()  # while playing, the live view asks for each next frame (pv.live_view)

with top:
    if view.lecture:
        with st.expander("Settings"):
            controls.draw()
    if "scenarios" not in view.hide:
        columns = st.columns(4) + st.columns(4)
        for column, item in zip(columns, SCENARIOS, strict=False):
            column.button(
                item.title,
                key=pv.KEY + "scenario_" + item.name,
                on_click=pv.on_scenario,
                args=(item.name, view),
                width="stretch",
                type="primary" if view.scenario == item.name else "secondary",
            )
        if view.scenario:
            st.info(scenario(view.scenario).watch, icon=":material/visibility:")

    if "play" not in view.hide:
        playing = view.play
        buttons = (  # key, label, callback, icon, tooltip, type
            (
                "play",
                "Pause" if playing else "Play",
                pv.on_play,
                ":material/pause:" if playing else ":material/play_arrow:",
                None,
                "primary",
            ),
            ("step", "Step", pv.on_step, ":material/skip_next:", "train one epoch", "secondary"),
            ("reset", "Reset", pv.on_reset, ":material/restart_alt:", "back to epoch 0, the same start", "secondary"),
        )
        for column, (name, label, callback, icon, tip, kind) in zip(st.columns([1, 1, 1, 5]), buttons, strict=False):
            column.button(
                label,
                key=pv.KEY + name,
                type=kind,
                on_click=callback,
                args=(settings, view),
                icon=icon,
                help=tip,
                width="stretch",
            )
if not view.lecture:
    with st.sidebar:
        controls.draw()
