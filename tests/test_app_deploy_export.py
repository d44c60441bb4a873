"""AppTest of the Deploy and Export pages on runs trained by the library, and the helpers behind them."""

import dataclasses
import io
import json
import pathlib
import re

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from workbench.core.data import load_dataset, load_run_data
from workbench.core.presets import preset
from workbench.core.spec import default_training_spec
from workbench.deploy import bnnfile
from workbench.deploy.engine import Engine, raw_inputs
from workbench.runs.store import RunStore
from workbench.runs.trained import pack_run
from workbench.runs.worker import run_worker
from workbench.ui import deploy_view

ROOT = pathlib.Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
TIMEOUT = 60


def small_mlp() -> dict:
    spec = preset("binary-mlp")
    spec["name"] = "small-mlp"
    spec["layers"][1]["units"] = spec["layers"][3]["units"] = 64
    return spec


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A toy MLP on moons and a small MLP on (a slice of) the MNIST sample, 1 epoch each, in one store."""
    runs_dir = tmp_path_factory.mktemp("deploy_runs")
    store = RunStore(runs_dir)
    training = dict(default_training_spec(), epochs=1, batch_size=64)
    moons = store.create_run("moons", preset("toy-mlp"), training, "moons")
    assert run_worker(moons, runs_dir) == "completed"
    mnist = store.create_run("digits", small_mlp(), training, "mnist-sample")
    full = load_dataset("mnist-sample")
    subset = dataclasses.replace(full, x_train=full.x_train[:640], y_train=full.y_train[:640])
    assert run_worker(mnist, runs_dir, dataset=subset) == "completed"
    return runs_dir, moons, mnist


@pytest.fixture
def store(runs, monkeypatch):
    monkeypatch.setenv("BNN_WORKBENCH_RUNS", str(runs[0]))
    return RunStore(runs[0])


def open_page(page: str, run_id: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page(page)
    if run_id:
        at.query_params["run"] = run_id
    return at.run()


def no_exceptions(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def metrics(at: AppTest) -> dict:
    return {m.label: m.value for m in at.metric}


# ------------------------------------------------------------------ Deploy


@pytest.mark.parametrize("page", ["pages/deploy.py", "pages/export.py"])
def test_pages_render_on_an_empty_store(page):
    at = open_page(page)
    no_exceptions(at)
    assert not at.error
    assert "No runs yet" in at.info[0].value


def test_deploy_agrees_with_torch_and_shows_memory(store, runs):
    _, moons, _ = runs
    at = open_page("pages/deploy.py", moons)
    no_exceptions(at)
    assert not at.error, [e.value for e in at.error]
    at.slider(key="deploy_samples").set_value(150).run()
    no_exceptions(at)
    shown = metrics(at)
    # the same comparison done here with the library
    packed = pack_run(moons, store=store)
    dataset = load_dataset("moons")
    x, y = dataset.x_test[:150], dataset.y_test[:150]
    engine_pred = Engine(packed).predict(raw_inputs(x, packed.meta["preprocessing"]))
    import torch

    from workbench.runs.trained import load_trained_model

    model, _ = load_trained_model(moons, store=store)
    with torch.no_grad():
        torch_pred = model(torch.from_numpy(x)).argmax(dim=1).numpy()
    assert shown["engine accuracy"] == f"{(engine_pred == y).mean():.2%}"
    assert shown["torch accuracy"] == f"{(torch_pred == y).mean():.2%}"
    assert shown["disagreements"] == f"{int((engine_pred != torch_pred).sum())} of 150"
    bits = at.dataframe[0].value
    assert list(bits["hidden layer (input bits)"]) == ["2_dense", "4_dense"]
    assert list(bits["bits compared"]) == [150 * 64, 150 * 64]
    # memory: the real file size of what Export offers, and the report's totals
    assert shown[".bnn file"] == f"{len(bnnfile.to_bytes(packed)):,} B"
    assert shown["ratio"].endswith("x") and float(shown["ratio"][:-1]) > 1
    titles = [chart.proto.spec for chart in at.get("plotly_chart")]
    assert any("float32 vs packed" in spec for spec in titles)


def test_deploy_caches_one_packed_model(store, runs):
    _, moons, mnist = runs
    at = open_page("pages/deploy.py", moons)
    first = at.session_state[deploy_view.PACKED_SLOT]
    assert first[0][0] == moons
    at.run()
    assert at.session_state[deploy_view.PACKED_SLOT][1] is first[1], "re-packed on a rerun"
    at.selectbox(key="deploy_run").set_value(mnist).run()
    no_exceptions(at)
    slot = at.session_state[deploy_view.PACKED_SLOT]
    assert slot[0][0] == mnist and slot[0][1] == store.checkpoint_path(mnist).stat().st_mtime
    packed_models = [
        key
        for key, value in at.session_state.items()
        if isinstance(value, tuple) and isinstance(value[1], deploy_view.PackedRun)
    ]
    assert packed_models == [deploy_view.PACKED_SLOT]


def test_deploy_measures_speed_with_the_chosen_batch_and_threads(store, runs):
    _, moons, _ = runs
    at = open_page("pages/deploy.py", moons)
    at.number_input(key="deploy_batch").set_value(8).run()
    at.button(key="deploy_measure").click().run()
    no_exceptions(at)
    table = at.dataframe[-1].value
    assert list(table["implementation"]) == ["XNOR engine", "torch float32", "NumPy float32"]
    assert set(table["batch"]) == {8} and set(table["threads"]) == {1}
    assert (table["ms per batch"] > 0).all() and table["engine speed-up"].iloc[0] == 1.0
    assert any("Latency per batch of 8" in chart.proto.spec for chart in at.get("plotly_chart"))
    at.number_input(key="deploy_batch").set_value(16).run()
    assert not any(frame.value.columns[0] == "implementation" for frame in at.dataframe), "stale measurement shown"


def digit_png(pixels: np.ndarray, size: int = 140) -> bytes:
    """A dark-on-light enlarged picture of a white-on-black MNIST digit, as a user would upload it."""
    buffer = io.BytesIO()
    Image.fromarray(255 - pixels).resize((size, size)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_deploy_try_it_with_an_upload_and_a_broken_file(store, runs):
    _, _, mnist = runs
    at = open_page("pages/deploy.py", mnist)
    at.radio(key="deploy_source").set_value("Upload").run()
    dataset = load_dataset("mnist-sample")
    digit = raw_inputs(dataset.x_test[:1], dataset.preprocessing)[0, 0]
    data = digit_png(digit)
    at.get("file_uploader")[0].set_value(("digit.png", data, "image/png")).run()
    no_exceptions(at)
    assert not at.error, [e.value for e in at.error]
    expected = int(Engine(pack_run(mnist, store=store)).predict(deploy_view.image_input(data, (1, 28, 28))[None])[0])
    assert any(f"Prediction: {expected} (" in chart.proto.spec for chart in at.get("plotly_chart"))
    assert metrics(at)["engine time"].endswith("µs")
    at.get("file_uploader")[0].set_value(("broken.png", b"\x89PNG\r\n\x1a\n not really", "image/png")).run()
    no_exceptions(at)
    assert any("broken.png: not an image Pillow can read" in e.value for e in at.error), [e.value for e in at.error]
    assert not any("BytesIO" in e.value for e in at.error), [e.value for e in at.error]  # named by its file name


def test_deploy_draw_shows_an_empty_canvas(store, runs):
    _, _, mnist = runs
    at = open_page("pages/deploy.py", mnist)
    at.radio(key="deploy_source").set_value("Draw").run()
    no_exceptions(at)
    assert any("Draw a digit above" in c.value for c in at.caption), [c.value for c in at.caption]
    assert not any("Prediction:" in chart.proto.spec for chart in at.get("plotly_chart"))


def test_deploy_try_it_with_a_test_sample(store, runs):
    _, moons, _ = runs
    at = open_page("pages/deploy.py", moons)
    assert [o for o in at.radio(key="deploy_source").options] == ["Test sample"]  # no pictures for 2-D points
    at.number_input(key="deploy_sample").set_value(3).run()
    no_exceptions(at)
    dataset = load_dataset("moons")
    assert any(f"true class: {dataset.class_names[dataset.y_test[3]]}" in c.value for c in at.caption)
    logits = Engine(pack_run(moons, store=store)).logits(dataset.x_test[3:4])[0]
    assert any(f"Prediction: {int(np.argmax(logits))} (" in chart.proto.spec for chart in at.get("plotly_chart"))


def test_unfinished_missing_and_unpackable_runs_show_errors(store, runs):
    _, moons, _ = runs
    record = store.get_run(moons)
    queued = store.create_run("waiting", record.network_spec, record.training_spec, "moons")
    lost = store.create_run("lost", record.network_spec, record.training_spec, "moons")
    store.update_run(lost, status="completed")
    misfit = store.create_run("misfit", record.network_spec, record.training_spec, "moons")
    store.run_dir(misfit).joinpath("best.safetensors").write_bytes(store.checkpoint_path(moons).read_bytes())
    wider = json.loads(json.dumps(record.network_spec))
    wider["layers"][0]["units"] = 32
    store.update_run(misfit, status="completed", network_spec=wider)
    try:
        for page in ("pages/deploy.py", "pages/export.py"):
            for run_id, message in (
                (queued, f"run {queued} is queued: wait until it has finished"),
                (lost, f"run {lost} has no best checkpoint"),
                (misfit, "checkpoint 'best' does not fit the run's network spec"),
            ):
                at = open_page(page, run_id)
                no_exceptions(at)
                assert any(message in e.value for e in at.error), (page, [e.value for e in at.error])
    finally:
        for run_id in (queued, lost, misfit):
            store.update_run(run_id, status="failed")
            store.delete_run(run_id)


def test_the_chosen_run_is_carried_between_inspect_deploy_and_export(store, runs):
    """Pick a run on one page, open another: the same run is selected. Switching pages in the browser drops
    the URL's query, as ``forget_url`` does here; a ?run= that a link brings still wins."""
    _, moons, mnist = runs
    assert store.list_runs()[0].id == mnist  # the newest: what a picker shows first

    def forget_url(at):
        at.query_params.clear()
        return at

    at = open_page("pages/inspect.py")
    assert at.selectbox(key="inspect_run").value == mnist
    at.selectbox(key="inspect_run").set_value(moons).run()
    no_exceptions(at)
    assert at.query_params["run"] == moons
    forget_url(at).switch_page("pages/deploy.py").run()
    no_exceptions(at)
    assert at.selectbox(key="deploy_run").value == moons
    assert any(f"Packed run {moons}" in s.value for s in at.success)
    forget_url(at).switch_page("pages/export.py").run()
    assert at.selectbox(key="export_run").value == moons
    at.selectbox(key="export_run").set_value(mnist).run()
    forget_url(at).switch_page("pages/deploy.py").run()
    assert at.selectbox(key="deploy_run").value == mnist
    at.query_params["run"] = moons  # a link to a run (Train's "Deploy this run", a shared URL)
    at.switch_page("pages/export.py").run()
    no_exceptions(at)
    assert at.selectbox(key="export_run").value == moons
    at.switch_page("pages/inspect.py").run()
    assert at.selectbox(key="inspect_run").value == moons


