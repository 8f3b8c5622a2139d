"""A teacher bundle of a size a user might bring (bench only; not a test fixture): a Sana-style DiT —
patchify, a sinusoidal timestep MLP giving adaLN-single modulations, per block ReLU linear
self-attention, softmax cross-attention to the condition and a Mix-FFN with a depthwise 3x3 conv —
with random weights, written as torch.onnx.export writes such models (shapes from Shape/Gather,
Reshape with 0 entries, opset 20). With a random table of prompts it is a bundle `tbcm
check-bundle` and `tbcm distill` take (teacher.json: time_embedding "auto").

Run: pip install --no-index --find-links /opt/pypi/files onnx onnxruntime numpy
     python3 bench/make-scaled-teacher.py OUT [--blocks 12] [--width 384] [--heads 6] [--side 32]
         [--channels 4] [--patch 2] [--tokens 77] [--cond-width 768] [--ff 1536] [--prompts 16]
"""
import argparse
import json
import os
import struct

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

ap = argparse.ArgumentParser()
ap.add_argument("out")
for name, default in [("blocks", 12), ("width", 384), ("heads", 6), ("side", 32), ("channels", 4), ("patch", 2),
                      ("tokens", 77), ("cond-width", 768), ("ff", 1536), ("prompts", 16)]:
    ap.add_argument(f"--{name}", type=int, default=default)
a = ap.parse_args()
C, S, P, D, H, L, E, FF = a.channels, a.side, a.patch, a.width, a.heads, a.tokens, a.cond_width, a.ff
G = S // P
N, PD = G * G, C * P * P
rng = np.random.default_rng(7)
nodes, inits, count = [], [], [0]


def op(kind, inputs, outs=1, **attrs):
    count[0] += 1
    names = [f"{kind.lower()}_{count[0]}_{i}" for i in range(outs)]
    nodes.append(helper.make_node(kind, inputs, names, name=f"/{kind}_{count[0]}", **attrs))
    return names[0] if outs == 1 else names


def weight(name, shape, scale=None):
    scale = 1.0 / np.sqrt(shape[0]) if scale is None else scale
    inits.append(numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name))
    return name


def ints(name, values):
    if not any(i.name == name for i in inits):
        inits.append(numpy_helper.from_array(np.array(values, dtype=np.int64), name))
    return name


def scalar(name, value):
    if not any(i.name == name for i in inits):
        inits.append(numpy_helper.from_array(np.array(value, dtype=np.float32), name))
    return name


def dense(x, din, dout, name):
    return op("Add", [op("MatMul", [x, weight(f"{name}.weight", [din, dout])]), weight(f"{name}.bias", [dout], 0.02)])


def norm(x, name):
    inits.append(numpy_helper.from_array((1 + 0.05 * rng.standard_normal([D])).astype(np.float32), f"{name}.weight"))
    return op("LayerNormalization", [x, f"{name}.weight", weight(f"{name}.bias", [D], 0.02)], axis=-1, epsilon=1e-6)


def adaln(x, shift, scale):
    return op("Add", [op("Mul", [x, op("Add", [scale, scalar("one", 1.0)])]), shift])


def split_heads(z):
    return op("Transpose", [op("Reshape", [z, ints("heads_shape", [0, 0, H, -1])])], perm=[0, 2, 1, 3])


def join_heads(z, like):
    return op("Reshape", [op("Transpose", [z], perm=[0, 2, 1, 3]), op("Shape", [like])])


