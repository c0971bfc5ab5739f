"""``irtgen.load(spec)``: build into a content-addressed cache, import, reuse."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import irtgen
import irtgen.build

SPECS = Path(__file__).resolve().parent / "specs"
GOMPERTZ_SPEC = (SPECS / "gompertz.py").read_text()

TWO_SPEC = (SPECS / "frechet_loglogistic.py").read_text()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("IRTGEN_CACHE_DIR", str(root))
    monkeypatch.delenv("IRTGEN_BACKEND", raising=False)
    return root


@pytest.fixture
def gompertz_spec(tmp_path):
    path = tmp_path / "gompertz.py"
    path.write_text(GOMPERTZ_SPEC)
    return path


def entries(cache_root):
    """Finished cache entries (temporary build folders start with a dot; ``audit/`` holds the
    accuracy audit's reports, irtgen.build._cached_audit)."""
    if not cache_root.exists():
        return []
    return sorted(
        p for p in cache_root.iterdir() if not p.name.startswith(".") and p.name != "audit"
    )


def leftovers(cache_root):
    if not cache_root.exists():
        return []
    return sorted(p for p in cache_root.iterdir() if p.name.startswith("."))


def forbid_builds(monkeypatch):
    def no_build(*args, **kwargs):
        raise AssertionError("load rebuilt a spec that was in the cache")

    monkeypatch.setattr(irtgen.build, "build_spec", no_build)


def test_load_returns_classes_by_name(cache, gompertz_spec):
    ns = irtgen.load(gompertz_spec)
    cls = ns.Gompertz
    assert cls.__name__ == "Gompertz"
    assert issubclass(cls, torch.distributions.Distribution)
    assert cls.has_rsample
    assert sorted(vars(ns)) == ["Gompertz"]
    assert len(entries(cache)) == 1 and leftovers(cache) == []
    d = cls(torch.tensor(1.0), torch.tensor(0.5))
    x = d.sample((100,))
    assert x.shape == (100,) and bool((x >= 0).all())


def test_load_spec_with_two_distributions(cache, tmp_path):
    spec = tmp_path / "two.py"
    spec.write_text(TWO_SPEC)
    ns = irtgen.load(str(spec))  # a str path works too
    assert sorted(vars(ns)) == ["Frechet", "LogLogistic"]
    for cls in (ns.Frechet, ns.LogLogistic):
        assert issubclass(cls, torch.distributions.Distribution) and cls.has_rsample
    assert len(entries(cache)) == 1
    files = sorted(p.name for p in entries(cache)[0].glob("*.py"))
    assert files == ["frechet.py", "log_logistic.py"]


def test_second_load_reuses_cache(cache, gompertz_spec, monkeypatch):
    first = irtgen.load(gompertz_spec)
    (entry,) = entries(cache)
    stamp = {p.name: p.stat().st_mtime_ns for p in entry.iterdir()}

    forbid_builds(monkeypatch)
    second = irtgen.load(gompertz_spec)
    assert second.Gompertz is first.Gompertz
    assert sys.modules[first.Gompertz.__module__] is sys.modules[second.Gompertz.__module__]
    assert entries(cache) == [entry] and leftovers(cache) == []
    assert {p.name: p.stat().st_mtime_ns for p in entry.iterdir()} == stamp


def test_cache_is_reused_by_a_new_session(cache, gompertz_spec, monkeypatch):
    """A fresh interpreter (no module imported yet) imports the cached build without building."""
    irtgen.load(gompertz_spec)
    for name in [m for m in sys.modules if m.startswith("irtgen_loaded_")]:
        monkeypatch.delitem(sys.modules, name)
    forbid_builds(monkeypatch)
    ns = irtgen.load(gompertz_spec)
    assert ns.Gompertz.__name__ == "Gompertz"
    assert len(entries(cache)) == 1


def test_editing_the_spec_gives_a_new_entry(cache, gompertz_spec):
    old = irtgen.load(gompertz_spec).Gompertz
    text = gompertz_spec.read_text()
    edited = text.replace("sp.exp(b * z) - 1", "sp.exp(2 * b * z) - 1")
    assert edited != text
    gompertz_spec.write_text(edited)
    new = irtgen.load(gompertz_spec).Gompertz
    assert new is not old
    assert len(entries(cache)) == 2 and leftovers(cache) == []
    # the new class computes the edited cdf: F(1) = 1 - exp(-(e^(2b) - 1)) at eta = b = 1
    one = torch.tensor(1.0, dtype=torch.float64)
    got_old = old(one, one).cdf(one)
    got_new = new(one, one).cdf(one)
    torch.testing.assert_close(got_old, -torch.expm1(-torch.expm1(one)))
    torch.testing.assert_close(got_new, -torch.expm1(-torch.expm1(2 * one)))


def test_rsample_gradients_flow_to_parameters(cache, gompertz_spec):
    Gompertz = irtgen.load(gompertz_spec).Gompertz
    torch.manual_seed(0)
    eta = torch.tensor([0.5, 1.0, 3.0], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([2.0, 1.0, 0.25], dtype=torch.float64, requires_grad=True)
    x = Gompertz(eta, b).rsample((2000,))
    assert x.shape == (2000, 3) and x.requires_grad
    (x**2).mean().backward()
    assert eta.grad is not None and b.grad is not None
    assert bool(torch.isfinite(eta.grad).all()) and bool(torch.isfinite(b.grad).all())
    # implicit gradients in closed form: dz/deta = -(e^(bz) - 1)/(eta b e^(bz)), dz/db = -z/b
    xd, e, bb = x.detach(), eta.detach(), b.detach()
    dz_deta = -torch.expm1(bb * xd) / (e * bb * torch.exp(bb * xd))
    dz_db = -xd / bb
    torch.testing.assert_close(
        eta.grad, (2 * xd * dz_deta).sum(0) / x.numel(), rtol=1e-6, atol=1e-10
    )
    torch.testing.assert_close(b.grad, (2 * xd * dz_db).sum(0) / x.numel(), rtol=1e-6, atol=1e-10)
    assert bool((eta.grad < 0).all()) and bool((b.grad < 0).all())


def test_load_bad_spec_raises_and_caches_nothing(cache, tmp_path):
    spec = tmp_path / "bad.py"
    declared = 'b = sp.Symbol("b", positive=True)'
    undeclared = declared + '\nq = sp.Symbol("q", positive=True)'  # used, but not a parameter
    text = GOMPERTZ_SPEC.replace(declared, undeclared).replace("exp(b * z)", "exp(b * q * z)")
    assert "q * z" in text
    spec.write_text(text)
    with pytest.raises(irtgen.BuildError, match=r"bad\.py.*Gompertz.*\bq\b"):
        irtgen.load(spec)
    assert entries(cache) == [] and leftovers(cache) == []


def test_load_missing_file(cache, tmp_path):
    with pytest.raises(irtgen.BuildError, match="nothere.py"):
        irtgen.load(tmp_path / "nothere.py")
