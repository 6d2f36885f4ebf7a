"""paho-mqtt 1.6 (Python 3.6, JetPack 4.6) and 2.x behind one small adapter."""
import logging
import ssl
import sys
import time
from typing import Any, Callable, Optional

import paho.mqtt.client as mqtt

from edge.daemon.config import Mqtt

log = logging.getLogger(__name__)

_CONNACK = {1: "unacceptable protocol version", 2: "client id rejected", 3: "broker unavailable",
            4: "bad user name or password", 5: "not authorised"}


def _code(value):
    # type: (object) -> int
    return int(getattr(value, "value", value) or 0)


def topic_matches(topic_filter, topic):
    # type: (str, str) -> bool
    return bool(mqtt.topic_matches_sub(topic_filter, topic))


def paho_client(client_id, clean_session=True):
    # type: (str, bool) -> mqtt.Client
    """A paho client with the version 2 callbacks on paho 2.x, the only ones on 1.6."""
    if hasattr(mqtt, "CallbackAPIVersion"):
        return mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session)
    return mqtt.Client(client_id=client_id, clean_session=clean_session)


class MqttClient(object):
    """Callbacks: on_connected(), on_disconnected(), on_published(mid), on_message(topic, payload)."""

    def __init__(self, settings, will_topic, on_connected, on_disconnected, on_published, on_message):
        # type: (Mqtt, str, Callable[[], None], Callable[[], None], Callable[[int], None], Callable[[str, bytes], None]) -> None
        self.settings = settings
        self._stopping = False
        client = paho_client(settings.client_id, clean_session=False)
        client.will_set(will_topic, "offline", qos=1, retain=True)
        if settings.username:
            client.username_pw_set(settings.username, settings.password or None)
        if settings.tls_ca or settings.tls_cert:
            # tls_ca "system": the system's CA store (a broker with a public certificate).
            ca = None if settings.tls_ca in ("", "system") else settings.tls_ca
            client.tls_set(ca_certs=ca, certfile=settings.tls_cert or None,
                           keyfile=settings.tls_key or None, cert_reqs=ssl.CERT_REQUIRED)
            client.tls_insecure_set(settings.tls_insecure)
        # paho doubles the delay (1, 2, 4, 8 s...): capped at 10 s, queued events leave at most ~10 s
        # after the broker is back (a 30 s cap measured 16 s after a 15 s outage).
        client.reconnect_delay_set(1, 10)
        client.max_queued_messages_set(0)
        client.on_connect = self._connect
        client.on_disconnect = self._disconnect
        if hasattr(client, "on_connect_fail"):
            client.on_connect_fail = self._connect_fail
        client.on_publish = self._publish
        client.on_message = self._message
        self.client = client
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        self._on_published = on_published
        self._on_message = on_message
        self.connected = False
        self.anonymous = False      # connected without a user name (said once in the log)
        self.last_error = None  # type: Optional[str]
        self._failures = 0
        self._last_warning = 0.0

    def start(self):
        # type: () -> None
        try:
            self.client.connect_async(self.settings.host, self.settings.port, keepalive=self.settings.keepalive)
        except (OSError, ValueError) as exc:
            log.warning("MQTT broker %s:%s: %s", self.settings.host, self.settings.port, exc)
        self.client.loop_start()

    def _warn(self, text):
        # type: (str) -> None
        # First failure, then at most every 5 minutes: a long outage must not flood the journal.
        self._failures += 1
        now = time.monotonic()
        if self._failures == 1 or now - self._last_warning >= 300:
            self._last_warning = now
            log.warning("%s (attempt %d; retrying with backoff up to 10 s)", text, self._failures)

    def _connect_fail(self, client, userdata, *rest):
        error = sys.exc_info()[1]       # paho calls this inside its `except OSError`
        if isinstance(error, ssl.SSLError):
            reason = getattr(error, "verify_message", None) or getattr(error, "reason", None) or str(error)
            self._warn("TLS handshake with the MQTT broker {}:{} failed: {}; check mqtt.tls_ca (the CA that "
                       "signed the broker's certificate), the broker's host name, and mqtt.tls_cert/mqtt.tls_key"
                       .format(self.settings.host, self.settings.port, reason))
            self.last_error = "TLS handshake failed: {}".format(reason)
            return
        self._warn("cannot reach the MQTT broker {}:{}; check mqtt.host/mqtt.port and that the broker runs"
                   .format(self.settings.host, self.settings.port))
        self.last_error = "broker unreachable"

    def _connect(self, client, userdata, flags, rc, *rest):
        code = _code(rc)
        if code != 0:
            error = _CONNACK.get(code, "refused (code {})".format(code))
            if code in (134, 135):      # paho 2.x reports MQTT 5 reason codes
                error = "bad user name or password" if code == 134 else "not authorised"
            what = " (check mqtt.username and the password)" if code in (4, 5, 134, 135) else ""
            self._warn("MQTT broker {}:{} refused the connection: {}{}".format(
                self.settings.host, self.settings.port, error, what))
            self.last_error = error
            return
        self.last_error = None
        self._failures = 0
        log.info("connected to MQTT broker %s:%s", self.settings.host, self.settings.port)
        if not self.settings.username and not self.anonymous:
            # The broker let us in without a user: it lets anyone in, to send gallery commands too.
            log.warning("the MQTT broker %s:%s accepts anonymous clients: anyone who reaches it can change "
                        "the gallery; close it (docs/INSTALL.md#the-mqtt-broker) and set mqtt.username",
                        self.settings.host, self.settings.port)
        self.anonymous = not self.settings.username
        self._on_connected()
        self.connected = True  # only now may the outbox sender start (after the resend reset)

    def _disconnect(self, client, userdata, *args):
        was = self.connected
        self.connected = False
        if was and not self._stopping:
            log.info("disconnected from MQTT broker %s:%s; reconnecting", self.settings.host, self.settings.port)
        self._on_disconnected()

    def _publish(self, client, userdata, mid, *rest):
        self._on_published(mid)

    def _message(self, client, userdata, message):
        self._on_message(message.topic, message.payload)

    def publish(self, topic, payload, qos, retain=False):
        # type: (str, object, int, bool) -> Optional[int]
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        return info.mid if info.rc == mqtt.MQTT_ERR_SUCCESS else None

    def publish_info(self, topic, payload, qos, retain=False):
        # type: (str, object, int, bool) -> Optional[Any]
        """paho's MQTTMessageInfo (is_published() after the PUBACK), or None when paho refused it.
        A message published while the link is down is kept by paho and sent on reconnect."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        return info if info.rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN) else None

    @staticmethod
    def delivered(info):
        # type: (Any) -> bool
        """Has the broker acknowledged this message? paho keeps a QoS 1 message published while
        the link was down and resends it after the reconnect, but the info it returned keeps the
        publish-time MQTT_ERR_NO_CONN, so is_published() raises RuntimeError for ever (1.6 and
        2.x); read the acknowledgement itself for those."""
        if info.rc == mqtt.MQTT_ERR_NO_CONN:
            with info._condition:
                return bool(info._published)
        return info.is_published()

    def subscribe(self, topic, qos):
        # type: (str, int) -> None
        self.client.subscribe(topic, qos=qos)

    def stop(self):
        # type: () -> None
        self._stopping = True
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()
