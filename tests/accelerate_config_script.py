"""One process of an ``accelerate launch --config_file recipes/accelerate/<file>.yaml`` run; launched by
``tests/test_accelerate_configs.py``. Writes ``<out>/rank{RANK}.json`` with what the process saw.

    accelerate launch --config_file CONFIG tests/accelerate_config_script.py probe OUT
    accelerate launch --config_file CONFIG tests/accelerate_config_script.py train OUT

``probe``: the settings the config handed to this process, as Accelerate reads them (its FSDP and
DeepSpeed plugins built from the environment the launcher set), and the process group that
``Accelerator(cpu=<no GPU>)`` forms, which is how transferkit creates its Accelerator.
``--plain`` uses ``Accelerator()`` instead.

``train``: a tiny model trained for two epochs the way a user's own script would be, with a plain
``Accelerator()``, then ``accelerator.get_state_dict(model)`` (every process takes part; with FSDP
or ZeRO-3 that gathers the pieces onto process 0). Without a GPU the script names the gloo
backend: accelerate 1.15 picks no backend for a process that is neither ``cpu=True`` nor on a GPU,
and DeepSpeed then runs a group of 2 while Accelerate counts 1 process.

Ends with ``os._exit(0)`` after tearing the group down: the gloo teardown abort that hits about
one CPU run in ten at interpreter exit must not hide a finished run (the test reads the files).
"""
from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path

import torch
from torch import nn

from launch import write_report

N_EXAMPLES, BATCH, EPOCHS = 32, 4, 2


class Block(nn.Module):
    """A residual MLP block: the "transformer layer" the FSDP config's auto wrap should find."""

    def __init__(self, width: int):
        super().__init__()
        self.fc = nn.Linear(width, width)

    def forward(self, x):
        return x + torch.relu(self.fc(x))


class TinyNet(nn.Module):
    # What transformers models declare; fsdp.yaml leaves fsdp_transformer_layer_cls_to_wrap unset so
    # that accelerate wraps these.
    _no_split_modules = ["Block"]

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(8, 16)
        self.blocks = nn.Sequential(Block(16), Block(16))
        self.head = nn.Linear(16, 2)

    def forward(self, x):
        # DeepSpeed's bf16 turns the weights to bf16 but not the inputs (FSDP2 casts them itself).
        x = x.to(self.embed.weight.dtype)
        return self.head(self.blocks(self.embed(x))).float()


def _state_hash(state: dict) -> str:
    h = hashlib.sha256()
    for name, tensor in state.items():
        t = tensor.detach().float().cpu().contiguous()
        h.update(f"{name}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).numpy().tobytes())
    return h.hexdigest()


def _local_numel(model: nn.Module) -> int:
    """How many parameter values this process holds: its shard under ZeRO-3 and FSDP, all of them else."""
    total = 0
    for p in model.parameters():
        if hasattr(p, "ds_tensor"):  # DeepSpeed ZeRO-3 keeps the process's partition here
            total += p.ds_tensor.numel()
        elif hasattr(p, "to_local"):  # FSDP2's DTensor
            total += p.to_local().numel()
        else:
            total += p.numel()
    return total


def _plugins(state) -> dict:
    """The FSDP / DeepSpeed settings as Accelerate resolved them from the launcher's environment."""
    out: dict = {}
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true":
        from accelerate.utils import FullyShardedDataParallelPlugin

        plugin = getattr(state, "fsdp_plugin", None) or FullyShardedDataParallelPlugin()
        out["fsdp"] = {
            "fsdp_version": plugin.fsdp_version,
            "reshard_after_forward": plugin.reshard_after_forward,
            "state_dict_type": plugin.state_dict_type.name,
            "auto_wrap_policy": getattr(plugin.auto_wrap_policy, "__name__", plugin.auto_wrap_policy),
            "transformer_cls_names_to_wrap": plugin.transformer_cls_names_to_wrap,
            "cpu_ram_efficient_loading": plugin.cpu_ram_efficient_loading,
            "activation_checkpointing": plugin.activation_checkpointing,
        }
    ds = getattr(state, "deepspeed_plugin", None)
    if ds is not None:
        zero = ds.deepspeed_config.get("zero_optimization", {})
        out["deepspeed"] = {
            "zero_stage": ds.zero_stage,
            "gather_16bit_weights_on_model_save": zero.get("stage3_gather_16bit_weights_on_model_save"),
            "gradient_clipping": ds.deepspeed_config.get("gradient_clipping"),
            "gradient_accumulation_steps": ds.deepspeed_config.get("gradient_accumulation_steps"),
            "bf16": ds.deepspeed_config.get("bf16", {}).get("enabled"),
        }
    return out


def probe(plain: bool) -> dict:
    from accelerate import Accelerator

    acc = Accelerator() if plain else Accelerator(cpu=not torch.cuda.is_available())
    return {"distributed_type": acc.distributed_type.value, "num_processes": acc.num_processes,
            "process_index": acc.process_index, "mixed_precision": acc.mixed_precision, **_plugins(acc.state)}


def train() -> dict:
    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs, set_seed

    handlers = [] if torch.cuda.is_available() else [InitProcessGroupKwargs(backend="gloo")]
    acc = Accelerator(kwargs_handlers=handlers)
    set_seed(0)
    model = TinyNet()
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    full_numel = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N_EXAMPLES, 8, generator=g)
    data = torch.utils.data.TensorDataset(x, (x[:, 0] > 0).long())
    loader = torch.utils.data.DataLoader(data, batch_size=BATCH, shuffle=False)
    model, optimizer, loader = acc.prepare(model, optimizer, loader)
    batches, losses = [], []
    for _ in range(EPOCHS):
        n = 0
        for xb, yb in loader:
            loss = nn.functional.cross_entropy(model(xb), yb)
            acc.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
            n += 1
            losses.append(float(loss.detach()))
        batches.append(n)
    state = acc.get_state_dict(model)  # every process: FSDP and ZeRO-3 gather here
    from torch.distributed.fsdp import FSDPModule

    dist = torch.distributed
    inner = acc.unwrap_model(model)
    return {
        "distributed_type": acc.distributed_type.value, "num_processes": acc.num_processes,
        "process_index": acc.process_index, "world_size": dist.get_world_size() if dist.is_initialized() else 1,
        "mixed_precision": acc.mixed_precision, "batches_per_epoch": batches, "losses": losses,
        "param_dtype": str(next(inner.parameters()).dtype),
        "fsdp_units": sum(isinstance(m, FSDPModule) for m in inner.modules()),
        "full_numel": full_numel, "local_numel": _local_numel(inner),
        "full_shapes": shapes,
        "gathered_shapes": {k: list(v.shape) for k, v in (state or {}).items()},
        "gathered_sha256": _state_hash(state) if state else None,
        **_plugins(acc.state),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["probe", "train"])
    parser.add_argument("out")
    parser.add_argument("--plain", action="store_true", help="probe: Accelerator() instead of Accelerator(cpu=...)")
    args = parser.parse_args()
    report = probe(args.plain) if args.mode == "probe" else train()
    report["env_rank"] = int(os.environ.get("RANK", -1))
    report["env"] = {k: v for k, v in os.environ.items() if k.startswith(("ACCELERATE_", "FSDP_"))}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_report(out, report)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    os._exit(0)


if __name__ == "__main__":
    main()
