"""Named crash points for the fault-injection tests of multi-step writes (the registry decision).

``NAVITUNE_CRASH_AT=<name>`` makes the process kill itself with SIGKILL when it reaches ``crash_point(<name>)``:
exactly what ``kill -9`` at that moment would leave. Unset (always, outside the tests) it costs one dict lookup.
"""

from __future__ import annotations

import os
import signal

ENV_CRASH_AT = "NAVITUNE_CRASH_AT"


def crash_point(name: str) -> None:
    if os.environ.get(ENV_CRASH_AT) == name:
        os.kill(os.getpid(), signal.SIGKILL)
