"""The playground: settings <-> query string, data, the network spec, the deterministic session, the page (AppTest)."""

import base64
import dataclasses
import json
import pathlib
import random
import urllib.parse

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from workbench.core.playground import (
    DATASETS,
    FIELDS,
    GRID,
    MAX_EPOCH,
    SCENARIOS,
    Settings,
    View,
    make_points,
    network_specs,
    parse_query,
    parse_query_string,
    query_string,
    soft_temperature,
    to_query,
    with_layers,
)
from workbench.train.playground import PlaygroundSession, measure
from workbench.ui import playground_live as live
from workbench.ui import playground_view as pv

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGE = str(ROOT / "pages" / "playground.py")
SMALL = Settings(points=120, layers=(4, 4), batch=32)  # a few milliseconds per epoch


def small(**changes) -> Settings:
    settings = dataclasses.replace(SMALL, **{k: v for k, v in changes.items() if k != "layers"})
    return with_layers(settings, changes["layers"]) if "layers" in changes else settings


# ------------------------------------------------------------------ settings and the query string


def test_defaults_round_trip_without_notes():
    settings, view, notes = parse_query(to_query(Settings()))
    assert (settings, view, notes) == (Settings(), View(), [])


def test_every_setting_round_trips():
    settings = Settings(
        dataset="moons",
        noise=35,
        points=300,
        train=70,
        seed=42,
        layers=(3, 16, 5),
        bw=(True, False, True),
        ba=(False, True, True),
        scaling=("xnor", "none", "learnable"),
        quantizer="soft_sign",
        clip=False,
        bound=0.75,
        optimizer="bop",
        lr=0.003,
        batch=7,
        bop_threshold=1e-07,
        bop_gamma=0.01,
        anneal=80,
        bn=False,
        activation="tanh",
        epoch=17,
    )
    view = View(play=True, speed=5, lecture=True, hide=("optimizer", "lr"), scenario="bop")
    assert parse_query_string(query_string(settings, view)) == (settings, view, [])
    assert "layers=3,16,5" in query_string(settings, view)  # commas stay readable in a link


def test_a_link_names_every_setting():
    assert set(to_query(Settings())) == set(FIELDS)


@pytest.mark.parametrize("item", SCENARIOS, ids=lambda item: item.name)
def test_every_scenario_is_a_valid_query_string(item):
    settings, _, notes = parse_query_string(item.query)
    assert notes == []
    assert settings != Settings()
    network_specs(settings)  # builds a valid spec


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("noise", "abc"),
        ("noise", "99"),
        ("lr", "inf"),
        ("lr", "nan"),
        ("lr", "-1"),
        ("dataset", "mnist"),
        ("layers", "8,0"),
        ("layers", "1,2,3,4,5,6,7"),
        ("layers", ""),
        ("bw", "yes,maybe"),
        ("clip", "2"),
        ("seed", "1e9"),
        ("epoch", str(MAX_EPOCH + 1)),
        ("hide", "optimizer,nonsense"),
        ("speed", "0"),
        ("scenario", "none"),
    ],
)
def test_a_bad_value_falls_back_to_its_default_with_a_note(name, text):
    settings, view, notes = parse_query({name: text})
    assert (settings, view) == (Settings(), View())
    assert len(notes) == 1 and f"`{name}=" in notes[0] and "using" in notes[0]


def test_an_unknown_parameter_is_a_note():
    settings, _, notes = parse_query({"colour": "red", "dataset": "xor"})
    assert settings.dataset == "xor"
    assert notes == ["`colour` is not a playground parameter; ignored."]


def test_random_garbage_never_raises():
    rng = random.Random(0)
    alphabet = "0123456789.,-eE+ abcxyz%&=?"
    for _ in range(300):
        query = {
            rng.choice(list(FIELDS) + ["play", "hide", "lecture"]): "".join(
                rng.choice(alphabet) for _ in range(rng.randrange(6))
            )
            for _ in range(4)
        }
        settings, view, notes = parse_query(query)
        assert len(settings.bw) == len(settings.ba) == len(settings.scaling) == len(settings.layers)
        network_specs(settings)


