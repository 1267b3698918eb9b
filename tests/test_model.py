"""Tests for model.py: tokenizer, chat template, tiny model build/load, image forward and generate."""

import math
import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported: nothing may reach a hub

import hashlib
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from transformers import AutoTokenizer, Qwen2_5_VLForConditionalGeneration  # noqa: E402

import infra  # noqa: E402
import model as M  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def cli_build(tmp_path_factory):
    """`python model.py tiny` in a subprocess, started before the first test so that it
    runs on the second core meanwhile; test_cli_tiny waits for it."""
    out = tmp_path_factory.mktemp("cli") / "cli-tiny"
    log = open(out.parent / "log.txt", "w+")
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "model.py"), "tiny", "--out", str(out), "--seed", "1"],
        stdout=log, stderr=subprocess.STDOUT, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    yield proc, out, log
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    log.close()


@pytest.fixture(scope="module")
def tokenizer():
    return M.build_tokenizer()


@pytest.fixture(scope="module")
def loaded(tiny_dir):
    return M.load(tiny_dir)


# -----------------------------------------------------------------------------
# tokenizer


def test_tiktoken_file_is_pinned(tmp_path):
    path = M.qwen_tiktoken_path()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == M.QWEN_TIKTOKEN_SHA256
    bad = tmp_path / "qwen.tiktoken"
    bad.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="sha256"):
        M.build_tokenizer(tiktoken_path=bad)


def test_known_ids(tokenizer):
    assert type(tokenizer).__name__ == "Qwen2Tokenizer"
    assert tokenizer("Hello world")["input_ids"] == [9707, 1879]  # no BOS
    assert tokenizer.encode("<|im_start|>") == [151644]
    assert tokenizer.eos_token_id == 151645 and tokenizer.pad_token_id == 151643
    assert tokenizer.bos_token is None and tokenizer.padding_side == "left"
    assert len(tokenizer) == 151665


def test_special_token_ids(tokenizer):
    expected = {
        "<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645,
        "<|object_ref_start|>": 151646, "<|object_ref_end|>": 151647, "<|box_start|>": 151648,
        "<|box_end|>": 151649, "<|quad_start|>": 151650, "<|quad_end|>": 151651,
        "<|vision_start|>": 151652, "<|vision_end|>": 151653, "<|vision_pad|>": 151654,
        "<|image_pad|>": 151655, "<|video_pad|>": 151656, "<tool_call>": 151657, "</tool_call>": 151658,
        "<|fim_prefix|>": 151659, "<|fim_middle|>": 151660, "<|fim_suffix|>": 151661, "<|fim_pad|>": 151662,
        "<|repo_name|>": 151663, "<|file_sep|>": 151664,
    }  # fmt: skip
    assert M.TOKEN_IDS == expected
    added = tokenizer.added_tokens_decoder
    for token, i in expected.items():
        assert tokenizer.convert_tokens_to_ids(token) == i
        assert tokenizer.encode(f"a{token}b") == tokenizer.encode("a") + [i] + tokenizer.encode("b")
        assert added[i].special == (i <= 151656), token  # as in Qwen2.5-VL's tokenizer_config.json


@pytest.mark.parametrize(
    "text",
    ["Hello, world!", "naïve café — 日本語のテキスト 🎬🎥", "one\ntwo\n\n\tindented  twice", " leading space"],
)
def test_round_trip(tokenizer, text):
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_digits_and_nfc(tokenizer):
    assert tokenizer.encode("12345") == [16, 17, 18, 19, 20]  # Qwen splits every digit
    assert tokenizer.encode("e\u0301") == tokenizer.encode("\u00e9")  # NFC: decomposed é == composed é


def test_decode_skips_special_tokens(tokenizer):
    ids = tokenizer.encode("<|im_start|>user\nhi<|vision_start|><|video_pad|><|vision_end|><|im_end|><|endoftext|>")
    assert tokenizer.decode(ids, skip_special_tokens=True) == "user\nhi"
    assert "<tool_call>" in tokenizer.decode(tokenizer.encode("<tool_call>x"), skip_special_tokens=True)


