#!/usr/bin/python3
"""Writes the T5 parity fixtures: tests/fixtures/t5_<case>.json (a Hugging Face style config.json) and
tests/fixtures/t5_<case>.safetensors holding, for a tiny random T5 built here in PyTorch after Hugging Face's
modeling_t5.py (same module tree, same parameter names, same masks and position-bias sharing):

  param/<name>      the weights (float32 values, so float32 and float64 runs start from the same numbers)
  tangent/<name>    random tangents for the JVP (float32 values)
  input_ids, attention_mask, labels [, decoder_attention_mask]     int64, with padding
  f64/encoder_hidden, f64/logits, f64/loss, f64/jvp_logits, f64/grad/<name>    float64 run
  f32/...                                                                       float32 run

Cases: gated_gelu_untied (T5 v1.1 / Flan-T5: gated-gelu, untied lm_head, labels padded with -100, no decoder
mask) and relu_tied (T5 v1.0: relu, tied embeddings with the d_model^-0.5 rescaling, 3 decoder blocks for 2
encoder blocks, labels padded with the pad id, an explicit decoder_attention_mask).

There is no `transformers` package here: the model below is written from Hugging Face's modeling_t5.py
(T5LayerNorm, T5DenseActDense, T5DenseGatedActDense, T5Attention with compute_bias, T5Stack's extended masks
filled with finfo.min). Two deliberate differences, both no-ops for a float32 model: T5LayerNorm's variance and
the attention softmax are computed in the model's dtype (HF upcasts them to float32, which would cap a float64
run at float32 accuracy).

Run: /usr/bin/python3 tools/make_t5_fixtures.py
"""
import json
import math
import os
import sys

import functorch
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.stateless import functional_call

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import safetensors_io  # noqa: E402  (the fixture scripts' safetensors writer)

OUT = os.path.join(HERE, "..", "tests", "fixtures")


class Config:
    def __init__(self, **kw):
        # Hugging Face's T5Config defaults
        self.vocab_size, self.d_model, self.d_kv, self.d_ff = 32128, 512, 64, 2048
        self.num_layers, self.num_decoder_layers, self.num_heads = 6, None, 8
        self.relative_attention_num_buckets, self.relative_attention_max_distance = 32, 128
        self.dropout_rate, self.layer_norm_epsilon, self.initializer_factor = 0.1, 1e-6, 1.0
        self.feed_forward_proj, self.tie_word_embeddings = "relu", True
        self.pad_token_id, self.eos_token_id, self.decoder_start_token_id = 0, 1, 0
        self.__dict__.update(kw)
        if self.num_decoder_layers is None:
            self.num_decoder_layers = self.num_layers
        act = self.feed_forward_proj.split("-")
        self.is_gated_act = act[0] == "gated"
        self.dense_act_fn = "gelu_new" if self.feed_forward_proj == "gated-gelu" else act[-1]


ACT = {"gelu_new": lambda x: F.gelu(x, approximate="tanh"), "relu": F.relu, "gelu": F.gelu}


class T5LayerNorm(nn.Module):
    def __init__(self, hidden_size, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states):
        variance = hidden_states.pow(2).mean(-1, keepdim=True)   # HF: in float32; here in the model dtype
        return self.weight * (hidden_states * torch.rsqrt(variance + self.variance_epsilon))


