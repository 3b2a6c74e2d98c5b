"""Section 6.3 of the chapter (../shared/chapter-6-em-algorithm.txt), to the printed precision.

Reference values are copied from the chapter: Eq. (6.7)-(6.10), (6.13), (6.14) and
Tables 6.1-6.4. Each is compared after rounding to the number of decimals printed there.
"""

import numpy as np
import pytest

from em import BinomialData, e_step, m_step
from em.chapter import CHAPTER_INIT, first_iteration, render_chapter

TABLE_6_1 = {  # outcome: (occurrences, c_1, c_2, c_3)
    2: (4, 0.5674795, 0.4124300, 0.0200905),
    3: (2, 0.4568744, 0.4980674, 0.0450583),
    4: (5, 0.3436451, 0.5619435, 0.0944114),
    5: (5, 0.2370680, 0.5814960, 0.1814361),
    6: (4, 0.1468149, 0.5401758, 0.3130094),
}
TABLE_6_2 = {
    2: (2.2699180, 1.6497199, 0.0803621),
    3: (0.9137487, 0.9961348, 0.0901165),
    4: (1.7182254, 2.8097177, 0.4720569),
    5: (1.1853398, 2.9074798, 0.9071804),
    6: (0.5872594, 2.1607030, 1.2520376),
}
EQ_6_10 = (6.6744913, 10.5237552, 2.8017535)
TABLE_6_3 = (23.60424, 45.02833, 14.36743)  # printed with 5 decimals
EQ_6_13 = 23.6042391  # the c_1 entry of Table 6.3 to 7 decimals
EQ_6_14 = (0.3337246, 0.5261878, 0.1400877)
TABLE_6_4 = (0.3536485, 0.4278732, 0.5128013)


@pytest.fixture(scope="module")
def step():
    return first_iteration()


def test_data_compress_as_table_6_1():
    data = BinomialData.chapter()
    assert data.heads.tolist() == list(TABLE_6_1)
    assert data.counts.tolist() == [row[0] for row in TABLE_6_1.values()]
    assert data.n_sequences == 20 and set(data.trials.tolist()) == {10}


def test_table_6_1_posteriors(step):
    expect, _ = step
    want = np.array([row[1:] for row in TABLE_6_1.values()])
    np.testing.assert_array_equal(np.round(expect.resp, 7), want)


def test_eq_6_10_expected_counts(step):
    expect, _ = step
    np.testing.assert_array_equal(np.round(expect.expected_counts, 7), EQ_6_10)
    # "approximately 20": the exact sum, up to rounding.
    assert expect.expected_counts.sum() == pytest.approx(20.0, abs=1e-12)


def test_table_6_2_expected_outcome_counts(step):
    expect, _ = step
    want = np.array(list(TABLE_6_2.values()))
    np.testing.assert_array_equal(np.round(expect.expected_outcome_counts, 7), want)


def test_table_6_3_expected_successes(step):
    expect, _ = step
    np.testing.assert_array_equal(np.round(expect.expected_successes, 5), TABLE_6_3)
    assert round(expect.expected_successes[0], 7) == EQ_6_13


def test_eq_6_14_weights_and_table_6_4_biases(step):
    _, new = step
    np.testing.assert_array_equal(np.round(new.weights, 7), EQ_6_14)
    np.testing.assert_array_equal(np.round(new.p, 7), TABLE_6_4)


def test_m_step_normalises_by_sum_of_expected_counts(step):
    """Footnote 8: divide by the sum of the expected counts, so the weights sum to 1."""
    expect, new = step
    assert new.weights.sum() == pytest.approx(1.0, abs=1e-15)
    np.testing.assert_allclose(new.weights, expect.expected_counts / expect.expected_counts.sum())


def test_pure_functions_do_not_touch_their_inputs():
    data = BinomialData.chapter()
    e1 = e_step(data, CHAPTER_INIT)
    new = m_step(e1, CHAPTER_INIT)
    assert CHAPTER_INIT.p.tolist() == [0.4, 0.5, 0.65]
    e2 = e_step(data, CHAPTER_INIT)
    np.testing.assert_array_equal(e1.resp, e2.resp)
    np.testing.assert_array_equal(m_step(e2, CHAPTER_INIT).p, new.p)


def test_render_prints_every_table_value():
    text = render_chapter()
    for value in [0.1114767, 0.2050781, 0.2376685, 0.0278692, 0.1025391, 0.0594171]:
        assert f"{value:.7f}" in text  # (6.7), (6.8)
    for row in TABLE_6_1.values():
        assert all(f"{v:.7f}" in text for v in row[1:])
    for row in TABLE_6_2.values():
        assert all(f"{v:.7f}" in text for v in row)
    for v in (*EQ_6_10, EQ_6_13, *EQ_6_14, *TABLE_6_4):
        assert f"{v:.7f}" in text
    assert "collapse onto 1" in text and "converged after" in text
