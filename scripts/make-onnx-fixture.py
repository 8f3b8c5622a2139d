"""Builds the ONNX fixtures of test/onnx/ (src/onnx/, the ONNX importer) with onnx.helper.

A small Sana-style block denoiser v(x, t, cond) over NCHW latents [B, 4, 8, 8] (B symbolic) with
an 8-token x 16-d condition, written the way torch.onnx.export writes such models: patchify by
Reshape/Transpose with shapes computed by Shape -> Gather -> Unsqueeze -> Concat (and a Reshape
with a 0 entry), a sinusoidal timestep embedding -> Gemm -> SiLU -> Gemm giving adaLN-single
shift/scale/gate vectors, ReLU linear self-attention, softmax cross-attention to the condition
with a key-padding mask (Equal / Expand / Where), a Mix-FFN (GELU via Erf, a depthwise 3x3 Conv
over the token grid, an opset-20 Gelu node), LayerNormalization, a float16 initializer (Cast to
float) and a 1/sqrt(head dim) computed from a Shape (Cast, Sqrt, Reciprocal).

Writes test/fixtures/onnx/:
  denoiser.onnx                 weights inline
  denoiser-ext/denoiser.onnx    the same model with its weights in denoiser-ext/weights.bin
  denoiser.json                 fixed inputs and onnxruntime's outputs for them (tests need no Python)
  bad-escape.onnx               external data whose location leaves the model's folder
  bad-bounds.onnx               external data past the end of its file (bad-bounds.bin)

Run: pip install --no-index --find-links /opt/pypi/files onnx onnxruntime numpy
     python3 scripts/make-onnx-fixture.py
"""
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "onnx")
rng = np.random.default_rng(20261126)

C, S, P = 4, 8, 2          # latent channels, side, patch
G = S // P                 # token grid side (4)
N = G * G                  # tokens (16)
PD = C * P * P             # patch dim (16)
D, HEADS = 32, 2           # width, heads
DH = D // HEADS
L, E = 8, 16               # condition tokens, condition width
FF = 64                    # Mix-FFN hidden width

nodes, inits = [], []


def w(name, shape, scale=None, dtype=np.float32):
    fan_in = shape[0] if len(shape) > 1 else 1
    scale = (1.0 / np.sqrt(fan_in)) if scale is None else scale
    a = (rng.standard_normal(shape) * scale).astype(dtype)
    inits.append(numpy_helper.from_array(a, name))
    return name


def const_i64(name, values):
    if any(i.name == name for i in inits):
        return name
    inits.append(numpy_helper.from_array(np.array(values, dtype=np.int64), name))
    return name


def const_f(name, value):
    nodes.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.array(value, dtype=np.float32))))
    return name


_n = [0]


def node(op, inputs, n_out=1, **attrs):
    _n[0] += 1
    outs = [f"{op.lower()}_{_n[0]}_{i}" for i in range(n_out)]
    nodes.append(helper.make_node(op, inputs, outs, name=f"/{op}_{_n[0]}", **attrs))
    return outs[0] if n_out == 1 else outs


def linear(x, din, dout, name):
    return node("Add", [node("MatMul", [x, w(f"{name}.weight", [din, dout])]), w(f"{name}.bias", [dout], 0.02)])


def silu(x):
    return node("Mul", [x, node("Sigmoid", [x])])


def gelu_erf(x):
    # 0.5 * x * (1 + erf(x / sqrt(2))), as torch exports nn.GELU()
    e = node("Erf", [node("Div", [x, const_f(f"sqrt2_{_n[0]}", np.sqrt(2.0))])])
    return node("Mul", [node("Mul", [x, node("Add", [e, const_f(f"one_{_n[0]}", 1.0)])]), const_f(f"half_{_n[0]}", 0.5)])


def layer_norm(x, name):
    # affine LayerNormalization, gain near 1
    inits.append(numpy_helper.from_array((1 + 0.05 * rng.standard_normal([D])).astype(np.float32), f"{name}.weight"))
    return node("LayerNormalization", [x, f"{name}.weight", w(f"{name}.bias", [D], 0.02)], axis=-1, epsilon=1e-6)


def modulate(x, shift, scale):
    # x * (1 + scale) + shift, the "1" a ConstantOfShape of scale's shape
    one = node("ConstantOfShape", [node("Shape", [scale])], value=numpy_helper.from_array(np.array([1.0], dtype=np.float32)))
    return node("Add", [node("Mul", [x, node("Add", [one, scale])]), shift])


# ---- inputs
x_in = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", C, S, S])
t_in = helper.make_tensor_value_info("t", TensorProto.FLOAT, ["batch"])
c_in = helper.make_tensor_value_info("cond", TensorProto.FLOAT, ["batch", L, E])
v_out = helper.make_tensor_value_info("v", TensorProto.FLOAT, ["batch", C, S, S])

