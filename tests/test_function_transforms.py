"""torch.func transforms, gradcheck with batched gradients, and second derivatives of the
generated families' ops (irtgen.runtime.autograd, ops.second_order)."""

from __future__ import annotations

import pytest
import torch
import torch.distributions as td

from irtgen.distributions import Beta, Gamma, Laplace, Normal, StudentT, Weibull

D = torch.float64


def t(*v):
    return torch.tensor(v if len(v) > 1 else v[0], dtype=D)


# -- first order under torch.func ---------------------------------------------------------------


def test_func_grad_of_log_prob_cdf_and_icdf_matches_torch():
    x = t(0.3)
    for name in ("log_prob", "cdf", "icdf"):
        arg = t(0.8) if name == "icdf" else x

        def ours(loc, name=name, arg=arg):
            return getattr(Normal(loc, t(1.5)), name)(arg)

        def theirs(loc, name=name, arg=arg):
            return getattr(td.Normal(loc, t(1.5)), name)(arg)

        torch.testing.assert_close(torch.func.grad(ours)(t(0.5)), torch.func.grad(theirs)(t(0.5)))


def test_vmap_of_log_prob_over_parameters_and_values_equals_the_unbatched_calls():
    locs, xs = t(0.5, -1.0, 2.0), t(0.1, 0.2, 3.0)
    out = torch.func.vmap(lambda loc, x: Normal(loc, t(2.0)).log_prob(x))(locs, xs)
    expected = torch.stack([Normal(lo, t(2.0)).log_prob(x) for lo, x in zip(locs, xs, strict=True)])
    torch.testing.assert_close(out, expected)
    # a batch dimension on the value only, against a batched distribution
    g = Gamma(t(0.5, 2.0), t(1.0, 3.0))
    values = torch.rand(4, 2, dtype=D) + 0.1
    torch.testing.assert_close(torch.func.vmap(g.log_prob)(values), g.log_prob(values))


def test_per_example_gradients_by_vmap_over_grad():
    """The usual per-sample-gradient recipe: vmap(grad(loss)) over a batch of data."""
    conc = t(0.7, 3.0)

    def loss(c, x):
        return Gamma(c, t(1.0)).log_prob(x).sum()

    xs = torch.rand(5, 2, dtype=D) + 0.05
    out = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0))(conc, xs)
    for i in range(5):
        c = conc.clone().requires_grad_()
        (g,) = torch.autograd.grad(loss(c, xs[i]), c)
        torch.testing.assert_close(out[i], g)


def test_jacrev_of_cdf_matches_torch():
    x = t(0.3, -0.2, 1.0)
    ours = torch.func.jacrev(lambda s: Laplace(t(0.1), s).cdf(x))(t(0.5, 1.0, 2.0))
    theirs = torch.func.jacrev(lambda s: td.Laplace(t(0.1), s).cdf(x))(t(0.5, 1.0, 2.0))
    torch.testing.assert_close(ours, theirs)


def test_func_grad_of_rsample_with_a_generator_equals_autograd():
    def f(scale):
        gen = torch.Generator().manual_seed(3)
        return Weibull(scale, t(2.0)).rsample((5,), generator=gen).square().sum()

    s = t(1.5).requires_grad_()
    (expected,) = torch.autograd.grad(f(s), s)
    torch.testing.assert_close(torch.func.grad(f)(t(1.5)), expected)


@pytest.mark.parametrize("family", [Normal, Gamma])
def test_gradcheck_with_batched_gradients(family):
    a = t(0.5, 1.5).requires_grad_()
    x = t(0.3, 0.9)
    assert torch.autograd.gradcheck(
        lambda a: family(a, t(2.0)).log_prob(x), (a,), check_batched_grad=True
    )
    assert torch.autograd.gradcheck(
        lambda a: family(a, t(2.0)).cdf(x), (a,), check_batched_grad=True
    )
    # icdf's gradient is the implicit formula at z = icdf(u): the gradient of rsample
    u = t(0.05, 0.5, 0.97)[:, None]
    assert torch.autograd.gradcheck(
        lambda a: family(a, t(2.0)).icdf(u), (a,), check_batched_grad=True
    )


# -- randomness under vmap ---------------------------------------------------------------------


