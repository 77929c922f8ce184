"""A small LLaMA-architecture model in PyTorch, laid out as the GGUF `llama`
architecture the server runs: RMSNorm, RoPE on adjacent channel pairs (GGUF
convention, so Q/K weights export without permutation), grouped-query
attention, SwiGLU feed-forward, separate input and output embeddings.

The output matrix is not tied to the embedding on purpose: the key's digits
are unpredictable where they first appear, so until the copy circuit exists
every digit's output row is pushed towards the same uniform prediction; tied,
that collapses the digits' input embeddings too, the copied value then carries
no digit identity and the answer loss stays at ln 10."""

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class Config:
    vocab_size: int = 1446
    dim: int = 192
    n_layers: int = 4
    n_heads: int = 6
    n_kv_heads: int = 2
    ffn_dim: int = 512
    context_length: int = 512
    rope_theta: float = 10000.0
    rms_eps: float = 1e-5
    tied: bool = False

    @property
    def head_dim(self):
        return self.dim // self.n_heads

    def to_dict(self):
        return asdict(self)


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(cfg, n):
    """cos, sin of shape [n, head_dim/2]: pair i turns by pos * theta^(-2i/d)."""
    d = cfg.head_dim
    inv = cfg.rope_theta ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    ang = torch.arange(n, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cos(ang).float(), torch.sin(ang).float()


def apply_rope(x, cos, sin):
    """x: [B, H, T, d]; rotates adjacent pairs (x[2i], x[2i+1])."""
    x0, x1 = x[..., 0::2], x[..., 1::2]
    r0 = x0 * cos - x1 * sin
    r1 = x0 * sin + x1 * cos
    return torch.stack((r0, r1), dim=-1).flatten(-2)


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        d, hd = cfg.dim, cfg.head_dim
        self.attn_norm = RMSNorm(d, cfg.rms_eps)
        self.wq = nn.Linear(d, cfg.n_heads * hd, bias=False)
        self.wk = nn.Linear(d, cfg.n_kv_heads * hd, bias=False)
        self.wv = nn.Linear(d, cfg.n_kv_heads * hd, bias=False)
        self.wo = nn.Linear(cfg.n_heads * hd, d, bias=False)
        self.ffn_norm = RMSNorm(d, cfg.rms_eps)
        self.w_gate = nn.Linear(d, cfg.ffn_dim, bias=False)
        self.w_up = nn.Linear(d, cfg.ffn_dim, bias=False)
        self.w_down = nn.Linear(cfg.ffn_dim, d, bias=False)

    def forward(self, x, cos, sin, mask, want_attn=False):
        cfg = self.cfg
        B, T, _ = x.shape
        h = self.attn_norm(x)
        q = self.wq(h).view(B, T, cfg.n_heads, cfg.head_dim).transpose(1, 2)
        k = self.wk(h).view(B, T, cfg.n_kv_heads, cfg.head_dim).transpose(1, 2)
        v = self.wv(h).view(B, T, cfg.n_kv_heads, cfg.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        rep = cfg.n_heads // cfg.n_kv_heads
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        att = F.softmax((q @ k.transpose(-2, -1)) / math.sqrt(cfg.head_dim) + mask, dim=-1)
        out = att @ v
        x = x + self.wo(out.transpose(1, 2).reshape(B, T, -1))
        h = self.ffn_norm(x)
        x = x + self.w_down(F.silu(self.w_gate(h)) * self.w_up(h))
        return (x, att) if want_attn else x


class Llama(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.tok_embd = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.output_norm = RMSNorm(cfg.dim, cfg.rms_eps)
        self.output = None if cfg.tied else nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        cos, sin = rope_tables(cfg, cfg.context_length)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        self.apply(self._init)
        for layer in self.layers:  # GPT-2 style scaled residual projections
            for w in (layer.wo.weight, layer.w_down.weight):
                nn.init.normal_(w, std=0.02 / math.sqrt(2 * cfg.n_layers))

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)

    def forward(self, ids, attn_layer=None):
        """Logits [B, T, vocab]; with attn_layer, also that layer's attention
        probabilities [B, n_heads, T, T]."""
        T = ids.shape[1]
        mask = torch.full((T, T), float("-inf"), device=ids.device).triu(1)
        cos, sin = self.cos[:T], self.sin[:T]
        x = self.tok_embd(ids)
        attn = None
        for i, layer in enumerate(self.layers):
            if i == attn_layer:
                x, attn = layer(x, cos, sin, mask, want_attn=True)
            else:
                x = layer(x, cos, sin, mask)
        out_w = self.tok_embd.weight if self.output is None else self.output.weight
        logits = self.output_norm(x) @ out_w.t()
        return logits if attn_layer is None else (logits, attn)
