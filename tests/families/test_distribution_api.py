"""The torch.distributions surface of generated classes: shapes, expand, validation,
reparameterize, icdf/cdf round trips, gradients of log_prob and cdf, support conventions."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Distribution

from irtgen.distributions import Exponential, Gumbel, Kumaraswamy, Laplace, Normal, Weibull
from tests.families.cases import CASES


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_class_surface(case):
    d = case.cls(*[torch.tensor(v) for v in case.grid[0]])
    assert isinstance(d, Distribution)
    assert d.has_rsample
    assert list(d.arg_constraints) == list(case.param_names)
    for name in case.param_names:
        assert torch.is_tensor(getattr(d, name))
    assert d.batch_shape == () and d.event_shape == ()


def test_shapes_broadcasting_and_expand(backend):
    d = Normal(torch.zeros(3, 1), torch.ones(4))
    assert d.batch_shape == (3, 4)
    assert d.rsample().shape == (3, 4)
    assert d.rsample((2, 5)).shape == (2, 5, 3, 4)
    assert d.log_prob(torch.zeros(4)).shape == (3, 4)
    assert d.log_prob(torch.zeros(7, 1, 1)).shape == (7, 3, 4)
    e = d.expand((2, 3, 4))
    assert type(e) is Normal and e.batch_shape == (2, 3, 4)
    assert e.rsample((6,)).shape == (6, 2, 3, 4)
    torch.testing.assert_close(
        e.log_prob(torch.ones(())), d.log_prob(torch.ones(())).expand(2, 3, 4)
    )


def test_validation():
    with pytest.raises(ValueError):
        Normal(0.0, -1.0, validate_args=True)
    with pytest.raises(ValueError):
        Normal(torch.tensor(float("nan")), 1.0, validate_args=True)
    with pytest.raises(ValueError):
        Kumaraswamy(1.0, 0.0, validate_args=True)
    with pytest.raises(ValueError, match="support"):
        Exponential(1.0, validate_args=True).log_prob(torch.tensor(-1.0))
    with pytest.raises(ValueError, match="support"):
        Kumaraswamy(2.0, 3.0, validate_args=True).cdf(torch.tensor(1.5))
    # no validation: torch's conventions outside the support
    e = Exponential(torch.tensor(2.0), validate_args=False)
    assert e.log_prob(torch.tensor(-1.0)) == -float("inf")
    assert e.cdf(torch.tensor(-1.0)) == 0.0
    k = Kumaraswamy(torch.tensor(2.0), torch.tensor(3.0), validate_args=False)
    assert k.cdf(torch.tensor(1.5)) == 1.0 and k.cdf(torch.tensor(-0.5)) == 0.0


def test_out_of_support_gradients_are_zero(backend):
    rate = torch.tensor(2.0, requires_grad=True)
    x = torch.tensor([-1.0, 0.5], requires_grad=True)
    lp = Exponential(rate, validate_args=False).log_prob(x)
    gr, gx = torch.autograd.grad(lp[1], [rate, x])
    assert gr.item() == pytest.approx(1 / 2.0 - 0.5) and gx.tolist() == [0.0, -2.0]
    c = Exponential(rate, validate_args=False).cdf(x)
    gr, gx = torch.autograd.grad(c.sum(), [rate, x])
    assert gx[0].item() == 0.0 and gx[1].item() == pytest.approx(
        2.0 * torch.exp(torch.tensor(-1.0)).item()
    )


def test_reparameterize_is_identity_with_implicit_gradient(backend):
    loc = torch.tensor([0.3, -1.0], dtype=torch.float64, requires_grad=True)
    scale = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    d = Gumbel(loc, scale)
    z = torch.tensor([[0.1, 2.0], [-3.0, 5.0]], dtype=torch.float64, requires_grad=True)
    out = d.reparameterize(z)
    assert torch.equal(out, z.detach())
    gl, gs, gz = torch.autograd.grad(out.sum(), [loc, scale, z], allow_unused=True)
    assert gz is None  # z is a fixed draw: no gradient flows into it
    torch.testing.assert_close(gl, torch.tensor([2.0, 2.0], dtype=torch.float64))
    torch.testing.assert_close(gs, ((z.detach() - loc.detach()) / scale.detach()).sum())


def test_icdf_inverts_cdf_and_its_gradients(backend):
    a = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    d = Kumaraswamy(a, b)
    u = torch.tensor([1e-9, 0.01, 0.5, 0.99, 1 - 1e-9], dtype=torch.float64, requires_grad=True)
    z = d.icdf(u)
    torch.testing.assert_close(d.cdf(z.detach()), u.detach(), rtol=1e-12, atol=1e-15)
    gu, ga, gb = torch.autograd.grad(z.sum(), [u, a, b])
    pdf = d.log_prob(z.detach()).exp()
    torch.testing.assert_close(gu, 1 / pdf, rtol=1e-10, atol=0)
    # against autograd through the closed-form inverse
    a2, b2 = a.detach().requires_grad_(), b.detach().requires_grad_()
    zz = (1 - (1 - u.detach()) ** (1 / b2)) ** (1 / a2)
    ea, eb = torch.autograd.grad(zz.sum(), [a2, b2])
    torch.testing.assert_close(ga, ea, rtol=1e-9, atol=0)
    torch.testing.assert_close(gb, eb, rtol=1e-9, atol=0)
    edge = d.icdf(torch.tensor([0.0, 1.0], dtype=torch.float64))
    assert edge.tolist() == [0.0, 1.0]


@pytest.mark.parametrize(
    "cls,params",
    [(Normal, (0.3, 1.7)), (Laplace, (0.3, 1.7)), (Weibull, (1.5, 0.7)), (Kumaraswamy, (0.6, 2.5))],
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_log_prob_gradients_match_torch_autograd(cls, params, backend):
    torch_cls = getattr(torch.distributions, cls.__name__)
    ours = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in params]
    theirs = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in params]
    torch.manual_seed(2)
    x = torch_cls(*[p.detach() for p in theirs]).sample((50,)).clamp(1e-6, None)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    w = torch.randn(50, dtype=torch.float64)
    g1 = torch.autograd.grad((w * cls(*ours).log_prob(x1)).sum(), [*ours, x1])
    g2 = torch.autograd.grad((w * torch_cls(*theirs).log_prob(x2)).sum(), [*theirs, x2])
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_half_precision_inputs_compute_in_float32():
    d = Normal(torch.tensor(0.0, dtype=torch.float16), torch.tensor(1.0, dtype=torch.float16))
    lp = d.log_prob(torch.tensor([0.5, 1.0], dtype=torch.float16))
    assert lp.dtype == torch.float16
    torch.testing.assert_close(
        lp.float(),
        torch.distributions.Normal(0.0, 1.0).log_prob(torch.tensor([0.5, 1.0])),
        rtol=1e-3,
        atol=1e-3,
    )


def test_moments_and_repr():
    d = Normal(torch.tensor([1.0, 2.0]), torch.tensor(3.0))
    assert d.mean.tolist() == [1.0, 2.0]
    assert d.variance.tolist() == [9.0, 9.0]
    assert d.stddev.tolist() == [3.0, 3.0]
    assert "Normal(" in repr(d) and "loc" in repr(d)
