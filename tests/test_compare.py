"""Binary vs float: pairing runs with their float twins, starting a pair in workers, measured sizes and latency,
and the Compare page under AppTest on pairs trained by the library."""

import dataclasses
import pathlib
import re
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load as safetensors_load
from streamlit.testing.v1 import AppTest
from test_app_deploy_export import small_mlp

from workbench.core.data import load_dataset, load_run_data
from workbench.core.presets import preset
from workbench.core.spec import SpecError, default_training_spec, float_twin
from workbench.deploy import bnnfile
from workbench.deploy.engine import Engine, raw_inputs
from workbench.runs.pair_report import float32_file, model_input, pair_latency
from workbench.runs.pairs import find_pairs, load_pair, mismatch, start_pair, twin_network
from workbench.runs.store import ACTIVE, RunStore
from workbench.runs.trained import load_trained_model, pack_run
from workbench.runs.worker import run_worker
from workbench.ui import compare_view, deploy_view

ROOT = pathlib.Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
TIMEOUT = 120
TRAINING = dict(default_training_spec(), epochs=1, batch_size=64)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small binary MLP and its float twin, 1 epoch each on a slice of the MNIST sample, in one store."""
    runs_dir = tmp_path_factory.mktemp("compare_runs")
    sample = load_dataset("mnist-sample")
    subset = dataclasses.replace(sample, x_train=sample.x_train[:640], y_train=sample.y_train[:640])
    ids = []
    for name, spec in (("small · binary", small_mlp()), ("small · float twin", float_twin(small_mlp()))):
        ids.append(RunStore(runs_dir).create_run(name, spec, TRAINING, "mnist-sample"))
        assert run_worker(ids[-1], runs_dir, dataset=subset) == "completed"
    return runs_dir, *ids


@pytest.fixture
def store(trained, monkeypatch):
    """The trained pair's store, which the app opens too."""
    runs_dir = trained[0]
    monkeypatch.setenv("BNN_WORKBENCH_RUNS", str(runs_dir))
    return RunStore(runs_dir)


# ------------------------------------------------------------------ pairs


def test_a_twin_pairs_with_its_binary_run_and_nothing_else(tmp_path):
    store = RunStore(tmp_path)
    binary = store.create_run(None, small_mlp(), TRAINING, "mnist-sample")
    twin = store.create_run(None, float_twin(small_mlp()), TRAINING, "mnist-sample")
    store.create_run(None, float_twin(small_mlp()), dict(TRAINING, seed=1), "mnist-sample")  # another seed
    store.create_run(None, float_twin(small_mlp()), TRAINING, "moons")  # other data
    store.create_run(None, small_mlp(), TRAINING, "mnist-sample")  # a second binary run, no twin left for it
    pairs = find_pairs(store.list_runs())
    assert [p.ids for p in pairs] == [(binary, twin)]
    assert load_pair(store, binary, twin).ids == (binary, twin)


def test_cli_style_runs_pair_up_whatever_their_names(tmp_path):
    """`train binary-mlp` and `train binary-mlp-float` (or --float-twin), each under a name of its own."""
    store = RunStore(tmp_path)
    binary = store.create_run("before class", preset("binary-mlp"), TRAINING, "mnist-sample")
    twin = store.create_run("its twin", preset("binary-mlp-float"), TRAINING, "mnist-sample")
    assert [p.ids for p in find_pairs(store.list_runs())] == [(binary, twin)]


def test_runs_that_are_not_twins_say_why(tmp_path):
    store = RunStore(tmp_path)
    binary = store.create_run(None, small_mlp(), TRAINING, "mnist-sample")
    twin = store.create_run(None, float_twin(small_mlp()), TRAINING, "mnist-sample")
    other_data = store.create_run(None, float_twin(small_mlp()), TRAINING, "mnist-sample")
    store.update_run(other_data, data_ref="moons")
    other_seed = store.create_run(None, float_twin(small_mlp()), dict(TRAINING, seed=3), "mnist-sample")
    get = store.get_run
    assert mismatch(get(binary), get(twin)) is None
    assert "different data" in mismatch(get(binary), get(other_data))
    assert "differ in seed" in mismatch(get(binary), get(other_seed))
    assert "not the float twin" in mismatch(get(binary), get(binary))
    assert f"run {twin} is not a binarized network" in mismatch(get(twin), get(binary))
    with pytest.raises(ValueError, match="not the float twin"):
        load_pair(store, binary, binary)