def test_vmap_of_rsample_follows_the_randomness_setting():
    scales = t(1.0, 1.0, 1.0)
    with pytest.raises(RuntimeError, match="randomness error mode"):
        torch.func.vmap(lambda s: Normal(t(0.0), s).rsample())(scales)
    same = torch.func.vmap(lambda s: Normal(t(0.0), s).rsample((2,)), randomness="same")(scales)
    assert same.shape == (3, 2)
    assert torch.equal(same[0], same[1]) and torch.equal(same[1], same[2])
    different = torch.func.vmap(lambda s: Normal(t(0.0), s).rsample((2,)), randomness="different")(
        scales
    )
    assert not torch.equal(different[0], different[1])
    assert torch.isfinite(different).all()


# -- second derivatives ------------------------------------------------------------------------


@pytest.mark.parametrize("family", [Normal, Gamma, Beta, StudentT])
def test_hessian_of_log_prob_matches_torch(family):
    """log q is twice differentiable for every family (lgamma, digamma, betaln bind to
    torch's own in the formulas' torch form)."""
    x = t(0.4)
    args = {Normal: (t(0.2), t(1.3)), Gamma: (t(2.5), t(1.5)), Beta: (t(2.5), t(1.5))}
    args[StudentT] = (t(4.0), t(0.1), t(1.3))
    theirs_cls = getattr(td, family.__name__)

    def ours(p):
        return family(*p).log_prob(x)

    def theirs(p):
        return theirs_cls(*p).log_prob(x)

    p = torch.stack(args[family])
    torch.testing.assert_close(
        torch.func.hessian(lambda p: ours(list(p)))(p),
        torch.func.hessian(lambda p: theirs(list(p)))(p),
    )


def _central_second(f, x, h=1e-5):
    """Hessian of scalar f at vector x by central differences of f's autograd gradient."""
    rows = []
    for i in range(x.numel()):
        e = torch.zeros_like(x)
        e[i] = h
        xp, xm = (x + e).requires_grad_(), (x - e).requires_grad_()
        (gp,) = torch.autograd.grad(f(xp), xp)
        (gm,) = torch.autograd.grad(f(xm), xm)
        rows.append((gp - gm) / (2 * h))
    return torch.stack(rows)


