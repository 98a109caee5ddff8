"""Datasets and transforms: digits statistics, CIFAR in its published pickle layout (read by data.cifar), ImageFolder, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from train_helpers import write_fake_cifar, write_image_folder

from sdnet_cli.data import transforms as T
from sdnet_cli.data.datasets import build_dataset, dataset_info, load_raw_images
from sdnet_cli.data.digits import load_digits


def test_digits_mean_std_recomputed():
    x, _ = load_digits("train", 16)
    x = x.astype(np.float64) / 255.0
    info = dataset_info("digits")
    assert info.mean == pytest.approx((x.mean(),) * 3, abs=1e-4)
    assert info.std == pytest.approx((x.std(),) * 3, abs=1e-4)
    assert (info.num_classes, info.stem_type, info.in_chans) == (10, "cifar", 3)


def test_dataset_info_paper_values_and_unknown():
    assert dataset_info("cifar10").mean == (0.4914, 0.4822, 0.4465)
    assert dataset_info("cifar100").std == (0.2023, 0.1994, 0.2010)
    assert dataset_info("imagenet").mean == (0.485, 0.456, 0.406) and dataset_info("imagenet").image_size == 224
    with pytest.raises(ValueError, match="unknown dataset 'svhn'.*digits, cifar10, cifar100, imagenet"):
        dataset_info("svhn")


def test_digits_test_split_is_normalised_raw():
    ds = build_dataset("digits", "test", image_size=8)
    raw, labels = load_raw_images("digits", "test", image_size=8)
    info = dataset_info("digits")
    assert len(ds) == 360 and raw.shape == (360, 8, 8, 3) and raw.dtype == np.uint8
    for i in (0, 17, 359):
        x, y = ds[i]
        expect = (torch.from_numpy(raw[i]).permute(2, 0, 1).double() / 255 - info.mean[0]) / info.std[0]
        assert torch.allclose(x.double(), expect, atol=1e-6) and y == labels[i]


def test_augmentation_is_a_function_of_seed_epoch_index():
    ds = build_dataset("digits", "train", train_transform=True, image_size=16, seed=3)
    a, _ = ds[5]
    assert torch.equal(a, ds[5][0])  # same (seed, epoch, index) -> same crop
    ds.set_epoch(1)
    others = [ds[5][0] for _ in range(1)] + [build_dataset("digits", "train", True, image_size=16, seed=4)[5][0]]
    assert any(not torch.equal(a, o) for o in others)
    # the crop is a window of the zero-padded (then normalised) clean image
    clean = T.to_float_chw(load_digits("train", 16)[0][5])
    pad = torch.nn.functional.pad(clean, (2, 2, 2, 2))
    info = dataset_info("digits")
    windows = [T.normalize(pad[:, i:i + 16, j:j + 16], info.mean, info.std) for i in range(5) for j in range(5)]
    assert any(torch.allclose(a, w, atol=1e-6) for w in windows)


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_fake_cifar_through_torchvision_format(tmp_path, name):
    arrays = write_fake_cifar(tmp_path, name, n_train=20, n_test=10)
    ds = build_dataset(name, "train", root=tmp_path, download=False)
    assert len(ds) == 20 and ds.num_classes == (10 if name == "cifar10" else 100)
    x, y = ds[3]
    info = dataset_info(name)
    expect = T.normalize(torch.from_numpy(arrays["train_data"][3]).permute(2, 0, 1).float() / 255, info.mean, info.std)
    assert torch.allclose(x, expect, atol=1e-6) and y == arrays["train_labels"][3]
    raw, labels = load_raw_images(name, "test", root=tmp_path, download=False)
    assert np.array_equal(raw, arrays["test_data"]) and np.array_equal(labels, arrays["test_labels"])
    aug = build_dataset(name, "train", root=tmp_path, download=False, train_transform=True)
    assert aug[0][0].shape == (3, 32, 32)


def test_cifar_missing_without_download_says_how(tmp_path):
    with pytest.raises(ValueError) as e:
        build_dataset("cifar10", "test", root=tmp_path, download=False)
    msg = str(e.value)
    assert "cifar-10-python.tar.gz" in msg and "--data-root" in msg and str(tmp_path) in msg


def test_image_folder(tmp_path):
    write_image_folder(tmp_path, classes=3, per_class=2, size=40)
    tr = build_dataset("imagenet", "train", root=tmp_path, train_transform=True, image_size=32)
    te = build_dataset("imagenet", "test", root=tmp_path, image_size=32)
    assert len(tr) == 6 and len(te) == 6 and tr.num_classes == 3
    assert tr[0][0].shape == (3, 32, 32) and te[5] [0].shape == (3, 32, 32) and te[5][1] == 2
    raw, labels = load_raw_images("imagenet", "test", root=tmp_path, image_size=32)
    assert raw.shape == (6, 32, 32, 3) and labels.tolist() == [0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="ImageFolder split .* not found"):
        build_dataset("imagenet", "train", root=tmp_path / "nothing")


def test_unreadable_image_fails_clearly_or_is_skipped(tmp_path):
    write_image_folder(tmp_path, classes=2, per_class=2, size=36)
    bad = tmp_path / "train" / "class0" / "img1.png"
    bad.write_bytes(b"not a png")
    ds = build_dataset("imagenet", "train", root=tmp_path, image_size=32)
    idx = [p for p, _ in ds.samples].index(str(bad))
    with pytest.raises(ValueError, match=r"cannot read image .*img1.png.*data.skip_bad_images"):
        ds[idx]
    skip = build_dataset("imagenet", "train", root=tmp_path, image_size=32, skip_bad_images=True)
    with pytest.warns(RuntimeWarning, match="skipping unreadable image"):
        x, y = skip[idx]
    assert x.shape == (3, 32, 32) and y == skip.samples[idx + 1][1]


def test_resized_crop_box_in_bounds():
    g = torch.Generator().manual_seed(0)
    for w, h in [(40, 30), (500, 375), (10, 100)]:
        for _ in range(50):
            left, top, cw, ch = T.resized_crop_box(w, h, g)
            assert 0 <= left and 0 <= top and left + cw <= w and top + ch <= h and cw > 0 and ch > 0


# -- labels, statistics and roots read from a user's files (sdnet_cli.data.checks) --------------------
def test_check_labels_accepts_integers_and_refuses_the_rest():
    from sdnet_cli.data.checks import check_labels
    from sdnet_cli.errors import UsageError

    out = check_labels(np.array([0, 3, 9], dtype=np.int32), 10, "src")
    assert out.dtype == np.int64 and out.tolist() == [0, 3, 9]
    assert check_labels([], 10, "src").dtype == np.int64
    for labels, words in [([0, 10, 2], ["src", "label 10", "sample 1", "0 … 9"]), ([1, -1], ["label -1", "sample 1"]),
                          ([0.0, 1.0, 2.0], ["float64", "integer"]), ([0.5, 1], ["float64"]),
                          ([True, False], ["bool"]), ([[0, 1], [1, 0]], ["1-D", "(2, 2)"])]:
        with pytest.raises(UsageError) as e:
            check_labels(labels, 10, "src")
        assert all(w in str(e.value) for w in words), str(e.value)


def _rewrite_cifar_labels(root, new_labels):
    import pickle

    for f in sorted((root / "cifar-10-batches-py").glob("*_batch*")):
        batch = pickle.loads(f.read_bytes())
        batch["labels"] = new_labels(batch["labels"])
        f.write_bytes(pickle.dumps(batch))


@pytest.mark.parametrize("rewrite, words", [
    (lambda ls: ls[:-1] + [10], ["label 10", "0 … 9"]),
    (lambda ls: [float(x) for x in ls], ["float64", "integer"]),
])
def test_cifar_labels_are_checked_when_loaded(tmp_path, rewrite, words):
    """Bad labels in a user's CIFAR copy fail when the dataset is built, naming the folder, not deep in the loss."""
    from sdnet_cli.errors import UsageError

    write_fake_cifar(tmp_path, "cifar10", n_train=20, n_test=10)
    _rewrite_cifar_labels(tmp_path, rewrite)
    for split in ("train", "test"):
        with pytest.raises(UsageError) as e:
            build_dataset("cifar10", split, root=tmp_path, download=False)
        assert "cifar-10-batches-py" in str(e.value) and all(w in str(e.value) for w in words), str(e.value)
    with pytest.raises(UsageError, match="cifar-10-batches-py") as e:
        load_raw_images("cifar10", "test", root=tmp_path, download=False)
    assert all(w in str(e.value) for w in words), str(e.value)


