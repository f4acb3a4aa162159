"""``python -m experiment.bench NAME``: the documented way to run a benchmark, kept as a thin entry point.

The benchmarks themselves live in the repository's top-level ``benchmarks/`` (tooling, not installed with the
package); this entry finds that folder from the checkout this package was loaded from.
"""
