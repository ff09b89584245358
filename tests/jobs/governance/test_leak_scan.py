"""jobs.governance.leak_scan on files made for it: identifiers hidden in compressed Parquet pages, gzip and zip
members, precise coordinates in a double column, and hostile files (a gzip bomb, corrupt gzip, a file that only
claims to be Parquet) that are scanned, bounded, and never stop the scan."""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.governance import leak_scan
from jobs.governance.leak_scan import scan_files

MSISDN, DEVICE = "+4915112345678", "device-7f3a9c21"


def _parquet(path: Path, table: pa.Table) -> None:
    pq.write_table(table, path, compression="zstd", use_dictionary=True, write_statistics=False)


def test_identifiers_are_found_inside_compressed_dictionary_encoded_parquet(tmp_path: Path) -> None:
    values = [MSISDN] * 500 + [f"+4917{n:09d}" for n in range(500)]
    _parquet(tmp_path / "calls.parquet", pa.table({"caller": values}))
    assert MSISDN.encode() not in (tmp_path / "calls.parquet").read_bytes()  # the bytes alone would miss it
    report = scan_files([tmp_path], {MSISDN, DEVICE})
    assert [(leak.kind, leak.value, leak.path.endswith("calls.parquet#caller")) for leak in report.leaks] == \
        [("identifier", MSISDN, True)]


def test_precise_coordinates_in_a_double_column_are_reported(tmp_path: Path) -> None:
    _parquet(tmp_path / "ok.parquet", pa.table({"latitude": [52.52, 48.14, None], "duration_s": [1.23456, 2.0, 3.5]}))
    _parquet(tmp_path / "bad.parquet", pa.table({"device_lon": [13.40, 13.404954]}))
    report = scan_files([tmp_path], {DEVICE})
    assert [(Path(leak.path).name, leak.kind, leak.value) for leak in report.leaks] == \
        [("bad.parquet#device_lon", "precise_coordinate", "13.404954")]


def test_gzip_zip_and_plain_text_are_read_for_what_they_hold(tmp_path: Path) -> None:
    (tmp_path / "task.log.gz").write_bytes(gzip.compress(f"INFO header device_id={DEVICE}\n".encode()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("export/subject.json", f'{{"msisdn": "{MSISDN}", "pad": "{"x" * 200}"}}')
    (tmp_path / "bundle.zip").write_bytes(buffer.getvalue())
    (tmp_path / "clean.txt").write_text("nothing to see")
    report = scan_files([tmp_path], {MSISDN, DEVICE})
    found = sorted({(Path(leak.path.split("!")[0]).name, leak.value) for leak in report.leaks})
    assert found == [("bundle.zip", MSISDN), ("task.log.gz", DEVICE)]
    assert any(leak.path.endswith("bundle.zip!export/subject.json") for leak in report.leaks)
    assert report.files == 3


def test_hostile_files_are_bounded_and_never_stop_the_scan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(leak_scan, "MAX_INFLATED", 1 << 20)
    (tmp_path / "bomb.gz").write_bytes(gzip.compress(b"\0" * (64 << 20)))  # 64 MiB of zeros in ~64 KiB
    (tmp_path / "corrupt.gz").write_bytes(b"\x1f\x8b\x08\x00garbage" + MSISDN.encode())
    (tmp_path / "fake.parquet").write_bytes(b"PAR1 not really " + DEVICE.encode())
    (tmp_path / "empty").write_bytes(b"")
    report = scan_files([tmp_path], {MSISDN, DEVICE})
    assert [Path(p).name for p in report.truncated] == ["bomb.gz"]
    assert sorted((Path(leak.path).name, leak.value) for leak in report.leaks) == \
        [("corrupt.gz", MSISDN), ("fake.parquet", DEVICE)]
    assert report.files == 4


def test_jar_caches_and_virtual_environments_are_not_read(tmp_path: Path) -> None:
    (tmp_path / "ivy").mkdir()
    (tmp_path / "ivy" / "x.jar").write_text(MSISDN)
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "r.json").write_text("{}")
    report = scan_files([tmp_path], {MSISDN})
    assert report.files == 1 and not report.leaks
    with pytest.raises(ValueError, match="no identifiers"):
        scan_files([tmp_path], set())
