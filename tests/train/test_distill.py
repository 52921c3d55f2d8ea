"""Knowledge distillation: the soft-target loss, the teacher's targets, and that a student really learns from them."""

from __future__ import annotations

import pytest
import torch

from digitlab.cli.main import build_parser
from digitlab.cli.train import resolve_config
from digitlab.errors import ConfigError, ModelError
from digitlab.models.registry import build_model
from digitlab.models.storage import save_model
from digitlab.train.config import TrainConfig
from digitlab.train.device import seed_everything
from digitlab.train.distill import distillation_loss, teacher_targets
from digitlab.train.loop import fit, to_input_tensor

BASE = TrainConfig.from_flat(epochs=3, batch_size=32, optimizer="sgd", lr=0.05, schedule="onecycle", device="cpu", threads=1)


def _fast(seed=0):
    seed_everything(seed)
    return build_model("fast", widths=[8, 16, 16])


def test_loss_is_zero_when_the_student_matches_the_teacher_and_its_gradient_is_t_times_the_gap():
    logits = torch.randn(6, 10, generator=torch.Generator().manual_seed(0))
    t = 3.0
    soft = torch.softmax(logits / t, dim=1)
    assert distillation_loss(logits, soft, t).item() == pytest.approx(0.0, abs=1e-6)
    student = (logits + torch.randn(6, 10)).requires_grad_()
    loss = distillation_loss(student, soft, t)
    loss.backward()
    assert loss.item() > 0
    expected = t * (torch.softmax(student.detach() / t, dim=1) - soft) / len(soft)
    torch.testing.assert_close(student.grad, expected, atol=1e-6, rtol=1e-5)


def test_teacher_targets_are_tempered_probabilities():
    teacher = _fast().eval()
    x = torch.rand(70, 1, 28, 28)
    soft = teacher_targets(teacher, x, temperature=4.0, num_classes=10, amp=False, batch_size=32)
    assert soft.shape == (70, 10) and soft.dtype == torch.float32
    torch.testing.assert_close(soft.sum(1), torch.ones(70))
    with torch.no_grad():
        torch.testing.assert_close(soft, torch.softmax(teacher(x) / 4.0, dim=1), atol=1e-6, rtol=1e-5)
    with pytest.raises(ConfigError, match="teacher predicts 10 classes but the student 3"):
        teacher_targets(teacher, x, 4.0, num_classes=3, amp=False)


def test_a_student_learns_what_the_teacher_says_not_the_labels(tiny_digits, tmp_path):
    x, y = tiny_digits
    shifted = (y + 1) % 10  # a teacher that learned a different labelling
    teacher = _fast(seed=1)
    fit(teacher, x[:500], shifted[:500], BASE, verbose=False)
    save_model(teacher, tmp_path / "teacher")

    student = _fast(seed=2)
    fit(student, x[:500], y[:500], BASE.replace(teacher=str(tmp_path / "teacher"), distill_weight=1.0,
                                                distill_temperature=1.0), verbose=False)
    with torch.no_grad():
        predicted = student(to_input_tensor(x[500:])).argmax(1).numpy()
    assert (predicted == shifted[500:]).mean() >= 0.8  # the teacher's labelling
    assert (predicted == y[500:]).mean() <= 0.2


def test_the_soft_term_changes_training(tiny_digits, tmp_path):
    x, y = tiny_digits
    teacher = _fast(seed=1)
    fit(teacher, x[:300], (y[:300] + 1) % 10, BASE.replace(epochs=2), verbose=False)
    save_model(teacher, tmp_path / "teacher")
    runs = {}
    for name, changes in {"plain": {}, "distilled": {"teacher": str(tmp_path / "teacher")}}.items():
        model = _fast(seed=2)
        runs[name] = fit(model, x[:300], y[:300], BASE.replace(epochs=1, **changes), verbose=False)
    assert runs["plain"]["loss"][-1] != pytest.approx(runs["distilled"]["loss"][-1], rel=1e-3)


def test_a_missing_teacher_is_a_model_error(tiny_digits, tmp_path):
    x, y = tiny_digits
    with pytest.raises(ModelError):
        fit(_fast(), x[:64], y[:64], BASE.replace(epochs=1, teacher=str(tmp_path / "nowhere")), verbose=False)


@pytest.mark.parametrize("changes, match", [
    ({"distill_weight": 0.0}, "distill weight"), ({"distill_weight": 1.5}, "distill weight"),
    ({"distill_temperature": 0.0}, "temperature"),
])
def test_bad_distillation_settings_are_config_errors(changes, match):
    with pytest.raises(ConfigError, match=match):
        BASE.replace(**changes)


def test_cli_flags_reach_the_config():
    args = build_parser().parse_args(["train", "--teacher", "pretrained", "--distill-weight", "0.7",
                                      "--distill-temperature", "4"])
    _, _, config = resolve_config(args)
    assert (config.regularisation.teacher, config.regularisation.distill_weight, config.regularisation.distill_temperature) == ("pretrained", 0.7, 4.0)


def test_cli_refuses_a_missing_teacher_before_loading_data(tmp_path):
    args = build_parser().parse_args(["train", "--teacher", str(tmp_path / "nowhere")])
    with pytest.raises(ModelError, match="^--teacher: model not found"):
        resolve_config(args)


def test_the_students_run_records_which_teacher_it_learned_from(tiny_digits, tmp_path):
    import json

    from digitlab.data.dataset import Dataset
    from digitlab.workflows.train_run import train_run

    x, y = tiny_digits
    tiny_dataset = Dataset("mnist", x[:500], y[:500], x[500:], y[500:], tuple("0123456789"), "synthetic (tests)")

    teacher = _fast(seed=1)
    fit(teacher, tiny_dataset.x_train, tiny_dataset.y_train, BASE.replace(epochs=1), verbose=False)
    save_model(teacher, tmp_path / "teacher")
    train_run("fast", BASE.replace(epochs=1, teacher=str(tmp_path / "teacher")), tiny_dataset, tmp_path / "student",
              model_kwargs={"widths": [8, 16, 16]}, verbose=False)
    meta = json.loads((tmp_path / "student" / "model.json").read_text())
    teacher_meta = json.loads((tmp_path / "teacher" / "model.json").read_text())
    assert meta["teacher"]["weights_sha256"] == teacher_meta["weights_sha256"]
    assert meta["teacher"]["architecture"]["name"] == "fast" and (
        meta["train_config"]["regularisation"]["teacher"] == str(tmp_path / "teacher"))


def test_a_teacher_trained_on_another_dataset_is_refused_before_training(tmp_path):
    teacher = _fast(seed=1)
    save_model(teacher, tmp_path / "teacher", metrics={"dataset": "fashion-mnist"})
    from digitlab.train.distill import teacher_provenance

    with pytest.raises(ConfigError, match="trained on fashion-mnist, not mnist"):
        teacher_provenance(str(tmp_path / "teacher"), dataset="mnist")
    assert teacher_provenance(str(tmp_path / "teacher"), dataset="fashion-mnist")["architecture"]["name"] == "fast"