def test_per_layer_lists_fit_the_layers():
    settings, _, notes = parse_query({"layers": "4,4,4", "bw": "0"})
    assert settings.bw == (False, False, False) and notes == []  # one value stands for every layer
    settings, _, notes = parse_query({"layers": "4,4,4", "ba": "1,0"})
    assert settings.ba == (True, False, False) and "the last one repeats" in notes[0]
    settings, _, notes = parse_query({"layers": "4", "scaling": "xnor,none"})
    assert settings.scaling == ("xnor",) and "ignored" in notes[0]
    assert with_layers(Settings(bw=(True, False)), (3, 3, 3)).bw == (True, False, False)


def test_the_last_value_of_a_repeated_parameter_counts():
    assert parse_query_string("dataset=xor&dataset=moons")[0].dataset == "moons"


# ------------------------------------------------------------------ data and network


@pytest.mark.parametrize("dataset", DATASETS)
def test_points_are_seeded_and_split(dataset):
    settings = Settings(dataset=dataset, points=200, train=70)
    a, b = make_points(settings), make_points(settings)
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_test, b.y_test)
    assert len(a.x_train) == 140 and len(a.x_test) == 60 and a.x_train.dtype == np.float32
    assert set(np.unique(a.y_train)) == {0, 1}
    assert np.abs(a.x_train).max() < 2
    assert not np.array_equal(make_points(dataclasses.replace(settings, seed=2)).x_train, a.x_train)


def test_noise_moves_the_points():
    quiet, noisy = make_points(Settings(noise=0)), make_points(Settings(noise=40))
    assert not np.allclose(quiet.x_train, noisy.x_train)


def test_the_bnn_and_its_twin_come_from_one_spec():
    bnn, twin = network_specs(Settings(layers=(4, 3), bw=(True, False), ba=(True, False), scaling=("xnor", "none")))
    dense = [layer for layer in bnn["layers"] if layer["type"] == "dense"]
    assert [d["units"] for d in dense] == [4, 3, 2]
    assert dense[0]["kernel_quantizer"]["name"] == "ste_sign" and dense[0]["input_quantizer"] is None
    assert dense[0]["scaling"] == "xnor"
    assert dense[1]["kernel_quantizer"] is None and dense[1]["input_quantizer"]["name"] == "ste_sign"
    assert dense[2]["input_quantizer"] is None  # layer 2 has float activations: an activation layer instead
    assert {"type": "activation", "fn": "hardtanh"} in bnn["layers"]
    assert all(
        layer.get("kernel_quantizer") is None and layer.get("input_quantizer") is None for layer in twin["layers"]
    )


def test_soft_temperature_anneals_then_holds():
    settings = Settings(quantizer="soft_sign", anneal=10)
    assert soft_temperature(settings, 0) == 1.0
    assert soft_temperature(settings, 5) == pytest.approx(0.1)
    assert soft_temperature(settings, 10) == soft_temperature(settings, 50) == pytest.approx(0.01)


# ------------------------------------------------------------------ the session


def boundaries(session) -> dict:
    return {name: net.boundary for name, net in session.snapshot().nets.items()}


def test_same_settings_same_boundaries_at_the_same_epoch():
    a, b = PlaygroundSession(SMALL), PlaygroundSession(SMALL)
    a.step(5)
    b.step(3)
    b.step(2)
    for name, boundary in boundaries(a).items():
        assert np.array_equal(boundary, boundaries(b)[name])
    for name, metrics in a.history.items():  # at_bound is NaN for the twin (no binary weights): equal_nan
        assert all(np.array_equal(values, b.history[name][key], equal_nan=True) for key, values in metrics.items())


