"""``Factorized``: independent univariate parts of different families as one joint distribution.

Draws, log densities and gradients are checked against the parts used on their own with the same
random stream (irtgen's built-ins, a family built with ``irtgen.load``, torch.distributions
ones), on numba's kernels and on Triton's (in Triton's interpreter); the mean of the
implicit gradients is checked against the derivative of the parts' means by Monte Carlo.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.distributions as td

import irtgen
from irtgen.composite.factorized import Factorized
from irtgen.distributions import Beta, Gamma, Normal
from tests.composite.test_mixture import record_backends

SPECS = Path(__file__).resolve().parent.parent / "specs"

# A family whose support depends on a parameter, for the support check.
PARETO_SPEC = """
import sympy as sp
import irtgen

z = sp.Symbol("z", real=True)
m, alpha = sp.symbols("m alpha", positive=True)

Pareto = irtgen.Distribution(
    name="Pareto", variable=z, params={m: "positive", alpha: "positive"},
    support=sp.Interval(m, sp.oo), cdf=1 - (m / z) ** alpha)
"""


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def leaf(values, dtype=torch.float64) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype, requires_grad=True)


def three_parts(dtype=torch.float64, validate_args=None):
    """Gamma, Normal and Beta of batch shape (2,), with their parameters as leaves."""
    params = {
        "alpha": leaf([0.7, 3.0], dtype),
        "rate": leaf([1.5, 0.4], dtype),
        "loc": leaf([-1.0, 2.0], dtype),
        "scale": leaf([0.5, 2.5], dtype),
        "c1": leaf([2.0, 0.6], dtype),
        "c0": leaf([3.0, 1.2], dtype),
    }
    parts = [
        Gamma(params["alpha"], params["rate"], validate_args=validate_args),
        Normal(params["loc"], params["scale"], validate_args=validate_args),
        Beta(params["c1"], params["c0"], validate_args=validate_args),
    ]
    return parts, params


def weighted(z: torch.Tensor) -> torch.Tensor:
    """A scalar loss that weighs the coordinates differently: Σ_i (i + 1) z_i²."""
    weights = torch.arange(1, z.shape[-1] + 1, dtype=z.dtype)
    return (z.square() * weights).sum()


def grads(loss: torch.Tensor, params: dict, retain_graph: bool = False) -> dict:
    values = torch.autograd.grad(loss, list(params.values()), retain_graph=retain_graph)
    return dict(zip(params, values, strict=True))


def assert_grads_close(got: dict, want: dict, **tol) -> None:
    assert got.keys() == want.keys()
    for name in want:
        assert torch.isfinite(got[name]).all(), name
        torch.testing.assert_close(got[name], want[name], msg=name, **tol)


@pytest.fixture(autouse=True)
def numba_backend(monkeypatch):
    """numba's kernels unless a test asks for Triton."""
    monkeypatch.setenv("IRTGEN_BACKEND", "numba")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Gompertz (tests/specs/gompertz.py) and a Pareto, built by ``irtgen.load`` into a
    temporary cache."""
    root = tmp_path_factory.mktemp("factorized")
    pareto_spec = root / "pareto.py"
    pareto_spec.write_text(PARETO_SPEC)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IRTGEN_CACHE_DIR", str(root / "cache"))
        gompertz = irtgen.load(SPECS / "gompertz.py").Gompertz
        pareto = irtgen.load(pareto_spec).Pareto
    return gompertz, pareto


# -- draws, density, gradients ---------------------------------------------------------------


def test_gamma_normal_beta_against_parts():
    parts, params = three_parts()
    joint = Factorized(parts)
    assert joint.batch_shape == (2,) and joint.event_shape == (3,)
    assert joint.has_rsample and joint.parts == parts

    z = joint.rsample((50,), generator=gen(0))
    assert z.shape == (50, 2, 3) and z.dtype == torch.float64

    # The same stream, drawn part by part in order.
    g = gen(0)
    alone = [p.rsample((50,), generator=g) for p in parts]
    for i, zi in enumerate(alone):
        torch.testing.assert_close(z[..., i], zi, rtol=0, atol=0)
    assert (z[..., 0] > 0).all() and ((z[..., 2] > 0) & (z[..., 2] < 1)).all()

    # Gradients of a scalar loss of the draw: the parts' own implicit gradients.
    assert_grads_close(grads(weighted(z), params), grads(weighted(torch.stack(alone, -1)), params))

    # log q(z) = Σ log q_i(z_i), and its gradient in the parameters and in the value.
    x = z.detach().requires_grad_()
    lp = joint.log_prob(x)
    want = sum(p.log_prob(x[..., i]) for i, p in enumerate(parts))
    assert lp.shape == (50, 2)
    torch.testing.assert_close(lp, want, rtol=1e-14, atol=0)
    got_grads = grads(lp.sum(), {**params, "value": x})
    want_grads = grads(want.sum(), {**params, "value": x})
    assert_grads_close(got_grads, want_grads, rtol=1e-14, atol=0)
    assert got_grads["alpha"].abs().min() > 0 and got_grads["value"].abs().min() > 0


def test_cdf_mean_variance_entropy():
    parts, _ = three_parts()
    joint = Factorized(parts)
    x = torch.tensor([[0.8, -0.5, 0.3], [2.0, 4.0, 0.9]], dtype=torch.float64)
    want_cdf = parts[0].cdf(x[:, 0]) * parts[1].cdf(x[:, 1]) * parts[2].cdf(x[:, 2])
    torch.testing.assert_close(joint.cdf(x), want_cdf, rtol=1e-14, atol=0)
    torch.testing.assert_close(joint.mean, torch.stack([p.mean for p in parts], -1))
    torch.testing.assert_close(joint.variance, torch.stack([p.variance for p in parts], -1))
    torch.testing.assert_close(joint.stddev, joint.variance.sqrt())
    # Gamma's mean α/β, Normal's loc, Beta's c1/(c1 + c0).
    torch.testing.assert_close(
        joint.mean[1].detach(), torch.tensor([7.5, 2.0, 1 / 3], dtype=torch.float64)
    )
    gamma, normal, beta = parts
    want_entropy = (
        td.Gamma(gamma.concentration, gamma.rate).entropy()
        + td.Normal(normal.loc, normal.scale).entropy()
        + td.Beta(beta.concentration1, beta.concentration0).entropy()
    )
    torch.testing.assert_close(joint.entropy(), want_entropy)


def test_batch_shapes_broadcast():
    gamma = Gamma(torch.full((4, 1), 2.0), torch.full((4, 1), 1.0))
    normal = Normal(torch.arange(3.0), torch.ones(3))
    beta = Beta(torch.tensor(2.0), torch.tensor(5.0))
    joint = Factorized([gamma, normal, beta])
    assert joint.batch_shape == (4, 3) and joint.event_shape == (3,)

    z = joint.rsample((5,), generator=gen(1))
    assert z.shape == (5, 4, 3, 3)
    assert joint.sample().shape == (4, 3, 3)
    assert joint.log_prob(z).shape == (5, 4, 3) and joint.cdf(z).shape == (5, 4, 3)
    assert joint.mean.shape == (4, 3, 3) and joint.entropy().shape == (4, 3)
    torch.testing.assert_close(joint.mean[..., 1], torch.arange(3.0).expand(4, 3))
    # A part with a smaller batch shape still draws independently for every batch element.
    assert z[..., 2].unique().numel() == 5 * 4 * 3
    assert z[..., 0].unique().numel() == 5 * 4 * 3
    # log_prob of one event broadcasts against the batch.
    one = torch.tensor([1.0, 0.5, 0.25])
    assert joint.log_prob(one).shape == (4, 3)

    wide = joint.expand((2, 4, 3))
    assert wide.batch_shape == (2, 4, 3) and wide.rsample((6,)).shape == (6, 2, 4, 3, 3)
    assert all(p.batch_shape == (2, 4, 3) for p in wide.parts)
    torch.testing.assert_close(wide.log_prob(z[0]), joint.log_prob(z[0]).expand(2, 4, 3))

    with pytest.raises(ValueError, match="do not broadcast"):
        Factorized([Normal(torch.zeros(2), 1.0), Normal(torch.zeros(3), 1.0)])


def test_user_built_family(built):
    gompertz_cls, _ = built
    eta, b = leaf([0.5, 2.0]), leaf([1.2, 0.3])
    loc, scale = leaf(0.3), leaf(1.7)
    gompertz = gompertz_cls(eta, b)
    normal = Normal(loc, scale)
    joint = Factorized([gompertz, normal])
    assert joint.batch_shape == (2,) and "Gompertz" in repr(joint)

    z = joint.rsample((40,), generator=gen(2))
    g = gen(2)
    alone_g = gompertz.rsample((40,), generator=g)
    alone_n = normal.expand((2,)).rsample((40,), generator=g)
    torch.testing.assert_close(z, torch.stack([alone_g, alone_n], -1), rtol=0, atol=0)
    params = {"eta": eta, "b": b, "loc": loc, "scale": scale}
    # The Gompertz coordinate's gradient depends on the Gompertz parameters only.
    only_g = grads(weighted(z[..., :1]), params, retain_graph=True)
    assert only_g["loc"] == 0 and only_g["scale"] == 0 and (only_g["eta"] != 0).all()
    got = grads(weighted(z), params)
    want = grads(weighted(torch.stack([alone_g, alone_n], -1)), params)
    assert_grads_close(got, want)

    lp = joint.log_prob(z.detach())
    want_lp = gompertz.log_prob(z[..., 0].detach()) + normal.log_prob(z[..., 1].detach())
    torch.testing.assert_close(lp, want_lp, rtol=1e-14, atol=0)
    assert_grads_close(grads(lp.sum(), params), grads(want_lp.sum(), params))


# -- torch.distributions parts, generators, dtypes ---------------------------------------------


def test_torch_distribution_parts_and_generator():
    alpha = leaf(2.0)
    loc, scale = leaf([0.0, 1.0]), leaf([1.0, 3.0])
    gamma = Gamma(alpha, torch.tensor(1.0, dtype=torch.float64))
    laplace = td.Laplace(loc, scale)
    joint = Factorized([gamma, laplace])

    # torch's rsample takes no generator: it draws from the global RNG seeded from the generator,
    # and the global RNG is left as it was.
    torch.manual_seed(123)
    before = torch.get_rng_state()
    z1 = joint.rsample((30,), generator=gen(3))
    assert torch.equal(torch.get_rng_state(), before)
    z2 = joint.rsample((30,), generator=gen(3))
    torch.testing.assert_close(z1, z2, rtol=0, atol=0)
    z3 = joint.rsample((30,), generator=gen(4))
    assert not torch.equal(z1[..., 1], z3[..., 1])
    assert torch.equal(joint.sample((30,), generator=gen(3)), z1.detach())

    # Gradients reach the torch part's parameters: dz/dloc = 1 and dz/dscale = (z - loc)/scale.
    d_loc, d_scale, d_alpha = torch.autograd.grad(z1[..., 1].sum(), [loc, scale, alpha])
    torch.testing.assert_close(d_loc, torch.full((2,), 30.0, dtype=torch.float64))
    want_scale = ((z1[..., 1].detach() - loc.detach()) / scale.detach()).sum(0)
    torch.testing.assert_close(d_scale, want_scale)
    assert d_alpha == 0

    lp = joint.log_prob(z1.detach())
    want = gamma.log_prob(z1[..., 0].detach()) + laplace.log_prob(z1[..., 1].detach())
    torch.testing.assert_close(lp, want)


def test_dtypes_promote():
    joint = Factorized([Gamma(2.0, 1.0), Normal(torch.tensor(0.0, dtype=torch.float64), 1.0)])
    z = joint.rsample((10,))
    assert z.dtype == torch.float64 and joint.mean.dtype == torch.float64
    assert joint.log_prob(z).dtype == torch.float64
    single = Factorized([Gamma(2.0, 1.0), td.Normal(0.0, 1.0)])
    assert single.rsample((10,)).dtype == torch.float32


def test_part_without_rsample():
    joint = Factorized([Normal(0.0, 1.0), td.Poisson(torch.tensor(3.0))])
    assert not joint.has_rsample
    with pytest.raises(NotImplementedError, match="Poisson"):
        joint.rsample()
    x = joint.sample((20,), generator=gen(5))
    assert x.shape == (20, 2) and torch.equal(x[:, 1], x[:, 1].round())
    want = Normal(0.0, 1.0).log_prob(x[:, 0]) + td.Poisson(torch.tensor(3.0)).log_prob(x[:, 1])
    torch.testing.assert_close(joint.log_prob(x), want)


# -- validation ------------------------------------------------------------------------------


def test_validate_args_rejects_values_outside_a_part_support():
    parts, _ = three_parts(validate_args=False)  # the joint validates, not the parts
    joint = Factorized(parts, validate_args=True)
    good = torch.tensor([[0.5, -3.0, 0.5], [1.0, 0.0, 0.1]], dtype=torch.float64)
    assert torch.isfinite(joint.log_prob(good)).all()
    # A negative Gamma coordinate (F_1 = 0 there), a Beta coordinate above 1 (F_3 = 1 there).
    for i, bad_value, bad_cdf in [(0, -0.5, 0.0), (2, 1.5, 1.0)]:
        bad = good.clone()
        bad[1, i] = bad_value
        with pytest.raises(ValueError, match="support"):
            joint.log_prob(bad)
        with pytest.raises(ValueError, match="support"):
            joint.cdf(bad)
        unchecked = Factorized(parts, validate_args=False)
        assert torch.isneginf(unchecked.log_prob(bad)[1])
        others = [p.cdf(bad[:, j])[1] for j, p in enumerate(parts) if j != i]
        torch.testing.assert_close(unchecked.cdf(bad)[1], bad_cdf * others[0] * others[1])
    with pytest.raises(ValueError):
        joint.log_prob(good[:, :2])  # the last dimension must be the event
    assert joint.support.event_dim == 1
    torch.testing.assert_close(joint.support.check(good), torch.tensor([True, True]))


def test_support_depending_on_parameters(built):
    """Supports with batch-shaped parameters: torch's Uniform and a Pareto built by irtgen."""
    _, pareto_cls = built
    low, high = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 2.0, 4.0])
    joint = Factorized(
        [td.Uniform(low, high), pareto_cls(torch.tensor([1.0, 2.0, 3.0]), 2.0)], validate_args=True
    )
    assert joint.batch_shape == (3,)
    inside = torch.tensor([[0.5, 1.0], [1.5, 2.5], [3.9, 3.0]])
    assert torch.isfinite(joint.log_prob(inside)).all()
    assert joint.support.check(inside).tolist() == [True, True, True]
    below_pareto = inside.clone()
    below_pareto[1, 1] = 1.5  # below m = 2 of the second Pareto, above m = 1 of the first
    assert joint.support.check(below_pareto).tolist() == [True, False, True]
    with pytest.raises(ValueError, match="support"):
        joint.log_prob(below_pareto)
    outside_uniform = inside.clone()
    outside_uniform[0, 0] = 1.5  # inside the second uniform's interval, not the first's
    assert joint.support.check(outside_uniform).tolist() == [False, True, True]
    with pytest.raises(ValueError, match="support"):
        joint.log_prob(outside_uniform)


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        ([], "empty"),
        ([Normal(0.0, 1.0), 3.0], "part 1 is a float"),
        ([td.Dirichlet(torch.ones(3))], "univariate"),
        ([Normal(0.0, 1.0), td.MultivariateNormal(torch.zeros(2), torch.eye(2))], "part 1"),
        (Normal(0.0, 1.0), "list of univariate"),
        (None, "list of univariate"),
    ],
)
def test_bad_constructor_input(parts, message):
    with pytest.raises(ValueError, match=message):
        Factorized(parts)


