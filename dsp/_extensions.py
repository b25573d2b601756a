"""Numba's extensions and array library, loaded on import of :mod:`dsp` (its first module),
with two optional imports of SciPy held back that cost 0.6 s of every start-up (``melgand
say``) and serve nothing here:

- rocket-fft (``np.fft`` inside kernels), loaded as a numba extension, imports
  ``scipy.fft`` where installed to register ``scipy.fft`` overloads no kernel calls;
- numba's array library probes for a BLAS by importing ``scipy.linalg.cython_blas``, only
  to pick one inner-product helper (``np.dot`` itself still imports it when compiled).

A ``None`` in ``sys.modules`` makes those imports fail, which both allow for; afterwards
both modules import normally, for whoever wants them.
"""

from __future__ import annotations

import sys

HELD_BACK = ("scipy.fft", "scipy.linalg.cython_blas")


def load() -> None:
    hidden = [m for m in HELD_BACK if m not in sys.modules]
    for m in hidden:
        sys.modules[m] = None  # type: ignore[assignment]
    try:
        import numba.np.arraymath  # noqa: F401
        from numba.core import entrypoints

        entrypoints.init_all()
    finally:
        for m in hidden:
            del sys.modules[m]


load()