nodes.append(helper.make_node("Shape", ["x"], ["x_shape"], name="/Shape_x"))
batch = op("Unsqueeze", [op("Gather", ["x_shape", ints("zero", 0)], axis=0), ints("axes0", [0])])
h = op("Reshape", ["x", op("Concat", [batch, ints("patch_dims", [C, G, P, G, P])], axis=0)])
h = op("Reshape", [op("Transpose", [h], perm=[0, 2, 4, 1, 3, 5]), ints("tokens_shape", [0, N, -1])])
h = op("Add", [dense(h, PD, D, "patch_embed"), weight("pos_embed", [1, N, D], 0.1)])
freqs = scalar("freqs", np.exp(-np.log(10000.0) * np.arange(128) / 128).astype(np.float32).reshape(1, 128))
phase = op("Mul", [op("Mul", [op("Unsqueeze", ["t", ints("axes1", [1])]), scalar("t_scale", 1000.0)]), freqs])
temb = op("Concat", [op("Cos", [phase]), op("Sin", [phase])], axis=1)
temb = dense(op("Mul", [(z := dense(temb, 256, D, "t_embed.0")), op("Sigmoid", [z])]), D, D, "t_embed.2")
t6 = dense(op("Mul", [temb, op("Sigmoid", [temb])]), D, 6 * D, "t_block")
t6 = op("Reshape", [t6, op("Concat", [batch, ints("six_d", [6, D])], axis=0)])
padded = op("Equal", [op("ReduceSum", [op("Abs", ["cond"]), ints("last", [-1])], keepdims=0), scalar("zero_f", 0.0)])
padded = op("Unsqueeze", [padded, ints("axes12", [1, 2])])
for b in range(a.blocks):
    p = f"blocks.{b}"
    mods = op("Split", [op("Add", [t6, weight(f"{p}.scale_shift_table", [6, D], 0.1)]), ints("split6", [1] * 6)], outs=6, axis=1)
    shift_a, scale_a, gate_a, shift_f, scale_f, gate_f = mods
    y = adaln(norm(h, f"{p}.norm1"), shift_a, scale_a)
    q = op("Relu", [split_heads(dense(y, D, D, f"{p}.attn.q"))])
    k = op("Relu", [split_heads(dense(y, D, D, f"{p}.attn.k"))])
    v = split_heads(dense(y, D, D, f"{p}.attn.v"))
    num = op("MatMul", [q, op("MatMul", [op("Transpose", [k], perm=[0, 1, 3, 2]), v])])
    den = op("Add", [op("ReduceSum", [op("Mul", [q, op("ReduceSum", [k, ints("axis2", [2])], keepdims=1)]), ints("last", [-1])], keepdims=1), scalar("eps", 1e-6)])
    h = op("Add", [h, op("Mul", [dense(join_heads(op("Div", [num, den]), h), D, D, f"{p}.attn.proj"), gate_a])])
    qc, kc, vc = split_heads(dense(h, D, D, f"{p}.cross.q")), split_heads(dense("cond", E, D, f"{p}.cross.k")), split_heads(dense("cond", E, D, f"{p}.cross.v"))
    scores = op("Mul", [op("MatMul", [qc, op("Transpose", [kc], perm=[0, 1, 3, 2])]), scalar("inv_sqrt_dh", 1 / np.sqrt(D // H))])
    scores = op("Where", [op("Expand", [padded, op("Shape", [scores])]), scalar("neg_big", -1e9), scores])
    h = op("Add", [h, dense(join_heads(op("MatMul", [op("Softmax", [scores], axis=-1), vc]), h), D, D, f"{p}.cross.proj")])
    y = adaln(norm(h, f"{p}.norm2"), shift_f, scale_f)
    u = op("Gelu", [dense(y, D, FF, f"{p}.ff.up")])
    grid = op("Reshape", [op("Transpose", [u], perm=[0, 2, 1]), op("Concat", [batch, ints("grid_dims", [FF, G, G])], axis=0)])
    conv = op("Conv", [grid, weight(f"{p}.ff.dw.weight", [FF, 1, 3, 3], 1 / 3), weight(f"{p}.ff.dw.bias", [FF], 0.02)], group=FF, kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    u = op("Gelu", [op("Transpose", [op("Reshape", [conv, ints("flat_grid", [0, FF, -1])])], perm=[0, 2, 1])], approximate="tanh")
    h = op("Add", [h, op("Mul", [dense(u, FF, D, f"{p}.ff.down"), gate_f])])
fshift, fscale = op("Split", [op("Unsqueeze", [dense(temb, D, 2 * D, "final.adaln"), ints("axes1", [1])]), ints("split2", [D, D])], outs=2, axis=2)
o = dense(adaln(norm(h, "final.norm"), fshift, fscale), D, PD, "final.proj")
o = op("Transpose", [op("Reshape", [o, ints("unpatch", [0, G, G, C, P, P])])], perm=[0, 3, 1, 4, 2, 5])
nodes.append(helper.make_node("Reshape", [o, "x_shape"], ["v"], name="/Reshape_out"))

graph = helper.make_graph(nodes, "scaled_sana_denoiser", [
    helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", C, S, S]),
    helper.make_tensor_value_info("t", TensorProto.FLOAT, ["batch"]),
    helper.make_tensor_value_info("cond", TensorProto.FLOAT, ["batch", L, E]),
], [helper.make_tensor_value_info("v", TensorProto.FLOAT, ["batch", C, S, S])], inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], producer_name="tbcm-bench")
model.ir_version = 9
onnx.checker.check_model(model)
os.makedirs(a.out, exist_ok=True)
onnx.save_model(model, os.path.join(a.out, "transformer.onnx"))

# the table: the empty prompt (all zero: every token padding) and a.prompts random ones, the last tokens padding
prompts = [""] + [f"prompt {i}" for i in range(a.prompts)]
table = (rng.standard_normal([len(prompts), L, E]) * 0.5).astype(np.float32)
table[0] = 0
table[1:, L // 2:] = 0
header = json.dumps({"__metadata__": {"prompts": json.dumps(prompts)},
                     "embeddings": {"dtype": "F32", "shape": list(table.shape), "data_offsets": [0, table.nbytes]}}).encode()
header += b" " * (-len(header) % 8)
with open(os.path.join(a.out, "prompt_embeddings.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(header)) + header + table.tobytes())
with open(os.path.join(a.out, "teacher.json"), "w") as f:
    json.dump({"format": "tbcm-teacher-bundle-1", "latent_shape": [C, S, S],
               "transformer": {"inputs": {"latent": "x", "time": "t", "condition": "cond"}, "output": "v",
                               "prediction": "flow_velocity", "time_embedding": "auto"},
               "guidance_scales": [4, 4.5, 5]}, f)
with open(os.path.join(a.out, "prompts.txt"), "w") as f:
    f.write("\n".join(prompts[1:]) + "\n")
params = sum(int(np.prod(i.dims)) for i in inits)
sess = ort.InferenceSession(os.path.join(a.out, "transformer.onnx"), providers=["CPUExecutionProvider"])
out = sess.run(["v"], {"x": rng.standard_normal([2, C, S, S]).astype(np.float32), "t": np.array([0.3, 0.9], np.float32), "cond": table[1:3]})[0]
print(json.dumps({"out": a.out, "parameters": params, "nodes": len(nodes), "v_mean_abs": float(np.abs(out).mean())}))
