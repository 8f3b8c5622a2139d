"""PyTorch (CPU, float32) timing of the tbcm DiT student/teacher, for comparison with our ONNX Runtime numbers.

What it measures (median wall-clock ms over N timed runs after W warm-up runs):
  (a) one sCM training step of the student on a batch of 60 pairs: exact forward-mode JVP of the
      TrigFlow velocity F(u, t) along (v_u, v_t) without gradient, tangent g with normalisation,
      adaptive-weighted loss with logvar, backward, global grad-norm clip 0.1, AdamW step
      (src/train/step.ts, src/method/loss.ts, spec §4);
  (b) one teacher trajectory pass: 16 sequential guided TrigFlow steps for 4 prompts, each step one
      teacher DiT forward on 8 rows (cond + uncond), under torch.no_grad (spec §3);
  (c) a 1-step generation (student forward at t = pi/2, no_grad) at batch 1 and batch 256.

The model mirrors src/models/dit.ts + transformer.ts + layers.ts: width 128, depth 4, heads 4,
SwiGLU FF (hidden 256), softmax self-attention with QK RMS-norm, masked cross-attention to 9 text
tokens of width 64, adaLN-single, 2-D sincos positions, flow->TrigFlow conversion (spec §2).
Weights are random (shapes and ops are what matter); zero-initialised layers get small random
values so that no computation is trivially zero.

Run (Debian's python3-torch, with OpenBLAS selected as libblas.so.3, see bench/RESULTS.md §9):
  OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/torch_step.py --threads 1
  OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=2 /usr/bin/python3 bench/torch_step.py --threads 2
torch's generic-BLAS build does not size OpenBLAS's pool: set OPENBLAS_NUM_THREADS, or the two
pools oversubscribe the cores. Options: --warmup 2 --iters 10
"""
import argparse
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as Fn

SIGMA_D = 0.5
TANGENT_NORM_EPS = 0.1
FEATURE_HALF = 32
TIME_INPUT_SCALE = 100.0
MAX_PERIOD = 100.0
GUIDANCE_EMBED_SCALE = 0.1


def sinusoidal(x, half=FEATURE_HALF, max_period=MAX_PERIOD):
    i = torch.arange(half, dtype=torch.float32)
    freqs = torch.exp(-math.log(max_period) * i / half)
    ang = x * freqs.reshape(1, half)
    return torch.cat([torch.cos(ang), torch.sin(ang)], 1)


def layer_norm(x, eps=1e-6):  # no affine
    c = x - x.mean(-1, keepdim=True)
    return c / torch.sqrt((c * c).mean(-1, keepdim=True) + eps)


def rms_norm(gain, x, eps=1e-6):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * gain


def grid_positions(rows, cols, dim):
    q = dim // 4
    out = torch.zeros(rows * cols, dim)
    i = torch.arange(q, dtype=torch.float64)
    f = 1.0 / 10000 ** (i / q)
    for r in range(rows):
        for c in range(cols):
            row = r * cols + c
            out[row, :q] = torch.sin(r * f).float(); out[row, q:2 * q] = torch.cos(r * f).float()
            out[row, 2 * q:3 * q] = torch.sin(c * f).float(); out[row, 3 * q:] = torch.cos(c * f).float()
    return out


class Embedder(nn.Module):
    def __init__(self, d_in, d):
        super().__init__()
        self.fc1 = nn.Linear(d_in, d); self.fc2 = nn.Linear(d, d)

    def forward(self, x):
        return self.fc2(Fn.silu(self.fc1(x)))


class Attention(nn.Module):
    def __init__(self, dim, ctx_dim, heads):
        super().__init__()
        self.h = heads; self.dh = dim // heads
        self.q = nn.Linear(dim, dim); self.k = nn.Linear(ctx_dim, dim)
        self.v = nn.Linear(ctx_dim, dim); self.out = nn.Linear(dim, dim)
        self.q_norm = nn.Parameter(torch.ones(self.dh)); self.k_norm = nn.Parameter(torch.ones(self.dh))

    def split(self, x):
        B, N, _ = x.shape
        return x.reshape(B, N, self.h, self.dh).transpose(1, 2)

    def forward(self, x, ctx, key_bias=None):
        q = rms_norm(self.q_norm, self.split(self.q(x)))
        k = rms_norm(self.k_norm, self.split(self.k(ctx)))
        v = self.split(self.v(ctx))
        logits = torch.matmul(q, k.transpose(2, 3)) * (1.0 / math.sqrt(self.dh))
        if key_bias is not None:
            logits = logits + key_bias
        y = torch.matmul(torch.softmax(logits, -1), v)
        B, h, N, dh = y.shape
        return self.out(y.transpose(1, 2).reshape(B, N, h * dh))


