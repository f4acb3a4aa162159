"""Benchmarks (``python -m experiment.bench NAME`` or ``python -m benchmarks NAME`` from the repository root): ``sim`` (in ``__main__``), ``sweep``, ``kfp``, ``kfp-scale``
and ``retune``; ``machine`` describes where they ran, ``mariadb`` starts a throw-away study database."""
