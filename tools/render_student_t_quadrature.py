"""Render the Gauss quadrature rules behind Student-t's dz/ddf at large df.

    python tools/render_student_t_quadrature.py   # prints the two scalar sums

``irtgen.scalar.student_t`` integrates with the 16-point Gauss-Legendre rule on [0, 1] and the
16-point Gauss-Laguerre rule (weight e^-r on [0, inf)). A scalar function cannot loop over a
table of float constants (Triton would round a float global to float32), so the module carries
the two sums written out with inline literals. Nodes and weights are computed here with mpmath
at 40 digits (numpy's rules, refined by Newton's method on the orthogonal polynomial);
tests/scalar/test_student_t.py checks that they are Gauss rules and that the module holds this
script's output.
"""

from __future__ import annotations

import mpmath
import numpy as np

POINTS = 16


def _newton(poly, x0):
    """Root of poly near x0; poly(x) returns (p_n(x), p_n'(x))."""
    x = mpmath.mpf(x0)
    for _ in range(50):
        p, dp = poly(x)
        step = p / dp
        x -= step
        if abs(step) <= abs(x) * mpmath.mpf(10) ** -38:
            break
    return x


def _legendre(n, x):
    p0, p1 = mpmath.mpf(1), x
    for j in range(2, n + 1):
        p0, p1 = p1, ((2 * j - 1) * x * p1 - (j - 1) * p0) / j
    return p1, n * (x * p1 - p0) / (x * x - 1)


def _laguerre(n, x):
    p0, p1 = mpmath.mpf(1), 1 - x
    for j in range(2, n + 1):
        p0, p1 = p1, ((2 * j - 1 - x) * p1 - (j - 1) * p0) / j
    return p1, n * (p1 - p0) / x


def legendre_unit(n: int = POINTS) -> tuple[list[float], list[float]]:
    """Gauss-Legendre rule on [0, 1]: nodes p_k = (1 + x_k)/2 and weights w_k/2, ascending."""
    with mpmath.workdps(40):
        nodes, weights = [], []
        for x0 in np.polynomial.legendre.leggauss(n)[0]:
            x = _newton(lambda x: _legendre(n, x), x0)
            dp = _legendre(n, x)[1]
            nodes.append(float((1 + x) / 2))
            weights.append(float(1 / ((1 - x * x) * dp * dp)))
    return nodes, weights


def laguerre(n: int = POINTS) -> tuple[list[float], list[float]]:
    """Gauss-Laguerre rule for the weight e^-r on [0, inf): nodes r_k and weights, ascending."""
    with mpmath.workdps(40):
        nodes, weights = [], []
        for x0 in np.polynomial.laguerre.laggauss(n)[0]:
            r = _newton(lambda x: _laguerre(n, x), x0)
            dp = _laguerre(n, r)[1]
            nodes.append(float(r))
            weights.append(float(1 / (r * dp * dp)))
    return nodes, weights


def _render_sums(decorator: str, bulk_doc: list[str], bulk_setup: list[str], bulk_args: str) -> str:
    """The two unrolled sums, each function under ``decorator``; the bulk terms take
    ``bulk_args`` (computed by ``bulk_setup``) and the node."""
    p, wp = legendre_unit()
    r, wr = laguerre()
    out = [decorator, "def _ddf_bulk_sum(nu, tau, c):", *bulk_doc, *bulk_setup]
    out.append("    zero = 0.0 * tau")
    for k, (pk, wk) in enumerate(zip(p, wp, strict=True)):
        term = f"{wk!r} * _ddf_bulk_term({bulk_args}, zero + {pk!r})"
        out.append(f"    acc = {term}" if k == 0 else f"    acc += {term}")
    out += [
        "    return acc",
        "",
        "",
        decorator,
        "def _ddf_tail_sum(nu, tau, c):",
        '    """sum_k w_k f(r_k): the 16-point Gauss-Laguerre rule (weight e^-r) unrolled."""',
        "    zero = 0.0 * tau",
    ]
    for k, (rk, wk) in enumerate(zip(r, wr, strict=True)):
        term = f"{wk!r} * _ddf_tail_term(nu, tau, c, zero + {rk!r})"
        out.append(f"    acc = {term}" if k == 0 else f"    acc += {term}")
    out.append("    return acc")
    return "\n".join(out)


def render_scalar() -> str:
    """The two unrolled sums of irtgen.scalar.student_t."""
    doc = [
        '    """sum_k w_k q(tau p_k)/q(tau) g(tau p_k): the 16-point Gauss-Legendre rule on [0, 1]',
        "    unrolled (each node enters as a float64 value: Triton would make a literal passed on by",
        '    itself a float32 constant)."""',
    ]
    setup = ["    s, s_lo = _ddf_scale(nu, tau)"]
    return _render_sums("@scalar", doc, setup, "nu, tau, c, s, s_lo")


if __name__ == "__main__":
    print(render_scalar())
