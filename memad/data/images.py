"""Still images as a split: defect-inspection folders (MVTec AD layout) and scikit-learn's digits.

An image split is held as one "video" of ``N`` independent frames, so the detectors'
reconstruction task (``data.frames=1``) scores every image with no temporal input. Each
image keeps its file path and its category (``good`` or the defect type; the digit for
``digits``) so that results can be reported per category.

The defect-inspection layout::

    ROOT/train/good/*.png                       defect-free images (training)
    ROOT/test/good/*.png                        defect-free test images
    ROOT/test/<defect>/*.png                    defective test images, one folder per type
    ROOT/ground_truth/<defect>/<name>_mask.png  optional pixel masks (white = defect)

Images may have any size, grey or colour; they are resized to ``data.image_size`` and
converted to ``data.channels`` on load.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..errors import DataError
from .folder import FRAME_SUFFIXES, _mask_size, _read_frame, _read_mask, _workers
from .videos import VideoSet

GOOD = "good"
#: The fixed split of the ``digits`` benchmark: stratified by digit, 40 % held out for testing.
DIGITS_TEST_FRACTION = 0.4
DIGITS_SPLIT_SEED = 0
_SPLIT_FOLDERS = {"training": "train", "testing": "test"}


@dataclass
class ImageSet(VideoSet):
    """A :class:`VideoSet` of independent images (one "video"), each with a category.

    Attributes:
        categories: per image, ``good`` or the defect type (the digit for ``digits``).
    """

    categories: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.categories) != self.frames.shape[0]:
            raise DataError(f"{self.source}: {len(self.categories)} categories for {self.frames.shape[0]} images")

    @property
    def independent_frames(self) -> bool:
        """True: an image set's images are independent of each other."""
        return True

    def to(self, device: torch.device | str) -> "ImageSet":
        return ImageSet(self.frames.to(device), self.names, self.lengths, self.labels, self.masks, self.source,
                        self.frame_files, self.categories)


def _natural_key(path: Path) -> list:
    # "img10" after "img9", as a person would sort them.
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def _images_in(folder: Path) -> list[Path]:
    files = sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES),
                   key=_natural_key)
    if not files:
        raise DataError(f"{folder}: no image files ({'/'.join(FRAME_SUFFIXES)}) in this folder")
    return files


def is_image_folder(root: str | Path) -> bool:
    """True when ``root`` is in the defect-inspection layout (``ROOT/train/good`` holds images)."""
    good = Path(root) / "train" / GOOD
    return good.is_dir() and any(p.suffix.lower() in FRAME_SUFFIXES for p in good.iterdir())


def _find_mask(gt_root: Path, category: str, image: Path) -> Path:
    folder = gt_root / category
    for name in (f"{image.stem}_mask", image.stem):
        for suffix in (".png", ".bmp", ".tif", ".tiff", ".jpg"):
            if (folder / f"{name}{suffix}").is_file():
                return folder / f"{name}{suffix}"
    raise DataError(f"{image}: no mask for this defective image (expected {folder / (image.stem + '_mask.png')}); "
                    f"either give every defective image a mask or remove {gt_root}")


def load_image_folder(
    root: str | Path,
    split: str,
    image_size: tuple[int, int],
    channels: int,
    mask_size: int = 64,
) -> ImageSet:
    """Read ``split`` (``training`` or ``testing``) of a defect-inspection folder, resized to ``image_size``.

    Test labels come from the folder names (``good`` = 0, any other = 1); masks from
    ``ROOT/ground_truth`` when it exists (all-zero for good images).
    """
    root = Path(root)
    if split not in _SPLIT_FOLDERS:
        raise DataError(f"split: expected one of {tuple(_SPLIT_FOLDERS)}, got {split!r}")
    split_dir = root / _SPLIT_FOLDERS[split]
    if not split_dir.is_dir():
        raise DataError(f"{split_dir}: folder not found (expected ROOT/{_SPLIT_FOLDERS[split]}/<category>/*.png)")
    if split == "training":
        category_dirs = [split_dir / GOOD]
        others = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and p.name != GOOD)
        if others:
            raise DataError(f"{split_dir}: training images must all be good (in {split_dir / GOOD}), "
                            f"found the folder(s) {', '.join(others)}")
    else:
        category_dirs = sorted((p for p in split_dir.iterdir() if p.is_dir()), key=lambda p: (p.name != GOOD, p.name))
        if not category_dirs:
            raise DataError(f"{split_dir}: no category folders inside (expected {split_dir}/good and "
                            f"{split_dir}/<defect>)")
    files: list[Path] = []
    categories: list[str] = []
    for folder in category_dirs:
        found = _images_in(folder)
        files.extend(found)
        categories.extend([folder.name] * len(found))

    with ThreadPoolExecutor(_workers()) as pool:
        decoded = list(pool.map(lambda p: _read_frame(p, image_size, channels)[0], files))
    frames = torch.from_numpy(np.stack(decoded))
    source = str(split_dir)
    names = [root.name or str(root)]
    if split == "training":
        return ImageSet(frames, names, [len(files)], source=source, frame_files=[str(p) for p in files],
                        categories=categories)

    labels = np.array([c != GOOD for c in categories], dtype=np.int8)
    masks = None
    gt_root = root / "ground_truth"
    if gt_root.is_dir():
        mask_hw = _mask_size(image_size, mask_size)
        mask_paths = [None if c == GOOD else _find_mask(gt_root, c, p) for p, c in zip(files, categories)]
        empty = np.zeros(mask_hw, dtype=bool)
        with ThreadPoolExecutor(_workers()) as pool:
            read = list(pool.map(lambda p: empty if p is None else _read_mask(p, mask_hw)[0], mask_paths))
        masks = torch.from_numpy(np.stack(read))
    return ImageSet(frames, names, [len(files)], labels, masks, source, [str(p) for p in files], categories)


