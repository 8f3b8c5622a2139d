"""Do the ONNX files of `tbcm export` load and run in Python's onnxruntime? (issue #5)

Loads text_encoder.onnx, generator.onnx and vae_decoder.onnx of a text-to-image export with
onnxruntime.InferenceSession (CPUExecutionProvider), lists each file's IR version, opset and ops
(every node must be in the standard ONNX domain, '' or 'ai.onnx'), runs
token ids -> text encoder -> generator -> VAE decoder, and compares with a reference written by the
Node side (bench/export-reference.ts: the same files in onnxruntime-node, on the same inputs).

  npx tsx src/cli/main.ts export --run runs/fmnist-tbcm --out /tmp/tbcm-export --batch 4
  npx tsx bench/export-reference.ts --export /tmp/tbcm-export --out /tmp/tbcm-ref --run runs/fmnist-tbcm
  /tmp/ortpy/bin/python bench/python_ort_check.py /tmp/tbcm-export --reference /tmp/tbcm-ref

Install onnxruntime (no PyPI needed) from the local wheel store into a virtual environment:
  python3 -m venv /tmp/ortpy && /tmp/ortpy/bin/pip install --no-index --find-links /opt/pypi/files onnxruntime numpy
(onnxruntime 1.30.0 pulls in numpy, protobuf, flatbuffers and packaging, all in the store.)
Only onnxruntime and numpy are needed: the ops are read from the files by the small protobuf
reader below, not by the `onnx` package.

With --reference DIR: inputs come from DIR (token_ids.npy, noise.npy, guidance.npy); this script
also re-derives the token ids (from the manifest's vocabulary and rule) and the noise (a port of
src/numerics/random.ts) itself and checks them against DIR. cond, latent and image are compared
with DIR's: max |python - node| per output, PASS when <= --tol (default 1e-4). If DIR holds
sample.npy (the pixels of `tbcm sample --steps 1` on the same prompts, seed and guidance), the image
is also compared with it, PASS when <= --sample-tol (default 2e-3, as test/stack/distill.test.ts).
Exit status 0 when every check passes, 1 otherwise.

Without --reference: --prompt TEXT (repeatable) [--seed 5] [--guidance 4.5] [--pgm out.pgm] runs
the prompts on noise generated here exactly as `tbcm sample --seed S` draws it for that list of
prompts: normal(foldIn(key(S), 0), n*d), row i for prompt i; --pgm writes the images side by side.
"""
import argparse
import json
import math
import os
import re
import sys
from collections import Counter

import numpy as np
import onnxruntime as ort

STANDARD_DOMAINS = ("", "ai.onnx")
MODELS = ("text_encoder", "generator", "vae_decoder")


# ---------------------------------------------------------------- a minimal ONNX (protobuf) reader

def _varint(buf, i):
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7


def _fields(buf):
    """(field number, value) of one protobuf message; length-delimited values as memoryview slices."""
    i, n = 0, len(buf)
    while i < n:
        tag, i = _varint(buf, i)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 2:
            length, i = _varint(buf, i)
            value, i = buf[i:i + length], i + length
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"protobuf wire type {wire} is not used by ONNX")
        yield field, value


def _text(v):
    return bytes(v).decode("utf-8")


def _walk_graph(graph, ops, consumed, initializers):
    """ONNX GraphProto: node = 1, initializer = 5, output = 12; NodeProto: input = 1, op_type = 4,
    attribute = 5, domain = 7; AttributeProto: g = 6, graphs = 11 (subgraphs of If/Loop/Scan)."""
    for field, v in _fields(graph):
        if field == 1:
            op, domain = "", ""
            for f, x in _fields(v):
                if f == 4:
                    op = _text(x)
                elif f == 7:
                    domain = _text(x)
                elif f == 1:
                    consumed.add(_text(x))
                elif f == 5:
                    for af, ax in _fields(x):
                        if af in (6, 11):
                            _walk_graph(ax, ops, consumed, initializers)
            ops[(domain, op)] += 1
        elif field == 5:
            initializers.extend(_text(x) for f, x in _fields(v) if f == 8)  # TensorProto.name = 8
        elif field == 12:
            consumed.update(_text(x) for f, x in _fields(v) if f == 1)  # ValueInfoProto.name = 1