# -----------------------------------------------------------------------------
# chat template

VIDEO_CHAT = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "What happens first?"}]}]
VIDEO_PROMPT = (
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\n<|vision_start|><|video_pad|><|vision_end|>What happens first?<|im_end|>\n"
    "<|im_start|>assistant\n"
)


def test_chat_template(tokenizer):
    render = tokenizer.apply_chat_template
    assert render(VIDEO_CHAT, add_generation_prompt=True, tokenize=False) == VIDEO_PROMPT
    chat = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Colour?"}]},
        {"role": "assistant", "content": "Red."},
    ]
    assert render(chat, tokenize=False) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Colour?<|im_end|>\n"
        "<|im_start|>assistant\nRed.<|im_end|>\n"
    )


# -----------------------------------------------------------------------------
# tiny model: config, build, load


def test_tiny_config():
    config = M.tiny_config()
    text, vision = config.text_config, config.vision_config
    assert type(config).__name__ == "Qwen2_5_VLConfig"
    assert text.hidden_size // text.num_attention_heads == 32 and text.num_key_value_heads == 2
    assert text.rope_parameters["mrope_section"] == [4, 6, 6] and text.rope_parameters["rope_type"] == "default"
    assert list(vision.fullatt_block_indexes) == [1] and vision.out_hidden_size == text.hidden_size
    assert config.video_token_id == 151656 and config.image_token_id == 151655
    with pytest.raises(ValueError, match="mrope_section"):
        M.tiny_config(mrope_section=(16, 24, 24))


def test_build_refuses_non_empty_folder(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        M.build_tiny(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_folder_loads_with_plain_transformers(tiny_dir):
    assert not [p for p in tiny_dir.parent.iterdir() if p.name.startswith(".")]  # no temporary left behind
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_dir)
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration" and model.dtype == torch.float32
    assert model.generation_config.eos_token_id == [151645, 151643]
    assert model.generation_config.pad_token_id == 151643
    # AutoProcessor.from_pretrained is what load() calls: see test_load_defaults


def test_load_refuses_a_folder_missing_weights(tiny_dir, tmp_path):
    """Weights saved under other names (here with an accelerate checkpoint's "model." prefix) would load as
    random ones behind a printed report; load() stops and names the folder instead."""
    import shutil

    from safetensors.torch import save_file

    for f in tiny_dir.iterdir():
        if f.name != "model.safetensors":
            shutil.copy(f, tmp_path / f.name)
    weights = load_file(tiny_dir / "model.safetensors")
    state = M.load_model(tiny_dir).state_dict()  # what accelerate's save_state writes, after a "model." prefix
    save_file(
        {"model." + k: v.contiguous() for k, v in state.items() if k != "lm_head.weight"},
        tmp_path / "model.safetensors",
        metadata={"format": "pt"},
    )
    with pytest.raises(
        ValueError,
        match=rf"{tmp_path}: the checkpoint does not hold every weight of the model \(\d+ missing keys, e.g. ",
    ):
        M.load_model(tmp_path)
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    M.load_model(tmp_path)  # the same files with the right names load


def test_auto_tokenizer_gives_same_ids(tiny_dir, tokenizer):
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    assert type(tok).__name__ == "Qwen2Tokenizer" and tok.padding_side == "left"
    assert tok.eos_token_id == 151645 and tok.pad_token_id == 151643
    for text in ["Hello world", "<|im_start|>user\n12345 ünï<|im_end|><tool_call>", VIDEO_PROMPT]:
        assert tok.encode(text) == tokenizer.encode(text)
    assert tok.apply_chat_template(VIDEO_CHAT, add_generation_prompt=True, tokenize=False) == VIDEO_PROMPT


def test_same_seed_same_weights(tiny_dir):
    a, b = M.init_tiny_model(seed=0).state_dict(), M.init_tiny_model(seed=0).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    saved = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_dir).state_dict()
    assert saved.keys() == a.keys() and all(torch.equal(saved[k], a[k]) for k in a)
    # transformers 5 writes the legacy key layout of the published checkpoints (model.layers.*, visual.*)
    assert "model.embed_tokens.weight" in load_file(tiny_dir / "model.safetensors")


