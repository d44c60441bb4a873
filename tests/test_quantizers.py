"""Each quantizer's forward and backward against its formula, written out by hand here; the catalogue, its
torch implementations and the engine's eval formulas agree one to one."""

import collections
import inspect
import math

import numpy as np
import pytest
import torch

from workbench.core.quantizer_catalog import QUANTIZERS
from workbench.core.spec import SpecError
from workbench.deploy.engine import EVAL_FORMULAS, Engine
from workbench.train import quantizers
from workbench.train.model import build_model
from workbench.train.packing import pack_model
from workbench.train.quantizers import IMPLEMENTATIONS, Quantizer, make_quantizer

# Values on both sides of every break point: 0, the clip (1), the ternary threshold, beyond the clip.
X = torch.tensor([-3.0, -1.5, -1.0, -0.7, -0.05, -0.01, 0.0, 0.01, 0.03, 0.05, 0.5, 1.0, 1.2, 4.0])


def sign(values):
    return [1.0 if v >= 0 else -1.0 for v in values]


def run(quantizer, x=X, upstream=None, train=True):
    """Forward and the gradient w.r.t. x for a given upstream gradient."""
    quantizer.train(train)
    x = x.clone().requires_grad_(True)
    y = quantizer(x)
    upstream = torch.linspace(0.5, 2.0, x.numel()).view_as(x) if upstream is None else upstream
    y.backward(upstream)
    return y.detach(), x.grad, upstream


def test_every_catalogued_quantizer_builds():
    for name in QUANTIZERS:
        assert make_quantizer(name, channels=3).name == name


def test_every_catalogue_entry_has_exactly_one_torch_implementation():
    for name, info in QUANTIZERS.items():
        assert IMPLEMENTATIONS[name].__name__ == info.implementation and issubclass(IMPLEMENTATIONS[name], Quantizer)
    assert set(IMPLEMENTATIONS) == set(QUANTIZERS)
    assert max(collections.Counter(IMPLEMENTATIONS.values()).values()) == 1  # no class shared by two entries
    defined = {
        cls
        for _, cls in inspect.getmembers(quantizers, inspect.isclass)
        if issubclass(cls, Quantizer) and cls is not Quantizer
    }
    assert defined == set(IMPLEMENTATIONS.values())  # no implementation outside the catalogue


def test_every_catalogue_entry_has_one_engine_formula_and_every_formula_is_used():
    assert {info.eval_formula for info in QUANTIZERS.values()} == set(EVAL_FORMULAS)


# Every catalogue entry with its defaults, plus the parameter values that switch to another formula.
VARIANTS = [
    *QUANTIZERS,
    *({"name": "dorefa", "mode": "weights", "bits": bits} for bits in (1, 2, 3, 8)),
    {"name": "ste_tern", "ternary_weight_networks": True},
]


@pytest.mark.parametrize("spec", VARIANTS, ids=str)
def test_engine_formula_matches_the_torch_eval_output(spec):
    torch.manual_seed(0)
    x = X.repeat(2, 1) * torch.tensor([[1.0], [0.3]])
    # and many random values: tanh and the TWN mean differ in the last bit between torch and NumPy in float32
    for values in (x, torch.randn(500, 200) * 0.7):
        q = make_quantizer(spec, channels=values.shape[1])
        thresholds = None
        if q.name == "rsign":
            with torch.no_grad():
                q.threshold.uniform_(-1, 1)
            thresholds = q.threshold.detach().numpy()
        q.eval()
        engine = EVAL_FORMULAS[QUANTIZERS[q.name].eval_formula](q.spec, thresholds)(values.numpy())
        assert np.array_equal(engine, q(values).detach().numpy())


def test_quantizer_modules_show_their_parameters():
    tern = make_quantizer({"name": "ste_tern", "threshold": 0.5}, 1)
    assert repr(tern) == "SteTernQuantizer(threshold=0.5, clip=1.0, ternary_weight_networks=False)"
    assert repr(make_quantizer("approx_sign", 1)) == "ApproxSignQuantizer()"
    assert repr(make_quantizer("rsign", 8)) == "RSignQuantizer(channels=8, clip=1.0)"
    soft = make_quantizer("soft_sign", 1)
    soft.temperature, soft.enabled = 0.25, False
    assert repr(soft) == "SoftSignQuantizer(temperature=0.25, enabled=False)"


