"""The process that test_kill9.py kills: a fork server for writer and replay jobs.

Run as `python kill9_child.py`. It imports the engine once, then reads one JSON job per line
on stdin and forks a child for it, so each job starts in milliseconds. Every line it or a
child prints goes to stdout with one os.write (atomic on a pipe) and starts with the job id:

    <job> P <pid>            the server forked the child <pid>
    <job> R                  writer: the database is open
    <job> A <t> <tid> <txn>  writer thread t: write_many() of transaction <tid> returned
    <job> C                  writer: a checkpoint() (or a seal(), which checkpoints) returned
    <job> S <new|re> <thread>  writer: a seal (new) or re-seal (re) of a year begins, on the
                             thread named (`mkts-seal`: the background sealer)
    <job> O                  replay job: about to open the database (replay, checkpoint)
    <job> D                  replay job: open and close returned
    <job> E <error>          the job failed
    <job> X <status>         the server reaped the child

A child never exits by itself: when its job is done (or failed) it sleeps until the parent
kills it with SIGKILL (after at most five minutes it exits, in case the parent died).
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
from typing import Any

sys.path[1:1] = [os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))]

import crashwork  # noqa: E402  (beside this file)

from mkts import engine  # noqa: E402
from mkts.engine import sealjob  # noqa: E402

_out_lock = threading.Lock()


def out(line: str) -> None:
    data = (line + "\n").encode()
    with _out_lock:
        os.write(1, data)


def writer(job: dict) -> None:
    jid = job["job"]
    threads = job["threads"]
    db = engine.open(job["root"], sync=job["sync"], checkpoint_interval_s=job["checkpoint_s"],
                     sync_interval_ms=job.get("sync_interval_ms", 100),
                     seal_after_days=job.get("seal_after_days", 7))
    if job.get("seal_after_days"):  # closed years are sealed however recently written
        db._sealer.quiet_s = 0.0
    real_seal_one = sealjob.seal_one

    def traced_seal_one(db_: Any, pipeline: Any, bucket: Any, year: int) -> bool:
        kind = "re" if year in bucket.sealed else "new"
        out(f"{jid} S {kind} {threading.current_thread().name}")
        return real_seal_one(db_, pipeline, bucket, year)

    sealjob.seal_one = traced_seal_one
    for t in range(threads):
        crashwork.ensure_tick_bucket(db, job["prefixes"][t])
    out(f"{jid} R")
    rng = random.Random(job["seed"] ^ 0x5EED)

    def run(t: int) -> None:
        try:
            write_loop(t)
        except BaseException as exc:
            out(f"{jid} E thread {t}: {exc!r}".replace("\n", " "))

    def write_loop(t: int) -> None:
        wl = crashwork.Workload(job["seeds"][t], first_id=job["first_ids"][t],
                                prefix=job["prefixes"][t], known=list(job["known"][t]),
                                stripe=(t, threads) if threads > 1 else None,
                                profile=job.get("profile", "mixed"))
        started = time.monotonic()
        for _ in range(50_000):
            txn = wl.next()
            n = txn.write(db)
            out(f"{jid} A {t} {txn.tid} {n}")
            if t == 0 and rng.random() < job["checkpoint_odds"]:
                db.checkpoint()
                out(f"{jid} C")
            if t == 0 and rng.random() < job.get("seal_odds", 0.0):
                db.seal(year=2023)  # the year before crashwork.BOUNDARY; checkpoints first
                out(f"{jid} C")
            if time.monotonic() - started > 120:
                break

    if threads == 1:
        run(0)
    else:
        workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()


def replay(job: dict) -> None:
    out(f"{job['job']} O")
    engine.open(job["root"]).close()
    out(f"{job['job']} D")


def child(job: dict) -> None:
    try:
        (writer if job["kind"] == "writer" else replay)(job)
    except BaseException as exc:  # reported, then wait to be killed like any other child
        out(f"{job['job']} E {exc!r}".replace("\n", " "))
    time.sleep(300)  # wait to be killed; exit 3 if the parent never does
    os._exit(3)


def main() -> None:
    for line in sys.stdin:
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:
            child(job)
        out(f"{job['job']} P {pid}")
        _, status = os.waitpid(pid, 0)
        out(f"{job['job']} X {status}")


if __name__ == "__main__":
    main()
