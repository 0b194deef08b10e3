"""LoRA: starts equal to the base, equals W + (alpha/r) BA, trains only A and B."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from utils.lora import LoRALinear, add_lora, lora_parameters, set_lora_enabled
from utils.model import GPTConfig, TinyGPT


def test_starts_equal_and_matches_the_full_matrix():
    torch.manual_seed(0)
    base = nn.Linear(6, 4)
    layer = LoRALinear(base, r=2, alpha=4.0)
    x = torch.randn(3, 6)
    assert torch.equal(layer(x), base(x))  # B = 0 at the start
    with torch.no_grad():
        layer.B.normal_()
    W = base.weight + 2.0 * layer.B @ layer.A  # alpha / r = 2
    assert torch.allclose(layer(x), x @ W.T + base.bias, atol=1e-6)
    assert torch.allclose(layer.merged()(x), layer(x), atol=1e-6)
    layer.enabled = False
    assert torch.equal(layer(x), base(x))
    with pytest.raises(ValueError):
        LoRALinear(base, r=0)


def test_only_adapters_train_and_base_is_untouched():
    torch.manual_seed(0)
    model = TinyGPT(GPTConfig.nano(11, d_model=16, n_heads=2, n_layers=2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    idx = torch.randint(0, 11, (2, 8))
    ref_logits, _ = model(idx)
    names = add_lora(model, r=2)
    assert len(names) == 4 and all(n.endswith(("q_proj", "v_proj")) for n in names)
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert {id(p) for p in trainable} == {id(p) for p in lora_parameters(model)}
    opt = torch.optim.SGD(lora_parameters(model), lr=0.5)
    for _ in range(3):
        _, loss = model(idx, targets=idx)
        opt.zero_grad()
        loss.backward()
        opt.step()
    changed, _ = model(idx)
    assert not torch.allclose(changed, ref_logits)
    set_lora_enabled(model, False)
    assert torch.allclose(model(idx)[0], ref_logits)
    for name, value in model.state_dict().items():
        plain = name.replace(".base.", ".")
        if plain in before:
            assert torch.equal(value, before[plain]), name
    with pytest.raises(ValueError):
        add_lora(nn.Sequential(nn.ReLU()))
