"""Progress while TensorRT builds (minutes on a Nano): elapsed time, and phases where
TensorRT reports them (IProgressMonitor, TensorRT 10+). Ctrl-C stops the build.

TensorRT's build_serialized_network releases the GIL and runs for minutes in C++, and Python
runs signal handlers only on the main thread between bytecodes: so the build runs on a worker
thread (`run_build`) while the main thread waits, receives Ctrl-C and either asks TensorRT to
cancel (monitor, 10+) or raises at once (8.x: the abandoned build's result is never stored)."""
import signal
import sys
import threading
import time
from typing import Any, Callable, Dict, Optional, TextIO


class BuildProgress(object):
    """`with BuildProgress(label) as p:` prints a ticking status line to a TTY, else a line every 30 s."""

    def __init__(self, label, stream=None, enabled=True, interval=None):
        # type: (str, Optional[TextIO], bool, Optional[float]) -> None
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval if interval is not None else (1.0 if self.tty else 30.0)
        self.phase = ""
        self.cancelled = False
        self.cooperative = False       # an IProgressMonitor will pass the cancel request on
        self._stop = threading.Event()
        self._thread = None  # type: Optional[threading.Thread]
        self._started = 0.0
        self._lock = threading.Lock()
        self._previous_handler = None  # type: object
        self._installed = False

    def _on_sigint(self, signum, frame):
        # With a monitor the first Ctrl-C lets TensorRT stop at its next step (run_build then
        # raises); a second one, or any without a monitor, raises here.
        first = not self.cancelled
        self.cancelled = True
        if not (first and self.cooperative):
            raise KeyboardInterrupt()

    def __enter__(self):
        self._started = time.monotonic()
        if threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.signal(signal.SIGINT, self._on_sigint)
            self._installed = True
        if self.enabled:
            self._thread = threading.Thread(target=self._tick, name="build-progress")
            self._thread.daemon = True
            self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        if self._installed:
            signal.signal(signal.SIGINT, self._previous_handler or signal.SIG_DFL)
            self._installed = False
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        if self.enabled:
            outcome = "interrupted" if exc_type is KeyboardInterrupt else ("failed" if exc_type else "done")
            self._write("{}: {} after {}\n".format(self.label, outcome, self.elapsed_text()), final=True)
        return False

    def elapsed(self):
        # type: () -> float
        return time.monotonic() - self._started

    def elapsed_text(self):
        # type: () -> str
        s = int(self.elapsed())
        return "{}:{:02d}".format(s // 60, s % 60)

    def set_phase(self, phase):
        # type: (str) -> None
        with self._lock:
            self.phase = phase

    def _write(self, text, final=False):
        # type: (str, bool) -> None
        if self.tty:
            self.stream.write("\r\x1b[K" + (text if final else text.rstrip("\n")))
        else:
            self.stream.write(text)
        self.stream.flush()

    def _tick(self):
        # type: () -> None
        while not self._stop.wait(self.interval):
            with self._lock:
                phase = self.phase
            self._write("{}: building {}{}\n".format(
                self.label, self.elapsed_text(), " - " + phase if phase else ""))


POLL_SECONDS = 0.2


def run_build(build, progress=None):
    # type: (Callable[[], Any], Optional[BuildProgress]) -> Any
    """`build()` on a worker thread, so Ctrl-C reaches the main thread while TensorRT works.

    KeyboardInterrupt when the build was cancelled, whatever it returned."""
    if progress is None or threading.current_thread() is not threading.main_thread():
        return build()
    result = {}  # type: Dict[str, Any]

    def work():
        try:
            result["value"] = build()
        except BaseException as exc:  # handed to the main thread
            result["error"] = exc
    worker = threading.Thread(target=work, name="tensorrt-build")
    worker.daemon = True      # an abandoned 8.x build must not keep the process alive
    worker.start()
    while worker.is_alive():
        worker.join(POLL_SECONDS)
    if progress.cancelled:
        raise KeyboardInterrupt()
    if "error" in result:
        raise result["error"]
    return result.get("value")


def make_progress_monitor(trt, progress):
    # type: (object, BuildProgress) -> Optional[object]
    """An IProgressMonitor feeding `progress`, or None where TensorRT has none (8.x)."""
    base = getattr(trt, "IProgressMonitor", None)
    if base is None:
        return None

    class _Monitor(base):  # type: ignore
        def __init__(self):
            base.__init__(self)   # pybind11 trampolines need the parent __init__
            self._steps = {}

        def phase_start(self, phase_name, parent_phase, num_steps):
            self._steps[phase_name] = num_steps
            progress.set_phase("{} (0/{})".format(phase_name, num_steps))

        def step_complete(self, phase_name, step):
            progress.set_phase("{} ({}/{})".format(phase_name, step + 1, self._steps.get(phase_name, "?")))
            return not progress.cancelled     # False asks TensorRT to cancel the build

        def phase_finish(self, phase_name):
            progress.set_phase("")

    return _Monitor()
