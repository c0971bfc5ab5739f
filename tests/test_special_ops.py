"""The differentiable ops of ``irtgen.special``: values and gradients in every argument against
mpmath at 40 digits, on the torch path and on the Triton kernels (interpreter).

References are evaluated at the exact binary values of the inputs; derivatives by ``mp.diff``
through log of the argument (all arguments are positive), so that x = 1e-300 is not stepped
across 0. Where a function is close to 1, the complement (Q, or I_{1-x}(b, a)) is
differentiated instead, so the reference keeps its relative accuracy in both tails.
"""

from __future__ import annotations

import functools

import mpmath as mp
import pytest
import torch
from scipy import special as sps

import irtgen.special as S

# The targets of the issue: float64 and float32 (both computed in float64 internally).
TOL = {torch.float64: 1e-12, torch.float32: 1e-5}
DTYPES = [torch.float64, torch.float32]
DTYPE_IDS = ["f64", "f32"]

# Test points at these lower-tail probabilities P and upper-tail probabilities Q.
LOWER = [1e-30, 1e-10, 1e-3, 0.5]
UPPER = [1e-3, 1e-10, 1e-30]

GAMMA_SHAPES = [1e-3, 0.3, 4.0, 150.0, 1e4]
BETA_SHAPES = [(1e-3, 1e-3), (0.5, 0.5), (2.0, 5.0), (1e-3, 1e4), (1e4, 1e-3), (1e4, 1e4)]


def _dlog(f, v):
    """f'(v) for v > 0, differentiating f(e^s) at s = log v."""
    return mp.diff(lambda s: f(mp.exp(s)), mp.log(v)) / v


def _rounded(v, dtype):
    return float(torch.tensor(v, dtype=dtype))


def _usable(v, dtype):
    """A reference that dtype can hold as a normal number (subnormals have no relative accuracy)."""
    info = torch.finfo(dtype)
    return info.tiny <= abs(v) <= info.max


def _mp_gammainc(a, x):
    return mp.gammainc(a, 0, x, regularized=True)


def _mp_gammaincc(a, x):
    return mp.gammainc(a, x, mp.inf, regularized=True)


def _mp_betainc(a, b, x):
    """I_x(a, b). For a + b >= 1000, mpmath's betainc sums a 2F1 with cancelling terms, slowly,
    and fails to converge at a = b = 1e4; there DLMF 8.17.8, x^a y^b/(a B(a, b)) *
    2F1(a + b, 1; a + 1; x) (positive terms), with I_x(a, b) = 1 - I_y(b, a) for x > a/(a + b)."""
    if a + b < 1000:
        return mp.betainc(a, b, 0, x, regularized=True)

    def lower(a, b, x):
        log_pre = a * mp.log(x) + b * mp.log1p(-x) - mp.log(a) - mp.log(mp.beta(a, b))
        return mp.exp(log_pre) * mp.hyp2f1(a + b, 1, a + 1, x)

    return lower(a, b, x) if x <= a / (a + b) else 1 - lower(b, a, 1 - x)


def _mp_betaincc(a, b, x):
    """1 - I_x(a, b) = I_{1-x}(b, a), without cancellation (1 - x is exact at 40 digits)."""
    return _mp_betainc(b, a, 1 - x)


@functools.cache
def gamma_table(dtype):
    """[(a, x, P, Q, dP/da, dP/dx)] at the dtype's binary inputs (dQ = -dP)."""
    rows = []
    with mp.workdps(40):
        for a0 in GAMMA_SHAPES:
            a = _rounded(a0, dtype)
            xs = [sps.gammaincinv(a, u) for u in LOWER] + [sps.gammainccinv(a, q) for q in UPPER]
            if a0 < 0.01:  # its lower quantiles underflow: a deep tail point (P 0.5 or 0.93)
                xs.append(1e-300 if dtype == torch.float64 else 1e-30)
            for x0 in xs:
                x = _rounded(x0, dtype)
                if not 0 < x < float("inf"):
                    continue
                am, xm = mp.mpf(a), mp.mpf(x)
                p, q = _mp_gammainc(am, xm), _mp_gammaincc(am, xm)
                # differentiate whichever of P and Q is the small one
                if p < q:
                    da = _dlog(lambda t, xm=xm: _mp_gammainc(t, xm), am)
                    dx = _dlog(lambda t, am=am: _mp_gammainc(am, t), xm)
                else:
                    da = -_dlog(lambda t, xm=xm: _mp_gammaincc(t, xm), am)
                    dx = -_dlog(lambda t, am=am: _mp_gammaincc(am, t), xm)
                ref = [float(v) for v in (p, q, da, dx)]
                if all(_usable(v, dtype) for v in ref):
                    rows.append((a, x, *ref))
    return rows


