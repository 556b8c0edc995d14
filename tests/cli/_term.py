"""A pseudo-terminal driver for CLI tests: type into a child process and read its screen.

Stdlib only (``os.openpty`` + ``subprocess``): the child gets the pty as its controlling
terminal (so prompt_toolkit runs in full interactive mode), and reads are bounded by a
deadline with ``select``; nothing here sleeps to wait for readiness.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import time
from collections.abc import Sequence

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[()][A-Za-z0-9]|\x1b[=>78]|\r")


def strip_ansi(text: str) -> str:
    """The visible text of terminal output: escape sequences and carriage returns removed."""
    return _ANSI.sub("", text)


class Terminal:
    """A child process on a pseudo-terminal, read with deadlines.

    ``output`` accumulates everything the child wrote (raw, with escape sequences);
    ``screen`` is the same text with the escape sequences removed.
    """

    def __init__(self, argv: Sequence[str], *, env: dict[str, str] | None = None,
                 cwd: str | None = None, rows: int = 40, cols: int = 160) -> None:
        import fcntl
        import struct
        import termios

        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.proc = subprocess.Popen(
            list(argv), stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd,
            start_new_session=True, close_fds=True,
            # The pty becomes the controlling terminal of the new session.
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
        )
        os.close(slave)
        self.fd = master
        self.output = ""
        self._mark = 0

    @property
    def screen(self) -> str:
        return strip_ansi(self.output)

    def send(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def _read_some(self, timeout: float) -> bool:
        """Read what is available within ``timeout``; False at EOF."""
        ready, _, _ = select.select([self.fd], [], [], max(timeout, 0.0))
        if not ready:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            return False
        if not data:
            return False
        text = data.decode(errors="replace")
        # Answer cursor position requests as a real terminal does (prompt_toolkit asks, and
        # waits, before drawing its first prompt).
        for _ in range(text.count("\x1b[6n")):
            os.write(self.fd, b"\x1b[1;1R")
        self.output += text
        return True

    def expect(self, pattern: str, timeout: float = 15.0) -> re.Match[str]:
        """Wait until ``pattern`` (a regex) shows on the screen after the last match.

        Raises:
            AssertionError: not seen within ``timeout`` s (the message shows the screen).
        """
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            visible = strip_ansi(self.output[self._mark:])
            m = rx.search(visible)
            if m is not None:
                self._mark = len(self.output)
                return m
            left = deadline - time.monotonic()
            if left <= 0 or not self._read_some(left):
                visible = strip_ansi(self.output[self._mark:])
                m = rx.search(visible)
                if m is not None:
                    self._mark = len(self.output)
                    return m
                shown = re.sub(r"\n\s*\n+", "\n", visible)[-3000:]
                raise AssertionError(
                    f"{pattern!r} not seen within {timeout} s; screen since the last match:\n{shown}"
                )

    def wait(self, timeout: float = 15.0) -> int:
        """Drain the output until the child exits; returns its exit code."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._read_some(deadline - time.monotonic()):
            if self.proc.poll() is not None:
                break
        return self.proc.wait(max(deadline - time.monotonic(), 0.1))

    def close(self) -> None:
        """Kill the child's process group (if still running) and close the terminal."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
        os.close(self.fd)
