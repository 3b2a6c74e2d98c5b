"""Reading CSV files: the columnar reader, its line-by-line fallback and what both refuse."""

import csv
import os
import stat
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import em.data
from em import BinomialData, load_data
from em.data import FIELD_LIMIT, MAX_SEQUENCES


def write(tmp_path, text, name="data.csv", mode="w"):
    path = tmp_path / name
    if mode == "wb":
        path.write_bytes(text)
    else:
        path.write_text(text, newline="")
    return path


def reference(path):
    """The data as the csv module reads them, one int() per cell: what load_data must give."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = [r for r in csv.reader(fh) if any(c.strip() for c in r)]
    names = [c.strip().lower() for c in rows[0]]
    values = {n: [int(float(r[j].strip())) for r in rows[1:]] for j, n in enumerate(names)}
    counts = values.get("count", [1] * len(rows[1:]))
    return BinomialData.from_counts(values["heads"], values["trials"], counts)


def same(a, b):
    return all(np.array_equal(getattr(a, n), getattr(b, n)) for n in ("heads", "trials", "counts"))


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 256 bytes, 32 after a failure, so a small file crosses many blocks."""
    monkeypatch.setattr(em.data, "_BLOCK", 256)
    monkeypatch.setattr(em.data, "_SMALL_BLOCK", 32)


@pytest.fixture
def calls(monkeypatch):
    """Which rows were read line by line: the first line of every such stretch."""
    seen = []
    original = em.data._read_rows

    def spy(fh, path, names, out, offset, line, until):
        seen.append(line + 1)
        return original(fh, path, names, out, offset, line, until)

    monkeypatch.setattr(em.data, "_read_rows", spy)
    return seen


# ----------------------------------------------------------------------- both readers agree
def test_plain_rows_are_read_by_the_columnar_reader(tmp_path, rng, small_blocks, calls):
    trials = rng.integers(1, 40, size=500)
    heads = rng.binomial(trials, 0.4)
    text = "heads,trials\n" + "".join(f"{h},{t}\n" for h, t in zip(heads, trials, strict=True))
    data = load_data(write(tmp_path, text))
    assert calls == []  # never fell back
    assert same(data, BinomialData.from_sequences(heads, trials))


def test_other_rows_fall_back_from_their_block_and_give_the_same_data(
    tmp_path, rng, small_blocks, calls
):
    heads = rng.binomial(10, 0.4, size=300)
    lines = [f"{h},10\n" for h in heads]
    lines[200] = f' {heads[200]} ,"10"\n'  # spaces and quotes: the csv module's job
    text = "\ufeffheads,trials\r\n" + "".join(lines[:100]) + "\n" + "".join(lines[100:])
    path = write(tmp_path, text)
    data = load_data(path)
    assert len(calls) == 1 and 196 <= calls[0] <= 203  # the small block holding line 203
    assert same(data, BinomialData.from_sequences(heads, 10))
    assert same(data, reference(path))


def test_spaces_and_tabs_around_values_stay_columnar(tmp_path, small_blocks, calls):
    path = write(tmp_path, "heads , trials\n 3 ,\t10\n4,10 \n")
    assert load_data(path).heads.tolist() == [3, 4] and calls == []


def test_a_bad_row_deep_in_a_big_file_is_found_fast(tmp_path, rng, calls):
    """Only the small block around the bad row is read line by line."""
    heads = rng.binomial(10, 0.4, size=400_000)
    text = "heads,trials\n" + "".join(f"{h},10\n" for h in heads) + "11,10\n"
    with pytest.raises(ValueError, match="line 400002: heads = 11 exceeds trials = 10"):
        load_data(write(tmp_path, text))
    assert len(calls) == 1 and calls[0] > 400_002 - em.data._SMALL_BLOCK // 4


@pytest.mark.parametrize(
    "text",
    [
        "heads,trials\r\n3,10\r\n5,10\r\n",  # CRLF: columnar
        "heads,trials\r3,10\r5,10\r",  # CR only: line by line
        "trials,count,heads\n10,2,3\n10,0,4\n12,1,5\n",  # any column order, zero counts
        "HEADS , Trials\n\n3.0,1e1\n+4,10\n-0,10\n",  # decimals, signs, blank lines
        "heads,trials\n,\n3,10\n  ,  \n",  # blank rows
        '"heads","trials"\n"3","10"\n',
        "heads,trials\n3,10\n4,10",  # no line end at the end
        "heads,trials\r\n3,10\r\n4,10\r",
    ],
)
def test_formats_agree_with_the_csv_module(tmp_path, text, small_blocks):
    path = write(tmp_path, text)
    assert same(load_data(path), reference(path))


