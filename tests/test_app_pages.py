"""AppTest of every page of the Streamlit app, against a real run store and real worker processes."""

import hashlib
import json
import pathlib
import time

import pytest
from streamlit.testing.v1 import AppTest

from workbench.core.presets import preset
from workbench.core.spec import default_training_spec
from workbench.runs.store import RunStore
from workbench.ui import state

ROOT = pathlib.Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
TIMEOUT = 60


def wait_for(store: RunStore, run_id: str, done, seconds: float = 120.0):
    """Poll the store until done(record) holds; fails with the run's status and error otherwise."""
    deadline = time.monotonic() + seconds
    while True:
        record = store.get_run(run_id)
        if done(record):
            return record
        if time.monotonic() > deadline:
            pytest.fail(f"run {run_id} still {record.status} after {seconds} s (error: {record.error})")
        time.sleep(0.3)


def finished(record) -> bool:
    return record.status not in ("queued", "running", "paused")


@pytest.fixture(scope="module")
def trained_runs(tmp_path_factory):
    """Two small runs on moons made by the library (one with distillation from the other), in their own store."""
    from workbench.runs.launch import start_run

    runs_dir = tmp_path_factory.mktemp("trained_runs")
    training = dict(default_training_spec(), epochs=2, batch_size=64)
    first = start_run(preset("toy-mlp"), training, "moons", name="plain", runs_dir=runs_dir)
    store = RunStore(runs_dir)
    record = wait_for(store, first, finished)
    assert record.status == "completed", record.error
    distilled = dict(training, distillation={"teacher_run": first, "alpha": 0.5, "temperature": 2.0})
    second = start_run(preset("toy-mlp"), distilled, "moons", name="distilled", runs_dir=runs_dir)
    record = wait_for(store, second, finished)
    assert record.status == "completed", record.error
    return runs_dir, first, second


@pytest.fixture
def trained_store(trained_runs, monkeypatch):
    runs_dir, first, second = trained_runs
    monkeypatch.setenv("BNN_WORKBENCH_RUNS", str(runs_dir))
    return RunStore(runs_dir), first, second