def test_reset_gives_the_same_start_and_the_same_run():
    session = PlaygroundSession(SMALL)
    start = boundaries(session)
    session.step(4)
    after_four = boundaries(session)
    assert not np.array_equal(start["bnn"], after_four["bnn"])
    session.reset()
    assert session.epoch == 0 and session.history["bnn"]["test_loss"] == []
    assert all(np.array_equal(start[k], v) for k, v in boundaries(session).items())
    session.advance_to(4)
    assert all(np.array_equal(after_four[k], v) for k, v in boundaries(session).items())


def test_another_seed_another_run():
    a, b = PlaygroundSession(SMALL), PlaygroundSession(small(seed=2))
    assert not np.array_equal(boundaries(a)["bnn"], boundaries(b)["bnn"])


def test_a_snapshot_has_what_the_page_draws():
    session = PlaygroundSession(small(layers=(4, 3)))
    session.step(2)
    frame = session.snapshot()
    assert frame.epoch == 2 and set(frame.nets) == {"bnn", "float"}
    for net in frame.nets.values():
        assert net.boundary.shape == (GRID, GRID) and net.boundary.min() >= 0 and net.boundary.max() <= 1
        assert [n.shape for n in net.neurons] == [(4, GRID, GRID), (3, GRID, GRID)]
        assert [w.shape for w in net.weights] == [(4, 2), (3, 4), (2, 3)]
        assert 0 <= net.test_accuracy <= 1 and net.test_loss > 0
    bnn = frame.nets["bnn"]
    assert set(np.unique(bnn.neurons[0])) <= {-1.0, 1.0}  # binary activations pass on signs
    assert bnn.binary == [True, True, False]
    assert len(frame.history["bnn"]["test_accuracy"]) == 2 and len(frame.history["bnn"]["flips"]) == 2
    assert frame.memory_bits["bnn"] < frame.memory_bits["float"]


def test_clipping_keeps_latent_weights_within_the_bound():
    session = PlaygroundSession(small(lr=0.2, bound=0.3))
    session.step(3)
    weights = session.snapshot().nets["bnn"].weights
    assert max(float(np.abs(w).max()) for w in weights[:2]) <= 0.3 + 1e-6
    assert session.snapshot().nets["bnn"].at_bound > 0


def test_without_clipping_latent_weights_leave_the_ste_window():
    session = PlaygroundSession(small(lr=0.2, clip=False))
    session.step(3)
    weights = session.snapshot().nets["bnn"].weights
    assert max(float(np.abs(w).max()) for w in weights[:2]) > 1.0


def test_bop_keeps_the_binary_weights_binary():
    session = PlaygroundSession(small(optimizer="bop", bop_threshold=0.0, bop_gamma=0.1))
    session.step(3)
    net = session.snapshot().nets["bnn"]
    assert all(set(np.unique(w)) <= {-1.0, 1.0} for w in net.weights[:2])
    assert net.at_bound is None and sum(session.history["bnn"]["flips"]) > 0


def test_soft_to_hard_anneals_the_quantizers():
    session = PlaygroundSession(small(quantizer="soft_sign", anneal=2))
    session.step(3)
    temperatures = [m.temperature for m in session.nets["bnn"].model.modules() if hasattr(m, "temperature")]
    assert len(temperatures) == 4 and temperatures == pytest.approx([0.01] * 4)  # two kernels, two inputs


def test_batch_norm_never_sees_a_single_sample():
    session = PlaygroundSession(small(batch=1, points=21, train=50))
    session.step(1)  # a batch of one would raise in batch norm
    assert session.epoch == 1


def test_torch_threads_are_restored():
    threads = torch.get_num_threads()
    PlaygroundSession(SMALL).step(1)
    assert torch.get_num_threads() == threads


def test_measure_reports_milliseconds_per_network():
    out = measure(SMALL, frames=2)
    assert set(out) == {f"{n}_{k}_ms" for n in ("bnn", "float") for k in ("epoch", "grids", "frame")}
    assert all(v > 0 for v in out.values())


