"""Home Assistant MQTT discovery: one presence binary_sensor per enrolled person, created at
enrollment (not at first sighting) and removed with an empty retained config when the person
is removed; plus one "unknown face" entity.

  config  <discovery_prefix>/binary_sensor/faceedge_<device>/person_<slug>/config  (retained)
          <discovery_prefix>/binary_sensor/faceedge_<device>/unknown_face/config
  state   <root>/person/<slug>, <root>/person/unknown  (retained JSON, Publisher.publish_presence)
Disabled when mqtt.discovery_prefix is "".
"""
import hashlib
import json
import re
from typing import Callable, Iterable

UNKNOWN_SLUG = "unknown"


def person_slug(name):
    # type: (str) -> str
    """A topic- and entity-safe id; a name that does not survive lowercasing to [a-z0-9_]
    gets a hash suffix so that two different names never share an entity or a topic."""
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    if not slug or slug != name or slug == UNKNOWN_SLUG:
        slug = (slug[:40] + "_" if slug else "") + hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]
    return slug


class Discovery(object):
    def __init__(self, config, publish):
        # type: (object, Callable[[str, str, bool], None]) -> None
        """publish(topic, payload, retain): the publisher's publish_raw."""
        self.prefix = config.mqtt.discovery_prefix
        self.device_id = config.device_id
        self.root = config.topic_root
        self._publish = publish

    @property
    def enabled(self):
        # type: () -> bool
        return bool(self.prefix)

    def _config_topic(self, object_id):
        # type: (str) -> str
        return "{}/binary_sensor/faceedge_{}/{}/config".format(self.prefix, self.device_id, object_id)

    def config_topic(self, name):
        # type: (str) -> str
        return self._config_topic("person_" + person_slug(name))

    def unknown_config_topic(self):
        # type: () -> str
        return self._config_topic("unknown_face")

    def state_topic(self, name):
        # type: (object) -> str
        return "{}/person/{}".format(self.root, person_slug(name) if name else UNKNOWN_SLUG)

    def _payload(self, object_id, title, state_topic, icon):
        # type: (str, str, str, str) -> str
        unique = "faceedge_{}_{}".format(self.device_id, object_id)
        return json.dumps({
            "name": title,
            "unique_id": unique,
            "object_id": unique,
            "device_class": "presence",
            "state_topic": state_topic,
            "value_template": "{{ 'ON' if value_json.present else 'OFF' }}",
            "json_attributes_topic": state_topic,
            "availability_topic": "{}/available".format(self.root),
            "payload_available": "online",
            "payload_not_available": "offline",
            "icon": icon,
            "device": {"identifiers": ["faceedge_{}".format(self.device_id)],
                       "name": "faceedge {}".format(self.device_id), "manufacturer": "faceedge"},
        }, sort_keys=True)

    def config_payload(self, name):
        # type: (str) -> str
        return self._payload("person_" + person_slug(name), name, self.state_topic(name), "mdi:account")

    def person_added(self, name):
        # type: (str) -> None
        if self.enabled:
            self._publish(self.config_topic(name), self.config_payload(name), True)

    def person_removed(self, name):
        # type: (str) -> None
        if self.enabled:
            # An empty retained message deletes the entity; the second clears its retained state.
            self._publish(self.config_topic(name), "", True)
            self._publish(self.state_topic(name), "", True)

    def publish_unknown(self):
        # type: () -> None
        if self.enabled:
            self._publish(self.unknown_config_topic(),
                          self._payload("unknown_face", "Unknown face", self.state_topic(None), "mdi:account-question"),
                          True)

    def publish_all(self, names):
        # type: (Iterable[str]) -> None
        """Everyone enrolled, and the unknown-face entity (after each connect: idempotent)."""
        self.publish_unknown()
        for name in names:
            self.person_added(name)
