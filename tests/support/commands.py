"""The daemon's command router without the daemon: for tests of commands and their answers."""
from edge.commands.daemon import command_router as daemon_router
from edge.daemon.gallery_changes import GalleryChanges


def command_router(gallery, pipeline, limits, on_change=None, publisher=None, discovery=None, report=None):
    """The router `faceedge run` builds (gallery actions, report when given); publisher and
    discovery as in the daemon: retained state and Home Assistant entities after each change."""
    changes = GalleryChanges(gallery, publisher, discovery, report, on_change)
    if publisher is not None:
        publisher.on_connected(changes.announce)
    return daemon_router(gallery, pipeline, limits, changes, report=report)
