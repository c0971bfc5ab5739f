"""torch.library registration (irtgen.runtime.library and the composites' ops in
irtgen.composite.dirichlet and irtgen.composite.mixture): opcheck of every op, and
torch.compile(fullgraph=True) of training steps that use rsample, log_prob, cdf, icdf and
backward, with draws and gradients equal to eager mode's."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Categorical, Independent

import irtgen.runtime.library  # noqa: F401 - registers the torch.ops.irtgen namespace
from irtgen.distributions import Beta, Dirichlet, Gamma, MixtureSameFamily, Normal, StudentT

F64 = torch.float64


def _family(cls) -> str:
    return cls.family.key


@pytest.fixture(autouse=True)
def _numba_backend(monkeypatch):
    # torch.compile traces the ops' fake implementations; the real ones run the numba kernels
    monkeypatch.setenv("IRTGEN_BACKEND", "numba")


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
    for drawn in (False, True):
        torch.library.opcheck(
            torch.ops.irtgen.reparameterize.default, (_family(cls), z, params, [2], drawn)
        )
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


# -- composites: Dirichlet and MixtureSameFamily ----------------------------------------------


def test_opcheck_dirichlet():
    conc = torch.tensor([[0.5, 2.0, 1.5], [1e-3, 1.0, 3.0]], dtype=F64, requires_grad=True)
    gen = torch.Generator().manual_seed(0)
    logg = Dirichlet(conc)._log_gamma((4,), gen)  # log G behind 4 draws, as rsample makes them
    assert torch.isfinite(logg).all()
    z = torch.softmax(logg, -1)
    grad = torch.randn(4, 2, 3, dtype=F64, generator=gen)
    for estimator in ("beta", "gamma"):
        torch.library.opcheck(torch.ops.irtgen.dirichlet_normalize.default, (estimator, logg, conc))
        torch.library.opcheck(
            torch.ops.irtgen.dirichlet_backward.default, (estimator, logg, grad, conc.detach())
        )
    torch.library.opcheck(
        torch.ops.irtgen.dirichlet_backward.default, ("simplex", z, grad, conc.detach())
    )
    torch.library.opcheck(torch.ops.irtgen.dirichlet_reparameterize.default, (z, conc))
    # draws are random: the checks that compare two runs are left out
    token = torch.zeros(1, dtype=torch.int64)
    torch.library.opcheck(
        torch.ops.irtgen.dirichlet_sample.default,
        (conc.detach(), [5, 2, 3], token),
        test_utils=("test_schema", "test_faketensor"),
    )
    before = int(token)
    out = torch.ops.irtgen.dirichlet_sample(conc.detach(), [5, 2, 3], token)
    assert int(token) == before + 1
    assert out.shape == (5, 2, 3) and out.dtype == F64


MIXTURE_OPS = {
    # family, univariate, logits (B + (K,)), params (B + (K,) [+ (D,)]), z (S + B [+ (D,)])
    "univariate": (
        Gamma,
        True,
        torch.tensor([[0.3, -1.0, 0.2], [0.1, 0.5, -0.4]]),
        [torch.tensor([[0.5, 2.0, 4.0], [1.0, 1.5, 3.0]]), torch.tensor([1.0, 2.0, 0.5])],
        torch.tensor([[0.4, 2.0], [1.1, 0.2], [3.0, 0.9]]),
    ),
    "independent": (
        Normal,
        False,
        torch.tensor([0.3, -1.0]),
        [torch.tensor([[0.0, 1.0, -1.0], [2.0, 0.5, 0.0]]), torch.tensor([[1.0], [0.5]])],
        torch.tensor([[0.1, 0.8, -0.5], [1.5, 0.2, 0.3]]),
    ),
}


@pytest.mark.parametrize("kind", list(MIXTURE_OPS))
def test_opcheck_mixture(kind):
    cls, univariate, logits, params, z = MIXTURE_OPS[kind]
    logits = logits.to(F64).requires_grad_()
    shape = params[0].shape if univariate else torch.broadcast_shapes(*(p.shape for p in params))
    params = [p.to(F64).expand(shape).requires_grad_() for p in params]
    z = z.to(F64)
    key = _family(cls)
    torch.library.opcheck(
        torch.ops.irtgen.mixture_reparameterize.default, (key, univariate, z, logits, params)
    )
    grad = torch.linspace(-1.0, 2.0, z.numel(), dtype=F64).reshape(z.shape)
    detached = [p.detach() for p in params]
    for needs in ([True, True, True], [False, True, False]):
        torch.library.opcheck(
            torch.ops.irtgen.mixture_backward.default,
            (key, univariate, z, grad, logits.detach(), detached, needs),
        )
    token = torch.zeros(1, dtype=torch.int64)
    probs = logits.detach().softmax(-1)
    args = (key, univariate, probs, detached, [4], token)
    torch.library.opcheck(
        torch.ops.irtgen.mixture_sample.default,
        args,
        test_utils=("test_schema", "test_faketensor"),
    )
    before = int(token)
    out = torch.ops.irtgen.mixture_sample(*args)
    assert int(token) == before + 1
    assert out.shape == (4, *z.shape[1:]) and out.dtype == F64


def _run(fn, leaves, *args, seed):
    """(loss, draws, gradients of the leaves) of ``fn`` -> (loss, draws) under ``seed``."""
    for t in leaves:
        t.grad = None
    torch.manual_seed(seed)
    loss, draws = fn(*leaves, *args)
    loss.backward()
    return loss.detach(), [d.detach() for d in draws], [t.grad.clone() for t in leaves]


def _assert_compiled_equals_eager(step, leaves, *args, seed):
    compiled = torch.compile(step, fullgraph=True)
    loss_c, draws_c, grads_c = _run(compiled, leaves, *args, seed=seed)
    loss_e, draws_e, grads_e = _run(step, leaves, *args, seed=seed)
    # the same seed draws the same numbers in the same order, compiled or eager
    for dc, de in zip(draws_c, draws_e, strict=True):
        assert torch.equal(dc, de)
    torch.testing.assert_close(loss_c, loss_e)
    for gc, ge in zip(grads_c, grads_e, strict=True):
        assert torch.isfinite(gc).all() and gc.abs().sum() > 0
        torch.testing.assert_close(gc, ge)


def _dirichlet_step(conc, w, estimator):
    d = Dirichlet(conc, grad=estimator)
    z = d.rsample((8,))
    x = d.sample((3,))
    n = Normal(conc, 1.0).rsample()  # a generated family's draw after the Dirichlet's
    loss = (w * z).sum() + (z * z).mean() + d.log_prob(x).sum() + n.sum()
    return loss, (z, x, n)


@pytest.mark.parametrize("estimator", ["beta", "gamma"])
def test_compile_fullgraph_dirichlet(estimator):
    conc = torch.tensor([[0.5, 2.0, 1.5], [0.05, 1.0, 3.0]], dtype=F64, requires_grad=True)
    w = torch.tensor([1.0, -2.0, 0.5], dtype=F64)
    _assert_compiled_equals_eager(_dirichlet_step, [conc], w, estimator, seed=7)


def _univariate_mixture_step(logits, conc, rate):
    m = MixtureSameFamily(Categorical(logits=logits), Gamma(conc, rate))
    z = m.rsample((16,))
    x = m.sample((4,))
    n = Normal(conc, 1.0).rsample()  # a generated family's draw after the mixture's
    return (z * z).mean() + z.log().mean() + m.log_prob(x).sum() + n.sum(), (z, x, n)


def _independent_mixture_step(logits, loc, scale):
    comps = Independent(Normal(loc, scale.unsqueeze(-1)), 1)
    m = MixtureSameFamily(Categorical(logits=logits), comps)
    z = m.rsample((16,))
    x = m.sample((4,))
    return (z[..., 0] * z[..., 1]).mean() + (z * z).mean() + m.log_prob(x).sum(), (z, x)


MIXTURE_STEPS = {
    "univariate": (
        _univariate_mixture_step,
        [[0.3, -1.0, 0.2], [0.1, 0.5, -0.4]],
        [[0.5, 2.0, 4.0], [1.0, 1.5, 3.0]],
        [1.0, 2.0, 0.5],
    ),
    "independent": (
        _independent_mixture_step,
        [0.3, -1.0, 0.2],
        [[0.0, 1.0], [2.0, 0.5], [-1.0, 0.0]],
        [1.0, 0.5, 2.0],
    ),
}


@pytest.mark.parametrize("kind", list(MIXTURE_STEPS))
def test_compile_fullgraph_mixture(kind):
    step, *values = MIXTURE_STEPS[kind]
    leaves = [torch.tensor(v, dtype=F64, requires_grad=True) for v in values]
    _assert_compiled_equals_eager(step, leaves, seed=11)
