"""Files written by caches, memos, the report and imports: whole or not at all."""

from __future__ import annotations

import numpy as np
import pytest

from creative_dag.atomic_files import atomic_path, write_text_atomically


def test_a_failed_write_leaves_the_old_file_and_no_debris(tmp_path):
    target = tmp_path / "deep" / "index.json"
    write_text_atomically(target, '{"a": 1}')
    with pytest.raises(RuntimeError), atomic_path(target) as partial:
        partial.write_text('{"a": ')  # killed mid-write
        raise RuntimeError("disk full")
    assert target.read_text() == '{"a": 1}'
    assert [p.name for p in target.parent.iterdir()] == ["index.json"]


def test_temporary_names_are_unique_and_keep_the_suffix(tmp_path):
    target = tmp_path / "refits.npz"
    with atomic_path(target) as first, atomic_path(target) as second:
        assert first != second and first.suffix == second.suffix == ".npz"
        np.savez(first, x=np.arange(3.0))  # np.savez adds .npz unless the name already ends with it
        np.savez(second, x=np.arange(4.0))
    assert list(np.load(target)["x"]) == [0.0, 1.0, 2.0]  # whole files only: the last rename (the outer) wins
    assert sorted(p.name for p in tmp_path.iterdir()) == ["refits.npz"]
