#!/usr/bin/python3
"""Builds the pretrained-import parity fixture (tests/DistClip.Model.Tests/Fixtures/parity).

Two tiny CLIP models with OpenAI's architecture and parameter names (the classes below follow
openai/CLIP's clip/model.py line for line; only the sizes are small), with random weights, are
saved as state dicts, together with fixed inputs and the embeddings PyTorch computes for them.
DistClip's PretrainedImportTests load each state dict into a ClipModel built from the saved
config and must reproduce the embeddings within 1e-4.

  tiny-vit.pt           ViT image tower, float32, torch.save(state_dict)  (the .pt/.bin path)
  tiny-rn.safetensors   ModifiedResNet image tower, float16, as OpenAI ships its weights (safetensors path)
  tiny-vit.json / tiny-rn.json   the same models as DistClip model configs
  expected.safetensors  inputs (images, tokens) and PyTorch's image/text embeddings

Regenerate (Debian's python3-torch is only needed here, never by the tests):
  apt-get install python3-torch
  /usr/bin/python3 scripts/parity/make_fixture.py
Output is deterministic for a given PyTorch version (seeded); the committed files came from Debian 12's
python3-torch 1.13.1 (it reports itself as 1.13.0a0).
"""

import json
import os
import struct
import sys
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "DistClip.Model.Tests", "Fixtures", "parity")

EMBED_DIM = 24
CONTEXT = 12
VOCAB = 256            # SOT = 254 and EOT = 255 are the two largest ids, as in CLIP's 49,408
TEXT_WIDTH, TEXT_LAYERS, TEXT_HEADS = 32, 2, 4


# ---- openai/CLIP clip/model.py, unchanged apart from explicit head counts for tiny widths ----

class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu3 = nn.ReLU(inplace=True)
        self.downsample = None
        if stride > 1 or inplanes != planes * Bottleneck.expansion:
            self.downsample = nn.Sequential(OrderedDict([
                ("-1", nn.AvgPool2d(stride)),
                ("0", nn.Conv2d(inplanes, planes * self.expansion, 1, stride=1, bias=False)),
                ("1", nn.BatchNorm2d(planes * self.expansion)),
            ]))

    def forward(self, x):
        identity = x
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.avgpool(out)
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu3(out)


class AttentionPool2d(nn.Module):
    def __init__(self, spacial_dim, embed_dim, num_heads, output_dim=None):
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.randn(spacial_dim ** 2 + 1, embed_dim) / embed_dim ** 0.5)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.c_proj = nn.Linear(embed_dim, output_dim or embed_dim)
        self.num_heads = num_heads

    def forward(self, x):
        x = x.flatten(start_dim=2).permute(2, 0, 1)  # NCHW -> (HW)NC
        x = torch.cat([x.mean(dim=0, keepdim=True), x], dim=0)  # (HW+1)NC
        x = x + self.positional_embedding[:, None, :].to(x.dtype)
        x, _ = F.multi_head_attention_forward(
            query=x[:1], key=x, value=x, embed_dim_to_check=x.shape[-1], num_heads=self.num_heads,
            q_proj_weight=self.q_proj.weight, k_proj_weight=self.k_proj.weight, v_proj_weight=self.v_proj.weight,
            in_proj_weight=None, in_proj_bias=torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias]),
            bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0,
            out_proj_weight=self.c_proj.weight, out_proj_bias=self.c_proj.bias,
            use_separate_proj_weight=True, training=self.training, need_weights=False)
        return x.squeeze(0)


class ModifiedResNet(nn.Module):
    def __init__(self, layers, output_dim, heads, input_resolution=224, width=64):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width // 2, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width // 2)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width // 2, width // 2, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width // 2)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(width // 2, width, kernel_size=3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.relu3 = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(2)
        self._inplanes = width
        self.layer1 = self._make_layer(width, layers[0])
        self.layer2 = self._make_layer(width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(width * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(width * 8, layers[3], stride=2)
        self.attnpool = AttentionPool2d(input_resolution // 32, width * 32, heads, output_dim)

    def _make_layer(self, planes, blocks, stride=1):
        layers = [Bottleneck(self._inplanes, planes, stride)]
        self._inplanes = planes * Bottleneck.expansion
        for _ in range(1, blocks):
            layers.append(Bottleneck(self._inplanes, planes))
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        x = self.relu3(self.bn3(self.conv3(x)))
        x = self.avgpool(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.attnpool(x)


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, d_model, n_head, attn_mask=None):
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, n_head)
        self.ln_1 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(OrderedDict([
            ("c_fc", nn.Linear(d_model, d_model * 4)),
            ("gelu", QuickGELU()),
            ("c_proj", nn.Linear(d_model * 4, d_model)),
        ]))
        self.ln_2 = nn.LayerNorm(d_model)
        self.attn_mask = attn_mask

    def forward(self, x):
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False, attn_mask=self.attn_mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width, layers, heads, attn_mask=None):
        super().__init__()
        self.resblocks = nn.Sequential(*[ResidualAttentionBlock(width, heads, attn_mask) for _ in range(layers)])

    def forward(self, x):
        return self.resblocks(x)


class VisionTransformer(nn.Module):
    def __init__(self, input_resolution, patch_size, width, layers, heads, output_dim):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        scale = width ** -0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn((input_resolution // patch_size) ** 2 + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))

    def forward(self, x):
        x = self.conv1(x)
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
        x = torch.cat([self.class_embedding + torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype), x], dim=1)
        x = self.ln_pre(x + self.positional_embedding)
        x = self.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)
        return self.ln_post(x[:, 0, :]) @ self.proj


class CLIP(nn.Module):
    def __init__(self, visual):
        super().__init__()
        self.visual = visual
        mask = torch.empty(CONTEXT, CONTEXT).fill_(float("-inf")).triu_(1)
        self.transformer = Transformer(TEXT_WIDTH, TEXT_LAYERS, TEXT_HEADS, attn_mask=mask)
        self.token_embedding = nn.Embedding(VOCAB, TEXT_WIDTH)
        self.positional_embedding = nn.Parameter(torch.randn(CONTEXT, TEXT_WIDTH) * 0.01)
        self.ln_final = nn.LayerNorm(TEXT_WIDTH)
        self.text_projection = nn.Parameter(torch.randn(TEXT_WIDTH, EMBED_DIM) * TEXT_WIDTH ** -0.5)
        self.logit_scale = nn.Parameter(torch.ones([]) * np.log(1 / 0.07))

    def encode_image(self, image):
        return self.visual(image)

    def encode_text(self, text):
        x = self.token_embedding(text) + self.positional_embedding
        x = self.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)
        x = self.ln_final(x)
        return x[torch.arange(x.shape[0]), text.argmax(dim=-1)] @ self.text_projection


