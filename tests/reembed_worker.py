"""Re-embeds a gallery's crops for arcface-mbf one crop per batch, printing each committed batch.

Run by tests/test_reembed.py, which SIGKILLs it mid-way and checks that a second run resumes."""
import sys

from edge.daemon import reembed
from edge.gallery import Gallery
from edge.pipeline import open_pipeline


def main(path, model_dir):
    gallery = Gallery(path)
    pipeline = open_pipeline("arcface-mbf", model_dir, "onnxruntime", threads=1)
    reembed.LOG_EVERY_S = 0.0
    worker = reembed.Reembedder(gallery, pipeline, status=lambda text: (sys.stdout.write(text + "\n"),
                                                                         sys.stdout.flush()), batch=1)
    worker.start()
    worker.wait()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