def test_utf8_byte_order_mark_is_accepted(tmp_path):
    """Excel's "CSV UTF-8" starts the file with EF BB BF."""
    path = write(tmp_path, b"\xef\xbb\xbfheads,trials\r\n3,10\r\n", mode="wb")
    assert load_data(path).heads.tolist() == [3]
    # only at the start of the file: elsewhere it is not a number
    path = write(tmp_path, b"heads,trials\n\xef\xbb\xbf3,10\n", mode="wb")
    with pytest.raises(ValueError, match=r"line 2: heads = '\\ufeff3' is not a non-negative"):
        load_data(path)


# ----------------------------------------------------------------------- errors name the line
@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("5_0,100", "heads = '5_0' is not a non-negative integer"),
        ("0x3,10", "heads = '0x3' is not a non-negative integer"),
        ("\u0663,10", "heads = '\u0663' is not a non-negative integer"),
        ("3,1_0", "trials = '1_0' is not a non-negative integer"),
        ("1,4000000000", "trials = 4000000000 exceeds the largest supported number of trials"),
        ("1,4611686018427387904", "trials = 4611686018427387904 exceeds"),
        ("1,1e11", "trials = 100000000000 exceeds"),
        ("1,9223372036854775808", "trials = 9223372036854775808 exceeds"),
        ("1," + "9" * 5000, r"trials = 9999999999.*\(5000 characters\) exceeds"),
        ("1,1e400", "trials = 1e400 exceeds"),
        ("1,-1e400", "trials = -1e400 is negative"),
        ("12,10", "heads = 12 exceeds trials = 10"),
        ("-3,10", "heads = -3 is negative"),
        ("3,10,", "expected 2 values, got 3"),
    ],
)
def test_bad_rows_are_named_by_their_line(tmp_path, rows, message, small_blocks):
    text = "heads,trials\n" + "3,10\n" * 20 + "\n\r\n" + rows + "\n3,10\n"
    with pytest.raises(ValueError, match=f"data.csv: line 24: {message}"):
        load_data(write(tmp_path, text))


@pytest.mark.parametrize(
    ("rows", "line", "message"),
    [
        (["1,10,9223372036854775807"], 2, "count = 9223372036854775807 exceeds the largest"),
        (["1,10,9223372036854775808"], 2, "count = 9223372036854775808 exceeds"),
        (["1,10,9007199254740991", "2,10,0", "3,10,1"], 4, "the counts up to this line add up"),
        (["1,10,4503599627370496"] * 2, 3, "the counts up to this line add up to more than"),
    ],
)
def test_counts_beyond_the_limit_name_the_line(tmp_path, rows, line, message):
    text = "heads,trials,count\n" + "\n".join(rows) + "\n"
    with pytest.raises(ValueError, match=f"line {line}: {message}"):
        load_data(write(tmp_path, text))


def test_counts_up_to_the_limit_are_read_exactly(tmp_path, small_blocks):
    text = f"heads,trials,count\n1,10,{MAX_SEQUENCES - 5}\n2,10,3\n1,10,2\n"
    data = load_data(write(tmp_path, text))
    assert data.n_sequences == MAX_SEQUENCES and data.counts.tolist() == [MAX_SEQUENCES - 3, 3]


def test_long_fields_and_lines_are_one_line_errors(tmp_path):
    field = "1" * (FIELD_LIMIT + 1)
    with pytest.raises(ValueError, match=f"line 3: a field is longer than {FIELD_LIMIT} char"):
        load_data(write(tmp_path, f'heads,trials\n3,10\n"{field}",10\n'))
    with pytest.raises(ValueError, match=f"line 3: a field is longer than {FIELD_LIMIT} char"):
        load_data(write(tmp_path, f"heads,trials\n3,10\n{field},10\n"))
    with pytest.raises(ValueError, match="line 2 is longer than 524288 bytes"):
        load_data(write(tmp_path, "heads,trials\n" + "7" * 10**6 + ",10\n"))
    ok = "1" * FIELD_LIMIT  # at the limit: read, and refused for its value only
    with pytest.raises(ValueError, match=r"line 2: heads = 1111.* exceeds"):
        load_data(write(tmp_path, f"heads,trials\n{ok},10\n"))


