"""Child processes in tests, with deadlines that fire on their own.

Reading a child's stdout line by line blocks for as long as the child is
silent: a deadline checked between lines never fires for a child that hangs
without printing. A reader thread feeds a queue instead, and waiting on the
queue times out whatever the child does.
"""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from collections.abc import Callable


class LineWatcher:
    """Collects a child's stdout lines in the background."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        thread.start()

    def _read(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            self.lines.put(line)
        self.lines.put(None)  # end of output

    def wait_for(self, predicate: Callable[[str], bool], timeout: float) -> str:
        """The first line satisfying ``predicate``; AssertionError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(remaining, 0.01))
            except queue.Empty:
                raise AssertionError(f"no matching line within {timeout} s; "
                                     f"last lines: {self.seen[-5:]}") from None
            if line is None:
                raise AssertionError(f"child ended without a matching line: {self.seen[-5:]}")
            self.seen.append(line)
            if predicate(line):
                return line
