#!/usr/bin/python3
"""The PyTorch reference for `versus-pytorch`: DistClip's CLIP, step for step, in plain PyTorch.

Mental model: read a DistClip model JSON -> build the same CLIP (names, shapes, initialisation as
src/DistClip.Model) -> train it on synthetic batches of the same shapes with the same AdamW, schedule,
clipping and temperature clamp as ClipTrainer -> time each phase after warm-up -> print one JSON line.

    /usr/bin/python3 bench/pytorch/clip_reference.py --mode single --threads 2 [--batch 256] [--steps 30]
    /usr/bin/python3 bench/pytorch/clip_reference.py --mode ddp --workers 2     (1 thread per process, gloo)

Written for Debian's python3-torch 1.13 (scripts/ensure-bench-deps.sh), which has no
F.scaled_dot_product_attention: attention is written out (softmax(q k^T / sqrt(d)) v), as
nn.MultiheadAttention computes it. Debian's torch resolves sgemm through libblas.so.3; unless
OpenBLAS is found first that is the reference BLAS, ~36x slower, so the script puts OpenBLAS's
directory first on LD_LIBRARY_PATH (re-executing itself, since the loader reads it only at start)
and refuses to report when the BLAS it measures is not OpenBLAS.
"""
import argparse
import json
import math
import os
import socket
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CONFIGS = os.path.join(REPO, "src", "DistClip.Config", "Models", "configs")
OPENBLAS_DIRS = ["/usr/lib/x86_64-linux-gnu/openblas-pthread", "/usr/lib/aarch64-linux-gnu/openblas-pthread"]