def test_param_counts(loaded):
    model, _ = loaded
    counts = M.param_counts(model)
    assert model.lm_head.weight is model.get_input_embeddings().weight  # tied
    assert counts["embedding"] == 151936 * 128
    assert counts["total"] == counts["vision"] + counts["llm"] + counts["embedding"]
    assert counts["vision"] == sum(p.numel() for n, p in model.named_parameters() if n.startswith("model.visual."))


def test_load_defaults(loaded):
    model, processor = loaded
    assert model.dtype == torch.float32 and model.device.type == "cpu"
    assert model.config._attn_implementation == "sdpa"
    assert not model.is_activation_checkpointing
    assert all(p.requires_grad for p in model.parameters())
    assert M.vision_module(model) is model.model.visual
    # the processor is AutoProcessor.from_pretrained(tiny_dir), unchanged but for padding_side
    assert type(processor).__name__ == "Qwen2_5_VLProcessor"
    assert type(processor.image_processor).__name__ == "Qwen2VLImageProcessor"
    assert type(processor.video_processor).__name__ == "Qwen2VLVideoProcessor"
    for sub in (processor.image_processor, processor.video_processor):
        assert (sub.size["shortest_edge"], sub.size["longest_edge"]) == (M.TINY_MIN_PIXELS, M.TINY_MAX_PIXELS)
    assert processor.tokenizer.padding_side == "left"
    assert processor.apply_chat_template(VIDEO_CHAT, add_generation_prompt=True, tokenize=False) == VIDEO_PROMPT


def test_freeze_vision_and_checkpointing(tiny_dir, loaded):
    _, processor = loaded
    model = M.load_model(tiny_dir, freeze_vision=True, gradient_checkpointing=True)
    assert model.is_activation_checkpointing
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    vit = {n for n, _ in model.named_parameters() if n.startswith("model.visual.") and ".merger." not in n}
    assert frozen == vit and any(n.startswith("model.visual.blocks.") for n in frozen)

    # one training step: gradients reach the merger and the LLM, not the frozen ViT
    model.train()
    inputs = image_inputs(processor)
    labels = inputs["input_ids"].clone()  # [1, T]
    model(**inputs, labels=labels, use_cache=False).loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(grads[n] is None for n in vit)
    assert grads["model.visual.merger.mlp.0.weight"].abs().sum() > 0
    assert grads["model.language_model.layers.0.self_attn.q_proj.weight"].abs().sum() > 0


def test_pixel_budget_override(loaded):
    _, processor = loaded
    image = Image.new("RGB", (448, 448))
    before = processor.image_processor(images=[image], return_tensors="pt")["image_grid_thw"]
    assert before.tolist() == [[1, 8, 8]]  # 112x112 cap: 8x8 patches of 14 px
    M.set_pixel_budget(processor, max_pixels=224 * 224)
    try:
        after = processor.image_processor(images=[image], return_tensors="pt")["image_grid_thw"]
        assert after.tolist() == [[1, 16, 16]]
        assert processor.video_processor.size["longest_edge"] == 224 * 224
        assert processor.video_processor.size["shortest_edge"] == M.TINY_MIN_PIXELS
    finally:
        M.set_pixel_budget(processor, M.TINY_MIN_PIXELS, M.TINY_MAX_PIXELS)


# -----------------------------------------------------------------------------
# forward and generate on an image prompt


def image_inputs(processor, colour=(200, 30, 30)):
    chat = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour is this?"}]}]
    prompt = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    return processor(text=[prompt], images=[Image.new("RGB", (56, 56), colour)], return_tensors="pt")


