"""The service loop: newest frame of each camera -> the recogniser -> events -> sinks.

Recognition itself is `edge.daemon.recognizer.FrameRecognizer` (pure, one frame at a time);
this module owns the loop thread, the cameras, the sinks (publisher, presence, frame hooks),
the stats and the watchdog, and starts and stops the command router. Threads: one per camera
(capture), the matcher updates (edge/daemon/matcher_updates.py), the command worker
(edge/daemon/command_router.py) and the watchdog; all inference of the frame path runs on
the loop's own thread.
"""
import logging
import threading
import time
from typing import Dict, List, Optional

from edge.daemon import service_stats
from edge.daemon.camera import Camera
from edge.daemon.health import Health
from edge.daemon.hires import HiresCutter, main_stream_spec
from edge.daemon.hooks import ProcessedFrame
from edge.daemon.loop_stats import LoopStats
from edge.daemon.recognizer import settings_from
from edge.daemon.watchdog import Watchdog

log = logging.getLogger("faceedge.service")

IDLE_WAIT_S = 0.05


def _camera_status(name, state, detail):
    if state == "reconnecting":     # "ended": a video file came to its end, as files do
        log.warning("camera %s %s%s", name, state, ": " + detail if detail else "")
    else:
        log.info("camera %s %s", name, state)


def _call_hook(method, *args):
    try:
        method(*args)
    except Exception:      # an annotation or enrollment bug must not stop recognition
        log.exception("frame hook %s failed", getattr(method, "__qualname__", method))


