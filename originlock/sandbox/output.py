"""Keep what the in-process Lambda functions print, per thread, out of the operator's terminal.

On Lambda a function's stdout goes to CloudWatch Logs; in the sandbox the functions run in
threads of this process, whose stdout is the terminal the demo prints its report to. While
the sandbox runs, ``sys.stdout`` is a :class:`ThreadOutput`: text written by a thread that is
running a handler is kept (the demo scans it for token values: invariant 2), everything else
passes through. Powertools loggers bind ``sys.stdout`` when first configured, so loggers
configured before the sandbox started are pointed at it too, and pointed back at exit.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO


class ThreadOutput(io.TextIOBase):
    """A ``sys.stdout`` stand-in that keeps the output of threads marked as Lambda threads.

    Parameters
    ----------
    fallback:
        Where other threads' output goes while this object is ``sys.stdout``.
    keep:
        At most this many captured chunks are kept (oldest dropped first), so a sandbox
        left running for hours does not grow without bound.
    """

    def __init__(self, fallback: TextIO, keep: int = 20_000) -> None:
        super().__init__()
        self._fallback = fallback
        self._local = threading.local()
        self._lock = threading.Lock()
        self.captured: deque[str] = deque(maxlen=keep)

    @contextmanager
    def capturing(self) -> Iterator[None]:
        """Keep everything the current thread writes inside the block."""
        previous = getattr(self._local, "chunks", None)
        chunks: list[str] = []
        self._local.chunks = chunks
        try:
            yield
        finally:
            self._local.chunks = previous
            if chunks:
                with self._lock:
                    self.captured.append("".join(chunks))

    def _target(self) -> TextIO:
        # Once uninstalled, a logger still bound to this object writes where stdout is now.
        return self._fallback if sys.stdout is self else sys.stdout

    def write(self, text: str) -> int:
        chunks = getattr(self._local, "chunks", None)
        if chunks is not None:
            chunks.append(text)
            return len(text)
        return self._target().write(text)

    def flush(self) -> None:
        if getattr(self._local, "chunks", None) is None:
            self._target().flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def text(self) -> str:
        with self._lock:
            return "".join(self.captured)


class OutputCapture:
    """Install a :class:`ThreadOutput` as ``sys.stdout`` and point Powertools loggers at it."""

    def __init__(self) -> None:
        self.output: ThreadOutput | None = None
        self._saved_stdout: TextIO | None = None
        self._rebound: list[tuple[logging.StreamHandler[Any], Any]] = []

    def install(self) -> ThreadOutput:
        self._saved_stdout = sys.stdout
        self.output = ThreadOutput(sys.stdout)
        sys.stdout = self.output  # type: ignore[assignment]
        for logger in list(logging.Logger.manager.loggerDict.values()):
            handler = getattr(logger, "powertools_handler", None)
            if isinstance(handler, logging.StreamHandler):
                previous = handler.setStream(self.output)
                if previous is not None:
                    self._rebound.append((handler, previous))
        return self.output

    def bind_services(self, services: tuple[str, ...]) -> None:
        """Make the Powertools loggers of *services* write to the capture, configuring them
        now if they are not yet: a logger configured later would bind whatever ``sys.stdout``
        is at that moment (``CliRunner`` swaps it during an invocation, then closes it)."""
        from aws_lambda_powertools import Logger

        assert self.output is not None
        for service in services:
            if getattr(logging.getLogger(service), "powertools_handler", None) is None:
                Logger(service=service, stream=self.output)  # type: ignore[arg-type]

    def uninstall(self) -> None:
        for handler, stream in self._rebound:
            handler.setStream(stream)
        self._rebound = []
        if self._saved_stdout is not None and sys.stdout is self.output:
            sys.stdout = self._saved_stdout
        self._saved_stdout = None
