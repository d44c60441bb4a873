"""workbench.ui helpers that hold logic: figure builders, the neuron view, run progress, uploads, images."""

from types import SimpleNamespace

import numpy as np
import pytest

from workbench.core.presets import preset
from workbench.core.summary import summary
from workbench.deploy.kernels import unpack_signs
from workbench.ui.figures import histogram_figure, neuron_figure, primer_figure, sign_bits
from workbench.ui.inspect_view import flip_matrix, histogram_bins, weight_histogram
from workbench.ui.neuron import filter_tiles, neuron_view
from workbench.ui.run_monitor import (
    MAX_POINTS,
    curves,
    estimate_progress,
    format_seconds,
    layer_keys,
    planned_batches_per_epoch,
    poll_stride,
    thin,
)
from workbench.ui.runs_table import WIDTHS, runs_rows
from workbench.ui.summary_view import summary_columns, summary_table
from workbench.ui.widgets import bundled_data_for, by_position, error_headline, preferred_run, to_image


def test_sign_bits_maps_zero_to_plus_one():
    signs, bits = sign_bits(np.array([-0.5, 0.0, -0.0, 2.0]))
    assert signs.tolist() == [-1, 1, 1, 1]
    assert bits.tolist() == [1, 0, 0, 0]


def test_primer_title_gives_the_xnor_popcount_dot_product():
    weights = [0.7, -0.1, 0.0, -0.9]
    activations = [0.5, 0.3, -1.0, -0.2]  # signs agree at 0 and 3, differ at 1 and 2
    figure = primer_figure(weights, activations)
    assert "= 4 − 2·2 = 0" in figure.layout.title.text
    assert "(direct sum: 0)" in figure.layout.title.text
    with pytest.raises(ValueError, match="one length"):
        primer_figure([1.0], [1.0, 2.0])


def test_histogram_figure_draws_the_clip_bound():
    figure = histogram_figure([-1.0, 0.0, 1.0], [3, 5], "w", clip=0.8)
    lines = [shape.x0 for shape in figure.layout.shapes]
    assert -0.8 in lines and 0.8 in lines
    with pytest.raises(ValueError, match="3 edges and 3 counts"):
        histogram_figure([-1.0, 0.0, 1.0], [1, 2, 3], "w")


def test_neuron_view_of_a_dense_row_packs_like_the_engine():
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(4, 70)).astype(np.float32)
    weight[2, 5] = 0.0
    view = neuron_view(weight, 2)
    assert view.words.shape == (1, 2) and view.count == 70
    np.testing.assert_array_equal(unpack_signs(view.words[0], 70), np.where(weight[2] >= 0, 1, -1))
    assert view.negative == int((weight[2] < 0).sum())
    assert len(view.hex_words()[0][0]) == 16
    first_byte = int(view.hex_bytes()[0].split()[0], 16)  # little-endian: elements 0..7 are the first byte
    assert first_byte == sum(1 << j for j in range(8) if weight[2, j] < 0)


def test_neuron_view_of_a_conv_filter_is_ohwi():
    weight = np.zeros((3, 2, 3, 3), dtype=np.float32)  # (O, I, KH, KW)
    weight[1, 1, 0, 2] = -1.0  # output 1, input channel 1, kernel position (0, 2)
    view = neuron_view(weight, 1)
    assert view.latent.shape == (9, 2) and view.words.shape == (9, 1)
    assert view.word_labels[2] == "(0,2)"
    assert int(view.words[2, 0]) == 0b10 and int(view.words.sum()) == 0b10
    with pytest.raises(ValueError, match="output channel must be in \\[0, 3\\)"):
        neuron_view(weight, 3)


def _record(status, epochs_done, epochs=4, started=100.0, data_summary=None, **training):
    return SimpleNamespace(
        status=status,
        epochs_done=epochs_done,
        training_spec={"epochs": epochs, **training},
        started_at=started,
        data_summary=data_summary,
    )


def test_progress_counts_batches_of_the_current_epoch_once_an_epoch_is_known():
    epochs = {"epoch": [1], "step": [10]}  # epoch 1 ended at batch 10
    progress = estimate_progress(_record("running", 1), epochs, last_step=15, now=160.0)
    assert progress.fraction == pytest.approx(1.5 / 4)
    assert progress.eta_seconds == pytest.approx(60.0 * (1 - 0.375) / 0.375)
    assert "epoch 2 of 4, batch 5 of 10" in progress.text
    first = estimate_progress(_record("running", 0), {"epoch": [], "step": []}, last_step=7, now=110.0)
    assert first.fraction == 0 and first.eta_seconds is None
    assert estimate_progress(_record("completed", 4), epochs, last_step=40).fraction == 1.0


