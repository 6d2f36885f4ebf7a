"""The command router: what every command shares, and how a component adds its own."""
import json

import pytest

from edge.daemon.command_router import CommandError, CommandRouter, Handler, ok_response
from edge.daemon.config import config_from_dict


class Echo(object):
    """A component with one command, as the gallery, live enrollment and the report have theirs."""

    def __init__(self):
        self.seen = []

    def handlers(self):
        return [Handler("echo", self.echo, ("text",))]

    def echo(self, command, request_id):
        if command.get("text") == "refuse":
            raise CommandError("refused, as asked")
        self.seen.append(command["text"])
        return ok_response(request_id)({"text": command["text"]})


def router(stored=None):
    return CommandRouter(config_from_dict({}).limits, stored).add(Echo().handlers())


def answer(r, **command):
    return json.loads(r.handle(json.dumps(command).encode("utf-8")))


def test_a_new_command_is_one_handler_and_one_table_entry():
    r = router()
    assert answer(r, request_id="1", action="echo", text="hi") == {"request_id": "1", "ok": True,
                                                                   "result": {"text": "hi"}}
    refused = answer(r, request_id="2", action="echo", text="refuse")
    assert refused == {"request_id": "2", "ok": False, "error": "refused, as asked"}
    unknown = answer(r, request_id="3", action="shout")
    assert not unknown["ok"] and "unknown action 'shout'; use one of echo" in unknown["error"]
    extra = answer(r, request_id="4", action="echo", text="x", loud=True)
    assert not extra["ok"] and "unknown key 'loud'; known keys: request_id, action, text" in extra["error"]
    for action in ([], {}, 3, None):      # not a name of an action: answered, not a crash
        bad = answer(r, request_id="5", action=action)
        assert not bad["ok"] and "unknown action" in bad["error"]


def test_a_repeated_request_is_answered_from_the_store_not_applied_again():
    stored = {"r1": json.dumps({"request_id": "r1", "ok": True, "result": "before"})}
    component = Echo()
    r = CommandRouter(config_from_dict({}).limits, stored.get).add(component.handlers())
    assert answer(r, request_id="r1", action="echo", text="again")["result"] == "before"
    assert component.seen == []


def test_two_handlers_for_one_action_are_refused():
    with pytest.raises(ValueError):
        router().add(Echo().handlers())


def test_a_rule_around_every_command():
    r = router()
    r.wrap(lambda payload, route: json.dumps({"wrapped": json.loads(route(payload))}))
    assert answer(r, action="echo", text="hi")["wrapped"]["result"] == {"text": "hi"}