def test_not_utf8_names_the_line(tmp_path):
    with pytest.raises(ValueError, match=r"line 3: not UTF-8 text \(byte 0xff"):
        load_data(write(tmp_path, b"heads,trials\n3,10\n\xff,10\n", mode="wb"))


# ----------------------------------------------------------------------- what is not a file
def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    out = subprocess.run(
        [sys.executable, "-m", "em", "fit", str(fifo), "--components", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert (
        out.stderr == f"error: DATA: '{fifo}' is a named pipe (FIFO), not a regular file: "
        "give a CSV file\n"
    )


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_a_device_is_refused():
    with pytest.raises(ValueError, match="'/dev/zero' is a character device, not a regular"):
        load_data("/dev/zero")


def test_kinds_of_files(tmp_path):
    em.data._check_file("x", stat.S_IFREG, 10)  # a regular file passes
    for mode, kind in [
        (stat.S_IFBLK, "a block device"),
        (stat.S_IFSOCK, "a socket"),
        (stat.S_IFDIR, "a directory"),
    ]:
        with pytest.raises(ValueError, match=kind):
            em.data._check_file("x", mode, 10)


def test_files_larger_than_the_memory_are_refused(tmp_path, monkeypatch):
    path = write(tmp_path, "heads,trials\n3,10\n")
    monkeypatch.setattr(em.data, "_max_file_bytes", lambda: 18)
    assert load_data(path).n_sequences == 1  # 18 bytes: at the limit
    monkeypatch.setattr(em.data, "_max_file_bytes", lambda: 17)
    with pytest.raises(ValueError, match=r"data.csv' is 0.0 GiB, more than this machine's memory"):
        load_data(path)


def test_the_limit_is_the_machine_memory():
    limit = em.data._max_file_bytes()
    if limit is None:
        pytest.skip("the OS does not report its memory")
    assert limit == os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") > 2**27


def test_running_out_of_memory_while_reading_is_a_value_error(tmp_path, monkeypatch):
    def boom(fh, path):
        raise MemoryError

    monkeypatch.setattr(em.data, "_read_csv", boom)
    with pytest.raises(ValueError, match="DATA: not enough memory to read"):
        load_data(write(tmp_path, "heads,trials\n3,10\n"))


# ----------------------------------------------------------------------- property
CELL_STYLES = [
    "{}",
    " {} ",
    "\t{}",
    '"{}"',
    "{}.0",
    "+{}",
    "{}e0",
]


@st.composite
def csv_files(draw):
    with_count = draw(st.booleans())
    n = draw(st.integers(1, 60))
    rows, lines = [], []
    for _ in range(n):
        t = draw(st.integers(1, 40))
        h = draw(st.integers(0, t))
        c = draw(st.integers(0, 5)) if with_count else 1
        cells = [h, t, c] if with_count else [h, t]
        styled = [draw(st.sampled_from(CELL_STYLES)).format(x) for x in cells]
        lines.append(",".join(styled))
        if draw(st.integers(0, 9)) == 0:
            lines.append(draw(st.sampled_from(["", " ", ",", " , "])))  # blank rows
        rows.append((h, t, c))
    eol = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    header = "heads,trials,count" if with_count else "heads,trials"
    text = header + eol + eol.join(lines) + draw(st.sampled_from([eol, ""]))
    if not any(c for _, _, c in rows):
        rows[0] = rows[0][:2] + (1,)
        text = header + eol + f"{rows[0][0]},{rows[0][1]},1" + eol + eol.join(lines)
    return text, rows


@settings(max_examples=150, deadline=None)
@given(csv_files(), st.sampled_from([(16, 8), (64, 16), (1 << 24, 1 << 16)]))
def test_any_mix_of_formats_reads_as_the_csv_module_does(tmp_path_factory, file, blocks):
    text, rows = file
    path = tmp_path_factory.mktemp("csv") / "data.csv"
    path.write_text(text, newline="")
    old = em.data._BLOCK, em.data._SMALL_BLOCK
    em.data._BLOCK, em.data._SMALL_BLOCK = blocks
    try:
        data = load_data(path)
    finally:
        em.data._BLOCK, em.data._SMALL_BLOCK = old
    h, t, c = (np.array(x) for x in zip(*rows, strict=True))
    assert same(data, BinomialData.from_counts(h, t, c))