MOONS_SUMMARY = (
    "moons: 1,000 training and 200 test samples of shape [2], 2 classes; features used as given "
    "(not integer-valued, no value_range stated)"
)


def test_progress_counts_batches_from_the_first_one():
    """Before the first epoch ends its size comes from the data summary: 1,000 samples less a 10% validation
    share, in batches of 64, make 14 batches; the 7th batch of epoch 1 is 7 of 14, an eighth of a 4-epoch run."""
    record = _record("running", 0, data_summary=MOONS_SUMMARY, validation_split=0.1, batch_size=64)
    assert planned_batches_per_epoch(record) == 14
    progress = estimate_progress(record, {"epoch": [], "step": []}, last_step=7, now=110.0)
    assert "epoch 1 of 4, batch 7 of 14" in progress.text
    assert progress.fraction == pytest.approx(7 / 56)
    assert progress.eta_seconds == pytest.approx(10.0 * (1 - 7 / 56) / (7 / 56))
    unknown = estimate_progress(_record("running", 0), {"epoch": [], "step": []}, last_step=7, now=110.0)
    assert "batch 7" in unknown.text and unknown.fraction == 0
    # once an epoch has ended its real size counts, not the plan
    record.epochs_done = 1
    later = estimate_progress(record, {"epoch": [1], "step": [10]}, last_step=13)
    assert "epoch 1 of 4" not in later.text and "batch 3 of 10" in later.text


def test_layers_are_ordered_by_position_not_as_strings():
    names = ["9_dense", "11_dense", "0_conv2d", "3_conv2d", "3.1_conv2d", "3.0_batch_norm", "6_dense", "loss"]
    assert by_position(names) == [
        "0_conv2d",
        "3_conv2d",
        "3.0_batch_norm",
        "3.1_conv2d",
        "6_dense",
        "9_dense",
        "11_dense",
        "loss",
    ]
    table = {"loss": [0.5], **{f"flip/{n}_dense": [0.1 * n] for n in (0, 11, 3, 6, 9)}}
    assert layer_keys(table, "flip/") == [f"flip/{n}_dense" for n in (0, 3, 6, 9, 11)]
    steps = {"step": [1], **table}
    assert [trace.name for trace in curves(steps, {})["flips"].data] == [f"{n}_dense" for n in (0, 3, 6, 9, 11)]
    z, layers = flip_matrix({"epoch": [1], **table})
    assert layers == [f"{n}_dense" for n in (0, 3, 6, 9, 11)] and z[:, 0].tolist() == pytest.approx(
        [0, 0.3, 0.6, 0.9, 1.1]
    )
    assert flip_matrix({"epoch": [1], "loss": [0.5]}) is None


