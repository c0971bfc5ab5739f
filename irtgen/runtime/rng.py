"""Random numbers for samplers, drawn from torch's generators.

Samples are keyed by a 62-bit Philox seed drawn from torch's generator (``philox_seed``) and the
element's index: the scalar variates of irtgen.scalar.random draw Philox4x32-10 words from
(seed, index), the same words in numba's kernels (CPU) and Triton's (GPU), and turn 52 (or 23)
random bits k into the uniform (k + 1/2) 2^-bits, which lies strictly inside (0, 1), so an icdf
never sees 0 or 1. ``torch.manual_seed`` (or a ``generator=``) makes samples reproducible.
"""

from __future__ import annotations

import torch


def default_generator(device: torch.device) -> torch.Generator:
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return torch.cuda.default_generators[index]
    return torch.default_generator


def philox_seed(device: torch.device, generator=None) -> int:
    """A 62-bit Philox seed, advancing ``generator`` (default: the device's)."""
    gen = generator if generator is not None else default_generator(device)
    return int(torch.randint(0, 1 << 62, (), dtype=torch.int64, device=gen.device, generator=gen))
