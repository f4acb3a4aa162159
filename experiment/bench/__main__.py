"""``python -m experiment.bench NAME [args]``: runs ``benchmarks/`` of the repository checkout (``python -m benchmarks``).

The benchmarks are tooling, not part of the installed package, so they are found beside this package's source
tree; an install without the checkout gets one line saying so (exit 2) instead of an ImportError.
"""

from __future__ import annotations

import sys
from pathlib import Path

#: the repository checkout this package was loaded from (``benchmarks/__main__.py`` -> repository root)
CHECKOUT = Path(__file__).resolve().parents[2]


def main() -> None:
    if not (CHECKOUT / "benchmarks" / "__main__.py").is_file():
        sys.exit(f"python -m experiment.bench: the benchmarks are not installed with navitune; run it from a "
                 f"checkout of the repository (no benchmarks/ beside {CHECKOUT / 'experiment'})")
    if str(CHECKOUT) not in sys.path:
        sys.path.insert(0, str(CHECKOUT))
    from benchmarks.__main__ import main as run

    run()


if __name__ == "__main__":
    main()
