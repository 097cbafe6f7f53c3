"""recipes/accelerate/: the Accelerate config files users pick instead of changing code.

Every file parses with Accelerate's own loader and holds the intended settings; `accelerate launch`'s
own dispatch, given each file, picks the intended launcher and hands the processes the intended
settings (checked without starting anything). Then real launches, as far as this machine allows:
cpu_2proc.yaml trains a transferkit model in two processes; fsdp.yaml starts two processes and
its settings reach Accelerate's FSDP plugin (FSDP itself trains only on GPUs); the DeepSpeed files
train a tiny model in two processes where deepspeed is installed.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from launch import run_group

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes" / "accelerate"
SCRIPT = Path(__file__).with_name("accelerate_config_script.py")
MULTIPROCESS_SCRIPT = Path(__file__).with_name("multiprocess_script.py")
TIMEOUT_S = 240
DEEPSPEED_TIMEOUT_S = 420  # its first run on a machine compiles a C++ op (~2.5 min on 2 cores), then ~25 s

FSDP_V2 = {"fsdp_version": 2, "fsdp_reshard_after_forward": True, "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
           "fsdp_state_dict_type": "FULL_STATE_DICT", "fsdp_offload_params": False,
           "fsdp_cpu_ram_efficient_loading": False, "fsdp_activation_checkpointing": False}
EXPECTED = {
    "one_gpu.yaml": dict(distributed_type="NO", num_processes=1, num_machines=1, gpu_ids="0", use_cpu=False,
                         mixed_precision="bf16"),
    "multi_gpu.yaml": dict(distributed_type="MULTI_GPU", num_processes=8, num_machines=1, gpu_ids="all",
                           use_cpu=False, mixed_precision="bf16"),
    "multi_node.yaml": dict(distributed_type="MULTI_GPU", num_processes=16, num_machines=2, machine_rank=0,
                            main_process_ip="192.0.2.10", main_process_port=29500, use_cpu=False,
                            mixed_precision="bf16"),
    "fsdp.yaml": dict(distributed_type="FSDP", num_processes=8, num_machines=1, use_cpu=False, mixed_precision="bf16",
                      fsdp_config=FSDP_V2),
    "deepspeed_zero2.yaml": dict(distributed_type="DEEPSPEED", num_processes=8, num_machines=1, use_cpu=False,
                                 mixed_precision="bf16",
                                 deepspeed_config={"zero_stage": 2, "offload_optimizer_device": "none",
                                                   "gradient_clipping": 1.0}),
    "deepspeed_zero3.yaml": dict(distributed_type="DEEPSPEED", num_processes=8, num_machines=1, use_cpu=False,
                                 mixed_precision="bf16",
                                 deepspeed_config={"zero_stage": 3, "zero3_save_16bit_model": True,
                                                   "zero3_init_flag": False, "offload_optimizer_device": "none",
                                                   "offload_param_device": "none", "gradient_clipping": 1.0}),
    "cpu_2proc.yaml": dict(distributed_type="MULTI_GPU", num_processes=2, num_machines=1, use_cpu=True,
                           mixed_precision="no", main_process_port=0),
}
# FSDP1 settings that FSDP2 drops with a warning or rejects: fsdp.yaml must not carry them.
FSDP1_ONLY = {"fsdp_sharding_strategy", "fsdp_backward_prefetch", "fsdp_forward_prefetch", "fsdp_use_orig_params",
              "fsdp_sync_module_states"}

FSDP_NEEDS_GPU = (
    "FSDP needs a GPU: accelerate 1.15 turns FSDP on only for process groups on CUDA/XPU/NPU/MLU/... devices. "
    "Without one, Accelerator(cpu=True) (what transferkit uses) forms a MULTI_CPU gloo group and trains plain DDP, "
    "ignoring ACCELERATE_USE_FSDP and even an explicit fsdp_plugin, and a plain Accelerator() forms no group at all "
    "(DistributedType.NO in each process). torch 2.14's fully_shard itself runs on CPU with gloo: the limit is "
    "accelerate's. test_fsdp_config_starts_processes checks what runs on CPU."
)


def _path(name: str) -> str:
    return str(RECIPES / name)


def _load(name: str):
    from accelerate.commands.config.config_args import load_config_from_file

    return load_config_from_file(_path(name))


def test_recipes_folder_holds_the_documented_configs():
    assert sorted(p.name for p in RECIPES.glob("*.yaml")) == sorted(EXPECTED), "a new file needs expectations here"
    readme = (RECIPES / "README.md").read_text()
    for name in EXPECTED:
        assert name in readme, f"recipes/accelerate/README.md does not mention {name}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_parses_with_accelerates_loader(name):
    """accelerate's own loader (what `accelerate launch --config_file` calls) reads the file; the settings are the
    intended ones, and every file says what its keys do."""
    from accelerate.commands.config.config_args import ClusterConfig
    from accelerate.utils import ComputeEnvironment

    cfg = _load(name)
    assert isinstance(cfg, ClusterConfig) and cfg.compute_environment == ComputeEnvironment.LOCAL_MACHINE
    for key, want in EXPECTED[name].items():
        got = getattr(cfg, key)
        if key == "distributed_type":
            got = got.value
        if isinstance(want, dict):
            assert {k: got.get(k) for k in want} == want, f"{name}: {key}"
        else:
            assert got == want, f"{name}: {key} is {got!r}, expected {want!r}"
    if cfg.distributed_type.value != "FSDP":
        assert cfg.fsdp_config == {}, name
    if cfg.distributed_type.value != "DEEPSPEED":
        assert cfg.deepspeed_config == {}, name
    assert sum(line.lstrip().startswith("#") for line in Path(_path(name)).read_text().splitlines()) >= 5, name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_nested_keys_are_launch_options(name):
    """`accelerate launch` copies fsdp_config / deepspeed_config keys onto its options and silently drops a key
    it has no option for, so a misspelt key would be ignored without a word. Every key must be an option."""
    from accelerate.commands.launch import launch_command_parser
    from accelerate.utils.constants import FSDP2_STATE_DICT_TYPE, FSDP_AUTO_WRAP_POLICY

    options = {a.dest for a in launch_command_parser()._actions}
    cfg = _load(name)
    unknown = sorted(k for k in [*cfg.fsdp_config, *cfg.deepspeed_config] if k not in options)
    assert not unknown, f"{name}: keys accelerate launch ignores: {unknown}"
    if cfg.fsdp_config:
        assert not FSDP1_ONLY & set(cfg.fsdp_config), f"{name}: FSDP1-only keys in an FSDP2 config"
        assert cfg.fsdp_config["fsdp_state_dict_type"] in FSDP2_STATE_DICT_TYPE
        assert cfg.fsdp_config["fsdp_auto_wrap_policy"] in FSDP_AUTO_WRAP_POLICY
    if cfg.deepspeed_config:
        assert cfg.deepspeed_config["zero_stage"] in (0, 1, 2, 3)
        # unset on purpose: the script's gradient_accumulation_steps (transferkit's) must not be overridden
        assert "gradient_accumulation_steps" not in cfg.deepspeed_config


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_top_level_key_takes_effect(name):
    """`accelerate launch` fills an option from the file only while the option's own default is None: a key whose
    option defaults to something else (rdzv_backend, same_network, enable_cpu_affinity, downcast_bf16 in 1.15) is
    read from the command line alone, and a file that sets it misleads."""
    import yaml
    from accelerate.commands.launch import launch_command_parser

    handled = {"compute_environment", "distributed_type", "mixed_precision", "debug", "use_cpu", "fsdp_config",
               "deepspeed_config"}  # read by the launcher itself, or kept as sections
    defaults = {a.dest: a.default for a in launch_command_parser()._actions}
    keys = yaml.safe_load(Path(_path(name)).read_text())
    ignored = sorted(k for k in keys if k not in handled and defaults.get(k, "<no option>") is not None)
    assert not ignored, f"{name}: accelerate launch ignores these keys from a config file: {ignored}"


def _dispatch(monkeypatch, *argv: str) -> tuple[str, object, dict]:
    """Run `accelerate launch`'s own argument handling and dispatch with the launchers replaced by recorders:
    which launcher it would start, with which options, and the environment the processes would get."""
    from accelerate.commands import launch
    from accelerate.utils import launch as launch_utils

    seen: dict = {}
    prepare = {"simple": lambda a: launch_utils.prepare_simple_launcher_cmd_env(a)[1],
               "torchrun": launch_utils.prepare_multi_gpu_env,
               "deepspeed": lambda a: launch_utils.prepare_deepspeed_cmd_env(a)[1]}
    for kind, attr in (("simple", "simple_launcher"), ("torchrun", "multi_gpu_launcher"),
                       ("deepspeed", "deepspeed_launcher")):
        monkeypatch.setattr(launch, attr, lambda args, kind=kind: seen.update(kind=kind, args=args,
                                                                              env=prepare[kind](args)))
    # main_process_port is checked for being free on machine 0; what listens here is no concern of this test
    monkeypatch.setattr(launch_utils, "is_port_in_use", lambda port: False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)  # so the env shows what the config sets
    args = launch.launch_command_parser().parse_args([*argv, "train.py"])
    launch.launch_command(args)
    return seen["kind"], seen["args"], seen["env"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_accelerate_launch_dispatches_each_config(monkeypatch, name):
    kind, args, env = _dispatch(monkeypatch, "--config_file", _path(name))
    precision = EXPECTED[name]["mixed_precision"]
    assert env["ACCELERATE_MIXED_PRECISION"] == precision
    if name == "one_gpu.yaml":
        assert kind == "simple" and env["ACCELERATE_USE_CPU"] == "False"
        assert env["CUDA_VISIBLE_DEVICES"] == "0"  # the chosen GPU
    elif name in ("multi_gpu.yaml", "cpu_2proc.yaml"):
        assert kind == "torchrun" and args.nproc_per_node == str(EXPECTED[name]["num_processes"])
        assert "CUDA_VISIBLE_DEVICES" not in env  # gpu_ids: all
        assert "ACCELERATE_USE_FSDP" not in env and "ACCELERATE_USE_DEEPSPEED" not in env
    elif name == "multi_node.yaml":
        # num_processes is the total over the machines: each machine starts its share
        assert kind == "torchrun" and (args.nnodes, args.nproc_per_node, args.node_rank) == ("2", "8", 0)
        assert (args.rdzv_backend, args.rdzv_endpoint) == ("static", "192.0.2.10:29500")
    elif name == "fsdp.yaml":
        assert kind == "torchrun" and args.nproc_per_node == "8"
        assert {k: env[k] for k in ("ACCELERATE_USE_FSDP", "FSDP_VERSION", "FSDP_RESHARD_AFTER_FORWARD",
                                    "FSDP_AUTO_WRAP_POLICY", "FSDP_STATE_DICT_TYPE", "FSDP_OFFLOAD_PARAMS",
                                    "FSDP_CPU_RAM_EFFICIENT_LOADING", "FSDP_ACTIVATION_CHECKPOINTING")} == {
            "ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2", "FSDP_RESHARD_AFTER_FORWARD": "true",
            "FSDP_AUTO_WRAP_POLICY": "TRANSFORMER_BASED_WRAP", "FSDP_STATE_DICT_TYPE": "FULL_STATE_DICT",
            "FSDP_OFFLOAD_PARAMS": "false", "FSDP_CPU_RAM_EFFICIENT_LOADING": "false",
            "FSDP_ACTIVATION_CHECKPOINTING": "false"}
        assert "FSDP_TRANSFORMER_CLS_TO_WRAP" not in env  # the model's own _no_split_modules decide
    else:  # DeepSpeed: its launcher needs no deepspeed import to build the command for one machine
        stage = EXPECTED[name]["deepspeed_config"]["zero_stage"]
        assert kind == "deepspeed" and args.nproc_per_node == "8"
        assert env["ACCELERATE_USE_DEEPSPEED"] == "true" and env["ACCELERATE_DEEPSPEED_ZERO_STAGE"] == str(stage)
        assert env["ACCELERATE_GRADIENT_CLIPPING"] == "1.0"
        assert "ACCELERATE_GRADIENT_ACCUMULATION_STEPS" not in env  # the script's value stands
        if stage == 3:
            assert env["ACCELERATE_DEEPSPEED_ZERO3_SAVE_16BIT_MODEL"] == "true"
            assert env["ACCELERATE_DEEPSPEED_ZERO3_INIT"] == "false"


def test_multi_node_second_machine_changes_only_its_rank(monkeypatch):
    _, first, _ = _dispatch(monkeypatch, "--config_file", _path("multi_node.yaml"))
    _, second, _ = _dispatch(monkeypatch, "--config_file", _path("multi_node.yaml"), "--machine_rank", "1")
    assert (first.node_rank, second.node_rank) == (0, 1)
    for key in ("nnodes", "nproc_per_node", "rdzv_backend", "rdzv_endpoint"):
        assert getattr(first, key) == getattr(second, key), key


# --- real launches ----------------------------------------------------------------------------------------------


def _launch(config: str, *argv: str, timeout: int = TIMEOUT_S, **env_extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", _path(config), *argv]
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", **env_extra)
    return run_group(cmd, env, timeout, "accelerate launch", cwd=ROOT)


def _ranks(run: subprocess.CompletedProcess, out: Path, world: int) -> list[dict]:
    """Each process's report; a missing one fails with the launch's stderr. A non-zero exit after every report
    was written is the known gloo teardown abort: reported, not failed."""
    files = [out / f"rank{r}.json" for r in range(world)]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        pytest.fail(f"accelerate launch exited {run.returncode}; missing {missing}; stderr tail:\n{run.stderr[-4000:]}")
    if run.returncode != 0:
        print(f"accelerate launch exited {run.returncode} after every process reported; stderr:\n{run.stderr[-4000:]}")
    return [json.loads(f.read_text()) for f in files]


def _gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


@pytest.mark.multiprocess
def test_cpu_2proc_config_trains_one_transferkit_model_in_two_processes(tmp_path):
    """The file as a user without a GPU runs it, on transferkit's adapt(): 2 processes, one group, one model."""
    from multiprocess_script import weights_hash
    from transferkit import load, testing

    model = testing.tiny_timm(tmp_path / "cnn", "test_resnet")
    out = tmp_path / "run"
    run = _launch("cpu_2proc.yaml", str(MULTIPROCESS_SCRIPT), "--model", str(model), "--out", str(out),
                  "--strategy", "freeze", CUDA_VISIBLE_DEVICES="")  # as the file says, to stay on CPU on a GPU box
    ranks = _ranks(run, out, 2)
    assert [r["rank"] for r in ranks] == [r["env_rank"] for r in ranks] == [0, 1]
    assert [r["world_size"] for r in ranks] == [2, 2]
    n_train = ranks[0]["n_train"]
    for r in ranks:  # each process trained on its half of every epoch
        assert [e["train_batches"] for e in r["forwards_per_epoch"]] == [math.ceil(math.ceil(n_train / 4) / 2)] * 2
    assert ranks[0]["weights_sha256"] == ranks[1]["weights_sha256"], "the processes' weights diverged"
    assert ranks[0]["history"][-1]["train_loss"] == ranks[1]["history"][-1]["train_loss"]
    assert weights_hash(load(out / "model").model) == ranks[0]["weights_sha256"]


