"""The XNOR engine against the torch model in eval mode: every hidden layer's bits and every prediction."""

import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch
from random_models import MIXED_SPEC, PIXELS, randomize_batch_norms

from workbench.core.presets import preset
from workbench.deploy import bnnfile
from workbench.deploy.engine import Engine, EngineError
from workbench.train.agreement import compare
from workbench.train.model import build_model
from workbench.train.packing import pack_model

ROOT = pathlib.Path(__file__).resolve().parent.parent


def to_float(u):
    return u.astype(np.float32) * np.float32(PIXELS["scale"]) + np.float32(PIXELS["offset"])


def compare_hidden_bits(model, packed, u, tolerance=1e-5):
    """(engine logits, torch logits, per XNOR layer: (bits differing from torch's signs, pre-activations near 0))."""
    result = compare(model, packed, to_float(u), threads=1, tolerance=tolerance)
    assert result["exact_input"], "the engine must get the same uint8 pixels the float inputs came from"
    return (
        result["engine_logits"],
        result["torch_logits"],
        {row["layer"]: (row["differing"], row["near_zero"]) for row in result["layers"]},
    )


@pytest.mark.parametrize("name", ["binary-cnn", "vgg-small", "binary-mlp"])
def test_random_presets_bit_exact(name):
    torch.manual_seed(0)
    spec = preset(name)
    model = randomize_batch_norms(build_model(spec))
    packed = pack_model(model, spec, preprocessing=PIXELS)
    u = np.random.default_rng(0).integers(0, 256, (6, *spec["input_shape"]), dtype=np.uint8)
    logits, reference, results = compare_hidden_bits(model, packed, u)
    assert len(results) >= 2
    for layer, (differing, near) in results.items():
        assert differing == 0, f"{layer}: {differing} bits differ ({near} pre-activations within 1e-5 of 0)"
    np.testing.assert_allclose(logits, reference, rtol=1e-5, atol=1e-4)
    assert (logits.argmax(1) == reference.argmax(1)).all()
    # float32 input takes the float first layer: same predictions
    np.testing.assert_allclose(Engine(packed).logits(to_float(u)), reference, rtol=1e-5, atol=1e-4)


def small_mlp(width):
    """binary-mlp with narrower hidden layers, quick to train on two shared cores."""
    spec = preset("binary-mlp")
    for layer in spec["layers"]:
        if layer["type"] == "dense" and layer["units"] == 2048:
            layer["units"] = width
    return spec


@pytest.mark.slow
def test_trained_on_mnist_sample_bit_exact():
    from workbench.core.data import load_dataset
    from workbench.core.spec import default_training_spec
    from workbench.train.training import train

    dataset = load_dataset("mnist-sample")
    spec = small_mlp(128)
    training = dict(default_training_spec(), epochs=1, batch_size=128)
    result = train(spec, training, dataset)
    model = result.model.eval()
    packed = pack_model(model, spec, preprocessing=dataset.preprocessing)
    u = np.rint((dataset.x_test - PIXELS["offset"]) / PIXELS["scale"]).astype(np.uint8)
    assert np.array_equal(to_float(u), dataset.x_test)
    logits, reference, results = compare_hidden_bits(model, packed, u)
    for layer, (differing, near) in results.items():
        assert differing <= near, f"{layer}: {differing} bits differ, {near} near-ties"
    assert (logits.argmax(1) == reference.argmax(1)).all()
    assert (logits.argmax(1) == dataset.y_test).mean() > 0.5


