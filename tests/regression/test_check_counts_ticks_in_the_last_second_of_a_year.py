"""`mkts check` compared a tick bucket's aggregates with its rows read up to the year's last
whole second (an end of `23:59:59` is 23:59:59.000000000 for ticks), so a trade at
23:59:59.000000001 on 31 December was left out and its 5Min and 1H bars were reported as
"without base rows"."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import mkts
from mkts.check import check_root
from mkts.plugins import ondiskagg
from mkts.wiring import AggregationSpec

LAST_SECOND_2023 = 1_704_067_199  # 2023-12-31 23:59:59 UTC


def test_a_trade_in_the_last_second_of_a_year_is_a_base_row(tmp_path: Path) -> None:
    root = str(tmp_path / "db")
    agg = ondiskagg.NewTrigger({"destinations": ["5Min", "1H"], "batch_ms": 0})
    with mkts.open(root, triggers=[("*/1Sec/TRADE", agg)]) as db:
        db.write("T/1Sec/TRADE", {"Epoch": np.array([LAST_SECOND_2023]),
                                  "Nanoseconds": np.array([1], "i4"),
                                  "Price": np.array([1.0]), "Size": np.array([1], "i8")},
                 variable=True)
        assert db.wait_for_triggers(10)
        assert db.read("T/5Min/OHLCV")["Epoch"].tolist() == [LAST_SECOND_2023 - 299]
    report = check_root(root, aggregates=[AggregationSpec("*/1Sec/TRADE", ("5Min", "1H"))])
    assert [str(f) for f in report.errors] == []
    assert report.aggregates_checked == 2
