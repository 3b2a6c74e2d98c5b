"""Compression to distinct outcomes, the CSV formats and their errors."""

import tracemalloc
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest

from em import BinomialData, fit, load_data
from em.data import MAX_SEQUENCES, MAX_TRIALS


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


# ----------------------------------------------------------------------- supported ranges
def test_the_limits_are_the_documented_powers_of_two():
    assert MAX_TRIALS == 2**31 - 1 == np.iinfo(np.int32).max
    assert MAX_SEQUENCES == 2**53 - 1
    assert float(MAX_SEQUENCES) == MAX_SEQUENCES and float(MAX_SEQUENCES + 2) != MAX_SEQUENCES + 2


def test_trials_at_the_limit_are_compressed_exactly():
    """trials * width + heads overflowed int64 above ~3.04e9 ("trials -611686018-10")."""
    data = BinomialData.from_sequences([1, 2, 3, 2], [MAX_TRIALS, 10, 10, 10])
    assert data.trials.tolist() == [10, 10, MAX_TRIALS]
    assert data.heads.tolist() == [2, 3, 1] and data.counts.tolist() == [2, 1, 1]
    big = BinomialData.from_sequences([0, MAX_TRIALS, 5], MAX_TRIALS)
    assert big.heads.tolist() == [0, 5, MAX_TRIALS] and big.trials.tolist() == [MAX_TRIALS] * 3


@pytest.mark.parametrize(
    ("heads", "trials", "message"),
    [
        ([1, 2, 3], [4_000_000_000, 10, 10], r"trials\[0\] = 4000000000 exceeds the largest"),
        ([1, 2], [10, 2**62], r"trials\[1\] = 4611686018427387904 exceeds"),
        ([1, 2], [10, float(2**40)], r"trials\[1\] = 1099511627776 exceeds"),
        ([1, 2], 2**31, r"trials = 2147483648 exceeds the largest supported number of trials"),
        ([1, 2], np.uint64(2**63), r"trials = 9223372036854775808 exceeds"),
        (np.array([1, 2**63], dtype=np.uint64), 10, r"heads\[1\] = 9223372036854775808 exceeds"),
        ([1, 2**64], 10, r"heads\[1\] = 18446744073709551616 exceeds"),
        ([1, 1e300], 10, r"heads\[1\] = 1e\+300 exceeds"),
        ([1, -1e300], 10, r"heads\[1\] = -1e\+300 is negative"),
    ],
)
def test_values_out_of_range_are_refused_naming_the_element(heads, trials, message):
    with pytest.raises(ValueError, match=message):
        BinomialData.from_sequences(heads, trials)


def test_huge_heads_are_refused_before_anything_is_allocated():
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"heads\[0\] = 1000000000000 exceeds trials = 10"):
            fit([10**12], 10, 1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # a tally of 10^12 bins would be 8 TB


@pytest.mark.parametrize("where", [0, 70_000, 199_999])
def test_a_bad_head_anywhere_is_named_by_its_index(where):
    heads = np.full(200_000, 3)
    heads[where] = 11
    with pytest.raises(ValueError, match=rf"heads\[{where}\] = 11 exceeds trials = 10"):
        BinomialData.from_sequences(heads, 10)
    heads[where] = -1
    with pytest.raises(ValueError, match=rf"heads\[{where}\] = -1 is negative"):
        BinomialData.from_sequences(heads, 10)


def test_chunked_tally_equals_bincount(rng):
    heads = rng.binomial(30, 0.4, size=300_001)
    data = BinomialData.from_sequences(heads, 30)
    tally = np.bincount(heads)
    assert data.heads.tolist() == np.flatnonzero(tally).tolist()
    assert data.counts.tolist() == tally[tally > 0].tolist()
    wide = BinomialData.from_sequences(heads * 1000, 1_000_000)  # n >= one chunk
    assert wide.heads.tolist() == (data.heads * 1000).tolist()
    assert wide.counts.tolist() == data.counts.tolist()


def test_counts_up_to_the_limit_are_exact():
    data = BinomialData.from_counts([3, 7], 10, [2**52, 2**52 - 1])
    assert data.n_sequences == MAX_SEQUENCES and data.counts.dtype == np.int64
    # EM stays monotone at this scale (2^63 - 1 broke its invariant) and, the proportions
    # being 1/2 each, finds the fit of counts [1, 1].
    res = fit([3, 7], 10, 2, counts=[2**52, 2**52 - 1])
    small = fit([3, 7], 10, 2, counts=[1, 1])
    assert res.converged and not res.warnings
    np.testing.assert_allclose(res.p, small.p, rtol=1e-6)
    assert res.log_likelihood == pytest.approx(small.log_likelihood * 2**52, rel=1e-9)


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        ([2**53, 1], r"counts\[0\] = 9007199254740992 exceeds the largest supported number"),
        ([1, 2**63 - 1], r"counts\[1\] = 9223372036854775807 exceeds"),
        ([2**52, 2**52], r"counts sum to more than 9007199254740991 \(2\^53 - 1\).*counts\[1\]"),
        ([2**62, 2**62], r"counts\[0\] = 4611686018427387904 exceeds"),
        ([2**53 - 1] * 2000, r"counts sum to more than .* from counts\[1\] on"),
        ([2**53 + 1, 1.0], r"counts\[0\] = 9007199254740992.0 exceeds"),  # rounded by numpy
        (np.array([1, 2**64 - 1], dtype=np.uint64), r"counts\[1\] = 18446744073709551615"),
        ([1, 2**70], r"counts\[1\] = 1180591620717411303424 exceeds"),
        ([1, -1], r"counts\[1\] = -1 is negative"),
    ],
)
def test_counts_beyond_the_limit_are_refused(counts, message):
    heads = np.arange(len(counts)) % 11
    with pytest.raises(ValueError, match=message):
        BinomialData.from_counts(heads, 10, counts)


