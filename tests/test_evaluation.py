"""Metrics on small cases worked out by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dedup.evaluation.metrics import (
    PRF,
    adjusted_rand,
    bcubed,
    calibration,
    clustering_scores,
    cross_language_recall,
    pair_scores,
    pairwise_clustering,
    pr_curve,
)


def test_bcubed_hand_case():
    # truth: {a1, a2, a3} {b1, b2}; predicted: {a1, a2} {a3, b1, b2}
    # precision per item: a1 2/2, a2 2/2, a3 1/3, b1 2/3, b2 2/3 -> (1 + 1 + 1/3 + 2/3 + 2/3) / 5 = 11/15
    # recall per item:    a1 2/3, a2 2/3, a3 1/3, b1 2/2, b2 2/2 -> (2/3 + 2/3 + 1/3 + 1 + 1) / 5 = 11/15
    true = ["a", "a", "a", "b", "b"]
    pred = [0, 0, 1, 1, 1]
    s = bcubed(true, pred)
    assert s.precision == pytest.approx(11 / 15)
    assert s.recall == pytest.approx(11 / 15)
    assert s.f1 == pytest.approx(11 / 15)


def test_bcubed_all_in_one_cluster_has_full_recall_but_low_precision():
    # truth {x, x} {y} {z}; everything in one cluster of 4... here 4 items: x x y z
    # precision: x items 2/4 each, y 1/4, z 1/4 -> (0.5 + 0.5 + 0.25 + 0.25) / 4 = 0.375; recall 1
    s = bcubed(["x", "x", "y", "z"], [0, 0, 0, 0])
    assert s.precision == pytest.approx(0.375)
    assert s.recall == 1.0
    assert s.f1 == pytest.approx(2 * 0.375 / 1.375)


def test_bcubed_singletons():
    # truth {x, x} {y}; all singletons: precision 1 for all; recall x 1/2, x 1/2, y 1 -> 2/3
    s = bcubed(["x", "x", "y"], [0, 1, 2])
    assert (s.precision, s.recall) == (1.0, pytest.approx(2 / 3))


def test_pairwise_hand_case():
    # same case as test_bcubed_hand_case. true pairs: C(3,2) + C(2,2) = 4;
    # predicted pairs: C(2,2) + C(3,2) = 4; both: (a1,a2) and (b1,b2) = 2 -> P = R = 0.5
    s = pairwise_clustering(["a", "a", "a", "b", "b"], [0, 0, 1, 1, 1])
    assert s == PRF(0.5, 0.5, 0.5)


def test_pairwise_no_predicted_pairs():
    # no predicted pair: precision 1 by convention, recall 0 -> F1 0
    assert pairwise_clustering(["a", "a"], [0, 1]) == PRF(1.0, 0.0, 0.0)


def test_ari_hand_case():
    # contingency of the hand case: rows a: (2, 1), b: (0, 2)
    # sum C(n_ij, 2) = 1 + 0 + 0 + 1 = 2; rows C(3,2) + C(2,2) = 4; cols C(2,2) + C(3,2) = 4; C(5,2) = 10
    # expected = 4 * 4 / 10 = 1.6; max = (4 + 4) / 2 = 4 -> ARI = (2 - 1.6) / (4 - 1.6) = 1/6
    assert adjusted_rand(["a", "a", "a", "b", "b"], [0, 0, 1, 1, 1]) == pytest.approx(1 / 6)


def test_clustering_scores_perfect_and_counts():
    s = clustering_scores(["a", "a", "b"], ["p", "p", "q"])
    assert s.bcubed.f1 == 1.0
    assert s.ari == pytest.approx(1.0)
    assert s.pairwise.f1 == 1.0
    assert (s.items, s.true_clusters, s.predicted_clusters) == (3, 2, 2)
    assert s.to_dict()["bcubed"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0}


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="3 true labels but 2 predicted"):
        clustering_scores(["a", "a", "b"], [0, 0])


@given(st.lists(st.integers(0, 4), min_size=1, max_size=30), st.permutations(range(5)))
def test_relabelling_predictions_changes_nothing(pred, perm):
    true = [i % 3 for i in range(len(pred))]
    renamed = [perm[p] for p in pred]
    assert clustering_scores(true, pred) == clustering_scores(true, renamed)


@given(st.lists(st.integers(0, 4), min_size=1, max_size=30))
def test_identical_clusterings_score_one(labels):
    s = clustering_scores(labels, labels)
    assert s.bcubed.f1 == pytest.approx(1.0)
    assert s.pairwise.f1 == pytest.approx(1.0) or len(set(labels)) == len(labels)


def test_pair_scores_counts_unscored_positives_as_misses():
    # scored: (T, 0.9) (F, 0.8) (T, 0.4) (F, 0.2); threshold 0.3 -> decided: first three
    # TP = 2, predicted = 3 -> P = 2/3; positives in the data = 5 (3 never scored) -> R = 2/5
    s = pair_scores([True, False, True, False], [0.9, 0.8, 0.4, 0.2], 0.3, positives=5)
    assert s.precision == pytest.approx(2 / 3)
    assert s.recall == pytest.approx(2 / 5)
    assert s.f1 == pytest.approx(2 * (2 / 3) * (2 / 5) / (2 / 3 + 2 / 5))


def test_pair_scores_rejects_too_few_positives():
    with pytest.raises(ValueError, match="positives"):
        pair_scores([True, True], [0.9, 0.8], 0.5, positives=1)


def test_pr_curve_ties_take_the_whole_run():
    # scores 0.9 (T), 0.5 (T), 0.5 (F), 0.1 (F); 3 positives in all (one never scored)
    # t=0.9: TP 1 / 1 decided -> P 1, R 1/3; t=0.5: TP 2 / 3 -> P 2/3, R 2/3; t=0.1: TP 2 / 4 -> P 1/2, R 2/3
    c = pr_curve([True, True, False, False], [0.9, 0.5, 0.5, 0.1], positives=3)
    assert c.thresholds == (0.9, 0.5, 0.1)
    assert c.precision == pytest.approx((1.0, 2 / 3, 0.5))
    assert c.recall == pytest.approx((1 / 3, 2 / 3, 2 / 3))
    # F1: 0.5, 2/3, 4/7 -> best at 0.5
    threshold, best = c.best_f1()
    assert threshold == 0.5
    assert best.f1 == pytest.approx(2 / 3)
    # the curve agrees with pair_scores at every threshold
    for t, p, r in zip(c.thresholds, c.precision, c.recall, strict=True):
        s = pair_scores([True, True, False, False], [0.9, 0.5, 0.5, 0.1], t, positives=3)
        assert (s.precision, s.recall) == (pytest.approx(p), pytest.approx(r))


def test_pr_curve_empty_has_no_best():
    with pytest.raises(ValueError, match="empty"):
        pr_curve([], []).best_f1()


def test_pr_curve_to_dict_thins_points():
    c = pr_curve([True, False] * 50, list(np.linspace(1, 0, 100)))
    d = c.to_dict(points=10)
    assert len(d["threshold"]) == 10
    assert d["threshold"][0] == 1.0
    assert d["threshold"][-1] == 0.0


def test_cross_language_recall_hand_case():
    # items: 0 en story A, 1 fr story A, 2 fr story B, 3 de story A
    # scores (row = query): 0 ranks fr items 2 (0.8) over 1 (0.7): miss at 1, hit at 2;
    #                       0 -> de: only item 3, hit.
    # 1 (fr) -> en: item 0 only, hit; 1 -> de: item 3, hit.
    # 2 (fr, story B): no B item in other languages -> no query.
    # 3 (de) -> en: item 0, hit; 3 -> fr: items 1 (0.6) and 2 (0.6) tie -> counted against: rank 2.
    # queries: en->fr, en->de, fr->en, fr->de, de->en, de->fr = 6; hits at 1: 4 -> 4/6; at 2: 6/6
    s = np.array(
        [
            [1.0, 0.7, 0.8, 0.5],
            [0.7, 1.0, 0.1, 0.4],
            [0.8, 0.1, 1.0, 0.2],
            [0.5, 0.6, 0.6, 1.0],
        ]
    )
    r = cross_language_recall(s, ["A", "A", "B", "A"], ["en", "fr", "fr", "de"], ks=(1, 2))
    assert r.queries == 6
    assert r.recall == pytest.approx((4 / 6, 1.0))
    assert r.by_pair["en->fr"] == ((0.0, 1.0), 1)
    assert r.by_pair["de->fr"] == ((0.0, 1.0), 1)
    assert r.by_pair["fr->en"] == ((1.0, 1.0), 1)
    assert r.worst_pair(1) == ("de->fr", 0.0)
    assert r.to_dict()["recall@1"] == pytest.approx(0.6667)


def test_cross_language_recall_skips_unknown_language_and_checks_shapes():
    s = np.eye(3)
    r = cross_language_recall(s, ["A", "A", "A"], ["en", None, "fr"], ks=(1,))
    assert set(r.by_pair) == {"en->fr", "fr->en"}
    with pytest.raises(ValueError, match="3x3"):
        cross_language_recall(np.eye(2), ["A", "A", "A"], ["en", "fr", "de"])
    with pytest.raises(ValueError, match="not computed"):
        r.worst_pair(10)


def test_calibration_hand_case():
    # scores 0.9 (T), 0.1 (F), 0.6 (T), 0.6 (F); Brier = (0.01 + 0.01 + 0.16 + 0.36) / 4 = 0.135
    # 2 bins: [0, 0.5): {0.1 F} mean 0.1 rate 0; [0.5, 1]: {0.9 T, 0.6 T, 0.6 F} mean 0.7 rate 2/3
    # ECE = (1 * 0.1 + 3 * |2/3 - 0.7|) / 4 = (0.1 + 0.1) / 4 = 0.05
    c = calibration([True, False, True, False], [0.9, 0.1, 0.6, 0.6], bins=2)
    assert c.brier == pytest.approx(0.135)
    assert c.ece == pytest.approx(0.05)
    assert [n for _, _, n in c.bins] == [1, 3]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        calibration([True], [1.5])


# ------------------------------------------------------------------ ranking of labelled pairs
def test_ranking_scores_hand_case():
    from dedup.evaluation.ranking import ranking_scores

    # labelled: positives score 0.9, 0.4; negatives 0.5 (hard), 0.2; the fifth pair is unlabelled.
    # AUC: of the 4 (positive, negative) pairs, 0.4 < 0.5 is the only one ranked wrong -> 3/4.
    # hard AUC: positives against 0.5 only -> 1/2.
    # best F1: t=0.4 takes 3 pairs, 2 true: P 2/3, R 1 -> F1 0.8 (t=0.9: 0.667, t=0.5: 0.5, t=0.2: 0.667).
    # Spearman with overall (1, 1.5, 3, 4): score ranks 4, 2, 3, 1; d = 3, 0, 0, -3 -> 1 - 6*18/(4*15) = -0.8.
    # ECE (10 bins, one pair each): (|1-.9| + |1-.4| + |0-.5| + |0-.2|) / 4 = 0.35.
    r = ranking_scores(
        [0.9, 0.4, 0.5, 0.2, 0.99],
        labels=[1, 1, 0, 0, None],
        overall=[1.0, 1.5, 3.0, 4.0, 2.0],
        hard=[False, False, True, False, False],
        probability=True,
    )
    assert (r.pairs, r.positives, r.negatives, r.hard_negatives) == (5, 2, 2, 1)
    assert r.auc == pytest.approx(0.75)
    assert r.hard_auc == pytest.approx(0.5)
    assert (r.best_f1, r.best_threshold) == (pytest.approx(0.8), 0.4)
    assert r.spearman == pytest.approx(-0.8)
    stats = pytest.importorskip("scipy.stats")
    assert r.pearson == pytest.approx(stats.pearsonr([0.9, 0.4, 0.5, 0.2], [1.0, 1.5, 3.0, 4.0])[0])
    assert r.ece == pytest.approx(0.35)
    d = r.to_dict()
    assert d["abs_spearman"] == 0.8 and d["spearman"] == -0.8


def test_ranking_scores_without_a_class_is_nan_and_not_a_crash():
    from dedup.evaluation.ranking import ranking_scores

    r = ranking_scores([0.3, 0.2], labels=[0, 0], overall=[3.0, 4.0], hard=[True, False])
    assert np.isnan(r.auc) and np.isnan(r.hard_auc) and np.isnan(r.best_f1) and r.ece is None
    assert r.to_dict()["auc"] is None
    with pytest.raises(ValueError, match="one label"):
        ranking_scores([0.3], labels=[0, 1], overall=[3.0], hard=[False])


@given(st.lists(st.tuples(st.floats(0, 1), st.integers(0, 5)), min_size=4, max_size=30))
def test_spearman_matches_scipy_with_ties(rows):
    stats = pytest.importorskip("scipy.stats")
    from dedup.evaluation.ranking import ranking_scores

    scores = [round(s, 1) for s, _ in rows]
    overall = [1.0 + o / 2 for _, o in rows]
    r = ranking_scores(scores, labels=[1] * len(rows), overall=overall, hard=[False] * len(rows))
    if np.ptp(scores) == 0 or np.ptp(overall) == 0:
        assert np.isnan(r.spearman)
    else:
        assert r.spearman == pytest.approx(stats.spearmanr(scores, overall)[0])
