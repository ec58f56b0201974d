"""How ``sleepstream ward`` starts a worker: ``python -m sleepstream.ward_worker live ARGS``
runs exactly ``sleepstream live ARGS`` (:func:`sleepstream.cli.main`), after asking Linux
to send it SIGTERM when the ward that started it ends (``PR_SET_PDEATHSIG``), so a ward
that is killed leaves no worker scoring on (a new ward on the same folder would double
it). Done here, after ``exec``, rather than in a ``preexec_fn``, which can deadlock a
child forked from a process with threads (the ward has a reader thread per worker).

The ward's process id comes in ``SLEEPSTREAM_WARD_PID``
(:data:`scorer.ward.worker.WARD_PID_ENV`, set where the ward starts its workers): when the
parent is already another process (the ward died before the request took effect), the
worker ends at once.
"""
from __future__ import annotations

import logging
import os
import signal
import sys

from scorer.ward.worker import WARD_PID_ENV

PR_SET_PDEATHSIG = 1

log = logging.getLogger(__name__)


def end_with_parent() -> bool:
    """Ask for SIGTERM when the parent ends (Linux only).

    Returns
    -------
    bool
        False when the ward is gone already (the parent is not the process that
        ``SLEEPSTREAM_WARD_PID`` names); True otherwise, also when that is not set.
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))
        except (OSError, AttributeError):  # pragma: no cover - no prctl: the ward stops its workers itself
            log.debug("prctl(PR_SET_PDEATHSIG) unavailable")
    ward = os.environ.get(WARD_PID_ENV, "")
    return not (ward.isdigit() and os.getppid() != int(ward))


def main(argv: list[str] | None = None) -> int:
    """Run ``sleepstream ARGS`` as a ward's worker, ending with the ward.

    Parameters
    ----------
    argv : list of str, optional
        The command line after ``sleepstream`` (``live ...``); None reads ``sys.argv``.

    Returns
    -------
    int
        The command's exit code (:func:`sleepstream.cli.main`); 0 without running it when
        the ward is gone already.
    """
    if not end_with_parent():
        return 0
    from sleepstream.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
