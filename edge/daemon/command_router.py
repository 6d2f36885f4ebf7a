"""Every command received on `<root>/gallery/set`, routed to its handler, answered on `gallery/response`.

Request:  {"request_id": "...", "action": "<action>", ...the action's keys}
Response: {"request_id", "ok", "result"} or {"request_id", "ok": false, "error"}.

The router owns what all commands share: the size limit, JSON decoding, the request id, the
known keys, repeat-safety (a request id answered before is answered again from the gallery,
never applied twice), turning errors into answers, and the one worker thread that runs the
handlers off paho's network thread. The table of actions is built from the handlers each
component offers (`handlers()` returning `Handler`s); adding a command is one handler, one
entry in its component's `handlers()`, and a test (docs/ARCHITECTURE.md shows how).
"""
import hashlib
import json
import logging
import queue
import re
import threading
from typing import Callable, Dict, Iterable, NamedTuple, Optional, Sequence

from edge.errors import FaceEdgeError
from edge.gallery.store import AlreadyDone, validate_name

log = logging.getLogger("faceedge.commands")

MAX_REQUEST_ID = 200
MAX_FIELD = 256            # a text field that is no name, image or embedding (fingerprint, camera, ...)
QUEUED_PAYLOADS = 4        # commands waiting, in units of limits.max_payload_bytes (memory bound)
COMMON_KEYS = ("request_id", "action")


class RequestId(str):
    """A request id that knows what it was sent with: `digest` (sha256 of the command), so that a
    request id used again for another command is refused instead of answered with the old answer
    (Gallery stores the digest beside the response)."""

    def __new__(cls, value, digest):
        # type: (str, str) -> RequestId
        self = super(RequestId, cls).__new__(cls, value)
        self.digest = digest
        return self


def shown(request_id):
    # type: (Optional[str]) -> str
    """A request id for a log line: quoted and escaped (a newline in it must not forge a line)."""
    return json.dumps(request_id) if request_id is not None else "(no request_id)"

_EARLY_REQUEST_ID = re.compile(br'"request_id"\s*:\s*"([^"\\]{1,200})"')

Handler = NamedTuple("Handler", [
    ("action", str),
    ("run", Callable[[dict, Optional[str]], Optional[str]]),   # (command, request_id) -> response JSON
    ("keys", Sequence[str]),          # the command keys it reads, besides request_id and action
])


class CommandError(FaceEdgeError):
    def __init__(self, message, request_id=None):
        # type: (str, Optional[str]) -> None
        super(CommandError, self).__init__(message)
        self.request_id = request_id


class CommandRouter(object):
    def __init__(self, limits, stored_response=None):
        # type: (object, Optional[Callable[[str], Optional[str]]]) -> None
        """limits: the config's [limits]; stored_response(request_id) -> the answer given before
        (Gallery.response_for), so that a repeated command is not applied twice."""
        self.limits = limits
        self.stored_response = stored_response
        self.table = {}            # type: Dict[str, Handler]
        self._keys = list(COMMON_KEYS)
        self._queue = queue.Queue()
        self._queued_bytes = 0
        self._queued_lock = threading.Lock()
        self._worker = None        # type: Optional[threading.Thread]
        self._publish = None       # type: Optional[Callable[[str], None]]
        self._around = None        # type: Optional[Callable[[bytes, Callable[[bytes], Optional[str]]], Optional[str]]]

    def add(self, handlers):
        # type: (Iterable[Handler]) -> CommandRouter
        for handler in handlers:
            if handler.action in self.table:
                raise ValueError("action {!r} has two handlers".format(handler.action))
            self.table[handler.action] = handler
            self._keys.extend(k for k in handler.keys if k not in self._keys)
        return self

    def wrap(self, around):
        # type: (Callable[[bytes, Callable[[bytes], Optional[str]]], Optional[str]]) -> None
        """around(payload, route) -> response: a rule for every command, e.g. the shared gallery's
        (a reader refuses changes; a writer publishes a change before it is answered)."""
        if self._around is not None:
            raise ValueError("the router is wrapped already")
        self._around = around

    # -- the worker thread ----------------------------------------------------------------
    def start(self, publish_response):
        # type: (Callable[[str], None]) -> None
        """Answer commands on a thread of the router's own; publish_response(payload) sends an answer."""
        self._publish = publish_response
        self._worker = threading.Thread(target=self._work, name="commands")
        self._worker.daemon = True
        self._worker.start()

    def submit(self, payload):
        # type: (bytes) -> None
        """A command as received (paho's thread): queued, answered by the worker; refused at once
        when the commands waiting already hold QUEUED_PAYLOADS x max_payload_bytes."""
        size = len(payload)
        with self._queued_lock:
            full = self._queued_bytes + size > QUEUED_PAYLOADS * self.limits.max_payload_bytes
            if not full:
                self._queued_bytes += size
        if full:
            found = _EARLY_REQUEST_ID.search(payload[:4096]) if isinstance(payload, bytes) else None
            request_id = found.group(1).decode("utf-8", "replace") if found else None
            log.warning("gallery command %s refused: too many commands waiting", shown(request_id))
            if self._publish is not None:
                self._publish(response_json(request_id, False, error="busy: {} bytes of commands are waiting; "
                                            "send this one again later".format(self._queued_bytes)))
            return
        self._queue.put(payload)

    def stop(self, timeout_s=30.0):
        # type: (float) -> None
        """After the command being handled (its answer is still published), before the gallery closes."""
        self._queue.put(None)
        if self._worker is not None:
            self._worker.join(timeout_s)

    def _work(self):
        while True:
            payload = self._queue.get()
            if payload is None:
                return
            with self._queued_lock:
                self._queued_bytes -= len(payload)
            response = self.handle(payload)
            if response is not None:
                try:
                    self._publish(response)
                except Exception as exc:
                    log.error("publishing a command response failed: %s", exc)

    # -- one command ----------------------------------------------------------------------
    def handle(self, payload):
        # type: (bytes) -> Optional[str]
        """The response to publish; None when the handler published it already (enroll_live's progress)."""
        if self._around is not None:
            return self._around(payload, self._route)
        return self._route(payload)

    def _route(self, payload):
        # type: (bytes) -> Optional[str]
        request_id = None
        try:
            command = self._decode(payload)
            request_id = _request_id(command)
            handler = self._check(command)
            if request_id is not None and self.stored_response is not None:
                stored = self.stored_response(request_id)
                if stored is not None:
                    return stored
            return handler.run(command, request_id)
        except AlreadyDone as done:
            return done.response
        except FaceEdgeError as exc:
            request_id = request_id or getattr(exc, "request_id", None)
            log.warning("gallery command %s refused: %s", shown(request_id), exc)
            return response_json(request_id, False, error=str(exc))
        except Exception as exc:     # a bug must not stop the command worker; the gallery rolled back
            log.exception("gallery command %s failed", shown(request_id))
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
            command = json.loads(payload.decode("utf-8"), parse_int=_bounded_int, parse_float=_finite_float,
                                 parse_constant=_no_constant)
        except CommandError:
            raise
        except (UnicodeDecodeError, ValueError) as exc:
            raise CommandError("command is not valid JSON ({}); send a JSON object with an \"action\"".format(exc))
        except RecursionError:
            raise CommandError("command is nested too deeply to be a gallery command")
        if not isinstance(command, dict):
            raise CommandError("command must be a JSON object with an \"action\"")
        return command

    def _check(self, command):
        # type: (dict) -> Handler
        unknown = sorted(k for k in command if k not in self._keys)
        if unknown:
            raise CommandError("unknown key {!r}; known keys: {}".format(unknown[0], ", ".join(self._keys)))
        action = command.get("action")
        handler = self.table.get(action) if isinstance(action, str) else None
        if handler is None:
            raise CommandError("unknown action {!r}; use one of {}".format(action, ", ".join(self.table)))
        return handler


