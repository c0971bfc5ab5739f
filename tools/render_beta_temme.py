"""Render the unrolled Temme sums of irtgen/runtime/triton_beta.py from torch_beta's tables.

    python tools/render_beta_temme.py   # prints the two functions _temme_g and _temme_l

The Triton interpreter cannot loop over a table of float constants (they would round to
float32), so triton_beta carries the sums written out with inline literals; this script writes
them, and tests/special/test_beta_functions.py checks that the module holds its output.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from irtgen.runtime import torch_beta as tb  # noqa: E402


def lit(c):
    return repr(float(c))


def poly_lines(name, coeffs, var2, odd_var=None):
    cs = list(coeffs)
    while cs and cs[-1] == 0.0:
        cs.pop()
    if len(cs) == 1:
        if odd_var:
            return [f"{name} = {odd_var} * {lit(cs[0])}"]
        return [f"{name} = {var2} * 0.0 + {lit(cs[0])}"]

    def add(c):
        return f"+ {lit(c)}" if c >= 0 else f"- {lit(-c)}"

    lines = [f"{name} = {var2} * {lit(cs[-1])} {add(cs[-2])}"]
    for c in cs[-3::-1]:
        lines.append(f"{name} = {name} * {var2} {add(c)}")
    if odd_var:
        lines.append(f"{name} = {name} * {odd_var}")
    return lines


def mult(k, j):
    m = 1
    for i in range(k):
        m *= j + 2 + 2 * i
    return m


def render() -> str:
    """The source of _temme_g and _temme_l."""
    H = tb._TEMME_H  # noqa: N806
    L = tb._TEMME_L  # noqa: N806
    GT = tb.TEMME_G_TERMS
    LT = tb.TEMME_L_TERMS
    out = [
        "@triton.jit",
        "def _temme_g(xi, nu, z):",
        '    """sum_k z^(k+1) sum_j G_k[j] xi^j with G_k[j] = m_kj h_(j+1+2k)(nu): torch_beta._TEMME_H',
        '    unrolled (the interpreter cannot loop over float tables)."""',
        "    nu2 = nu * nu",
    ]
    for n in sorted({j + 1 + 2 * k for k in range(len(GT)) for j in range(GT[k])}):
        c = list(H[n])
        if n % 2 == 0:
            out += ["    " + line for line in poly_lines(f"h{n}", c[0::2], "nu2")]
        else:
            out += ["    " + line for line in poly_lines(f"h{n}", c[1::2], "nu2", "nu")]
    first = True
    for k in range(len(GT) - 1, -1, -1):
        js = list(range(GT[k] - 1, -1, -1))
        out.append(f"    s = h{js[0] + 1 + 2 * k} * {mult(k, js[0])}.0")
        for j in js[1:]:
            out.append(f"    s = s * xi + h{j + 1 + 2 * k} * {mult(k, j)}.0")
        out.append("    sg = s * z" if first else "    sg = (sg + s) * z")
        first = False
    out.append("    return sg")
    out += [
        "",
        "",
        "@triton.jit",
        "def _temme_l(xi, nu, z):",
        '    """sum_(k>=1) z^k sum_j L_k[j] xi^j, L_k[j] = m_kj l_(j+1+2k)(nu), and its mirror image',
        "    L_b(xi; nu) = -L_a(-xi; -nu): torch_beta._TEMME_L unrolled, split into even and odd parts",
        '    in nu."""',
        "    nu2 = nu * nu",
    ]
    for n in sorted({j + 1 + 2 * k for k in range(1, len(LT)) for j in range(LT[k])}):
        c = list(L[n])
        out += ["    " + line for line in poly_lines(f"le{n}", c[0::2], "nu2")]
        out += ["    " + line for line in poly_lines(f"lo{n}", c[1::2], "nu2", "nu")]
    first = True
    for k in range(len(LT) - 1, 0, -1):
        js = list(range(LT[k] - 1, -1, -1))
        for i, j in enumerate(js):
            n = j + 1 + 2 * k
            mb = (-1.0 if j % 2 == 0 else 1.0) * mult(k, j)
            if i == 0:
                out.append(f"    ta = (le{n} + lo{n}) * {mult(k, j)}.0")
                out.append(f"    tb = (le{n} - lo{n}) * {mb}")
            else:
                out.append(f"    ta = ta * xi + (le{n} + lo{n}) * {mult(k, j)}.0")
                out.append(f"    tb = tb * xi + (le{n} - lo{n}) * {mb}")
        out.append("    sa = ta * z" if first else "    sa = (sa + ta) * z")
        out.append("    sb = tb * z" if first else "    sb = (sb + tb) * z")
        first = False
    out.append("    return sa, sb")
    return "\n".join(out)


if __name__ == "__main__":
    print(render())
