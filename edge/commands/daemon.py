"""`faceedge run` (the daemon) and `faceedge config check`."""
import logging
import os
import signal
import sys

from edge.daemon.reembed import Reembedder     # light (threads only): the lazy imports are the heavy ones

log = logging.getLogger("faceedge.daemon")

FLIP = {"auto": None, "yes": True, "no": False}     # recognition.flip -> open_pipeline(flip=)


def register(subparsers):
    run = subparsers.add_parser("run", help="run the recognition daemon (cameras -> MQTT events)")
    run.add_argument("--config", required=True, help="daemon configuration file")
    run.add_argument("--max-seconds", type=float, default=0.0, help="stop after N seconds (default: run until stopped)")
    run.add_argument("--once", action="store_true", help="exit when every video-file camera has ended")
    run.add_argument("--annotate", metavar="FILE",
                     help="also write the processed frames with boxes, names (or unknown), similarity, track ids "
                          "and fps to FILE (.avi; several cameras: FILE-<camera>.avi) and an index FILE.jsonl")
    run.add_argument("--preview", action="store_true", help="show the annotated frames in a window (when a display exists)")
    run.set_defaults(func=cmd_run)
    config = subparsers.add_parser("config", help="daemon configuration")
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION")
    check = config_sub.add_parser("check", help="validate a configuration file: prints ok or the error")
    check.add_argument("file")
    check.set_defaults(func=cmd_config_check)
    get = config_sub.add_parser("get", help="print one setting as the daemon resolves it (defaults applied), "
                                            "e.g. `faceedge config get FILE gallery.path`")
    get.add_argument("file")
    get.add_argument("key", help="SECTION.KEY, e.g. gallery.path, engines.dir, mqtt.queue_dir")
    get.set_defaults(func=cmd_config_get)


def cmd_config_check(args):
    from edge.daemon.config import load_config
    from edge.errors import FaceEdgeError
    try:
        load_config(args.file)
    except FaceEdgeError as exc:
        print(str(exc))
        return 1
    print("ok")
    return 0


def cmd_config_get(args):
    from edge.daemon.config import load_config
    from edge.errors import ConfigError
    config = load_config(args.file)
    section, _, key = args.key.partition(".")
    table = getattr(config, section, None)
    if not key or table is None or not hasattr(table, "_fields") or key not in table._fields:
        raise ConfigError("no setting {!r}: give SECTION.KEY, e.g. gallery.path".format(args.key))
    if section == "mqtt" and key == "password":
        raise ConfigError("mqtt.password is a secret: it is never printed")
    value = getattr(table, key)
    print("" if value is None else value)
    return 0


def _configure_logging(level, journal="auto"):
    # journald stamps every line itself: no time stamp of ours when it reads stderr
    root = logging.getLogger()
    if root.level != logging.DEBUG:
        root.setLevel(getattr(logging, level.upper(), logging.INFO))
    fmt = "%(levelname)s %(name)s: %(message)s"
    to_journal = bool(os.environ.get("JOURNAL_STREAM")) if journal == "auto" else journal == "yes"
    if not to_journal:
        fmt = "%(asctime)s " + fmt
    for handler in logging.getLogger().handlers:
        handler.setFormatter(logging.Formatter(fmt))


def open_pipeline_for(config):
    from edge.pipeline import open_pipeline
    models, rec = config.models, config.recognition
    engines = config.engines
    engine_options = {"engine_dir": engines.dir, "build_on_start": engines.build_on_start,
                      "precision": engines.precision, "max_batch": engines.max_batch,
                      "calibration_dir": engines.calibration_dir or None}
    return open_pipeline(models.profile, models.dir, models.backend, det_size=rec.det_size,
                         det_confidence=rec.det_confidence, min_quality=rec.min_quality,
                         min_face_px=rec.min_face_px, threads=models.threads,
                         detector=models.detector, recognizer=models.recognizer,
                         max_faces=config.limits.max_faces_per_frame,
                         threshold=rec.threshold or None, flip=FLIP[rec.flip], engine_options=engine_options)