def test_a_float_network_has_no_twin():
    with pytest.raises(SpecError, match="already full precision"):
        twin_network(preset("binary-mlp-float"))


def test_start_pair_trains_both_in_workers_with_one_training_spec(tmp_path):
    spec = small_mlp()
    spec["layers"][1]["units"] = spec["layers"][3]["units"] = 8
    training = dict(TRAINING, epochs=1, batch_size=256, seed=7)
    binary_id, twin_id = start_pair(spec, training, "mnist-sample", name="lecture", runs_dir=tmp_path)
    store = RunStore(tmp_path)
    deadline = time.monotonic() + 300
    while any(store.get_run(i).status in ACTIVE for i in (binary_id, twin_id)) and time.monotonic() < deadline:
        time.sleep(0.5)
    pair = load_pair(store, binary_id, twin_id)
    assert (pair.binary.status, pair.twin.status) == ("completed", "completed"), (pair.binary.error, pair.twin.error)
    assert pair.finished and pair.binary.training_spec == pair.twin.training_spec
    assert pair.binary.training_spec["seed"] == 7
    assert pair.binary.name == "lecture · binary" and pair.twin.name == "lecture · float twin"
    assert [p.ids for p in find_pairs(store.list_runs())] == [(binary_id, twin_id)]


def test_start_pair_refuses_a_float_network_before_any_run_exists(tmp_path):
    with pytest.raises(SpecError, match="no float twin"):
        start_pair(preset("binary-mlp-float"), TRAINING, "mnist-sample", runs_dir=tmp_path)
    assert RunStore(tmp_path).list_runs() == []


# ------------------------------------------------------------------ sizes and latency


def test_the_float_file_is_the_trained_state_in_float32(store, trained):
    model, _ = load_trained_model(trained[2], store=store)
    data = float32_file(model)
    loaded = safetensors_load(data)
    state = model.state_dict()
    assert set(loaded) == set(state)
    for name, tensor in state.items():
        assert torch.equal(loaded[name], tensor)
        if tensor.is_floating_point():
            assert loaded[name].dtype == torch.float32
    weights = sum(t.numel() * t.element_size() for t in state.values())
    assert weights < len(data) < weights + 16_384  # the tensors plus a JSON header


def test_pair_latency_times_engine_and_torch_on_test_images(store, trained):
    _, binary, twin = trained
    packed = pack_run(binary, store=store)
    model, _ = load_trained_model(twin, store=store)
    x = load_run_data("mnist-sample", TRAINING).x_test[:4]
    threads = torch.get_num_threads()
    latency = pair_latency(packed, model, x, rounds=3, budget=0.05)
    assert torch.get_num_threads() == threads
    assert latency["batch"] == 4 and latency["exact_input"]
    speedup = latency["speedup"]
    assert speedup["min"] <= speedup["median"] <= speedup["max"] and latency["engine"]["rounds"] == 3
    for side in ("engine", "torch_float32"):
        assert latency[side]["min"] <= latency[side]["median"] <= latency[side]["max"]


def test_both_networks_classify_one_input_as_their_own_models_do(store, trained):
    _, binary_id, twin_id = trained
    pair = load_pair(store, binary_id, twin_id)
    binary, twin = deploy_view.packed_run({}, store, pair.binary), compare_view.float_run({}, store, pair.twin)
    x = load_run_data("mnist-sample", TRAINING).x_test[:20]
    preprocessing = binary.packed.meta["preprocessing"]
    u = raw_inputs(x, preprocessing)
    assert np.array_equal(model_input(u, preprocessing), x)
    engine = Engine(binary.packed)
    with torch.no_grad():
        expected_float = twin.model(torch.from_numpy(x)).argmax(1).numpy()
    for i in range(len(x)):
        engine_p, float_p = compare_view.classify_both(binary, twin, u[i], preprocessing)
        assert np.isclose(engine_p.sum(), 1) and np.isclose(float_p.sum(), 1)
        assert int(engine_p.argmax()) == int(engine.predict(u[i : i + 1])[0])
        assert int(float_p.argmax()) == int(expected_float[i])