def test_constructor_checks_what_it_is_given():
    data = BinomialData([1, 3], [2, 4], [1, 5])
    assert data.n_sequences == 6 and data.n_outcomes == 2
    for args, message in [
        (([3], [2], [1]), r"heads\[0\] = 3 exceeds trials\[0\] = 2"),
        (([1, 2], [2, 2], [1, 0]), r"counts\[1\] = 0: every outcome needs a count >= 1"),
        (([1], [0], [1]), r"trials\[0\] = 0"),
        (([1.5], [2], [1]), r"heads\[0\] = 1.5 is not an integer"),
        (([1, 2], [3], [1]), "must have one length"),
        (([], [], []), "need at least one sequence"),
    ]:
        with pytest.raises(ValueError, match=message):
            BinomialData(*args)


# ----------------------------------------------------------------------- strings, masks
@pytest.mark.parametrize(
    ("heads", "message"),
    [
        (["5_0", "3"], r"heads\[0\] = '5_0' is not a number"),
        (["0x3"], r"heads\[0\] = '0x3' is not a number"),
        (["\u0663"], r"heads\[0\] = '\u0663' is not a number"),  # ARABIC-INDIC DIGIT THREE
        (["nan"], r"heads\[0\] = 'nan' is not a number"),
        (["2.5"], r"heads\[0\] = '2.5' is not an integer"),
        (np.array([Fraction(1, 2)], dtype=object), r"heads\[0\] = Fraction\(1, 2\) is not an int"),
        (np.array([None], dtype=object), r"heads\[0\] = None is not a number"),
    ],
)
def test_strings_and_objects_are_read_exactly_or_refused(heads, message):
    with pytest.raises(ValueError, match=message):
        BinomialData.from_sequences(heads, 100)


def test_plain_strings_and_exact_objects_are_accepted():
    data = BinomialData.from_sequences(["12", " 3 ", "1e1", "+4", "7.0"], 100)
    assert data.heads.tolist() == [3, 4, 7, 10, 12]
    objs = np.array([2**40 + 1, Decimal("5"), Fraction(8, 2), True], dtype=object)
    assert BinomialData.from_counts([1, 2, 3, 4], 10, objs).n_sequences == 2**40 + 11


@pytest.mark.parametrize("which", ["heads", "trials", "counts"])
def test_masked_values_are_refused_not_ignored(which):
    arrays = {"heads": [1, 20, 3], "trials": [10, 10, 10], "counts": [1, 1, 1]}
    arrays[which] = np.ma.array(arrays[which], mask=[False, True, False])
    with pytest.raises(ValueError, match=f"{which} is a masked array with 1 masked value"):
        BinomialData.from_counts(arrays["heads"], arrays["trials"], arrays["counts"])


def test_masked_arrays_without_masked_values_are_plain_arrays():
    heads = np.ma.array([1, 2, 3], mask=False)
    assert BinomialData.from_sequences(heads, 10).n_sequences == 3
    with pytest.raises(ValueError, match="heads is a masked array"):
        BinomialData.from_sequences(np.ma.masked_greater(heads, 2), 10)
