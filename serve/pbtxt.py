"""The ``config.pbtxt`` text of the four models of a Triton repository.

Pure functions of the model facts (:class:`.model_facts.ModelFacts`), the
options and the chosen ``max_batch_size``; tensor names are those of the
exported graph (``images``, ``windows``, ``detections``, ``count``, ``masks``)
plus the ensemble's :data:`IMAGE` / :data:`JSON_OUT` and ``mold_info``.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from .model_facts import ModelFacts, RepoOptions

# ensemble I/O and internal tensor names (the network's are the exported graph's own names)
IMAGE, JSON_OUT = "IMAGE", "JSON"


def _tensor(name: str, dtype: str, dims, extra: str = "") -> str:
    d = ", ".join(str(int(x)) for x in dims)
    return f'  {{ name: "{name}" data_type: {dtype} dims: [ {d} ]{extra} }}'


def _block(key: str, items: List[str]) -> str:
    return f"{key} [\n" + ",\n".join(items) + "\n]\n"


def _parameters(params: Dict[str, object]) -> str:
    return "".join(f'parameters {{ key: "{k}" value: {{ string_value: "{v}" }} }}\n' for k, v in params.items())


def _scheduling(instances: int, kind: str, queue_delay_us: int) -> str:
    return (f"instance_group [ {{ count: {instances} kind: {kind} }} ]\n"
            f"dynamic_batching {{ max_queue_delay_microseconds: {queue_delay_us} }}\n")


def network_tensors(facts: ModelFacts, reshape_count: bool) -> Tuple[List[str], List[str]]:
    """Inputs and outputs of the network model (the exported graph's names).

    ``count`` is [N] in the graph; Triton sees [N, 1] (``reshape: { shape: [] }``
    maps it for Triton's own backends)."""
    s, d = facts.image_size, facts.max_instances
    count_extra = " reshape: { shape: [ ] }" if reshape_count else ""
    inputs = [_tensor("images", "TYPE_FP32", [3, s, s]), _tensor("windows", "TYPE_FP32", [4])]
    outputs = [_tensor("detections", "TYPE_FP32", [d, 6]), _tensor("count", "TYPE_INT32", [1], count_extra),
               _tensor("masks", "TYPE_FP32", [d, *facts.mask_shape])]
    return inputs, outputs


def preprocess_config(name: str, facts: ModelFacts, mb: int, o: RepoOptions) -> str:
    s = facts.image_size
    return (f'name: "{name}"\nbackend: "python"\nmax_batch_size: {mb}\n'
            + _block("input", [_tensor(IMAGE, "TYPE_UINT8", [-1], " allow_ragged_batch: true")])
            + _block("output", [_tensor("images", "TYPE_FP32", [3, s, s]), _tensor("windows", "TYPE_FP32", [4]),
                                _tensor("mold_info", "TYPE_FP64", [7])])
            + _scheduling(o.instances, "KIND_CPU", o.queue_delay_us)
            + _parameters({"max_pixels": o.max_pixels}))


def postprocess_config(name: str, facts: ModelFacts, mb: int, o: RepoOptions) -> str:
    _, outs = network_tensors(facts, reshape_count=False)
    return (f'name: "{name}"\nbackend: "python"\nmax_batch_size: {mb}\n'
            + _block("input", outs + [_tensor("mold_info", "TYPE_FP64", [7])])
            + _block("output", [_tensor(JSON_OUT, "TYPE_UINT8", [-1])])
            + _scheduling(o.instances, "KIND_CPU", o.queue_delay_us))


def network_config(name: str, facts: ModelFacts, backend: str, mb: int, o: RepoOptions,
                   op_library: Optional[str] = None) -> str:
    ins, outs = network_tensors(facts, reshape_count=backend != "python")
    if backend == "python":
        head = 'backend: "python"\n'
        kind, tail = "KIND_CPU", _parameters({"threads": o.threads})
    elif backend == "onnxruntime":
        head = 'platform: "onnxruntime_onnx"\ndefault_model_filename: "model.onnx"\n'
        kind = "KIND_CPU"   # the mrcnn:: custom ops have CPU kernels only
        tail = (f'model_operations {{ op_library_filename: [ "{op_library}" ] }}\n' if op_library else "")
        tail += _parameters({"intra_op_thread_count": o.threads})
    else:
        head = 'platform: "tensorrt_plan"\ndefault_model_filename: "model.plan"\n'
        kind, tail = "KIND_GPU", ""
    return (f'name: "{name}"\n{head}max_batch_size: {mb}\n' + _block("input", ins) + _block("output", outs)
            + _scheduling(o.instances, kind, o.queue_delay_us) + tail)


def ensemble_config(name: str, pre: str, net: str, post: str, mb: int) -> str:
    def step(model: str, inputs: Dict[str, str], outputs: Dict[str, str]) -> str:
        ins = " ".join(f'input_map {{ key: "{k}" value: "{v}" }}' for k, v in inputs.items())
        outs = " ".join(f'output_map {{ key: "{k}" value: "{v}" }}' for k, v in outputs.items())
        return f'    {{ model_name: "{model}" model_version: -1\n      {ins}\n      {outs} }}'

    same = lambda *names: {n: n for n in names}  # noqa: E731
    steps = [step(pre, same(IMAGE), same("images", "windows", "mold_info")),
             step(net, same("images", "windows"), same("detections", "count", "masks")),
             step(post, same("detections", "count", "masks", "mold_info"), same(JSON_OUT))]
    return (f'name: "{name}"\nplatform: "ensemble"\nmax_batch_size: {mb}\n'
            + _block("input", [_tensor(IMAGE, "TYPE_UINT8", [-1])])
            + _block("output", [_tensor(JSON_OUT, "TYPE_UINT8", [-1])])
            + "ensemble_scheduling {\n  step [\n" + ",\n".join(steps) + "\n  ]\n}\n")