class FeedForward(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.gate = nn.Linear(dim, hidden); self.up = nn.Linear(dim, hidden); self.down = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.down(Fn.silu(self.gate(x)) * self.up(x))


class Block(nn.Module):
    def __init__(self, H, text_width, heads, ff_hidden):
        super().__init__()
        self.table = nn.Parameter(torch.randn(6, H) * 0.02)
        self.self_attn = Attention(H, H, heads)
        self.cross_attn = Attention(H, text_width, heads)
        self.ff = FeedForward(H, ff_hidden)


def modulate(x, shift, scale):
    return layer_norm(x) * (1 + scale) + shift


class DiT(nn.Module):
    def __init__(self, side=7, channels=4, width=128, depth=4, heads=4, text_width=64, ff_ratio=2, student=True):
        super().__init__()
        H = width
        self.side, self.C, self.H = side, channels, H
        self.in_proj = nn.Linear(channels, H)
        self.time_embed = Embedder(2 * FEATURE_HALF, H)
        self.time_block = nn.Linear(H, 6 * H)
        self.blocks = nn.ModuleList([Block(H, text_width, heads, ff_ratio * H) for _ in range(depth)])
        self.final_table = nn.Parameter(torch.randn(2, H) * 0.02)
        self.out_proj = nn.Linear(H, channels)
        self.register_buffer("pos", grid_positions(side, side, H))
        self.student = student
        if student:
            self.guidance_embed = Embedder(2 * FEATURE_HALF, H)
            self.logvar_head = nn.Linear(H, 1)

    def flow(self, x_flow, s, cond, w=None):
        """Flow velocity (and logvar). x_flow [B, 196], s [B,1], cond [B, 9, 65] (tokens + mask), w [B,1]."""
        B, H, N = x_flow.shape[0], self.H, self.side * self.side
        temb = self.time_embed(sinusoidal(s * TIME_INPUT_SCALE))
        if self.student and w is not None:
            temb = temb + self.guidance_embed(sinusoidal(w * (GUIDANCE_EMBED_SCALE * TIME_INPUT_SCALE)))
        if temb.shape[0] != B:
            temb = temb.expand(B, H)
        logvar = self.logvar_head(temb) if self.student else torch.zeros(B, 1)
        t6 = self.time_block(Fn.silu(temb)).reshape(B, 1, 6, H)
        text, mask = cond[..., :-1], cond[..., -1]
        key_bias = ((mask - 1) * 1e4).reshape(B, 1, 1, -1)
        x = self.in_proj(x_flow.reshape(B, N, self.C)) + self.pos
        for b in self.blocks:
            mods = (t6 + b.table).unbind(2)  # 6 × [B, 1, H]
            shA, scA, gA, shF, scF, gF = mods
            y = modulate(x, shA, scA)
            x = x + b.self_attn(y, y) * gA
            x = x + b.cross_attn(x, text, key_bias)
            x = x + b.ff(modulate(x, shF, scF)) * gF
        ss = self.final_table.reshape(1, 2, H) + temb.reshape(B, 1, H)
        shift, scale = ss[:, 0:1], ss[:, 1:2]
        v = self.out_proj(modulate(x, shift, scale))
        return v.reshape(B, N * self.C), logvar

    def trig(self, u, t, cond, w=None):
        """TrigFlow unit velocity F(u, t) (spec §2) and logvar."""
        sn, cs = torch.sin(t), torch.cos(t)
        s = sn / (sn + cs)
        k = torch.sqrt(s * s + (1 - s) * (1 - s))
        x_flow = u * k
        v, logvar = self.flow(x_flow, s, cond, w)
        F = (x_flow * (1 - 2 * s) + v * (1 - 2 * s + 2 * s * s)) / k
        return F, logvar


def pick_jvp():
    if hasattr(torch, "func") and hasattr(torch.func, "jvp"):
        return "torch.func.jvp", torch.func.jvp
    try:
        import torch.autograd.forward_ad as fwAD

        def jvp_fwad(f, primals, tangents):
            with fwAD.dual_level():
                duals = [fwAD.make_dual(p, t) for p, t in zip(primals, tangents)]
                out = fwAD.unpack_dual(f(*duals))
                return out.primal, out.tangent
        return "torch.autograd.forward_ad", jvp_fwad
    except ImportError:
        import functorch
        return "functorch.jvp", functorch.jvp


def make_cond(B, L=9, D=64):
    text = torch.randn(B, L, D)
    mask = torch.ones(B, L, 1)
    lens = torch.randint(2, L + 1, (B,))
    for i in range(B):
        mask[i, lens[i]:] = 0
    return torch.cat([text, mask], 2)


def median_ms(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(iters):
        t0 = time.perf_counter(); fn(); ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts), min(ts), max(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    jvp_name, jvp = pick_jvp()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, JVP via {jvp_name}")

    student = DiT(student=True)
    teacher = DiT(student=False)
    n_student = sum(p.numel() for p in student.parameters())
    n_teacher = sum(p.numel() for p in teacher.parameters())
    print(f"params: student {n_student:,} (expect 1,012,485), teacher {n_teacher:,}")
    opt = torch.optim.AdamW(student.parameters(), lr=1e-5)
    params = list(student.parameters())

    # (a) training step, batch 60
    B, d = 60, 196
    xt = torch.randn(B, d) * SIGMA_D
    t = torch.rand(B, 1) * (1.5708 - 0.006) + 0.006
    dxdt = torch.randn(B, d) * SIGMA_D
    cond = make_cond(B)
    w = torch.tensor([4.0, 4.5, 5.0])[torch.randint(0, 3, (B, 1))].reshape(B, 1)
    keep = torch.ones(B, 1)
    r = 1.0

    def train_step():
        u = xt / SIGMA_D
        cs = torch.cos(t) * torch.sin(t)
        vu, vt = dxdt * cs / SIGMA_D, cs
        with torch.no_grad():
            f_minus, J = jvp(lambda uu, tt: student.trig(uu, tt, cond, w)[0], (u, t), (vu, vt))
            cos, sin = torch.cos(t), torch.sin(t)
            g = -(cos * cos) * (SIGMA_D * f_minus - dxdt) - r * (cos * sin * xt + SIGMA_D * J)
            g = g / (g.norm(dim=1, keepdim=True) + TANGENT_NORM_EPS)
            target = f_minus + g
        F, logvar = student.trig(u, t, cond, w)
        mse = ((F - target) ** 2).mean(1, keepdim=True)
        weight = 1.0 / (SIGMA_D * torch.tan(t))
        loss = ((weight * mse * torch.exp(-logvar) + logvar) * keep).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(params, 0.1)
        if torch.isfinite(gn) and torch.isfinite(loss):
            opt.step()
        return loss

    # (b) teacher trajectory pass: 4 prompts x 16 steps, CFG, 8 rows per step
    P = 4
    route = torch.tensor([1.5708, 1.542309, 1.509512, 1.471437, 1.426839, 1.374120, 1.311228, 1.235578,
                          1.144037, 1.033124, 0.899701, 0.742466, 0.564203, 0.373447, 0.183197, 0.006256])
    cond_c = make_cond(P)
    cond_u = make_cond(1).expand(P, -1, -1)
    cond8 = torch.cat([cond_c, cond_u], 0)
    wP = torch.tensor([[4.0], [4.5], [5.0], [4.0]])

    def trajectory():
        with torch.no_grad():
            x = SIGMA_D * torch.randn(P, d)
            for i in range(16):
                ti = route[i].reshape(1, 1)
                F, _ = teacher.trig(torch.cat([x, x], 0) / SIGMA_D, ti.expand(2 * P, 1), cond8)
                Fc, Fu = F[:P], F[P:]
                V = SIGMA_D * Fu + wP * (SIGMA_D * Fc - SIGMA_D * Fu)
                delta = route[i] - route[i + 1] if i < 15 else route[15]
                x = torch.cos(delta) * x - torch.sin(delta) * V
            return x

    # (c) 1-step generation
    def gen(Bg):
        cg = make_cond(Bg); wg = torch.full((Bg, 1), 4.5)
        tg = torch.full((1, 1), math.pi / 2)

        def run():
            with torch.no_grad():
                x = SIGMA_D * torch.randn(Bg, d)
                F, _ = student.trig(x / SIGMA_D, tg, cg, wg)
                return math.cos(math.pi / 2) * x - math.sin(math.pi / 2) * SIGMA_D * F
        return run

    res = {}
    res["train step (B=60)"] = median_ms(train_step, a.warmup, a.iters)
    res["teacher trajectory (4x16, CFG)"] = median_ms(trajectory, a.warmup, a.iters)
    res["1-step gen B=1"] = median_ms(gen(1), a.warmup, max(a.iters, 50))
    res["1-step gen B=256"] = median_ms(gen(256), a.warmup, a.iters)
    for k, (med, lo, hi) in res.items():
        print(f"{k:34s} median {med:9.2f} ms   (min {lo:.2f}, max {hi:.2f})")


if __name__ == "__main__":
    main()