# ---- batch size from the input's shape (Shape -> Gather -> Unsqueeze)
bsz = node("Unsqueeze", [node("Gather", ["x_shape", const_i64("zero", 0)], axis=0), const_i64("axes0", [0])])
nodes.insert(0, helper.make_node("Shape", ["x"], ["x_shape"], name="/Shape_x"))

# ---- patchify: [B,C,S,S] -> [B,C,G,P,G,P] -> [B,G,G,C,P,P] -> [B,N,PD] (the last with a 0 entry)
shp6 = node("Concat", [bsz, const_i64("patch_dims", [C, G, P, G, P])], axis=0)
h = node("Reshape", ["x", shp6])
h = node("Transpose", [h], perm=[0, 2, 4, 1, 3, 5])
h = node("Reshape", [h, const_i64("tokens_shape", [0, N, -1])])
h = linear(h, PD, D, "patch_embed")
# fixed position embedding stored in float16
pos16 = (0.1 * rng.standard_normal([1, N, D])).astype(np.float16)
inits.append(numpy_helper.from_array(pos16, "pos_embed"))
h = node("Add", [h, node("Cast", ["pos_embed"], to=TensorProto.FLOAT)])

# ---- timestep embedding: sinusoidal -> Gemm -> SiLU -> Gemm (transB) -> adaLN-single [B, 6, D]
freqs = np.exp(-np.log(10000.0) * np.arange(16) / 16).astype(np.float32).reshape(1, 16)
const_f("freqs", freqs)
args = node("Mul", [node("Mul", [node("Unsqueeze", ["t", const_i64("axes1", [1])]), const_f("t_scale", 1000.0)]), "freqs"])
temb = node("Concat", [node("Cos", [args]), node("Sin", [args])], axis=1)
temb = node("Gemm", [temb, w("t_embed.0.weight", [32, D]), w("t_embed.0.bias", [D], 0.02)])
temb = silu(temb)
temb = node("Gemm", [temb, w("t_embed.2.weight", [D, D], 1 / np.sqrt(D)), w("t_embed.2.bias", [D], 0.02)], transB=1)
t6 = node("Gemm", [silu(temb), w("t_block.weight", [6 * D, D], 0.3 / np.sqrt(D)), w("t_block.bias", [6 * D], 0.02)], transB=1, alpha=1.0, beta=1.0)
t6 = node("Reshape", [t6, node("Concat", [bsz, const_i64("six_d", [6, D])], axis=0)])
t6 = node("Add", [t6, w("block.scale_shift_table", [6, D], 0.1)])
shift_a, scale_a, gate_a, shift_f, scale_f, gate_f = node("Split", [t6, const_i64("split6", [1] * 6)], n_out=6, axis=1)

# ---- ReLU linear self-attention (Sana)
y = modulate(layer_norm(h, "block.norm1"), shift_a, scale_a)
h_shape = node("Shape", [h])


def heads(z):
    return node("Transpose", [node("Reshape", [z, const_i64("heads_shape", [0, 0, HEADS, -1])])], perm=[0, 2, 1, 3])


def merge(z):
    return node("Reshape", [node("Transpose", [z], perm=[0, 2, 1, 3]), h_shape])


q = node("Relu", [heads(linear(y, D, D, "block.attn.q"))])
k = node("Relu", [heads(linear(y, D, D, "block.attn.k"))])
v = heads(linear(y, D, D, "block.attn.v"))
kv = node("MatMul", [node("Transpose", [k], perm=[0, 1, 3, 2]), v])
ksum = node("ReduceSum", [k, const_i64("axis2", [2])], keepdims=1)
num = node("MatMul", [q, kv])
den = node("Add", [node("ReduceSum", [node("Mul", [q, ksum]), const_i64("axis_last", [-1])], keepdims=1), const_f("eps_att", 1e-6)])
att = linear(merge(node("Div", [num, den])), D, D, "block.attn.proj")
h = node("Add", [h, node("Mul", [att, gate_a])])

# ---- softmax cross-attention to cond, with a key-padding mask of all-zero condition tokens
qc = heads(linear(h, D, D, "block.cross.q"))
kc = heads(linear("cond", E, D, "block.cross.k"))
vc = heads(linear("cond", E, D, "block.cross.v"))
qc_shape = node("Shape", [qc])
dh = node("Cast", [node("Gather", [qc_shape, const_i64("minus1", -1)], axis=0)], to=TensorProto.FLOAT)
scale = node("Reciprocal", [node("Sqrt", [dh])])
scores = node("Mul", [node("MatMul", [qc, node("Transpose", [kc], perm=[0, 1, 3, 2])]), scale])
pad = node("Equal", [node("ReduceSum", [node("Abs", ["cond"]), const_i64("axis_last2", [-1])], keepdims=0), const_f("zero_f", 0.0)])
pad = node("Unsqueeze", [pad, const_i64("axes12", [1, 2])])
pad = node("Expand", [pad, node("Shape", [scores])])
scores = node("Where", [pad, const_f("neg_big", -1e9), scores])
probs = node("Softmax", [scores], axis=-1)
h = node("Add", [h, linear(merge(node("MatMul", [probs, vc])), D, D, "block.cross.proj")])