@pytest.mark.multiprocess
def test_cpu_2proc_config_connects_a_plain_accelerator_with_accelerate_use_cpu(tmp_path):
    """What the file tells users of their own scripts: Accelerator() joins the CPU group once ACCELERATE_USE_CPU=1."""
    run = _launch("cpu_2proc.yaml", str(SCRIPT), "probe", str(tmp_path), "--plain", ACCELERATE_USE_CPU="1",
                  CUDA_VISIBLE_DEVICES="")
    ranks = _ranks(run, tmp_path, 2)
    assert [(r["distributed_type"], r["num_processes"], r["process_index"]) for r in ranks] == [
        ("MULTI_CPU", 2, 0), ("MULTI_CPU", 2, 1)]


@pytest.mark.multiprocess
def test_fsdp_config_starts_processes(tmp_path):
    """`accelerate launch --config_file fsdp.yaml --num_processes 2` starts 2 processes in one group, and Accelerate
    builds the intended FSDP2 plugin from what the launcher handed them. On a GPU the Accelerator transferkit makes is
    an FSDP one; without a GPU it is plain DDP over gloo, as fsdp.yaml says (see FSDP_NEEDS_GPU)."""
    world = 2 if _gpus() != 1 else 1
    run = _launch("fsdp.yaml", "--num_processes", str(world), str(SCRIPT), "probe", str(tmp_path))
    ranks = _ranks(run, tmp_path, world)
    want_type = "FSDP" if _gpus() else "MULTI_CPU"
    assert [(r["distributed_type"], r["num_processes"]) for r in ranks] == [(want_type, world)] * world
    assert sorted(r["process_index"] for r in ranks) == list(range(world))
    for r in ranks:
        assert r["mixed_precision"] == "bf16"
        assert r["fsdp"] == {"fsdp_version": 2, "reshard_after_forward": True, "state_dict_type": "FULL_STATE_DICT",
                             "auto_wrap_policy": "transformer_auto_wrap_policy", "transformer_cls_names_to_wrap": None,
                             "cpu_ram_efficient_loading": False, "activation_checkpointing": False}


