"""A real RTSP server (GStreamer's gst-rtsp-server) for tests and `faceedge bench --live --rtsp`.

Run it by path with a Python that has PyGObject and GstRtspServer (Debian: python3-gi,
gir1.2-gst-rtsp-server-1.0; on a Jetson the system python3): it imports nothing from faceedge.

    python3 edge/rtsp_server.py --port 8554 --frames DIR --fps 10 \
        --mount door --mount main::1280x960 --mount sub::320x240 --mount h265door:h265 \
        [--user admin --password secret]

DIR holds JPEG frames 00000.jpg, 00001.jpg, ... played in a loop at --fps; every mount
(PATH[:CODEC[:WxH]], CODEC h264 | h265 | mjpeg) serves them, encoded live and shared by its
clients. With --user every mount asks for the credentials (RTSP Basic auth; --digest: Digest). Prints "ready PORT".

--stamp (needs numpy and cv2 too): frames are pushed by this process at --fps, each with the wall
clock (ms, modulo 2**32) written into its bottom 16 rows as 32 black/white 16x16 blocks, MSB
first, so a client measures how old a frame is when decoded (edge/commands/_bench_rtsp.py).
"""
import argparse
import sys
import time

STAMP_BITS, STAMP_BLOCK = 32, 16

ENCODERS = {
    "h264": "x264enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} ! rtph264pay name=pay0 pt=96 "
            "config-interval=1",
    "h265": "x265enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} ! rtph265pay name=pay0 pt=96 "
            "config-interval=1",
    "mjpeg": "jpegenc quality=85 ! rtpjpegpay name=pay0 pt=26",
}


def launch_line(frames, fps, codec, size):
    scale = caps = ""
    if size:
        scale = " ! videoscale"
        caps = ",width={},height={}".format(*size)
    return ("( multifilesrc location={}/%05d.jpg loop=true caps=image/jpeg,framerate={}/1 ! jpegdec ! "
            "videoconvert{} ! video/x-raw,format=I420{} ! {} )".format(
                frames, fps, scale, caps, ENCODERS[codec].format(gop=max(1, fps))))


def stamp_launch_line(width, height, fps, codec):
    return ("( appsrc name=stampsrc is-live=true do-timestamp=true format=time "
            "caps=video/x-raw,format=BGR,width={},height={},framerate={}/1 ! videoconvert ! "
            "video/x-raw,format=I420 ! {} )".format(width, height, fps, ENCODERS[codec].format(gop=max(1, fps))))


def write_stamp(frame, now):
    value = int(now * 1000) & 0xFFFFFFFF
    top = frame.shape[0] - STAMP_BLOCK
    for bit in range(STAMP_BITS):
        on = (value >> (STAMP_BITS - 1 - bit)) & 1
        frame[top:, bit * STAMP_BLOCK:(bit + 1) * STAMP_BLOCK] = 255 if on else 0


class StampedFrames(object):
    """Pushes the JPEG frames, stamped, into each new media's appsrc at fps (GLib timer)."""

    def __init__(self, directory, fps):
        import glob
        import cv2
        self.frames = [cv2.imread(p) for p in sorted(glob.glob(directory + "/*.jpg"))]
        self.fps = fps

    def on_configure(self, factory, media):
        from gi.repository import GLib, Gst
        source = media.get_element().get_child_by_name("stampsrc")
        count = [0]

        def push():
            frame = self.frames[count[0] % len(self.frames)].copy()
            count[0] += 1
            write_stamp(frame, time.time())
            result = source.emit("push-buffer", Gst.Buffer.new_wrapped(frame.tobytes()))
            return result in (Gst.FlowReturn.OK, Gst.FlowReturn.FLUSHING)

        GLib.timeout_add(int(1000 / self.fps), push)


def parse_mount(text):
    parts = text.split(":")
    path = "/" + parts[0].strip("/")
    codec = (parts[1] if len(parts) > 1 and parts[1] else "h264")
    size = None
    if len(parts) > 2 and parts[2]:
        width, height = parts[2].lower().split("x")
        size = (int(width), int(height))
    if codec not in ENCODERS:
        raise SystemExit("unknown codec {!r} (use {})".format(codec, ", ".join(sorted(ENCODERS))))
    return path, codec, size


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--frames", required=True)
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--mount", action="append", default=[])
    parser.add_argument("--user", default="")
    parser.add_argument("--password", default="")
    parser.add_argument("--stamp", action="store_true")
    parser.add_argument("--digest", action="store_true", help="with --user: Digest instead of Basic auth")
    args = parser.parse_args(argv)

    import gi
    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer
    Gst.init(None)

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
        if args.digest:      # what most IP cameras ask for
            gi.require_version("GstRtsp", "1.0")
            from gi.repository import GstRtsp
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
            auth.add_digest(args.user, args.password, token)
        else:
            auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
        server.set_auth(auth)
    mounts = server.get_mount_points()
    stamped = StampedFrames(args.frames, args.fps) if args.stamp else None
    for text in args.mount or ["door"]:
        path, codec, size = parse_mount(text)
        factory = GstRtspServer.RTSPMediaFactory()
        if stamped is not None:
            height, width = stamped.frames[0].shape[:2]
            factory.set_launch(stamp_launch_line(width, height, args.fps, codec))
            factory.connect("media-configure", stamped.on_configure)
        else:
            factory.set_launch(launch_line(args.frames, args.fps, codec, size))
        factory.set_shared(True)
        if args.user:
            permissions = GstRtspServer.RTSPPermissions()
            permissions.add_permission_for_role("user", "media.factory.access", True)
            permissions.add_permission_for_role("user", "media.factory.construct", True)
            factory.set_permissions(permissions)
        mounts.add_factory(path, factory)
    if server.attach(None) == 0:
        sys.stderr.write("rtsp_server: cannot listen on 127.0.0.1:{}\n".format(args.port))
        return 1
    sys.stdout.write("ready {}\n".format(server.get_bound_port()))
    sys.stdout.flush()
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
