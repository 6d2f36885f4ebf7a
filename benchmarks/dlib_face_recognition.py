"""Reference timing: dlib's face_recognition (HOG detector + ResNet) over the same photos.

Not part of faceedge; run it in a separate venv with `pip install dlib face_recognition`:
    python benchmarks/dlib_face_recognition.py FILE...   (prints one JSON line)
The process start-up is measured from outside (e.g. `/usr/bin/time`), like `faceedge embed`.
"""
import json
import sys
import time

import face_recognition


def main(paths):
    start = time.perf_counter()
    faces = 0
    for path in paths:
        image = face_recognition.load_image_file(path)
        boxes = face_recognition.face_locations(image, model="hog")
        faces += len(face_recognition.face_encodings(image, boxes))
    elapsed = time.perf_counter() - start
    print(json.dumps({"photos": len(paths), "faces": faces, "seconds": round(elapsed, 3),
                      "ms_per_photo": round(1000.0 * elapsed / max(1, len(paths)), 2)}))


if __name__ == "__main__":
    main(sys.argv[1:])