def test_image_forward_and_generate(loaded):
    model, processor = loaded
    inputs = image_inputs(processor)
    ids = inputs["input_ids"]  # [1, T]
    assert inputs["image_grid_thw"].tolist() == [[1, 4, 4]]  # 56x56 -> 4x4 patches -> 2x2 merged tokens
    assert (ids == M.IMAGE_TOKEN_ID).sum() == 4

    with torch.no_grad():
        t0 = time.perf_counter()
        logits = model(**inputs).logits  # [1, T, V]
        t1 = time.perf_counter()
        out = model.generate(**inputs, max_new_tokens=5, do_sample=False)  # [1, T + n]
        t2 = time.perf_counter()
    print(f"\nforward {1000 * (t1 - t0):.0f} ms, 5-token generate {1000 * (t2 - t1):.0f} ms")
    assert logits.shape == (1, ids.shape[1], 151936) and torch.isfinite(logits).all()
    new = out[0, ids.shape[1] :]
    assert torch.equal(out[0, : ids.shape[1]], ids[0]) and 1 <= len(new) <= 5
    assert new[0] == logits[0, -1].argmax()  # greedy: the first new token is the forward's argmax


@pytest.mark.parametrize("temperature, top_p", [(1.0, 0.95), (0.7, 0.9), (1.3, 0.5), (1.0, 1.0)])
def test_nucleus_filter_matches_transformers_warpers(temperature, top_p):
    """NucleusFilter == TemperatureLogitsWarper then TopPLogitsWarper, on peaked rows (top-k path), a flat
    row (the full-sort fallback) and a row whose top token alone exceeds top_p."""
    from transformers import TemperatureLogitsWarper, TopPLogitsWarper

    g = torch.Generator().manual_seed(0)
    V = M.QWEN_VOCAB_SIZE
    peaked = torch.randn(3, V, generator=g) * 2
    peaked[:, :40] += torch.linspace(12, 4, 40)  # ~40 plausible tokens, then a long tail
    flat = torch.randn(1, V, generator=g) * 0.01
    one = torch.zeros(1, V)
    one[0, 7] = 30.0
    scores = torch.cat([peaked, flat, one])
    expected = scores
    if temperature != 1.0:
        expected = TemperatureLogitsWarper(temperature)(None, expected)
    if top_p < 1.0:
        expected = TopPLogitsWarper(top_p)(None, expected)
    got = M.NucleusFilter(temperature, top_p, k=64)(None, scores)
    assert torch.equal(torch.isinf(got), torch.isinf(expected))
    assert torch.allclose(got[~torch.isinf(got)], expected[~torch.isinf(expected)])
    kept = (~torch.isinf(got)).sum(-1)
    if top_p < 1.0:
        assert kept[-1] == 1 and kept[3] > 64  # the single-token row, and the flat row went past k


def test_nucleus_filter_generates_the_same_tokens(loaded):
    model, processor = loaded
    inputs = image_inputs(processor)
    runs = []
    for kwargs in (
        {"temperature": 0.8, "top_p": 0.9},
        {"temperature": 1.0, "top_p": 1.0, "logits_processor": [M.NucleusFilter(0.8, 0.9)]},
    ):
        torch.manual_seed(3)
        with torch.no_grad():
            runs.append(
                model.generate(**inputs, do_sample=True, top_k=0, max_new_tokens=8, num_return_sequences=4, **kwargs)
            )
    assert torch.equal(runs[0], runs[1])


