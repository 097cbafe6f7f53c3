"""One rank of a real multi-process ``adapt()`` run; launched by ``tests/test_multiprocess.py`` through torchrun.

    python -m torch.distributed.run --nproc_per_node 2 tests/multiprocess_script.py --model DIR --out DIR --strategy S

Each rank trains on the same deterministic toy data (Accelerate shards it), then writes
``<out>/rank{RANK}.json``: a hash of its final weights, its history, the validation data's final-epoch
metrics, the process group's world size, and how many batches/examples its DDP-wrapped model saw
per epoch. Rank 0 also saves the model to ``<out>/model`` (``adapt(..., output_dir=...)``).

The script ends with ``os._exit(0)`` after tearing down the process group: a torch/gloo teardown
bug aborts about one CPU run in ten at interpreter exit, after all the work is done. The test
checks the files written here, not only the exit code.
"""
from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path

import torch

from launch import write_report


def weights_hash(model: torch.nn.Module) -> str:
    """sha256 over every parameter and buffer of the state dict, in its order: name, dtype, shape, raw bytes."""
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def toy_data(kind: str) -> tuple[list, list]:
    """(train, validation). Sizes are chosen so the last batch is ragged on one rank: padding must be dropped.
    The validation sets hold 11 examples of every class, enough (>= 10) to pick a best epoch from."""
    from transferkit import testing

    if kind == "image":
        return testing.toy_images(8, seed=0), testing.toy_images(11, seed=1)  # 24 train, 33 validation
    return testing.toy_texts(9, seed=0), testing.toy_texts(11, seed=1)  # 18 train, 22 validation


class ForwardCounter:
    """Counts forwards of the DDP-wrapped model (train: grad enabled; eval: no grad) and the examples in each.

    A global hook, so transferkit's code is untouched; no DDP module seen means training did not run distributed.
    """

    def __init__(self):
        self.events: list[tuple[str, int]] = []
        self.handle = torch.nn.modules.module.register_module_forward_hook(self)

    def __call__(self, module, args, output):
        if isinstance(module, torch.nn.parallel.DistributedDataParallel):
            logits = output if isinstance(output, torch.Tensor) else output.logits
            self.events.append(("train" if torch.is_grad_enabled() else "eval", int(logits.shape[0])))

    def per_epoch(self) -> list[dict[str, int]]:
        """Each epoch is its training forwards followed by its evaluation forwards."""
        epochs: list[dict[str, int]] = []
        previous = "eval"
        for phase, n in self.events:
            if phase == "train" and previous == "eval":
                epochs.append({"train_batches": 0, "train_examples": 0, "eval_batches": 0, "eval_examples": 0})
            epochs[-1][f"{phase}_batches"] += 1
            epochs[-1][f"{phase}_examples"] += n
            previous = phase
        return epochs


def _stop_rank1_at(step: int) -> None:
    """Only rank 1 is asked to stop: the ranks must agree, checkpoint once and all exit 130."""
    from transferkit.training import checkpoint

    real = checkpoint.StopRequest.agreed
    calls = iter(range(1, 10**6))

    def agreed(self, accelerator):
        if next(calls) == step and accelerator.process_index == 1:
            self.asked = True
        return real(self, accelerator)

    checkpoint.StopRequest.agreed = agreed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--strategy", required=True)
    parser.add_argument("--stop-at", type=int, default=None, help="rank 1 is asked to stop (as by Ctrl-C) at this step")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    if args.stop_at is not None:
        _stop_rank1_at(args.stop_at)
    kind = "text" if (Path(args.model) / "tokenizer_config.json").is_file() else "image"

    from transferkit import adapt

    train, validation = toy_data(kind)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    counter = ForwardCounter()
    checkpoints = dict(save_every=2, resume=args.resume) if args.stop_at is not None or args.resume else {}
    result = adapt(args.model, train, eval_dataset=validation, strategy=args.strategy, epochs=2, batch_size=4,
                   seed=0, output_dir=out / "model", progress_bar=False, **checkpoints)
    counter.handle.remove()
    saved = result.save(out / "again")  # every rank calls save, as a user's script does; the main one writes

    dist = torch.distributed
    initialized = dist.is_available() and dist.is_initialized()
    rank = dist.get_rank() if initialized else -1
    final = result.history[-1]
    report = {
        "rank": rank,
        "env_rank": int(os.environ.get("RANK", -1)),
        "world_size": dist.get_world_size() if initialized else 1,
        "weights_sha256": weights_hash(result.model),
        "history": result.history,
        "final_metrics": {k: v for k, v in final.items() if k.startswith("eval_")},
        "best_epoch": result.config.resolved.get("best_epoch"),
        "forwards_per_epoch": counter.per_epoch(),
        "n_train": len(train),
        "n_validation": len(validation),
        "saved_to": str(saved),
    }
    write_report(out, report)
    if initialized:
        dist.destroy_process_group()
    os._exit(0)


if __name__ == "__main__":
    main()
