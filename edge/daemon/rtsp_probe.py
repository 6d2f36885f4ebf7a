"""Why an RTSP camera does not open: one DESCRIBE request of our own, bounded by a timeout.

OpenCV only says "not opened"; the user needs "wrong password" or "no such path". The probe
answers with the server's status (401, 404, ...), "connection refused" or "no answer", and
answers a 401 with the URL's credentials (Basic or Digest) to tell a wrong password from none.
"""
import base64
import hashlib
import re
import socket

from urllib.parse import unquote, urlsplit

_STATUS = re.compile(r"^RTSP/1\.\d (\d{3}) ?(.*)$")
_MAX_HEADER = 65536


def _request(sock, url, cseq, authorization=None):
    lines = ["DESCRIBE {} RTSP/1.0".format(url), "CSeq: {}".format(cseq), "Accept: application/sdp",
             "User-Agent: faceedge-probe"]
    if authorization:
        lines.append("Authorization: " + authorization)
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"))
    data = b""
    while b"\r\n\r\n" not in data and len(data) < _MAX_HEADER:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    match = _STATUS.match(head[0]) if head and head[0] else None
    if match is None:
        raise ValueError("not an RTSP answer: {!r}".format(head[0][:60] if head else ""))
    headers = {}
    for line in head[1:]:
        key, _, value = line.partition(":")
        headers.setdefault(key.strip().lower(), []).append(value.strip())
    return int(match.group(1)), match.group(2), headers


def _authorization(challenges, user, password, url):
    for challenge in challenges:
        scheme, _, params = challenge.partition(" ")
        if scheme.lower() == "basic":
            return "Basic " + base64.b64encode("{}:{}".format(user, password).encode("utf-8")).decode("ascii")
        if scheme.lower() == "digest":
            fields = dict(re.findall(r'(\w+)="?([^",]*)"?', params))
            realm, nonce = fields.get("realm", ""), fields.get("nonce", "")
            ha1 = hashlib.md5("{}:{}:{}".format(user, realm, password).encode("utf-8")).hexdigest()
            ha2 = hashlib.md5("DESCRIBE:{}".format(url).encode("utf-8")).hexdigest()
            response = hashlib.md5("{}:{}:{}".format(ha1, nonce, ha2).encode("utf-8")).hexdigest()
            return 'Digest username="{}", realm="{}", nonce="{}", uri="{}", response="{}"'.format(
                user, realm, nonce, url, response)
    return None


def _describe(url, timeout_s):
    """(status code, reason, whether credentials were sent)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 554
    bare = "rtsp://{}:{}{}".format(host, port, parts.path or "/") + ("?" + parts.query if parts.query else "")
    sock = socket.create_connection((host, port), timeout=timeout_s)
    try:
        sock.settimeout(timeout_s)
        code, reason, headers = _request(sock, bare, 1)
        if code == 401 and parts.username is not None:
            auth = _authorization(headers.get("www-authenticate", []), unquote(parts.username),
                                  unquote(parts.password or ""), bare)
            if auth:
                code, reason, headers = _request(sock, bare, 2, auth)
                return code, reason, True
        return code, reason, False
    finally:
        sock.close()


def explain(url, timeout_s=3.0):
    # type: (str, float) -> str
    """A short reason why an rtsp:// URL does not give a stream (never contains credentials)."""
    parts = urlsplit(url)
    where = "{}:{}".format(parts.hostname, parts.port or 554)
    if parts.scheme != "rtsp":
        return "{} (not probed)".format(parts.scheme)
    try:
        code, reason, sent = _describe(url, timeout_s)
    except socket.timeout:
        return "no answer from {} within {:.0f} s".format(where, timeout_s)
    except ConnectionRefusedError:
        return "connection refused by {} (no RTSP server there)".format(where)
    except (OSError, ValueError) as exc:
        return "{}: {}".format(where, exc)
    if code == 401:
        return "401 Unauthorized: {}".format("wrong user name or password" if sent
                                             else "the camera needs a user name and password (user:pass@ in the URL)")
    if code == 404:
        return "404 Not Found: no stream at path {}".format(parts.path or "/")
    if code == 200:
        return "the server answers (DESCRIBE 200 OK) but the stream did not start (codec or decoder?)"
    return "RTSP {} {}".format(code, reason).strip()
