"""The folder of frozen forward passes kept between runs (creative_dag/encoders/compiled.py), on a tiny model:
what makes a copy stale, what a damaged or unwritable folder does. The CNN and the OCR detector themselves
are checked in tests/test_encoders_models.py and tests/test_layout.py."""

from __future__ import annotations

import warnings

import pytest
import torch

from creative_dag.encoders.compiled import CompiledModels


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


def _key(store: CompiledModels, weights, settings=(224,)) -> str:
    return store.key(files=[weights], libraries=["numpy"], sources=[__file__], settings=settings)


def test_a_kept_copy_computes_what_was_saved(tmp_path, weights):
    store = CompiledModels(tmp_path / "compiled")
    key = _key(store, weights)
    assert store.load("tiny", key) is None
    module = _frozen(0)
    store.save("tiny", key, module, {"model_version": "abc"}, files=[weights])
    loaded, meta = store.load("tiny", key)
    x = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x), module(x))
    assert meta == {"model_version": "abc"}


def test_other_weights_settings_or_code_make_another_key_and_replace_the_stale_copy(tmp_path, weights):
    store = CompiledModels(tmp_path / "compiled")
    first = _key(store, weights)
    assert _key(store, weights) == first  # stable
    assert _key(store, weights, settings=(384,)) != first
    assert store.key(files=[weights], libraries=["numpy"], sources=[__file__, weights], settings=(224,)) != first
    store.save("tiny", first, _frozen(0), {}, files=[weights])
    weights.write_bytes(b"weights v2, longer")  # new weights: size and modification time change
    second = _key(store, weights)
    assert second != first
    store.save("tiny", second, _frozen(1), {}, files=[weights])
    assert store.load("tiny", first) is None and store.load("tiny", second) is not None
    assert sorted(p.name for p in store.root.iterdir()) == [f"tiny-{second}.json", f"tiny-{second}.pt"]
    store.save("tiny-384", first, _frozen(0), {}, files=[weights])  # a name of its own: coexists
    assert store.load("tiny", second) is not None and store.load("tiny-384", first) is not None


def test_a_damaged_copy_is_missing_and_an_unwritable_folder_costs_only_speed(tmp_path, weights):
    store = CompiledModels(tmp_path / "compiled")
    key = _key(store, weights)
    store.save("tiny", key, _frozen(0), {}, files=[weights])
    (store.root / f"tiny-{key}.pt").write_bytes(b"half a file")
    assert store.load("tiny", key) is None
    (store.root / f"tiny-{key}.json").write_text("{not json")
    assert store.load("tiny", key) is None
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")
    unwritable = CompiledModels(blocked / "compiled")  # its folder cannot be made
    unwritable.save("tiny", key, _frozen(0), {}, files=[weights])  # no error
    assert unwritable.load("tiny", key) is None


def test_a_copy_another_install_built_is_left_to_it(tmp_path, weights):
    """Two installs (two virtual environments) may share a home: each one's weights lie at its own path, so
    each keeps its own copy instead of replacing the other's at every load."""
    store = CompiledModels(tmp_path / "compiled")
    other = tmp_path / "other-venv" / "weights.pth"
    other.parent.mkdir()
    other.write_bytes(b"weights v1")
    mine, theirs = _key(store, weights), _key(store, other)
    assert mine != theirs
    store.save("tiny", theirs, _frozen(0), {}, files=[other])
    store.save("tiny", mine, _frozen(1), {}, files=[weights])
    assert store.load("tiny", theirs) is not None and store.load("tiny", mine) is not None
