"""What a new user meets in the first hour (issue 16): errors on one stderr line, honest labels,
commands in order, nothing left behind."""
import os

from edge.commands.gallery import plural
from tests.cli import faceedge


def test_help_lists_the_commands_in_alphabetical_order():
    code, out, _ = faceedge("--help")
    assert code == 0
    listed = [line.split()[0] for line in out.split("COMMAND\n", 1)[1].split("\n\n")[0].splitlines()
              if line.startswith("    ") and not line.startswith("     ")]
    assert len(listed) > 10 and listed == sorted(listed)


def test_identify_says_a_bad_file_once_on_stderr(tmp_path, model_dir):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    code, out, err = faceedge("identify", str(broken), "--gallery", str(tmp_path / "g.db"), "--model-dir", model_dir)
    assert code == 1 and out == ""
    lines = [line for line in err.splitlines() if "error" in line]
    assert len(lines) == 1 and lines[0].startswith("faceedge: error: ") and lines[0].count(str(broken)) == 1


def test_identify_tells_a_face_below_the_quality_bar_from_a_stranger(tmp_path, model_dir, facedata):
    import cv2
    image = cv2.imread(os.path.join(facedata, "known", "biden.jpg"))
    sizes = {}
    for width in (80, 400):       # 80 px wide: the face is found but too small to recognise
        path = str(tmp_path / "biden-{}.jpg".format(width))
        cv2.imwrite(path, cv2.resize(image, (width, image.shape[0] * width // image.shape[1])))
        _, sizes[width], _ = faceedge("identify", path, "--gallery", str(tmp_path / "g.db"), "--model-dir", model_dir)
    assert "unknown (" in sizes[400]                 # a usable face, nobody enrolled: a stranger
    assert "not recognised (quality" in sizes[80] and "unknown" not in sizes[80]


def test_counts_are_said_in_english():
    assert plural(1, "person", "people") == "1 person" and plural(2, "person", "people") == "2 people"
    assert plural(1, "sample") == "1 sample" and plural(0, "sample") == "0 samples"


def test_models_list_does_not_call_a_model_in_no_profile_missing(tmp_path):
    code, out, _ = faceedge("models", "list", "--dir", str(tmp_path))
    assert code == 0
    yunet = [line for line in out.splitlines() if line.strip().startswith("yunet ")]
    assert yunet and "missing" not in yunet[0] and "optional" in yunet[0]
    assert "in no profile" in out
