"""`faceedge bench --live N --rtsp`: the bench video served by the local GStreamer RTSP server
(edge/rtsp_server.py, H.264, every frame stamped with the server's clock) and the daemon's camera
on it; plus how old frames are when OpenCV hands them over, per back-end and jitter buffer."""
import os

from edge.daemon.latency import summarize

PROBE_S = 5.0


def start_server(work, segments, fps):
    """The RTSP server on the bench's segments, frames stamped; (server, url)."""
    from edge.demo_media import render_frames, write_frames
    from edge.demo_rtsp import RtspServerProcess
    frames = os.path.join(work, "frames")
    os.makedirs(frames)
    write_frames(frames, render_frames(segments, fps=fps))
    server = RtspServerProcess(frames, fps=int(fps), stamp=True).start()
    return server, server.url("door")


def camera_table(url, args):
    return {"name": "door", "source": url, "type": "rtsp", "latency_ms": args.latency_ms,
            "backend": args.rtsp_backend}


def _ages(spec):
    from edge.daemon.camera import open_capture
    from edge.demo_rtsp import frame_ages
    capture = open_capture(spec, "rtsp")
    try:
        return summarize(sorted(frame_ages(capture, PROBE_S)))
    finally:
        capture.release()


def transport_report(url, args):
    """Frame age at hand-over (server stamp -> decoded BGR in this process) for each back-end this
    OpenCV has; GStreamer with latency 0 and with the configured latency_ms."""
    import cv2
    from edge.daemon.camera import has_gstreamer
    from edge.daemon.config import camera_spec
    from edge.daemon.gstreamer import choose_decoder
    base = camera_spec("probe", url, type="rtsp", latency_ms=args.latency_ms, reconnect_max_s=5.0, backend="ffmpeg")
    report = {"codec": "h264", "frame_age_ms": {"ffmpeg": _ages(base)}}
    if has_gstreamer(cv2):
        report["decoder"] = choose_decoder("h264")
        for latency in sorted({0, args.latency_ms}):
            key = "gstreamer latency_ms={}".format(latency)
            report["frame_age_ms"][key] = _ages(base._replace(backend="gstreamer", latency_ms=latency))
    return report
