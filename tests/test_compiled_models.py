"""The folder of frozen forward passes kept between runs (creative_dag/encoders/compiled.py), on a tiny model:
what makes a copy stale, what a damaged or unwritable folder does. The CNN and the OCR detector themselves
are checked in tests/test_encoders_models.py and tests/test_layout.py."""

from __future__ import annotations

import warnings

import pytest
import torch

from creative_dag.encoders.compiled import CompiledModels, KeptCopy


def _frozen(seed: int):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU()).eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        return torch.jit.freeze(torch.jit.trace(model, torch.zeros(1, 3, 8, 8)))


@pytest.fixture
def weights(tmp_path):
    path = tmp_path / "weights.pth"
    path.write_bytes(b"weights v1")
    return path


def _slot(store: CompiledModels, weights, name="tiny", settings=(224,)) -> KeptCopy:
    return store.slot(name, files=[weights], libraries=["numpy"], sources=[__file__], settings=settings)


def test_a_kept_copy_computes_what_was_saved(tmp_path, weights):
    slot = _slot(CompiledModels(tmp_path / "compiled"), weights)
    assert slot.load() is None
    module = _frozen(0)
    slot.save(module, {"model_version": "abc"})
    loaded, meta = slot.load()
    x = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x), module(x))
    assert meta == {"model_version": "abc"}


def test_other_weights_settings_or_code_make_another_key_and_replace_the_stale_copy(tmp_path, weights):
    store = CompiledModels(tmp_path / "compiled")
    first = _slot(store, weights)
    assert _slot(store, weights) == first  # stable
    assert _slot(store, weights, settings=(384,)).key != first.key
    assert store.slot("tiny", files=[weights], libraries=["numpy"], sources=[__file__, weights],
                      settings=(224,)).key != first.key
    first.save(_frozen(0), {})
    weights.write_bytes(b"weights v2, longer")  # new weights: size and modification time change
    second = _slot(store, weights)
    assert second.key != first.key
    second.save(_frozen(1), {})
    assert first.load() is None and second.load() is not None
    assert sorted(p.name for p in store.root.iterdir()) == [f"tiny-{second.key}.json", f"tiny-{second.key}.pt"]
    own_name = _slot(store, weights, name="tiny-384")
    own_name.save(_frozen(0), {})  # a name of its own: coexists
    assert second.load() is not None and own_name.load() is not None


def test_a_damaged_copy_is_missing_and_an_unwritable_folder_costs_only_speed(tmp_path, weights):
    store = CompiledModels(tmp_path / "compiled")
    slot = _slot(store, weights)
    slot.save(_frozen(0), {})
    (store.root / f"tiny-{slot.key}.pt").write_bytes(b"half a file")
    assert slot.load() is None
    (store.root / f"tiny-{slot.key}.json").write_text("{not json")
    assert slot.load() is None
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")
    unwritable = _slot(CompiledModels(blocked / "compiled"), weights)  # its folder cannot be made
    unwritable.save(_frozen(0), {})  # no error
    assert unwritable.load() is None


def test_a_copy_another_install_built_is_left_to_it(tmp_path, weights):
    """Two installs (two virtual environments) may share a home: each one's weights lie at its own path, so
    each keeps its own copy instead of replacing the other's at every load."""
    store = CompiledModels(tmp_path / "compiled")
    other = tmp_path / "other-venv" / "weights.pth"
    other.parent.mkdir()
    other.write_bytes(b"weights v1")
    mine, theirs = _slot(store, weights), _slot(store, other)
    assert mine.key != theirs.key
    theirs.save(_frozen(0), {})
    mine.save(_frozen(1), {})
    assert theirs.load() is not None and mine.load() is not None
