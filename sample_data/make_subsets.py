"""Make the bundled MNIST subset: 600 training and 100 test images per digit, picked with a fixed seed.

Run from the project root:  python sample_data/make_subsets.py [../shared/datasets/mnist]
The source files are md5-verified; the output is gzip IDX with mtime 0, so re-running gives identical bytes.
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from workbench.core.data import MNIST_FILES, _mnist_file, read_idx, write_idx  # noqa: E402

PER_CLASS = {"train": 600, "t10k": 100}


def balanced_indices(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """``per_class`` random indices of each digit, returned in the original file order."""
    picked = [rng.choice(np.flatnonzero(labels == digit), per_class, replace=False) for digit in range(10)]
    return np.sort(np.concatenate(picked))


def main(source: Path, dest: Path) -> None:
    rng = np.random.default_rng(0)
    for split, per_class in PER_CLASS.items():
        images_stem, labels_stem = [stem for stem in MNIST_FILES if stem.startswith(split)]
        images = read_idx(_mnist_file(source, images_stem, verify=True))
        labels = read_idx(_mnist_file(source, labels_stem, verify=True))
        keep = balanced_indices(labels, per_class, rng)
        write_idx(dest / f"mnist-sample-{images_stem}.gz", images[keep])
        write_idx(dest / f"mnist-sample-{labels_stem}.gz", labels[keep])
        print(f"{split}: {len(keep)} images, per class {np.bincount(labels[keep]).tolist()}")


if __name__ == "__main__":
    root = Path(__file__).resolve().parent
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else root.parent.parent / "shared" / "datasets" / "mnist", root)
