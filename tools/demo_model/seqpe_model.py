"""A small GPT-2-style decoder with SeqPE positions (Li et al., 2025), in
PyTorch, laid out as the official SeqPE code's state dicts
(github.com/ghrua/seqpe, text_seqpe; docs/reference/algorithms.md §2), so
tools/seqpe/convert_checkpoint.py turns it into Headroom's SeqPE model
directory (server/model/seqpe/seqpe_loader.h) without renaming anything.

Two modules, exported as two state dicts (as the official accelerate
`save_state` writes them):

  GPT2LMHeadModel (main model):
    transformer.wte.weight            [V, C]
    transformer.h.N.ln_1.{weight,bias}
    transformer.h.N.attn.c_attn.{weight [C, 3C], bias}      Conv1D: [in, out]
    transformer.h.N.attn.c_proj.{weight [C, C], bias}
    transformer.h.N.ln_2.{weight,bias}
    transformer.h.N.mlp.c_fc.{weight [C, 4C], bias}
    transformer.h.N.mlp.c_proj.{weight [4C, C], bias}
    transformer.ln_f.{weight,bias}
    transformer.pe_qk.{weight [2P, P], bias [2P]}           nn.Linear, shared by all layers
    lm_head.weight                    [V, C]                 (equal to wte when tied)
  SequentialPE (position encoder):
    token_of_seqpe_embed.weight [10, E], pos_of_seqpe_embed.weight [D, E],
    cls_token_embed [1, 1, E],
    transformers.N.{layernorm_1, attn.c_attn, attn.c_proj, layernorm_2, mlp.c_fc, mlp.c_proj}
    layernorm.{weight,bias} (final LayerNorm), out_proj.{weight [P, E], bias [P]}

Semantics (eval mode; this model has no dropout):
  PE(p):  the base-10 digits of p left-padded with 0 to D digits;
          x_t = token_of_seqpe_embed[digit_t] + pos_of_seqpe_embed[t]; a learned
          CLS token appended last (no slot embedding); pre-LN GPT-2 blocks
          (LN -> MHA -> residual, LN -> MLP 4E gelu_new -> residual) with a
          causal mask between the D+1 tokens; final LayerNorm; out_proj of the
          CLS row, divided by the temperature (1).
  attn_scalar, qk_proj "single", multi_head:
          [pq(p) | pk(p)] = pe_qk(PE(p)), each P wide, head h uses the slice
          [h·P/H, (h+1)·P/H); in every layer
          logit[h, i, j] = (q_h(i)·k_h(j) + s·pq_h(i)·pk_h(j)) / sqrt(C/H),
          causal softmax. No absolute position embedding (no wpe).

Positions are an explicit argument of forward (default 0..T-1), so a block
can be placed anywhere in [0, 10^D).
"""

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class SeqPeLMConfig:
    vocab_size: int = 1445
    dim: int = 192            # C
    n_layers: int = 4
    n_heads: int = 6
    ffn_dim: int = 768        # 4·C (GPT-2 n_inner = None)
    layer_norm_eps: float = 1e-5
    context_length: int = 256  # trained block size (informational)
    tied: bool = False
    # SeqPE
    pe_embed_dim: int = 128    # E
    pe_heads: int = 4
    pe_layers: int = 2
    max_digits: int = 6        # positions 0 .. 999,999
    pe_out_dim: int = 192      # P (multiple of n_heads)
    pe_final_layernorm: bool = True
    pe_attn_direction: str = "causal"  # or "bi"
    pe_temperature: float = 1.0
    scalar_scale: float = 1.0  # s
    multi_head: bool = True
    pe_max_position: int = 262144  # positions the PE losses and shifts sample from

    @property
    def head_dim(self):
        return self.dim // self.n_heads

    def to_dict(self):
        return asdict(self)


def gelu_new(x):
    return F.gelu(x, approximate="tanh")


class Conv1D(nn.Module):
    """GPT-2's Conv1D: y = x @ weight + bias, weight stored [in, out]."""

    def __init__(self, n_out, n_in):
        super().__init__()
        self.n_out = n_out
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x):
        shape = x.shape[:-1] + (self.n_out,)
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).view(shape)


class Attention(nn.Module):
    def __init__(self, dim, n_heads):
        super().__init__()
        self.n_heads, self.head_dim = n_heads, dim // n_heads
        self.c_attn = Conv1D(3 * dim, dim)
        self.c_proj = Conv1D(dim, dim)

    def forward(self, x, mask, bias=None, want_attn=False):
        """x [B, T, C]; mask additive [T, T]; bias [Hb, T, T] added to q·kᵀ
        before the 1/sqrt(head_dim) scale (the official eager form)."""
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        k = k.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        v = v.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        w = q @ k.transpose(-2, -1)
        if bias is not None:
            w = w + bias
        att = F.softmax(w / math.sqrt(self.head_dim) + mask, dim=-1)
        out = (att @ v).transpose(1, 2).reshape(B, T, C)
        return self.c_proj(out), (att if want_attn else None)


