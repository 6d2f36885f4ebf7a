"""After a model change: embed the kept face crops that lack embeddings for the active model.

In the background, while the daemon already recognises: each batch is its own gallery
transaction, so the matcher (rebuilt on every gallery change) recognises the people done so
far, a door is never blind for minutes on a large gallery, and systemd's start timeout is
not stretched. A crash midway loses nothing: what is committed stays, and the next start
embeds only what is still missing. Progress goes to the log and to systemd's STATUS=.
"""
import logging
import threading
import time
from typing import Callable, Optional

log = logging.getLogger("faceedge.reembed")

BATCH = 32
LOG_EVERY_S = 5.0


class Reembedder(object):
    def __init__(self, gallery, pipeline, status=None, batch=BATCH):
        # type: (object, object, Optional[Callable[[str], object]], int) -> None
        """status(text): systemd STATUS= (edge.daemon.notify.Notifier.status)."""
        self.gallery = gallery
        self.fingerprint = pipeline.recognizer_fingerprint
        self.embed = pipeline.embed_crops
        self.status = status
        self.batch = batch
        self.total = 0
        self.done = 0
        self.error = None        # type: Optional[str]
        self._thread = None      # type: Optional[threading.Thread]
        self._stop = threading.Event()
        self._logged = 0.0

    def start(self):
        # type: () -> bool
        """Starts the background run when crops lack embeddings; False when nothing is missing."""
        missing = len(self.gallery.missing_embeddings(self.fingerprint))
        self.total = self.done + missing      # done and total count since start, over every run
        if not missing:
            return False
        log.info("model %s: %d kept face crops have no embedding yet; embedding them in the background "
                 "(people are recognised as they are done)", self.fingerprint[:12], missing)
        self._thread = threading.Thread(target=self._run, name="reembed")
        self._thread.daemon = True
        self._thread.start()
        return True

    def running(self):
        # type: () -> bool
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout=None):
        # type: (Optional[float]) -> bool
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running()

    def stop(self):
        # type: () -> None
        self._stop.set()
        self.wait(10.0)

    def state(self):
        # type: () -> dict
        return {"pending": max(0, self.total - self.done), "done": self.done, "running": self.running(),
                "error": self.error}

    def _embed(self, crops):
        if self._stop.is_set():
            raise _Stopped()
        return self.embed(crops)

    def _progress(self, n):
        self.done += n
        now = time.monotonic()
        if now - self._logged >= LOG_EVERY_S or self.done >= self.total:
            self._logged = now
            text = "re-embedding face crops for model {}: {}/{}".format(self.fingerprint[:12], self.done, self.total)
            log.info(text)
            if self.status is not None:
                try:
                    self.status(text)
                except Exception:     # STATUS= is a courtesy
                    pass

    def _run(self):
        try:
            self.gallery.reembed(self.fingerprint, self._embed, batch=self.batch, progress=self._progress)
            log.info("re-embedding done: %d face crops for model %s", self.done, self.fingerprint[:12])
        except _Stopped:
            log.info("re-embedding stopped at %d/%d; the rest is embedded at the next start", self.done, self.total)
        except Exception as exc:      # the daemon keeps recognising the people done so far
            self.error = str(exc)
            log.error("re-embedding failed at %d/%d: %s (the rest is retried at the next start)",
                      self.done, self.total, exc)


class _Stopped(Exception):
    pass
