"""CIFAR-10's binary record format, read from small files made here in the same format, and augmentation."""

import io
import tarfile

import numpy as np
import pytest
import torch

from workbench.core.data import (
    CIFAR_FOLDER,
    CIFAR_MD5,
    CIFAR_RECORD,
    CIFAR_TEST_FILE,
    CIFAR_TRAIN_FILES,
    DataError,
    load_cifar10,
    load_dataset,
)
from workbench.core.presets import training_preset
from workbench.core.spec import SpecError, check_augmentation, validate_training_spec
from workbench.train import augmentation

PER_FILE = 12


def _records(count: int, seed: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    """Records as the CIFAR-10 binary version lays them out: label byte, then 1024 R, 1024 G, 1024 B bytes."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, count).astype(np.uint8)
    images = rng.integers(0, 256, (count, 3, 32, 32)).astype(np.uint8)
    images[:, 0, 0, 0] = 255  # a known red pixel at the top left of every image
    images[:, 2, 31, 31] = 0  # and a known blue one at the bottom right
    data = b"".join(bytes([label]) + image.tobytes() for label, image in zip(labels, images))
    return data, labels, images


def _files(seed: int = 0) -> dict[str, tuple[bytes, np.ndarray, np.ndarray]]:
    return {name: _records(PER_FILE, seed + i) for i, name in enumerate((*CIFAR_TRAIN_FILES, CIFAR_TEST_FILE))}


META = "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n"


def _archive(path, files) -> None:
    with tarfile.open(path, "w:gz") as archive:
        for name, content in [*((n, f[0]) for n, f in files.items()), ("batches.meta.txt", META.encode())]:
            info = tarfile.TarInfo(f"{CIFAR_FOLDER}/{name}")
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))


def _folder(root, files):
    folder = root / CIFAR_FOLDER
    folder.mkdir(parents=True)
    for name, (content, _, _) in files.items():
        (folder / name).write_bytes(content)
    (folder / "batches.meta.txt").write_text(META)
    return folder


def test_the_archive_and_its_folder_load_the_same_records(tmp_path):
    files = _files()
    _archive(tmp_path / "cifar-10-binary.tar.gz", files)
    from_archive = load_cifar10(tmp_path / "cifar-10-binary.tar.gz", verify=False)
    from_folder = load_cifar10(_folder(tmp_path / "unpacked", files).parent, verify=False)
    for data in (from_archive, from_folder):
        assert data.input_shape == (3, 32, 32) and data.num_classes == 10 and data.class_names[9] == "truck"
        assert len(data.x_train) == 5 * PER_FILE and len(data.x_test) == PER_FILE
        labels = np.concatenate([files[name][1] for name in CIFAR_TRAIN_FILES])
        assert np.array_equal(data.y_train, labels) and np.array_equal(data.y_test, files[CIFAR_TEST_FILE][1])
        assert (data.x_train[:, 0, 0, 0] == 1.0).all() and (data.x_train[:, 2, 31, 31] == -1.0).all()  # 255, 0
        first = files[CIFAR_TRAIN_FILES[0]][2][0]
        assert np.allclose(data.x_train[0], first / 127.5 - 1.0, atol=1e-6)  # channel-first, row by row
        assert data.preprocessing["value_range"] == [0.0, 255.0] and data.preprocessing["range_from"] == "stated"
    assert np.array_equal(from_archive.x_train, from_folder.x_train)


def test_the_archive_s_md5_is_verified(tmp_path):
    _archive(tmp_path / "cifar-10-binary.tar.gz", _files())
    with pytest.raises(DataError, match=f"md5.*{CIFAR_MD5}"):
        load_dataset(f"cifar10:{tmp_path / 'cifar-10-binary.tar.gz'}")


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda data: data[:-1], "not a whole number of 3073-byte records"),
        (lambda data: bytes([11]) + data[1:], "record 0 has label 11, expected 0..9"),
    ],
    ids=["truncated", "cifar-100 label"],
)
def test_damaged_records_are_refused_by_name(tmp_path, damage, message):
    files = _files()
    content, labels, images = files[CIFAR_TEST_FILE]
    files[CIFAR_TEST_FILE] = (damage(content), labels, images)
    with pytest.raises(DataError, match=message):
        load_cifar10(_folder(tmp_path, files).parent, verify=False)


def test_unpacked_files_are_checked_for_their_official_size(tmp_path):
    folder = _folder(tmp_path, _files())
    with pytest.raises(
        DataError, match=f"{CIFAR_TRAIN_FILES[0]}: {PER_FILE * CIFAR_RECORD:,} bytes, expected 30,730,000"
    ):
        load_cifar10(folder, verify=True)


def test_a_missing_member_or_path_is_named(tmp_path):
    files = _files()
    del files[CIFAR_TRAIN_FILES[3]]
    _archive(tmp_path / "short.tar.gz", files)
    with pytest.raises(DataError, match="lacks cifar-10-batches-bin/data_batch_4.bin"):
        load_cifar10(tmp_path / "short.tar.gz", verify=False)
    with pytest.raises(DataError, match="not found"):
        load_dataset(f"cifar10:{tmp_path / 'nowhere'}")


# ------------------------------------------------------------------ augmentation


def test_augmentation_is_validated_and_needs_images():
    spec = validate_training_spec({"augmentation": {"random_crop": 4, "horizontal_flip": True}})
    assert spec["augmentation"] == {"random_crop": 4, "horizontal_flip": True}
    assert validate_training_spec({})["augmentation"] is None
    for bad in ({"random_crop": -1}, {"random_crop": 17}, {"horizontal_flip": 1}, {"rotate": 3}):
        with pytest.raises(SpecError, match="augmentation"):
            validate_training_spec({"augmentation": bad})
    with pytest.raises(SpecError, match=r"needs images \[C, H, W\]"):
        check_augmentation({"input_shape": [784]}, spec)
    check_augmentation({"input_shape": [3, 32, 32]}, spec)


def test_crops_shift_the_image_inside_zero_padding_and_flips_mirror_it():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4) + 1
    config = {"random_crop": 1, "horizontal_flip": True}
    draws = augmentation.Draws(top=torch.tensor([0, 1]), left=torch.tensor([2, 1]), flip=torch.tensor([False, True]))
    out = augmentation.apply(x, config, draws)
    # sample 0: padded by 1, window from row 0, column 2: shifted up-left by (-1, +1); the top row is padding
    assert torch.equal(out[0, 0, 0], torch.zeros(4))
    assert torch.equal(out[0, 0, 1:, :3], x[0, 0, :3, 1:]) and torch.equal(out[0, 0, 1:, 3], torch.zeros(3))
    assert torch.equal(out[1], x[1].flip(-1))  # centred window, mirrored


def test_one_rank_s_share_sees_what_that_share_of_one_process_sees():
    """Draws are made for the global batch; a rank applying its share gets the same images as one process."""
    config = {"random_crop": 4, "horizontal_flip": True}
    x = torch.randn(8, 3, 32, 32)
    draws = augmentation.draw(8, config, torch.Generator().manual_seed(3))
    whole = augmentation.apply(x, config, draws)
    for positions in (torch.arange(0, 4), torch.arange(4, 8)):
        assert torch.equal(augmentation.apply(x[positions], config, draws.take(positions)), whole[positions])
    again = augmentation.draw(8, config, torch.Generator().manual_seed(3))
    assert torch.equal(again.top, draws.top) and torch.equal(again.flip, draws.flip)  # seeded: resumable


def test_the_vgg_small_recipe_is_a_valid_training_spec():
    spec = training_preset("vgg-small-cifar10")
    assert spec["augmentation"] == {"random_crop": 4, "horizontal_flip": True} and spec["epochs"] == 200


def test_a_small_cnn_trains_on_cifar_format_data_with_augmentation(tmp_path):
    from workbench.train.training import train

    _archive(tmp_path / "c.tar.gz", _files())
    data = load_cifar10(tmp_path / "c.tar.gz", verify=False)
    network = {
        "name": "tiny",
        "input_shape": [3, 32, 32],
        "num_classes": 10,
        "layers": [
            {"type": "conv2d", "filters": 8, "kernel_size": 3, "kernel_quantizer": "ste_sign"},
            {"type": "batch_norm"},
            {"type": "max_pool", "pool_size": 4},
            {"type": "flatten"},
            {"type": "dense", "units": 10, "input_quantizer": "ste_sign", "kernel_quantizer": "ste_sign"},
        ],
    }
    training = {"epochs": 1, "batch_size": 12, "augmentation": {"random_crop": 4, "horizontal_flip": True}}
    result = train(network, training, data)
    assert result.epochs_done == 1 and 0.0 <= result.test_accuracy <= 1.0
