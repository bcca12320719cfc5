"""What one run keeps for the next (forecast refits, attribution edits): only what it used, whole."""

from __future__ import annotations

import numpy as np

from creative_dag.attribution.variants import VariantIndex
from creative_dag.forecast.memo import RefitMemo


def test_a_run_keeps_only_the_entries_it_used(tmp_path):
    path = tmp_path / "variants.json"
    first = VariantIndex.open(path, salt="code")
    first.put("a", "sha-a")
    first.put("b", "")  # the edit does not apply: remembered too
    first.save()
    second = VariantIndex.open(path, salt="code")
    assert second.get("b") == "" and second.get("zzz") is None and second.hits == 1
    second.save()  # used only "b" this time
    assert VariantIndex.open(path).stored == {"b": ""}


def test_an_unreadable_file_starts_afresh_and_says_why(tmp_path):
    for path, memo_type in ((tmp_path / "variants.json", VariantIndex), (tmp_path / "refits.npz", RefitMemo)):
        path.write_bytes(b"\x00 not what was saved")
        kept = memo_type.open(path)
        assert kept.stored == {} and "unreadable" in kept.note and str(path) in kept.note
    wrong_shape = tmp_path / "list.json"
    wrong_shape.write_text("[1, 2]")
    assert "JSON object" in VariantIndex.open(wrong_shape).note


def test_refit_predictions_round_trip_as_floats(tmp_path):
    memo = RefitMemo.open(tmp_path / "refits.npz", salt="code")
    key = memo.key("setting", np.arange(3))
    memo.put(key, [1, 2, 3])
    memo.save()
    again = RefitMemo.open(tmp_path / "refits.npz", salt="code")
    got = again.get(key)
    np.testing.assert_array_equal(got, [1.0, 2.0, 3.0])
    assert got.dtype == float and again.summary().startswith("1 as-of refits reused")