def test_array_dataset_refuses_float_labels_instead_of_truncating():
    from sdnet_cli.data.datasets import ArrayDataset
    from sdnet_cli.errors import UsageError

    images = np.zeros((3, 8, 8, 3), np.uint8)
    tf = T.array_transform((0.5,) * 3, (0.5,) * 3, False, 8, 0, False)
    assert ArrayDataset(images, np.array([0, 1, 2]), tf, False, 10).targets.tolist() == [0, 1, 2]
    with pytest.raises(UsageError, match="integer class indices, got float64"):
        ArrayDataset(images, np.array([0.9, 1.2, 2.7]), tf, False, 10)
    with pytest.raises(UsageError, match="3 images but 2 labels"):
        ArrayDataset(images, np.array([0, 1]), tf, False, 10)


@pytest.mark.parametrize("mean, std, words", [
    ((0.5,) * 3, (0.0, 0.0, 0.0), ["std must be > 0", "[0.0, 0.0, 0.0]"]),
    ((0.5,) * 3, (0.2, -0.2, 0.2), ["std must be > 0"]),
    ((float("nan"),) * 3, (0.2,) * 3, ["finite"]),
    ((0.5,) * 3, (0.2, float("inf"), 0.2), ["finite"]),
    ((0.5,) * 3, (0.2, 0.2), ["one value per channel"]),
    ((), (), ["one value per channel"]),
])
def test_normalisation_statistics_are_checked_once_at_construction(mean, std, words):
    from sdnet_cli.errors import UsageError

    for make in (lambda: T.array_transform(mean, std, False, 8, 0, False), lambda: T.pil_transform(mean, std, False, 8)):
        with pytest.raises(UsageError) as e:
            make()
        assert all(w in str(e.value) for w in words), str(e.value)


def test_a_data_root_that_is_a_file_says_so(tmp_path):
    from sdnet_cli.errors import UsageError

    f = tmp_path / "root.txt"
    f.write_text("x")
    for name in ("cifar10", "cifar100", "imagenet"):
        with pytest.raises(UsageError, match=r"data root .*root.txt is a file; --data-root expects the folder"):
            build_dataset(name, "test", root=f, download=False)


@pytest.mark.parametrize("size", [0, -3, 2.5, True])
def test_digits_image_size_must_be_a_positive_integer(size):
    from sdnet_cli.errors import UsageError

    with pytest.raises(UsageError, match="digits image size must be an integer >= 1"):
        load_digits("test", size)
