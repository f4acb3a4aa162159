"""Benchmarks (``python -m experiment.bench NAME``): ``sim`` (in ``__main__``), ``sweep``, ``kfp``, ``kfp-scale``
and ``retune``; ``machine`` describes where they ran, ``mariadb`` starts a throw-away study database."""
