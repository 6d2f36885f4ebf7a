"""Where faceedge keeps its data when the configuration does not say: one definition for the
daemon, the command line, install.sh (through `faceedge config get`) and the backup unit."""
import os


def data_dir():
    # type: () -> str
    """$STATE_DIRECTORY under systemd (StateDirectory=faceedge), else ~/.local/share/faceedge."""
    state = os.environ.get("STATE_DIRECTORY")
    if state:
        return state.split(":")[0]
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return os.path.join(base, "faceedge")


def default_gallery_path():
    # type: () -> str
    """$FACEEDGE_GALLERY, else <data dir>/gallery/gallery.db (a 0700 directory: biometric data).
    A gallery left at the old default <data dir>/gallery.db is still the one used."""
    env = os.environ.get("FACEEDGE_GALLERY")
    if env:
        return env
    base = data_dir()
    path = os.path.join(base, "gallery", "gallery.db")
    legacy = os.path.join(base, "gallery.db")
    if os.path.exists(legacy) and not os.path.exists(path):
        return legacy
    return path
