"""`make demo`: the main job end to end on bundled synthetic data.

1. Build a demo configuration from the repository's default `mkts.yml` (same triggers:
   on-disk aggregation of `*/1Min/OHLCV` into 5Min/15Min/1H/1D, and streaming) with its
   root in ./demo-data and a free port.
2. Load a quarter of 1Min bars for five symbols through the embedded API (one durable
   transaction); the aggregation trigger writes the 5Min/15Min/1H/1D bars.
3. Start the real server (`mkts start`) and query the aggregated bars with the
   unmodified pymarketstore client; write one more 1Min bar through pymarketstore and
   watch it arrive on the `/ws` stream and move the 5Min bar.
4. Stop the server with SIGTERM (exit 0) and reopen the database to check nothing was lost.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

import mkts
from mkts.config import DEFAULT_PORT
from mkts.plugins import synth

log = logging.getLogger("mkts.demo")

ROOT = Path(os.environ.get("MKTS_DEMO_ROOT", "demo-data")).resolve()
REPO = Path(__file__).resolve().parent.parent
ZONE = "America/New_York"  # the demo database's zone: days, bars and every printed time


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write_config(port: int) -> Path:
    text = (REPO / "mkts.yml").read_text()
    text = text.replace("root_directory: data", "root_directory: db", 1)
    text = text.replace(f"listen_port: {DEFAULT_PORT}", f"listen_port: {port}", 1)
    text = text.replace("log_level: info", "log_level: warning", 1)
    text = text.replace("timezone: UTC", f"timezone: {ZONE}", 1)
    path = ROOT / "mkts.yml"
    path.write_text(text)
    return path


def _local(epoch: int) -> str:
    """An epoch second in the demo database's zone, with its offset."""
    import zoneinfo

    return dt.datetime.fromtimestamp(epoch, zoneinfo.ZoneInfo(ZONE)).isoformat(sep=" ")


def _table(df: Any, title: str) -> None:
    import pandas as pd

    print(f"\n{title}")
    with pd.option_context("display.width", 120, "display.float_format", "{:.2f}".format):
        print(df.to_string())


def main() -> int:
    if ROOT.exists():
        shutil.rmtree(ROOT)
    ROOT.mkdir(parents=True)
    port = _free_port()
    cfg_path = _write_config(port)

    names = synth.symbols(5)
    start, end = dt.date(2024, 1, 2), dt.date(2024, 3, 28)
    bars = {f"{s}/1Min/OHLCV": synth.minute_bars(s, start, end) for s in names}
    total = sum(len(b) for b in bars.values())
    print(f"mkts demo: {len(names)} symbols, 1Min bars {start} .. {end}: {total:,} rows")
    print(f"config: {cfg_path} (the default mkts.yml with root {ROOT / 'db'})")

    # -- 1. load through the embedded API; the ondiskagg trigger aggregates ------------------
    with mkts.open(cfg_path) as db:
        t0 = time.perf_counter()
        db.write_many(bars)
        wrote = time.perf_counter() - t0
        db.wait_for_triggers()
        agg = time.perf_counter() - t0 - wrote
        print(f"wrote {total:,} rows in one durable transaction in {wrote * 1000:.0f} ms; "
              f"aggregation into 5Min/15Min/1H/1D took {agg * 1000:.0f} ms more")
        print("buckets:", ", ".join(k for k in db.list_keys() if k.startswith("AAPL/")))

    # -- 2. the real server, queried with pymarketstore ---------------------------------------
    import pymarketstore as pymkts

    server = subprocess.Popen(
        [sys.executable, "-m", "mkts.cli", "start", "-c", str(cfg_path)],
        stdout=subprocess.PIPE, text=True, cwd=str(ROOT),
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if "listening on" not in line:
            print(f"the server did not start: {line!r}", file=sys.stderr)
            return 1
        print(f"\n$ mkts start -c {cfg_path.name}\n{line.strip()}")
        client = pymkts.Client(f"http://127.0.0.1:{port}/rpc")
        print(f"pymarketstore {pymkts.__version__} -> server version {client.server_version()}")

        import pandas as pd

        day = "2024-03-15"
        for tf, limit in (("5Min", 6), ("1H", 7), ("1D", 5)):
            params = pymkts.Params("AAPL", tf, "OHLCV",
                                   start=pd.Timestamp(day, tz=ZONE) if tf != "1D" else None,
                                   limit=limit, limit_from_start=tf != "1D")
            df = client.query(params).first().df().tz_convert(ZONE)  # pymarketstore: UTC
            _table(df, f"AAPL/{tf}/OHLCV via pymarketstore, times in {ZONE} "
                       f"({'first bars of ' + day if tf != '1D' else 'last 5 days'}):")

        # -- 3. a live write flows through aggregation and streaming --------------------------
        received: list[tuple[str, dict[str, Any]]] = []
        listen_error: list[Exception] = []
        stream = pymkts.StreamConn(f"ws://127.0.0.1:{port}/ws")

        @stream.on(r"^AAPL/")  # type: ignore[untyped-decorator]
        def on_message(_conn: Any, msg: dict[str, Any]) -> None:
            received.append((msg["key"], msg["data"]))

        def listen() -> None:
            try:
                stream.run(["AAPL/1Min/OHLCV", "AAPL/5Min/OHLCV"])
            except Exception as exc:  # also how it ends: the server closes the socket
                listen_error.append(exc)
                log.debug("the /ws listener ended: %r", exc)

        threading.Thread(target=listen, daemon=True).start()
        time.sleep(1.0)  # StreamConn gives no signal once it has subscribed
        last = bars["AAPL/1Min/OHLCV"][-1]
        new_epoch = int(last["Epoch"]) + 60
        row = np.array([(new_epoch, 300.0, 310.0, 299.0, 305.0, 12_345)],
                       dtype=[("Epoch", "i8"), ("Open", "f4"), ("High", "f4"), ("Low", "f4"),
                              ("Close", "f4"), ("Volume", "i8")])
        client.write(row, "AAPL/1Min/OHLCV")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len({k for k, _ in received}) < 2:
            time.sleep(0.05)
        print(f"\nwrote one 1Min bar at {_local(new_epoch)} through pymarketstore; /ws "
              "pushed:")
        for key, data in received:
            print(f"  {key:<16} Epoch={data['Epoch']}  High={data['High']:.2f}  "
                  f"Volume={data['Volume']}")
        if len({k for k, _ in received}) < 2:
            print("  (expected pushes for AAPL/1Min/OHLCV and AAPL/5Min/OHLCV)", file=sys.stderr)
            if listen_error:
                print(f"  the /ws listener failed: {listen_error[0]!r}", file=sys.stderr)
            return 1
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=30)
    print(f"\nSIGTERM -> server exited with status {code}")
    if code != 0:
        return 1

    # -- 4. reopen: everything is there ----------------------------------------------------
    with mkts.open(ROOT / "db") as db:
        n = len(db.read("AAPL/1Min/OHLCV"))
        five = db.read("AAPL/5Min/OHLCV", limit=1)
        print(f"reopened {ROOT / 'db'}: AAPL has {n:,} 1Min bars "
              f"(= {len(bars['AAPL/1Min/OHLCV']) + 1:,} written); last 5Min bar "
              f"{_local(int(five['Epoch'][0]))} High={five['High'][0]:.2f}")
        if n != len(bars["AAPL/1Min/OHLCV"]) + 1:
            print("row count after reopen does not match what was written", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
