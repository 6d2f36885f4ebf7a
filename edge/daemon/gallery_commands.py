"""Gallery commands received on `<root>/gallery/set`, answered on `gallery/response`.

Request:  {"request_id": "...", "action": "enroll"|"negative"|"remove"|"rename"|"list", ...}
  enroll/negative: "name" and "images" (base64 JPEG/PNG), or "embeddings" + "fingerprint" (enroll)
  rename: "name", "new_name"
  enroll_live: "name", "camera", optional "seconds", "samples", "min_samples" (edge/daemon/live_enroll.py)
  report: optional "target_far" (edge/gallery/report.py)
Response: {"request_id", "ok", "result"} or {"request_id", "ok": false, "error"}.

Everything is validated and every image decoded and embedded before the gallery is touched,
so a bad command changes nothing. A change and its response are stored in one transaction:
a repeated request_id is answered from the gallery, never applied twice, and the answer is
sent only after the commit. handle() runs on the service's command worker, not paho's thread.
"""
import base64
import binascii
import json
import logging
import re
from typing import Callable, List, Optional

import numpy as np

from edge.errors import FaceEdgeError
from edge.gallery.enrollment import sample_from_image
from edge.gallery.store import AlreadyDone, Sample, validate_name
from edge.imageio import decode_image
from edge.models.manifest import known_embedding_dim

log = logging.getLogger(__name__)

ACTIONS = ("enroll", "negative", "remove", "rename", "list", "enroll_live", "report")
KEYS = ("request_id", "action", "name", "new_name", "images", "embeddings", "fingerprint",
        "camera", "seconds", "samples", "min_samples", "target_far")
MAX_REQUEST_ID = 200


_EARLY_REQUEST_ID = re.compile(br'"request_id"\s*:\s*"([^"\\]{1,200})"')


class CommandError(FaceEdgeError):
    def __init__(self, message, request_id=None):
        # type: (str, Optional[str]) -> None
        super(CommandError, self).__init__(message)
        self.request_id = request_id


