"""The gallery's commands: enroll, negative, remove, rename, list (see command_router.py for the
envelope every command shares).

  enroll/negative: "name" and "images" (base64 JPEG/PNG), or "embeddings" + "fingerprint" (enroll)
  remove: "name";  rename: "name", "new_name";  list: nothing

Everything is validated and every image decoded and embedded before the gallery is touched,
so a bad command changes nothing. A change and its response are stored in one transaction:
a repeated request_id is answered from the gallery, never applied twice, and the answer is
sent only after the commit.
"""
import base64
import binascii
import json
import logging
from typing import Callable, List, Optional

import numpy as np

from edge.daemon.command_router import CommandError, Handler, name_field, ok_response, text_field
from edge.gallery.enrollment import sample_from_image
from edge.gallery.names import confusable_with
from edge.gallery.store import Sample
from edge.imageio import decode_image
from edge.models.manifest import known_embedding_dim

log = logging.getLogger(__name__)

SAMPLE_KEYS = ("name", "images", "embeddings", "fingerprint")


class GalleryActions(object):
    def __init__(self, gallery, pipeline, limits, changes, min_quality=None):
        # type: (object, object, object, object, Optional[Callable[[], float]]) -> None
        """changes: edge.daemon.gallery_changes.GalleryChanges, told of every committed change;
        min_quality() -> the quality bar in force (the daemon's settings; default the pipeline's)."""
        self.gallery = gallery
        self.pipeline = pipeline
        self.limits = limits
        self.changes = changes
        self.min_quality = min_quality or (lambda: pipeline.min_quality)

    def handlers(self):
        # type: () -> List[Handler]
        return [Handler("enroll", self.enroll, SAMPLE_KEYS),
                Handler("negative", self.negative, SAMPLE_KEYS),
                Handler("remove", self.remove, ("name",)),
                Handler("rename", self.rename, ("name", "new_name")),
                Handler("list", self.list, ())]

    def list(self, command, request_id):
        # type: (dict, Optional[str]) -> str
        people = [{"name": p.name, "samples": p.samples, "negatives": p.negatives, "created": p.created}
                  for p in self.gallery.list_people()]
        # Read-only: answered afresh when repeated (recording it would bump the gallery version).
        return ok_response(request_id)({"people": people, "version": self.gallery.version})

    def remove(self, command, request_id):
        # type: (dict, Optional[str]) -> str
        name = name_field(command, "name", self.limits)
        respond = lambda count: ok_response(request_id)({"name": name, "removed_samples": count})
        count = self.gallery.remove(name, request_id=request_id, respond=respond)
        self.changes.after("remove", name, removed=True)
        return respond(count)

    def rename(self, command, request_id):
        # type: (dict, Optional[str]) -> str
        name = name_field(command, "name", self.limits)
        new_name = name_field(command, "new_name", self.limits)
        respond = lambda _r: ok_response(request_id)({"name": name, "new_name": new_name})
        self.gallery.rename(name, new_name, request_id=request_id, respond=respond)
        self.changes.renamed(name, new_name)
        return respond(None)

    def enroll(self, command, request_id):
        # type: (dict, Optional[str]) -> str
        return self._add(command, request_id, negative=False)

    def negative(self, command, request_id):
        # type: (dict, Optional[str]) -> str
        return self._add(command, request_id, negative=True)

    def _add(self, command, request_id, negative):
        # type: (dict, Optional[str], bool) -> str
        name = name_field(command, "name", self.limits)
        samples, fingerprint = self._samples(command, allow_embeddings=not negative)
        existing = [p.name for p in self.gallery.list_people()]
        # Say what a quiet normalisation did: " Obama " is added to Obama (merged), and a name
        # that only looks like another one ("Оbama", Cyrillic О) is named in the answer.
        facts = {"merged": name in existing, "confusable_with": confusable_with(name, existing)}
        if facts["confusable_with"]:
            log.warning("enrolling %s: the name looks like %s", json.dumps(name), facts["confusable_with"])
        respond = lambda ids: ok_response(request_id)(dict(facts, name=name, sample_ids=list(ids), added=len(ids)))
        add = self.gallery.add_negative if negative else self.gallery.enroll
        ids = add(name, samples, fingerprint, request_id=request_id, respond=respond)
        self.changes.after("negative" if negative else "enroll", name)
        return respond(ids)

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
            fingerprint = text_field(command, "fingerprint")
            return _embedding_samples(embeddings, fingerprint, self._dimension(fingerprint)), fingerprint
        return [self._image_sample(i, text) for i, text in enumerate(images)], self.pipeline.recognizer_fingerprint

    def _dimension(self, fingerprint):
        # type: (str) -> Optional[int]
        """The length embeddings of this model have, where known: a wrong length would make
        every later frame fail to match (issue 13)."""
        if fingerprint == self.pipeline.recognizer_fingerprint:
            return self.pipeline.recognizer.dimension
        return known_embedding_dim(fingerprint)

    def _image_sample(self, i, text):
        # type: (int, object) -> Sample
        label = "images[{}]".format(i)
        image = decode_command_image(self.limits, label, text)
        return sample_from_image(self.pipeline, image, label, self.min_quality())


def decode_command_image(limits, label, text):
    # type: (object, str, object) -> np.ndarray
    """One base64 JPEG/PNG of a command, within limits.max_image_bytes and max_image_pixels."""
    if not isinstance(text, str):
        raise CommandError("{} must be a base64 string".format(label))
    # base64 is 4/3 of the bytes: refuse before decoding a huge string.
    if len(text) > limits.max_image_bytes * 4 // 3 + 4:
        raise CommandError("{} is over limits.max_image_bytes ({})".format(label, limits.max_image_bytes))
    try:
        data = base64.b64decode(text.split(",", 1)[-1] if text.startswith("data:") else text, validate=True)
    except (binascii.Error, ValueError):
        raise CommandError("{} is not valid base64".format(label))
    return decode_image(data, limits.max_image_bytes, limits.max_image_pixels, name=label)


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
