"""Named data sets and the one seeded, stratified train / val / test split."""

from __future__ import annotations

import numpy as np
import pytest

from forensics.data import load, load_split, split_indices
from forensics.errors import ForensicsError


@pytest.mark.parametrize(
    ("name", "size", "shape"), [("mnist5k", 5000, (1, 28, 28)), ("digits", 1797, (1, 8, 8))]
)
def test_builtin_data_sets_follow_the_image_convention(name, size, shape):
    data = load(name)
    assert len(data) == size and data.shape == shape
    assert data.images.dtype == np.float32
    assert data.images.min() == 0.0 and data.images.max() == 1.0
    assert data.labels.dtype == np.int64
    assert set(np.unique(data.labels).tolist()) == set(range(10))
    assert data.fingerprint() == load(name).fingerprint()


@pytest.mark.parametrize("name", ["mnist5k", "digits"])
def test_split_is_stratified_disjoint_complete_and_deterministic(name):
    labels = load(name).labels
    parts = split_indices(labels)
    train, val, test = parts["train"], parts["val"], parts["test"]
    everything = np.concatenate([train, val, test])
    assert len(everything) == len(np.unique(everything)) == len(labels)  # disjoint, covers all
    assert set(everything.tolist()) == set(range(len(labels)))
    for part in (train, val, test):
        assert np.all(np.diff(part) > 0)
        assert set(labels[part].tolist()) == set(range(10))  # every digit in every part
    for digit in range(10):
        count = np.sum(labels == digit)
        assert abs(np.sum(labels[train] == digit) - 0.8 * count) <= 1
        assert abs(np.sum(labels[val] == digit) - 0.1 * count) <= 1
    assert abs(len(train) / len(labels) - 0.8) < 0.005
    again = split_indices(labels.copy())
    for key in parts:
        np.testing.assert_array_equal(parts[key], again[key])
    shuffled = split_indices(labels, seed=1)
    assert not np.array_equal(shuffled["test"], test)


def test_mnist5k_split_sizes_and_load_split():
    parts = split_indices(load("mnist5k").labels)
    assert [len(parts[k]) for k in ("train", "val", "test")] == [4000, 500, 500]
    test = load_split("mnist5k", "test")
    assert test.name == "mnist5k:test" and len(test) == 500
    np.testing.assert_array_equal(test.images, load("mnist5k").images[parts["test"]])
    assert len(load_split("mnist5k", "all")) == 5000
    with pytest.raises(ForensicsError, match="unknown split"):
        load_split("mnist5k", "holdout")


def test_split_is_stable_for_a_given_seed():
    """Pinned: changing the split would silently change every held-out number."""
    parts = split_indices(load("digits").labels)
    assert [len(parts[k]) for k in ("train", "val", "test")] == [1438, 179, 180]
    other = split_indices(np.repeat(np.arange(3), 10), seed=0)
    assert [len(other[k]) for k in ("train", "val", "test")] == [24, 3, 3]


def test_unknown_data_set_names_the_known_ones():
    with pytest.raises(ForensicsError) as info:
        load("imagenet")
    message = str(info.value)
    assert "\n" not in message
    assert "unknown data set 'imagenet'" in message and "mnist5k" in message


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "cifar10"])
def test_torchvision_data_set_without_files_says_how_to_get_it(name, tmp_path):
    with pytest.raises(ForensicsError) as info:
        load(name, root=tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert "--download" in message and str(tmp_path) in message
    assert not any(tmp_path.iterdir())  # nothing fetched or created without --download


def _write(path, array, fmt):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "L" if array.ndim == 2 else "RGB"
    Image.fromarray(array, mode=mode).save(path, format=fmt)


def test_folder_data_set_conforms_mixed_files(tmp_path):
    rng = np.random.default_rng(0)
    _write(tmp_path / "cats" / "a.png", rng.integers(0, 256, (12, 10, 3), dtype=np.uint8), "PNG")
    _write(tmp_path / "cats" / "b.jpg", rng.integers(0, 256, (10, 10), dtype=np.uint8), "JPEG")
    _write(tmp_path / "dogs" / "c.png", rng.integers(0, 256, (10, 14), dtype=np.uint8), "PNG")
    _write(tmp_path / "dogs" / "d.jpeg", rng.integers(0, 256, (20, 16, 3), dtype=np.uint8), "JPEG")
    (tmp_path / "dogs" / "broken.png").write_bytes(b"not a png")
    (tmp_path / "notes.txt").write_text("ignored")

    data = load(f"folder:{tmp_path}")
    # RGB because some files are; side 10 because it is the most common shorter side
    assert data.images.shape == (4, 3, 10, 10)
    assert data.images.dtype == np.float32
    assert 0.0 <= data.images.min() and data.images.max() <= 1.0
    assert data.labels.tolist() == [0, 0, 1, 1]
    assert len(data.skipped) == 1 and "broken.png" in data.skipped[0]
    # a gray file becomes three equal channels
    gray = data.images[1]
    np.testing.assert_array_equal(gray[0], gray[1])
    np.testing.assert_array_equal(gray[0], gray[2])

    small = load(f"folder:{tmp_path}", size=4)
    assert small.images.shape == (4, 3, 4, 4)


def test_gray_folder_without_sub_folders(tmp_path):
    rng = np.random.default_rng(1)
    for i in range(3):
        _write(tmp_path / f"{i}.png", rng.integers(0, 256, (6, 6), dtype=np.uint8), "PNG")
    data = load(f"folder:{tmp_path}")
    assert data.images.shape == (3, 1, 6, 6)
    assert data.labels.tolist() == [-1, -1, -1]
    parts = split_indices(data.labels)  # unlabelled images form one stratum
    assert sorted(np.concatenate(list(parts.values())).tolist()) == [0, 1, 2]


def test_folder_data_set_refuses_empty_or_missing_folders(tmp_path):
    with pytest.raises(ForensicsError, match="not a folder"):
        load(f"folder:{tmp_path / 'missing'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ForensicsError, match="no readable image"):
        load(f"folder:{tmp_path / 'empty'}")