class T5DenseActDense(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.wi = nn.Linear(c.d_model, c.d_ff, bias=False)
        self.wo = nn.Linear(c.d_ff, c.d_model, bias=False)
        self.dropout = nn.Dropout(c.dropout_rate)
        self.act = ACT[c.dense_act_fn]

    def forward(self, h):
        return self.wo(self.dropout(self.act(self.wi(h))))


class T5DenseGatedActDense(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.wi_0 = nn.Linear(c.d_model, c.d_ff, bias=False)
        self.wi_1 = nn.Linear(c.d_model, c.d_ff, bias=False)
        self.wo = nn.Linear(c.d_ff, c.d_model, bias=False)
        self.dropout = nn.Dropout(c.dropout_rate)
        self.act = ACT[c.dense_act_fn]

    def forward(self, h):
        return self.wo(self.dropout(self.act(self.wi_0(h)) * self.wi_1(h)))


class T5LayerFF(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.DenseReluDense = T5DenseGatedActDense(c) if c.is_gated_act else T5DenseActDense(c)
        self.layer_norm = T5LayerNorm(c.d_model, c.layer_norm_epsilon)
        self.dropout = nn.Dropout(c.dropout_rate)

    def forward(self, h):
        return h + self.dropout(self.DenseReluDense(self.layer_norm(h)))


def relative_position_bucket(relative_position, bidirectional, num_buckets, max_distance):
    relative_buckets = 0
    if bidirectional:
        num_buckets //= 2
        relative_buckets += (relative_position > 0).to(torch.long) * num_buckets
        relative_position = torch.abs(relative_position)
    else:
        relative_position = -torch.min(relative_position, torch.zeros_like(relative_position))
    max_exact = num_buckets // 2
    is_small = relative_position < max_exact
    if_large = max_exact + (
        torch.log(relative_position.float() / max_exact) / math.log(max_distance / max_exact) * (num_buckets - max_exact)
    ).to(torch.long)
    if_large = torch.min(if_large, torch.full_like(if_large, num_buckets - 1))
    return relative_buckets + torch.where(is_small, relative_position, if_large)


class T5Attention(nn.Module):
    def __init__(self, c, is_decoder, has_relative_attention_bias):
        super().__init__()
        self.is_decoder, self.has_relative_attention_bias = is_decoder, has_relative_attention_bias
        self.num_buckets, self.max_distance = c.relative_attention_num_buckets, c.relative_attention_max_distance
        self.n_heads, self.key_value_proj_dim = c.num_heads, c.d_kv
        self.inner_dim = c.num_heads * c.d_kv
        self.dropout = c.dropout_rate
        self.q = nn.Linear(c.d_model, self.inner_dim, bias=False)
        self.k = nn.Linear(c.d_model, self.inner_dim, bias=False)
        self.v = nn.Linear(c.d_model, self.inner_dim, bias=False)
        self.o = nn.Linear(self.inner_dim, c.d_model, bias=False)
        if has_relative_attention_bias:
            self.relative_attention_bias = nn.Embedding(self.num_buckets, self.n_heads)

    def compute_bias(self, query_length, key_length):
        context = torch.arange(query_length, dtype=torch.long)[:, None]
        memory = torch.arange(key_length, dtype=torch.long)[None, :]
        buckets = relative_position_bucket(memory - context, not self.is_decoder, self.num_buckets, self.max_distance)
        values = self.relative_attention_bias(buckets)   # (q, k, H)
        return values.permute([2, 0, 1]).unsqueeze(0)    # (1, H, q, k)

    def forward(self, hidden_states, mask=None, key_value_states=None, position_bias=None):
        batch_size, seq_length = hidden_states.shape[:2]
        key_length = seq_length if key_value_states is None else key_value_states.shape[1]
        shape = lambda s: s.view(batch_size, -1, self.n_heads, self.key_value_proj_dim).transpose(1, 2)
        unshape = lambda s: s.transpose(1, 2).contiguous().view(batch_size, -1, self.inner_dim)
        source = hidden_states if key_value_states is None else key_value_states
        query_states, key_states, value_states = shape(self.q(hidden_states)), shape(self.k(source)), shape(self.v(source))
        scores = torch.matmul(query_states, key_states.transpose(3, 2))
        if position_bias is None:
            if not self.has_relative_attention_bias:
                position_bias = torch.zeros((1, self.n_heads, seq_length, key_length), dtype=scores.dtype)
            else:
                position_bias = self.compute_bias(seq_length, key_length)
            if mask is not None:
                position_bias = position_bias + mask
        scores = scores + position_bias
        attn_weights = F.softmax(scores, dim=-1)   # HF: softmax(scores.float()).type_as(scores)
        attn_weights = F.dropout(attn_weights, p=self.dropout, training=self.training)
        return self.o(unshape(torch.matmul(attn_weights, value_states))), position_bias


class T5LayerSelfAttention(nn.Module):
    def __init__(self, c, is_decoder, has_relative_attention_bias):
        super().__init__()
        self.SelfAttention = T5Attention(c, is_decoder, has_relative_attention_bias)
        self.layer_norm = T5LayerNorm(c.d_model, c.layer_norm_epsilon)
        self.dropout = nn.Dropout(c.dropout_rate)

    def forward(self, h, attention_mask, position_bias):
        out, position_bias = self.SelfAttention(self.layer_norm(h), mask=attention_mask, position_bias=position_bias)
        return h + self.dropout(out), position_bias


class T5LayerCrossAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.EncDecAttention = T5Attention(c, True, False)
        self.layer_norm = T5LayerNorm(c.d_model, c.layer_norm_epsilon)
        self.dropout = nn.Dropout(c.dropout_rate)

    def forward(self, h, key_value_states, attention_mask, position_bias):
        out, position_bias = self.EncDecAttention(self.layer_norm(h), mask=attention_mask,
                                                  key_value_states=key_value_states, position_bias=position_bias)
        return h + self.dropout(out), position_bias


class T5Block(nn.Module):
    def __init__(self, c, is_decoder, has_relative_attention_bias):
        super().__init__()
        self.is_decoder = is_decoder
        self.layer = nn.ModuleList([T5LayerSelfAttention(c, is_decoder, has_relative_attention_bias)])
        if is_decoder:
            self.layer.append(T5LayerCrossAttention(c))
        self.layer.append(T5LayerFF(c))

    def forward(self, h, attention_mask, position_bias, encoder_hidden_states, encoder_attention_mask,
                encoder_decoder_position_bias):
        h, position_bias = self.layer[0](h, attention_mask, position_bias)
        if self.is_decoder:
            h, encoder_decoder_position_bias = self.layer[1](h, encoder_hidden_states, encoder_attention_mask,
                                                             encoder_decoder_position_bias)
        return self.layer[-1](h), position_bias, encoder_decoder_position_bias


class T5Stack(nn.Module):
    def __init__(self, c, embed_tokens, is_decoder):
        super().__init__()
        self.embed_tokens, self.is_decoder = embed_tokens, is_decoder
        n = c.num_decoder_layers if is_decoder else c.num_layers
        self.block = nn.ModuleList([T5Block(c, is_decoder, i == 0) for i in range(n)])
        self.final_layer_norm = T5LayerNorm(c.d_model, c.layer_norm_epsilon)
        self.dropout = nn.Dropout(c.dropout_rate)

    def forward(self, input_ids, attention_mask=None, encoder_hidden_states=None, encoder_attention_mask=None):
        batch_size, seq_length = input_ids.shape
        inputs_embeds = self.embed_tokens(input_ids)
        dtype = inputs_embeds.dtype
        if attention_mask is None:
            attention_mask = torch.ones(batch_size, seq_length)
        # modeling_utils.get_extended_attention_mask
        if self.is_decoder:
            seq_ids = torch.arange(seq_length)
            causal = seq_ids[None, None, :].repeat(batch_size, seq_length, 1) <= seq_ids[None, :, None]
            extended = causal[:, None, :, :].to(dtype) * attention_mask[:, None, None, :].to(dtype)
        else:
            extended = attention_mask[:, None, None, :].to(dtype)
        extended = (1.0 - extended) * torch.finfo(dtype).min
        encoder_extended = None
        if self.is_decoder:
            if encoder_attention_mask is None:
                encoder_attention_mask = torch.ones(encoder_hidden_states.shape[:2])
            encoder_extended = (1.0 - encoder_attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min
        position_bias = encoder_decoder_position_bias = None
        h = self.dropout(inputs_embeds)
        for block in self.block:
            h, position_bias, encoder_decoder_position_bias = block(
                h, extended, position_bias, encoder_hidden_states, encoder_extended, encoder_decoder_position_bias)
        return self.dropout(self.final_layer_norm(h))


class T5ForConditionalGeneration(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.config, self.model_dim = c, c.d_model
        self.shared = nn.Embedding(c.vocab_size, c.d_model)
        self.encoder = T5Stack(c, self.shared, False)
        self.decoder = T5Stack(c, self.shared, True)
        if not c.tie_word_embeddings:
            self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)

    def _shift_right(self, labels):
        shifted = labels.new_zeros(labels.shape)
        shifted[..., 1:] = labels[..., :-1].clone()
        shifted[..., 0] = self.config.decoder_start_token_id
        return shifted.masked_fill(shifted == -100, self.config.pad_token_id)

    def forward(self, input_ids, attention_mask, labels, decoder_attention_mask=None):
        hidden = self.encoder(input_ids, attention_mask)
        seq = self.decoder(self._shift_right(labels), decoder_attention_mask, hidden, attention_mask)
        if self.config.tie_word_embeddings:
            # HF: lm_head(seq * d_model^-0.5) with lm_head.weight tied to shared.weight
            logits = F.linear(seq * (self.model_dim ** -0.5), self.shared.weight)
        else:
            logits = self.lm_head(seq)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=-100)
        return hidden, logits, loss


def init_weights(model, c, gen):
    """HF's T5PreTrainedModel._init_weights, then T5LayerNorm weights perturbed (1 + 0.2 N(0,1)) so that
    the norms' gradients and scales are exercised. Values are rounded to float32."""
    f = c.initializer_factor
    normal = lambda p, std: p.data.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * std)
    normal(model.shared.weight, f)
    if not c.tie_word_embeddings:
        normal(model.lm_head.weight, f)
    for m in model.modules():
        if isinstance(m, T5LayerNorm):
            m.weight.data.copy_(f * (1 + 0.2 * torch.randn(m.weight.shape, generator=gen, dtype=torch.float64)))
        elif isinstance(m, T5DenseActDense):
            normal(m.wi.weight, f * c.d_model ** -0.5)
            normal(m.wo.weight, f * c.d_ff ** -0.5)
        elif isinstance(m, T5DenseGatedActDense):
            normal(m.wi_0.weight, f * c.d_model ** -0.5)
            normal(m.wi_1.weight, f * c.d_model ** -0.5)
            normal(m.wo.weight, f * c.d_ff ** -0.5)
        elif isinstance(m, T5Attention):
            normal(m.q.weight, f * (c.d_model * c.d_kv) ** -0.5)
            normal(m.k.weight, f * c.d_model ** -0.5)
            normal(m.v.weight, f * c.d_model ** -0.5)
            normal(m.o.weight, f * (c.num_heads * c.d_kv) ** -0.5)
            if m.has_relative_attention_bias:
                normal(m.relative_attention_bias.weight, f * c.d_model ** -0.5)
    for p in model.parameters():
        p.data.copy_(p.data.float().double())


def make_case(name, config_json, labels_pad_with_pad_id, use_decoder_mask, seed):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    c = Config(**{k: v for k, v in config_json.items() if k not in ("architectures", "model_type")})
    model = T5ForConditionalGeneration(c).double().eval()
    init_weights(model, c, gen)
    names = [n for n, _ in model.named_parameters()]   # shared once: HF's embed_tokens aliases are the same module

    # Inputs: B=3 examples of lengths 7, 5, 3 (tokens + eos, then pad 0); targets of lengths 6, 4, 2.
    B, S, T = 3, 7, 6
    input_ids = torch.zeros(B, S, dtype=torch.long)
    attention_mask = torch.zeros(B, S, dtype=torch.long)
    labels = torch.full((B, T), -100, dtype=torch.long)
    decoder_attention_mask = torch.zeros(B, T, dtype=torch.long)
    for b, (n_in, n_out) in enumerate([(7, 6), (5, 4), (3, 2)]):
        input_ids[b, : n_in - 1] = torch.randint(2, c.vocab_size, (n_in - 1,), generator=gen)
        input_ids[b, n_in - 1] = c.eos_token_id
        attention_mask[b, :n_in] = 1
        labels[b, : n_out - 1] = torch.randint(2, c.vocab_size, (n_out - 1,), generator=gen)
        labels[b, n_out - 1] = c.eos_token_id
        decoder_attention_mask[b, :n_out] = 1   # the start token and the n_out - 1 label tokens fed back
    stored_labels = labels.masked_fill(labels == -100, c.pad_token_id) if labels_pad_with_pad_id else labels
    dec_mask = decoder_attention_mask if use_decoder_mask else None

    tensors = {}
    for n, p in model.named_parameters():
        tensors["param/" + n] = p.detach().float()
    tangents = {n: torch.randn(p.shape, generator=gen, dtype=torch.float64).float().double()
                for n, p in model.named_parameters()}
    for n in names:
        tensors["tangent/" + n] = tangents[n].float()
    tensors["input_ids"], tensors["attention_mask"], tensors["labels"] = input_ids, attention_mask, stored_labels
    if use_decoder_mask:
        tensors["decoder_attention_mask"] = decoder_attention_mask

    for tag, dtype in (("f64", torch.float64), ("f32", torch.float32)):
        m = T5ForConditionalGeneration(c).to(dtype).eval()
        m.load_state_dict({n: p.detach().to(dtype) for n, p in model.state_dict().items()})
        params = dict(m.named_parameters())
        hidden, logits, loss = m(input_ids, attention_mask, labels, dec_mask)
        grads = torch.autograd.grad(loss, [params[n] for n in names])

        def logits_of(*ps):
            return functional_call(m, dict(zip(names, ps)), (input_ids, attention_mask, labels, dec_mask))[1]

        primals = tuple(params[n].detach() for n in names)
        out, jvp_logits = functorch.jvp(logits_of, primals, tuple(tangents[n].to(dtype) for n in names))
        assert torch.equal(out, logits.detach()), "functional_call must see the same (tied) weights"
        tensors[tag + "/encoder_hidden"] = hidden
        tensors[tag + "/logits"] = logits
        tensors[tag + "/loss"] = loss.reshape(())
        tensors[tag + "/jvp_logits"] = jvp_logits
        for n, g in zip(names, grads):
            tensors[tag + "/grad/" + n] = g
        print(f"{name} {tag}: loss {loss.item():.10f}, {len(names)} parameters, "
              f"{sum(p.numel() for p in params.values())} weights")

    with open(os.path.join(OUT, f"t5_{name}.json"), "w") as out:
        json.dump(config_json, out, indent=2)
        out.write("\n")
    safetensors_io.save_file(tensors, os.path.join(OUT, f"t5_{name}.safetensors"))


COMMON = dict(vocab_size=32, d_model=16, d_kv=4, num_heads=3, d_ff=24, num_layers=2,
              relative_attention_num_buckets=8, relative_attention_max_distance=16,
              dropout_rate=0.1, layer_norm_epsilon=1e-6, initializer_factor=1.0,
              pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)

if __name__ == "__main__":
    # num_heads * d_kv = 12 != d_model = 16, as T5 allows. 8 buckets / distance 16 over 7 encoder and 6
    # decoder positions use exact and log-spaced buckets in both directions.
    make_case("gated_gelu_untied",
              dict(architectures=["T5ForConditionalGeneration"], model_type="t5", **COMMON,
                   num_decoder_layers=None, feed_forward_proj="gated-gelu", tie_word_embeddings=False),
              labels_pad_with_pad_id=False, use_decoder_mask=False, seed=20240501)
    make_case("relu_tied",
              dict(model_type="t5", **COMMON, num_decoder_layers=3, feed_forward_proj="relu",
                   tie_word_embeddings=True),
              labels_pad_with_pad_id=True, use_decoder_mask=True, seed=20240502)
