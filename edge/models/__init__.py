"""Model files: the pinned manifest, fetching from wheels, int8bq conversion."""
import os


def default_model_dir():
    # type: () -> str
    """`$XDG_DATA_HOME/faceedge/models`, else `~/.local/share/faceedge/models`."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "faceedge", "models")
