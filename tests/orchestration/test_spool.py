"""The MLflow spool's journal: what is not stored yet survives the driver (a writer waiting out
a real ``mlflow server`` being killed and restarted is ``benchmarks.fault_scenarios.writer_outage``,
run by tests/benchmarks/test_faults.py; the spool replayed: tests/orchestration/test_replay.py)."""

from __future__ import annotations

from orchestration.spool import JOURNAL, Spool


def test_the_journal_keeps_what_is_not_stored_across_a_restart(tmp_path):
    spool = Spool(tmp_path / "spool", {"tracking_uri": "http://u:secret@host:5000", "experiment": "e", "sweep_id": "s"})
    first = spool.add("epoch", {"n": 1}, time_ms=10)
    second = spool.add("epoch", {"n": 2})
    spool.mark_done(first.seq)
    spool.mark_failed(second.seq, "boom")
    third = spool.add("finish", {"n": 3})
    with (tmp_path / "spool" / JOURNAL).open("a") as fh:
        fh.write('{"done": ')  # a kill in the middle of an append
    again = Spool(tmp_path / "spool")
    assert [(u.seq, u.args["n"]) for u in again.pending()] == [(second.seq, 2), (third.seq, 3)]
    assert again.failed == {second.seq: "boom"} and again.pending()[0].time_ms > 0
    assert "secret" not in (tmp_path / "spool" / "meta.json").read_text()  # no credentials on disk
    assert again.meta["sweep_id"] == "s"
    fourth = again.add("epoch", {"n": 4})  # after the cut line, not glued to it
    assert [u.seq for u in Spool(tmp_path / "spool").pending()] == [second.seq, third.seq, fourth.seq]


def test_a_spool_with_everything_stored_is_compacted(tmp_path):
    spool = Spool(tmp_path / "spool", {"tracking_uri": "sqlite:///x.db", "experiment": "e", "sweep_id": "s"})
    unit = spool.add("epoch", {"n": 1})
    (spool.files_dir(unit.seq)).mkdir(parents=True)
    spool.compact()
    assert (tmp_path / "spool" / JOURNAL).exists()  # something is pending: kept
    spool.mark_done(unit.seq)
    spool.compact()
    assert not (tmp_path / "spool" / JOURNAL).exists() and not (tmp_path / "spool" / "files").exists()
    assert Spool(tmp_path / "spool").meta["sweep_id"] == "s" and not Spool(tmp_path / "spool").pending()
    spool.add("epoch", {"n": 2})  # a later run of the sweep starts a new journal
    assert [u.args["n"] for u in Spool(tmp_path / "spool").pending()] == [2]