def read_model(path):
    """IR version, opset imports, producer and op counts of an ONNX file (ModelProto: ir_version = 1,
    producer_name = 2, producer_version = 3, graph = 7, opset_import = 8, functions = 25)."""
    with open(path, "rb") as f:
        buf = memoryview(f.read())
    info = {"ir_version": None, "opsets": {}, "producer": "", "producer_version": "", "functions": 0}
    ops, consumed, initializers = Counter(), set(), []
    for field, v in _fields(buf):
        if field == 1:
            info["ir_version"] = v
        elif field == 2:
            info["producer"] = _text(v)
        elif field == 3:
            info["producer_version"] = _text(v)
        elif field == 8:
            d = dict(_fields(v))  # OperatorSetIdProto: domain = 1, version = 2
            info["opsets"][_text(d.get(1, b""))] = d.get(2)
        elif field == 7:
            _walk_graph(v, ops, consumed, initializers)
        elif field == 25:
            info["functions"] += 1
    info["ops"] = ops
    info["initializers"] = len(initializers)
    info["unused_initializers"] = [n for n in initializers if n not in consumed]
    return info


# ---------------------------------------------------------------- prompts and noise, as the Node side

def encode(prompt, vocab, max_words):
    """src/data/tokenizer.ts `encode`: lower-case, split on [^a-z0-9-]+, drop empty, unknown -> 1, pad 0."""
    index = {w: i for i, w in enumerate(vocab) if i > 1}
    words = [w for w in re.split(r"[^a-z0-9-]+", prompt.lower()) if w]
    if len(words) > max_words:
        raise ValueError(f'"{prompt}" has {len(words)} words; the text encoder takes at most {max_words}')
    ids = [index.get(w, 1) for w in words] + [0] * (max_words - len(words))
    return np.array(ids, dtype=np.float32)


_M32 = 0xFFFFFFFF


def _mix(h):
    h &= _M32
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _M32
    return h ^ (h >> 16)


def _hash2(a, b):
    return _mix(_mix(a ^ 0x9E3779B9) ^ ((((b + 0x632BE5AB) & _M32) * 0x27D4EB2F) & _M32))


def tbcm_key(seed):
    return _hash2(seed & _M32, 0x7F4A7C15)


def tbcm_fold_in(k, data):
    return _hash2(k, data & _M32)


def tbcm_normal(k, n):
    """src/numerics/random.ts `normal`: Box-Muller over a counter-based hash, float64 math, float32 out."""
    out = np.empty(n, dtype=np.float32)
    for i in range(0, n, 2):
        u1 = (_hash2(k, i) + 0.5) / 4294967296.0
        u2 = _hash2(k, i + 1) / 4294967296.0
        radius = math.sqrt(-2.0 * math.log(u1))
        out[i] = radius * math.cos(2.0 * math.pi * u2)
        if i + 1 < n:
            out[i + 1] = radius * math.sin(2.0 * math.pi * u2)
    return out


# ---------------------------------------------------------------- the check

def later_noises(seed, steps, n, d):
    """The noises `tbcm sample --steps N` draws after the first: normal(foldIn(foldIn(key(seed), 1), i), n*d), i = 1 .. N-1."""
    k = tbcm_fold_in(tbcm_key(seed), 1)
    return [tbcm_normal(tbcm_fold_in(k, i), n * d).reshape(n, d) for i in range(1, steps)]


