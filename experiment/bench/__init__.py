"""Benchmarks (``python -m experiment.bench NAME``): ``sim`` (in ``__main__``), ``sweep``, ``kfp`` and ``retune``."""