def test_shortcut_rsign_scaling_and_float_fallbacks_agree_with_torch():
    torch.manual_seed(3)
    model = randomize_batch_norms(build_model(MIXED_SPEC), zero_gamma=1, thresholds=0.3)
    packed = pack_model(model)
    ops = [layer.op for layer in packed.layers]
    assert "residual_begin" in ops and "sign" in ops and "max_pool_bits" in ops and "float_dense" in ops
    u = np.random.default_rng(2).integers(0, 256, (20, 2, 8, 8), dtype=np.uint8)
    x = to_float(u)
    logits, reference, results = compare_hidden_bits(model, pack_model(model, preprocessing=PIXELS), u)
    for layer, (differing, near) in results.items():
        assert differing <= near, f"{layer}: {differing} bits differ, {near} near-ties"
    np.testing.assert_allclose(Engine(packed).logits(x), reference, rtol=1e-4, atol=1e-4)


RSIGN_FLOAT_SPEC = {
    "name": "rsign-float",
    "input_shape": [2, 6, 6],
    "num_classes": 3,
    "layers": [
        {
            "type": "conv2d",
            "filters": 4,
            "kernel_size": 3,
            "padding": "same",
            "input_quantizer": "rsign",
            "kernel_quantizer": "dorefa",
        },
        {"type": "batch_norm"},
        {"type": "flatten"},
        {"type": "dense", "units": 5, "input_quantizer": "rsign", "kernel_quantizer": "ste_tern"},
        {"type": "dense", "units": 3},
    ],
}


