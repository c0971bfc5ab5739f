"""``Factorized``: a joint distribution of independent univariate parts of different families.

For parts q_1, ..., q_n (each univariate, of any family: irtgen's built-ins, a family built with
``irtgen build`` or ``irtgen.load``, or a torch.distributions distribution) the joint density and
distribution function of z = (z_1, ..., z_n) are

    log q(z) = Σ_i log q_i(z_i),        F(z) = Π_i F_i(z_i),

and a draw is the stack of one draw from each part. Each coordinate keeps its part's
reparameterization, so the gradient of a sample with respect to the parameters θ_i of part i is
that part's own: dz_i/dθ_i = -(∂F_i/∂θ_i)(z_i)/q_i(z_i) for irtgen's families (the implicit
gradient), and whatever the part's ``rsample`` gives for torch's; dz_j/dθ_i = 0 for j ≠ i.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Iterable

import torch
from torch.distributions import Distribution, constraints

from irtgen.runtime import launch

__all__ = ["Factorized"]


class _CoordinateCat(constraints.cat):
    """``constraints.cat(cseq, dim=-1, lengths=[1] * n)`` whose ``check`` gives coordinate i of
    the last dim to ``cseq[i]`` as ``value[..., i]`` (the coordinate selected, shape
    ``sample_shape + batch_shape``) rather than narrowed to ``value[..., i:i + 1]``.

    For a constant support (positive, unit_interval, ...) both are the same. A support that
    depends on the parameters (torch's ``Uniform(low, high)``, an irtgen family whose support ends
    are parameters) compares the value with parameters of shape ``batch_shape``, which broadcast
    against the selected coordinate but not against a trailing dimension of length 1.
    """

    def __init__(self, cseq):
        cseq = list(cseq)
        super().__init__(cseq, dim=-1, lengths=[1] * len(cseq))

    def check(self, value):
        if value.dim() < 1 or value.size(-1) != len(self.cseq):
            raise ValueError(
                f"expected a last dimension of size {len(self.cseq)}, got shape "
                f"{tuple(value.shape)}"
            )
        checks = [c.check(value[..., i]) for i, c in enumerate(self.cseq)]
        return torch.stack(torch.broadcast_tensors(*checks), dim=-1)

    def __repr__(self) -> str:
        return f"CoordinateCat({', '.join(repr(c) for c in self.cseq)})"


def _check_parts(parts) -> list[Distribution]:
    """The parts as a list, or ValueError naming what is wrong with them."""
    if isinstance(parts, Distribution) or not isinstance(parts, Iterable):
        raise ValueError(
            "Factorized takes a list of univariate distributions, e.g. "
            f"Factorized([Gamma(...), Normal(...)]), not {type(parts).__name__}"
        )
    parts = list(parts)
    if not parts:
        raise ValueError("Factorized needs at least one distribution, got an empty list")
    for i, part in enumerate(parts):
        if not isinstance(part, Distribution):
            raise ValueError(
                f"Factorized: part {i} is a {type(part).__name__}, not a "
                "torch.distributions.Distribution"
            )
        if part.event_shape != ():
            raise ValueError(
                f"Factorized: part {i} ({type(part).__name__}) has event_shape "
                f"{tuple(part.event_shape)}; every part must be univariate (event_shape ())"
            )
    return parts


def _joint_batch_shape(parts: list[Distribution]) -> torch.Size:
    shapes = [p.batch_shape for p in parts]
    try:
        return launch.broadcast_shapes(*shapes)
    except RuntimeError:
        raise ValueError(
            "Factorized: the parts' batch shapes "
            f"{', '.join(str(tuple(s)) for s in shapes)} do not broadcast"
        ) from None


def _takes_generator(method) -> bool:
    """Whether a bound ``rsample``/``sample`` accepts ``generator=`` (irtgen's do, torch's not)."""
    try:
        return "generator" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


@contextlib.contextmanager
def _global_rng_from(generator: torch.Generator):
    """Run the block with torch's global RNG seeded from ``generator``, then restore it.

    A seed is drawn from ``generator`` (advancing it), the CPU generator and, where CUDA is in
    use, the CUDA generators are seeded with it inside ``torch.random.fork_rng``, so a part that
    only draws from the global RNG gives the same draw for the same generator state and leaves the
    global stream as it was.
    """
    seed = int(torch.randint(0, 2**62, (), generator=generator, device=generator.device))
    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
    devices = list(range(torch.cuda.device_count())) if cuda else []
    with torch.random.fork_rng(devices=devices):
        torch.default_generator.manual_seed(seed)
        if cuda:
            torch.cuda.manual_seed_all(seed)
        yield


def _stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Stack along a new last dim, broadcast, in the promoted dtype (float32 with float64 gives
    float64, as ``torch.promote_types``)."""
    tensors = [torch.as_tensor(t) for t in tensors]
    dtype = functools.reduce(torch.promote_types, (t.dtype for t in tensors))
    return torch.stack(torch.broadcast_tensors(*(t.to(dtype) for t in tensors)), dim=-1)


