"""Alternative forms of the formulas that the audit finds above tolerance, the most accurate kept.

The rewrite rules (irtgen.rewrite) remove the cancellations they recognise. Where the accuracy
audit (irtgen.audit) still finds a formula less accurate than the tolerance of the build, the
build tries other forms of that formula, equal in exact arithmetic, and keeps the one the audit
measures best, in the spirit of Herbie (Panchekha et al., PLDI 2015) but over a handful of
candidates:

* ``rules off``: the derived formula before the rewrites (a rule can hurt a formula it was not
  written for);
* ``survival form``: cdf as 1 - S, sf as 1 - F, dz/dθ as (∂S/∂θ)/q instead of -(∂F/∂θ)/q
  (the side of the distribution where the probability is small keeps its digits);
* ``log space``: dz/dθ as -(∂F/∂θ) exp(-log q), log q as the log of the density, ∂log q/∂θ as
  (∂q/∂θ)/q;
* ``numeric inversion`` of the CDF in place of a closed-form icdf that loses digits.

Every candidate goes through the rewrite rules too. The search is bounded by ``SECONDS`` per
family; what it tried and kept is reported on the build's audit line.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import sympy as sp

SECONDS = 30.0  # time box of the search of one family


@dataclass
class Choice:
    formula: str
    form: str  # the kept form ("as derived" when no alternative did better)
    before: float  # worst error / tolerance over the dtypes, before and after
    after: float
    tried: int


def _field(label: str, d) -> tuple[str, int | None]:
    if label.startswith("dz/d"):
        return "implicit", [p.name for p in d.params].index(label[4:])
    if label.startswith("dlogq/d"):
        return "dlog_pdf", [p.name for p in d.params].index(label[7:])
    fields = {"cdf": "cdf", "sf": "sf", "log_prob": "log_pdf", "icdf": "icdf"}
    return fields.get(label), None


def _get(d, name: str, i: int | None):
    value = getattr(d, name)
    return value if i is None else value[i]


def _replace(d, name: str, i: int | None, expr):
    if i is None:
        return dataclasses.replace(d, **{name: expr})
    values = list(getattr(d, name))
    values[i] = expr
    return dataclasses.replace(d, **{name: values})


def candidates(label: str, d, raw) -> list[tuple[str, sp.Expr]]:
    """(name, expression) of the alternative forms of formula ``label`` of derivation ``d``
    (``raw``: the same derivation without the rewrite rules, or None)."""
    from irtgen.derive import simplify
    from irtgen.rewrite import stabilize

    name, i = _field(label, d)
    if name is None:
        return []
    out = []
    if raw is not None and _get(raw, name, i) is not None:
        out.append(("rules off", _get(raw, name, i)))
    if name == "cdf":
        out.append(("survival form", stabilize(1 - d.sf)))
    elif name == "sf":
        out.append(("survival form", stabilize(1 - d.cdf)))
    elif name == "log_pdf":
        out.append(("log space", stabilize(sp.log(d.pdf))))
    elif name == "implicit":
        p = d.params[i]
        out.append(("survival form", stabilize(simplify(sp.diff(d.sf, p) / d.pdf))))
        out.append(("log space", stabilize(-d.dcdf[i] * sp.exp(-d.log_pdf))))
    elif name == "dlog_pdf":
        p = d.params[i]
        out.append(("log space", stabilize(simplify(sp.diff(d.pdf, p) / d.pdf))))
    elif name == "icdf" and d.icdf is not None:
        out.append(("numeric inversion", None))
    current = _get(d, name, i)
    return [(n, e) for n, e in out if e != current]


def _score(report, label: str) -> float:
    """Worst error of formula ``label`` relative to the tolerance, over the dtypes."""
    fe = report.formulas[label]
    return max((fe.max(dt) / tol for dt, tol in report.tolerance.items()), default=0.0)


def improve(derivation, report, audit_module, seconds: float = SECONDS):
    """(derivation, report, choices): for each formula of ``report`` above its tolerance, the
    most accurate of its alternative forms (``audit_module(derivation)`` audits one)."""
    from irtgen.derive import derive

    failing = sorted({w.formula for _, w in report.failures()})
    if not failing:
        return derivation, report, []
    t0 = time.perf_counter()
    try:
        raw = derive(derivation.spec, rewrite=False)
    except Exception:  # noqa: BLE001 - no raw form: the other candidates still apply
        raw = None
    choices = []
    for label in failing:
        best = _score(report, label)
        choice = Choice(label, "as derived", best, best, 0)
        name, i = _field(label, derivation)
        if name is None:
            choices.append(choice)
            continue
        for form, expr in candidates(label, derivation, raw):
            if time.perf_counter() - t0 > seconds:
                break
            trial = _replace(derivation, name, i, expr)
            try:
                trial_report = audit_module(trial)
            except Exception:  # noqa: BLE001 - a form that cannot be generated or run
                continue
            choice.tried += 1
            score = _score(trial_report, label)
            if score < best:
                best, derivation, report = score, trial, trial_report
                choice.form, choice.after = form, score
        choices.append(choice)
    return derivation, report, choices
