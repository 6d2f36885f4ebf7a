"""Many doors, one gallery: the shared gallery over MQTT (docs/MANY_DOORS.md).

format.py  the retained messages (person, manifest): JSON, size bounds, the revision order
state.py   the shared gallery's bookkeeping in the local SQLite gallery (ids, revisions, crops as sent)
sync.py    the engine: local changes -> messages, messages -> local changes (no MQTT in it)
"""