def test_sign_of_zero_is_plus_one_for_every_sign_quantizer():
    zeros = torch.zeros(2, 3)
    for name, info in QUANTIZERS.items():
        if info.is_sign and name != "magnitude_aware_sign":
            q = make_quantizer(name, channels=3)
            q.eval()
            assert torch.equal(q(zeros), torch.ones(2, 3)), name
    w = torch.zeros(2, 3)
    w[:, 0] = 1.0  # non-zero scale per row
    q = make_quantizer("magnitude_aware_sign", channels=2)
    assert torch.all(q(w) > 0)


@pytest.mark.parametrize("clip", [1.0, 0.5])
def test_ste_sign(clip):
    y, grad, up = run(make_quantizer({"name": "ste_sign", "clip": clip}, 1))
    assert y.tolist() == sign(X.tolist())
    expected = [u if abs(v) <= clip else 0.0 for v, u in zip(X.tolist(), up.tolist())]
    assert grad.tolist() == pytest.approx(expected)


def test_approx_sign():
    y, grad, up = run(make_quantizer("approx_sign", 1))
    assert y.tolist() == sign(X.tolist())
    expected = [u * (2 - 2 * abs(v)) if abs(v) <= 1 else 0.0 for v, u in zip(X.tolist(), up.tolist())]
    assert grad.tolist() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("beta", [5.0, 1.5])
def test_swish_sign(beta):
    y, grad, up = run(make_quantizer({"name": "swish_sign", "beta": beta}, 1))
    assert y.tolist() == sign(X.tolist())
    expected = [
        u * beta * (2 - beta * v * math.tanh(beta * v / 2)) / (1 + math.cosh(beta * v))
        for v, u in zip(X.tolist(), up.tolist())
    ]
    assert grad.tolist() == pytest.approx(expected, rel=1e-5, abs=1e-7)
    # It is the derivative of the sign-swish 2*sigmoid(bx)*(1 + bx*(1 - sigmoid(bx))) - 1: check numerically.
    sswish = lambda v: 2 * torch.sigmoid(beta * v) * (1 + beta * v * (1 - torch.sigmoid(beta * v))) - 1  # noqa
    xd = X.double()
    numeric = (sswish(xd + 1e-6) - sswish(xd - 1e-6)) / 2e-6
    assert (grad.double() / up.double()).tolist() == pytest.approx(numeric.tolist(), rel=1e-4, abs=1e-6)


def test_magnitude_aware_sign_scales_per_output_channel():
    w = torch.tensor([[0.5, -1.5, 0.0, 2.0], [-0.2, 0.4, -0.6, 0.2]])
    y, grad, up = run(make_quantizer("magnitude_aware_sign", 2), x=w, upstream=torch.ones_like(w))
    scales = [(0.5 + 1.5 + 0.0 + 2.0) / 4, (0.2 + 0.4 + 0.6 + 0.2) / 4]
    for row in range(2):
        assert y[row].tolist() == pytest.approx([s * scales[row] for s in sign(w[row].tolist())])
        assert grad[row].tolist() == pytest.approx([scales[row] if abs(v) <= 1 else 0.0 for v in w[row].tolist()])


def test_ste_heaviside():
    y, grad, up = run(make_quantizer("ste_heaviside", 1))
    assert y.tolist() == [1.0 if v >= 0 else 0.0 for v in X.tolist()]
    assert grad.tolist() == pytest.approx([u if abs(v) <= 1 else 0.0 for v, u in zip(X.tolist(), up.tolist())])


def test_ste_tern():
    # threshold 0.5 is exact in float32, so X's 0.5 tests the boundary (|x| <= t -> 0).
    y, grad, up = run(make_quantizer({"name": "ste_tern", "threshold": 0.5, "clip": 1.0}, 1))
    assert y.tolist() == [1.0 if v > 0.5 else -1.0 if v < -0.5 else 0.0 for v in X.tolist()]
    assert grad.tolist() == pytest.approx([u if abs(v) <= 1 else 0.0 for v, u in zip(X.tolist(), up.tolist())])


