"""Write a tiny random-weight llama GGUF for fast tests.

usage: python make_tiny_gguf.py OUT.gguf [--seed N] [--template chatml|llama3|gemma|mistral|custom|qwen2.5|llama3.2|none] [--dump]

2 layers, 64-dim embeddings, 4 heads / 2 KV heads (GQA), 128-wide FFN, 512 context, all F32; a
SentencePiece-style ("llama") vocab of 1173: <unk>/<s>/</s>, the ChatML control tokens, all 256
byte tokens and ~900 prefix-closed word pieces, so common words tokenize to one token each
("Hello there" -> "\u2581Hello", "\u2581there") and anything else falls back to letters, then bytes;
the ChatML chat template. Deterministic: the same seed gives a byte-identical file (~0.9 MB).
The file is read back with gguf's reader and checked against the shapes llama.cpp's llama
loader wants before it replaces OUT. The text it generates is noise; tests use it for
plumbing, not quality.
"""

import argparse
import hashlib
import os

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, GGUFWriter, TokenType

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Hugging Face chat templates of the common families, as their tokenizer_config.json ship them;
# "custom" is one llama.cpp does not recognise (rendered with minijinja), "none" writes no template.
TEMPLATES = {
    "chatml": CHATML,
    "llama3": (
        "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + "
        "'<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}"
        "{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
    ),
    "gemma": (
        "{{ bos_token }}{% for message in messages %}{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
        "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
    ),
    "mistral": (
        "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
        "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}{% endif %}{% endfor %}"
    ),
    "custom": "{% for m in messages %}### {{ m['role'] | upper }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}### ASSISTANT:{% endif %}",
    "none": None,
}

# Real tool-capable templates, as the models ship them (the copies the template tests compare
# with Python's jinja2): Qwen 2.5's `<tool_call>` format and Llama 3.2's JSON one.
_REAL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "crates", "local", "tests", "templates")
for _name, _file in [("qwen2.5", "Qwen-Qwen2.5-7B-Instruct.jinja"), ("llama3.2", "meta-llama-Llama-3.2-3B-Instruct.jinja")]:
    with open(os.path.join(_REAL, _file), encoding="utf-8") as _f:
        TEMPLATES[_name] = _f.read()

N_EMBD, N_HEAD, N_HEAD_KV, N_FF, N_LAYER, N_CTX = 64, 4, 2, 128, 2, 512

WORDS = (
    "the a an and or of to in on for with is are was be it that this you I we they he she "
    "hello hi there yes no not can will what how why when where who which answer question "
    "model local cloud open AI chat help please thank thanks good bad fast slow down back up "
    "time day one two three four five six seven eight nine ten first last next new old "
    "write read code file text word line test run build make go stop start end do does did "
    "have has had more less some any all many much very just also only then than so but if "
    "as at by from into out over under about after before again here now most other "
    "such own same few each both between through during without within along across "
    "user assistant system tell me my your keep brief terse count number list sure "
    "Hello Hi The What How Why When Where Who Yes No Be Keep You It This That List Sure Q A"
).split()


def pieces():
    """Word pieces, prefix-closed: every prefix of "\u2581word" and of "word" is a piece.

    llama.cpp's SPM tokenizer merges adjacent symbols whose concatenation is a token, best score
    first. With every prefix present the leftmost piece of a word can always absorb its
    neighbour, so each listed word (after a space, or at the start of a line) ends as one token
    whatever order the merges run in; other text falls back to letters, then to byte tokens.
    """
    out = ["\u2581"]
    out += [chr(c) for c in range(ord("a"), ord("z") + 1)]
    out += [chr(c) for c in range(ord("A"), ord("Z") + 1)]
    out += list("0123456789.,!?:;'\"-()")
    for w in WORDS:
        out += ["\u2581" + w[:k] for k in range(1, len(w) + 1)]
    for w in WORDS:
        out += [w[:k] for k in range(1, len(w) + 1)]
    return list(dict.fromkeys(out))  # first occurrence wins, order stays deterministic


def vocab():
    tokens, scores, types = [], [], []

    def add(text, score, kind):
        tokens.append(text.encode("utf-8"))
        scores.append(score)
        types.append(kind)

    add("<unk>", 0.0, TokenType.UNKNOWN)
    add("<s>", 0.0, TokenType.CONTROL)
    add("</s>", 0.0, TokenType.CONTROL)
    add("<|im_start|>", 0.0, TokenType.CONTROL)
    add("<|im_end|>", 0.0, TokenType.CONTROL)
    for b in range(256):
        add(f"<0x{b:02X}>", 0.0, TokenType.BYTE)
    for i, p in enumerate(pieces()):
        # Log-probability-like scores, all below the specials; longer pieces merge first.
        add(p, -1000.0 + len(p) * 10.0 - i * 0.001, TokenType.NORMAL)
    return tokens, scores, types


