"""Playground: a tiny 2-D BNN and its float twin learning side by side, live, from a shareable link.

Everything the run is lives in the URL (workbench.core.playground): a link, a reload or a scenario button
reproduces it, epoch included, because training is deterministic. The tab's session trains a few epochs per
tick of the live fragment (workbench.train.playground); the page only lays out controls and figures.
"""

import streamlit as st

from workbench.core.playground import MAX_EPOCH, SCENARIOS, parse_query, scenario
from workbench.ui import playground_view as pv

settings, view, notes = parse_query(st.query_params.to_dict())
if view.lecture:
    st.html(pv.LECTURE_CSS)
if view.play:
    st.html(pv.PLAYING_CSS)
st.title("Playground")
for note in notes:
    st.warning(note, icon=":material/warning:")
session = pv.session_for(settings)
pv.normalise_url(settings, view)
controls = pv.Controls(settings, view)

if view.lecture:
    with st.expander("Settings"):
        controls.draw()
else:
    with st.sidebar:
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
    play, step, reset, _ = st.columns([1, 1, 1, 5])
    play.button(
        "Pause" if view.play else "Play",
        key=pv.KEY + "play",
        type="primary",
        on_click=pv.on_play,
        args=(settings, view),
        icon=":material/pause:" if view.play else ":material/play_arrow:",
        width="stretch",
    )
    step.button(
        "Step",
        key=pv.KEY + "step",
        on_click=pv.on_step,
        args=(settings, view),
        icon=":material/skip_next:",
        help="train one epoch",
        width="stretch",
    )
    reset.button(
        "Reset",
        key=pv.KEY + "reset",
        on_click=pv.on_reset,
        args=(settings, view),
        icon=":material/restart_alt:",
        help="back to epoch 0, the same start",
        width="stretch",
    )


def live() -> None:
    """One frame: train while playing, then draw both networks as they stand."""
    steps = pv.play_steps(session, view)
    if steps:
        session.step(steps)
        pv.follow_epoch(session.epoch)
    elif view.play:
        pv.stop_at_the_end(settings, view)
        st.rerun()
    frame = session.snapshot()
    st.markdown(f"### Epoch {frame.epoch}" + (" (the last a link can hold)" if frame.epoch >= MAX_EPOCH else ""))
    for column, name in zip(st.columns(2), pv.NET_TITLES, strict=True):
        net = frame.nets[name]
        with column.container(key=pv.KEY + "boundary_" + name):
            st.markdown(f"**{pv.NET_TITLES[name]}**: test accuracy {net.test_accuracy:.0%}, loss {net.test_loss:.3f}")
            st.image(pv.data_uri(pv.boundary_image(net.boundary, session.points)))
    bnn = frame.nets["bnn"]
    if "stats" not in view.hide:
        flips, bound, memory = st.columns(3)
        flips.metric("BNN flips in the last epoch", f"{bnn.flips:,}", help="binary weights whose sign changed")
        bound.metric(
            "latent weights at the clip bound",
            "—" if bnn.at_bound is None else f"{bnn.at_bound:.0%}",
            help="at |w| = bound, or past the straight-through window |w| = 1 without clipping; "
            "— with Bop, which keeps no latent weights",
        )
        bits, smaller = pv.memory_text(frame.memory_bits)
        memory.metric(
            "BNN parameters",
            bits,
            smaller,
            delta_color="off",
            delta_arrow="off",
            help="1-bit weights count one bit; biases, batch norm and the float output layer 32",
        )
    if "curves" not in view.hide:
        left, right = st.columns([3, 2])
        left.vega_lite_chart(pv.curves_data(frame.history), pv.curves_spec(), width="stretch")
        right.vega_lite_chart(pv.flips_data(frame.history), pv.flips_spec(), width="stretch")
    if "diagram" not in view.hide:
        diagram(frame)
    if "link" not in view.hide:
        st.caption("Link to this run at this epoch (it opens paused):")
        st.code(pv.share_link(settings, view, frame.epoch), language=None)


def diagram(frame) -> None:
    """The network diagram of one network and, large, the map of the neuron picked by a click or the box."""
    which = (
        st.segmented_control(
            "network diagram",
            list(pv.NET_TITLES),
            format_func=pv.NET_TITLES.get,
            key=pv.KEY + "diagram_net",
            default="bnn",
        )
        or "bnn"
    )
    net = frame.nets[which]
    options = pv.neuron_options(net)
    key = pv.pick_neuron(options)
    left, right = st.columns([3, 2])
    with left.container(key=pv.KEY + "diagram_view"):
        pv.diagram(net, st.session_state[key], key=pv.DIAGRAM_KEY)
        st.caption("Click a neuron to see its map large (or pick it in the box).")
    with right:
        st.selectbox("neuron", options, key=key, format_func=lambda choice: pv.neuron_choice_label(choice, net))
        with st.container(key=pv.KEY + "neuron_map"):
            st.markdown(f"**{pv.NET_TITLES[which]}**: {pv.neuron_title(net, st.session_state[key])}")
            st.image(pv.data_uri(pv.neuron_image(net, st.session_state[key], session.points)))


st.fragment(live, run_every=pv.TICK_SECONDS if view.play else None)()
