"""The fakes against NVIDIA's TensorRT 8.2.1 Python API (not on PyPI: a name list from its sources).
The 8.5, 10.x and 11.x fakes are compared with the real modules in tests/real_tensorrt."""
from tests.fakes import make_fakes
from tests.fakes.api_surface import exercise, extras, fake_surface, touched_mismatches
from tests.fakes.tensorrt_82_names import names_82


def test_the_82_fake_offers_nothing_tensorrt_82_lacks():
    trt, cuda, _ = make_fakes("8.2")
    assert extras(fake_surface(trt, cuda), names_82()) == []


def test_what_our_code_touches_on_82_exists_there_and_probes_answer_alike(tmp_path):
    trt = exercise("8.2", str(tmp_path))
    assert ("IBuilderConfig", "max_workspace_size", True) in set(
        (("IBuilderConfig" if a == "BuilderConfig" else a), n, p) for a, n, p in trt._trace)
    assert touched_mismatches(trt._trace, names_82()) == []


def test_the_comparison_catches_an_extra_and_a_wrong_probe():
    trt, cuda, _ = make_fakes("8.2")
    trt.Builder.magic = lambda self: None                    # a method 8.2 does not have
    assert extras(fake_surface(trt, cuda), names_82()) == ["Builder.magic"]
    trace = {("BuilderConfig", "set_memory_pool_limit", True), ("Builder", "max_batch_size", False)}
    assert len(touched_mismatches(trace, names_82())) == 2
