"""Whether a process of this host still runs, by its pid.

It exists apart because two unrelated jobs ask it about a sweeper that may have been killed: the disk reserve
(:mod:`.disk_reserve`: a dead sweeper's reserve file is removed) and the sweeper's cooperation (a trial whose
owner on this host is dead is stale). Standard library only.
"""

from __future__ import annotations

import os


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
