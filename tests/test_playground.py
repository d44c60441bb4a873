"""The playground: settings <-> query string, data, the network spec, the deterministic session, the page (AppTest)."""

import dataclasses
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


# ------------------------------------------------------------------ figures


def test_pictures_build_from_a_frame():
    session = PlaygroundSession(SMALL)
    session.step(1)
    frame = session.snapshot()
    net = frame.nets["bnn"]
    image = pv.boundary_image(net.boundary, session.points)
    assert image.size == (pv.IMAGE_PX, pv.IMAGE_PX) and image.mode == "RGB"
    top_left = np.asarray(image)[1, 1]  # the map's row 0 is the top of the image: y = +EXTENT
    expected = pv._colours(np.array([net.boundary[-1, 0]]))[0]
    assert np.abs(top_left.astype(int) - expected.astype(int)).max() <= 1
    curves, data = pv.curves_spec(), pv.curves_data(frame.history)
    assert len(curves["layer"]) == 2 and curves["resolve"]["scale"]["y"] == "independent"
    assert sorted(set(data["metric"])) == ["test accuracy", "test loss"] and len(data) == 4  # 2 nets x 2 x 1 epoch
    assert pv.flips_spec()["layer"][0]["mark"]["type"] == "bar"
    assert set(pv.flips_data(frame.history)["metric"]) == {"flips", "at the clip bound"}
    assert pv.png(image)[:8] == b"\x89PNG\r\n\x1a\n"
    assert pv.data_uri(image).startswith("data:image/png;base64,iVBOR")  # st.image takes it as it is
    picture, boxes = pv.diagram_picture(net, (1, 0))
    assert picture.size[0] == pv.DIAGRAM_WIDTH_PX
    assert [box[3:5] for box in boxes] == [list(o) for o in pv.neuron_options(net)]  # one click target each
    left, top, side, *_ = boxes[2]  # layer 1, neuron 1: its map lies where its click target is
    assert min(left, top) >= 0 and left + side <= picture.size[0] and top + side <= picture.size[1]
    assert boxes[-1][5] == "output: p(orange)"
    options = pv.neuron_options(net)
    assert options[0] == (0, 0) and options[-1] == (3, 0) and len(options) == 11
    assert pv.neuron_image(net, (2, 3), session.points).size == (pv.IMAGE_PX, pv.IMAGE_PX)
    assert pv.neuron_title(net, (3, 0)) == "output: p(orange)" and pv.neuron_title(net, (1, 2)) == "layer 1, neuron 3"
    assert pv.clicked_neuron({"neuron": [1, 2]}) == (1, 2)
    assert pv.clicked_neuron({"neuron": None}) is None and pv.clicked_neuron({}) is None
    assert pv.clicked_neuron(None) is None and pv.clicked_neuron({"neuron": ["1", 2]}) is None


def test_a_map_is_the_same_over_its_cached_points_layer():
    session = PlaygroundSession(SMALL)
    boundary = session.snapshot().nets["bnn"].boundary
    first = np.asarray(pv.boundary_image(boundary, session.points))
    again = np.asarray(pv.boundary_image(boundary, session.points))  # the points layer now comes from the cache
    assert np.array_equal(first, again)
    other = PlaygroundSession(small(seed=5))  # other points: another layer
    assert not np.array_equal(first, np.asarray(pv.boundary_image(boundary, other.points)))
    flat = np.asarray(pv.map_image(np.full_like(boundary, 0.5), session.points, 0.0, 1.0))
    x, y = (pv._to_pixels(session.points.x_train[:1], pv.IMAGE_PX)[0]).astype(int)
    assert tuple(flat[y, x]) == tuple(int(c) for c in pv._rgb(pv.CLASS_COLORS[int(session.points.y_train[0])]))


def test_long_histories_are_thinned_for_the_curves_keeping_the_last_epoch():
    epochs = 3 * pv.MAX_CURVE_POINTS + 7
    line = {"test_loss": list(np.linspace(1, 0, epochs)), "test_accuracy": [0.5] * epochs}
    history = {"bnn": line, "float": line}
    data = pv.curves_data(history)
    for (_, _), rows in data.groupby(["network", "metric"]):
        assert len(rows) <= pv.MAX_CURVE_POINTS + 1 and rows["epoch"].iloc[0] == 1 and rows["epoch"].iloc[-1] == epochs
    short = {name: {"test_loss": [0.3, 0.2], "test_accuracy": [0.6, float("nan")]} for name in ("bnn", "float")}
    assert len(pv.curves_data(short)) == 2 * 3  # every epoch, the unmeasured one left out


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


def epoch_shown(at: AppTest) -> int:
    text = next(m.value for m in at.markdown if m.value.startswith("### Epoch"))
    return int(text.split()[2])


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
    assert "dataset=moons" in at.code[0].value and "epoch=2" in at.code[0].value


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
    at.run()  # what a tick of the timed fragment does (run_every never fires under AppTest)
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
    link = at.code[0].value
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


def test_the_neuron_box_shows_a_neuron_large():
    at = open_page(f"{SMALL_QUERY}&epoch=1")
    assert at.selectbox(key="pg_neuron").value == (3, 0)  # the output neuron first
    at.selectbox(key="pg_neuron").set_value((1, 2)).run()
    no_exceptions(at)
    assert "**BNN**: layer 1, neuron 3" in [m.value for m in at.markdown]
    at.segmented_control(key="pg_diagram_net").set_value("float").run()
    assert at.selectbox(key="pg_neuron").value == (1, 2)
    assert "**float twin**: layer 1, neuron 3" in [m.value for m in at.markdown]


def test_the_diagram_is_one_clickable_component_playing_or_paused():
    at = open_page(f"{SMALL_QUERY}&play=1")
    assert not at.get("plotly_chart")  # a Plotly figure would be remounted, and lose a click, on every frame
    assert [e.type for e in at.get("bidi_component")] == ["bidi_component"]
    at.button(key="pg_play").click().run()
    assert [e.type for e in at.get("bidi_component")] == ["bidi_component"]
    no_exceptions(at)


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
