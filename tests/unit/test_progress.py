"""The one progress bar (plugins/progress.py): tqdm when wanted and installed, else nothing."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from mkts.plugins.progress import progress_bar, track


class FakeTqdm:
    """Records what the helper asks of tqdm."""

    made: list[FakeTqdm] = []

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.n = 0
        self.postfix = ""
        self.closed = False
        FakeTqdm.made.append(self)

    def update(self, n: int) -> None:
        self.n += n

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.postfix = text

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_tqdm(monkeypatch: Any) -> type[FakeTqdm]:
    FakeTqdm.made = []
    monkeypatch.setitem(sys.modules, "tqdm", types.SimpleNamespace(tqdm=FakeTqdm))
    return FakeTqdm


def test_a_wanted_bar_counts_and_is_not_left_behind(fake_tqdm: type[FakeTqdm]) -> None:
    with progress_bar(10, "loading", unit="row") as bar:
        assert bar.shown
        bar.update(4)
        bar.note("AAPL/1Min/OHLCV 2024")
        bar.update(6)
    (t,) = fake_tqdm.made
    assert t.kwargs == {"total": 10, "desc": "loading", "unit": "row", "unit_scale": False,
                        "leave": False}
    assert (t.n, t.postfix, t.closed) == (10, "AAPL/1Min/OHLCV 2024", True)
    assert not bar.shown
    progress_bar(2048, "reading", bytes_=True).close()
    assert fake_tqdm.made[1].kwargs["unit"] == "B" and fake_tqdm.made[1].kwargs["unit_scale"]


def test_an_unwanted_bar_does_nothing(fake_tqdm: type[FakeTqdm]) -> None:
    bar = progress_bar(10, "loading", enabled=False)
    bar.update(3)
    bar.note("x")
    bar.close()
    assert not bar.shown and fake_tqdm.made == []


def test_without_tqdm_there_is_no_bar(monkeypatch: Any, capsys: Any) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)  # `from tqdm import tqdm` raises ImportError
    bar = progress_bar(10, "loading")
    bar.update(10)
    bar.close()
    assert not bar.shown and capsys.readouterr().err == ""


def test_track_yields_every_item_in_order_and_closes(fake_tqdm: type[FakeTqdm]) -> None:
    assert list(track(["a", "b", "c"], 3, "items", unit="bucket")) == ["a", "b", "c"]
    (t,) = fake_tqdm.made
    assert (t.n, t.closed, t.kwargs["unit"]) == (3, True, "bucket")
    assert list(track(iter(range(5)), 5, "quiet", enabled=False)) == [0, 1, 2, 3, 4]
    assert len(fake_tqdm.made) == 1


def test_the_real_tqdm_draws_on_stderr(capsys: Any) -> None:
    pytest.importorskip("tqdm")
    with progress_bar(3, "drawing") as bar:
        bar.update(3)
    assert "drawing" in capsys.readouterr().err