# ------------------------------------------------------------------ the live view's payload


def _bytes(text: str, dtype=np.uint8) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=dtype)


def test_the_payload_carries_both_boundaries_quantised_top_row_first():
    session = PlaygroundSession(SMALL)
    session.step(1)
    frame = session.snapshot()
    payload = live.live_payload(frame, session.points, link="http://x/?epoch=1")
    json.dumps(payload, allow_nan=False)  # plain JSON: no NaN, no arrays
    assert payload["epoch"] == 1 and payload["heading"] == "Epoch 1" and payload["grid"] == GRID
    for name in ("bnn", "float"):
        net = frame.nets[name]
        cells = _bytes(payload["nets"][name]["boundary"]).reshape(GRID, GRID)
        assert np.abs(cells.astype(int) - np.round(net.boundary[::-1] * 255)).max() <= 1  # row 0: y = +EXTENT
        assert payload["nets"][name]["text"] == f"test accuracy {net.test_accuracy:.0%}, loss {net.test_loss:.3f}"
        assert payload["nets"][name]["title"] in payload["summary"]
    assert list(live.quantise(np.array([[0.0, 0.5, 1.0, 2.0]]), 0.0, 1.0)[0]) == [0, 128, 255, 255]
    assert payload["scale"] == list(live.SCALE) and payload["classes"] == list(live.CLASS_COLORS)
    assert payload["link"] == "http://x/?epoch=1"
    assert [s["value"] for s in payload["stats"]][0] == f"{frame.nets['bnn'].flips:,}"
    assert payload["stats"][2]["value"] == f"{frame.memory_bits['bnn']:,} bits"


def test_the_payload_points_round_trip_within_a_pixel():
    session = PlaygroundSession(SMALL)
    points = live.live_payload(session.snapshot(), session.points)["points"]
    span = points["span"]
    xy = _bytes(points["train"]["xy"], "<u2").reshape(-1, 2) / 65535 * 2 * span - span
    assert np.abs(xy - session.points.x_train).max() < 1e-4  # far below a pixel of a 360 px map
    assert list(_bytes(points["test"]["labels"])) == list(session.points.y_test)
    assert len(xy) == len(session.points.y_train)


def test_the_payload_curves_are_thinned_rounded_and_nan_free():
    epochs = 3 * live.MAX_CURVE_POINTS + 7
    line = {"test_loss": list(np.linspace(1, 0, epochs)), "test_accuracy": [0.5] * epochs}
    bnn = dict(line, flips=[3.0] * epochs, at_bound=[0.25] * epochs)
    twin = dict(line, flips=[0.0] * epochs, at_bound=[float("nan")] * epochs)
    curves = live.curves_payload({"bnn": bnn, "float": twin})
    assert len(curves["epochs"]) <= live.MAX_CURVE_POINTS + 1
    assert curves["epochs"][0] == 1 and curves["epochs"][-1] == epochs  # the last epoch is always drawn
    assert all(len(curves[k][n]) == len(curves["epochs"]) for k in ("loss", "accuracy") for n in ("bnn", "float"))
    assert curves["loss"]["bnn"][-1] == 0.0 and curves["flips"][0] == 3 and curves["at_bound"][0] == 0.25
    short = {
        n: dict(test_loss=[0.3, 0.2], test_accuracy=[0.6, float("nan")], flips=[1, 2], at_bound=[0.1, 0.2])
        for n in ("bnn", "float")
    }
    assert live.curves_payload(short)["accuracy"]["bnn"] == [0.6, None]  # not measured: null, not NaN
    assert live.curves_payload({n: {k: [] for k in bnn} for n in ("bnn", "float")})["epochs"] == []