class Service(object):
    def __init__(self, config, recognizer, matchers, publisher, notifier, commands=None, capture_factory=None,
                 once=False, max_seconds=0.0, config_loader=None, hooks=None, presence=None, closing=(), unknowns=None,
                 reembedder=None):
        """recognizer: FrameRecognizer; matchers: MatcherUpdates (the gallery's matcher, rebuilt
        off this thread); commands: the CommandRouter answering MQTT commands on its own thread;
        config_loader() -> a fresh Config on SIGHUP (None: keep the settings); hooks:
        edge.daemon.hooks.FrameHook objects given every processed frame; presence:
        edge.daemon.presence.Presence, told of every event; closing: callables run last at
        shutdown (closing the gallery and the models); unknowns: edge.daemon.unknown_faces.UnknownFaces,
        which sees every event before it is published (unknown ids, ignored faces); reembedder:
        edge.daemon.reembed.Reembedder, started with the loop (kept crops lacking this model's
        embeddings, in the background)."""
        self.config = config
        self.recognizer = recognizer
        self.matchers = matchers
        self.publisher = publisher
        self.notifier = notifier
        self.commands = commands
        self.closing = list(closing)
        self.capture_factory = capture_factory
        self.once = once
        self.max_seconds = max_seconds
        self.config_loader = config_loader
        self.hooks = list(hooks or [])
        self.presence = presence
        self.unknowns = unknowns
        self.reembedder = reembedder
        self.counters = LoopStats()
        self.stranded = 0       # capture threads left inside OpenCV at stop
        self._stop = threading.Event()
        self._reload = threading.Event()
        self.wakeup = threading.Event()
        self.health = Health()
        self.watchdog = Watchdog(notifier, self._stop, self._health_problem)
        self.cameras = []              # type: List[Camera]
        self.hires = {}                # type: Dict[str, HiresCutter]   camera -> its main stream

    @property
    def settings(self):
        return self.recognizer.settings

    @property
    def gallery(self):
        return self.matchers.gallery

    # ---- control from other threads / signal handlers --------------------------------------
    def request_stop(self, *_):
        self._stop.set()
        self.wakeup.set()

    def request_reload(self, *_):
        self._reload.set()
        self.wakeup.set()

    # ---- run --------------------------------------------------------------------------------
    def run(self):
        # type: () -> int
        started = time.monotonic()
        first = self.matchers.start()
        self.recognizer.use_matcher(first.matcher, first.version)
        if self.reembedder is not None:
            self.reembedder.start()
        self.publisher.start()
        if self.commands is not None:
            self.commands.start(self.publisher.publish_response)
        for spec in self.config.cameras:
            camera = Camera(spec, on_status=_camera_status, wakeup=self.wakeup,
                            capture_factory=self.capture_factory)
            self.cameras.append(camera)
            if spec.hires_source:     # its frames are looked at, never processed: no wakeup
                main = Camera(main_stream_spec(spec), on_status=_camera_status,
                              capture_factory=self.capture_factory)
                self.hires[camera.name] = HiresCutter(camera, main, spec.hires_max_age_ms)
        for camera in self.cameras + [h.main for h in self.hires.values()]:
            camera.start()
        self.watchdog.start()
        try:
            self._loop(started)
        finally:
            self._shutdown(started)
        return 0

    def _loop(self, started):
        ready = False
        next_stats = time.monotonic() + self.config.mqtt.stats_interval_s
        while not self._stop.is_set():
            # No camera configured: the daemon only serves gallery commands, ready at once.
            if not ready and (not self.cameras or any(c.opened_once.is_set() for c in self.cameras)):
                ready = True
                self.notifier.ready()
                self.notifier.status(service_stats.status_line(self))
                log.info("ready: %d camera(s), backend %s", len(self.cameras), self.recognizer.pipeline.backend_name)
            if self._reload.is_set():
                self._reload.clear()
                self._do_reload()
            fresh = self.matchers.take()
            if fresh is not None:
                self.recognizer.use_matcher(fresh.matcher, fresh.version)
            self.wakeup.clear()
            took = False
            for camera in self.cameras:
                frame = camera.take()
                if frame is not None:
                    took = True
                    self._process(frame)
            now = time.monotonic()
            self._end_tracks(now)
            for hook in self.hooks:
                _call_hook(hook.tick, now)
            if all(c.state in ("ended", "stopped") for c in self.cameras):
                # no camera, or only finished files: the loop is the heartbeat; a lost camera is not
                self.watchdog.beat(now)
            if now >= next_stats:
                next_stats = now + self.config.mqtt.stats_interval_s
                self._publish_stats(started)
            if self.once and self._files_done():
                log.info("all video files ended")
                return
            if self.max_seconds and now - started >= self.max_seconds:
                log.info("stopping after %.0f s (--max-seconds)", self.max_seconds)
                return
            if not took:
                self.wakeup.wait(IDLE_WAIT_S)

    def _files_done(self):
        files = [c for c in self.cameras if c.is_file]
        return bool(files) and all(c.state in ("ended", "stopped") for c in files) and \
            not any(c.pending() for c in files)

    def _shutdown(self, started):
        self._stop.set()     # also after --once / --max-seconds: ends the watchdog thread
        self.notifier.stopping()
        self.notifier.status("stopping")
        self.stranded = sum(camera.stop() for camera in self.cameras + [h.main for h in self.hires.values()])
        if self.stranded:
            log.warning("%d capture thread(s) still inside OpenCV (a hung open or read): not waited for",
                        self.stranded)
        self._publish_all(self.recognizer.end_all())
        for hook in self.hooks:
            _call_hook(hook.close)
        if self.reembedder is not None:
            self.reembedder.stop()      # between batches: what is committed stays
        self.matchers.stop()
        self._publish_stats(started, status=False)
        if self.commands is not None:
            self.commands.stop()
        self.publisher.stop()
        for close in self.closing:
            try:
                close()
            except Exception as exc:      # stopping anyway: say what could not be closed
                log.error("closing %s failed: %s", getattr(close, "__qualname__", close), exc)
        log.info("stopped: %d frames processed, %d events", self.counters.processed, self.counters.events)

    def _do_reload(self):
        log.info("reloading gallery and thresholds")
        if self.config_loader is not None:
            try:
                self.config = self.config_loader()
                # the threshold stays the matcher's until the rebuilt one (new rule) is taken
                self.recognizer.configure(settings_from(self.config, self.recognizer.pipeline.threshold)._replace(
                    threshold=self.settings.threshold))
            except Exception as exc:     # keep running with the old settings
                log.error("config reload failed, keeping the old settings: %s", exc)
        rec = self.config.recognition
        self.matchers.rebuild(rec.false_match_rate, rec.threshold or None)
        if self.reembedder is not None and not self.reembedder.running():
            self.reembedder.start()     # crops added meanwhile by another process without this model

    # ---- per frame --------------------------------------------------------------------------
    def _process(self, frame):
        embed_all = any(h.wants_embeddings(frame.source) for h in self.hooks)
        try:
            result = self.recognizer.recognize(frame, time.monotonic(), embed_all, self.hires.get(frame.source))
        except Exception as exc:
            # One bad frame (or a bad gallery entry) must not end recognition; the watchdog is fed
            # only by frames that succeed, so failing every frame still gets the service restarted.
            self.counters.frame_failed(frame.source, exc)
            return
        self._publish_all(result.events, (frame.source, result))
        if self.hooks:
            processed = ProcessedFrame(frame, result.faces, result.matches, result.track_ids, result.identities,
                                       self.counters.fps())
            for hook in self.hooks:
                _call_hook(hook.on_frame, processed)
        done = time.monotonic()
        self.counters.frame_done(done, result.stages_ms, frame.captured_mono)
        self.watchdog.beat(done)

    def _health_problem(self):
        # type: () -> Optional[str]
        if not self.publisher.sender_alive:
            return "the MQTT outbox sender has stopped (events stay on disk)"
        return None

    def _publish_all(self, events, frame=None):
        if self.unknowns is not None:
            events = self.unknowns.filter(events, frame)
        for event in events:
            self.counters.event(event)
            log.debug("event %s %s %s %s", event.type, event.track_id, event.identity, event.similarity)
            try:
                self.publisher.publish_event(event.to_json())
            except Exception as exc:    # the outbox keeps events; a publish error must not stop recognition
                log.error("publishing event failed: %s", exc)
            if self.presence is not None:
                self.presence.observe(event)

    def _end_tracks(self, now):
        for camera in self.cameras:
            lost = camera.state in ("ended", "stopped", "reconnecting")
            self._publish_all(self.recognizer.end_tracks(camera.name, now, everything=lost))

    # ---- stats ------------------------------------------------------------------------------
    def stats(self, started):
        return service_stats.stats(self, started)

    def _publish_stats(self, started, status=True):
        try:
            body = self.stats(started)
            health, changed = self.health.assess(body["cameras"], self._health_problem(), body["frame_errors"])
            body["health"] = health
            if changed:
                self.publisher.publish_health(health)
            self.publisher.publish_stats(body)
            if status:
                self.notifier.status(service_stats.status_line(self))
        except Exception as exc:
            log.error("publishing stats failed: %s", exc)
