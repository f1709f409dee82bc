"""`mkts check` reports what a crash left of a destroy (the bucket directory renamed aside,
finished at the next writable open) and orphan year files without a bucket header (which an
older mkts's destroy could leave, listed or not, while check said ok)."""

from __future__ import annotations

import os

from mkts import engine
from mkts.check import check_root

T = 1_704_205_800


def test_check_reports_a_half_destroyed_bucket_and_an_orphan(root: str) -> None:
    with engine.open(root) as db:
        for key in ("AAPL/1Min/OHLCV", "MSFT/1Min/OHLCV"):
            db.write(key, {"Epoch": [T], "Close": [1.0]})
    tf = os.path.join(root, "AAPL", "1Min")
    os.rename(os.path.join(tf, "OHLCV"), os.path.join(tf, ".OHLCV.destroying"))  # cut short
    os.unlink(os.path.join(root, "MSFT", "1Min", "OHLCV", "bucket.hdr"))  # an orphan
    report = check_root(root)
    text = "\n".join(str(f) for f in report.findings)
    assert "destroy of bucket AAPL/1Min/OHLCV was interrupted" in text
    assert [str(f) for f in report.errors] == [
        "error: MSFT/1Min/OHLCV: orphan: 1 year file(s) but no bucket.hdr, so mkts does not "
        "see them (a destroy of an older mkts cut short?); restore the bucket header or delete "
        "the directory"]
    with engine.open(root) as db:
        assert db.list_keys() == []
    assert os.listdir(tf) == []  # the open finished the destroy