def run_pipeline(sessions, batch, ids, noise, guidance, later=()):
    """Runs rows through the fixed-batch files in chunks of `batch` (the last padded with zeros, its pad rows dropped).
    `later`: the re-noising inputs noise_step2 … of a multi-step export."""
    text, gen, dec = (sessions[m] for m in MODELS)
    n = ids.shape[0]
    outs = {"cond": [], "latent": [], "image": []}
    for s in range(0, n, batch):
        m = min(batch, n - s)
        pad = lambda x: np.concatenate([x[s:s + m], np.zeros((batch - m,) + x.shape[1:], np.float32)])
        (cond,) = text.run(["cond"], {"token_ids": pad(ids)})
        feeds = {"noise": pad(noise), "cond": cond, "guidance": pad(guidance)}
        feeds.update({f"noise_step{i + 2}": pad(x) for i, x in enumerate(later)})
        (latent,) = gen.run(["latent"], feeds)
        (image,) = dec.run(["image"], {"latent": latent})
        for name, x in (("cond", cond), ("latent", latent), ("image", image)):
            outs[name].append(x[:m])
    return {k: np.concatenate(v) for k, v in outs.items()}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("export_dir")
    p.add_argument("--reference", help="directory written by bench/export-reference.ts")
    p.add_argument("--prompt", action="append", default=[], help="without --reference: a prompt (repeatable)")
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--guidance", type=float, default=4.5)
    p.add_argument("--pgm", help="without --reference: write the images side by side as a binary PGM")
    p.add_argument("--tol", type=float, default=1e-4, help="max |python - node| for cond, latent, image")
    p.add_argument("--sample-tol", type=float, default=2e-3, help="max |python image - tbcm sample| (sample.npy)")
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    a = p.parse_args()
    if not a.reference and not a.prompt:
        p.error("give --reference DIR or at least one --prompt")

    failures = []

    def check(ok, line):
        print(("  PASS  " if ok else "  FAIL  ") + line)
        if not ok:
            failures.append(line)

    with open(os.path.join(a.export_dir, "manifest.json")) as f:
        manifest = json.load(f)
    if manifest.get("format") != "tbcm-onnx-text-to-image-1":
        sys.exit(f'{a.export_dir}: a "{manifest.get("format")}" export; this check is for the text-to-image export of the default stack')
    batch, max_words = manifest["inputs"]["token_ids"]["shape"]
    d = manifest["inputs"]["noise"]["shape"][1]
    steps = manifest.get("steps", 1)
    print(f"onnxruntime {ort.__version__} (numpy {np.__version__}, Python {sys.version.split()[0]}), "
          f"providers available: {', '.join(ort.get_available_providers())}")
    print(f"export {a.export_dir}: batch {batch}, {max_words} words, latent {d}, {steps} student step(s)")

    print("\nfiles (read with this script's protobuf reader):")
    sessions = {}
    for m in MODELS:
        name = manifest["models"][m]
        path = os.path.join(a.export_dir, name)
        info = read_model(path)
        ops = info["ops"]
        domains = sorted({dom for dom, _ in ops} | set(info["opsets"]))
        opsets = ", ".join(f"{dom or 'ai.onnx'} {v}" for dom, v in sorted(info["opsets"].items()))
        print(f"  {name}: {os.path.getsize(path):,} bytes, IR {info['ir_version']}, opset {opsets}, "
              f"producer '{(info['producer'] + ' ' + info['producer_version']).strip()}', {sum(ops.values())} nodes, {info['initializers']} initializers"
              + (f" ({len(info['unused_initializers'])} unused: {', '.join(info['unused_initializers'])})" if info["unused_initializers"] else ""))
        print("        ops: " + ", ".join(f"{op} {c}" for (dom, op), c in sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))))
        check(all(dom in STANDARD_DOMAINS for dom in domains) and info["functions"] == 0,
              f"{name}: node and opset domains {[dom or '' for dom in domains]} all standard ('' or 'ai.onnx'), {info['functions']} local functions")
        expected = manifest.get("op_counts", {}).get(name)
        if expected is not None:
            got = {op: c for (_, op), c in ops.items()}
            print(f"  {'same' if got == expected else 'DIFFERENT'} op counts as the manifest's op_counts"
                  + ("" if got == expected else f": file {got} vs manifest {expected}"))
        so = ort.SessionOptions()
        so.intra_op_num_threads = a.threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3  # errors only: ORT warns about the unused initializers listed above
        try:
            sessions[m] = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - report any load failure as a failed check
            check(False, f"{name}: InferenceSession failed: {e}")
            continue
        sig = lambda xs: ", ".join(f"{x.name} {x.type} {x.shape}" for x in xs)
        print(f"        session: ({sig(sessions[m].get_inputs())}) -> ({sig(sessions[m].get_outputs())})")
    if len(sessions) < len(MODELS):
        print("\nRESULT: FAIL")
        return 1
    want = {"text_encoder": {"token_ids": [batch, max_words]}, "generator": {"noise": [batch, d], "guidance": [batch, 1]},
            "vae_decoder": {"latent": [batch, d]}}
    for m, inputs in want.items():
        got = {x.name: x.shape for x in sessions[m].get_inputs()}
        check(all(got.get(k) == v for k, v in inputs.items()), f"{manifest['models'][m]}: inputs {got} agree with the manifest")
    check(sessions["vae_decoder"].get_outputs()[0].shape == manifest["outputs"]["image"]["shape"],
          f"vae_decoder output shape {sessions['vae_decoder'].get_outputs()[0].shape} = manifest {manifest['outputs']['image']['shape']}")

    vocab = manifest["tokenizer"]["vocab"]
    if a.reference:
        with open(os.path.join(a.reference, "reference.json")) as f:
            ref = json.load(f)
        load = lambda n: np.load(os.path.join(a.reference, n))
        prompts, seed, guidance = ref["prompts"], ref["seed"], ref["guidance"]
        ids, noise, w = load("token_ids.npy"), load("noise.npy"), load("guidance.npy")
        print(f"\nreference {a.reference}: {ref['runtime']}; {len(prompts)} prompts, seed {seed}, guidance {guidance}")
        for i, pr in enumerate(prompts):
            print(f"  {i}: {pr!r} -> ids {[int(x) for x in ids[i] if x]}")
        py_ids = np.stack([encode(pr, vocab, max_words) for pr in prompts])
        check(np.array_equal(py_ids, ids), f"token ids from the manifest's vocab and rule, in Python = the reference's {list(ids.shape)}")
        py_noise = tbcm_normal(tbcm_fold_in(tbcm_key(seed), 0), len(prompts) * d).reshape(len(prompts), d)
        diff = np.abs(py_noise - noise)
        check(float(diff.max()) <= 1e-6, f"noise from the Python port of src/numerics/random.ts = the reference's: "
              f"{int((py_noise == noise).sum())}/{noise.size} values bit-identical, max |diff| {diff.max():.3e}")
        later = [load(f"noise_step{i}.npy") for i in range(2, steps + 1)]
        py_later = later_noises(seed, steps, len(prompts), d)
        check(all(float(np.abs(x - y).max()) <= 1e-6 for x, y in zip(py_later, later)),
              f"the {steps - 1} later noise(s) from the Python port = the reference's")
        ours = run_pipeline(sessions, batch, ids, noise, w, later)
        print(f"\nonnxruntime {ort.__version__} (Python, {a.threads} thread(s)) vs the reference, same inputs:")
        for name in ("cond", "latent", "image"):
            theirs = load(f"{name}.npy")
            if ours[name].shape != theirs.shape:
                check(False, f"{name}: shape {list(ours[name].shape)} vs reference {list(theirs.shape)}")
                continue
            diff = np.abs(ours[name].astype(np.float64) - theirs)
            same = int((ours[name] == theirs).sum())
            check(float(diff.max()) <= a.tol, f"{name:6s} {str(list(theirs.shape)):12s} max |python - node| = {diff.max():.3e}, "
                  f"mean {diff.mean():.3e}, {same}/{theirs.size} bit-identical (tol {a.tol:g})")
        if os.path.exists(os.path.join(a.reference, "sample.npy")):
            sample = load("sample.npy")
            diff = np.abs(ours["image"].astype(np.float64) - sample)
            check(float(diff.max()) <= a.sample_tol, f"image vs `tbcm sample --steps {steps}` ({ref['sample']['run']}): max |diff| = {diff.max():.3e}, "
                  f"mean {diff.mean():.3e} (tol {a.sample_tol:g})")
    else:
        prompts = a.prompt
        ids = np.stack([encode(pr, vocab, max_words) for pr in prompts])
        noise = tbcm_normal(tbcm_fold_in(tbcm_key(a.seed), 0), len(prompts) * d).reshape(len(prompts), d)
        w = np.full((len(prompts), 1), a.guidance, np.float32)
        ours = run_pipeline(sessions, batch, ids, noise, w, later_noises(a.seed, steps, len(prompts), d))
        print(f"\n{len(prompts)} prompt(s), seed {a.seed}, guidance {a.guidance}:")
        for i, pr in enumerate(prompts):
            img = ours["image"][i]
            unknown = [x for x in re.split(r"[^a-z0-9-]+", pr.lower()) if x and x not in vocab[2:]]
            print(f"  {pr!r}: pixels mean {img.mean():.4f}, min {img.min():.4f}, max {img.max():.4f}"
                  + (f" (unknown words read as <unk>: {', '.join(unknown)})" if unknown else ""))
        check(bool(np.isfinite(ours["image"]).all()) and ours["image"].min() >= 0 and ours["image"].max() <= 1, "pixels finite, in [0, 1]")
        if a.pgm:
            grid = np.concatenate([im.reshape(28, 28) for im in ours["image"]], axis=1)
            with open(a.pgm, "wb") as f:
                f.write(f"P5\n{grid.shape[1]} {grid.shape[0]}\n255\n".encode("ascii"))
                f.write(np.round(grid * 255).astype(np.uint8).tobytes())
            print(f"  wrote {a.pgm} ({grid.shape[1]}x{grid.shape[0]})")

    print(f"\nRESULT: {'PASS' if not failures else f'FAIL ({len(failures)} check(s))'}")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