@pytest.mark.multiprocess
@pytest.mark.skipif(not _gpus(), reason=FSDP_NEEDS_GPU)
def test_fsdp_config_trains_a_tiny_model(tmp_path):
    """On GPUs: FSDP2 wraps each Block (the model's _no_split_modules) and the root, each process holds its shard,
    and get_state_dict gathers the full weights onto process 0 (FULL_STATE_DICT)."""
    world = min(2, _gpus())
    run = _launch("fsdp.yaml", "--num_processes", str(world), str(SCRIPT), "train", str(tmp_path))
    ranks = _ranks(run, tmp_path, world)
    for r in ranks:
        assert (r["distributed_type"], r["num_processes"], r["world_size"]) == ("FSDP", world, world)
        assert r["fsdp_units"] == 3  # blocks.0, blocks.1, the whole model
        assert r["batches_per_epoch"] == [math.ceil(32 / 4 / world)] * 2
        assert all(math.isfinite(x) for x in r["losses"])
        if world > 1:
            assert r["local_numel"] < r["full_numel"]
    main = next(r for r in ranks if r["process_index"] == 0)
    assert main["gathered_shapes"] == main["full_shapes"]


def _deepspeed_missing() -> str | None:
    import importlib.util

    if importlib.util.find_spec("deepspeed") is None:
        return ("deepspeed is not installed: `pip install deepspeed` (pure Python, no CUDA needed to install; "
                "without a GPU its first run compiles a shared-memory op with g++ for about 2.5 minutes)")
    return None