# ClipConfig's defaults: ln(1/0.07) and ln(100).
DEFAULT_INIT_LOGIT_SCALE = 2.659260036932778
DEFAULT_MAX_LOGIT_SCALE = 4.605170185988092


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=["single", "ddp"], default="single")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads (single mode; ddp uses 1 per process)")
    p.add_argument("--workers", type=int, default=2, help="processes (ddp mode)")
    p.add_argument("--model", default="clip-tiny", help="a built-in DistClip model name or a .json path")
    p.add_argument("--batch", type=int, default=256, help="global batch")
    p.add_argument("--steps", type=int, default=30, help="measured steps, after the warm-up")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (DistClip's summary skips 3)")
    # OptimizerSettings' defaults, which `coordinator launch` trains with.
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--lr-warmup", type=int, default=10)
    p.add_argument("--weight-decay", type=float, default=0.2)
    p.add_argument("--beta1", type=float, default=0.9)
    p.add_argument("--beta2", type=float, default=0.98)
    p.add_argument("--eps", type=float, default=1e-6)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--min-lr", type=float, default=0.0, help="learning rate at the end of the cosine (= --lr: constant)")
    p.add_argument("--data", help="train on a directory `versus-pytorch-accuracy` wrote (Fashion-MNIST batches in DistClip's order, "
                                   "its tokens, the zero-shot prompts) instead of synthetic batches, and evaluate zero-shot")
    p.add_argument("--eval-every", type=int, default=50, help="zero-shot evaluation every N steps (with --data)")
    p.add_argument("--init-out", help="write the initial state dict here (torch.save), for DistClip's --init")
    p.add_argument("--init-in", help="start from this state dict (torch.save of OpenAI names) instead of the seed")
    p.add_argument("--min-gflops", type=float, default=5.0,
                   help="refuse to report below this 1024x1024 sgemm rate per thread (the reference BLAS does ~1-2)")
    return p.parse_args(argv)


def ensure_environment(args):
    """Re-executes this script with OpenBLAS first on LD_LIBRARY_PATH and the thread count fixed
    before torch loads: the dynamic loader and OpenMP read them once, at process start."""
    threads = 1 if args.mode == "ddp" else args.threads
    openblas = next((d for d in OPENBLAS_DIRS if os.path.exists(os.path.join(d, "libblas.so.3"))), None)
    if openblas is None:
        sys.exit("clip_reference: OpenBLAS is not installed (libopenblas0-pthread); run scripts/ensure-bench-deps.sh")
    path = os.environ.get("LD_LIBRARY_PATH", "")
    want = {"OMP_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_NUM_THREADS": str(threads)}
    if path.split(":")[0] == openblas and all(os.environ.get(k) == v for k, v in want.items()):
        return
    env = dict(os.environ, **want)
    env["LD_LIBRARY_PATH"] = openblas + (":" + path if path else "")
    os.execve(sys.executable, [sys.executable] + sys.argv, env)


def load_config(name_or_path):
    path = name_or_path if name_or_path.endswith(".json") else os.path.join(CONFIGS, name_or_path + ".json")
    with open(path) as f:
        c = json.load(f)
    v, t = c["vision"], c["text"]
    if v["type"] != "vit" or t["type"] != "causal":
        sys.exit(f"clip_reference: only vision 'vit' with text 'causal' is written here; {path} has {v['type']} / {t['type']}")
    for tower in (v, t):
        tower.setdefault("mlp_ratio", 4.0)
        tower.setdefault("activation", "gelu")
    t.setdefault("token_init_std", 0.02)  # TextConfig.DefaultTokenInitStd
    c.setdefault("init_logit_scale", DEFAULT_INIT_LOGIT_SCALE)
    c.setdefault("max_logit_scale", DEFAULT_MAX_LOGIT_SCALE)
    if "init_logit_bias" in c:
        sys.exit("clip_reference: the sigmoid loss's logit bias is not written here")
    return c


# The model. Class and parameter names follow src/DistClip.Model (OpenAI's state-dict names), so the
# bench can check that every parameter has the same name and shape on both sides.

def build_model_classes():
    import torch
    from torch import nn
    import torch.nn.functional as F

    def activation(name):
        if name == "gelu":
            return F.gelu
        if name == "quick_gelu":
            return lambda x: x * torch.sigmoid(1.702 * x)
        raise ValueError(f"unknown activation '{name}'")

    class SelfAttention(nn.Module):
        """nn.MultiheadAttention's parameter layout (packed in_proj, out_proj), batch-first."""

        def __init__(self, width, heads, causal, in_std, out_std):
            super().__init__()
            self.heads, self.causal = heads, causal
            self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width).normal_(0, in_std))
            self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
            self.out_proj = nn.Linear(width, width)
            nn.init.normal_(self.out_proj.weight, 0, out_std)
            nn.init.zeros_(self.out_proj.bias)

        def forward(self, x):
            n, l, w = x.shape
            qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)  # [N, L, 3W]
            q, k, v = qkv.view(n, l, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)  # 3 x [N, H, L, D]
            scores = q @ k.transpose(-2, -1) * (w // self.heads) ** -0.5  # [N, H, L, L]
            if self.causal:
                # A position sees only those before it (DistClip: is_causal), so padding after EOT cannot reach it.
                future = torch.ones(l, l, dtype=torch.bool, device=x.device).triu_(1)
                scores = scores.masked_fill(future, float("-inf"))
            y = scores.softmax(-1) @ v  # [N, H, L, D]
            return self.out_proj(y.transpose(1, 2).reshape(n, l, w))  # [N, L, W]

    class Mlp(nn.Module):
        def __init__(self, width, hidden, act, fc_std, proj_std):
            super().__init__()
            # Biases keep nn.Linear's default init, as DistClip's Mlp does.
            self.c_fc = nn.Linear(width, hidden)
            self.c_proj = nn.Linear(hidden, width)
            self.act = activation(act)
            nn.init.normal_(self.c_fc.weight, 0, fc_std)
            nn.init.normal_(self.c_proj.weight, 0, proj_std)

        def forward(self, x):
            return self.c_proj(self.act(self.c_fc(x)))

    class ResidualAttentionBlock(nn.Module):
        def __init__(self, tower, causal):
            super().__init__()
            width, layers = tower["width"], tower["layers"]
            # CLIP's initialize_parameters: residual projections shrink with depth.
            attn_std = width ** -0.5
            proj_std = attn_std * (2 * layers) ** -0.5
            fc_std = (2 * width) ** -0.5
            self.attn = SelfAttention(width, tower["heads"], causal, attn_std, proj_std)
            self.ln_1 = nn.LayerNorm(width)
            self.mlp = Mlp(width, round(width * tower["mlp_ratio"]), tower["activation"], fc_std, proj_std)
            self.ln_2 = nn.LayerNorm(width)

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class TransformerStack(nn.Module):
        def __init__(self, tower, causal):
            super().__init__()
            self.resblocks = nn.ModuleList([ResidualAttentionBlock(tower, causal) for _ in range(tower["layers"])])

        def forward(self, x):
            for block in self.resblocks:
                x = block(x)
            return x

    class VisionTransformer(nn.Module):
        def __init__(self, v, embed_dim):
            super().__init__()
            width, grid = v["width"], v["image_size"] // v["patch_size"]
            scale = width ** -0.5
            self.conv1 = nn.Conv2d(v["channels"], width, v["patch_size"], stride=v["patch_size"], bias=False)
            self.class_embedding = nn.Parameter(torch.empty(width).normal_(0, scale))
            self.positional_embedding = nn.Parameter(torch.empty(grid * grid + 1, width).normal_(0, scale))
            self.ln_pre = nn.LayerNorm(width)
            self.transformer = TransformerStack(v, causal=False)
            self.ln_post = nn.LayerNorm(width)
            self.proj = nn.Parameter(torch.empty(width, embed_dim).normal_(0, scale))

        def forward(self, images):
            x = self.conv1(images)  # [N, W, g, g]
            n, w = x.shape[0], x.shape[1]
            x = x.flatten(2).transpose(1, 2)  # [N, g², W]
            cls = self.class_embedding.view(1, 1, w).expand(n, 1, w)  # [N, 1, W]
            x = torch.cat([cls, x], dim=1) + self.positional_embedding  # [N, g²+1, W]
            x = self.transformer(self.ln_pre(x))
            return self.ln_post(x[:, 0, :]) @ self.proj  # [N, E]

    class Clip(nn.Module):
        def __init__(self, c):
            super().__init__()
            t = c["text"]
            # Construction order as ClipModel's, so parameters are registered (and reduced) in the same order.
            self.visual = VisionTransformer(c["vision"], c["embed_dim"])
            self.token_embedding = nn.Embedding(t["vocab_size"], t["width"])
            nn.init.normal_(self.token_embedding.weight, 0, t["token_init_std"])
            self.positional_embedding = nn.Parameter(torch.empty(t["context_length"], t["width"]).normal_(0, 0.01))
            self.transformer = TransformerStack(t, causal=True)
            self.ln_final = nn.LayerNorm(t["width"])
            self.text_projection = nn.Parameter(torch.empty(t["width"], c["embed_dim"]).normal_(0, t["width"] ** -0.5))
            self.logit_scale = nn.Parameter(torch.tensor(float(c["init_logit_scale"])))

        def encode_text(self, tokens, lengths):
            n, l = tokens.shape
            x = self.token_embedding(tokens) + self.positional_embedding[:l]  # [N, L, W]
            x = self.ln_final(self.transformer(x))  # [N, L, W]
            # Pooled at the end-of-text token, position lengths - 1 (DistClip's TextPooling.AtEndOfText).
            pooled = x[torch.arange(n), lengths - 1]  # [N, W]
            return pooled @ self.text_projection  # [N, E]

        def forward(self, images, tokens, lengths):
            # [N, E] unit vectors each, and exp(t); the temperature goes through forward so DDP sees it used.
            image = F.normalize(self.visual(images), dim=1)
            text = F.normalize(self.encode_text(tokens, lengths), dim=1)
            return image, text, self.logit_scale.exp()

    return Clip


# Distributed pieces: DistClip's loss stage, in autograd form.

class Clock:
    """Seconds spent in the features' collectives this step (forward gather and backward reduce)."""
    communication = 0.0


def make_gather():
    import torch
    import torch.distributed as dist

    class GatherRows(torch.autograd.Function):
        """[b, 2E] -> [B, 2E] (every rank's rows, in rank order). Backward: the sum over ranks of
        dL_r/d(all rows), of which this rank keeps its own: the exact gradient of the global loss
        for its features, as DistClip's reduce-scatter gives. (gloo has no reduce-scatter, so an
        all-reduce and a slice; torch.distributed.nn's all_gather would need one for gloo too.)"""

        @staticmethod
        def forward(ctx, rows):
            start = time.perf_counter()
            world, rank = dist.get_world_size(), dist.get_rank()
            parts = [torch.empty_like(rows) for _ in range(world)]
            dist.all_gather(parts, rows.contiguous())
            ctx.rank, ctx.b = rank, rows.shape[0]
            Clock.communication += time.perf_counter() - start
            return torch.cat(parts)

        @staticmethod
        def backward(ctx, grad):
            start = time.perf_counter()
            grad = grad.contiguous()
            dist.all_reduce(grad)
            Clock.communication += time.perf_counter() - start
            return grad[ctx.rank * ctx.b:(ctx.rank + 1) * ctx.b]

    return GatherRows


def step_loss(images_local, texts_local, images_all, texts_all, scale, offset, total):
    """CLIP's softmax loss as DistClip's loss stage forms it: this rank's b image rows against all B
    texts and its b text rows against all B images, row i's positive at column offset + i; the rows'
    cross-entropies summed over both directions and divided by 2B, so the ranks' shares sum to the
    mean of the two cross-entropies over the global batch."""
    import torch
    import torch.nn.functional as F
    b = images_local.shape[0]
    labels = torch.arange(offset, offset + b)
    image_logits = scale * images_local @ texts_all.t()  # [b, B]
    text_logits = scale * texts_local @ images_all.t()  # [b, B]
    return (F.cross_entropy(image_logits, labels, reduction="sum") + F.cross_entropy(text_logits, labels, reduction="sum")) / (2 * total)


def lr_at(step, args, total_steps):
    """LearningRateSchedule.At: linear warm-up (the first step already moves), then cosine to --min-lr."""
    if args.lr_warmup > 0 and step < args.lr_warmup:
        return args.lr * (step + 1) / args.lr_warmup
    decay = max(1, total_steps - args.lr_warmup)
    progress = min(max((step - args.lr_warmup) / decay, 0.0), 1.0)
    return args.min_lr + 0.5 * (args.lr - args.min_lr) * (1 + math.cos(math.pi * progress))


def read_idx_gz(path):
    """An IDX file (gzip-compressed, as Debian's dataset-fashion-mnist ships it) as a uint8 numpy array."""
    import gzip
    import numpy as np
    with gzip.open(path, "rb") as f:
        raw = f.read()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


class RealData:
    """What `versus-pytorch-accuracy` exported: each step's global batch as DistClip's sampler orders
    it (dataset indices, DistClip's tokens and lengths), the zero-shot prompts tokenised by DistClip,
    and where Fashion-MNIST lives. Pixels are normalised here as FashionMnistDataset does:
    (byte / 255 - mean) / std."""

    def __init__(self, directory):
        import numpy as np
        import torch
        with open(os.path.join(directory, "meta.json")) as f:
            self.meta = m = json.load(f)
        self.steps, self.batch, self.context = m["steps"], m["global_batch"], m["context_length"]
        self.indices = np.fromfile(os.path.join(directory, "indices.i32"), dtype="<i4").reshape(self.steps, self.batch)
        self.tokens = np.fromfile(os.path.join(directory, "tokens.i64"), dtype="<i8").reshape(self.steps, self.batch, self.context)
        self.lengths = np.fromfile(os.path.join(directory, "lengths.i64"), dtype="<i8").reshape(self.steps, self.batch)
        classes, templates = len(m["classes"]), len(m["templates"])
        self.prompt_tokens = torch.from_numpy(np.fromfile(os.path.join(directory, "prompt_tokens.i64"), dtype="<i8")
                                              .reshape(classes, templates, self.context).copy())
        self.prompt_lengths = torch.from_numpy(np.fromfile(os.path.join(directory, "prompt_lengths.i64"), dtype="<i8")
                                               .reshape(classes, templates).copy())
        root = m["dataset_directory"]
        self.train_images = read_idx_gz(os.path.join(root, "train-images-idx3-ubyte.gz"))
        self.test_images = read_idx_gz(os.path.join(root, "t10k-images-idx3-ubyte.gz"))
        self.test_labels = torch.from_numpy(read_idx_gz(os.path.join(root, "t10k-labels-idx1-ubyte.gz")).astype("int64"))
        self.mean, self.std = m["mean"], m["std"]

    def pixels(self, images):
        import torch
        x = torch.from_numpy(images.astype("float32")).unsqueeze(1)  # [N, 1, 28, 28]
        return (x / 255.0 - self.mean) / self.std

    def local_batch(self, step, rank, world):
        """Rank `rank`'s contiguous slice of step `step`'s global batch, as GlobalBatchSampler.LocalBatch."""
        import torch
        b = self.batch // world
        rows = slice(rank * b, (rank + 1) * b)
        return (self.pixels(self.train_images[self.indices[step, rows]]),
                torch.from_numpy(self.tokens[step, rows].copy()),
                torch.from_numpy(self.lengths[step, rows].copy()))

    def zero_shot_top1(self, model):
        """ZeroShotClassifier: each class's prompts encoded, normalised, averaged and renormalised (PromptEnsemble);
        every test image against the ten rows; the share whose best row is its label."""
        import torch
        import torch.nn.functional as F
        with torch.no_grad():
            classes, templates, context = self.prompt_tokens.shape
            text = F.normalize(model.encode_text(self.prompt_tokens.view(-1, context), self.prompt_lengths.view(-1)), dim=1)
            rows = F.normalize(text.view(classes, templates, -1).mean(1), dim=1)  # [K, E]
            correct = 0
            for start in range(0, len(self.test_images), 1000):
                images = F.normalize(model.visual(self.pixels(self.test_images[start:start + 1000])), dim=1)
                correct += (images @ rows.t()).argmax(1).eq(self.test_labels[start:start + 1000]).sum().item()
        return correct / len(self.test_images)


def blas_check(torch, threads):
    """The BLAS this process loaded (from /proc/self/maps) and its 1024x1024 sgemm rate."""
    library = None
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            if os.path.basename(path).startswith("libblas.so"):
                library = os.path.realpath(path)
                break
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b
    start = time.perf_counter()
    for _ in range(3):
        a @ b
    seconds = (time.perf_counter() - start) / 3
    return {"library": library, "gflops": 2 * 1024 ** 3 / seconds / 1e9, "threads": threads}


def train(rank, world, args, port):
    import torch
    import torch.distributed as dist

    threads = 1 if args.mode == "ddp" else args.threads
    torch.set_num_threads(threads)
    blas = blas_check(torch, threads)
    if "openblas" not in (blas["library"] or "") or blas["gflops"] < args.min_gflops * threads:
        sys.exit(f"clip_reference: refusing to report: BLAS {blas['library']} does {blas['gflops']:.1f} GFLOP/s "
                 f"on a 1024x1024 sgemm with {threads} thread(s) (want OpenBLAS and >= {args.min_gflops * threads:.0f}); "
                 "is OpenBLAS first on LD_LIBRARY_PATH?")

    if world > 1:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    config = load_config(args.model)
    torch.manual_seed(args.seed)  # the same initial weights on every rank, as DistClip's ranks build them
    model = build_model_classes()(config)
    if args.init_in:
        model.load_state_dict(torch.load(args.init_in))
    if args.init_out and rank == 0:
        torch.save(model.state_dict(), args.init_out)
    shapes = {name: list(p.shape) for name, p in model.named_parameters()}
    parameters = list(model.parameters())
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    # OptimizerFactory: decay on tensors of rank >= 2, none on biases, norms, class token, temperature.
    optimizer = torch.optim.AdamW(
        [{"params": [p for p in parameters if p.dim() >= 2], "weight_decay": args.weight_decay},
         {"params": [p for p in parameters if p.dim() < 2], "weight_decay": 0.0}],
        lr=args.lr, betas=(args.beta1, args.beta2), eps=args.eps)
    gather = make_gather() if world > 1 else None

    # Synthetic batches of the launch's shapes: [b, C, S, S] pixels, [b, L] token ids, lengths in [2, L]
    # (start and end-of-text at least). Attention runs over all L positions either way, so compute is the data's.
    v, t = config["vision"], config["text"]
    b = args.batch // world
    data = torch.Generator().manual_seed(args.seed * 1000 + rank)
    real = RealData(args.data) if args.data else None
    if real is not None:
        # Every step is measured (time to accuracy counts from the first), on the exported batches.
        if real.batch != args.batch or real.context != t["context_length"]:
            sys.exit(f"clip_reference: {args.data} holds global batch {real.batch} at context {real.context}; "
                     f"this run has {args.batch} and {t['context_length']}")
        args.warmup, args.steps = 0, min(args.steps, real.steps)
    curve, losses, train_seconds = [], [], 0.0
    total_steps = args.warmup + args.steps
    names = ["data", "forward", "all_gather", "loss", "backward", "all_reduce", "optimizer"]
    phases = dict.fromkeys(names, 0.0)
    measured = 0.0
    for step in range(total_steps):
        timed = step >= args.warmup
        step_start = clock = time.perf_counter()
        Clock.communication = 0.0

        def lap():
            nonlocal clock
            now = time.perf_counter()
            seconds, clock = now - clock, now
            return seconds

        if real is None:
            images = torch.randn(b, v["channels"], v["image_size"], v["image_size"], generator=data)
            tokens = torch.randint(0, t["vocab_size"], (b, t["context_length"]), generator=data)
            lengths = torch.randint(2, t["context_length"] + 1, (b,), generator=data)
        else:
            images, tokens, lengths = real.local_batch(step, rank, world)
        data_s = lap()

        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, args, total_steps)
        image, text, scale = net(images, tokens, lengths)  # [b, E], [b, E], exp(t)
        forward_s = lap()

        if gather is None:
            loss = step_loss(image, text, image, text, scale, 0, b)
        else:
            everything = gather.apply(torch.cat([image, text], 1))  # [B, 2E]
            e = image.shape[1]
            # Times the world size: DDP averages the ranks' gradients, DistClip sums the ranks' shares.
            loss = world * step_loss(image, text, everything[:, :e], everything[:, e:], scale, rank * b, b * world)
        gather_forward_s = Clock.communication
        loss_s = lap() - gather_forward_s

        optimizer.zero_grad(set_to_none=False)
        loss.backward()  # DDP all-reduces its buckets during this, behind the towers' backward
        backward_s = lap() - (Clock.communication - gather_forward_s)

        norm = torch.nn.utils.clip_grad_norm_(parameters, args.grad_clip if args.grad_clip > 0 else float("inf"))
        if math.isfinite(norm.item()) and math.isfinite(loss.item()):
            optimizer.step()
            with torch.no_grad():
                model.logit_scale.clamp_(max=config["max_logit_scale"])
        optimizer_s = lap()

        if timed:
            measured += time.perf_counter() - step_start
            for name, seconds in zip(names, [data_s, forward_s, Clock.communication, loss_s, backward_s, 0.0, optimizer_s]):
                phases[name] += seconds / args.steps

        if real is not None:
            # Untimed: the global loss (the ranks' shares summed) and, every --eval-every steps, zero-shot top-1 on rank 0.
            train_seconds += time.perf_counter() - step_start
            share = (loss / world).detach()
            if world > 1:
                dist.all_reduce(share)
            losses.append(share.item())
            done = step + 1
            if done % args.eval_every == 0 or done == total_steps:
                if rank == 0:
                    top1 = real.zero_shot_top1(model)
                    curve.append({"step": done, "loss": losses[-1], "zero_shot_top1": top1, "train_seconds": train_seconds})
                    print(json.dumps({"progress": curve[-1]}), file=sys.stderr, flush=True)
                if world > 1:
                    dist.barrier()

    if world > 1:
        # DDP reduces its buckets inside backward; what it leaves exposed is in the backward figure.
        del phases["all_reduce"]

    if rank == 0:
        # Rank 0 prints the report itself: the parent only waits for the ranks to finish.
        print(json.dumps({
            "framework": "pytorch", "torch": torch.__version__, "model": config["name"], "mode": args.mode,
            "workers": world, "threads": threads, "global_batch": b * world, "steps": args.steps, "warmup": args.warmup,
            "parameters": sum(p.numel() for p in parameters),
            "samples_per_second": b * world * args.steps / measured,
            "phase_seconds": phases, "blas": blas, "parameter_shapes": shapes,
            **({"curve": curve, "losses": losses, "train_seconds": train_seconds} if real is not None else {}),
        }), flush=True)
    if world > 1:
        dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    args = parse_args(sys.argv[1:])
    ensure_environment(args)
    if args.batch % (args.workers if args.mode == "ddp" else 1) != 0:
        sys.exit(f"clip_reference: global batch {args.batch} is not divisible by {args.workers} workers")
    if args.mode == "single":
        train(0, 1, args, None)
    else:
        import torch.multiprocessing as mp
        mp.spawn(train, args=(args.workers, args, free_port()), nprocs=args.workers, join=True)


if __name__ == "__main__":
    main()