# ------------------------------------------------------------------ Export


def test_export_round_trip_downloads_and_model_card(store, runs):
    _, moons, _ = runs
    at = open_page("pages/export.py", moons)
    no_exceptions(at)
    assert not at.error, [e.value for e in at.error]
    success = at.success[0].value
    assert "Round trip OK" in success and "SHA-256 checksum passed" in success
    assert "32 of 32 predictions match" in success
    size = len(bnnfile.to_bytes(pack_run(moons, store=store)))
    labels = [button.label for button in at.get("download_button")]
    assert labels == [f".bnn file ({size:,} bytes)", "network spec (JSON)", "model card (Markdown)"]
    card = next(m.value for m in at.markdown if m.value.startswith("# Model card"))
    assert "dataset: `moons`" in card and "## Size" in card
    ops = at.dataframe[0].value
    assert list(ops["op"]) == ["input_dense", "binary_dense", "binary_dense"]


def test_export_card_carries_the_agreement_measured_on_deploy(store, runs):
    _, moons, _ = runs
    at = open_page("pages/deploy.py", moons)
    at.slider(key="deploy_samples").set_value(120).run()
    at.switch_page("pages/export.py").run()
    no_exceptions(at)
    card = next(m.value for m in at.markdown if m.value.startswith("# Model card"))
    assert "engine accuracy (120 test samples)" in card


