"""Dataset readers and synthetic writers.

Readers return a lazy :class:`fearkd.recordings.Recordings`:

- :func:`fearkd.datasets.deap.load_deap` (DEAP preprocessed, ``.dat`` or ``.mat``);
- :func:`fearkd.datasets.ascertain.load_ascertain` (ASCERTAIN raw release);
- :func:`fearkd.datasets.generic.load_generic` (a user's recordings described in a file).

:mod:`fearkd.datasets.synthetic` writes synthetic data in the real on-disk formats.
Import the submodules directly; this package imports nothing heavy on its own.
"""