class MLP(nn.Module):
    def __init__(self, dim, ffn_dim):
        super().__init__()
        self.c_fc = Conv1D(ffn_dim, dim)
        self.c_proj = Conv1D(dim, ffn_dim)

    def forward(self, x):
        return self.c_proj(gelu_new(self.c_fc(x)))


class GPT2Block(nn.Module):
    def __init__(self, dim, n_heads, ffn_dim, eps):
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, n_heads)
        self.ln_2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = MLP(dim, ffn_dim)

    def forward(self, x, mask, bias=None, want_attn=False):
        a, att = self.attn(self.ln_1(x), mask, bias, want_attn)
        x = x + a
        x = x + self.mlp(self.ln_2(x))
        return x, att


class SeqPeBlock(nn.Module):
    """SequentialPeBlock: the same pre-LN block, named layernorm_1 / layernorm_2."""

    def __init__(self, dim, n_heads, eps):
        super().__init__()
        self.layernorm_1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, n_heads)
        self.layernorm_2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = MLP(dim, 4 * dim)

    def forward(self, x, mask):
        x = x + self.attn(self.layernorm_1(x), mask)[0]
        return x + self.mlp(self.layernorm_2(x))


def position_digits(positions, max_digits):
    """[N] int64 positions -> [N, max_digits] base-10 digits, most significant
    first, left-padded with 0 (42 -> 0,0,0,0,4,2 for 6 digits)."""
    positions = positions.to(torch.long)
    if positions.numel() and (int(positions.min()) < 0 or int(positions.max()) >= 10 ** max_digits):
        raise ValueError("positions must be in [0, 10^%d)" % max_digits)
    powers = 10 ** torch.arange(max_digits - 1, -1, -1, dtype=torch.long, device=positions.device)
    return (positions[:, None] // powers[None, :]) % 10


class SequentialPE(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        E, D = cfg.pe_embed_dim, cfg.max_digits
        self.cfg = cfg
        self.pos_of_seqpe_embed = nn.Embedding(D, E)
        self.token_of_seqpe_embed = nn.Embedding(10, E)
        self.cls_token_embed = nn.Parameter(torch.zeros(1, 1, E))
        self.transformers = nn.ModuleList(
            SeqPeBlock(E, cfg.pe_heads, cfg.layer_norm_eps) for _ in range(cfg.pe_layers))
        self.layernorm = nn.LayerNorm(E, eps=cfg.layer_norm_eps) if cfg.pe_final_layernorm else None
        self.out_proj = nn.Linear(E, cfg.pe_out_dim)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
                if isinstance(m, nn.Linear):
                    nn.init.zeros_(m.bias)
        nn.init.normal_(self.cls_token_embed, std=0.02)
        T = D + 1
        if cfg.pe_attn_direction == "causal":
            mask = torch.full((T, T), float("-inf")).triu(1)
        elif cfg.pe_attn_direction == "bi":
            mask = torch.zeros(T, T)
        else:
            raise ValueError(cfg.pe_attn_direction)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, positions):
        """PE(p) [N, P] for int64 positions [N]."""
        digits = position_digits(positions, self.cfg.max_digits)
        N = digits.shape[0]
        x = self.token_of_seqpe_embed(digits) + self.pos_of_seqpe_embed.weight[None]
        x = torch.cat([x, self.cls_token_embed.expand(N, 1, -1)], dim=1)
        for block in self.transformers:
            x = block(x, self.mask)
        x = x[:, -1]
        if self.layernorm is not None:
            x = self.layernorm(x)
        return self.out_proj(x) * (1.0 / self.cfg.pe_temperature)


class GPT2Model(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.wte = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.h = nn.ModuleList(GPT2Block(cfg.dim, cfg.n_heads, cfg.ffn_dim, cfg.layer_norm_eps)
                               for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.dim, eps=cfg.layer_norm_eps)
        self.pe_qk = nn.Linear(cfg.pe_out_dim, 2 * cfg.pe_out_dim)


class GPT2LMHeadModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.transformer = GPT2Model(cfg)
        self.lm_head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)


class SeqPeLM(nn.Module):
    """The main model and its position encoder. `gpt2.state_dict()` and
    `seqpe.state_dict()` are the official layout's two state dicts."""

    def __init__(self, cfg):
        super().__init__()
        if cfg.pe_out_dim % cfg.n_heads and cfg.multi_head:
            raise ValueError("pe_out_dim must be a multiple of n_heads")
        if cfg.dim % cfg.n_heads or cfg.pe_embed_dim % cfg.pe_heads:
            raise ValueError("heads must divide the widths")
        self.cfg = cfg
        self.gpt2 = GPT2LMHeadModel(cfg)
        self.seqpe = SequentialPE(cfg)
        # GPT-2 init: N(0, 0.02), zero biases, LayerNorm (1, 0); residual
        # projections scaled by 1/sqrt(2·n_layers).
        for m in self.gpt2.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
                if isinstance(m, nn.Linear) and m.bias is not None:
                    nn.init.zeros_(m.bias)
        for block in self.gpt2.transformer.h:
            for w in (block.attn.c_proj.weight, block.mlp.c_proj.weight):
                nn.init.normal_(w, std=0.02 / math.sqrt(2 * cfg.n_layers))
        if cfg.tied:
            self.gpt2.lm_head.weight = self.gpt2.transformer.wte.weight

    def pe(self, positions):
        return self.seqpe(positions)

    def pq_pk(self, pe):
        """pe [N, P] -> pq, pk [Hb, N, P/Hb] (Hb = n_heads with multi_head, else 1)."""
        r = self.gpt2.transformer.pe_qk(pe)
        hb = self.cfg.n_heads if self.cfg.multi_head else 1
        r = r.view(pe.shape[0], 2, hb, -1).permute(1, 2, 0, 3)
        return r[0], r[1]

    def attn_bias(self, positions=None, pe=None):
        """[Hb, N, N] = s·pq_h(i)·pk_h(j), added to q·kᵀ before 1/sqrt(head_dim)."""
        if pe is None:
            pe = self.pe(positions)
        pq, pk = self.pq_pk(pe)
        return self.cfg.scalar_scale * (pq @ pk.transpose(-2, -1))

    def forward(self, ids, positions=None, attn_layer=None, pe=None):
        """Logits [B, T, V] for ids [B, T] at `positions` [T] (default 0..T-1;
        all rows share them). With attn_layer, also that layer's attention
        probabilities [B, H, T, T]. `pe` [T, P] may be passed when already
        computed for these positions."""
        T = ids.shape[1]
        if positions is None:
            positions = torch.arange(T, device=ids.device)
        bias = self.attn_bias(positions, pe)
        mask = torch.full((T, T), float("-inf"), device=ids.device).triu(1)
        x = self.gpt2.transformer.wte(ids)
        attn = None
        for i, block in enumerate(self.gpt2.transformer.h):
            x, a = block(x, mask, bias, want_attn=(i == attn_layer))
            if a is not None:
                attn = a
        logits = self.gpt2.lm_head(self.gpt2.transformer.ln_f(x))
        return logits if attn_layer is None else (logits, attn)

    # ------------------------------------------------------------ export
    def official_state_dicts(self):
        """(main, encoder) state dicts in the official layout, float32 CPU."""
        main = {k: v.detach().float().cpu().clone() for k, v in self.gpt2.state_dict().items()}
        enc = {k: v.detach().float().cpu().clone() for k, v in self.seqpe.state_dict().items()}
        return main, enc

    def hf_config(self):
        """The official config.json: a Hugging Face GPT-2 config with the
        "pe_config" object (yacs keys) the official train.py stores."""
        c = self.cfg
        return {
            "architectures": ["GPT2LMHeadModel"],
            "model_type": "gpt2",
            "activation_function": "gelu_new",
            "vocab_size": c.vocab_size,
            "n_embd": c.dim,
            "n_layer": c.n_layers,
            "n_head": c.n_heads,
            "n_inner": c.ffn_dim if c.ffn_dim != 4 * c.dim else None,
            "n_positions": c.context_length,
            "n_ctx": c.context_length,
            "layer_norm_epsilon": c.layer_norm_eps,
            "scale_attn_weights": True,
            "scale_attn_by_inverse_layer_idx": False,
            "tie_word_embeddings": c.tied,
            "attn_pdrop": 0.0, "embd_pdrop": 0.0, "resid_pdrop": 0.0,
            "bos_token_id": 1, "eos_token_id": 2,
            "pe_config": self.pe_config(),
        }

    def pe_config(self):
        c = self.cfg
        return {
            "PE_TYPE": "seq_pe",
            "PE_DATA_DIM": 1,
            "PE_APPLY_METHOD": "attn_scalar",
            "USE_PE_QK_PER_LAYER": "single",
            "USE_PE_MULTI_HEAD": c.multi_head,
            "SEQPE_SCALAR_SCALE": c.scalar_scale,
            "PE_EMBED_DIM": c.pe_embed_dim,
            "PE_OUT_PROJ_DIM": c.pe_out_dim,
            "NUM_ATTENTION_HEADS": c.pe_heads,
            "SEQPE_LAYER_NUM": c.pe_layers,
            "SEQPE_MAX_DIGITS": c.max_digits,
            "PE_MAX_POSITION": c.pe_max_position,
            "SEQPE_ATTN_DIRECTION": c.pe_attn_direction,
            "SEQPE_MASK_PADDING": False,
            "SEQPE_LAST_LAYERNORM": c.pe_final_layernorm,
            "SEQPE_TEMPERATURE": c.pe_temperature,
            "SEQPE_ACTIVATION_FUNCTION": "gelu_new",
            "SEQPE_SCALE_ATTN_WEIGHTS": True,
            "SEQPE_ADD_OUT_PROJ": True,
            "SEQPE_ATTN_PDROP": 0.0,
            "SEQPE_RESID_PDROP": 0.0,
        }