def expected_tensors(n_vocab):
    """Each tensor as llama.cpp's llama loader wants it: name -> ggml ne (numpy shape reversed)."""
    n_embd_kv = N_EMBD // N_HEAD * N_HEAD_KV
    want = {"token_embd.weight": [N_EMBD, n_vocab]}
    for i in range(N_LAYER):
        want[f"blk.{i}.attn_norm.weight"] = [N_EMBD]
        want[f"blk.{i}.attn_q.weight"] = [N_EMBD, N_EMBD]
        want[f"blk.{i}.attn_k.weight"] = [N_EMBD, n_embd_kv]
        want[f"blk.{i}.attn_v.weight"] = [N_EMBD, n_embd_kv]
        want[f"blk.{i}.attn_output.weight"] = [N_EMBD, N_EMBD]
        want[f"blk.{i}.ffn_norm.weight"] = [N_EMBD]
        want[f"blk.{i}.ffn_gate.weight"] = [N_EMBD, N_FF]
        want[f"blk.{i}.ffn_up.weight"] = [N_EMBD, N_FF]
        want[f"blk.{i}.ffn_down.weight"] = [N_FF, N_EMBD]
    want["output_norm.weight"] = [N_EMBD]
    want["output.weight"] = [N_EMBD, n_vocab]
    return want


def check(path, n_vocab, dump):
    """Reads the file back with gguf's own reader and fails on anything llama.cpp would refuse."""
    r = GGUFReader(path)

    def val(key):
        f = r.fields[key]
        return f.contents() if hasattr(f, "contents") else f.parts[f.data[0]].tolist()

    assert val("general.architecture") == "llama", val("general.architecture")
    hp = {
        "llama.block_count": N_LAYER, "llama.context_length": N_CTX, "llama.embedding_length": N_EMBD,
        "llama.feed_forward_length": N_FF, "llama.attention.head_count": N_HEAD,
        "llama.attention.head_count_kv": N_HEAD_KV, "llama.rope.dimension_count": N_EMBD // N_HEAD,
    }
    for key, want in hp.items():
        assert val(key) == want, (key, val(key), want)
    assert len(r.fields["tokenizer.ggml.tokens"].data) == n_vocab
    assert len(r.fields["tokenizer.ggml.scores"].data) == n_vocab
    assert len(r.fields["tokenizer.ggml.token_type"].data) == n_vocab
    got = {t.name: [int(n) for n in t.shape] for t in r.tensors}
    assert got == expected_tensors(n_vocab), got
    assert all(t.tensor_type == GGMLQuantizationType.F32 for t in r.tensors)
    if dump:
        for key, f in r.fields.items():
            v = val(key)
            if isinstance(v, list) and len(v) > 8:
                v = f"[{len(v)} items] {v[:8]}..."
            print(f"kv  {key} = {v!r}")
        for t in r.tensors:
            print(f"tensor  {t.name:28} ne={[int(n) for n in t.shape]} {t.tensor_type.name}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--template", choices=sorted(TEMPLATES), default="chatml")
    ap.add_argument("--dump", action="store_true", help="print the metadata and tensors read back")
    args = ap.parse_args()

    tokens, scores, types = vocab()
    n_vocab = len(tokens)
    rng = np.random.default_rng(args.seed)

    def rand(*shape):  # numpy (rows, cols) = ggml ne [cols, rows]
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    # Per-process temp name: parallel tests may make the same fixture at once.
    tmp = f"{args.out}.{os.getpid()}.tmp"
    w = GGUFWriter(tmp, "llama")
    w.add_name("understudy-tiny")
    w.add_context_length(N_CTX)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD_KV)
    w.add_rope_dimension_count(N_EMBD // N_HEAD)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(0)  # all F32
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(4)  # <|im_end|> ends a ChatML turn
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    if TEMPLATES[args.template] is not None:
        w.add_chat_template(TEMPLATES[args.template])

    n_embd_kv = N_EMBD // N_HEAD * N_HEAD_KV
    w.add_tensor("token_embd.weight", rand(n_vocab, N_EMBD))
    for i in range(N_LAYER):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        w.add_tensor(f"blk.{i}.attn_q.weight", rand(N_EMBD, N_EMBD))
        w.add_tensor(f"blk.{i}.attn_k.weight", rand(n_embd_kv, N_EMBD))
        w.add_tensor(f"blk.{i}.attn_v.weight", rand(n_embd_kv, N_EMBD))
        w.add_tensor(f"blk.{i}.attn_output.weight", rand(N_EMBD, N_EMBD))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        w.add_tensor(f"blk.{i}.ffn_gate.weight", rand(N_FF, N_EMBD))
        w.add_tensor(f"blk.{i}.ffn_up.weight", rand(N_FF, N_EMBD))
        w.add_tensor(f"blk.{i}.ffn_down.weight", rand(N_EMBD, N_FF))
    w.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    w.add_tensor("output.weight", rand(n_vocab, N_EMBD))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    check(tmp, n_vocab, args.dump)
    os.replace(tmp, args.out)  # never leave a half-written model behind
    with open(args.out, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    print(f"{args.out} {os.path.getsize(args.out)} bytes, vocab {n_vocab}, sha256 {digest}")


if __name__ == "__main__":
    main()