# ------------------------------------------------------------------ helpers


def test_round_trip_reports_a_corrupted_file(store, runs):
    _, moons, _ = runs
    packed = pack_run(moons, store=store)
    data = bytearray(bnnfile.to_bytes(packed))
    x = load_dataset("moons").x_test[:8]
    assert deploy_view.round_trip(bytes(data), packed, x)["identical_logits"]
    data[-40] ^= 1
    with pytest.raises(bnnfile.BnnFormatError, match="checksum mismatch"):
        deploy_view.round_trip(bytes(data), packed, x)


def png(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format="PNG")
    return buffer.getvalue()


def test_image_input_keeps_white_on_black_and_inverts_dark_on_light():
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255
    assert np.array_equal(deploy_view.image_input(png(digit), (1, 28, 28), center=False), digit[None])
    assert np.array_equal(deploy_view.image_input(png(255 - digit), (1, 28, 28), center=False), digit[None])
    rgba = np.zeros((56, 56, 4), np.uint8)  # a transparent canvas with black strokes
    rgba[12:44, 24:32] = (0, 0, 0, 255)
    seen = deploy_view.image_input(png(rgba, "RGBA"), (1, 28, 28))
    rows, cols = np.nonzero(seen[0] > 128)
    assert seen.shape == (1, 28, 28) and seen[0, 0, 0] == 0
    assert rows.min() >= 4 and rows.max() <= 23 and abs((cols.min() + cols.max()) / 2 - 13.5) <= 1.5  # centred