def test_ste_tern_twn_threshold_is_0_7_times_the_mean_magnitude():
    w = torch.tensor([[0.9, -0.2, 0.05, -1.4], [0.3, 0.0, -0.6, 0.25]])
    t = 0.7 * sum(abs(v) for v in w.flatten().tolist()) / w.numel()  # 0.324625
    y, grad, up = run(make_quantizer({"name": "ste_tern", "ternary_weight_networks": True}, 2), x=w)
    assert y.flatten().tolist() == [1.0 if v > t else -1.0 if v < -t else 0.0 for v in w.flatten().tolist()]
    assert y.flatten().tolist() == [1.0, 0.0, 0.0, -1.0, 0.0, 0.0, -1.0, 0.0]
    assert grad.flatten().tolist() == pytest.approx((up * (w.abs() <= 1.0)).flatten().tolist())  # plain STE


@pytest.mark.parametrize("bits", [1, 2, 3])
def test_dorefa(bits):
    x = torch.tensor([-0.5, 0.0, 0.1, 0.2, 0.33, 0.5001, 0.7, 0.9, 1.0, 1.7])
    y, grad, up = run(make_quantizer({"name": "dorefa", "bits": bits}, 1), x=x)
    levels = 2**bits - 1
    expected = [round(min(max(v, 0.0), 1.0) * levels) / levels for v in x.tolist()]
    assert y.tolist() == pytest.approx(expected)
    assert grad.tolist() == pytest.approx([u if 0 <= v <= 1 else 0.0 for v, u in zip(x.tolist(), up.tolist())])


@pytest.mark.parametrize("bits", [1, 2, 3])
def test_dorefa_weights_mode(bits):
    """Larq's DoReFa(mode="weights"): 2^k levels in [-1, 1], negative weights negative (mode "activations"
    maps every weight <= 0 to 0, which is why DoReFa kernels used to train to chance)."""
    w = torch.tensor([[-2.0, -0.6, -0.1, 0.0], [0.05, 0.3, 0.8, 1.5]])
    y, grad, up = run(make_quantizer({"name": "dorefa", "mode": "weights", "bits": bits}, 2), x=w)
    n, m = 2**bits - 1, max(abs(math.tanh(v)) for v in w.flatten().tolist())
    expected = [2 * round((math.tanh(v) / (2 * m) + 0.5) * n) / n - 1 for v in w.flatten().tolist()]
    assert y.flatten().tolist() == pytest.approx(expected, abs=1e-6)
    assert y.min() == -1 and y.max() == 1 and len(y.unique()) <= 2**bits
    assert grad.flatten().tolist() == pytest.approx(
        [u * (1 - math.tanh(v) ** 2) / m for v, u in zip(w.flatten().tolist(), up.flatten().tolist(), strict=True)],
        rel=1e-5,
    )


def test_dorefa_weights_of_an_all_zero_kernel_stay_finite():
    y, grad, _ = run(make_quantizer({"name": "dorefa", "mode": "weights", "bits": 2}, 1), x=torch.zeros(3, 2))
    assert y.flatten().tolist() == pytest.approx([1 / 3] * 6) and torch.all(grad == 0)  # round(1.5) = 2: 2 * 2/3 - 1


def test_dorefa_defaults_to_weights_mode_as_a_kernel():
    assert make_quantizer("dorefa", 1).spec["mode"] == "activations"
    assert make_quantizer("dorefa", 1, role="kernel").spec == {"name": "dorefa", "bits": 2, "mode": "weights"}
    assert QUANTIZERS["dorefa"].defaults("kernel") == {"bits": 2, "mode": "weights"}  # what the Design page offers
    assert QUANTIZERS["dorefa"].defaults("input") == QUANTIZERS["dorefa"].params == {"bits": 2, "mode": "activations"}