# -- scikit-learn's handwritten digits -------------------------------------------------------
def digits_split_indices(seed: int = DIGITS_SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Indices (into ``load_digits()``) of the fixed training and test images.

    A stratified split: 60 % of each digit for training, 40 % for testing, ``seed`` fixed.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    target = load_digits().target
    train, test = train_test_split(np.arange(len(target)), test_size=DIGITS_TEST_FRACTION, stratify=target,
                                   random_state=seed)
    return np.sort(train), np.sort(test)


def make_digits(
    split: str,
    digit: int,
    image_size: tuple[int, int] = (32, 32),
    channels: int = 1,
) -> ImageSet:
    """One-class digits: train on the training images of ``digit``; test on all held-out digits.

    The 8x8 images (values 0-16) are scaled to 0-255 and upscaled bilinearly to
    ``image_size``. In the test split ``digit`` is normal (label 0) and every other
    digit anomalous; each image's category is its digit.

    >>> test = make_digits("testing", 3, (16, 16))
    >>> test.frames.shape, int((test.labels == 0).sum()), sorted(set(test.categories))[:3]
    (torch.Size([719, 1, 16, 16]), 73, ['0', '1', '2'])
    """
    from sklearn.datasets import load_digits

    if split not in _SPLIT_FOLDERS:
        raise DataError(f"split: expected one of {tuple(_SPLIT_FOLDERS)}, got {split!r}")
    if not isinstance(digit, (int, np.integer)) or not 0 <= digit <= 9:
        raise DataError(f"digits: the normal digit must be an integer 0-9, got {digit!r}")
    bunch = load_digits()
    train_idx, test_idx = digits_split_indices()
    idx = train_idx[bunch.target[train_idx] == digit] if split == "training" else test_idx
    small = np.round(bunch.images[idx] * (255.0 / 16.0)).astype(np.uint8)
    h, w = image_size
    big = np.stack([np.asarray(Image.fromarray(im).resize((w, h), Image.BILINEAR)) for im in small])
    frames = torch.from_numpy(big)[:, None].expand(-1, channels, -1, -1).contiguous()
    target = bunch.target[idx]
    files = [f"load_digits()[{i}]" for i in idx]
    categories = [str(t) for t in target]
    source = f"digits:{digit}/{split}"
    if split == "training":
        return ImageSet(frames, [f"digits-{digit}"], [len(idx)], source=source, frame_files=files,
                        categories=categories)
    labels = (target != digit).astype(np.int8)
    return ImageSet(frames, [f"digits-{digit}"], [len(idx)], labels, None, source, files, categories)


# -- a generated defect-inspection folder ------------------------------------------------------
DEFECTS = ("scratch", "spot")


def _part(rng: np.random.Generator, size: int) -> tuple[Image.Image, float, float, float]:
    """A grey textured background with a round part (a washer) slightly shifted."""
    texture = rng.normal(0, 6, (size // 4, size // 4))
    bg = np.clip(90 + np.kron(texture, np.ones((4, 4))), 0, 255)
    img = Image.fromarray(bg.astype(np.uint8)).convert("RGB")
    draw = ImageDraw.Draw(img)
    cx, cy = size / 2 + rng.uniform(-2, 2), size / 2 + rng.uniform(-2, 2)
    r_out, r_in = size * 0.36, size * 0.14
    tint = int(rng.integers(-8, 9))
    draw.ellipse([cx - r_out, cy - r_out, cx + r_out, cy + r_out], fill=(190 + tint, 180 + tint, 160 + tint))
    draw.ellipse([cx - r_in, cy - r_in, cx + r_in, cy + r_in], fill=(70, 70, 70))
    return img, cx, cy, r_out


def make_defect_folder(root: str | Path, *, train: int = 24, test_good: int = 8, test_defect: int = 6,
                       size: int = 64, seed: int = 0) -> Path:
    """Write a small defect-inspection folder of generated parts to ``root`` (for examples and tests).

    Good parts are light washers on a textured background; ``scratch`` parts carry a dark
    line across the ring, ``spot`` parts a dark blot on it; masks mark where they were drawn.
    Returns ``root``.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    for folder in ("train/good", "test/good", *(f"test/{d}" for d in DEFECTS), *(f"ground_truth/{d}" for d in DEFECTS)):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for split, count in (("train", train), ("test", test_good)):
        for i in range(count):
            _part(rng, size)[0].save(root / split / GOOD / f"{i:03d}.png")
    for defect in DEFECTS:
        for i in range(test_defect):
            img, cx, cy, r_out = _part(rng, size)
            mask = Image.new("L", img.size, 0)
            angle = rng.uniform(0, 2 * np.pi)
            # The defect sits on the ring, between the hole and the rim.
            px, py = cx + 0.25 * size * np.cos(angle), cy + 0.25 * size * np.sin(angle)
            for target, colour in ((ImageDraw.Draw(img), (25, 25, 30)), (ImageDraw.Draw(mask), 255)):
                if defect == "scratch":
                    dx, dy = 0.12 * size * np.cos(angle + np.pi / 2), 0.12 * size * np.sin(angle + np.pi / 2)
                    target.line([px - dx, py - dy, px + dx, py + dy], fill=colour, width=max(2, size // 24))
                else:
                    r = size * 0.06
                    target.ellipse([px - r, py - r, px + r, py + r], fill=colour)
            img.save(root / "test" / defect / f"{i:03d}.png")
            mask.save(root / "ground_truth" / defect / f"{i:03d}_mask.png")
    return root