def test_a_conv_filter_is_drawn_as_k_by_k_tiles():
    rng = np.random.default_rng(1)
    weight = rng.normal(size=(2, 5, 3, 3)).astype(np.float32)  # 5 input channels: a 3 x 2 mosaic of 3 x 3 tiles
    view = neuron_view(weight, 1)
    assert view.picture.shape == (2 * 4 - 1, 3 * 4 - 1)
    for channel in range(5):
        top, left = (channel // 3) * 4, (channel % 3) * 4
        np.testing.assert_array_equal(view.picture[top : top + 3, left : left + 3], weight[1, channel])
    assert np.isnan(view.picture[3]).all() and np.isnan(view.picture[:, 3]).all()  # gaps between tiles
    assert np.isnan(view.picture[4:, 8:]).all()  # the sixth tile's place is empty
    assert "3 x 3 tile per input channel" in view.picture_note
    assert filter_tiles(weight[0, :1]).shape == (3, 3)
    dense = neuron_view(rng.normal(size=(3, 784)).astype(np.float32), 0)
    assert dense.picture.shape == (28, 28) and "28 x 28" in dense.picture_note


def test_neuron_figure_of_a_float_layer_has_no_sign_panel():
    picture = np.array([[0.5, -0.25], [np.nan, 1.0]])
    assert len(neuron_figure(picture).data) == 2
    figure = neuron_figure(picture, binarized=False)
    assert len(figure.data) == 1 and figure.layout.annotations[0].text == "float weights"


def test_weight_histogram_is_symmetric_and_counts_every_weight():
    weight = np.array([[-0.5, 0.1], [0.2, 0.3]], dtype=np.float32)
    histogram = weight_histogram(weight, bins=4)
    edges, counts = histogram["latent"]["edges"], histogram["latent"]["counts"]
    assert edges[0] == pytest.approx(-0.5) and edges[-1] == pytest.approx(0.5) and edges[2] == pytest.approx(0)
    assert counts == [1, 0, 2, 1] and histogram["count"] == 4 and histogram["clip"] is None
    assert histogram["mean_abs"] == pytest.approx(0.275)
    assert [histogram_bins(n) for n in (9, 72, 10**6)] == [10, 16, 60]  # even: 0 stays on an edge
    assert len(weight_histogram(np.ones(72))["latent"]["counts"]) == 16


def test_a_stored_error_reads_as_one_line_and_a_traceback():
    text = 'ValueError: run x must be completed\nTraceback (most recent call last):\n  File "w.py", line 3'
    assert error_headline(text) == (
        "ValueError: run x must be completed",
        'Traceback (most recent call last):\n  File "w.py", line 3',
    )
    assert error_headline("\n  only line \n") == ("only line", "")
    assert error_headline(None)[0] == "no reason was recorded"


def test_the_run_a_picker_opens_on():
    ids = ["c", "b", "a"]
    assert preferred_run(ids, None, None, None) == "c"  # the newest
    assert preferred_run(ids, None, None, "b") == "b"  # picked on another page
    assert preferred_run(ids, "a", "b", "b") == "a"  # a link's ?run= wins
    assert preferred_run(ids, "a", None, "b") == "a"  # so does a new tab's
    assert preferred_run(ids, "a", "a", "b") == "b"  # the pickers' own ?run= does not outvote a new choice
    assert preferred_run(ids, "gone", "x", "deleted") == "c"


def test_the_design_summary_table_has_readable_headers_and_separators():
    result = summary(preset("binary-mlp"))
    table = summary_table(result.rows)
    assert list(table)[:4] == ["layer", "output shape", "parameters", "1-bit params"]
    assert not any("_" in header for header in table)
    assert table["output shape"][0] == "784" and table["parameters"][1] == 784 * 2048
    config = summary_columns()
    assert all(config[h]["type_config"]["format"] == "%,d" for h in ("parameters", "packed bytes", "binary MACs"))
    assert sum(config[h]["width"] for h in table) <= 930  # fits beside the sidebar in a 1400 px window


def test_the_runs_table_puts_accuracies_first_and_fits_the_main_area():
    record = SimpleNamespace(
        id="20260101-120000-abcdef",
        name="r",
        status="completed",
        best_val_accuracy=0.9,
        test_accuracy=0.8,
        epochs_done=2,
        best_epoch=1,
        chosen_by_validation=True,
        data_ref="moons",
        parent_id=None,
        created_at=0.0,
        training_spec={"distillation": {"teacher_run": "t"}},
        error=None,
    )
    rows = runs_rows([record])
    assert list(rows)[:5] == ["name", "status", "best val acc", "test acc", "exported epoch"]
    assert rows["exported epoch"] == ["1 of 2, val"]
    assert rows["best val acc"] == [90.0] and rows["distillation"] == ["from t"] and set(rows) == set(WIDTHS)
    assert sum(WIDTHS.values()) <= 930  # the main area beside the sidebar in a 1400 px window (938 px)


def test_a_live_tick_reads_a_bounded_number_of_batch_rows():
    for last_step in (None, 10, 999, 1000, 20_000, 1_000_000):
        rows = (last_step or 0) // poll_stride(last_step)
        assert rows <= 2 * MAX_POINTS + 1 and (last_step is None or last_step < 2 * MAX_POINTS or rows >= MAX_POINTS)


def test_thin_averages_long_series_and_drops_missing_values():
    x, y = thin([0, 1, 2], [1.0, None, 3.0])
    assert (x, y) == ([0, 2], [1.0, 3.0])
    x, y = thin(list(range(10)), [float(v) for v in range(10)], limit=5)
    assert x == [1, 3, 5, 7, 9] and y == [0.5, 2.5, 4.5, 6.5, 8.5]


def test_format_seconds():
    assert [format_seconds(s) for s in (5, 125, 7300)] == ["5 s", "2 min 05 s", "2 h 01 min"]


def test_to_image_inverts_the_affine_pixel_map():
    pixels = np.array([[[0, 128, 255]]], dtype=np.uint8)
    x = pixels.astype(np.float32) * (2 / 255) - 1.0
    image = to_image(x, {"kind": "affine", "scale": 2 / 255, "offset": -1.0})
    assert image.dtype == np.uint8 and image.tolist() == [[0, 128, 255]]
    assert to_image(np.zeros(2), {"kind": "none"}) is None


def test_bundled_data_for_a_spec():
    assert bundled_data_for({"input_shape": [1, 28, 28], "num_classes": 10}) == "mnist-sample"
    assert bundled_data_for({"input_shape": [2], "num_classes": 2}) == "moons"
    assert bundled_data_for({"input_shape": [3, 32, 32], "num_classes": 10}) is None