def test_the_payload_diagram_places_every_neuron_and_link():
    session = PlaygroundSession(SMALL)  # layers 4, 4
    session.step(1)
    frame = session.snapshot()
    net = frame.nets["bnn"]
    d = live.live_payload(frame, session.points, neuron=(2, 3))["diagram"]
    assert [c["count"] for c in d["columns"]] == [2, 4, 4, 1] and [c["label"] for c in d["columns"]][-1] == "output"
    assert [n[2:4] for n in d["neurons"]] == [list(o) for o in live.neuron_options(net)]  # one click target each
    for left, top, *_ in d["neurons"]:
        assert left >= 0 and left + d["box"] <= d["width"] and top >= 0 and top + d["box"] <= d["height"]
    assert d["neurons"][-1][4] == "output: p(orange)" and d["neurons"][2][4] == "layer 1, neuron 1"
    assert [len(widths) for widths in d["links"]] == [4 * 2, 4 * 4, 1 * 4]  # out x in; the logits as one
    first = net.weights[0]
    assert [w > 0 for w in d["links"][0]] == list((first >= 0).reshape(-1))  # the sign, sign(0) = +1
    assert all(1 <= abs(w) <= 5 for widths in d["links"] for w in widths)
    logit = net.weights[-1][1] - net.weights[-1][0]
    assert [w > 0 for w in d["links"][-1]] == list(logit >= 0)
    assert len(d["thumbs"]) == len(d["neurons"]) and all(len(_bytes(t)) == live.THUMB**2 for t in d["thumbs"])
    assert d["selected"] == [2, 3] and d["map_title"] == "BNN: layer 2, neuron 4"
    big = _bytes(d["map"]).reshape(GRID, GRID)
    values = net.neurons[1][3][::-1]
    reach = np.abs(values).max() or 1.0
    assert np.abs(big.astype(int) - np.round((values / reach + 1) / 2 * 255)).max() <= 1
    twin = live.live_payload(frame, session.points, diagram_net="float", neuron=(9, 9))["diagram"]
    assert twin["net"] == "float" and twin["selected"] == [3, 0]  # a neuron not in the network: the output
    assert twin["map_title"] == "float twin: output: p(orange)"


@pytest.mark.parametrize("part", live.SECTIONS)
def test_hide_leaves_a_part_out_of_the_payload(part):
    session = PlaygroundSession(SMALL)
    full = live.live_payload(session.snapshot(), session.points, link="http://x/")
    hidden = live.live_payload(session.snapshot(), session.points, hide={part}, link="http://x/")
    assert part in full and part not in hidden
    assert set(full) - set(hidden) == {part} and hidden["nets"] == full["nets"]


def test_clicks_are_read_from_the_component_state():
    assert pv.clicked_neuron({"neuron": [1, 2, 1733112000123]}) == (1, 2)  # [column, row, when]
    assert pv.clicked_neuron({"neuron": None}) is None and pv.clicked_neuron({}) is None
    assert pv.clicked_neuron(None) is None and pv.clicked_neuron({"neuron": ["1", 2, 5]}) is None
    assert pv.clicked_neuron({"neuron": [1, 2]}) is None
    assert pv.clicked_net({"net": ["float", 1733112000123]}) == "float"
    assert pv.clicked_net({"net": ["mnist", 1]}) is None and pv.clicked_net({}) is None and pv.clicked_net(None) is None
    assert live.neuron_title(PlaygroundSession(SMALL).snapshot().nets["bnn"], (1, 2)) == "layer 1, neuron 3"


# ------------------------------------------------------------------ the page (AppTest)


def open_page(query: str = "") -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    for name, values in urllib.parse.parse_qs(query, keep_blank_values=True).items():
        at.query_params[name] = values[-1]
    return at.run()


