"""A per-file time limit: one slow or hostile file becomes a finding, the others still run."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class TimedOut(BaseException):
    """The file's time is up. A BaseException, so that no loader's ``except Exception`` hides it."""


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Raise :class:`TimedOut` inside the block after ``seconds`` of wall time.

    Uses SIGALRM, so it applies in the main thread of POSIX processes; elsewhere the block runs
    unbounded (the readers' size limits still hold).
    """
    usable = (
        seconds is not None
        and seconds > 0
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return

    def expire(signum: int, frame: FrameType | None) -> None:
        raise TimedOut()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