def test_nucleus_sampler_draws_from_the_nucleus_distribution():
    """NucleusSampler's draws follow softmax(NucleusFilter(scores)): on a small hand-made row, the empirical
    frequencies of 40,000 draws are within 0.01 of the nucleus probabilities, and nothing outside the nucleus
    is ever drawn; a row whose nucleus is wider than k takes the whole-row draw. The output is 0 at the
    drawn token and -inf elsewhere, so generate's greedy argmax takes it."""
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0, -1.0, -2.0]])  # softmax: .636 .234 .086 .032 .012 .004
    # top_p 0.9: the first three are kept (mass above the third: .870 < .9; above the fourth: .956)
    torch.manual_seed(0)
    sampler = M.NucleusSampler(temperature=1.0, top_p=0.9, k=4)
    rows = logits.expand(40_000, -1)
    out = sampler(None, rows)
    assert (
        torch.equal((out == 0).sum(-1), torch.ones(40_000, dtype=torch.long)) and torch.isinf(out).sum() == 40_000 * 5
    )
    drawn = out.argmax(-1)
    freq = torch.bincount(drawn, minlength=6).float() / 40_000
    p = logits[0, :3].softmax(-1)  # the nucleus renormalised: .665 .245 .090
    assert freq[3:].sum() == 0
    assert torch.allclose(freq[:3], p, atol=0.01), (freq, p)
    wide = M.NucleusSampler(temperature=2.0, top_p=0.999, k=2)  # nucleus of 6 tokens > k = 2: whole-row draw
    freq = torch.bincount(wide(None, rows).argmax(-1), minlength=6).float() / 40_000
    assert torch.allclose(freq, (logits[0] / 2).softmax(-1), atol=0.01)


def test_nucleus_sampler_skips_finished_rows_sorts_and_samples_the_same_tokens(loaded, monkeypatch):
    """Rows that have ended their turn skip the full sort of the whole-row draw (their token is thrown away),
    and every row's tokens are those of the sampler that sorts them all, from the same seed: the draw's
    random numbers depend on its shape only. Rows 0 and 1 are made to end their turn at steps 2 and 4; the
    random tiny model's rows are flat, so every row takes the whole-row draw."""
    from transformers import LogitsProcessor

    class EndTurn(LogitsProcessor):
        def __init__(self, prompt_length, steps):
            self.prompt_length, self.steps = prompt_length, steps

        def __call__(self, input_ids, scores):
            for row, step in enumerate(self.steps):
                if input_ids.shape[1] - self.prompt_length == step:
                    scores[row] = float("-inf")
                    scores[row, M.IM_END_ID] = 0.0
            return scores

    model, processor = loaded
    shared = M.stacked_prompts(model, [image_inputs(processor)], [4])
    P = shared["input_ids"].shape[1]
    sorted_rows, sort = [], M.NucleusFilter._sorted_keep
    monkeypatch.setattr(
        M.NucleusFilter, "_sorted_keep", lambda self, scores: sorted_rows.append(len(scores)) or sort(self, scores)
    )
    runs, sorts = [], []
    for sampler in (
        M.NucleusSampler(1.0, 0.95),
        M.NucleusSampler(1.0, 0.95, prompt_length=P, eos_ids=[M.IM_END_ID, M.ENDOFTEXT_ID]),
    ):
        sorted_rows.clear()
        torch.manual_seed(0)
        with torch.no_grad():
            runs.append(
                model.generate(
                    **shared, max_new_tokens=8, do_sample=False, logits_processor=[EndTurn(P, [2, 4]), sampler]
                )[:, P:]
            )
        sorts.append(sum(sorted_rows))
    assert torch.equal(runs[0], runs[1])
    assert runs[1][0, 2] == M.IM_END_ID and runs[1][1, 4] == M.IM_END_ID and runs[1].shape[1] == 8
    assert sorts[0] == 4 * 8 - 2  # every row sorted at every step but the two forced ones
    assert sorts[1] == sorts[0] - (8 - 3) - (8 - 5)  # rows 0 and 1 not after their end of turn


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator setting")
def test_chunked_entropy_by_hand():
    """policy/entropy's per-token value from the chunked log-prob pass, on a 3-token vocabulary: hidden [0, 0]
    gives logits [0, 0, 0], uniform, H = ln 3 = 1.098612; hidden [ln 2, 0] gives logits [ln 2, 0, 0], p = [1/2,
    1/4, 1/4], H = 1/2 ln 2 + 2 * 1/4 ln 4 = 1.5 ln 2 = 1.039721, and log p of token 0 = ln 1/2 = -0.693147.
    Chunks of one token, with and without autograd, give the same; the entropy carries no gradient."""
    head = torch.nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))
    hidden = torch.tensor([[[0.0, 0.0], [math.log(2), 0.0]]], requires_grad=True)  # [1, 2, 2]
    targets = torch.tensor([[2, 0]])
    logp, entropy = M.chunked_logprobs(head, hidden, targets, chunk_size=1, entropy=True)
    assert torch.allclose(entropy, torch.tensor([[math.log(3), 1.5 * math.log(2)]]), atol=1e-6)
    assert torch.allclose(logp, torch.tensor([[-math.log(3), -math.log(2)]]), atol=1e-6)
    assert logp.requires_grad and not entropy.requires_grad
    assert torch.equal(logp, M.chunked_logprobs(head, hidden, targets, chunk_size=1))
    with torch.no_grad():
        assert torch.allclose(M.chunked_logprobs(head, hidden, targets, entropy=True)[1], entropy)