def no_exceptions(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def url(at: AppTest) -> Settings:
    settings, _, notes = parse_query(dict(at.query_params))
    assert notes == []
    return settings


def shown(at: AppTest) -> dict:
    """The payload of the page's live view (its one component)."""
    (component,) = at.get("bidi_component")
    return json.loads(component.proto.json)


def epoch_shown(at: AppTest) -> int:
    return int(shown(at)["heading"].split()[1])


def session(at: AppTest) -> PlaygroundSession:
    return at.session_state[pv.SESSION_KEY]


SMALL_QUERY = "points=120&layers=4,4&batch=32"


def test_a_link_sets_the_controls_and_the_url_names_everything():
    at = open_page(f"{SMALL_QUERY}&dataset=moons&noise=20&lr=0.03&epoch=2")
    no_exceptions(at)
    assert at.selectbox(key="pg_dataset").value == "moons"
    assert at.slider(key="pg_noise").value == 20
    assert at.selectbox(key="pg_lr").value == 0.03
    assert [at.number_input(key=f"pg_layers_{i}").value for i in range(2)] == [4, 4]
    assert epoch_shown(at) == 2 and session(at).epoch == 2
    assert set(at.query_params) >= set(FIELDS)  # the address bar shows every setting
    assert url(at) == small(dataset="moons", noise=20, lr=0.03, epoch=2)
    assert "dataset=moons" in shown(at)["link"] and "epoch=2" in shown(at)["link"]


def test_bad_values_show_notes_not_tracebacks():
    at = open_page("noise=loud&layers=99&dataset=mnist&bogus=1")
    no_exceptions(at)
    warnings = " ".join(w.value for w in at.warning)
    assert "`noise=loud`" in warnings and "`layers=99`" in warnings and "`dataset=mnist`" in warnings
    assert "`bogus`" in warnings
    assert at.selectbox(key="pg_dataset").value == Settings.dataset
    assert url(at) == Settings()


def test_changing_a_control_writes_the_url_and_starts_again():
    at = open_page(f"{SMALL_QUERY}&epoch=3")
    at.selectbox(key="pg_dataset").select("xor").run()
    no_exceptions(at)
    assert url(at) == small(dataset="xor") and epoch_shown(at) == 0
    at.checkbox(key="pg_bw_1").uncheck().run()
    assert url(at).bw == (True, False)
    at.number_input(key="pg_layer_count").set_value(3).run()
    assert url(at).layers == (4, 4, 4) and url(at).bw == (True, False, False)
    at.toggle(key="pg_clip").set_value(False).run()
    assert url(at).clip is False and not [n for n in at.number_input if n.key == "pg_bound"]
    no_exceptions(at)


def test_step_play_pause_reset():
    at = open_page(SMALL_QUERY)
    at.button(key="pg_step").click().run()
    assert epoch_shown(at) == 1 and url(at).epoch == 1
    at.button(key="pg_play").click().run()
    assert at.query_params["play"] == "1" and epoch_shown(at) == 1 + View.speed
    at.run()  # what the next frame the live view asks for does (its trigger reruns the fragment)
    assert epoch_shown(at) == 1 + 2 * View.speed and session(at).epoch == 1 + 2 * View.speed
    assert url(at).epoch in (1 + View.speed, 1 + 2 * View.speed)  # while playing: at most a second behind
    at.button(key="pg_play").click().run()
    assert "play" not in at.query_params and url(at).epoch == session(at).epoch == 1 + 2 * View.speed  # exact
    paused = epoch_shown(at)
    at.run()
    assert epoch_shown(at) == paused
    at.button(key="pg_reset").click().run()
    assert epoch_shown(at) == 0 and url(at).epoch == 0
    no_exceptions(at)


def test_the_url_round_trip_reproduces_the_run():
    at = open_page(SMALL_QUERY)
    for _ in range(3):
        at.button(key="pg_step").click().run()
    link = shown(at)["link"]
    query = urllib.parse.urlparse(link).query or link.split("?", 1)[1]
    before = boundaries(session(at))
    again = open_page(query)  # a new tab: a new session, replayed from the link
    no_exceptions(again)
    assert session(again) is not session(at) and session(again).epoch == 3
    assert all(np.array_equal(before[k], v) for k, v in boundaries(session(again)).items())


def test_a_scenario_is_one_click():
    at = open_page()
    item = SCENARIOS[3]
    at.button(key=f"pg_scenario_{item.name}").click().run()
    no_exceptions(at)
    assert url(at) == dataclasses.replace(parse_query_string(item.query)[0], epoch=View.speed)
    assert at.query_params["scenario"] == item.name and at.query_params["play"] == "1"
    assert at.info[0].value == item.watch


def test_lecture_mode_hides_advanced_controls_and_hide_hides_any():
    at = open_page(f"{SMALL_QUERY}&lecture=1&hide=optimizer,lr,scenarios")
    no_exceptions(at)
    keys = {w.key for w in [*at.selectbox, *at.slider, *at.number_input, *at.toggle, *at.checkbox]}
    assert "pg_dataset" in keys and "pg_noise" in keys and "pg_quantizer" in keys
    assert not keys & {"pg_optimizer", "pg_lr", "pg_seed", "pg_batch", "pg_bound", "pg_points"}
    assert not [b for b in at.button if b.key.startswith("pg_scenario_")]
    assert not at.sidebar.children or not any(True for _ in at.sidebar.selectbox)
    normal = open_page(SMALL_QUERY)
    assert {"pg_optimizer", "pg_lr", "pg_seed"} <= {w.key for w in [*normal.selectbox, *normal.number_input]}


def test_a_picked_neuron_and_network_show_large():
    at = open_page(f"{SMALL_QUERY}&epoch=1")
    assert shown(at)["diagram"]["selected"] == [3, 0]  # the output neuron first
    at.session_state[pv.NEURON_KEY] = (1, 2)  # what a click on the diagram sets (_on_neuron_click)
    at.run()
    no_exceptions(at)
    assert shown(at)["diagram"]["map_title"] == "BNN: layer 1, neuron 3"
    at.session_state[pv.DIAGRAM_NET_KEY] = "float"  # the diagram's network switch (_on_net_click)
    at.run()
    assert shown(at)["diagram"]["selected"] == [1, 2]
    assert shown(at)["diagram"]["map_title"] == "float twin: layer 1, neuron 3"


def test_the_live_view_is_one_component_playing_or_paused():
    at = open_page(f"{SMALL_QUERY}&play=1")
    # one element for Streamlit to update per frame: no images, charts or metrics beside it
    assert not at.get("imgs") and not at.get("arrow_vega_lite_chart") and not at.metric and not at.code
    assert [e.type for e in at.get("bidi_component")] == ["bidi_component"]
    at.button(key="pg_play").click().run()
    assert [e.type for e in at.get("bidi_component")] == ["bidi_component"]
    no_exceptions(at)


def test_hide_and_lecture_reach_the_live_view():
    at = open_page(f"{SMALL_QUERY}&lecture=1&hide=stats,curves,diagram,link")
    no_exceptions(at)
    assert not set(live.SECTIONS) & set(shown(at)) and set(shown(at)["nets"]) == {"bnn", "float"}
    assert "font-size: 21px" in " ".join(h.proto.body for h in at.get("html"))


def test_playing_stops_at_the_last_epoch_a_link_holds(monkeypatch):
    monkeypatch.setattr(pv, "MAX_EPOCH", 5)  # instead of replaying 3,000 epochs
    at = open_page(f"{SMALL_QUERY}&epoch=4&play=1")
    assert epoch_shown(at) == 5 and at.query_params["play"] == "1"
    at.run()  # the next tick finds nothing left to train: it pauses
    no_exceptions(at)
    assert epoch_shown(at) == 5 and "play" not in at.query_params


def test_regenerate_picks_a_new_seed():
    at = open_page(SMALL_QUERY)
    at.button(key="pg_regenerate").click().run()
    no_exceptions(at)
    assert url(at).seed != SMALL.seed or url(at) == SMALL  # a new seed (1 in a million: the same)
    assert url(at).epoch == 0