class Factorized(Distribution):
    """Independent univariate distributions of any families, as one joint distribution.

    ``Factorized([d_1, ..., d_n])`` has ``event_shape (n,)`` and ``batch_shape`` the broadcast
    of the parts' batch shapes; coordinate i of an event is distributed as ``d_i``:

        log q(z) = Σ_i log q_i(z_i),    F(z) = Π_i F_i(z_i),
        E[z]_i = E[z_i],    Var[z]_i = Var[z_i],    H = Σ_i H_i.

    Args:
        parts: univariate ``torch.distributions.Distribution`` objects (event_shape ``()``) whose
            batch shapes broadcast: irtgen's families, families built with ``irtgen build`` or
            ``irtgen.load``, or torch.distributions ones.
        validate_args: check values given to ``log_prob`` and ``cdf`` against ``support``.

    Attributes:
        parts: the list of parts, as given.

    Each part is expanded to the joint batch shape before it draws, so every batch element gets
    its own draw even where a part's batch shape is smaller. ``rsample`` keeps each part's
    reparameterization (dz_i/dθ_i = -(∂F_i/∂θ_i)/q_i for irtgen's families), so gradients reach
    every part's parameters. Results of parts with different dtypes are stacked in the promoted
    dtype (float32 and float64 give float64); ``log_prob`` and ``cdf`` promote the same way.

    ``rsample(sample_shape, generator=None)`` and ``sample`` pass ``generator`` to the parts
    whose methods take one (irtgen's); a part whose method does not (torch's) draws from torch's
    global RNG seeded from the generator inside ``torch.random.fork_rng``, so the same generator
    state gives the same joint draw and the global stream is left as it was.
    """

    arg_constraints: dict = {}

    def __init__(self, parts, validate_args=None):
        self.parts = _check_parts(parts)
        batch_shape = _joint_batch_shape(self.parts)
        # The parts as drawn and evaluated: expanded to the joint batch shape.
        self._batch_parts = [
            p if p.batch_shape == batch_shape else p.expand(batch_shape) for p in self.parts
        ]
        super().__init__(batch_shape, torch.Size((len(self.parts),)), validate_args=validate_args)

    @property
    def has_rsample(self) -> bool:
        """Whether every part has ``rsample``."""
        return all(p.has_rsample for p in self.parts)

    @property
    def support(self) -> constraints.Constraint:
        """Coordinate i in part i's support, for every i (an event constraint, event_dim 1):
        ``independent(cat([s_1, ..., s_n], dim=-1, lengths=[1] * n), 1)``."""
        return constraints.independent(_CoordinateCat(p.support for p in self._batch_parts), 1)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(Factorized, _instance)
        batch_shape = torch.Size(batch_shape)
        new.parts = [p.expand(batch_shape) for p in self.parts]
        new._batch_parts = new.parts
        super(Factorized, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def _draw(self, method: str, sample_shape, generator) -> torch.Tensor:
        """Stack one ``method`` ("rsample" or "sample") draw of every part.

        A part whose method takes ``generator=`` gets it; a part whose method does not draws from
        torch's global RNG, seeded from ``generator`` when one is given (``_global_rng_from``).
        The parts draw in order, so one generator state gives one joint draw.
        """
        sample_shape = torch.Size(sample_shape)
        draws = []
        for part in self._batch_parts:
            fn = getattr(part, method)
            if _takes_generator(fn):
                draws.append(fn(sample_shape, generator=generator))
            elif generator is None:
                draws.append(fn(sample_shape))
            else:
                with _global_rng_from(generator):
                    draws.append(fn(sample_shape))
        return _stack(draws)

    def rsample(self, sample_shape=(), generator: torch.Generator | None = None):
        """Reparameterized draws of shape ``sample_shape + batch_shape + (n,)``; coordinate i is
        drawn by part i, with its gradient dz_i/dθ_i."""
        if not self.has_rsample:
            missing = [type(p).__name__ for p in self.parts if not p.has_rsample]
            raise NotImplementedError(
                f"Factorized.rsample: parts without rsample: {', '.join(missing)}"
            )
        return self._draw("rsample", sample_shape, generator)

    def sample(self, sample_shape=(), generator: torch.Generator | None = None):
        """Draws of shape ``sample_shape + batch_shape + (n,)``, without gradients."""
        with torch.no_grad():
            return self._draw("sample", sample_shape, generator)

    def _coordinates(self, value) -> torch.Tensor:
        value = torch.as_tensor(value)
        if value.dim() < 1 or value.size(-1) != len(self.parts):
            raise ValueError(
                f"Factorized: expected values with a last dimension of size {len(self.parts)}, "
                f"got shape {tuple(value.shape)}"
            )
        if self._validate_args:
            self._validate_sample(value)
        return value

    def log_prob(self, value):
        """log q(z) = Σ_i log q_i(z_i), of shape ``value.shape[:-1]`` broadcast with
        ``batch_shape``."""
        value = self._coordinates(value)
        terms = [p.log_prob(value[..., i]) for i, p in enumerate(self._batch_parts)]
        return functools.reduce(torch.add, terms)

    def cdf(self, value):
        """F(z) = P(Z_1 ≤ z_1, ..., Z_n ≤ z_n) = Π_i F_i(z_i)."""
        value = self._coordinates(value)
        terms = [p.cdf(value[..., i]) for i, p in enumerate(self._batch_parts)]
        return functools.reduce(torch.mul, terms)

    @property
    def mean(self):
        """(E[z_1], ..., E[z_n]), of shape ``batch_shape + (n,)``."""
        return _stack([p.mean for p in self._batch_parts])

    @property
    def variance(self):
        """(Var[z_1], ..., Var[z_n]) (the covariance is diagonal)."""
        return _stack([p.variance for p in self._batch_parts])

    def entropy(self):
        """H = Σ_i H_i, of shape ``batch_shape``."""
        return functools.reduce(torch.add, [p.entropy() for p in self._batch_parts])

    def __repr__(self) -> str:
        return f"{type(self).__name__}([{', '.join(repr(p) for p in self.parts)}])"