def test_rsign_input_on_a_float_layer_exports_and_agrees_with_torch(tmp_path):
    """rsign before a layer that is not XNOR-able (dorefa, ternary weights) is a quantize op with its thresholds:
    pack -> save -> load -> engine gives torch's logits."""
    torch.manual_seed(5)
    model = randomize_batch_norms(build_model(RSIGN_FLOAT_SPEC), zero_gamma=0)
    for module in model.modules():
        if hasattr(module, "threshold"):
            module.threshold.data.normal_(0, 0.3)
    bnnfile.save(pack_model(model, preprocessing=PIXELS), tmp_path / "rsign.bnn")
    loaded = bnnfile.load(tmp_path / "rsign.bnn")
    quantize = [layer for layer in loaded.layers if layer.op == "quantize"]
    assert [layer.arrays["thresholds"].shape for layer in quantize] == [(2,), (144,)]
    u = np.random.default_rng(5).integers(0, 256, (16, 2, 6, 6), dtype=np.uint8)
    with torch.no_grad():
        reference = model(torch.from_numpy(to_float(u))).numpy()
    engine = Engine(loaded, threads=1)
    np.testing.assert_allclose(engine.logits(u), reference, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(engine.logits(to_float(u)), reference, rtol=1e-4, atol=1e-4)


def test_nan_activations_before_a_sign_are_an_engine_error_naming_the_op():
    engine = Engine(pack_model(build_model(preset("toy-mlp")).eval()))
    with pytest.raises(EngineError, match=r"layer 0 \('0_dense', op input_dense\): pack_signs: .*NaN"):
        engine.logits(np.array([[np.nan, 0.0]], np.float32))


def test_engine_runs_from_a_file_without_torch(tmp_path):
    spec = preset("binary-cnn")
    model = randomize_batch_norms(build_model(spec))
    bnnfile.save(pack_model(model, preprocessing=PIXELS), tmp_path / "m.bnn")
    u = np.random.default_rng(0).integers(0, 256, (3, 1, 28, 28), dtype=np.uint8)
    np.save(tmp_path / "u.npy", u)
    with torch.no_grad():
        expected = model(torch.from_numpy(to_float(u))).argmax(1).numpy()
    code = (
        "import sys, numpy as np\n"
        "from workbench.deploy.engine import Engine\nfrom workbench.deploy import bnnfile\n"
        "engine = Engine(bnnfile.load(sys.argv[1]))\n"
        "print(' '.join(map(str, engine.predict(np.load(sys.argv[2])))))\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "m.bnn"), str(tmp_path / "u.npy")],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout
    assert [int(v) for v in out.split()] == expected.tolist()


def test_bad_input_is_a_clear_error():
    engine = Engine(pack_model(build_model(preset("toy-mlp")).eval()))
    with pytest.raises(EngineError, match=r"expected shape \(N, 2\)"):
        engine.logits(np.zeros((4, 3), np.float32))
    with pytest.raises(EngineError, match="int64"):
        engine.logits(np.zeros((4, 2), np.int64))


@pytest.mark.mnist
def test_full_mnist_test_set_bit_exact(mnist_dir):
    from workbench.core.data import load_dataset
    from workbench.core.spec import default_training_spec
    from workbench.train.training import train

    dataset = load_dataset(f"mnist:{mnist_dir}")
    spec = small_mlp(128)
    training = dict(default_training_spec(), epochs=1, batch_size=256)
    model = train(spec, training, dataset).model.eval()
    packed = pack_model(model, spec, preprocessing=dataset.preprocessing)
    u = np.rint((dataset.x_test - PIXELS["offset"]) / PIXELS["scale"]).astype(np.uint8)
    logits, reference, results = compare_hidden_bits(model, packed, u)
    for layer, (differing, near) in results.items():
        assert differing <= near, f"{layer}: {differing} bits differ, {near} near-ties"
    assert (logits.argmax(1) == reference.argmax(1)).all()
    assert (logits.argmax(1) == dataset.y_test).mean() > 0.8


def test_uint8_first_conv_with_odd_channels_and_padding_bit_exact():
    """The uint8 first conv: per-position thresholds ("same") and a channel count that is not a multiple of 64."""
    spec = {
        "name": "odd",
        "input_shape": [3, 9, 7],
        "num_classes": 4,
        "layers": [
            {"type": "conv2d", "filters": 70, "kernel_size": 3, "padding": "same", "kernel_quantizer": "ste_sign"},
            {"type": "batch_norm"},
            {
                "type": "conv2d",
                "filters": 5,
                "kernel_size": 3,
                "stride": 2,
                "input_quantizer": "ste_sign",
                "kernel_quantizer": "ste_sign",
            },
            {"type": "batch_norm"},
            {"type": "flatten"},
            {"type": "dense", "units": 4, "input_quantizer": "ste_sign", "kernel_quantizer": "ste_sign"},
            {"type": "batch_norm"},
        ],
    }
    torch.manual_seed(3)
    model = randomize_batch_norms(build_model(spec), seed=3)
    packed = pack_model(model, spec, preprocessing=PIXELS)
    u = np.random.default_rng(3).integers(0, 256, (4, 3, 9, 7), dtype=np.uint8)
    u[0] = 255
    u[1] = 0
    logits, reference, results = compare_hidden_bits(model, packed, u)
    assert results
    for layer, (differing, near) in results.items():
        assert differing == 0, f"{layer}: {differing} bits differ ({near} pre-activations within 1e-5 of 0)"
    np.testing.assert_allclose(logits, reference, rtol=1e-5, atol=1e-4)


def test_binary_pooling_other_than_2x2_bit_exact():
    """3x3 stride-2 max pooling between binary convs takes the NumPy fallback, with mixed AND/OR channels."""
    spec = {
        "name": "pool3",
        "input_shape": [1, 12, 12],
        "num_classes": 3,
        "layers": [
            {"type": "conv2d", "filters": 6, "kernel_size": 3, "padding": "same", "kernel_quantizer": "ste_sign"},
            {"type": "max_pool", "pool_size": 3, "stride": 2},
            {"type": "batch_norm"},
            {
                "type": "conv2d",
                "filters": 7,
                "kernel_size": 3,
                "input_quantizer": "ste_sign",
                "kernel_quantizer": "ste_sign",
            },
            {"type": "batch_norm"},
            {"type": "flatten"},
            {"type": "dense", "units": 3, "input_quantizer": "ste_sign", "kernel_quantizer": "ste_sign"},
            {"type": "batch_norm"},
        ],
    }
    torch.manual_seed(4)
    model = randomize_batch_norms(build_model(spec), seed=4, zero_gamma=0)
    packed = pack_model(model, spec, preprocessing=PIXELS)
    pools = [layer for layer in packed.layers if layer.op == "max_pool_bits"]
    assert pools and 0 < int((pools[0].arrays["use_or"] > 0).sum()) < 6  # mixed directions
    u = np.random.default_rng(4).integers(0, 256, (5, 1, 12, 12), dtype=np.uint8)
    logits, reference, results = compare_hidden_bits(model, packed, u)
    assert results
    for layer, (differing, near) in results.items():
        assert differing == 0, f"{layer}: {differing} bits differ ({near} pre-activations within 1e-5 of 0)"
    np.testing.assert_allclose(logits, reference, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name", ["binary-mlp", "binary-cnn"])
def test_empty_batch(name):
    spec = preset(name)
    engine = Engine(pack_model(build_model(spec).eval(), preprocessing=PIXELS), threads=1)
    for dtype in (np.uint8, np.float32):
        empty = np.zeros((0, *spec["input_shape"]), dtype)
        assert engine.logits(empty).shape == (0, 10) and engine.predict(empty).shape == (0,)


@pytest.mark.parametrize("threads", [1, 2, None])
@pytest.mark.parametrize("name", ["binary-mlp", "binary-cnn"])
def test_dense_chain_is_the_op_loop_bit_for_bit(tmp_path, threads, name):
    """The binary MLP runs as one compiled DenseChain call in logits(), the CNN's dense tail as one on the bits
    of its last pooling; trace() runs the op loop: the same float32 logits, bit for bit, for every batch size
    (empty, odd, 8 rows: the uint8 dword kernel, past a 64-row tile), uint8 and float input, and SIMD path."""
    from workbench.deploy import kernels
    from workbench.train import benchmark

    path = tmp_path / f"{name}.bnn"
    benchmark.random_preset_file(name, path)
    engine = Engine(str(path), threads=threads)
    assert engine._chain is not None
    assert (engine._body is not None) == (name == "binary-cnn")  # its convs and poolings: one BitBody call
    assert (engine._net is not None) == (name == "binary-cnn")  # and with its first conv and tail: one ConvNet call
    ops = [op for _, op, _ in engine.steps]
    if name == "binary-mlp":
        assert engine._chain_from == 0  # the whole network
    else:  # the tail: everything from the flatten after the convolutions
        assert "binary_conv2d" in ops[: engine._chain_from] and ops[engine._chain_from] == "flatten"
        assert set(ops[engine._chain_from + 1 :]) == {"binary_dense"}
    rng = np.random.default_rng(0)
    try:
        for backend in kernels.available_backends():
            kernels.set_backend(backend)
            for m in (0, 1, 3, 8, 65):
                u = rng.integers(0, 256, (m, *engine.input_shape), dtype=np.uint8)
                for x in (u, u.astype(np.float32) / 255):
                    got, (expected, _) = engine.logits(x), engine.trace(x)
                    assert got.dtype == np.float32 and got.shape == expected.shape
                    np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))
    finally:
        kernels.set_backend("auto")


def test_dense_chain_on_bits_checks_its_rows():
    from workbench.deploy import kernels

    rng = np.random.default_rng(1)
    w1, w2 = kernels.pack_signs(rng.standard_normal((70, 200))), kernels.pack_signs(rng.standard_normal((10, 70)))
    chain = kernels.bind_dense_chain(
        None,
        [(w1, 200, np.zeros(70, np.int32), np.zeros(70, np.uint8))],
        (w2, 70, np.ones(10, np.float32), np.zeros(10, np.float32)),
        threads=1,
    )
    a = kernels.pack_signs(rng.standard_normal((5, 200)))
    hidden = kernels.xnor_gemm_threshold(a, w1, 200, np.zeros(70, np.int32), np.zeros(70, np.uint8), threads=1)
    np.testing.assert_array_equal(chain(a), kernels.xnor_gemm(hidden, w2, 70, threads=1).astype(np.float32))
    with pytest.raises(ValueError, match=r"a_bits: expected uint64 rows \(M, 4\)"):
        chain(a[:, :3].copy())


def test_vgg_small_body_is_the_op_loop_bit_for_bit(tmp_path):
    """VGG-small's five binary convs and three poolings run as one BitBody call in logits() ('same' padding: the
    bordered copies; 128 - 512 channels: 2 - 8 words per pixel), the op loop in trace(): the same logits on every
    SIMD path."""
    from workbench.deploy import kernels
    from workbench.train import benchmark

    path = tmp_path / "vgg-small.bnn"
    benchmark.random_preset_file("vgg-small", path)
    engine = Engine(str(path), threads=1)
    assert engine._body is not None and engine._net is not None
    u = np.random.default_rng(3).integers(0, 256, (2, *engine.input_shape), dtype=np.uint8)
    try:
        for backend in kernels.available_backends():
            kernels.set_backend(backend)
            got, (expected, _) = engine.logits(u), engine.trace(u)
            np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))
    finally:
        kernels.set_backend("auto")


