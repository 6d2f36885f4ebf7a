"""`faceedge gallery unknowns|name|ignore|forget`: the unknown identities (edge/unknowns) of a
gallery file, as the daemon's MQTT actions of the same names do (docs/CLI.md#unknown-faces).
`wrong` needs the running daemon (it remembers the tracks) and `recognize` is `faceedge identify`."""
import json
import os
import time

from edge.commands._options import open_gallery_from_args


def register(sub):
    p = sub.add_parser("unknowns", help="strangers kept as unknown identities (u-<n>): visits, cameras, crops")
    p.add_argument("--json", action="store_true",
                   help='JSON: {"unknowns": [{"unknown_id", "first_seen", "last_seen", "visits", "cameras", '
                        '"ignored", "tracks", "crops"}]} (the MQTT action\'s result)')
    p.add_argument("--crops", metavar="DIR", help="also write each identity's best crop to DIR/<unknown_id>.jpg")
    p.set_defaults(func=run_unknowns)
    p = sub.add_parser("name", help="an unknown identity is this person: its kept crops become their samples")
    p.add_argument("unknown_id")
    p.add_argument("name")
    p.set_defaults(func=run_name)
    p = sub.add_parser("ignore", help="never report this unknown face again (as anyone, or as a new unknown)")
    p.add_argument("unknown_id")
    p.set_defaults(func=run_ignore)
    p = sub.add_parser("forget", help="delete an unknown identity's crops and embeddings now")
    p.add_argument("unknown_id")
    p.set_defaults(func=run_forget)


def _store(gallery):
    from edge.unknowns.store import UnknownStore
    return UnknownStore(gallery)


def run_unknowns(args):
    from edge.unknowns.actions import list_unknowns
    with open_gallery_from_args(args) as gallery:
        store = _store(gallery)
        items = list_unknowns(_Context(store), {})["unknowns"]
        if args.crops:
            _write_crops(store, items, args.crops)
    if args.json:
        print(json.dumps({"unknowns": items}, sort_keys=True))
        return 0
    for item in items:
        print("{}\t{} visit{}\tlast seen {}\t{}{}".format(
            item["unknown_id"], item["visits"], "" if item["visits"] == 1 else "s",
            time.strftime("%Y-%m-%d %H:%M", time.localtime(item["last_seen"])), ",".join(item["cameras"]),
            "\tignored" if item["ignored"] else ""))
    print("{} unknown identit{}".format(len(items), "y" if len(items) == 1 else "ies"))
    return 0


def _write_crops(store, items, directory):
    import cv2
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700)
    for item in items:
        crop = store.best_crop(item["unknown_id"])
        if crop is not None:
            cv2.imwrite(os.path.join(directory, item["unknown_id"] + ".jpg"), crop)


class _Context(object):
    def __init__(self, store):
        self.store = store


def run_name(args):
    with open_gallery_from_args(args) as gallery:
        ids = _store(gallery).name(args.unknown_id, args.name)
    print("{} is now {}: {} sample{} added".format(args.unknown_id, args.name, len(ids), "" if len(ids) == 1 else "s"))
    return 0


def run_ignore(args):
    with open_gallery_from_args(args) as gallery:
        faces = _store(gallery).ignore(args.unknown_id)
    print("{} is ignored ({} kept face{} recognise it)".format(args.unknown_id, faces, "" if faces == 1 else "s"))
    return 0


def run_forget(args):
    with open_gallery_from_args(args) as gallery:
        count = _store(gallery).forget(args.unknown_id)
    print("forgot {}: {} crop{} deleted".format(args.unknown_id, count, "" if count == 1 else "s"))
    return 0
