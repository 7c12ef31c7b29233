"""End a DDP rank whose launcher died, instead of leaving it blocked in a collective.

Lightning's launcher (local rank 0 of a node) kills its children when one of them dies; nothing covers the launcher
itself dying (OOM-killed, ``kill -9``): its children then wait in the process-group set-up or the next all-reduce,
holding their memory, until the 30-minute collective timeout or forever. This module imports only the standard
library, so ``python -m fer_zoo`` starts the watchdog before torch and Lightning load: a rank whose launcher dies
while it is still importing ends too.
"""

from __future__ import annotations

import os
import sys
import threading
import time

#: the pid of the process that launched this node's ranks (set by local rank 0, inherited by the ranks it starts)
LAUNCHER_ENV = "FER_ZOO_LAUNCHER_PID"


def start_orphan_watchdog(period: float = 2.0) -> bool:
    """In a rank started by a launcher, exit with a one-line message once the launcher is gone; True if started.

    Local rank 0 (``LOCAL_RANK`` unset or 0) records its own pid in ``FER_ZOO_LAUNCHER_PID`` for the ranks it will
    start. A rank with a non-zero ``LOCAL_RANK`` (Lightning's children, torchrun's workers) compares its parent with
    that pid (its parent at start when the variable is absent, as under torchrun), at once and then every
    ``period`` seconds: a launcher that died before this rank even started watching is caught too.
    """
    if os.environ.get("LOCAL_RANK", "0") in ("", "0"):
        os.environ[LAUNCHER_ENV] = str(os.getpid())
        return False
    if any(thread.name == "fer-zoo-orphan-watchdog" for thread in threading.enumerate()):
        return True  # started already (``python -m fer_zoo`` starts it before the CLI's own call)
    launcher = int(os.environ.get(LAUNCHER_ENV) or os.getppid())
    rank = os.environ.get("RANK", os.environ["LOCAL_RANK"])

    def watch() -> None:
        while True:
            if os.getppid() != launcher:
                sys.stderr.write(f"fer-zoo: rank {rank}: its launcher (pid {launcher}) ended; stopping this rank too\n")
                sys.stderr.flush()
                os._exit(1)
            time.sleep(period)

    threading.Thread(target=watch, daemon=True, name="fer-zoo-orphan-watchdog").start()
    return True