def build_service(config, config_path=None, once=False, max_seconds=0.0, notifier=None, capture_factory=None,
                  hooks=None, pipeline=None):
    """The daemon, wired: models, gallery, matcher, publisher, commands, the loop. hooks: extra
    edge.daemon.hooks.FrameHook objects (the annotated view); pipeline: one already opened for
    this config (the demo's, which the caller closes), else it is opened here."""
    from edge.daemon.config import load_config
    from edge.daemon.discovery import Discovery
    from edge.daemon.gallery_changes import GalleryChanges
    from edge.daemon.live_enroll import LiveEnroller
    from edge.daemon.matcher_updates import MatcherUpdates
    from edge.daemon.notify import Notifier
    from edge.daemon.presence import Presence
    from edge.daemon.publisher import Publisher
    from edge.daemon.recognizer import FrameRecognizer, settings_from
    from edge.daemon.report_publisher import ReportPublisher
    from edge.daemon.service import Service
    from edge.gallery import Gallery

    notifier = notifier or Notifier.from_env()
    notifier.status("loading models")
    closing = []
    if pipeline is None:
        pipeline = open_pipeline_for(config)
        closing.append(pipeline.close)
    fingerprint = pipeline.recognizer_fingerprint
    recognizer = FrameRecognizer(pipeline, settings_from(config, pipeline.threshold))
    settings = lambda: recognizer.settings      # replaced whole on SIGHUP, read by other threads
    gallery = Gallery(config.gallery.path)
    closing.insert(0, gallery.close)
    rules = rule_source(config, gallery, pipeline)
    matchers = MatcherUpdates(gallery, rules)
    gallery.add_listener(matchers.changed)
    publisher = Publisher(config)

    # what follows a gallery change (retained state, Home Assistant, report), and on each connect
    report = ReportPublisher(gallery, lambda payload: publisher.publish_raw(
        publisher.topic("gallery/report"), payload, retain=True), lambda: rules.rule().threshold,
        config.gallery.report_target_far, config.gallery.report_on_change)
    changes = GalleryChanges(gallery, publisher, Discovery(config, publisher.publish_raw), report,
                             recognition=rules.state)
    publisher.on_connected(changes.announce)
    presence = Presence(publisher.publish_presence, lambda: [p.name for p in gallery.list_people()])
    publisher.on_connected(presence.republish)

    # commands: one router, the table built from each component's handlers
    live = LiveEnroller(gallery, fingerprint, [c.name for c in config.cameras], publisher.publish_response,
                        lambda: settings().threshold + settings().confident_margin,
                        same_person=lambda: settings().threshold,
                        on_committed=lambda name: changes.after("enroll_live", name))
    unknowns, unknown_actions = open_unknowns(config, gallery, pipeline, recognizer, publisher, changes)
    router = command_router(gallery, pipeline, config.limits, changes, live=live, report=report,
                            min_quality=lambda: settings().min_quality, unknowns=unknown_actions)
    publisher.on_command(router.submit)
    if config.gallery.shared_id:
        closing.insert(0, share_gallery(config, gallery, pipeline, publisher, matchers, changes, router))
    return Service(config, recognizer, matchers, publisher, notifier, commands=router,
                   capture_factory=capture_factory, once=once, max_seconds=max_seconds,
                   config_loader=(lambda: load_config(config_path)) if config_path else None,
                   hooks=[live] + list(hooks or []), presence=presence, closing=closing, unknowns=unknowns,
                   reembedder=Reembedder(gallery, pipeline, status=notifier.status))