@pytest.mark.multiprocess
@pytest.mark.skipif(_deepspeed_missing() is not None, reason=_deepspeed_missing() or "")
@pytest.mark.parametrize("name,stage", [("deepspeed_zero2.yaml", 2), ("deepspeed_zero3.yaml", 3)])
def test_deepspeed_config_trains_a_tiny_model(tmp_path, name, stage):
    """2 processes (CPU or GPUs) train with the file's ZeRO stage and bf16; ZeRO-2 keeps whole weights on every
    process, ZeRO-3 splits them, and get_state_dict gathers them onto process 0 (zero3_save_16bit_model)."""
    world = 2 if _gpus() != 1 else 1
    run = _launch(name, "--num_processes", str(world), str(SCRIPT), "train", str(tmp_path), timeout=DEEPSPEED_TIMEOUT_S)
    ranks = _ranks(run, tmp_path, world)
    for r in ranks:
        assert (r["distributed_type"], r["num_processes"], r["world_size"]) == ("DEEPSPEED", world, world)
        assert r["deepspeed"] == {"zero_stage": stage, "gather_16bit_weights_on_model_save": stage == 3,
                                  "gradient_clipping": 1.0, "gradient_accumulation_steps": 1, "bf16": True}
        assert r["param_dtype"] == "torch.bfloat16"  # the file's mixed_precision reached DeepSpeed
        assert r["batches_per_epoch"] == [math.ceil(32 / 4 / world)] * 2
        assert all(math.isfinite(x) for x in r["losses"])
        if stage == 2:
            assert r["local_numel"] == r["full_numel"]
        elif world > 1:
            assert r["local_numel"] < r["full_numel"]
    main = next(r for r in ranks if r["process_index"] == 0)
    assert main["gathered_shapes"] == main["full_shapes"]
    if stage == 2:  # replicated weights: every process gathers the same model
        assert len({r["gathered_sha256"] for r in ranks}) == 1