def test_weight_maps_show_latent_signs_and_twin_per_neuron(store, trained):
    binary_model, _ = load_trained_model(trained[1], store=store)
    twin_model, _ = load_trained_model(trained[2], store=store)
    name, weight = compare_view.first_layer(binary_model)
    assert weight.shape == (64, 784) and "dense" in name
    figure = compare_view.weight_maps_figure(weight, compare_view.first_layer(twin_model)[1], 5)
    assert len(figure.data) == 15
    signs = figure.data[5].z  # row 2, neuron 0
    assert set(np.unique(np.asarray(signs))) <= {-1.0, 1.0}
    assert np.array_equal(np.asarray(figure.data[0].z).ravel(), weight[0])


# ------------------------------------------------------------------ the page


def open_compare(query: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page("pages/compare.py")
    for key, value in (query or {}).items():
        at.query_params[key] = value
    return at.run()


def no_exceptions(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def metrics(at: AppTest) -> dict:
    return {m.label: m.value for m in at.metric}


def test_the_page_on_an_empty_store(tmp_path, monkeypatch):
    monkeypatch.setenv("BNN_WORKBENCH_RUNS", str(tmp_path))
    at = open_compare()
    no_exceptions(at)
    assert any("No pair yet" in i.value for i in at.info)
    assert any(b.label == "Train binary + float twin" for b in at.button)


def test_the_newest_pair_opens_with_no_click_and_its_numbers_are_measured(store, trained):
    _, binary_id, twin_id = trained
    at = open_compare()
    no_exceptions(at)
    assert not at.error, [e.value for e in at.error]
    assert (at.query_params["binary"], at.query_params["twin"]) == (binary_id, twin_id)
    shown = metrics(at)
    for side, run_id in (("binary", binary_id), ("float twin", twin_id)):
        assert shown[f"{side}: test accuracy"] == f"{store.get_run(run_id).test_accuracy:.2%}"
    bnn = bnnfile.to_bytes(pack_run(binary_id, store=store))
    twin_file = float32_file(load_trained_model(twin_id, store=store)[0])
    assert shown["binary, packed .bnn"] == f"{len(bnn):,} B"
    assert shown["float twin, float32 .safetensors"] == f"{len(twin_file):,} B"
    latency = at.dataframe[0].value
    assert list(latency["implementation"]) == ["XNOR engine (binary)", "torch float32 (float twin)"]
    assert (latency["min ms"] <= latency["median ms"]).all() and (latency["median ms"] <= latency["max ms"]).all()


def test_a_test_sample_is_classified_by_both(store, trained):
    at = open_compare()
    at.radio(key="compare_source").set_value("Test sample").run()
    no_exceptions(at)
    titles = [c.proto.spec for c in at.get("plotly_chart")]
    assert any("binary (XNOR engine): Prediction" in t for t in titles)
    assert any("float twin (torch): Prediction" in t for t in titles)


def test_a_link_to_two_runs_that_are_not_twins_says_so(store, trained):
    _, binary_id, _ = trained
    at = open_compare({"binary": binary_id, "twin": binary_id})
    no_exceptions(at)
    assert any("not the float twin" in e.value for e in at.error)


def test_one_click_starts_both_runs_in_workers(tmp_path, monkeypatch):
    monkeypatch.setenv("BNN_WORKBENCH_RUNS", str(tmp_path))
    at = open_compare()
    at.number_input(key="compare_epochs").set_value(1)
    next(b for b in at.button if b.label == "Train binary + float twin").click().run()
    no_exceptions(at)
    store = RunStore(tmp_path)
    binary_id, twin_id = at.query_params["binary"], at.query_params["twin"]
    try:
        pair = load_pair(store, binary_id, twin_id)
        assert pair.binary.network_spec["name"] == "binary-mlp"
        assert pair.binary.training_spec["epochs"] == 1
        assert re.search(r"float twin", pair.twin.name)
        assert any("Accuracy: binary vs float twin" in c.proto.spec for c in at.get("plotly_chart"))
    finally:
        for run_id in (binary_id, twin_id):
            if store.get_run(run_id).active:
                store.request(run_id, "stop")
        deadline = time.monotonic() + 120
        while any(store.get_run(i).active for i in (binary_id, twin_id)) and time.monotonic() < deadline:
            time.sleep(0.5)