def _small_conv_net(rng, threads=1):
    """A uint8 3x3 'same' first conv (3 -> 70 channels, per-position thresholds), a binary conv and a 2x2 pooling,
    and a dense tail to 10 classes: the three bound parts of a ConvNet."""
    from workbench.deploy import kernels

    w0 = kernels.pack_signs(rng.standard_normal((70, 27)))
    thr0 = rng.integers(-400, 400, (36, 70)).astype(np.int32)
    first = kernels.bind_input_conv2d(
        w0, (3, 3), 3, (6, 6), thr0, rng.integers(0, 2, 70), padding="same", threads=threads
    )
    w1 = kernels.pack_signs(rng.standard_normal((64, 3, 3, 70)))
    conv = kernels.bind_conv2d(
        w1, 70, rng.integers(-20, 20, 64).astype(np.int32), rng.integers(0, 2, 64), padding="same", threads=threads
    )
    body = kernels.bind_bit_body([conv, kernels.bind_max_pool2d_bits()], (6, 6, 2), threads=threads)
    w2, w3 = kernels.pack_signs(rng.standard_normal((30, 9 * 64))), kernels.pack_signs(rng.standard_normal((10, 30)))
    tail = kernels.bind_dense_chain(
        None,
        [(w2, 9 * 64, rng.integers(-20, 20, 30).astype(np.int32), rng.integers(0, 2, 30))],
        (w3, 30, rng.standard_normal(10), rng.standard_normal(10)),
        threads=threads,
    )
    return first, body, tail


