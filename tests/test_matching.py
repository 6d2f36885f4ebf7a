
import numpy as np

from edge.matching import ExactIndex, Matcher


def unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_exact_index_top_k_in_order():
    rng = np.random.RandomState(0)
    matrix = rng.normal(size=(500, 32)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    queries = matrix[[5, 77]] + 0.01
    sims, idx = ExactIndex(matrix).search(queries, 4)
    assert idx[:, 0].tolist() == [5, 77]
    assert np.all(np.diff(sims, axis=1) <= 0)
    brute = queries.dot(matrix.T)
    np.testing.assert_allclose(sims, -np.sort(-brute, axis=1)[:, :4], atol=1e-6)


def _matcher(threshold=0.5, negatives=()):
    vectors = [unit([1, 0, 0]), unit([0.9, 0.1, 0]), unit([0, 1, 0])]
    ids, names, neg = [1, 1, 2], ["alice", "alice", "bob"], [False, False, False]
    for person, name, v in negatives:
        vectors.append(unit(v))
        ids.append(person)
        names.append(name)
        neg.append(True)
    return Matcher(np.vstack(vectors), np.array(ids), names, np.array(neg), threshold)


def test_open_set_decision():
    results = _matcher().match(np.vstack([unit([1, 0.05, 0]), unit([0, 1, 0.1]), unit([0, 0, 1])]))
    assert [r.identity for r in results] == ["alice", "bob", None]
    assert results[0].candidates[0].name == "alice" and results[0].candidates[1].name == "bob"
    assert 0 <= results[2].similarity <= 1


def test_best_sample_per_person():
    result = _matcher().match(unit([0.9, 0.1, 0])[None])[0]
    assert result.identity == "alice" and abs(result.similarity - 1.0) < 1e-5
    assert len([c for c in result.candidates if c.name == "alice"]) == 1


def test_negative_sample_vetoes_a_person():
    stranger = unit([0.8, 0.2, 0.55])  # close enough to alice to be taken for her
    assert _matcher(0.5).match(stranger[None])[0].identity == "alice"
    vetoed = _matcher(0.5, negatives=[(1, "alice", stranger)]).match(stranger[None])[0]
    assert vetoed.identity is None and vetoed.vetoed_by_negative
    # alice herself is still recognised
    assert _matcher(0.5, negatives=[(1, "alice", stranger)]).match(unit([1, 0, 0])[None])[0].identity == "alice"


def test_empty_gallery_gives_unknown():
    m = Matcher(np.zeros((0, 0), np.float32), np.zeros(0), [], np.zeros(0, bool), 0.3)
    assert m.match(unit([1, 0])[None])[0].identity is None


def test_100k_search_is_exact():
    rng = np.random.RandomState(1)
    matrix = rng.normal(size=(100000, 128)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    sims, idx = ExactIndex(matrix).search(matrix[[12345]], 1)
    assert idx[0, 0] == 12345 and abs(sims[0, 0] - 1) < 1e-5