# -- the Triton backend ----------------------------------------------------------------------


def test_triton_backend_gradients(monkeypatch):
    monkeypatch.setenv("IRTGEN_BACKEND", "triton")
    seen = record_backends(monkeypatch)
    parts, params = three_parts()
    z = Factorized(parts).rsample((25,), generator=gen(6))  # 50 draws a part
    g = gen(6)
    alone = torch.stack([p.rsample((25,), generator=g) for p in parts], -1)
    torch.testing.assert_close(z, alone, rtol=0, atol=0)
    got = grads(weighted(z), params)
    assert_grads_close(got, grads(weighted(alone), params))
    assert all((v != 0).all() for v in got.values())
    assert seen and set(seen) == {"triton"}  # the draws above came from the Triton kernels

    # Both backends key draws by (Philox seed, element index): numba's kernels draw the same
    # numbers, and their gradient formulas agree with Triton's at the same points.
    x = z.detach()
    monkeypatch.setenv("IRTGEN_BACKEND", "numba")
    monkeypatch.setenv("IRTGEN_CPU_DRAWS", "philox")
    seen.clear()
    parts_numba, params_numba = three_parts()
    z_numba = torch.stack([p.reparameterize(x[..., i]) for i, p in enumerate(parts_numba)], -1)
    assert_grads_close(got, grads(weighted(z_numba), params_numba), rtol=1e-10, atol=1e-12)
    drawn_by_numba = Factorized(parts_numba).sample((25,), generator=gen(6))
    torch.testing.assert_close(drawn_by_numba, x, rtol=1e-12, atol=0)
    assert seen and set(seen) == {"numba"}


