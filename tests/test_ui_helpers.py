"""workbench.ui helpers that hold logic: figure builders, the neuron view, run progress, uploads, images."""
from types import SimpleNamespace

import numpy as np
import pytest

from workbench.deploy.kernels import unpack_signs
from workbench.ui.figures import histogram_figure, primer_figure, sign_bits
from workbench.ui.neuron import neuron_view
from workbench.ui.run_monitor import MAX_POINTS, estimate_progress, format_seconds, poll_stride, thin
from workbench.ui.training_form import save_upload, upload_ref
from workbench.ui.widgets import bundled_data_for, to_image


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


def _record(status, epochs_done, epochs=4, started=100.0):
    return SimpleNamespace(status=status, epochs_done=epochs_done, training_spec={"epochs": epochs},
                           started_at=started)


def test_progress_counts_batches_of_the_current_epoch_once_an_epoch_is_known():
    epochs = {"epoch": [1], "step": [10]}  # epoch 1 ended at batch 10
    progress = estimate_progress(_record("running", 1), epochs, last_step=15, now=160.0)
    assert progress.fraction == pytest.approx(1.5 / 4)
    assert progress.eta_seconds == pytest.approx(60.0 * (1 - 0.375) / 0.375)
    assert "epoch 2 of 4, batch 5 of 10" in progress.text
    first = estimate_progress(_record("running", 0), {"epoch": [], "step": []}, last_step=7, now=110.0)
    assert first.fraction == 0 and first.eta_seconds is None
    assert estimate_progress(_record("completed", 4), epochs, last_step=40).fraction == 1.0


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


def test_uploads_are_saved_under_the_runs_dir_with_safe_names(tmp_path):
    path = save_upload(tmp_path, "../../etc/my data.csv", b"label,x\n0,1\n")
    assert path == tmp_path / "uploads" / "my_data.csv" and path.read_bytes() == b"label,x\n0,1\n"
    images = save_upload(tmp_path, "d-images.idx", b"1")
    labels = save_upload(tmp_path, "d-labels.idx", b"2")
    assert upload_ref([labels, images]) == str(images)
    with pytest.raises(ValueError, match="upload: give one .npz or .csv file"):
        upload_ref([path, labels])


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
