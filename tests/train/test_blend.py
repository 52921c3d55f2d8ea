import pytest
import torch

from digitlab.train.blend import BlendWithStart, blend_state


def _net():
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))


def test_blend_state_mixes_float_tensors_and_keeps_counters():
    a, b = _net().state_dict(), _net().state_dict()
    a["1.num_batches_tracked"].fill_(7)
    blended = blend_state(a, b, 0.25)
    assert torch.allclose(blended["0.weight"], 0.75 * a["0.weight"] + 0.25 * b["0.weight"])
    assert torch.allclose(blended["1.running_var"], 0.75 * a["1.running_var"] + 0.25 * b["1.running_var"])
    assert blended["1.num_batches_tracked"].item() == 7


def test_blend_state_refuses_different_models():
    other = torch.nn.Linear(3, 4).state_dict()
    with pytest.raises(ValueError, match="different models"):
        blend_state(_net().state_dict(), other, 0.5)


class _State:
    def __init__(self, model):
        self.model = model


def test_callback_ends_halfway_between_start_and_trained_weights():
    model = _net()
    start = model[0].weight.detach().clone()
    callback, state = BlendWithStart(0.5), _State(model)
    callback.on_train_begin(state)
    with torch.no_grad():
        model[0].weight.add_(2.0)  # "training"
    callback.on_train_end(state)
    assert torch.allclose(model[0].weight, start + 1.0)


@pytest.mark.parametrize("share", [0, 1, -0.1, 1.5])
def test_callback_refuses_shares_outside_the_open_interval(share):
    with pytest.raises(ValueError, match=r"in \(0, 1\)"):
        BlendWithStart(share)