def open_unknowns(config, gallery, pipeline, recognizer, publisher, changes):
    """Unknown identities (issue 14) in the gallery's file: the loop's UnknownFaces and the
    commands' UnknownActions, grouping strangers at the threshold recognition uses."""
    from edge.daemon.unknown_commands import UnknownActions
    from edge.daemon.unknown_faces import UnknownFaces, threshold_in_use
    from edge.unknowns.actions import Context, state_json
    from edge.unknowns.index import UnknownIndex, rule_matcher
    from edge.unknowns.store import UnknownStore
    from edge.unknowns.tracks import UnknownTracks
    fingerprint = pipeline.recognizer_fingerprint
    limits = config.unknowns
    store = UnknownStore(gallery, max_tracks=limits.max_tracks, keep_days=limits.keep_days)
    index = UnknownIndex(store, fingerprint, rule_matcher(lambda: threshold_in_use(recognizer)),
                         recognizer.settings.min_frames)
    tracks = UnknownTracks(store, index, fingerprint, enabled=limits.enabled)

    def publish_state():
        publisher.publish_raw(publisher.topic("unknowns/state"), state_json(store), retain=True)
    publisher.on_connected(publish_state)
    context = Context(gallery, store, index, tracks, lambda: recognizer.matcher, fingerprint)
    return (UnknownFaces(tracks, recognizer, publish_state),
            UnknownActions(context, pipeline, config.limits, changes, publish_state))


def rule_source(config, gallery, pipeline):
    """The open-set rule for the active model over this gallery (edge/open_set.py):
    recognition.false_match_rate, or recognition.threshold as a fixed override."""
    from edge.open_set import RuleSource
    rec = config.recognition
    return RuleSource(gallery, pipeline.recognizer_fingerprint, bool(getattr(pipeline.recognizer, "flip", False)),
                      pipeline.threshold, rec.false_match_rate, rec.threshold or None)


def share_gallery(config, gallery, pipeline, publisher, matchers, changes, router):
    """gallery.shared_id: the gallery synced over MQTT (docs/MANY_DOORS.md); returns its stop()."""
    from edge.daemon.shared_gallery import SharedGallery

    def synced():       # a change from another door: new matcher, gallery/state, HA entities
        matchers.changed()
        shared.poke()
        changes.announce()
    shared = SharedGallery(config, gallery, pipeline, publisher, on_change=synced)
    changes.on_change = lambda *_: shared.poke()     # a local change (command, live enrollment): publish it
    shared.wrap(router)
    shared.start()
    return shared.stop


def command_router(gallery, pipeline, limits, changes, live=None, report=None, min_quality=None, unknowns=None):
    """The MQTT commands: every component's handlers in one table (docs/ARCHITECTURE.md).
    live (LiveEnroller), report (ReportPublisher) and unknowns (UnknownActions) are optional
    outside the daemon; min_quality() -> the quality bar in force for enrollment photos."""
    from edge.daemon.command_router import CommandRouter
    from edge.daemon.gallery_commands import GalleryActions
    router = CommandRouter(limits, gallery.response_for)
    router.add(GalleryActions(gallery, pipeline, limits, changes, min_quality).handlers())
    if live is not None:
        router.add(live.handlers(limits))
    if report is not None:
        router.add(report.handlers())
    if unknowns is not None:
        router.add(unknowns.handlers())
    return router


def install_signals(service):
    signal.signal(signal.SIGTERM, service.request_stop)
    signal.signal(signal.SIGINT, service.request_stop)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, service.request_reload)


def cmd_run(args):
    from edge.daemon.config import load_config
    config = load_config(args.config)
    _configure_logging(config.logging.level, config.logging.journal)
    hooks = []
    if getattr(args, "annotate", None) or getattr(args, "preview", False):
        from edge.daemon.annotate_hook import AnnotateHook
        hooks.append(AnnotateHook(args.annotate, [c.name for c in config.cameras], preview=args.preview))
    service = build_service(config, args.config, once=args.once, max_seconds=args.max_seconds, hooks=hooks)
    install_signals(service)
    code = service.run()
    sys.stdout.flush()
    if service.stranded:
        _exit_now(code)
    return code


def _exit_now(code):
    """Leave without Python's shutdown: a capture thread that returns from OpenCV while the
    interpreter finalizes is ended by pthread_exit inside C++ and aborts the process (SIGABRT).
    Everything durable (gallery, outbox) is closed by now."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)
