"""`train --what classifier --data` (issue 36): it says what it is about to train and shows a bar with the time left;
the held-out fifth is taken from every class, so no class is left out of the fit; uint8 masks read with a declared
range "0,1" map 0 to black and 1 to white."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from benchmark.cli import main
from benchmark.data.datasets import ImageDataset
from benchmark.data.user_data import load_image_array
from benchmark.training.classifier import _held_out
from tests.test_user_classifier import labelled_folder


def test_train_announces_its_steps_and_shows_the_time_left(tmp_path, capsys):
    data = labelled_folder(tmp_path / "shapes", per_class=6, size=8)
    assert main(["train", "--what", "classifier", "--data", str(data), "--steps", "20", "--width", "4",
                 "--threads", "1"]) == 0
    err = capsys.readouterr().err
    assert "training the domain classifier on 15 images of shapes (3 classes, 1x8x8): 20 steps of batch 15" in err
    assert re.search(r"20/20 steps \[\d\d:\d\d<\d\d:\d\d left", err), err  # elapsed < remaining


def test_the_held_out_fifth_comes_from_every_class():
    labels = torch.tensor([0] * 5 + [1] * 5 + [2] * 20)
    train = ImageDataset(torch.arange(30.0).view(30, 1, 1, 1), labels, 3, "x")
    kept, held, said = _held_out(train, train, seed=0)
    assert torch.bincount(held.labels, minlength=3).tolist() == [1, 1, 4]  # a fifth of each class
    assert torch.bincount(kept.labels, minlength=3).tolist() == [4, 4, 16]
    assert sorted(kept.images.flatten().tolist() + held.images.flatten().tolist()) == list(range(30))  # a partition
    assert said.startswith("6 held-out images (a fifth of each class")


def test_a_uint8_mask_with_a_declared_range_reads_one_as_white(tmp_path):
    mask = np.array([[[[0, 1], [1, 0]]]], np.uint8).repeat(2, 0)
    np.save(tmp_path / "m.npy", mask)
    images = load_image_array(Path(tmp_path / "m.npy"), "train", "0,1").images
    assert images[0, 0].tolist() == [[-1.0, 1.0], [1.0, -1.0]]
