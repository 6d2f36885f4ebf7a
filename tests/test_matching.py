
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


def _reference(vectors, ids, names, neg, threshold, query, top_k):
    """Per-person best sample, best first; first person above threshold whose negatives do not veto."""
    sims = vectors.dot(query)
    people = sorted(set(ids[~neg].tolist()), key=lambda p: -sims[(ids == p) & ~neg].max())
    best = [(p, float(sims[(ids == p) & ~neg].max())) for p in people]
    for p, score in best:
        if score < threshold:
            break
        negs = (ids == p) & neg
        if negs.any() and sims[negs].max() >= score:
            continue
        return p, best[:top_k]
    return None, best[:top_k]


def test_matches_the_brute_force_reference():
    rng = np.random.RandomState(5)
    centres = rng.normal(size=(40, 16))
    ids = np.repeat(np.arange(40), rng.randint(1, 120, 40))   # some people with many samples
    vectors = centres[ids] + 0.6 * rng.normal(size=(len(ids), 16))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    neg = rng.rand(len(ids)) < 0.05
    names = ["p{}".format(i) for i in ids]
    matcher = Matcher(vectors, ids, names, neg, 0.6, top_k=5)
    queries = centres[rng.randint(0, 40, 200)] + 0.8 * rng.normal(size=(200, 16))
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    vetoes = 0
    for query, result in zip(queries, matcher.match(queries)):
        person, top = _reference(vectors, ids, names, neg, 0.6, query, 5)
        assert result.person_id == person
        assert [c.person_id for c in result.candidates] == [p for p, _ in top]
        np.testing.assert_allclose([c.similarity for c in result.candidates], [s for _, s in top], atol=1e-5)
        vetoes += result.vetoed_by_negative
    assert vetoes > 0   # the data exercised the veto


def test_threshold_is_inclusive_and_per_matcher():
    v = np.vstack([unit([1, 0]), unit([0, 1])])
    q = unit([1, 1])[None]          # cosine 0.7071 to both
    assert Matcher(v, [1, 2], ["a", "b"], [False, False], 0.70).match(q)[0].identity in ("a", "b")
    assert Matcher(v, [1, 2], ["a", "b"], [False, False], 0.71).match(q)[0].identity is None


def test_search_speed_over_100k_is_reported():
    """Not a timed assertion: prints median ms per batch for the report (run with -s)."""
    import time
    rng = np.random.RandomState(2)
    for dim in (128, 512):
        matrix = rng.normal(size=(100000, dim)).astype(np.float32)
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        ids = rng.randint(0, 20000, 100000)
        neg = rng.rand(100000) < 0.01
        matcher = Matcher(matrix, ids, ["p{}".format(i) for i in ids], neg, 0.5)
        for batch in (1, 16):
            times = []
            for _ in range(7):
                rows = rng.choice(np.flatnonzero(~neg), batch)
                start = time.perf_counter()
                results = matcher.match(matrix[rows])
                times.append(time.perf_counter() - start)
                assert all(r.candidates[0].person_id == ids[row] for r, row in zip(results, rows))
            print("100k x {}-d, batch {}: median {:.1f} ms per batch".format(dim, batch, 1000 * np.median(times)))