def test_keep_freed_memory_reuses_large_blocks_without_page_faults():
    """A 64 MiB tensor allocated and freed, again and again: under glibc's default each one is fresh mmap'd
    memory, page-faulted in 4 KiB at a time (16,384 faults); after infra.keep_freed_memory it is the freed
    block again (next to no faults once the allocator has settled: four blocks measured after four). Each
    case in a process of its own: the setting is process-wide."""
    code = f"""
import resource, sys, torch
sys.path.insert(0, {str(ROOT)!r})
import infra
applied = infra.keep_freed_memory("cpu") if sys.argv[1] == "keep" else None
def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    x = torch.ones(16 * 2**20)  # 64 MiB of fp32, above glibc's largest mmap threshold (32 MiB)
    del x
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
[faults() for _ in range(4)]  # the allocator settles (it may place the first blocks apart)
print(applied, sum(faults() for _ in range(4)))
"""
    result = {}
    for case in ("default", "keep"):
        out = subprocess.run(
            [sys.executable, "-c", code, case], capture_output=True, text=True, check=True
        ).stdout.split()
        result[case] = (out[0], int(out[1]))
    assert result["default"][1] > 4 * 16_000  # four fresh 64 MiB blocks
    assert result["keep"] == ("True", result["keep"][1]) and result["keep"][1] < 1_000, result
    assert not infra.keep_freed_memory("meta")  # only for the CPU


def test_stacked_prompts_generate_like_the_processor_inputs(loaded):
    """Rows built by stacked_prompts (picture encoded once, passed as mm_encoder_outputs) generate what
    the processor's own inputs generate: greedily, and with NucleusSampler at a top_p that keeps only the
    most likely token."""
    model, processor = loaded
    inputs = image_inputs(processor)
    P = inputs["input_ids"].shape[1]
    with torch.no_grad():
        greedy = model.generate(**inputs, max_new_tokens=6, do_sample=False)[:, P:]
        shared = M.stacked_prompts(model, [inputs], [3])
        assert shared["input_ids"].shape == (3, P) and "pixel_values" not in shared
        rows = model.generate(
            **shared, max_new_tokens=6, do_sample=False, logits_processor=[M.NucleusSampler(1.0, 1e-6)]
        )[:, P:]
    assert all(torch.equal(row, greedy[0]) for row in rows)


# -----------------------------------------------------------------------------
# command line


def test_cli_tiny(cli_build, tiny_dir):
    proc, out, log = cli_build
    code = proc.wait(timeout=300)
    log.seek(0)
    printed = log.read()
    assert code == 0, printed
    assert "total 20,740,032" in printed and str(out) in printed
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(out)
    expected = M.init_tiny_model(seed=1).state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in model.state_dict().items())
    seed0 = load_file(tiny_dir / "model.safetensors")["model.embed_tokens.weight"]
    assert not torch.equal(model.get_input_embeddings().weight, seed0)  # another seed, other weights
