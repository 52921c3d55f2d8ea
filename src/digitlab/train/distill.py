"""Knowledge distillation: train a small, fast model on a big model's soft predictions (Hinton et al., 2015).

`digitlab train --teacher RUN` first runs the teacher once over the training images (as they are,
not augmented) and keeps its tempered probabilities, softmax(logits / T). Each step then minimises

    (1 - w) * cross-entropy(student, labels)  +  w * T^2 * KL(teacher_T || student_T)

where _T means softened by the temperature T. The soft targets say which wrong classes look alike
(a 7 that is nearly a 1), which the one-hot labels cannot; T^2 keeps the soft term's gradients on the
scale of the hard term's. An augmented image keeps its source image's soft target: the small affine
warps used here do not change what a digit looks like to the teacher.

Precomputing costs one teacher pass over the training set (seconds for a convnet on a CPU in bf16)
instead of one per step, which would cost far more than training the student.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from digitlab.errors import ConfigError
from digitlab.models.storage import load_model, load_model_meta, pretrained_path
from digitlab.train.callbacks import Callback
from digitlab.train.predict import predict_logits


def load_teacher(spec: str, device):
    """The teacher model from a run folder, a .safetensors file, or "pretrained" (the shipped model)."""
    return load_model(None if spec == "pretrained" else spec, device=str(device))


def teacher_provenance(spec: str, dataset: str | None = None) -> dict:
    """What the teacher was, for the student's model.json: "pretrained" names whatever ships at the
    time, so its weights' SHA-256 is what identifies it later. With `dataset`, a teacher recorded as
    trained on another dataset is refused: its soft targets would be confidently wrong."""
    meta = load_model_meta(pretrained_path() if spec == "pretrained" else spec)
    taught_on = (meta.get("metrics") or {}).get("dataset")
    if dataset and taught_on and taught_on != dataset:
        raise ConfigError(f"the teacher {spec} was trained on {taught_on}, not {dataset}: distil from a model "
                          f"trained on {dataset}")
    return {"spec": spec, "architecture": meta.get("architecture"), "weights_sha256": meta.get("weights_sha256"),
            "test_accuracy": (meta.get("metrics") or {}).get("test_accuracy")}


def teacher_targets(teacher, x, temperature: float, num_classes: int, amp: bool, batch_size: int = 2048):
    """float32 (N, C): the teacher's softmax(logits / temperature) for images x (N, 1, 28, 28)."""
    soft = torch.softmax(predict_logits(teacher, x, batch_size, x.device, amp=amp) / temperature, dim=1)
    if soft.shape[1] != num_classes:
        raise ConfigError(f"the teacher predicts {soft.shape[1]} classes but the student {num_classes}: "
                          "distil from a model trained on the same dataset")
    return soft


def distillation_loss(logits, soft_targets, temperature: float):
    """T^2 * KL(soft_targets || softmax(logits / T)), averaged over the batch (float32)."""
    log_student = F.log_softmax(logits.float() / temperature, dim=1)
    return F.kl_div(log_student, soft_targets, reduction="batchmean") * temperature**2


class Distillation(Callback):
    """Add the teacher's soft-target term to every step's loss: (1 - w) * loss + w * distillation_loss.

    The teacher runs once, at the start, over the training images as they are; a step's soft targets
    are those of its images (state.epoch_perm says which)."""

    def __init__(self, teacher: str, weight: float, temperature: float):
        self.teacher, self.weight, self.temperature = teacher, weight, temperature
        self.soft = None

    def on_train_begin(self, state) -> None:
        x = state.x_train
        with torch.no_grad():  # the student's class count, probed in eval mode: BN statistics stay as they are
            num_classes = state.model.eval()(x[:2].float()).shape[1]
        state.model.train()
        self.soft = teacher_targets(load_teacher(self.teacher, state.device), x, self.temperature, num_classes,
                                    state.amp)

    def on_loss(self, state, logits, loss, step: int):
        size = state.config.batch_size
        soft = self.soft[state.epoch_perm[step * size : (step + 1) * size]]
        return (1 - self.weight) * loss + self.weight * distillation_loss(logits, soft, self.temperature)