@pytest.mark.parametrize("threads", [1, 2])
def test_conv_net_is_its_three_parts_bit_for_bit(threads):
    """bind_conv_net runs a uint8 first conv, a BitBody and a dense tail as one call on kept buffers: the same
    logits as the three calls, for changing batch sizes (its buffers remade; a large batch's not kept), and from
    two Python threads at once (a call made while another runs gets its own buffers)."""
    import concurrent.futures
    import tracemalloc

    from workbench.deploy import kernels

    rng = np.random.default_rng(7)
    first, body, tail = _small_conv_net(rng, threads)
    net = kernels.bind_conv_net(first, body, tail, threads=threads)
    for m in (1, 3, 1, 0, 70, 3000):  # 3000 images: past what it keeps (4 MiB), its buffers made as it goes
        x = rng.integers(0, 256, (m, 3, 6, 6), dtype=np.uint8)
        expected = tail(body(first(x)).reshape(m, 9))  # 3 x 3 pixels of 1 word
        tracemalloc.start()
        got = net(x)
        kept = tracemalloc.get_traced_memory()[0] - got.nbytes
        tracemalloc.stop()
        np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))
        if m == 3000:
            assert kept < 1 << 20
    batches = [rng.integers(0, 256, (m, 3, 6, 6), dtype=np.uint8) for m in (1, 2) * 20]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(net, batches))
    for x, got in zip(batches, results):
        np.testing.assert_array_equal(got, tail(body(first(x)).reshape(len(x), 9)))


