"""The terminal under the app: no start without one, a hang-up noticed however it came, and a
whole new frame after Ctrl+Z and `fg`."""

from __future__ import annotations

import asyncio
import functools
import os
import select
import signal
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from tui.errors import PROG

if TYPE_CHECKING:
    from textual.app import App
    from textual.driver import Driver

STREAMS = (("stdin", 0), ("stdout", 1), ("stderr", 2))
"""What the app needs to be terminals: it reads keys from stdin, paints on stderr, and says how
to come back to a detached run on stdout."""


def missing_terminal() -> str | None:
    """The sentence refusing to start when a standard stream is not a terminal, else None."""
    for name, fd in STREAMS:
        try:
            if os.isatty(fd):
                continue
        except OSError:  # closed
            pass
        return (
            f"the app needs a terminal, and its {name} is not one; `{PROG} train` trains "
            f"without one, `{PROG} ps` lists live trainings and `{PROG} stop RUN` ends one."
        )
    return None


class TerminalWatch:
    """Tells this process SIGHUP when its terminal hangs up, however that happened.

    A terminal closed from the outside (a tmux session killed, an SSH connection dropped) sends
    SIGHUP only to the session it controls; a process in a session of its own (`su -c`,
    `setsid`) gets nothing, and Textual's input thread then spins on end-of-file for ever. The
    kernel does mark the file hung up, which `poll` reports without reading a byte: this thread
    sleeps in `poll` (no cost while the terminal lives) and then raises the very signal the
    app already handles by detaching.
    """

    def __init__(self, fds: tuple[int, ...], on_gone: Callable[[], None] | None = None) -> None:
        self.fds = fds
        self.on_gone = on_gone or functools.partial(os.kill, os.getpid(), signal.SIGHUP)
        self._stopped = threading.Event()
        # Written to by `stop`, so that leaving the app never waits on the watch.
        self._wake_read, self._wake_write = os.pipe()
        self._thread = threading.Thread(target=self._watch, name="terminal-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """End the watch (at once: it is woken, not waited for), and close its pipe."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        os.write(self._wake_write, b"x")
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
        os.close(self._wake_read)
        os.close(self._wake_write)

    def _watch(self) -> None:
        poller = select.poll()
        for fd in self.fds:
            # No events asked for: hang-up, error and a closed descriptor are always reported.
            poller.register(fd, 0)
        poller.register(self._wake_read, select.POLLIN)
        poller.poll()
        if not self._stopped.is_set():
            self.on_gone()


def terminal_driver() -> type[Driver] | None:
    """Textual's Linux driver with the terminal watched and a full repaint after a resume, or
    None where Textual uses another driver."""
    if sys.platform == "win32":
        return None
    from textual.drivers.linux_driver import LinuxDriver

    class TerminalDriver(LinuxDriver):
        """Textual's driver, watched for a hang-up while it holds the terminal."""

        _watch: TerminalWatch | None = None

        def start_application_mode(self) -> None:
            super().start_application_mode()  # type: ignore[no-untyped-call]
            # A SIGCONT without a SIGTSTP before it (`kill -STOP`, `kill -CONT`) starts
            # application mode again without stopping it: one watch, not two.
            if self._watch is not None:
                self._watch.stop()
            painted_on = () if self._file is None else (self._file.fileno(),)
            self._watch = TerminalWatch((self.fileno, *painted_on))
            self._watch.start()

        def stop_application_mode(self) -> None:
            if self._watch is not None:
                self._watch.stop()
                self._watch = None
            super().stop_application_mode()

        def resume_application_mode(self) -> None:
            super().resume_application_mode()
            # Back from Ctrl+Z and `fg` on a blank alternate screen, while Textual's compositor
            # believes every cell still painted: only a full frame brings the screen back.
            # Called from the SIGCONT handler, hence the thread-safe way into the loop.
            app: App[object] = self._app
            asyncio.get_running_loop().call_soon_threadsafe(
                functools.partial(app.refresh, layout=True)
            )

    return TerminalDriver


__all__ = ["TerminalWatch", "missing_terminal", "terminal_driver"]