@functools.cache
def beta_table(dtype):
    """[(a, b, x, I, dI/da, dI/db, dI/dx)] at the dtype's binary inputs."""
    rows = []
    with mp.workdps(40):
        for a0, b0 in BETA_SHAPES:
            a, b = _rounded(a0, dtype), _rounded(b0, dtype)
            xs = [sps.betaincinv(a, b, u) for u in LOWER]
            xs += [sps.betainccinv(a, b, q) for q in UPPER]
            # scipy clamps quantiles below the smallest normal double to it. Below x ~ 1e-300
            # the op's ratio factor (dI/db over the density) is itself subnormal in float64
            # (2.2e-312 at a = 1e-3, b = 1e4, x = 2.2e-308) and carries ~1e-12 relative
            # precision, which the product with the density inherits: such points are left out
            for x in sorted({_rounded(x0, dtype) for x0 in xs}):
                if not 1e-300 <= x < 1:
                    continue
                am, bm, xm = mp.mpf(a), mp.mpf(b), mp.mpf(x)
                value = _mp_betainc(am, bm, xm)
                if value < 0.5:
                    f, sign = _mp_betainc, 1
                else:
                    f, sign = _mp_betaincc, -1
                da = sign * _dlog(lambda t, bm=bm, xm=xm, f=f: f(t, bm, xm), am)
                db = sign * _dlog(lambda t, am=am, xm=xm, f=f: f(am, t, xm), bm)
                dx = sign * _dlog(lambda t, am=am, bm=bm, f=f: f(am, bm, t), xm)
                ref = [float(v) for v in (value, da, db, dx)]
                if all(_usable(v, dtype) for v in ref):
                    rows.append((a, b, x, *ref))
    return rows


def _worst(names, got, ref, inputs):
    """(relative error, quantity, inputs, got, reference) of the worst entry."""
    worst = (0.0,)
    for name, g, r in zip(names, got, ref, strict=True):
        err = ((g.double() - r).abs() / r.abs()).nan_to_num(nan=float("inf"))
        k = int(err.argmax())
        if float(err[k]) >= worst[0]:
            point = tuple(float(t[k]) for t in inputs)
            worst = (float(err[k]), name, point, float(g[k]), float(r[k]))
    return worst


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_gammainc_gammaincc_match_mpmath(dtype, backend):
    rows = gamma_table(dtype)
    assert len(rows) >= 20
    cols = torch.tensor(rows, dtype=torch.float64).T
    a = cols[0].to(dtype).requires_grad_()
    x = cols[1].to(dtype).requires_grad_()
    p, q = S.gammainc(a, x), S.gammaincc(a, x)
    assert p.dtype == q.dtype == dtype
    dp = torch.autograd.grad(p.sum(), (a, x))
    dq = torch.autograd.grad(q.sum(), (a, x))
    assert all(g.dtype == dtype for g in dp + dq)
    worst = _worst(
        ["P", "Q", "dP/da", "dP/dx", "dQ/da", "dQ/dx"],
        [p.detach(), q.detach(), *dp, *dq],
        [cols[2], cols[3], cols[4], cols[5], -cols[4], -cols[5]],
        (cols[0], cols[1]),
    )
    assert worst[0] <= TOL[dtype], f"(err, quantity, (a, x), got, ref) = {worst}"


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_betainc_matches_mpmath(dtype, backend):
    rows = beta_table(dtype)
    assert len(rows) >= 18
    cols = torch.tensor(rows, dtype=torch.float64).T
    a, b, x = (cols[i].to(dtype).requires_grad_() for i in range(3))
    value = S.betainc(a, b, x)
    assert value.dtype == dtype
    grads = torch.autograd.grad(value.sum(), (a, b, x))
    worst = _worst(
        ["I", "dI/da", "dI/db", "dI/dx"],
        [value.detach(), *grads],
        [cols[3], cols[4], cols[5], cols[6]],
        (cols[0], cols[1], cols[2]),
    )
    assert worst[0] <= TOL[dtype], f"(err, quantity, (a, b, x), got, ref) = {worst}"


def test_broadcast_gradients_have_parameter_shapes(backend):
    a = torch.tensor([[0.5], [2.0], [30.0]], dtype=torch.float64, requires_grad=True)
    b = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    x = torch.tensor([0.1, 0.4, 0.7, 0.95], dtype=torch.float64, requires_grad=True)
    # the same values with every argument materialised at the broadcast shape
    full = [t.detach().expand(3, 4).clone().requires_grad_() for t in (a, b, x)]
    for fn, args, full_args in [
        (S.gammainc, (a, x), (full[0], full[2])),
        (S.gammaincc, (a, x), (full[0], full[2])),
        (S.betainc, (a, b, x), full),
    ]:
        out = fn(*args)
        assert out.shape == (3, 4)
        grads = torch.autograd.grad(out.sum(), args)
        assert [g.shape for g in grads] == [t.shape for t in args]
        full_out = fn(*full_args)
        full_grads = torch.autograd.grad(full_out.sum(), full_args)
        torch.testing.assert_close(out, full_out, rtol=0, atol=0)
        for g, fg, t in zip(grads, full_grads, args, strict=True):
            torch.testing.assert_close(g, fg.sum_to_size(t.shape), rtol=1e-14, atol=0)