def test_image_input_errors_name_the_file_and_the_shape():
    for data in (b"GIF89a nonsense", b"\x89PNG\r\n\x1a\n not really"):
        with pytest.raises(ValueError, match=r"^scan.jpg: not an image Pillow can read") as caught:
            deploy_view.image_input(data, (1, 28, 28), "scan.jpg")
        assert "BytesIO" not in str(caught.value) and "0x" not in str(caught.value)
    with pytest.raises(ValueError, match=re.escape("points.png: the model takes input of shape [2], not an image")):
        deploy_view.image_input(png(np.zeros((4, 4), np.uint8)), (2,), "points.png")
    assert deploy_view.image_input(png(np.zeros((9, 9, 3), np.uint8)), (3, 8, 8)).shape == (3, 8, 8)


def test_classify_gives_probabilities_of_the_engine_logits(store, runs):
    _, moons, _ = runs
    engine = Engine(pack_run(moons, store=store))
    x = load_dataset("moons").x_test[:1]
    probabilities, seconds = deploy_view.classify(engine, x[0])
    logits = engine.logits(x)[0].astype(np.float64)
    assert probabilities.sum() == pytest.approx(1.0) and np.argmax(probabilities) == np.argmax(logits)
    assert probabilities[1] / probabilities[0] == pytest.approx(np.exp(logits[1] - logits[0]))
    assert seconds > 0


def test_one_slot_replaces_instead_of_growing():
    cache, calls = {}, []
    compute = lambda: calls.append(1) or len(calls)  # noqa: E731
    assert deploy_view.one_slot(cache, "s", ("a", 1), compute) == 1
    assert deploy_view.one_slot(cache, "s", ("a", 1), compute) == 1
    assert deploy_view.one_slot(cache, "s", ("b", 1), compute) == 2
    assert list(cache) == ["s"] and len(calls) == 2


def test_deploy_and_inspect_evaluate_on_the_runs_own_split(tmp_path, monkeypatch):
    """A one-set CSV trained with seed 1 and a 35% test share: both pages show that run's test rows, not a
    default re-split (seed 0, 20%), so nothing shown as 'test' was trained on."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    points = rng.normal(size=(200, 2)) + 2.0 * labels[:, None]
    data = tmp_path / "points.csv"
    data.write_text("label,a,b\n" + "\n".join(f"{y},{a:.4f},{b:.4f}" for y, (a, b) in zip(labels, points)) + "\n")
    store = RunStore(tmp_path / "runs")
    training = dict(default_training_spec(), epochs=1, batch_size=32, seed=1, test_split=0.35)
    run_id = store.create_run("split", preset("toy-mlp"), training, str(data))
    assert run_worker(run_id, store.runs_dir) == "completed"
    monkeypatch.setenv("BNN_WORKBENCH_RUNS", str(store.runs_dir))
    test_rows = len(load_run_data(str(data), store.get_run(run_id).training_spec).y_test)
    assert test_rows == 70 and test_rows != len(load_dataset(str(data)).y_test)

    deploy = open_page("pages/deploy.py", run_id)
    no_exceptions(deploy)
    assert deploy.slider(key="deploy_samples").max == test_rows
    assert deploy.number_input(key="deploy_sample").max == test_rows - 1

    inspect = open_page("pages/inspect.py", run_id)
    no_exceptions(inspect)
    assert any(f"of {test_rows}**" in m.value for m in inspect.markdown), [m.value for m in inspect.markdown]
