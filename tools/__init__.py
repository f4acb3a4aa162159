"""Repository tooling, not installed with navitune: stand-ins of cloud services for the tests and benchmarks.

Imported from a checkout of the repository (tests and ``benchmarks/`` run from its root); installed code
never imports it (import-linter holds that, see ``docs/architecture.md``).
"""