# -- Monte Carlo -----------------------------------------------------------------------------


def test_monte_carlo_gradient_of_the_mean():
    """d/dθ E[Σ_i z_i] by the mean of the per-draw implicit gradients dz_i/dθ, against the
    derivative of the parts' means: Gamma α/β, Normal loc, Beta c1/(c1 + c0)."""
    n = 4000
    values = {"alpha": 2.5, "rate": 1.5, "loc": 0.5, "scale": 2.0, "c1": 2.0, "c0": 3.0}
    # One parameter element per draw, so that each element's gradient is one draw's dz/dθ.
    params = {
        k: torch.full((n,), v, dtype=torch.float64, requires_grad=True) for k, v in values.items()
    }
    joint = Factorized(
        [
            Gamma(params["alpha"], params["rate"]),
            Normal(params["loc"], params["scale"]),
            Beta(params["c1"], params["c0"]),
        ]
    )
    per_draw = grads(joint.rsample(generator=gen(7)).sum(), params)

    a, r, c1, c0 = values["alpha"], values["rate"], values["c1"], values["c0"]
    exact = {
        "alpha": 1 / r,
        "rate": -a / r**2,
        "loc": 1.0,
        "scale": 0.0,
        "c1": c0 / (c1 + c0) ** 2,
        "c0": -c1 / (c1 + c0) ** 2,
    }
    for name, want in exact.items():
        estimate = per_draw[name].mean().item()
        stderr = per_draw[name].std().item() / math.sqrt(n)
        assert abs(estimate - want) <= 4 * stderr + 1e-12, (name, estimate, want, stderr)
    assert per_draw["scale"].std() > 0.5  # dz/dscale = (z - loc)/scale varies from draw to draw
