"""The service loop: newest frame of each camera -> faces -> matches -> tracks -> events -> MQTT.

Threads: one per camera (capture), one for gallery commands, one for the watchdog; all
inference runs on the loop's own thread, one frame at a time.
"""
import base64
import json
import logging
import threading
import time
from typing import Dict, List

import queue

from edge.daemon.camera import Camera, spec_from
from edge.daemon.hires import HiresCutter, main_stream_spec, map_box
from edge.daemon.decisions import Observation, TrackDecision, observations_for
from edge.daemon.events import ZERO_LATENCY, Event, Latency, new_event_id
from edge.daemon.hooks import ProcessedFrame
from edge.daemon.latency import RollingStats
from edge.daemon.tracker import Tracker

log = logging.getLogger("faceedge.service")

IDLE_WAIT_S = 0.05
SNAPSHOT_MARGIN = 0.25
REFRESH_EVERY = 5      # frames between re-embeddings of a confidently decided track


def _attr(obj, name, default):
    value = getattr(obj, name, default) if obj is not None else default
    return default if value is None else value


class Service(object):
    def __init__(self, config, pipeline, gallery, matcher_factory, publisher, notifier,
                 command_handler=None, capture_factory=None, once=False, max_seconds=0.0,
                 config_loader=None, hooks=None, presence=None):
        """matcher_factory(gallery, fingerprint, threshold) -> matcher with match(embeddings);
        config_loader() -> a fresh Config on SIGHUP (None: keep the thresholds);
        hooks: edge.daemon.hooks.FrameHook objects given every processed frame;
        presence: edge.daemon.presence.Presence, told of every event."""
        self.config = config
        self.pipeline = pipeline
        self.gallery = gallery
        self.matcher_factory = matcher_factory
        self.publisher = publisher
        self.notifier = notifier
        self.command_handler = command_handler
        self.capture_factory = capture_factory
        self.once = once
        self.max_seconds = max_seconds
        self.config_loader = config_loader
        self.hooks = list(hooks or [])
        self.presence = presence
        self.latency = RollingStats()
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._wakeup = threading.Event()
        self._commands = queue.Queue()
        self._heartbeat = time.monotonic()
        self._processed = 0
        self._processed_times = []     # type: List[float]
        self._events = 0
        self.cameras = []              # type: List[Camera]
        self.trackers = {}             # type: Dict[str, Tracker]
        self.decisions = {}            # type: Dict[str, TrackDecision]
        self.hires = {}                # type: Dict[str, HiresCutter]
        self._ended_cameras = set()
        self._snap_source = None
        self._apply_recognition(config)
        self._matcher = None
        self._gallery_version = None

    # ---- settings -------------------------------------------------------------------------
    def _apply_recognition(self, config):
        rec = getattr(config, "recognition", None)
        self.threshold = float(_attr(rec, "threshold", 0) or self.pipeline.threshold)
        self.track_iou = float(_attr(rec, "track_iou", 0.3))
        self.track_timeout_s = float(_attr(rec, "track_timeout_s", 1.5))
        self.min_frames = int(_attr(rec, "decision_min_frames", 3))
        self.confident_margin = float(_attr(rec, "confident_margin", 0.05))
        if rec is not None and getattr(rec, "min_quality", None) is not None:
            self.pipeline.min_quality = float(rec.min_quality)
        snaps = getattr(config, "snapshots", None)
        self.snapshots = bool(_attr(snaps, "enabled", False))
        self.snapshot_quality = int(_attr(snaps, "quality", 80))
        self.stats_interval_s = float(_attr(getattr(config, "mqtt", None), "stats_interval_s", 30.0))
        for tracker in self.trackers.values():
            tracker.iou_threshold = self.track_iou
            tracker.timeout_s = self.track_timeout_s

    def _refresh_matcher(self, force=False):
        version = getattr(self.gallery, "version", None)
        if force or self._matcher is None or version != self._gallery_version:
            self._matcher = self.matcher_factory(self.gallery, self.pipeline.recognizer_fingerprint,
                                                 self.threshold)
            self._gallery_version = version
            log.info("matcher loaded (gallery version %s, threshold %.3f)", version, self.threshold)

    # ---- control from other threads / signal handlers --------------------------------------
    def request_stop(self, *_):
        self._stop.set()
        self._wakeup.set()

    def request_reload(self, *_):
        self._reload.set()
        self._wakeup.set()

    def _on_command(self, payload):
        self._commands.put(payload)

    def _camera_status(self, name, state, detail):
        if state in ("reconnecting", "ended"):
            log.warning("camera %s %s%s", name, state, ": " + detail if detail else "")
        else:
            log.info("camera %s %s", name, state)

    # ---- run --------------------------------------------------------------------------------
    def run(self):
        # type: () -> int
        started = time.monotonic()
        self._refresh_matcher(force=True)
        self.publisher.start()
        if self.command_handler is not None:
            self.publisher.on_command(self._on_command)
            worker = threading.Thread(target=self._command_worker, name="gallery-commands")
            worker.daemon = True
            worker.start()
        for cam in self.config.cameras:
            spec = spec_from(cam)
            camera = Camera(spec, on_status=self._camera_status, wakeup=self._wakeup,
                            capture_factory=self.capture_factory)
            self.cameras.append(camera)
            self.trackers[camera.name] = Tracker(camera.name, self.track_iou, self.track_timeout_s)
            if spec.hires_source:     # its frames are looked at, never processed: no wakeup
                main = Camera(main_stream_spec(spec), on_status=self._camera_status, capture_factory=self.capture_factory)
                self.hires[camera.name] = HiresCutter(camera, main, spec.hires_max_age_ms)
        for camera in self.cameras + [h.main for h in self.hires.values()]:
            camera.start()
        watchdog = threading.Thread(target=self._watchdog, name="watchdog")
        watchdog.daemon = True
        watchdog.start()
        ready = False
        next_stats = time.monotonic() + self.stats_interval_s
        try:
            while not self._stop.is_set():
                # No camera configured: the daemon only serves gallery commands, ready at once.
                if not ready and (not self.cameras or any(c.opened_once.is_set() for c in self.cameras)):
                    ready = True
                    self.notifier.ready()
                    self.notifier.status(self._status_line())
                    log.info("ready: %d camera(s), backend %s", len(self.cameras), self.pipeline.backend_name)
                if self._reload.is_set():
                    self._reload.clear()
                    self._do_reload()
                self._refresh_matcher()
                self._wakeup.clear()
                took = False
                for camera in self.cameras:
                    frame = camera.take()
                    if frame is not None:
                        took = True
                        self._process(frame)
                now = time.monotonic()
                self._end_tracks(now)
                for hook in self.hooks:
                    self._call_hook(hook.tick, now)
                if all(c.state in ("ended", "stopped") for c in self.cameras):
                    # no camera, or only finished files: the loop is the heartbeat; a lost camera is not
                    self._heartbeat = now
                if now >= next_stats:
                    next_stats = now + self.stats_interval_s
                    self._publish_stats(started)
                if self.once and self._files_done():
                    log.info("all video files ended")
                    break
                if self.max_seconds and now - started >= self.max_seconds:
                    log.info("stopping after %.0f s (--max-seconds)", self.max_seconds)
                    break
                if not took:
                    self._wakeup.wait(IDLE_WAIT_S)
        finally:
            self._shutdown(started)
        return 0

    def _files_done(self):
        files = [c for c in self.cameras if c.is_file]
        return bool(files) and all(c.state in ("ended", "stopped") for c in files) and \
            not any(c.pending() for c in files)

    def _shutdown(self, started):
        self._stop.set()     # also after --once / --max-seconds: ends the watchdog thread
        self.notifier.stopping()
        self.notifier.status("stopping")
        for camera in self.cameras + [h.main for h in self.hires.values()]:
            camera.stop()
        for name, tracker in self.trackers.items():
            for track in tracker.end_all():
                self._emit_end(track)
        for hook in self.hooks:
            self._call_hook(hook.close)
        self._publish_stats(started, status=False)
        self._commands.put(None)
        self.publisher.stop()
        log.info("stopped: %d frames processed, %d events", self._processed, self._events)

    def _do_reload(self):
        log.info("reloading gallery and thresholds")
        if self.config_loader is not None:
            try:
                self.config = self.config_loader()
                self._apply_recognition(self.config)
            except Exception as exc:     # keep running with the old settings
                log.error("config reload failed, keeping the old settings: %s", exc)
        reopen = getattr(self.gallery, "reload", None)
        if callable(reopen):
            reopen()
        self._refresh_matcher(force=True)

    # ---- per frame --------------------------------------------------------------------------
    def _faces(self, frame, tracker):
        """Detect, align, assess; embed only faces whose track still needs evidence.

        A track already decided with confidence is re-checked every REFRESH_EVERY frames only:
        with several faces in view, embedding dominates the cost of a frame."""
        p = self.pipeline
        faces, detect_ms, align_ms = p.locate(frame.image)
        tracks, ended = tracker.update([f.detection.bbox for f in faces], frame.captured_mono)
        cutter, self._snap_source = self.hires.get(frame.source), None
        if cutter is not None:     # crops and quality from the camera's main stream
            faces, self._snap_source = cutter.refine(frame, faces, p.min_quality, p.min_face_px)
        start = time.perf_counter()
        embed_all = any(h.wants_embeddings(frame.source) for h in self.hooks)
        wanted = [i for i, f in enumerate(faces)
                  if f.quality.usable and (embed_all or self._needs_embedding(tracks[i]))]
        faces = p.with_embeddings(faces, wanted)
        embed_ms = (time.perf_counter() - start) * 1000.0
        return faces, tracks, ended, (detect_ms, align_ms, embed_ms)

    def _needs_embedding(self, track):
        decision = self.decisions.get(track.track_id)
        if decision is None or decision.announced is None or not decision.announced.confident:
            return True
        decision.skipped += 1
        if decision.skipped >= REFRESH_EVERY:
            decision.skipped = 0
            return True
        return False

    def _process(self, frame):
        begin = time.monotonic()
        tracker = self.trackers[frame.source]
        faces, tracks, ended, (detect_ms, align_ms, embed_ms) = self._faces(frame, tracker)
        match_start = time.perf_counter()
        matches = self._matcher.match_faces(faces)
        match_ms = (time.perf_counter() - match_start) * 1000.0
        capture_ms = (begin - frame.captured_mono) * 1000.0
        observations = observations_for(faces, matches, frame.captured_at)
        identities = []
        for track, obs in zip(tracks, observations):
            decision = self.decisions.get(track.track_id)
            if decision is None:
                decision = self.decisions[track.track_id] = TrackDecision(
                    self.min_frames, self.confident_margin, self.threshold)
            # the crop is cut (and copied) only for a frame that becomes the track's best
            best = self.snapshots and decision.improves_best(obs)
            decision.add(obs, self._snapshot_crop(frame.image, obs.bbox) if best else None)
            kind = decision.change()
            if kind is not None:
                stages = (capture_ms, detect_ms, align_ms, embed_ms, match_ms)
                self._emit(kind, track, decision, obs, frame.captured_mono, stages)
            identities.append(decision.announced.identity if decision.announced else None)
        for track in ended:
            self._emit_end(track)
        if self.hooks:
            processed = ProcessedFrame(frame, faces, matches, [t.track_id for t in tracks], identities,
                                       self.processed_fps())
            for hook in self.hooks:
                self._call_hook(hook.on_frame, processed)
        done = time.monotonic()
        self._processed += 1
        self._processed_times.append(done)
        if len(self._processed_times) > 120:
            del self._processed_times[:60]
        self._heartbeat = done
        self.latency.add_many((("capture", capture_ms), ("detect", detect_ms),
                               ("align", align_ms), ("embed", embed_ms),
                               ("match", match_ms), ("frame_total", (done - frame.captured_mono) * 1000.0)))

    @staticmethod
    def _call_hook(method, *args):
        try:
            method(*args)
        except Exception:      # an annotation or enrollment bug must not stop recognition
            log.exception("frame hook %s failed", getattr(method, "__qualname__", method))

    def _snapshot_crop(self, image, bbox):
        if self._snap_source is not None:
            image, bbox = self._snap_source.image, map_box(self._snap_source, bbox)
        x1, y1, x2, y2 = bbox
        mx, my = (x2 - x1) * SNAPSHOT_MARGIN, (y2 - y1) * SNAPSHOT_MARGIN
        h, w = image.shape[:2]
        crop = image[max(0, int(y1 - my)):min(h, int(y2 + my)), max(0, int(x1 - mx)):min(w, int(x2 + mx))]
        return crop.copy() if crop.size else None

    def _snapshot(self, decision):
        if not self.snapshots or decision.best_image is None:
            return None
        import cv2
        ok, data = cv2.imencode(".jpg", decision.best_image, [int(cv2.IMWRITE_JPEG_QUALITY), self.snapshot_quality])
        return base64.b64encode(data.tobytes()).decode("ascii") if ok else None

    def _emit(self, kind, track, decision, obs, captured_mono, stages):
        current = decision.announced
        snapshot = self._snapshot(decision)
        # "publish": deciding + building the event; "total": capture -> handed to the publisher
        handed = time.monotonic()
        publish_ms = (handed - captured_mono) * 1000.0 - sum(stages)
        latency = Latency(*(tuple(stages) + (max(0.0, publish_ms), (handed - captured_mono) * 1000.0)))
        event = Event(kind, new_event_id(), track.track_id, track.camera, current.identity,
                      current.similarity, obs.bbox, obs.quality, obs.frame_time, current.confident,
                      latency, snapshot)
        self._publish(event)
        self.latency.add("publish", latency.publish)
        self.latency.add("total", latency.total)

    def _emit_end(self, track):
        decision = self.decisions.pop(track.track_id, None)
        if decision is None or decision.announced is None:
            return      # never announced (a blip): no end either
        last = decision.last   # type: Observation
        current = decision.announced
        event = Event("end", new_event_id(), track.track_id, track.camera, current.identity,
                      current.similarity, last.bbox, last.quality, last.frame_time, current.confident,
                      ZERO_LATENCY, self._snapshot(decision))
        self._publish(event)

    def _publish(self, event):
        self._events += 1
        log.debug("event %s %s %s %s", event.type, event.track_id, event.identity, event.similarity)
        try:
            self.publisher.publish_event(event.to_json())
        except Exception as exc:    # the outbox keeps events; a publish error must not stop recognition
            log.error("publishing event failed: %s", exc)
        if self.presence is not None:
            self.presence.observe(event)

    def _end_tracks(self, now):
        for camera in self.cameras:
            tracker = self.trackers[camera.name]
            if camera.state in ("ended", "stopped", "reconnecting"):
                ended = tracker.end_all()
            else:
                ended = tracker.expire(now)
            for track in ended:
                self._emit_end(track)

    # ---- side threads -----------------------------------------------------------------------
    def _command_worker(self):
        while True:
            payload = self._commands.get()
            if payload is None:
                return
            try:
                response = self.command_handler.handle(payload)
            except Exception as exc:     # the handler answers errors itself; this is a last resort
                log.exception("gallery command failed")
                response = json.dumps({"ok": False, "error": str(exc)})
            if response is not None:
                try:
                    self.publisher.publish_response(response)
                except Exception as exc:
                    log.error("publishing a command response failed: %s", exc)
            self._wakeup.set()

    def _watchdog(self):
        interval = self.notifier.watchdog_interval_s()
        if not interval:
            return
        stale_s = max(interval * 2.0, 1.0)
        while not self._stop.wait(interval):
            if time.monotonic() - self._heartbeat <= stale_s:
                self.notifier.watchdog()
            else:
                log.warning("no frame processed for %.1f s: not feeding the watchdog",
                            time.monotonic() - self._heartbeat)

    # ---- stats ------------------------------------------------------------------------------
    def processed_fps(self):
        times = self._processed_times[-60:]
        if len(times) < 2 or times[-1] <= times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])

    def stats(self, started):
        cameras = {}
        for camera in self.cameras:
            s = camera.stats()
            cameras[camera.name] = {"state": s.state, "fps": s.fps, "frames": s.frames, "dropped": s.dropped,
                                    "reconnects": s.reconnects, "error": s.last_error or None,
                                    "backend": s.backend or None, "decoder": s.decoder or None}
            if camera.name in self.hires:
                cameras[camera.name]["hires"] = self.hires[camera.name].stats()
        gallery = None
        summary = getattr(self.gallery, "summary", None)
        if callable(summary):
            try:
                gallery = summary()
                gallery = gallery._asdict() if hasattr(gallery, "_asdict") else gallery
            except Exception as exc:
                gallery = {"error": str(exc)}
        return {
            "device_id": getattr(self.config, "device_id", None),
            "uptime_s": round(time.monotonic() - started, 1),
            "backend": self.pipeline.backend_name,
            "precision": self.pipeline.precision,
            "processed_frames": self._processed,
            "processed_fps": round(self.processed_fps(), 1),
            "events": self._events,
            "tracks": sum(len(t.tracks) for t in self.trackers.values()),
            "cameras": cameras,
            "latency_ms": self.latency.summary(),
            "gallery": gallery,
        }

    def _status_line(self):
        open_count = sum(1 for c in self.cameras if c.state == "open")
        return "{}/{} cameras, {:.1f} fps, {} events".format(open_count, len(self.cameras),
                                                          self.processed_fps(), self._events)

    def _publish_stats(self, started, status=True):
        try:
            self.publisher.publish_stats(self.stats(started))
            if status:
                self.notifier.status(self._status_line())
        except Exception as exc:
            log.error("publishing stats failed: %s", exc)