@pytest.mark.parametrize("family", [Normal, Weibull, Laplace])
def test_second_derivative_of_rsample_matches_finite_differences(family):
    """d²z/dθ² through the implicit gradient: create_graph=True backward, then backward again,
    against central differences of the first derivative at fixed uniforms (the draw is
    icdf(u), so z(θ) is a smooth function of θ)."""
    u = t(0.1, 0.35, 0.6, 0.93)

    def f(p):
        d = family(p[0], p[1])
        z = d.reparameterize(d.icdf(u).detach())
        return (z * z * z).sum()

    p = t(1.3, 0.8) if family is Weibull else t(0.2, 0.8)
    x = p.clone().requires_grad_()
    (g,) = torch.autograd.grad(f(x), x, create_graph=True)
    hess = torch.stack([torch.autograd.grad(g[i], x, retain_graph=True)[0] for i in range(2)])
    torch.testing.assert_close(hess, _central_second(f, p), rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(torch.func.hessian(f)(p), hess)


def test_second_derivative_of_icdf_matches_torch():
    u = t(0.2, 0.7)

    def ours(p):
        return Normal(p[0], p[1]).icdf(u).pow(3).sum()

    def theirs(p):
        return td.Normal(p[0], p[1]).icdf(u).pow(3).sum()

    p = t(0.3, 1.7)
    torch.testing.assert_close(torch.func.hessian(ours)(p), torch.func.hessian(theirs)(p))


def test_gradgradcheck_where_the_formulas_are_straight_line():
    a = t(0.5, 1.5).requires_grad_()
    x = t(0.3, 0.9)
    assert torch.autograd.gradgradcheck(lambda a: Weibull(a, t(2.0)).cdf(x), (a,))
    assert torch.autograd.gradgradcheck(lambda a: Gamma(a, t(2.0)).log_prob(x), (a,))


@pytest.mark.parametrize("family", [Gamma, Beta, StudentT])
def test_second_derivative_of_a_special_function_gradient_is_a_clear_error(family):
    """dz/dθ of Gamma, Beta and Student-t calls the incomplete gamma/beta derivatives, which
    choose a regime per element: their second derivative is refused by name."""
    p = (t(4.0), t(0.1), t(1.3)) if family is StudentT else (t(2.5), t(1.5))
    x = p[0].clone().requires_grad_()
    d = family(x, *p[1:])
    z = d.reparameterize(d.sample((3,)))
    (g,) = torch.autograd.grad(z.sum(), x, create_graph=True)
    with pytest.raises(
        RuntimeError, match=f"{family.__name__}: second derivatives are not available.*first order"
    ):
        torch.autograd.grad(g, x)


# -- Dirichlet ---------------------------------------------------------------------------------


def test_dirichlet_under_func_grad_vmap_and_second_order():
    from irtgen.distributions import Dirichlet

    c = t(0.5, 2.0, 3.0)

    def f(c):
        return Dirichlet(c).rsample((4,), generator=torch.Generator().manual_seed(0))[:, 0].sum()

    x = c.clone().requires_grad_()
    (expected,) = torch.autograd.grad(f(x), x)
    torch.testing.assert_close(torch.func.grad(f)(c), expected)
    draws = torch.func.vmap(lambda c: Dirichlet(c).rsample(), randomness="different")(
        torch.stack([c, c])
    )
    assert draws.shape == (2, 3) and not torch.equal(draws[0], draws[1])
    torch.testing.assert_close(draws.sum(-1), torch.ones(2, dtype=D))
    (g,) = torch.autograd.grad(f(x), x, create_graph=True)
    with pytest.raises(RuntimeError, match="Dirichlet has first derivatives only"):
        torch.autograd.grad(g.sum(), x)


# -- torch.jit.trace ---------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
@pytest.mark.parametrize("method", ["log_prob", "cdf", "icdf"])
def test_jit_trace_of_elementwise_methods_runs_the_same_ops(method):
    def f(conc, rate, x):
        return getattr(Gamma(conc, rate), method)(x)

    args = (t(0.7, 2.0), t(1.0, 3.0), t(0.2, 0.6))
    traced = torch.jit.trace(f, args, check_trace=False)
    assert "irtgen::elementwise" in str(traced.graph)
    new = (t(1.5, 0.3).requires_grad_(), t(2.0, 0.5).requires_grad_(), t(0.4, 0.9))
    out = traced(*new)
    ref = f(*new)
    torch.testing.assert_close(out, ref)
    g_traced = torch.autograd.grad(out.sum(), new[:2])
    g_eager = torch.autograd.grad(ref.sum(), new[:2])
    torch.testing.assert_close(g_traced, g_eager)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_jit_trace_of_rsample_draws_anew_and_differentiates():
    from irtgen.distributions import Dirichlet

    def f(loc, scale):
        return Normal(loc, scale).rsample((3,))

    args = (t(0.5, 1.0), t(1.0, 2.0))
    traced = torch.jit.trace(f, args, check_trace=False)
    assert "irtgen::sample" in str(traced.graph)
    assert not torch.equal(traced(*args), traced(*args))  # a fresh draw per call
    loc, scale = t(0.1, 0.2).requires_grad_(), t(3.0, 4.0).requires_grad_()
    torch.manual_seed(5)
    z = traced(loc, scale)
    torch.manual_seed(5)
    z_eager = f(loc, scale)
    torch.testing.assert_close(z, z_eager)
    grads = torch.autograd.grad(z.square().sum(), (loc, scale))
    torch.testing.assert_close(grads, torch.autograd.grad(z_eager.square().sum(), (loc, scale)))
    traced_dirichlet = torch.jit.trace(lambda c: Dirichlet(c).rsample((2,)), (t(1.0, 2.0, 3.0),))
    torch.testing.assert_close(traced_dirichlet(t(1.0, 2.0, 3.0)).sum(-1), torch.ones(2, dtype=D))


# -- MixtureSameFamily -------------------------------------------------------------------------


def _mixture(p, components):
    from torch.distributions import Categorical

    from irtgen.distributions import MixtureSameFamily

    logits, loc = p[:2], p[2:]
    if components == "irtgen":
        return MixtureSameFamily(Categorical(logits=logits), Normal(loc, t(1.0, 2.0)))
    # a torch class irtgen does not ship (the torch-code gradient), with a density that is
    # not constant (its derivative in z enters the second derivative of a draw)
    comp = td.HalfCauchy(loc.exp(), validate_args=False)
    return MixtureSameFamily(Categorical(logits=logits), comp, validate_args=False)


def _mixture_loss(p, components, z=None):
    z = t(0.3, 0.9, 1.5) if z is None else z
    return _mixture(p, components).reparameterize(z).pow(3).sum()


def _draws_at(p, components, u):
    """The mixture's draws at uniforms u (its cdf inverted by bisection in float64)."""
    m = _mixture(p.detach(), components)
    lo, hi = torch.zeros_like(u), torch.full_like(u, 1e3)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        below = m.cdf(mid) < u
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    return 0.5 * (lo + hi)


@pytest.mark.parametrize("components", ["irtgen", "torch"])
def test_mixture_under_func_grad_and_vmap(components):
    p = t(0.1, -0.2, 0.0, 0.5)
    x = p.clone().requires_grad_()
    (expected,) = torch.autograd.grad(_mixture_loss(x, components), x)
    torch.testing.assert_close(torch.func.grad(_mixture_loss)(p, components), expected)
    per_example = torch.func.vmap(torch.func.grad(_mixture_loss), in_dims=(0, None))(
        torch.stack([p, 2 * p]), components
    )
    torch.testing.assert_close(per_example[0], expected)


def test_mixture_second_derivatives():
    """irtgen components: first order, with errors that say so; torch components (torch code,
    two Newton steps): the Hessian of a loss of draws equals central differences of its
    gradient."""
    p = t(0.1, -0.2, 0.0, 0.5)
    x = p.clone().requires_grad_()
    (g,) = torch.autograd.grad(_mixture_loss(x, "irtgen"), x, create_graph=True)
    with pytest.raises(RuntimeError, match="MixtureSameFamily has first derivatives only"):
        torch.autograd.grad(g.sum(), x)
    with pytest.raises(RuntimeError, match="forward mode .* is not available"):
        torch.func.hessian(_mixture_loss)(p, "irtgen")
    # draws that move with the parameters: z(θ) = F^-1(u; θ) at the uniforms of the draws at p
    z = t(0.3, 0.9, 1.5)
    u = _mixture(p, "torch").cdf(z)
    hess = torch.func.hessian(_mixture_loss)(p, "torch", z)

    def moving(q):
        return _mixture_loss(q, "torch", _draws_at(q, "torch", u))

    torch.testing.assert_close(hess, _central_second(moving, p), rtol=1e-6, atol=1e-7)
    (g,) = torch.autograd.grad(_mixture_loss(x, "torch", z), x, create_graph=True)
    rows = torch.stack([torch.autograd.grad(g[i], x, retain_graph=True)[0] for i in range(4)])
    torch.testing.assert_close(rows, hess)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_mixture_rsample_under_vmap_and_jit_trace():
    from torch.distributions import Categorical

    from irtgen.distributions import MixtureSameFamily

    def draw(logits):
        return MixtureSameFamily(
            Categorical(logits=logits), Normal(t(0.0, 5.0), t(1.0, 1.0))
        ).rsample((2,))

    logits = t(0.3, -0.3)
    batched = torch.func.vmap(draw, randomness="different")(torch.stack([logits] * 3))
    assert batched.shape == (3, 2) and torch.isfinite(batched).all()
    with pytest.raises(RuntimeError, match="randomness error mode"):
        torch.func.vmap(draw)(torch.stack([logits] * 3))
    traced = torch.jit.trace(draw, (logits,), check_trace=False)
    assert "irtgen::mixture_sample" in str(traced.graph)
    x = logits.clone().requires_grad_()
    torch.manual_seed(2)
    z = traced(x)
    torch.manual_seed(2)
    z_eager = draw(x)
    torch.testing.assert_close(z, z_eager)
    torch.testing.assert_close(
        torch.autograd.grad(z.sum(), x), torch.autograd.grad(z_eager.sum(), x)
    )