def test_python_numbers_accepted(backend):
    with mp.workdps(40):
        p_ref = float(_mp_gammainc(mp.mpf(2), mp.mpf(1.5)))
        i_ref = float(_mp_betainc(mp.mpf(2), mp.mpf(3), mp.mpf(0.25)))
    p = S.gammainc(2.0, 1.5)
    assert torch.is_tensor(p) and p.dtype == torch.get_default_dtype() and p.shape == ()
    assert abs(float(p) - p_ref) <= 1e-6 * p_ref
    assert abs(float(S.gammaincc(2, 1.5)) - (1 - p_ref)) <= 1e-6
    assert abs(float(S.betainc(2, 3.0, 0.25)) - i_ref) <= 1e-6 * i_ref
    # a tensor in one argument and a number in the others: the tensor gets its gradient
    x = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    (dx,) = torch.autograd.grad(S.gammainc(2.0, x), (x,))
    assert dx.dtype == torch.float64
    assert abs(float(dx) - 1.5 * mp.exp(-1.5)) <= 1e-14  # x^(a-1) e^-x / Γ(a) at a = 2
    b = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    (db,) = torch.autograd.grad(S.betainc(2, b, 0.25), (b,))
    assert float(db) > 0  # I_x(a, b) increases with b


def test_complement_sums_to_one_and_gradients_are_negatives(backend):
    a = torch.tensor([1e-3, 0.5, 3.0, 80.0, 2e3], dtype=torch.float64, requires_grad=True)
    x = torch.tensor([1e-5, 0.2, 3.5, 60.0, 2.1e3], dtype=torch.float64, requires_grad=True)
    p, q = S.gammainc(a, x), S.gammaincc(a, x)
    torch.testing.assert_close(p + q, torch.ones_like(p), rtol=0, atol=4e-16)
    dp = torch.autograd.grad(p.sum(), (a, x))
    dq = torch.autograd.grad(q.sum(), (a, x))
    for gp, gq in zip(dp, dq, strict=True):
        assert torch.all(gp != 0)
        torch.testing.assert_close(gq, -gp, rtol=1e-15, atol=0)


def test_gradcheck(backend):
    def inputs(*values):
        return tuple(torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in values)

    gamma_args = inputs([0.7, 3.0, 25.0], [0.4, 2.5, 31.0])
    # the full Jacobian on the torch path; on the interpreted kernels (about 1 s per launch of
    # the beta gradient kernel) a random projection of it, without the undefined-grad pass
    fast = backend == "triton"
    opts = {"fast_mode": fast, "check_undefined_grad": not fast}
    assert torch.autograd.gradcheck(S.gammainc, gamma_args, **opts)
    assert torch.autograd.gradcheck(S.gammaincc, gamma_args, **opts)
    beta_args = inputs([0.8, 2.5, 6.0], [1.5, 0.6, 4.0], [0.3, 0.85, 0.55])
    assert torch.autograd.gradcheck(S.betainc, beta_args, **opts)


def test_agrees_with_torch_and_adds_the_gradient_in_a(backend):
    a = torch.tensor([0.2, 1.0, 4.5, 60.0], dtype=torch.float64)
    x = torch.tensor([0.05, 1.3, 3.0, 75.0], dtype=torch.float64)
    # torch itself is off by 4.7e-11 (P) and 1.4e-9 (Q) at a = 60, x = 75 (mpmath, 40 digits)
    torch.testing.assert_close(S.gammainc(a, x), torch.special.gammainc(a, x), rtol=1e-8, atol=0)
    torch.testing.assert_close(S.gammaincc(a, x), torch.special.gammaincc(a, x), rtol=1e-8, atol=0)

    a_grad = a.clone().requires_grad_()
    with pytest.raises(NotImplementedError, match="derivative"):
        torch.special.gammainc(a_grad, x).sum().backward()
    assert a_grad.grad is None

    (da,) = torch.autograd.grad(S.gammainc(a_grad, x).sum(), (a_grad,))
    with mp.workdps(40):
        ref = [
            float(_dlog(lambda t, xv=xv: _mp_gammainc(t, mp.mpf(xv)), mp.mpf(av)))
            for av, xv in zip(a.tolist(), x.tolist(), strict=True)
        ]
    torch.testing.assert_close(da, torch.tensor(ref, dtype=torch.float64), rtol=1e-12, atol=0)
