"""People and their samples (face crops, negatives): enroll, remove, rename, import, list."""
import time
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from edge.errors import GalleryError
from edge.gallery.records import (Person, Record, Sample, StoredSample, Summary, decode_crop, encode_crop,
                                  validate_name)


class PeopleStore(object):
    """Mixin of Gallery: needs _lock, _db, _change, _checkpoint, _insert_embedding."""

    def _person_id(self, db, name):
        # type: (sqlite3.Connection, str) -> int
        row = db.execute("SELECT id FROM people WHERE name=?", (name,)).fetchone()
        if row is None:
            raise GalleryError("no person named {!r} in the gallery".format(name))
        return int(row[0])

    def list_people(self):
        # type: () -> List[Person]
        with self._lock:
            rows = self._db.execute(
                "SELECT p.id, p.name, "
                "COALESCE(SUM(CASE WHEN s.negative=0 THEN 1 ELSE 0 END), 0), "
                "COALESCE(SUM(CASE WHEN s.negative=1 THEN 1 ELSE 0 END), 0), p.created "
                "FROM people p LEFT JOIN samples s ON s.person_id = p.id GROUP BY p.id ORDER BY p.name").fetchall()
        return [Person(int(r[0]), r[1], int(r[2]), int(r[3]), float(r[4])) for r in rows]

    def summary(self):
        # type: () -> Summary
        with self._lock:
            self._db.execute("BEGIN")  # one snapshot: the counts and the version agree
            try:
                people = self._db.execute("SELECT COUNT(*) FROM people").fetchone()[0]
                samples = self._db.execute("SELECT COUNT(*) FROM samples WHERE negative=0").fetchone()[0]
                negatives = self._db.execute("SELECT COUNT(*) FROM samples WHERE negative=1").fetchone()[0]
                prints = [r[0] for r in self._db.execute("SELECT DISTINCT fingerprint FROM embeddings ORDER BY 1")]
                version = self._db.execute("SELECT value FROM meta WHERE key='version'").fetchone()[0]
            finally:
                self._db.execute("COMMIT")
        return Summary(int(people), int(samples), int(negatives), prints, int(version))

    def samples(self, with_crops=True, page=256):
        # type: (bool, int) -> Iterator[StoredSample]
        """Every sample, in pages (crops of a large gallery do not fit in memory at once)."""
        last = 0
        while True:
            with self._lock:
                rows = self._db.execute(
                    "SELECT s.id, p.name, s.negative, {}, s.source, s.created FROM samples s "
                    "JOIN people p ON p.id = s.person_id WHERE s.id > ? ORDER BY s.id LIMIT ?".format(
                        "s.crop" if with_crops else "NULL"), (last, page)).fetchall()
            if not rows:
                return
            for r in rows:
                yield StoredSample(int(r[0]), r[1], bool(r[2]), decode_crop(r[3]), r[4], float(r[5]))
            last = int(rows[-1][0])

    def _insert_samples(self, db, person_id, samples, fingerprint, negative):
        # type: (sqlite3.Connection, int, Sequence[Sample], Optional[str], bool) -> List[int]
        ids = []
        now = time.time()
        for sample in samples:
            crop = encode_crop(sample.crop) if sample.crop is not None else None
            if crop is None and sample.embedding is None:
                raise GalleryError("a sample needs a face crop or an embedding")
            cursor = db.execute("INSERT INTO samples(person_id, negative, crop, source, created) VALUES (?, ?, ?, ?, ?)",
                                (person_id, int(negative), crop, sample.source or "", now))
            ids.append(int(cursor.lastrowid))
            if sample.embedding is not None:
                if not fingerprint:
                    raise GalleryError("an embedding needs the fingerprint of the model that made it")
                self._insert_embedding(db, cursor.lastrowid, fingerprint, sample.embedding)
        return ids

    def enroll(self, name, samples, fingerprint, request_id=None, respond=None):
        # type: (str, Sequence[Sample], Optional[str], Optional[str], Optional[Callable[[object], str]]) -> List[int]
        """Add samples to a person (created if new), all or nothing; returns the sample ids."""
        name = validate_name(name)
        if not samples:
            raise GalleryError("nothing to enroll for {!r}: no samples".format(name))

        def apply(db):
            row = db.execute("SELECT id FROM people WHERE name=?", (name,)).fetchone()
            if row is None:
                person_id = int(db.execute("INSERT INTO people(name, created) VALUES (?, ?)",
                                           (name, time.time())).lastrowid)
            else:
                person_id = int(row[0])
            return self._insert_samples(db, person_id, samples, fingerprint, negative=False)
        return self._change(request_id, apply, respond)

    def add_negative(self, name, samples, fingerprint, request_id=None, respond=None):
        # type: (str, Sequence[Sample], Optional[str], Optional[str], Optional[Callable[[object], str]]) -> List[int]
        """Faces that are *not* this person: they veto matches to them."""
        name = validate_name(name)

        def apply(db):
            return self._insert_samples(db, self._person_id(db, name), samples, fingerprint, negative=True)
        return self._change(request_id, apply, respond)

    def remove(self, name, request_id=None, respond=None):
        # type: (str, Optional[str], Optional[Callable[[object], str]]) -> int
        """Delete a person with all their crops and embeddings; returns the samples removed."""
        name = validate_name(name)

        def apply(db):
            person_id = self._person_id(db, name)
            count = db.execute("SELECT COUNT(*) FROM samples WHERE person_id=?", (person_id,)).fetchone()[0]
            db.execute("DELETE FROM people WHERE id=?", (person_id,))
            return int(count)
        removed = self._change(request_id, apply, respond)
        self._checkpoint()
        return removed

    def rename(self, old, new, request_id=None, respond=None):
        # type: (str, str, Optional[str], Optional[Callable[[object], str]]) -> None
        old, new = validate_name(old), validate_name(new)

        def apply(db):
            person_id = self._person_id(db, old)
            if old != new and db.execute("SELECT 1 FROM people WHERE name=?", (new,)).fetchone():
                raise GalleryError("cannot rename {!r} to {!r}: that name is taken".format(old, new))
            db.execute("UPDATE people SET name=? WHERE id=?", (new, person_id))
        return self._change(request_id, apply, respond)

    def import_records(self, records, request_id=None, respond=None):
        # type: (Iterable[Record], Optional[str], Optional[Callable[[object], str]]) -> Tuple[int, int]
        """Add many samples (an archive, a seed file) as one change: all or nothing. Negatives
        for someone who is not in the gallery have nothing to veto and are skipped.
        Returns (added, skipped)."""
        def apply(db):
            people = {}  # type: Dict[str, int]

            def person_id(name, create):
                # type: (str, bool) -> Optional[int]
                if name not in people:
                    row = db.execute("SELECT id FROM people WHERE name=?", (name,)).fetchone()
                    if row is None and not create:
                        return None
                    people[name] = int(row[0]) if row else int(db.execute(
                        "INSERT INTO people(name, created) VALUES (?, ?)", (name, time.time())).lastrowid)
                return people[name]

            added, negatives = 0, []
            for record in records:
                record = record._replace(person=validate_name(record.person))
                if record.negative:
                    negatives.append(record)  # after all positives: their person may come later
                    continue
                self._insert_record(db, person_id(record.person, True), record)
                added += 1
            skipped = 0
            for record in negatives:
                pid = person_id(record.person, False)
                if pid is None:
                    skipped += 1
                else:
                    self._insert_record(db, pid, record)
                    added += 1
            return added, skipped
        return self._change(request_id, apply, respond)

    def _insert_record(self, db, person_id, record):
        # type: (sqlite3.Connection, int, Record) -> None
        if record.crop_png is not None and decode_crop(record.crop_png) is None:
            raise GalleryError("the face crop of a sample of {!r} is not a readable PNG".format(record.person))
        if record.crop_png is None and not record.embeddings:
            raise GalleryError("a sample of {!r} has neither a face crop nor an embedding".format(record.person))
        cursor = db.execute("INSERT INTO samples(person_id, negative, crop, source, created) VALUES (?, ?, ?, ?, ?)",
                            (person_id, int(record.negative), record.crop_png, record.source or "",
                             time.time() if record.created is None else float(record.created)))
        for fingerprint, vector in sorted(record.embeddings.items()):
            self._insert_embedding(db, cursor.lastrowid, fingerprint, vector)