def test_dense_chain_calls_from_two_threads_keep_their_own_buffers():
    """A DenseChain keeps its last call's buffers; a call made while another runs without the GIL gets new ones
    (it used to take the running call's when the batch size matched: wrong logits from an engine shared by two
    threads, e.g. two sessions of the app)."""
    import concurrent.futures

    from workbench.deploy import kernels

    rng = np.random.default_rng(9)
    w1, w2 = kernels.pack_signs(rng.standard_normal((300, 4096))), kernels.pack_signs(rng.standard_normal((10, 300)))
    thresholds, flip = rng.integers(-20, 20, 300).astype(np.int32), rng.integers(0, 2, 300)
    chain = kernels.bind_dense_chain(
        None, [(w1, 4096, thresholds, flip)], (w2, 300, rng.standard_normal(10), rng.standard_normal(10)), threads=1
    )
    rows = [kernels.pack_signs(rng.standard_normal((64, 4096))) for _ in range(100)]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(chain, rows))
    for a, got in zip(rows, results):
        np.testing.assert_array_equal(got, chain(a))


def test_conv_net_refuses_parts_that_do_not_fit():
    from workbench.deploy import kernels

    rng = np.random.default_rng(8)
    first, body, tail = _small_conv_net(rng)
    with pytest.raises(ValueError, match="bind_conv_net: expected bind_input_conv2d, bind_bit_body and"):
        kernels.bind_conv_net(body, first, tail)
    other = kernels.bind_bit_body([kernels.bind_max_pool2d_bits()], (6, 6, 2), threads=1)  # 3x3x2 words: not 9x1
    with pytest.raises(ValueError, match="ConvNet: the parts do not fit one another"):
        kernels.bind_conv_net(first, other, tail)
    net = kernels.bind_conv_net(first, body, tail)
    with pytest.raises(ValueError, match=r"bind_conv_net: x: expected uint8 images \(N, 3, 6, 6\), got float32"):
        net(np.zeros((1, 3, 6, 6), np.float32))
    with pytest.raises(
        ValueError, match=r"x: expected uint8 images \(N, 3, 6, 6\), got uint8 with shape \(1, 3, 6, 5\)"
    ):
        net(np.zeros((1, 3, 6, 5), np.uint8))


def test_bit_body_refuses_what_does_not_fit():
    from workbench.deploy import kernels

    rng = np.random.default_rng(4)
    w = kernels.pack_signs(rng.standard_normal((70, 3, 3, 64)))
    conv = kernels.bind_conv2d(w, 64, np.zeros(70, np.int32), np.zeros(70, np.uint8), padding="same", threads=1)
    pool = kernels.bind_max_pool2d_bits()
    body = kernels.bind_bit_body([conv, pool], (6, 6, 1), threads=1)
    x = kernels.pack_signs(rng.standard_normal((2, 6, 6, 64)))
    np.testing.assert_array_equal(body(x), pool(conv(x)))
    with pytest.raises(ValueError, match="BitBody: input shape does not match"):
        body(kernels.pack_signs(rng.standard_normal((2, 5, 6, 64))))
    with pytest.raises(ValueError, match="x_bits: expected uint64"):
        body(x.astype(np.int64))
    with pytest.raises(ValueError, match="BitBody: a pooling does not fit its input"):
        kernels.bind_bit_body([conv, pool, pool, pool], (6, 6, 1), threads=1)  # 6 -> 3 -> 1 -> 0
    with pytest.raises(ValueError, match="BitBody: a conv does not fit its input"):
        kernels.bind_bit_body([conv], (6, 6, 2), threads=1)  # 2 words per pixel, the weights have 1
    with pytest.raises(ValueError, match="expected bind_conv2d or bind_max_pool2d_bits layers"):
        kernels.bind_bit_body([print], (6, 6, 1), threads=1)
