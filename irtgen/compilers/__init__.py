"""The two compilers of the one source (irtgen.scalar): numba for the CPU, Triton for the GPU.

``bind`` turns a ``@scalar`` function into a numba or a Triton function; ``numba_tl`` is the
``tl`` that scalar code sees under numba; ``cpu`` and ``gpu`` hold the kernel skeletons, written
once and specialised on a family's scalar formulas.
"""
