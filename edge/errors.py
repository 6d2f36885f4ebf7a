"""Errors that reach the user: each says what was wrong and what to do."""


class FaceEdgeError(Exception):
    """Base of every error the CLI prints as one line and the daemon reports on MQTT."""


class ConfigError(FaceEdgeError):
    pass


class ModelError(FaceEdgeError):
    pass


class ImageError(FaceEdgeError):
    pass


class NoFaceError(FaceEdgeError):
    pass


class GalleryError(FaceEdgeError):
    pass


class BackendError(FaceEdgeError):
    pass
