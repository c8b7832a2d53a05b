"""The edit command's progress bar says why it runs fewer steps than asked (diffusers runs strength x steps)."""

from __future__ import annotations

from faceedit.cli.commands import progress_label
from faceedit.v1 import face_editor_pb2 as fe


def test_fewer_steps_than_asked_names_the_strength() -> None:
    label = progress_label(fe.Edit(attribute="hair", num_inference_steps=8), 0, 1, 7)
    assert label == "hair (1/1): 7 of 8 steps at strength 0.90"


def test_an_explicit_strength_and_the_eyebrows_default() -> None:
    assert progress_label(fe.Edit(attribute="lips", num_inference_steps=10, strength=0.5), 1, 2, 5) == (
        "lips (2/2): 5 of 10 steps at strength 0.50"
    )
    assert progress_label(fe.Edit(attribute="eyebrows", num_inference_steps=8), 0, 1, 4).endswith(
        "4 of 8 steps at strength 0.60"
    )


def test_all_steps_run_and_the_server_default() -> None:
    assert progress_label(fe.Edit(attribute="hair", num_inference_steps=8, strength=1.0), 0, 1, 8) == (
        "hair (1/1): 8 steps"
    )
    assert progress_label(fe.Edit(prompt="x"), 0, 1, 45) == (
        "edit (1/1): 45 steps at strength 0.90 of the server's default steps"
    )
