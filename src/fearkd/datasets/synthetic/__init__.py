"""Synthetic datasets in the real on-disk formats, with learnable affect-driven physiology.

- :func:`write_deap` writes DEAP's preprocessed layout (``.dat`` pickles, ``.mat``, ratings CSV);
- :func:`write_ascertain` writes ASCERTAIN's raw layout.

Both draw their signals from the generative model in
:mod:`fearkd.datasets.synthetic._physio` (described in its docstring).
"""

from .ascertain import write_ascertain
from .deap import write_deap

__all__ = ["write_ascertain", "write_deap"]
