"""What the daemon reports about itself: the `stats` body and systemd's STATUS= line."""
import time


def stats(service, started):
    """The `stats` message body (docs/MQTT_API.md#stats)."""
    cameras = {}
    for camera in service.cameras:
        s = camera.stats()
        cameras[camera.name] = {"state": s.state, "fps": s.fps, "frames": s.frames, "dropped": s.dropped,
                                "reconnects": s.reconnects, "error": s.last_error or None,
                                "backend": s.backend or None, "decoder": s.decoder or None}
        if camera.name in service.hires:
            cameras[camera.name]["hires"] = service.hires[camera.name].stats()
    latest = service.matchers.latest      # the summary of the gallery the matcher was built from
    pipeline = service.recognizer.pipeline
    body = {"device_id": service.config.device_id, "uptime_s": round(time.monotonic() - started, 1),
            "backend": pipeline.backend_name, "precision": pipeline.precision,
            "tracks": service.recognizer.track_count(), "cameras": cameras,
            "gallery": latest.summary._asdict() if latest is not None else None,
            "recognition": recognition_state(service, latest)}
    body.update(service.counters.summary())
    return body


def recognition_state(service, latest):
    """The open-set rule of the matcher in use, samples this model cannot use (both read when
    the matcher was built, off the loop thread), the re-embedding's progress."""
    state = dict(latest.recognition) if latest is not None else {}
    if service.reembedder is not None:
        state["reembed"] = service.reembedder.state()
    return state


def status_line(service):
    """systemd STATUS=: cameras, fps, events, and the re-embedding while it runs."""
    open_count = sum(1 for c in service.cameras if c.state == "open")
    line = "{}/{} cameras, {:.1f} fps, {} events".format(open_count, len(service.cameras),
                                                      service.counters.fps(), service.counters.events)
    if service.reembedder is not None and service.reembedder.running():
        r = service.reembedder.state()
        line += ", re-embedding face crops {}/{}".format(r["done"], r["done"] + r["pending"])
    return line
