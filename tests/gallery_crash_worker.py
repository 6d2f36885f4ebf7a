"""Enrolls many people one transaction at a time, printing each committed name.

Run by tests/test_gallery.py, which SIGKILLs it mid-way and checks the database."""
import sys

import numpy as np

from edge.gallery import Gallery, Sample


def main(path, count):
    gallery = Gallery(path)
    rng = np.random.RandomState(7)
    crop = rng.randint(0, 255, (112, 112, 3)).astype(np.uint8)
    for i in range(count):
        samples = [Sample(crop, rng.normal(size=128), "worker") for _ in range(5)]
        gallery.enroll("person-{:05d}".format(i), samples, "fp-test")
        sys.stdout.write("committed person-{:05d}\n".format(i))
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
