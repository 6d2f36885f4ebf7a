"""Where `faceedge embed`'s time goes per photo: CPU milliseconds of each stage (decode, detection,
alignment and quality, embedding, the JSON line) in one process with one ONNX Runtime thread, so
the figures are CPU time and hold on a loaded machine. Start-up (imports, model loading) apart.
    python benchmarks/profile_embed.py PHOTO_LIST [--model-dir DIR] [--profile NAME] [--det-size N]
Prints one JSON object. Speed is measured here, never asserted by a test."""
import argparse
import json
import statistics
import time

START = time.process_time()


def cpu_ms(since):
    return (time.process_time() - since) * 1000.0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("photo_list")
    parser.add_argument("--model-dir")
    parser.add_argument("--profile", default="default")
    parser.add_argument("--det-size", type=int, default=640)
    args = parser.parse_args()
    from edge.align import align_face
    from edge.imageio import read_image
    from edge.quality import assess
    from edge.types import Face
    from edge.pipeline import open_pipeline
    pipeline = open_pipeline(args.profile, args.model_dir, "onnxruntime", det_size=args.det_size, threads=1,
                             min_quality=0.0)
    startup = cpu_ms(START)
    stages = dict((name, []) for name in ("decode", "detect", "align", "embed", "json"))
    photos = [line.strip() for line in open(args.photo_list) if line.strip()]
    for path in photos:
        t = time.process_time()
        image = read_image(path)
        stages["decode"].append(cpu_ms(t))
        t = time.process_time()
        detections = pipeline.detector.detect(image)
        stages["detect"].append(cpu_ms(t))
        t = time.process_time()
        crops = [align_face(image, d.landmarks) for d in detections]
        faces = [Face(detection=d, crop=c, quality=assess(d, c, 0.0), embedding=None)
                 for d, c in zip(detections, crops)]
        stages["align"].append(cpu_ms(t))
        t = time.process_time()
        faces, _ = pipeline.with_embeddings(faces, list(range(len(faces))))
        stages["embed"].append(cpu_ms(t))
        t = time.process_time()
        json.dumps({"path": path, "faces": [{"bbox": [round(float(v), 2) for v in f.detection.bbox],
                                             "embedding": [round(float(v), 6) for v in f.embedding]}
                                            for f in faces if f.embedding is not None]})
        stages["json"].append(cpu_ms(t))
    per_photo = dict((name, round(statistics.mean(v), 2)) for name, v in stages.items())
    print(json.dumps({"photos": len(photos), "profile": args.profile, "det_size": args.det_size,
                      "startup_cpu_ms": round(startup, 1), "cpu_ms_per_photo": per_photo,
                      "sum_cpu_ms_per_photo": round(sum(per_photo.values()), 2)}))


if __name__ == "__main__":
    main()