def test_dorefa_and_twn_kernels_run_in_the_engine_as_in_torch():
    """Packed, the weight quantizers' output is stored as float weights, the input quantizers run in the engine."""
    spec = {
        "input_shape": [6],
        "num_classes": 3,
        "layers": [
            {"type": "dense", "units": 16, "kernel_quantizer": {"name": "dorefa", "bits": 3}},
            {"type": "batch_norm"},
            {
                "type": "dense",
                "units": 16,
                "input_quantizer": "dorefa",
                "kernel_quantizer": {"name": "ste_tern", "ternary_weight_networks": True},
            },
            {"type": "dense", "units": 3, "input_quantizer": "ste_tern", "kernel_quantizer": "dorefa"},
        ],
    }
    torch.manual_seed(0)
    model = build_model(spec).eval()
    x = np.random.default_rng(0).normal(size=(50, 6)).astype(np.float32)
    with torch.no_grad():
        reference = model(torch.from_numpy(x)).numpy()
        weights = model.layers[0].binarized_weight()
    assert weights.min() < 0 < weights.max() and len(weights.unique()) <= 8  # 3-bit weights in [-1, 1]
    np.testing.assert_allclose(Engine(pack_model(model)).logits(x), reference, rtol=1e-5, atol=1e-5)


def test_rsign_gradients_to_input_and_threshold():
    q = make_quantizer("rsign", channels=2)
    assert [name for name, _ in q.named_parameters()] == ["threshold"]
    with torch.no_grad():
        q.threshold.copy_(torch.tensor([0.5, -1.0]))
    x = torch.tensor([[0.5, -1.0], [0.4, 0.3], [1.6, -2.5], [-0.2, -1.1]], requires_grad=True)
    y = q(x)
    shifted = (x - torch.tensor([0.5, -1.0])).detach()
    assert y.tolist() == [sign(row) for row in shifted.tolist()]
    assert y[0].tolist() == [1.0, 1.0]  # x == t: sign(0) = +1
    up = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]])
    y.backward(up)
    mask = (shifted.abs() <= 1.0).float()
    assert x.grad.tolist() == (up * mask).tolist()
    assert q.threshold.grad.tolist() == (-(up * mask).sum(dim=0)).tolist()


def test_rsign_threshold_is_per_channel_on_images():
    q = make_quantizer("rsign", channels=3)
    with torch.no_grad():
        q.threshold.copy_(torch.tensor([10.0, 0.0, -10.0]))
    y = q(torch.zeros(1, 3, 2, 2))
    assert y[0, 0].unique().tolist() == [-1.0] and y[0, 2].unique().tolist() == [1.0]


def test_stochastic_sign_probabilities_and_gradient():
    torch.manual_seed(0)
    q = make_quantizer("stochastic_sign", 1)
    x = torch.tensor([-2.0, -0.5, 0.0, 0.5, 2.0]).repeat(20000, 1)
    y, grad, _ = run(q, x=x, upstream=torch.ones_like(x))
    assert set(y.unique().tolist()) == {-1.0, 1.0}
    plus = (y == 1).float().mean(dim=0).tolist()
    assert plus == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0], abs=0.02)  # hard_sigmoid(x) = clip((x+1)/2, 0, 1)
    assert grad[0].tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]
    y_eval, _, _ = run(q, x=x[:1], train=False)
    assert y_eval.tolist() == [[-1.0, -1.0, 1.0, 1.0, 1.0]]


def test_soft_sign_is_tanh_in_training_and_sign_in_eval():
    q = make_quantizer({"name": "soft_sign", "temperature": 0.5}, 1)
    y, grad, up = run(q)
    t = 0.5
    assert y.tolist() == pytest.approx([math.tanh(v / t) for v in X.tolist()], abs=1e-6)
    expected = [u * (1 - math.tanh(v / t) ** 2) / t for v, u in zip(X.tolist(), up.tolist())]
    assert grad.tolist() == pytest.approx(expected, rel=1e-5, abs=1e-6)
    y_eval, _, _ = run(q, train=False)
    assert y_eval.tolist() == sign(X.tolist())


def test_disabled_quantizer_passes_input_through():
    q = make_quantizer("ste_sign", 1)
    q.enabled = False
    y, grad, up = run(q)
    assert torch.equal(y, X) and torch.equal(grad, up)


def test_make_quantizer_rejects_unknown_names_and_params():
    with pytest.raises(SpecError, match="ste_sgn"):
        make_quantizer("ste_sgn", 1)
    with pytest.raises(SpecError, match="beta"):
        make_quantizer({"name": "swish_sign", "beta": -1.0}, 1)
