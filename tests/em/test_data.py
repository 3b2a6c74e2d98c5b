"""Compression to distinct outcomes, the CSV formats and their errors."""

import numpy as np
import pytest

from em import BinomialData, load_data


def test_compression_counts_each_distinct_outcome_once():
    data = BinomialData.from_sequences([3, 1, 3, 3, 0, 1], [5, 5, 6, 5, 5, 5])
    assert list(zip(data.heads, data.trials, data.counts, strict=True)) == [
        (0, 5, 1),
        (1, 5, 2),
        (3, 5, 2),
        (3, 6, 1),
    ]
    assert data.n_sequences == 6 and data.n_outcomes == 4 and data.max_trials == 6
    h, n = data.expand()
    assert sorted(zip(h, n, strict=True)) == sorted(
        zip([3, 1, 3, 3, 0, 1], [5, 5, 6, 5, 5, 5], strict=True)
    )


def test_scalar_and_array_trials_agree(rng):
    heads = rng.binomial(10, 0.3, size=1000)
    a = BinomialData.from_sequences(heads, 10)
    b = BinomialData.from_sequences(heads, np.full(1000, 10))
    for name in ("heads", "trials", "counts"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_many_distinct_trials_use_the_sorting_path(rng):
    trials = rng.permutation(np.arange(1, 5001))
    heads = rng.binomial(trials, 0.5)
    data = BinomialData.from_sequences(heads, trials)
    assert data.n_outcomes == 5000 and data.n_sequences == 5000
    np.testing.assert_array_equal(data.trials, np.arange(1, 5001))


def test_from_counts_merges_repeated_rows_and_drops_zero_counts():
    data = BinomialData.from_counts([2, 2, 5, 7], 10, [1, 3, 0, 2])
    assert data.heads.tolist() == [2, 7] and data.counts.tolist() == [4, 2]


def test_integer_valued_floats_are_accepted():
    data = BinomialData.from_sequences(np.array([1.0, 2.0]), 3.0)
    assert data.heads.tolist() == [1, 2]


def test_arrays_are_read_only():
    data = BinomialData.chapter()
    with pytest.raises(ValueError):
        data.counts[0] = 99


@pytest.mark.parametrize(
    ("heads", "trials", "message"),
    [
        ([1, 11], 10, r"heads\[1\] = 11 exceeds trials = 10"),
        ([1, 5], [10, 4], r"heads\[1\] = 5 exceeds trials\[1\] = 4"),
        ([1, -2], 10, r"heads\[1\] = -2 is negative"),
        ([1, 2.5], 10, r"heads\[1\] = 2.5 is not an integer"),
        ([1, float("nan")], 10, r"heads\[1\] = nan is not an integer"),
        ([1, "a"], 10, r"heads\[1\] = 'a' is not a number"),
        ([], 10, "heads is empty"),
        ([1, 2], 0, "trials must be >= 1, got 0"),
        ([1, 2], [3, 0], r"trials\[1\] = 0: every sequence needs at least one trial"),
        ([1, 2], [3, 4, 5], "trials must be a scalar or have the length of heads"),
        ([[1, 2]], 10, "heads must be one-dimensional"),
    ],
)
def test_bad_arrays_name_the_element(heads, trials, message):
    with pytest.raises(ValueError, match=message):
        BinomialData.from_sequences(heads, trials)


def test_csv_one_row_per_sequence_and_with_counts(tmp_path):
    (tmp_path / "seq.csv").write_text("heads,trials\n3,10\n5,10\n3,10\n\n")
    (tmp_path / "cnt.csv").write_text("trials, heads ,count\n10,3,2\n10,5,1\n")
    a, b = load_data(tmp_path / "seq.csv"), load_data(tmp_path / "cnt.csv")
    assert a.heads.tolist() == b.heads.tolist() == [3, 5]
    assert a.counts.tolist() == b.counts.tolist() == [2, 1]
    assert load_data("chapter").n_sequences == 20


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("heads,trials\n", "no data rows after the header"),
        ("heads\n3\n", "line 1: missing column 'trials'"),
        ("heads,trials,counts\n3,10,1\n", "line 1: unknown column 'counts'"),
        ("heads,trials,heads\n3,10,3\n", "a column is named twice"),
        ("heads,trials\n3,10\n11,10\n", "line 3: heads = 11 exceeds trials = 10"),
        ("heads,trials\n3,10\n-1,10\n", "line 3: heads = -1 is negative"),
        ("heads,trials\n3,10\n2.5,10\n", "line 3: heads = '2.5' is not a non-negative integer"),
        ("heads,trials\n3,10\nnan,10\n", "line 3: heads = 'nan' is not a non-negative integer"),
        ("heads,trials\n3,10\n3,\n", "line 3: trials = '' is not a non-negative integer"),
        ("heads,trials\n3,10\n4\n", "line 3: expected 2 values, got 1"),
        ("heads,trials\n3,0\n", "line 2: trials = 0, must be >= 1"),
        ("heads,trials,count\n3,10,-2\n", "line 2: count = -2 is negative"),
        ("heads,trials,count\n3,10,0\n", "every count is 0"),
    ],
)
def test_bad_csv_names_the_line(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_data(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        load_data(tmp_path / "nope.csv")
    with pytest.raises(ValueError, match="is a directory"):
        load_data(tmp_path)