class GalleryCommandHandler(object):
    def __init__(self, gallery, pipeline, limits, on_change=None, publisher=None, discovery=None, live=None,
                 report=None):
        # type: (object, object, object, Optional[Callable[..., None]], object, object, object, object) -> None
        """publisher (optional): gallery/state is republished after each change and on every
        (re)connect; discovery (optional, edge.daemon.discovery.Discovery): HA sensors per person;
        live (optional, edge.daemon.live_enroll.LiveEnroller): enroll_live; report (optional,
        edge.daemon.report_publisher.ReportPublisher): the report action and gallery/report."""
        self.gallery = gallery
        self.pipeline = pipeline
        self.limits = limits
        self.on_change = on_change
        self.publisher = publisher
        self.discovery = discovery
        self.live = live
        self.report = report
        if live is not None:
            live.on_committed = lambda name: self._changed("enroll_live", name)
        if publisher is not None and hasattr(publisher, "on_connected"):
            publisher.on_connected(self.announce)

    # -- state ------------------------------------------------------------------------------
    def state_json(self):
        # type: () -> str
        s = self.gallery.summary()
        return json.dumps({"people": s.people, "samples": s.samples, "negatives": s.negatives,
                           "version": s.version, "fingerprints": list(s.fingerprints),
                           "names": [p.name for p in self.gallery.list_people()]}, sort_keys=True)

    def announce(self):
        # type: () -> None
        """Retained state and discovery for everyone: after (re)connecting, the broker may have lost them."""
        try:
            if self.publisher is not None:
                self.publisher.publish_state(self.state_json())
            if self.discovery is not None:
                self.discovery.publish_all([p.name for p in self.gallery.list_people()])
        except Exception as exc:     # never take the network thread down
            log.error("publishing the gallery state failed: %s", exc)

    # -- commands -----------------------------------------------------------------------------
    def handle(self, payload):
        # type: (bytes) -> Optional[str]
        """The response to publish; None when it was published already (enroll_live's progress)."""
        request_id = None
        try:
            command = self._decode(payload)
            request_id = _request_id(command)
            self._check(command)
            if request_id is not None:
                stored = self.gallery.response_for(request_id)
                if stored is not None:
                    return stored
            return self._apply(command, request_id)
        except AlreadyDone as done:
            return done.response
        except FaceEdgeError as exc:
            request_id = request_id or getattr(exc, "request_id", None)
            log.warning("gallery command %s refused: %s", request_id or "(no request_id)", exc)
            return response_json(request_id, False, error=str(exc))
        except Exception as exc:     # a bug must not stop the command worker; the gallery rolled back
            log.exception("gallery command %s failed", request_id or "(no request_id)")
            return response_json(request_id, False, error="internal error: {}; see the daemon's log".format(exc))

    def _decode(self, payload):
        # type: (bytes) -> dict
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        if len(payload) > self.limits.max_payload_bytes:
            # Not parsed (that is the point), but a request_id near the start is still answered.
            found = _EARLY_REQUEST_ID.search(payload[:4096]) or _EARLY_REQUEST_ID.search(payload[-4096:])
            raise CommandError("command is {} bytes, over limits.max_payload_bytes ({}); send fewer or smaller "
                               "images".format(len(payload), self.limits.max_payload_bytes),
                               request_id=found.group(1).decode("utf-8", "replace") if found else None)
        try:
            command = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise CommandError("command is not valid JSON ({}); send a JSON object with an \"action\"".format(exc))
        except RecursionError:
            raise CommandError("command is nested too deeply to be a gallery command")
        if not isinstance(command, dict):
            raise CommandError("command must be a JSON object with an \"action\"")
        return command

    def _check(self, command):
        # type: (dict) -> None
        unknown = sorted(k for k in command if k not in KEYS)
        if unknown:
            raise CommandError("unknown key {!r}; known keys: {}".format(unknown[0], ", ".join(KEYS)))
        action = command.get("action")
        if action not in ACTIONS:
            raise CommandError("unknown action {!r}; use one of {}".format(action, ", ".join(ACTIONS)))

    def _apply(self, command, request_id):
        # type: (dict, Optional[str]) -> str
        action = command["action"]

        def respond(result):
            return response_json(request_id, True, result=result)

        if action == "list":
            people = [{"name": p.name, "samples": p.samples, "negatives": p.negatives, "created": p.created}
                      for p in self.gallery.list_people()]
            # Read-only: answered afresh when repeated (recording it would bump the gallery version).
            return respond({"people": people, "version": self.gallery.version})

        if action == "report":
            if self.report is None:
                raise CommandError("the report is not available in this build")
            return respond(self.report.build(command.get("target_far")))

        name = self._name(command, "name")
        if action == "enroll_live":
            from edge.daemon.sample_collector import request_from_command
            if self.live is None:
                raise CommandError("enroll_live needs the daemon's cameras; not available here")
            return self.live.start(request_from_command(command, request_id, name, self.live.cameras))
        if action == "remove":
            respond_remove = lambda count: respond({"name": name, "removed_samples": count})
            count = self.gallery.remove(name, request_id=request_id, respond=respond_remove)
            self._changed(action, name, removed=True)
            return respond_remove(count)
        if action == "rename":
            new_name = self._name(command, "new_name")
            respond_rename = lambda _r: respond({"name": name, "new_name": new_name})
            self.gallery.rename(name, new_name, request_id=request_id, respond=respond_rename)
            if self.discovery is not None and new_name != name:
                self.discovery.person_removed(name)
            self._changed(action, new_name)
            return respond_rename(None)

        samples, fingerprint = self._samples(command, allow_embeddings=(action == "enroll"))
        respond_add = lambda ids: respond({"name": name, "sample_ids": list(ids), "added": len(ids)})
        if action == "enroll":
            ids = self.gallery.enroll(name, samples, fingerprint, request_id=request_id, respond=respond_add)
        else:
            ids = self.gallery.add_negative(name, samples, fingerprint, request_id=request_id, respond=respond_add)
        self._changed(action, name)
        return respond_add(ids)

    def _name(self, command, key):
        # type: (dict, str) -> str
        name = validate_name(_string(command, key))
        if len(name) > self.limits.max_name_length:
            raise CommandError("\"{}\" is {} characters, over limits.max_name_length ({})".format(
                key, len(name), self.limits.max_name_length))
        return name

    def _samples(self, command, allow_embeddings):
        # type: (dict, bool) -> tuple
        images = command.get("images")
        embeddings = command.get("embeddings")
        if (images is None) == (embeddings is None) or (embeddings is not None and not allow_embeddings):
            raise CommandError("give either \"images\" (base64 JPEG/PNG list){}".format(
                " or \"embeddings\" with \"fingerprint\"" if allow_embeddings else ""))
        items = images if images is not None else embeddings
        key = "images" if images is not None else "embeddings"
        if not isinstance(items, list) or not items:
            raise CommandError("{} must be a non-empty list".format(key))
        if len(items) > self.limits.max_images_per_command:
            raise CommandError("{} has {} entries, over limits.max_images_per_command ({}); split the command"
                               .format(key, len(items), self.limits.max_images_per_command))
        if embeddings is not None:
            fingerprint = _string(command, "fingerprint")
            return self._embedding_samples(embeddings, fingerprint, self._dimension(fingerprint)), fingerprint
        samples = []  # type: List[Sample]
        for i, text in enumerate(images):
            label = "images[{}]".format(i)
            if not isinstance(text, str):
                raise CommandError("{} must be a base64 string".format(label))
            # base64 is 4/3 of the bytes: refuse before decoding a huge string.
            if len(text) > self.limits.max_image_bytes * 4 // 3 + 4:
                raise CommandError("{} is over limits.max_image_bytes ({})".format(label, self.limits.max_image_bytes))
            try:
                data = base64.b64decode(text.split(",", 1)[-1] if text.startswith("data:") else text, validate=True)
            except (binascii.Error, ValueError):
                raise CommandError("{} is not valid base64".format(label))
            image = decode_image(data, self.limits.max_image_bytes, self.limits.max_image_pixels, name=label)
            samples.append(sample_from_image(self.pipeline, image, label))
        return samples, self.pipeline.recognizer_fingerprint

    def _dimension(self, fingerprint):
        # type: (str) -> Optional[int]
        """The length embeddings of this model have, where known: a wrong length would make
        every later frame fail to match (issue 13)."""
        if fingerprint == self.pipeline.recognizer_fingerprint:
            return self.pipeline.recognizer.dimension
        return known_embedding_dim(fingerprint)

    @staticmethod
    def _embedding_samples(embeddings, fingerprint, dimension):
        # type: (list, str, Optional[int]) -> List[Sample]
        samples = []
        for i, vector in enumerate(embeddings):
            if (not isinstance(vector, list) or not 16 <= len(vector) <= 4096
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vector)):
                raise CommandError("embeddings[{}] must be a list of 16-4096 numbers".format(i))
            if dimension is not None and len(vector) != dimension:
                raise CommandError("embeddings[{}] has {} numbers; model {} makes {}-d embeddings".format(
                    i, len(vector), fingerprint[:16], dimension))
            array = np.asarray(vector, np.float32)
            norm = float(np.linalg.norm(array))
            if not np.isfinite(norm) or norm == 0.0:
                raise CommandError("embeddings[{}] is zero or not finite".format(i))
            samples.append(Sample(crop=None, embedding=array / norm, source="mqtt:embeddings[{}]".format(i)))
        return samples

    def _changed(self, action, name, removed=False):
        # type: (str, str, bool) -> None
        if self.discovery is not None:
            try:
                if removed:
                    self.discovery.person_removed(name)
                else:
                    self.discovery.person_added(name)
            except Exception as exc:
                log.error("Home Assistant discovery for %r failed: %s", name, exc)
        if self.publisher is not None:
            try:
                self.publisher.publish_state(self.state_json())
            except Exception as exc:
                log.error("publishing the gallery state failed: %s", exc)
        if self.report is not None:
            self.report.changed()
        if self.on_change is not None:
            self.on_change(action, name)


def _request_id(command):
    # type: (dict) -> Optional[str]
    request_id = command.get("request_id")
    if request_id is not None and (not isinstance(request_id, str) or not request_id
                                   or len(request_id) > MAX_REQUEST_ID):
        raise CommandError("request_id must be a non-empty string of at most {} characters".format(MAX_REQUEST_ID))
    return request_id


def _string(command, key):
    # type: (dict, str) -> str
    value = command.get(key)
    if not isinstance(value, str) or not value:
        raise CommandError("\"{}\" must be a non-empty string".format(key))
    return value


def response_json(request_id, ok, result=None, error=None, **extra):
    # type: (Optional[str], bool, object, Optional[str], **object) -> str
    """The gallery/response body; extra: action-specific keys (enroll_live's summary, ...)."""
    body = dict(extra, request_id=request_id, ok=ok)
    if ok:
        body["result"] = result
    else:
        body["error"] = error
    return json.dumps(body, sort_keys=True)