# ---- Mix-FFN: up -> GELU(erf) -> depthwise 3x3 conv on the token grid -> Gelu(tanh) -> down
y = modulate(layer_norm(h, "block.norm2"), shift_f, scale_f)
u = gelu_erf(linear(y, D, FF, "block.ff.up"))
grid = node("Reshape", [node("Transpose", [u], perm=[0, 2, 1]), node("Concat", [bsz, const_i64("grid_dims", [FF, G, G])], axis=0)])
conv = node("Conv", [grid, w("block.ff.dw.weight", [FF, 1, 3, 3], 1 / 3), w("block.ff.dw.bias", [FF], 0.02)],
            group=FF, kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1])
u = node("Transpose", [node("Reshape", [conv, const_i64("flat_grid", [0, FF, -1])])], perm=[0, 2, 1])
u = node("Gelu", [u], approximate="tanh")
h = node("Add", [h, node("Mul", [linear(u, FF, D, "block.ff.down"), gate_f])])

# ---- final adaLN, projection, unpatchify back to the input's shape
final = node("Gemm", [temb, w("final.adaln.weight", [D, 2 * D], 0.3 / np.sqrt(D)), w("final.adaln.bias", [2 * D], 0.02)])
fshift, fscale = node("Split", [node("Unsqueeze", [final, const_i64("axes1b", [1])]), const_i64("split2", [D, D])], n_out=2, axis=2)
o = linear(modulate(layer_norm(h, "final.norm"), fshift, fscale), D, PD, "final.proj")
o = node("Reshape", [o, const_i64("unpatch", [0, G, G, C, P, P])])
o = node("Transpose", [o], perm=[0, 3, 1, 4, 2, 5])
nodes.append(helper.make_node("Reshape", [o, "x_shape"], ["v"], name="/Reshape_out"))

graph = helper.make_graph(nodes, "sana_block_denoiser", [x_in, t_in, c_in], [v_out], inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], producer_name="tbcm-fixture")
model.ir_version = 9
onnx.checker.check_model(model, full_check=True)

os.makedirs(os.path.join(OUT, "denoiser-ext"), exist_ok=True)
onnx.save_model(model, os.path.join(OUT, "denoiser.onnx"))
onnx.save_model(model, os.path.join(OUT, "denoiser-ext", "denoiser.onnx"), save_as_external_data=True,
                all_tensors_to_one_file=True, location="weights.bin", size_threshold=1024)

# ---- fixed inputs (the second sample's last 3 condition tokens are padding) and ORT's outputs
B = 2
x = rng.standard_normal([B, C, S, S]).astype(np.float32)
t = np.array([0.25, 0.8], dtype=np.float32)
cond = rng.standard_normal([B, L, E]).astype(np.float32)
cond[1, 5:] = 0
results = {}
for name in ["denoiser.onnx", os.path.join("denoiser-ext", "denoiser.onnx")]:
    sess = ort.InferenceSession(os.path.join(OUT, name), providers=["CPUExecutionProvider"])
    results[name] = sess.run(["v"], {"x": x, "t": t, "cond": cond})[0]
assert np.array_equal(results["denoiser.onnx"], results[os.path.join("denoiser-ext", "denoiser.onnx")])
out = results["denoiser.onnx"]
with open(os.path.join(OUT, "denoiser.json"), "w") as f:
    json.dump({
        "onnxruntime": ort.__version__,
        "inputs": {"x": {"shape": list(x.shape), "data": x.ravel().tolist()},
                   "t": {"shape": list(t.shape), "data": t.ravel().tolist()},
                   "cond": {"shape": list(cond.shape), "data": cond.ravel().tolist()}},
        "outputs": {"v": {"shape": list(out.shape), "data": out.ravel().tolist()}},
    }, f)

# ---- bad external data: a location escaping the folder, and a range past the end of the file
for fname, location, offset, length in [("bad-escape.onnx", "../secret.bin", 0, 16), ("bad-bounds.onnx", "bad-bounds.bin", 8, 64)]:
    t0 = onnx.TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4, 4], data_location=TensorProto.EXTERNAL)
    for k, val in [("location", location), ("offset", str(offset)), ("length", str(length))]:
        e = t0.external_data.add()
        e.key, e.value = k, val
    g = helper.make_graph([helper.make_node("MatMul", ["a", "w"], ["y"])], "bad",
                          [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [t0])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    with open(os.path.join(OUT, fname), "wb") as f:
        f.write(m.SerializeToString())
with open(os.path.join(OUT, "bad-bounds.bin"), "wb") as f:
    f.write(np.zeros(16, dtype=np.float32).tobytes())

print("v[0, 0, 0, :4] =", out[0, 0, 0, :4], " |v| mean", float(np.abs(out).mean()))
