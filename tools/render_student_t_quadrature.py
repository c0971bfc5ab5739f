"""Render the Gauss quadrature rules behind Student-t's dz/ddf at large df.

    python tools/render_student_t_quadrature.py   # prints the two sums and the two rules

``irtgen.scalar.student_t`` integrates with the 16-point Gauss-Legendre rule on [0, 1] and the
16-point Gauss-Laguerre rule (weight e^-r on [0, inf)). A scalar function cannot index a table
of float constants (Triton would round a float global to float32), so the module carries each
rule as a function of the point's index, a chain of tl.where over inline literals, which the
sums call in a loop. Nodes and weights are computed here with mpmath at 40 digits (numpy's
rules, refined by Newton's method on the orthogonal polynomial); tests/scalar/test_student_t.py
checks that they are Gauss rules and that the module holds this script's output.
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


def _render_nodes(name: str, doc: str, nodes: list[float], weights: list[float]) -> list[str]:
    """A scalar function (node, weight) of the rule's k-th point: a chain of tl.where on k over
    float64 values (zero + literal), as a scalar function cannot index a float table."""
    out = ["@scalar", f"def {name}(k, zero):", f'    """{doc}"""']
    out.append(f"    node = zero + {nodes[-1]!r}")
    out.append(f"    weight = zero + {weights[-1]!r}")
    for k in range(len(nodes) - 2, -1, -1):
        out.append(f"    node = tl.where(k == {k}, zero + {nodes[k]!r}, node)")
        out.append(f"    weight = tl.where(k == {k}, zero + {weights[k]!r}, weight)")
    out.append("    return node, weight")
    return out


def render_scalar() -> str:
    """The two sums of irtgen.scalar.student_t and their rules' nodes and weights."""
    p, wp = legendre_unit()
    r, wr = laguerre()
    out = [
        "@scalar",
        "def _ddf_bulk_sum(nu, tau, c):",
        '    """sum_k w_k q(tau p_k)/q(tau) g(tau p_k), k = 0 .. 15 in order, by the 16-point',
        "    Gauss-Legendre rule on [0, 1]. A loop, not unrolled: unrolled, the compilers keep",
        '    several terms in flight (~150 registers in float64)."""',
        "    s, s_lo = _ddf_scale(nu, tau)",
        "    zero = 0.0 * tau",
        "    acc = zero",
        f"    for k in range({POINTS}):",
        "        p, w = _legendre_node(k, zero)",
        "        acc += w * _ddf_bulk_term(nu, tau, c, s, s_lo, p)",
        "    return acc",
        "",
        "",
        "@scalar",
        "def _ddf_tail_sum(nu, tau, c):",
        '    """sum_k w_k f(r_k), k = 0 .. 15 in order, by the 16-point Gauss-Laguerre rule',
        '    (weight e^-r)."""',
        "    zero = 0.0 * tau",
        "    acc = zero",
        f"    for k in range({POINTS}):",
        "        r, w = _laguerre_node(k, zero)",
        "        acc += w * _ddf_tail_term(nu, tau, c, r)",
        "    return acc",
        "",
        "",
    ]
    doc = f"Node p_k and weight w_k of the {POINTS}-point Gauss-Legendre rule on [0, 1]."
    out += _render_nodes("_legendre_node", doc, p, wp)
    out += ["", ""]
    doc = f"Node r_k and weight w_k of the {POINTS}-point Gauss-Laguerre rule (weight e^-r)."
    out += _render_nodes("_laguerre_node", doc, r, wr)
    return "\n".join(out)


if __name__ == "__main__":
    print(render_scalar())