# ---- fixture ----

def randomize(model):
    """Non-trivial values everywhere (default inits leave LayerNorm at 1/0 and BN statistics at 0/1)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or ".ln_" in name or name.startswith("ln_") or ".bn" in name or "downsample.1" in name:
                p.add_(torch.randn_like(p) * 0.1)
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn_like(b) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(torch.rand_like(b) + 0.5)
            elif name.endswith("num_batches_tracked"):
                b.fill_(1000)


def text_config(activation="quick_gelu"):
    return {"type": "causal", "vocab_size": VOCAB, "context_length": CONTEXT, "width": TEXT_WIDTH,
            "layers": TEXT_LAYERS, "heads": TEXT_HEADS, "mlp_ratio": 4.0, "activation": activation}


def tokens_and_lengths(generator):
    lengths = [CONTEXT, 2, 7]
    tokens = torch.zeros(len(lengths), CONTEXT, dtype=torch.int64)
    for row, length in enumerate(lengths):
        tokens[row, 0] = VOCAB - 2
        tokens[row, 1:length - 1] = torch.randint(1, VOCAB - 2, (length - 2,), generator=generator)
        tokens[row, length - 1] = VOCAB - 1
    return tokens, torch.tensor(lengths, dtype=torch.int64)


def write_safetensors(path, tensors):
    """The safetensors layout (8-byte header length, JSON header, raw little-endian data), written by hand
    so that regenerating needs nothing beyond python3-torch."""
    names = {torch.float32: "F32", torch.float16: "F16", torch.int64: "I64"}
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        data = t.detach().contiguous().cpu().numpy().tobytes()
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for blob in blobs:
            f.write(blob)


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(20240607)
    generator = torch.Generator().manual_seed(7)
    tokens, lengths = tokens_and_lengths(generator)
    expected = {"text.tokens": tokens, "text.lengths": lengths}

    vit = CLIP(VisionTransformer(input_resolution=32, patch_size=8, width=32, layers=2, heads=4, output_dim=EMBED_DIM))
    rn = CLIP(ModifiedResNet(layers=[1, 1, 1, 1], output_dim=EMBED_DIM, heads=2, input_resolution=64, width=4))
    models = [
        ("tiny-vit", vit, 32, {"type": "vit", "image_size": 32, "channels": 3, "patch_size": 8, "width": 32, "layers": 2,
                               "heads": 4, "mlp_ratio": 4.0, "activation": "quick_gelu"}),
        ("tiny-rn", rn, 64, {"type": "resnet", "image_size": 64, "channels": 3, "width": 4, "resnet_layers": [1, 1, 1, 1],
                             "heads": 2, "pool": "attention"}),
    ]
    for name, model, size, vision in models:
        randomize(model)
        model.eval()
        if name == "tiny-rn":
            # OpenAI publishes float16 weights; the importer widens them. Round here so that PyTorch's
            # reference embeddings are computed from exactly the values the file holds.
            with torch.no_grad():
                for t in list(model.parameters()) + [b for n, b in model.named_buffers() if "running" in n]:
                    t.copy_(t.half().float())
            write_safetensors(os.path.join(OUT, name + ".safetensors"),
                              {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()})
        else:
            torch.save(model.state_dict(), os.path.join(OUT, name + ".pt"))
        images = torch.randn(2, 3, size, size, generator=generator)
        with torch.no_grad():
            expected[name + ".images"] = images
            expected[name + ".image_features"] = model.encode_image(images)
            expected[name + ".text_features"] = model.encode_text(tokens)
        config = {"name": name, "embed_dim": EMBED_DIM, "vision": vision, "text": text_config()}
        with open(os.path.join(OUT, name + ".json"), "w") as f:
            json.dump(config, f, indent=2)
            f.write("\n")
    write_safetensors(os.path.join(OUT, "expected.safetensors"), expected)
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"wrote {OUT} ({total} bytes) with torch {torch.__version__}", file=sys.stderr)


if __name__ == "__main__":
    main()
