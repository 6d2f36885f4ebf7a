"""The commands on unknown identities and track decisions (edge/unknowns/actions.py), as the
router's handlers: unknowns, name, ignore, forget, wrong, recognize. Same envelope and rules
as every gallery command (command_router.py): request_id, all or nothing, the answer stored
with the change and sent after the commit; `unknowns` and `recognize` change nothing and are
answered afresh.
"""
from typing import Callable, List, Optional

from edge.daemon.command_router import CommandError, Handler, name_field, ok_response
from edge.daemon.gallery_commands import decode_command_image
from edge.unknowns import actions


class UnknownActions(object):
    def __init__(self, context, pipeline, limits, changes, publish_state=None):
        # type: (actions.Context, object, object, object, Optional[Callable[[], None]]) -> None
        """context: edge.unknowns.actions.Context; changes: GalleryChanges (a name enrolls someone);
        publish_state(): the retained unknowns/state after a change."""
        self.ctx = context
        self.pipeline = pipeline
        self.limits = limits
        self.changes = changes
        self.publish_state = publish_state

    def handlers(self):
        # type: () -> List[Handler]
        return [Handler("unknowns", self.list, ("with_crop",)),
                Handler("name", self.name, ("unknown_id", "name")),
                Handler("ignore", self.ignore, ("unknown_id",)),
                Handler("forget", self.forget, ("unknown_id",)),
                Handler("wrong", self.wrong, ("event_id", "track_id")),
                Handler("recognize", self.recognize, ("images",))]

    def _changed(self):
        if self.publish_state is not None:
            self.publish_state()

    def list(self, command, request_id):
        # type: (dict, Optional[str]) -> str
        return ok_response(request_id)(actions.list_unknowns(self.ctx, command, request_id))

    def name(self, command, request_id):
        # type: (dict, Optional[str]) -> str
        name = name_field(command, "name", self.limits)
        respond = ok_response(request_id)
        result = actions.name_unknown(self.ctx, command, request_id, name, respond)
        self.changes.after("name", name)
        self._changed()
        return respond(result)

    def ignore(self, command, request_id):
        # type: (dict, Optional[str]) -> str
        respond = ok_response(request_id)
        result = actions.ignore_unknown(self.ctx, command, request_id, respond)
        self._changed()
        return respond(result)

    def forget(self, command, request_id):
        # type: (dict, Optional[str]) -> str
        respond = ok_response(request_id)
        result = actions.forget_unknown(self.ctx, command, request_id, respond)
        self._changed()
        return respond(result)

    def wrong(self, command, request_id):
        # type: (dict, Optional[str]) -> str
        respond = ok_response(request_id)
        result = actions.wrong(self.ctx, command, request_id, respond)
        self.changes.after("negative", result["name"])
        return respond(result)

    def recognize(self, command, request_id):
        # type: (dict, Optional[str]) -> str
        images = command.get("images")
        if not isinstance(images, list) or not images:
            raise CommandError("images must be a non-empty list of base64 JPEG/PNG")
        if len(images) > self.limits.max_images_per_command:
            raise CommandError("images has {} entries, over limits.max_images_per_command ({}); split the command"
                               .format(len(images), self.limits.max_images_per_command))
        decoded = [decode_command_image(self.limits, "images[{}]".format(i), text) for i, text in enumerate(images)]
        return ok_response(request_id)(actions.recognize(self.ctx, decoded, self.pipeline))
