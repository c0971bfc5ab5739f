"""torch.library registration (irtgen.runtime.library): opcheck of every op, and
torch.compile(fullgraph=True) of training steps that use rsample, log_prob, cdf, icdf and
backward, with gradients equal to eager mode's."""

from __future__ import annotations

import pytest
import torch

import irtgen.runtime.library  # noqa: F401 - registers the torch.ops.irtgen namespace
from irtgen.distributions import Beta, Gamma, Normal, StudentT

F64 = torch.float64


def _family(cls) -> str:
    return cls.family.key


@pytest.fixture(autouse=True)
def _torch_backend(monkeypatch):
    # torch.compile traces the ops' fake implementations; the real ones run the torch path here
    monkeypatch.setenv("IRTGEN_BACKEND", "torch")


ELEMENTWISE = [
    (Normal, "log_prob", [0.3, -1.0], [torch.tensor([0.0, 1.0]), torch.tensor(2.0)]),
    (Normal, "cdf", [0.3, -1.0], [torch.tensor([0.0, 1.0]), torch.tensor(2.0)]),
    (Normal, "icdf", [0.3, 0.9], [torch.tensor([0.0, 1.0]), torch.tensor(2.0)]),
    (Gamma, "log_prob", [0.3, 2.0], [torch.tensor([0.5, 3.0]), torch.tensor(1.5)]),
    (Gamma, "cdf", [0.3, 2.0], [torch.tensor([0.5, 3.0]), torch.tensor(1.5)]),
    (Beta, "cdf", [0.3, 0.8], [torch.tensor([0.5, 3.0]), torch.tensor(2.0)]),
]


@pytest.mark.parametrize(
    ("cls", "op", "value", "params"),
    ELEMENTWISE,
    ids=lambda v: getattr(v, "__name__", v) if isinstance(v, (type, str)) else None,
)
def test_opcheck_elementwise(cls, op, value, params):
    value = torch.tensor(value, dtype=F64, requires_grad=True)
    params = [p.to(F64).requires_grad_() for p in params]
    batch = list(torch.broadcast_shapes(*(p.shape for p in params)))
    torch.library.opcheck(
        torch.ops.irtgen.elementwise.default, (_family(cls), op, value, params, batch)
    )


@pytest.mark.parametrize("cls", [Normal, Gamma])
def test_opcheck_reparameterize_and_backward(cls):
    params = [torch.tensor([0.7, 2.0], dtype=F64, requires_grad=True), torch.tensor(1.5, dtype=F64)]
    z = torch.tensor([[0.4, 1.1], [2.0, 0.2]], dtype=F64)
    torch.library.opcheck(torch.ops.irtgen.reparameterize.default, (_family(cls), z, params, [2]))
    grad = torch.ones(2, 2, dtype=F64)
    for op in ("implicit", "log_prob", "cdf"):
        torch.library.opcheck(
            torch.ops.irtgen.backward.default,
            (_family(cls), op, z, grad, [p.detach() for p in params], [True, True, False], [2]),
        )


def test_opcheck_sample():
    # draws are random: the checks that compare two runs are left out
    params = [torch.tensor([0.7, 2.0], dtype=F64), torch.tensor(1.5, dtype=F64)]
    token = torch.zeros(1, dtype=torch.int64)
    torch.library.opcheck(
        torch.ops.irtgen.sample.default,
        (_family(Gamma), params, [3, 2], [2], token),
        test_utils=("test_schema", "test_faketensor"),
    )
    before = int(token)
    torch.ops.irtgen.sample(_family(Gamma), params, [3, 2], [2], token)
    assert int(token) == before + 1  # every draw advances the ordering counter


def _normal_step(loc, scale, x):
    d = Normal(loc, scale)
    z = d.rsample((64,))
    return (z * z).mean() - d.log_prob(x).mean() + d.cdf(x).sum() + d.icdf(torch.tensor(0.25)).sum()


def _gamma_beta_step(a, b, x, y):
    g = Gamma(a, torch.tensor(1.0))
    e = Beta(a, b)
    t = StudentT(b + 2.0)
    return (
        g.rsample((16,)).mean()
        + e.rsample((16,)).pow(2).mean()
        + t.rsample((8,)).abs().mean()
        + g.log_prob(x).sum()
        + e.log_prob(y).sum()
    )


def _grads(fn, leaves, *args, seed):
    for t in leaves:
        t.grad = None
    torch.manual_seed(seed)
    loss = fn(*leaves, *args)
    loss.backward()
    return loss.detach(), [t.grad.clone() for t in leaves]


def test_compile_fullgraph_normal_training_step():
    loc = torch.tensor([0.0, 1.0], requires_grad=True)
    scale = torch.tensor([2.0, 0.5], requires_grad=True)
    x = torch.tensor([0.5, 1.5])
    compiled = torch.compile(_normal_step, fullgraph=True)
    loss_c, grads_c = _grads(compiled, [loc, scale], x, seed=3)
    loss_e, grads_e = _grads(_normal_step, [loc, scale], x, seed=3)
    # same seed, same draws: the compiled step equals the eager one
    torch.testing.assert_close(loss_c, loss_e)
    for gc, ge in zip(grads_c, grads_e, strict=True):
        torch.testing.assert_close(gc, ge)


def test_compile_fullgraph_special_families():
    a = torch.tensor([2.0, 0.5], requires_grad=True)
    b = torch.tensor([1.5, 3.0], requires_grad=True)
    x, y = torch.tensor([1.0, 2.0]), torch.tensor([0.3, 0.6])
    compiled = torch.compile(_gamma_beta_step, fullgraph=True)
    loss_c, grads_c = _grads(compiled, [a, b], x, y, seed=5)
    loss_e, grads_e = _grads(_gamma_beta_step, [a, b], x, y, seed=5)
    torch.testing.assert_close(loss_c, loss_e)
    for gc, ge in zip(grads_c, grads_e, strict=True):
        assert torch.isfinite(gc).all()
        torch.testing.assert_close(gc, ge)