# -- what handlers share ---------------------------------------------------------------------
def _bounded_int(text):
    # type: (str) -> int
    if len(text.lstrip("-")) > 18:
        raise CommandError("a number in the command has {} digits; no field takes more than 18".format(len(text)))
    return int(text)


def _finite_float(text):
    # type: (str) -> float
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise CommandError("a number in the command is too large ({}...)".format(text[:20]))
    return value


def _no_constant(text):
    # type: (str) -> float
    raise CommandError("{} is not a number a command may hold".format(text))


def _request_id(command):
    # type: (dict) -> Optional[str]
    request_id = command.get("request_id")
    if request_id is None:
        return None
    if not isinstance(request_id, str) or not request_id:
        raise CommandError("request_id must be a non-empty string of at most {} characters".format(MAX_REQUEST_ID))
    _utf8(request_id, "request_id")
    if len(request_id) > MAX_REQUEST_ID:
        # Echo the start of it: the client can still match the answer to its command.
        raise CommandError("request_id is {} characters, over {}".format(len(request_id), MAX_REQUEST_ID),
                           request_id=request_id[:MAX_REQUEST_ID])
    digest = hashlib.sha256(json.dumps(command, sort_keys=True).encode("ascii")).hexdigest()
    return RequestId(request_id, digest)


def _utf8(value, key):
    # type: (str, str) -> None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise CommandError("\"{}\" is not valid Unicode text (a lone surrogate)".format(key))


def text_field(command, key, max_length=MAX_FIELD):
    # type: (dict, str, int) -> str
    value = command.get(key)
    if not isinstance(value, str) or not value:
        raise CommandError("\"{}\" must be a non-empty string".format(key))
    if len(value) > max_length:
        raise CommandError("\"{}\" is {} characters, over {}".format(key, len(value), max_length))
    _utf8(value, key)
    return value


def name_field(command, key, limits):
    # type: (dict, str, object) -> str
    """A person's name from the command: a valid gallery name within limits.max_name_length."""
    name = validate_name(text_field(command, key))
    if len(name) > limits.max_name_length:
        raise CommandError("\"{}\" is {} characters, over limits.max_name_length ({})".format(
            key, len(name), limits.max_name_length))
    return name


def response_json(request_id, ok, result=None, error=None, **extra):
    # type: (Optional[str], bool, object, Optional[str], **object) -> str
    """The gallery/response body; extra: action-specific keys (enroll_live's summary, ...)."""
    body = dict(extra, request_id=request_id, ok=ok)
    if ok:
        body["result"] = result
    else:
        body["error"] = error
    return json.dumps(body, sort_keys=True)


def ok_response(request_id):
    # type: (Optional[str]) -> Callable[[object], str]
    """respond(result) -> the success answer for request_id (stored with the gallery change)."""
    return lambda result: response_json(request_id, True, result=result)