def app_on(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    if page:
        at.switch_page(page).run()
    return at


def no_exceptions(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def key(at: AppTest, *parts) -> str:
    """The key of a spec-bound widget on the Design page (keys carry the spec version)."""
    return f"spec{at.session_state[state.SPEC_VERSION_KEY]}_" + "_".join(str(p) for p in parts)


def layers(at: AppTest) -> list[dict]:
    return at.session_state[state.SPEC_KEY]["layers"]


# ------------------------------------------------------------------ every page renders


@pytest.mark.parametrize(
    "page", ["pages/home.py", "pages/design.py", "pages/train.py", "pages/inspect.py", "pages/runs.py"]
)
def test_each_page_renders_on_an_empty_store(page):
    at = app_on(page)
    no_exceptions(at)
    assert not at.error, [e.value for e in at.error]


def test_home_shows_the_primer_and_opens_a_preset_in_design():
    at = app_on()
    no_exceptions(at)
    assert at.title[0].value == "BNN Workbench"
    at.button(key="design_toy-mlp").click().run()
    no_exceptions(at)
    assert at.session_state[state.SPEC_KEY]["name"] == "toy-mlp"
    assert at.title[0].value == "Design"


# ------------------------------------------------------------------ Design


def test_design_adds_moves_and_removes_layers():
    at = app_on("pages/design.py")
    count = len(layers(at))
    at.selectbox(key="design_new_layer_type").set_value("dropout").run()
    at.number_input(key=key(at, "new_layer_position")).set_value(1).run()
    at.button(key="design_add_layer").click().run()
    no_exceptions(at)
    assert len(layers(at)) == count + 1 and layers(at)[1]["type"] == "dropout"
    at.button(key=key(at, 1, "down")).click().run()
    assert layers(at)[2]["type"] == "dropout"
    at.button(key=key(at, 2, "remove")).click().run()
    no_exceptions(at)
    assert len(layers(at)) == count and all(layer["type"] != "dropout" for layer in layers(at))
    assert at.success, "the preset spec should validate"


def test_design_shows_an_invalid_field_next_to_its_layer_and_keeps_the_edit():
    at = app_on("pages/design.py")
    at.number_input(key=key(at, 1, "units")).set_value(-4).run()
    no_exceptions(at)
    messages = [e.value for e in at.error]
    assert any("layer 1 (dense): field 'units' must be a positive integer, got -4" in m for m in messages), messages
    assert layers(at)[1]["units"] == -4
    assert not at.success


def test_design_quantizer_choice_and_binary_toggle_edit_the_spec():
    at = app_on("pages/design.py")
    at.selectbox(key=key(at, 1, "kernel_quantizer")).set_value("ste_tern").run()
    assert layers(at)[1]["kernel_quantizer"] == {
        "name": "ste_tern",
        "threshold": 0.05,
        "clip": 1.0,
        "ternary_weight_networks": False,
    }
    at.number_input(key=key(at, 1, "kernel_quantizer", "ste_tern", "threshold")).set_value(0.2).run()
    assert layers(at)[1]["kernel_quantizer"]["threshold"] == pytest.approx(0.2)
    at.checkbox(key=key(at, 1, "kernel_quantizer", "ste_tern", "ternary_weight_networks")).check().run()
    assert layers(at)[1]["kernel_quantizer"]["ternary_weight_networks"] is True
    at.selectbox(key=key(at, 1, "kernel_quantizer")).set_value("dorefa").run()
    no_exceptions(at)
    assert layers(at)[1]["kernel_quantizer"] == {"name": "dorefa", "bits": 2, "mode": "weights"}  # Larq's weight mode
    at.toggle(key=key(at, 3, "binary")).set_value(False).run()
    no_exceptions(at)
    assert layers(at)[3]["kernel_quantizer"] is None and layers(at)[3]["input_quantizer"] is None
    assert at.success


def test_design_loads_a_preset():
    at = app_on("pages/design.py")
    at.selectbox(key="design_preset").set_value("binary-cnn").run()
    at.sidebar.button[0].click().run()
    no_exceptions(at)
    assert at.session_state[state.SPEC_KEY] == preset("binary-cnn")
    assert any("conv2d" in m.value for m in at.markdown)


def test_design_upload_replaces_the_spec_and_a_broken_upload_keeps_it():
    at = app_on("pages/design.py")
    uploader = at.get("file_uploader")[0]
    uploader.set_value(("toy.json", json.dumps(preset("toy-mlp")).encode(), "application/json"))
    at.run()
    assert at.session_state[state.SPEC_KEY]["name"] == "toy-mlp"
    broken = dict(preset("binary-mlp"), layers=[{"type": "dense", "untis": 10}])
    at.get("file_uploader")[0].set_value(("broken.json", json.dumps(broken).encode(), "application/json"))
    at.run()
    no_exceptions(at)
    assert at.session_state[state.SPEC_KEY]["name"] == "toy-mlp"
    messages = [e.value for e in at.error]
    assert any("broken.json" in m and "untis" in m and "kept" in m for m in messages), messages
    at.get("file_uploader")[0].set_value(("bad.json", b"{not json", "application/json"))
    at.run()
    assert any("bad.json: not valid JSON" in e.value for e in at.error)
    assert at.session_state[state.SPEC_KEY]["name"] == "toy-mlp"


def test_design_clears_a_refused_upload_s_error_when_a_preset_loads():
    at = app_on("pages/design.py")
    at.get("file_uploader")[0].set_value(("bad.json", b"{not json", "application/json"))
    at.run()
    assert any("bad.json: not valid JSON" in e.value for e in at.error)
    at.selectbox(key="design_preset").set_value("toy-mlp").run()
    at.sidebar.button[0].click().run()
    no_exceptions(at)
    assert at.session_state[state.SPEC_KEY]["name"] == "toy-mlp"
    assert not at.error, [e.value for e in at.error]


def test_design_summary_table_has_readable_headers():
    at = app_on("pages/design.py")
    table = at.dataframe[0].value
    assert list(table.columns) == [
        "layer",
        "output shape",
        "parameters",
        "1-bit params",
        "32-bit params",
        "float32 bytes",
        "packed bytes",
        "stored as",
        "binary MACs",
        "float MACs",
    ]
    assert table["parameters"].iloc[1] == 784 * 2048
    columns = json.loads(at.dataframe[0].proto.columns)
    assert columns["parameters"]["type_config"]["format"] == "%,d"


def test_design_edits_a_shortcut_s_inner_layers_with_the_same_editor():
    """A Bi-Real-style block: shortcut(binary conv, batch norm) around x, built and edited with widgets."""
    at = app_on("pages/design.py")
    at.selectbox(key="design_preset").set_value("binary-cnn").run()
    at.sidebar.button[0].click().run()
    at.selectbox(key="design_new_layer_type").set_value("shortcut").run()
    at.number_input(key=key(at, "new_layer_position")).set_value(4).run()  # after the second binary conv
    at.button(key="design_add_layer").click().run()
    no_exceptions(at)
    assert layers(at)[4]["type"] == "shortcut" and [layer["type"] for layer in layers(at)[4]["layers"]] == [
        "batch_norm"
    ]
    at.selectbox(key="design_new_layer_type_4").set_value("conv2d").run()
    at.number_input(key=key(at, "new_layer_position_4")).set_value(0).run()
    at.button(key="design_add_layer_4").click().run()
    no_exceptions(at)
    inner = layers(at)[4]["layers"]
    assert [layer["type"] for layer in inner] == ["conv2d", "batch_norm"]
    at.number_input(key=key(at, "4.0", "filters")).set_value(64).run()  # as the conv before: x + conv(x)
    at.selectbox(key=key(at, "4.0", "padding")).set_value("same").run()
    at.selectbox(key=key(at, "4.0", "kernel_quantizer")).set_value("approx_sign").run()
    no_exceptions(at)
    inner = layers(at)[4]["layers"]
    assert inner[0]["kernel_quantizer"]["name"] == "approx_sign" and inner[0]["input_quantizer"]["name"] == "ste_sign"
    assert at.success, [e.value for e in at.error]  # the network with its Bi-Real block validates
    assert any("4.0 · conv2d" in m.value for m in at.markdown)
    at.button(key=key(at, "4.1", "up")).click().run()
    assert [layer["type"] for layer in layers(at)[4]["layers"]] == ["batch_norm", "conv2d"]
    at.button(key=key(at, "4.0", "remove")).click().run()
    no_exceptions(at)
    assert [layer["type"] for layer in layers(at)[4]["layers"]] == ["conv2d"]
    at.number_input(key=key(at, "4.0", "filters")).set_value(32).run()
    messages = [e.value for e in at.error]
    assert any("layer 4" in m and "must keep the shape" in m for m in messages), messages


def test_design_comes_back_after_a_reload_and_home_presets_replace_it(isolated_runs_dir):
    at = app_on("pages/design.py")
    at.number_input(key=key(at, 1, "units")).set_value(-4).run()  # mid-edit: invalid, and kept as it is
    at.selectbox(key="design_new_layer_type").set_value("dropout").run()
    at.button(key="design_add_layer").click().run()
    edited = json.loads(json.dumps(at.session_state[state.SPEC_KEY]))
    assert json.loads((isolated_runs_dir / state.DESIGN_DRAFT.file_name).read_text()) == edited

    reloaded = app_on("pages/design.py")  # a new session, as after reloading the tab
    no_exceptions(reloaded)
    assert reloaded.session_state[state.SPEC_KEY] == edited
    assert reloaded.number_input(key=key(reloaded, 1, "units")).value == -4
    reloaded.switch_page("pages/home.py").run()
    reloaded.button(key="design_toy-mlp").click().run()
    assert app_on("pages/design.py").session_state[state.SPEC_KEY] == preset("toy-mlp")


@pytest.mark.parametrize(
    "draft",
    [b"{not json", b'{"layers": [{"type": "denes"}]}', b"[1, 2]", b'{"layers": [], "input_shape": 784}', b"\xff\xfe"],
)
def test_design_names_an_unreadable_draft_and_starts_from_the_preset(isolated_runs_dir, draft):
    isolated_runs_dir.mkdir(parents=True)
    (isolated_runs_dir / state.DESIGN_DRAFT.file_name).write_bytes(draft)
    at = app_on("pages/design.py")
    no_exceptions(at)
    assert at.session_state[state.SPEC_KEY] == preset(state.DEFAULT_PRESET)
    assert any(state.DESIGN_DRAFT.file_name in w.value and "could not be read back" in w.value for w in at.warning)
    assert (isolated_runs_dir / "design-draft.unreadable.json").read_bytes() == draft


# ------------------------------------------------------------------ Train


def _train_page_on_circles(epochs: int) -> AppTest:
    """The Train page with toy-mlp and the circles set chosen, before Start."""
    at = app_on()
    at.session_state[state.SPEC_KEY] = preset("toy-mlp")
    at.switch_page("pages/train.py").run()
    at.radio(key="train_data_source").set_value("Synthetic 2-D set").run()
    at.selectbox(key="train_synthetic").set_value("circles").run()
    at.number_input(key="ts_epochs").set_value(epochs).run()
    return at


@pytest.mark.slow
def test_train_starts_a_two_process_run_and_shows_it_like_any_other(isolated_runs_dir):
    at = _train_page_on_circles(epochs=1)
    at.number_input(key="ts_batch_size").set_value(32).run()
    at.selectbox(key="ts_device").set_value("cpu").run()
    at.number_input(key="ts_processes").set_value(2).run()
    next(b for b in at.button if b.label == "Start training").click().run()
    no_exceptions(at)
    run_id = at.query_params["run"]
    store = RunStore(isolated_runs_dir)
    record = wait_for(store, run_id, finished, seconds=240)
    assert record.status == "completed", record.error
    assert record.training_spec["processes"] == 2 and record.training_spec["device"] == "cpu"
    steps = store.metrics(run_id, "step")["step"]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) == 900 // 32  # one row per global batch
    at.run()
    no_exceptions(at)
    assert any(f"run {run_id} · completed" in c.value for c in at.caption)
    assert at.get("plotly_chart"), "the live charts are missing"


@pytest.mark.slow
def test_train_starts_a_run_and_shows_its_metrics(isolated_runs_dir):
    at = _train_page_on_circles(epochs=2)
    start = next(b for b in at.button if b.label == "Start training")
    start.click().run()
    no_exceptions(at)
    run_id = at.query_params["run"]
    scrolls = [h for h in at.get("html") if "scrollIntoView" in h.proto.body]
    assert len(scrolls) == 1 and ".st-key-train_live" in scrolls[0].proto.body  # up to the new run's live panel
    store = RunStore(isolated_runs_dir)
    record = wait_for(store, run_id, finished)
    assert record.status == "completed", record.error
    assert record.data_ref == "circles" and record.training_spec["epochs"] == 2
    at.run()
    no_exceptions(at)
    assert not any("scrollIntoView" in h.proto.body for h in at.get("html")), "scrolled again on a later run"
    captions = [c.value for c in at.caption]
    assert any(f"run {run_id} · completed" in c for c in captions), captions
    steps = len(store.metrics(run_id, "step")["step"])
    assert any(f"{steps} batches and 2 epochs recorded" in c for c in captions), captions
    assert at.get("plotly_chart"), "the live charts are missing"


@pytest.mark.slow
def test_train_reattaches_to_the_run_in_the_url(trained_store):
    store, first, _ = trained_store
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["run"] = first
    at.run()
    at.switch_page("pages/train.py")
    at.query_params["run"] = first
    at.run()
    no_exceptions(at)
    assert any(f"run {first} · completed" in c.value for c in at.caption)
    record = store.get_run(first)
    status = next(c.value for c in at.caption if f"run {first} · completed" in c.value)
    assert f"test accuracy {record.test_accuracy:.2%} · exported checkpoint: {record.best_checkpoint_label}" in status


def test_a_finished_run_links_to_inspect_and_deploy(trained_store):
    store, first, _ = trained_store
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run().switch_page("pages/train.py")
    at.query_params["run"] = first
    at.run()
    no_exceptions(at)
    links = {link.proto.label: (link.proto.page, link.proto.query_string) for link in at.get("page_link")}
    assert links["Inspect this run"] == ("inspect", f"run={first}"), links
    assert links["Deploy this run"] == ("deploy", f"run={first}"), links
    assert not any(b.label == "Resume from the last checkpoint" for b in at.button)


def test_train_shows_a_missing_dataset_as_an_error(isolated_runs_dir, tmp_path):
    at = app_on()
    at.session_state[state.SPEC_KEY] = preset("binary-mlp")
    at.switch_page("pages/train.py").run()
    at.radio(key="train_data_source").set_value("Local MNIST folder").run()
    at.text_input(key="train_mnist_dir").set_value(str(tmp_path / "nowhere")).run()
    next(b for b in at.button if b.label == "Start training").click().run()
    no_exceptions(at)
    assert any("is not a folder" in e.value for e in at.error), [e.value for e in at.error]
    assert RunStore(isolated_runs_dir).list_runs() == []


def test_train_shows_an_invalid_training_field():
    at = app_on("pages/train.py")
    at.toggle(key="ts_two_stage_on").set_value(True).run()
    at.number_input(key="ts_two_stage").set_value(9).run()
    no_exceptions(at)
    assert any("two_stage.first_epochs" in e.value for e in at.error), [e.value for e in at.error]
    assert next(b for b in at.button if b.label == "Start training").disabled


def test_train_settings_come_back_after_a_reload(isolated_runs_dir):
    at = app_on("pages/train.py")
    at.number_input(key="ts_epochs").set_value(7).run()
    at.toggle(key="ts_two_stage_on").set_value(True).run()
    no_exceptions(at)
    reloaded = app_on("pages/train.py")  # a new session, as after reloading the tab
    no_exceptions(reloaded)
    assert reloaded.number_input(key="ts_epochs").value == 7 and reloaded.toggle(key="ts_two_stage_on").value
    assert reloaded.session_state[state.TRAINING_KEY]["epochs"] == 7


def test_train_names_an_invalid_settings_draft_and_uses_the_defaults(isolated_runs_dir):
    isolated_runs_dir.mkdir(parents=True)
    (isolated_runs_dir / state.TRAINING_DRAFT.file_name).write_text(json.dumps({"epochs": -1}))
    at = app_on("pages/train.py")
    no_exceptions(at)
    messages = [w.value for w in at.warning]
    assert any(
        "training-draft.json" in m and "epochs" in m and "training-draft.unreadable.json" in m for m in messages
    ), messages
    assert at.number_input(key="ts_epochs").value == default_training_spec()["epochs"]


# ------------------------------------------------------------------ Inspect and Runs


def test_inspect_shows_histograms_neuron_and_confusions(trained_store):
    store, first, _ = trained_store
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page("pages/inspect.py").run()
    no_exceptions(at)
    at.selectbox(key="inspect_run").set_value(first).run()
    at.selectbox(key="inspect_layer").set_value("2_dense").run()
    no_exceptions(at)
    metrics = {m.label: m.value for m in at.metric}
    record = store.get_run(first)  # opens on the exported epoch: its test accuracy is the one Runs shows
    assert at.selectbox(key="inspect_epoch").value == record.best_epoch
    plus = store.histograms(first, record.best_epoch)["2_dense"]["plus_share"]
    assert metrics["weights at +1"] == f"{plus:.1%}"
    assert metrics[f"test accuracy of epoch {record.best_epoch}"] == f"{record.test_accuracy:.2%}"
    assert len(at.get("plotly_chart")) >= 5  # latent, pre-sign, flips, neuron, confusion
    frames = at.dataframe
    assert frames and len(frames[0].value) == 1  # 64 inputs of 2_dense: one word per neuron
    assert len(frames[0].value.iloc[0, 1]) == 16


def test_inspect_shows_a_float_run_s_weights_and_mistakes(isolated_runs_dir):
    """A float network records no binarization histograms: Inspect reads its weights from the checkpoint."""
    from workbench.runs.worker import run_worker

    store = RunStore(isolated_runs_dir)
    run_id = store.create_run("float", preset("toy-mlp-float"), dict(default_training_spec(), epochs=2), "moons")
    assert run_worker(run_id, isolated_runs_dir) == "completed"
    assert store.histogram_epochs(run_id) == []
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page("pages/inspect.py").run()
    no_exceptions(at)
    assert not any("no finished epoch" in i.value for i in at.info), [i.value for i in at.info]
    assert at.selectbox(key="inspect_epoch").options == ["2 (exported)"]
    layers = at.selectbox(key="inspect_layer").options
    assert layers == ["0_dense", "3_dense", "6_dense"], layers  # a hardtanh before each but the first
    at.selectbox(key="inspect_layer").set_value("3_dense").run()
    no_exceptions(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["weights"] == f"{64 * 64:,}" and metrics["test accuracy of epoch 2"].endswith("%")
    specs = [chart.proto.spec for chart in at.get("plotly_chart")]
    assert any("Weights of 3_dense, epoch 2" in spec for spec in specs)
    assert any("Confusion matrix" in spec for spec in specs)
    assert any("float weights" in spec and "binarized" not in spec for spec in specs)
    assert any(m.value.startswith("**Misclassified: ") for m in at.markdown)
    assert not at.error, [e.value for e in at.error]


def test_runs_lists_compares_and_deletes(trained_store):
    store, first, second = trained_store
    at = app_on("pages/runs.py")
    no_exceptions(at)
    table = at.dataframe[0].value
    assert set(table["id"]) == {first, second}
    assert list(table.columns)[:5] == ["name", "status", "best val acc", "test acc", "exported epoch"]
    shown = dict(zip(table["id"], table["exported epoch"]))
    for record in store.list_runs():
        assert shown[record.id] == f"{record.best_epoch} of {record.epochs_done}, val"
    assert len(at.get("plotly_chart")) == 1
    at.selectbox(key="runs_delete").set_value(second).run()
    assert at.button(key="runs_delete_button").disabled
    at.checkbox(key="runs_delete_confirm").check().run()
    at.button(key="runs_delete_button").click().run()
    no_exceptions(at)
    assert [r.id for r in store.list_runs()] == [first]


def test_a_failed_run_shows_its_error(isolated_runs_dir):
    from workbench.runs.launch import start_run

    # the teacher run does not exist: the worker fails when it looks for it
    training = dict(default_training_spec(), epochs=1, distillation={"teacher_run": "no-such-run"})
    run_id = start_run(preset("toy-mlp"), training, "moons", runs_dir=isolated_runs_dir)
    store = RunStore(isolated_runs_dir)
    record = wait_for(store, run_id, finished)
    assert record.status == "failed" and record.error
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["run"] = run_id
    at.run().switch_page("pages/train.py")
    at.query_params["run"] = run_id
    at.run()
    no_exceptions(at)
    headline = record.error.splitlines()[0]
    assert "\n" in record.error  # the worker keeps the traceback's tail behind its message
    errors = [e.value for e in at.error]
    assert errors == [f"The run failed: {headline}"], errors
    assert at.expander[0].label == "Traceback" and at.expander[0].code[0].value == record.error.strip()
    assert store.checkpoint_epochs(run_id) == []
    assert not any(b.label == "Resume from the last checkpoint" for b in at.button), "nothing to resume from"
    assert any("nothing to resume" in c.value for c in at.caption)
    at.switch_page("pages/inspect.py").run()
    no_exceptions(at)
    assert [e.value for e in at.error] == [f"This run failed: {headline}"]
    at.switch_page("pages/runs.py").run()
    no_exceptions(at)
    assert any(e.value.endswith(f"failed: {headline}") for e in at.error)


def test_a_failed_run_with_a_checkpoint_offers_resume(trained_store):
    store, first, _ = trained_store
    record = store.get_run(first)
    failed = store.create_run("crashed", record.network_spec, record.training_spec, "moons")
    epoch = store.checkpoint_epochs(first)[-1]
    store.run_dir(failed).joinpath(f"epoch-{epoch:04d}.safetensors").write_bytes(
        store.checkpoint_path(first, epoch).read_bytes()
    )
    store.update_run(failed, status="failed", error="RuntimeError: out of memory\nTraceback ...")
    try:
        at = AppTest.from_file(APP, default_timeout=TIMEOUT)
        at.run().switch_page("pages/train.py")
        at.query_params["run"] = failed
        at.run()
        no_exceptions(at)
        assert [e.value for e in at.error] == ["The run failed: RuntimeError: out of memory"]
        assert any(b.label == "Resume from the last checkpoint" for b in at.button)
    finally:
        store.delete_run(failed)


@pytest.mark.slow
def test_train_on_an_uploaded_csv_saves_it_under_the_runs_dir(isolated_runs_dir):
    rows = ["label,x0,x1"] + [f"{i % 2},{(i % 2) * 2 - 1 + 0.01 * i},{0.5 - 0.01 * i}" for i in range(80)]
    at = app_on()
    at.session_state[state.SPEC_KEY] = preset("toy-mlp")
    at.switch_page("pages/train.py").run()
    at.radio(key="train_data_source").set_value("Upload a file").run()
    at.get("file_uploader")[0].set_value(("my points.csv", "\n".join(rows).encode(), "text/csv"))
    at.run()
    at.number_input(key="ts_epochs").set_value(1).run()
    next(b for b in at.button if b.label == "Start training").click().run()
    no_exceptions(at)
    content = "\n".join(rows).encode()
    saved = isolated_runs_dir / "uploads" / hashlib.sha256(content).hexdigest() / "my_points.csv"
    assert saved.read_bytes() == content
    store = RunStore(isolated_runs_dir)
    record = wait_for(store, at.query_params["run"], finished)
    assert record.data_ref == str(saved)
    assert record.status == "completed", record.error
