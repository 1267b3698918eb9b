"""
Data: the Video-R1 record format, prompts, video/image decoding, and a synthetic video benchmark.

    python data.py synth --out data/synth --train 600 --test 200 --seed 0
    python data.py check data/synth/train.json

Sections, top to bottom:
  1. the Video-R1 schema: loading JSON/JSONL, validating records, reporting bad ones by id
  2. prompts: the chat messages we build from a record (our own wording)
  3. media: PyAV video decoding with uniform frame sampling, pixel budgets, frame shuffling and noise
  4. processor inputs: text + frames -> the tensors Qwen2.5-VL takes, with the *sampled* frame rate
  5. the synthetic benchmark: deterministic mp4 videos of moving shapes, temporal and static questions
  6. command line

A record (one element of a Video-R1 JSON list, e.g. Video-R1-260k.json or eval_mvbench.json):
    problem_id, problem, data_type ("video" | "image"), problem_type ("multiple choice" | "numerical" |
    "OCR" | "free-form" | "regression"), options (["A. ...", ...] for multiple choice), process
    ("<think>...</think>", optional, used by SFT), solution ("<answer>...</answer>"), path (relative to
    the JSON file's folder, or absolute), data_source. Extra fields are kept untouched.
"""

import argparse
import json
import math
import os
import re
import sys
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch

# -----------------------------------------------------------------------------
# 1. The Video-R1 schema

DATA_TYPES = ("video", "image")
PROBLEM_TYPES = ("multiple choice", "numerical", "OCR", "free-form", "regression", "temporal grounding")
REQUIRED_FIELDS = ("problem", "data_type", "problem_type", "solution", "path")
_ANSWER_RE = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.DOTALL)
_NUMBER_RE = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


class SampleError(Exception):
    """A record that cannot be used, with what a user needs to find it: id, file and reason."""

    def __init__(self, problem_id, file, reason):
        self.problem_id, self.file, self.reason = problem_id, file, reason
        super().__init__(f"problem_id={problem_id} file={file}: {reason}")


def record_id(record, index):
    """The record's problem_id, or its position in the file when it has none."""
    if isinstance(record, dict) and record.get("problem_id") is not None:
        return record["problem_id"]
    return f"#{index}"


def answer_of(solution):
    """The text inside <answer>...</answer>, or None when there is no such tag."""
    match = _ANSWER_RE.search(solution)
    return match.group(1) if match else None


def option_letters(options):
    """["A. red", "B. blue"] -> ["A", "B"] (the text before the first '.')."""
    return [str(option).split(".", 1)[0].strip() for option in options]


def validate_record(record, base_dir):
    """Every reason this record cannot be trained or evaluated on; [] when it is fine.

    Checks the schema and that the media file exists; decoding is checked by `check` and at use time.
    """
    if not isinstance(record, dict):
        return [f"record is a {type(record).__name__}, not an object"]
    reasons = [f"missing field '{key}'" for key in REQUIRED_FIELDS if key not in record]
    if reasons:
        return reasons
    for key in ("problem", "solution", "path"):
        if not isinstance(record[key], str):
            reasons.append(f"'{key}' is not a string")
    if record["data_type"] not in DATA_TYPES:
        reasons.append(f"unknown data_type {record['data_type']!r} (expected one of {DATA_TYPES})")
    problem_type = record["problem_type"]
    if problem_type not in PROBLEM_TYPES:
        reasons.append(f"unknown problem_type {problem_type!r} (expected one of {PROBLEM_TYPES})")
    if reasons:
        return reasons
    answer = answer_of(record["solution"])
    if answer is None or not answer:
        reasons.append("solution has no non-empty <answer>...</answer>")
    elif problem_type == "multiple choice":
        options = record.get("options")
        if not isinstance(options, list) or not options or not all(isinstance(o, str) for o in options):
            reasons.append("multiple choice record without a list of option strings")
        elif answer not in option_letters(options):
            reasons.append(f"answer {answer!r} is not one of the option letters {option_letters(options)}")
    elif problem_type in ("numerical", "regression"):
        try:
            if not math.isfinite(float(answer.replace(",", ""))):
                reasons.append(f"answer {answer!r} is not finite")
        except ValueError:
            reasons.append(f"answer {answer!r} is not a number")
    elif problem_type == "temporal grounding" and len(_NUMBER_RE.findall(answer)) != 2:
        reasons.append(f"answer {answer!r} is not a [start, end] interval")
    if "process" in record and not isinstance(record["process"], str):
        reasons.append("'process' is not a string")
    media = media_path(record, base_dir)
    if not os.path.isfile(media):
        reasons.append(f"media file not found: {media}")
    return reasons


def media_path(record, base_dir):
    """`path` resolved against the JSON file's folder (absolute paths are kept)."""
    return os.path.normpath(os.path.join(base_dir, os.path.expanduser(record["path"])))


def read_json_records(path):
    """The raw records of a JSON list, a Video-R1-eval style {"results"/"data": [...]}, or JSONL."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if not path.endswith(".jsonl"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None  # maybe JSON lines under another extension
        if isinstance(data, list):
            return data
        if isinstance(data, dict):
            for key in ("results", "data"):
                if isinstance(data.get(key), list):
                    return data[key]
            if "problem" not in data:
                raise ValueError(f"{path}: a JSON object without a 'results' or 'data' list")
    records = []  # JSONL: one object per line
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: neither a JSON list nor JSON lines ({e})") from None
    return records


def load_records(path, strict=False):
    """Load and validate a Video-R1 file. Returns (good records, list of SampleError for the bad ones).

    Each good record is the original dict plus `_media` (absolute media path), `_file` and `_index`.
    A bad record is never replaced by another: it is reported and skipped, or raised when `strict`.
    """
    base_dir = os.path.dirname(os.path.abspath(path))
    good, bad = [], []
    for index, record in enumerate(read_json_records(path)):
        reasons = validate_record(record, base_dir)
        if reasons:
            error = SampleError(record_id(record, index), path, "; ".join(reasons))
            if strict:
                raise error
            bad.append(error)
            continue
        good.append(dict(record, _media=media_path(record, base_dir), _file=path, _index=index))
    return good, bad


# -----------------------------------------------------------------------------
# 2. Prompts (our own wording; the answer-type instructions follow Video-R1's split by problem_type)

REASONING_INSTRUCTION = (
    "Think step by step about what you see before answering. Put your reasoning inside <think> </think> "
    "and then your final answer inside <answer> </answer>."
)
ANSWER_INSTRUCTIONS = {
    "multiple choice": "Answer with the letter of the correct option only, e.g. <answer>A</answer>.",
    "numerical": "Answer with a number only, e.g. <answer>3</answer> or <answer>2.5</answer>.",
    "regression": "Answer with a number only, e.g. <answer>42</answer>.",
    "OCR": "Answer with the exact text only, inside the answer tags.",
    "free-form": "Answer in a short sentence inside the answer tags.",
    "temporal grounding": "Answer with the start and end time in seconds, e.g. <answer>[2.0, 5.5]</answer>.",
}


def question_text(record, hint=None):
    """The user's text: question, options, instructions, and (difficulty-aware augmentation) a hint."""
    text = record["problem"].strip()
    if record["problem_type"] == "multiple choice":
        text += "\nOptions:\n" + "\n".join(record["options"])
    text += "\n" + REASONING_INSTRUCTION + " " + ANSWER_INSTRUCTIONS[record["problem_type"]]
    if hint:
        text += "\nHint: " + hint
    return text


def build_messages(record, hint=None, visual=True):
    """Chat messages for a record: one user turn with the video or image first (visual=False: none, the
    question alone, for eval.py's --no_video), then the question."""
    media = [{"type": record["data_type"]}] if visual else []
    return [{"role": "user", "content": media + [{"type": "text", "text": question_text(record, hint)}]}]


def prompt_text(processor, record, hint=None, visual=True):
    """The prompt string up to and including the assistant header, in the model's chat format."""
    messages = build_messages(record, hint, visual)
    return processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def check_prompt_length(processor, record, visual, limit, new_tokens):
    """Stop a prompt that cannot fit the model's context before it reaches the model (a 1 MB question was once a
    125k-token prompt that took 16 GB in 29 s without a word): its text tokens plus its visual's (one per 28 x 28
    pixels, per frame pair of a video) plus the completion's new tokens must be at most `limit`. Returns the
    prompt's tokens; a SampleError naming the record and its file otherwise."""
    text = len(processor.tokenizer(prompt_text(processor, record, visual=visual is not None)).input_ids)
    seen = 0
    if visual is not None:  # the one placeholder token becomes one token per merged patch
        _, _, height, width = visual.frames.shape
        seen = max(1, visual.frames.shape[0] // 2) * (height // PATCH_FACTOR) * (width // PATCH_FACTOR)
        text -= 1
    if text + seen + new_tokens > limit:
        raise SampleError(
            record_id(record, record.get("_index", "?")),
            record.get("_file", "?"),
            f"a prompt of {text} text + {seen} visual tokens, + {new_tokens} new tokens, exceeds the model's "
            f"{limit}-token context",
        )
    return text + seen


def sft_target(record):
    """What SFT teaches the model to write: the chain of thought, then the answer."""
    return (record.get("process") or "").strip() + "\n" + record["solution"].strip()


# -----------------------------------------------------------------------------
# 3. Media: decoding, frame sampling, pixel budgets, shuffling, noise

PATCH_FACTOR = 28  # patch 14 x spatial merge 2: Qwen2.5-VL needs height and width divisible by 28
# Frames and pixel budget per frame when nothing says otherwise: both papers train real checkpoints on 16
# frames (Video-R1 at max_pixels 128*28*28); the tiny model on 4 frames at its processor's own budget.
PAPER_NUM_FRAMES, TINY_NUM_FRAMES = 16, 4
PAPER_MAX_PIXELS = 128 * 28 * 28


def fit_pixels(height, width, min_pixels, max_pixels, factor=PATCH_FACTOR):
    """(h, w) multiples of `factor`, aspect ratio kept, area within [min_pixels, max_pixels].

    The same rule as Qwen2-VL's `smart_resize` (qwen-vl-utils), so the processor's own resize is a no-op.
    """
    if min(height, width) <= 0 or max(height, width) / min(height, width) > 200:
        raise ValueError(f"bad frame size {height}x{width}")
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        scale = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / scale / factor) * factor)
        w = max(factor, math.floor(width / scale / factor) * factor)
    elif h * w < min_pixels:
        scale = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * scale / factor) * factor
        w = math.ceil(width * scale / factor) * factor
    return h, w


def sample_indices(total_frames, num_frames):
    """`num_frames` indices spread uniformly over [0, total_frames - 1], first and last included."""
    return np.linspace(0, total_frames - 1, num_frames).round().astype(int).tolist()


def resize_frames(frames, min_pixels, max_pixels):
    """[F, 3, H, W] uint8 -> [F, 3, h, w] uint8 with (h, w) from `fit_pixels` (bicubic, antialiased)."""
    h, w = fit_pixels(frames.shape[-2], frames.shape[-1], min_pixels, max_pixels)
    if (h, w) == tuple(frames.shape[-2:]):
        return frames
    resized = torch.nn.functional.interpolate(
        frames.float(), size=(h, w), mode="bicubic", antialias=True, align_corners=False
    )
    return resized.round().clamp(0, 255).to(torch.uint8)


@dataclass
class Visual:
    """Decoded media of one record: frames [F, 3, H, W] uint8 (F = 1 for an image) and, for a video,
    transformers' VideoMetadata (source fps, total frames, sampled indices) for second_per_grid_ts."""

    kind: str
    frames: torch.Tensor
    metadata: object = None


def load_video(path, num_frames, min_pixels, max_pixels):
    """Decode `num_frames` uniformly sampled frames of a video with PyAV (see decode_frames)."""
    frames, fps, total, wanted, _ = decode_frames(path, num_frames)
    return video_visual(frames, fps, total, wanted, min_pixels, max_pixels)


_WARNED_COUNTS = set()  # videos whose header frame count was wrong, said once each


def decode_frames(path, num_frames):
    """The frames at `num_frames` uniform positions of a video, decoding only what they need.

    The packets are read first, without decoding: their presentation times give every frame's position
    (frame i is the i-th in time order, as in a full decode, B-frames and variable frame rates included) and
    the keyframes. Each wanted frame is then reached by seeking to the keyframe at or before it and decoding
    forward, or by decoding on when it lies ahead in the group of pictures already being decoded, so the
    cost grows with the frames kept and their GOPs, not with the clip's length. A header whose frame count
    disagrees with the packets (truncated files, some edit lists) is said once; the frames that exist are
    sampled. Returns (frames [F, 3, H, W] uint8, fps, frames in the clip, sampled indices, frames decoded)."""
    import bisect

    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        packets = [
            (packet.pts, packet.is_keyframe)
            for packet in container.demux(stream)
            if packet.pts is not None and packet.size
        ]
        times = sorted(pts for pts, _ in packets)
        keyframes = sorted(pts for pts, key in packets if key) or times[:1]
        total = len(times)
        if total <= 0 or fps <= 0:
            raise ValueError(f"video has no frames or no frame rate (frames={total}, fps={fps})")
        if stream.frames and stream.frames != total and path not in _WARNED_COUNTS:
            _WARNED_COUNTS.add(path)
            print(
                f"{path}: the header says {stream.frames} frames, the file holds {total}; sampling from those",
                file=sys.stderr,
            )
        wanted = sample_indices(total, num_frames)
        picked, decoded, frames, last = {}, 0, None, None  # last: time of the frame decoded last
        for index in sorted(set(wanted)):
            target = times[index]
            keyframe = keyframes[max(0, bisect.bisect_right(keyframes, target) - 1)]
            # not ahead in the GOP being decoded
            if frames is None or last is None or last >= target or keyframe > last:
                container.seek(target, stream=stream, backward=True, any_frame=False)  # to the keyframe at or before it
                frames, last = container.decode(stream), None
            for frame in frames:
                decoded += 1
                last = frame.pts
                if frame.pts >= target:
                    break
            if last != target:
                raise ValueError(f"frame {index} (time {target}) did not decode (the decoder reached {last})")
            picked[index] = torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1)  # [3, H, W]
    return torch.stack([picked[i] for i in wanted]), fps, total, wanted, decoded


def video_visual(frames, fps, total, indices, min_pixels, max_pixels):
    """A video Visual from decoded frames [F, 3, H, W] uint8: frame `indices` of a `total`-frame clip at
    `fps`, resized to the pixel budget, with the VideoMetadata that second_per_grid_ts comes from."""
    from transformers.video_utils import VideoMetadata

    frames = resize_frames(frames, min_pixels, max_pixels)  # [F, 3, h, w]
    metadata = VideoMetadata(
        total_num_frames=total,
        fps=fps,
        frames_indices=list(indices),
        height=frames.shape[-2],
        width=frames.shape[-1],
        duration=total / fps,
    )
    return Visual("video", frames, metadata)


def load_image(path, min_pixels, max_pixels):
    """Decode an image with PIL as RGB, resized to the pixel budget."""
    from PIL import Image

    with Image.open(path) as image:
        array = np.asarray(image.convert("RGB"))
    frames = torch.from_numpy(array.copy()).permute(2, 0, 1)[None]  # [1, 3, H, W]
    return Visual("image", resize_frames(frames, min_pixels, max_pixels))


def load_visual(record, num_frames, min_pixels, max_pixels):
    """Decode a loaded record's media; any failure becomes a SampleError naming the record."""
    try:
        if record["data_type"] == "video":
            return load_video(record["_media"], num_frames, min_pixels, max_pixels)
        return load_image(record["_media"], min_pixels, max_pixels)
    except Exception as e:  # PyAV and PIL raise many types; the caller decides to skip or stop
        raise SampleError(
            record_id(record, record.get("_index", "?")), record["_media"], f"cannot decode: {type(e).__name__}: {e}"
        ) from e


def thumbnails(frames, height=64):
    """[F, 3, H, W] uint8 frames -> base64 PNG strings of each, `height` pixels high (rollout and eval pages)."""
    import base64
    import io

    from PIL import Image

    out = []
    for frame in frames:
        image = Image.fromarray(frame.permute(1, 2, 0).contiguous().numpy())
        image = image.resize((max(1, round(image.width * height / image.height)), height), Image.BILINEAR)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", optimize=True)
        out.append(base64.b64encode(buffer.getvalue()).decode("ascii"))
    return out


def shuffle_frames(visual, generator):
    """T-GRPO's shuffled video: the same frames in a random order that is never the identity.

    The metadata is kept, so time positions are unchanged and only the content order differs.
    """
    num = visual.frames.shape[0]
    if num < 2:
        raise ValueError("cannot shuffle a video of fewer than 2 frames")
    perm = torch.randperm(num, generator=generator)
    while torch.equal(perm, torch.arange(num)):
        perm = torch.randperm(num, generator=generator)
    return Visual(visual.kind, visual.frames[perm], visual.metadata), perm


def add_frame_noise(visual, std, generator):
    """DeepVideo-R1's augmentation for too-easy samples: Gaussian noise of `std` (fraction of the 0-255
    range) on every pixel of every frame."""
    noise = torch.randn(visual.frames.shape, generator=generator) * (std * 255.0)  # [F, 3, H, W]
    noisy = (visual.frames.float() + noise).round().clamp(0, 255).to(torch.uint8)
    return Visual(visual.kind, noisy, visual.metadata)


def mask_frames(visual, fraction, generator, cell=PATCH_FACTOR):
    """DeepVideo-R1's other augmentation for too-easy samples ("masking video frames", Sec. 3.3): a random
    `fraction` of every frame's cell x cell squares (28: one merged patch of Qwen2.5-VL) set to mid-grey, a
    fresh choice per frame. Measured on the main job's SFT start (docs/EXPERIMENTS.md): masking half the
    cells took colour accuracy from 0.72 to 0.32, where Gaussian noise of std 0.5 x 255 left it at 0.67."""
    frames = visual.frames.clone()  # [F, 3, H, W]
    _, _, H, W = frames.shape
    rows, cols = -(-H // cell), -(-W // cell)
    for f in range(frames.shape[0]):
        chosen = torch.randperm(rows * cols, generator=generator)[: round(fraction * rows * cols)]
        for c in chosen.tolist():
            y, x = divmod(c, cols)
            frames[f, :, y * cell : (y + 1) * cell, x * cell : (x + 1) * cell] = 128
    return Visual(visual.kind, frames, visual.metadata)


# -----------------------------------------------------------------------------
# 4. Processor inputs


def processor_inputs(processor, prompts, visuals):
    """Tokenise prompts and preprocess their media in one call. `prompts[i]` holds one vision placeholder
    for `visuals[i]`. Returns a BatchFeature with input_ids, attention_mask, pixel_values(_videos),
    image/video_grid_thw and second_per_grid_ts.

    The video's VideoMetadata goes with it so that second_per_grid_ts = temporal_patch_size / sampled fps
    (without it transformers assumes 24 fps and several temporal patches share a time position).
    Frames are already resized by `resize_frames`, so the processor's own resize keeps their size.
    """
    visuals = [v for v in visuals if v is not None]  # None: a prompt without media (eval.py --no_video)
    videos = [v.frames for v in visuals if v.kind == "video"]
    images = [v.frames[0] for v in visuals if v.kind == "image"]
    kwargs = {}
    if videos:
        kwargs.update(
            videos=videos,
            video_metadata=[v.metadata for v in visuals if v.kind == "video"],
            do_sample_frames=False,
            cap_pixels_per_frame=False,
        )
    if images:
        kwargs["images"] = images
    return processor(text=list(prompts), padding=True, return_tensors="pt", **kwargs)


# -----------------------------------------------------------------------------
# 5. The synthetic video benchmark
#
# Videos of a few large coloured shapes on a dark background, written as real H.264 mp4 files, with
# questions of two kinds:
#   temporal (shuffling the frames destroys the answer): direction of motion, which colour comes first,
#     whether an object approaches (grows) or moves away (shrinks);
#   static (shuffling changes nothing): colour, shape, how many squares, relative size.
# A randomly initialised tiny model learns only strong visual signals, so objects are large by default
# (--size) and every temporal question shows its change between neighbouring frames as well as over
# the whole clip: each temporal patch (2 frames) already carries the direction of change. The chains of
# thought are short templates: every generated token costs a 151,936-way softmax on a CPU.

COLORS = {"red": (230, 40, 40), "green": (40, 200, 60), "blue": (50, 90, 240), "yellow": (240, 220, 40)}
SHAPES = ("square", "circle", "triangle")
DIRECTIONS = ("left", "right", "up", "down")
BACKGROUND = (16, 16, 16)
DISTRACTOR = (128, 128, 128)


@dataclass
class SynthConfig:
    width: int = 112  # frame width and height in pixels (even, for H.264)
    height: int = 112
    frames: int = 16  # frames per video
    fps: float = 8.0
    size: float = 0.35  # object size as a fraction of the frame's shorter side
    speed: float = 0.3  # fraction of the frame a moving bar travels over the clip (direction questions)
    distractors: int = 0  # small grey circles that no question is about
    noise: float = 0.0  # std of Gaussian pixel noise, as a fraction of 255
    image_frac: float = 0.15  # fraction of samples that are single images (static questions only)
    # the widths a `size` question's square may have (% of the frame); empty: any whole number 20-80
    size_percents: tuple = ()
    families: tuple = ("direction", "order", "approach", "color", "shape", "count", "size")
    # the share of SFT chains of thought that end with one of AFTERTHOUGHTS, drawn at random (one is empty):
    # reasoning of varied length, as a real model's is, without which every correct answer of a family has the
    # same length and Video-R1's length reward cannot tell two correct completions apart. After the sentence
    # that reads the video, not before: openers of the same lengths left a 180-step SFT start answering every
    # question alike (0.29). 1.0 draws no extra random number: the benchmark of `afterthoughts: true`
    afterthoughts: float = 0.0


AFTERTHOUGHTS = ("", "I am sure.", "I checked every frame.", "I checked it frame by frame, twice, to be sure.")


TEMPORAL_FAMILIES = {"direction", "order", "approach"}
IMAGE_FAMILIES = ("color", "shape", "count", "size")


def draw_shape(canvas, shape, color, cx, cy, size):
    """Draw a filled shape of side/diameter `size` centred at (cx, cy) on an [H, W, 3] uint8 canvas."""
    H, W, _ = canvas.shape
    ys, xs = np.mgrid[0:H, 0:W]
    half = size / 2
    if shape == "square":
        inside = (np.abs(xs - cx) <= half) & (np.abs(ys - cy) <= half)
    elif shape == "circle":
        inside = (xs - cx) ** 2 + (ys - cy) ** 2 <= half**2
    elif shape == "vbar":  # a full-height bar of width `size` centred at x = cx
        inside = np.abs(xs - cx) <= half
    elif shape == "hbar":  # a full-width bar of height `size` centred at y = cy
        inside = np.abs(ys - cy) <= half
    elif shape == "triangle":  # apex up, base at the bottom
        rel_y = (ys - (cy - half)) / size  # 0 at the apex, 1 at the base
        inside = (rel_y >= 0) & (rel_y <= 1) & (np.abs(xs - cx) <= rel_y * half)
    else:
        raise ValueError(f"unknown shape {shape}")
    canvas[inside] = color


def _options(values):
    return [f"{chr(65 + i)}. {v}" for i, v in enumerate(values)]


def _letter(values, value):
    return chr(65 + list(values).index(value))


def synth_sample(family, rng, cfg, as_image):
    """One sample of a question family: (frames [F, H, W, 3] uint8, record fields, signature).

    The signature holds the generating parameters; the test split never repeats one of the train split.
    """
    H, W = cfg.height, cfg.width
    F = 1 if as_image else cfg.frames
    side = min(H, W)
    size = side * cfg.size * rng.uniform(0.85, 1.15)
    color = str(rng.choice(list(COLORS)))
    shape = str(rng.choice(SHAPES))
    margin = size / 2 + 1
    cx, cy = rng.uniform(margin, W - margin), rng.uniform(margin, H - margin)
    t = np.linspace(0.0, 1.0, F)  # clip time of each frame, 0..1
    # per frame: list of (shape, colour, cx, cy, size)
    objects = [[(shape, COLORS[color], cx, cy, size)] for _ in range(F)]
    options, process = None, None

    if family == "direction":
        # A thin bar (vertical for left/right, horizontal for up/down) that moves a few pixels between
        # neighbouring frames: within one temporal patch (2 frames, 14x14 pixels) its shift is a linear
        # function of the pixels, which a randomly initialised tiny model can pick up. A big square that
        # jumps by more than a patch between frames only appears and disappears locally.
        direction = str(rng.choice(DIRECTIONS))
        horizontal_motion = direction in ("left", "right")
        extent = W if horizontal_motion else H
        thickness = max(4.0, side * 0.06)
        travel = cfg.speed * extent
        start = rng.uniform(thickness, extent - thickness - travel)
        pos = start + travel * (t if direction in ("right", "down") else 1 - t)
        shape = "vbar" if horizontal_motion else "hbar"
        objects = [[(shape, COLORS[color], p, p, thickness)] for p in pos]
        problem = f"In which direction does the {color} bar move?"
        options, answer = _options(DIRECTIONS), _letter(DIRECTIONS, direction)
        where = {
            "left": ("right", "left"),
            "right": ("left", "right"),
            "up": ("bottom", "top"),
            "down": ("top", "bottom"),
        }[direction]
        process = f"It goes from the {where[0]} to the {where[1]}: {direction}."
        signature = (family, direction, color, round(start))
    elif family == "order":
        # The colour blends from the first to the second over the clip, so that every pair of
        # neighbouring frames (one temporal patch) shows which colour fades and which one grows.
        first, second = (str(c) for c in rng.choice(list(COLORS), size=2, replace=False))
        a, b = np.array(COLORS[first], float), np.array(COLORS[second], float)
        for f in range(F):
            objects[f] = [(shape, tuple(int(v) for v in (1 - t[f]) * a + t[f] * b), cx, cy, size)]
        problem = f"The {shape} slowly changes colour. Which colour does it have first?"
        options, answer = _options(list(COLORS)), _letter(list(COLORS), first)
        process = f"It turns from {first} to {second}."
        signature = (family, first, second, shape, round(cx) // 4, round(cy) // 4)
    elif family == "approach":
        closer = bool(rng.integers(2))
        small, large = side * 0.15, side * 0.8
        sizes = small + (large - small) * (t if closer else 1 - t)
        cx, cy = W / 2 + rng.uniform(-3, 3), H / 2 + rng.uniform(-3, 3)
        objects = [[(shape, COLORS[color], cx, cy, s)] for s in sizes]
        values = ("closer", "farther away")
        problem = f"Does the {color} {shape} come closer or move farther away?"
        options, answer = _options(values), _letter(values, "closer" if closer else "farther away")
        process = f"It {'grows' if closer else 'shrinks'}: {'closer' if closer else 'farther away'}."
        signature = (family, closer, color, shape, round(cx), round(cy))
    elif family == "color":
        problem = f"What colour is the {shape}?"
        options, answer = _options(list(COLORS)), _letter(list(COLORS), color)
        process = f"The {shape} is {color}."
        signature = (family, color, shape, round(cx), round(cy), round(size))
    elif family == "shape":
        problem = f"What shape is the {color} object?"
        options, answer = _options(SHAPES), _letter(SHAPES, shape)
        process = f"It is a {shape}."
        signature = (family, color, shape, round(cx), round(cy), round(size))
    elif family == "count":
        count = int(rng.integers(1, 5))
        small = side * 0.26
        centres = []
        while len(centres) < count:  # non-overlapping squares at random places (a 2x2 grid always fits)
            x, y = rng.uniform(small / 2 + 1, W - small / 2 - 1), rng.uniform(small / 2 + 1, H - small / 2 - 1)
            if all(max(abs(x - a), abs(y - b)) > small + 2 for a, b in centres):
                centres.append((x, y))
        objects = [[("square", COLORS[color], x, y, small) for x, y in centres] for _ in range(F)]
        problem = f"How many {color} squares are there?"
        answer = str(count)
        process = f"Counting: {', '.join(str(i + 1) for i in range(count))}."
        signature = (family, count, color, tuple(sorted((round(x) // 8, round(y) // 8) for x, y in centres)))
    elif family == "size":
        percent = int(rng.choice(cfg.size_percents)) if cfg.size_percents else int(rng.integers(20, 81))
        size = W * percent / 100
        cx = rng.uniform(size / 2, W - size / 2) if size < W else W / 2
        cy = rng.uniform(min(size, H) / 2, H - min(size, H) / 2)
        objects = [[("square", COLORS[color], cx, cy, size)] for _ in range(F)]
        problem = f"What percentage of the frame's width does the {color} square cover?"
        answer = str(percent)
        process = f"It spans about {percent} percent."
        # with a few widths, 8-pixel position bins leave too few distinct large squares to keep the splits apart
        where = (round(cx), round(cy)) if cfg.size_percents else (round(cx) // 8, round(cy) // 8)
        signature = (family, percent, color, *where)
    else:
        raise ValueError(f"unknown question family {family!r}")

    for _ in range(cfg.distractors):  # small grey circles in random places, the same in every frame
        d = ("circle", DISTRACTOR, rng.uniform(0, W), rng.uniform(0, H), side * 0.08)
        for f in range(F):
            objects[f].insert(0, d)

    frames = np.empty((F, H, W, 3), np.uint8)
    for f in range(F):
        canvas = np.full((H, W, 3), BACKGROUND, np.uint8)
        for obj_shape, obj_color, x, y, s in objects[f]:
            draw_shape(canvas, obj_shape, obj_color, x, y, s)
        if cfg.noise > 0:
            canvas = np.clip(canvas + rng.normal(0, cfg.noise * 255, canvas.shape), 0, 255).astype(np.uint8)
        frames[f] = canvas
    fields = {
        "problem": problem,
        "problem_type": "multiple choice" if options else ("numerical" if family == "count" else "regression"),
        "options": options or [],
        "process": f"<think>{process}</think>",
        "solution": f"<answer>{answer}</answer>",
        "temporal": family in TEMPORAL_FAMILIES,
        "question_family": family,
    }
    return frames, fields, signature


def write_mp4(path, frames, fps):
    """Write [F, H, W, 3] uint8 frames as H.264 mp4 (yuv420p), byte-identical for the same frames."""
    import av

    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=int(round(fps)))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        # crf 12: near lossless, so colours survive chroma subsampling. One thread, and no macroblock-tree rate
        # control: with it, x264 read memory it had not written, and the same frames encoded in two runs
        # differed (measured: 173 of 2,600 files of one benchmark built twice, by up to 31 grey levels once
        # decoded; the output changed with MALLOC_PERTURB_). Without it the files are also closer to the frames.
        stream.options = {"crf": "12", "preset": "medium", "x264-params": "no-mbtree=1"}
        stream.thread_count = 1
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def parse_percents(text):
    """ "20,50,80" -> (20, 50, 80), the --size_percents of data.py and train.py; "" -> ()."""
    try:
        percents = tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise ValueError(f"size percents {text!r}: expected comma-separated whole numbers such as 20,50,80") from None
    if any(not 1 <= p <= 100 for p in percents):
        raise ValueError(f"size percents {text!r}: each must be between 1 and 100 (% of the frame's width)")
    return percents


def synth_split(out_dir, split, num, seed, cfg, avoid=frozenset()):
    """Generate `num` records of one split; media under out_dir/<split>/. Returns (records, signatures)."""
    from PIL import Image
    from tqdm import tqdm

    os.makedirs(os.path.join(out_dir, split), exist_ok=True)
    split_id = {"train": 0, "test": 1}.get(split, 2)
    records, seen = [], set(avoid)
    for i in tqdm(range(num), desc=f"synth {split}", leave=False):
        rng = np.random.default_rng([seed, split_id, i])
        as_image = rng.random() < cfg.image_frac
        family = str(rng.choice([f for f in cfg.families if not as_image or f in IMAGE_FAMILIES] or cfg.families))
        as_image = as_image and family in IMAGE_FAMILIES
        for _ in range(1000):  # redraw until the parameters are new (never shared across splits)
            frames, fields, signature = synth_sample(family, rng, cfg, as_image)
            if (signature, as_image) not in seen:
                break
        else:
            raise RuntimeError(f"{split} #{i}: no unused parameters left for family {family}; ask for fewer samples")
        seen.add((signature, as_image))
        # drawn last, so that the media are those of a benchmark without them
        if cfg.afterthoughts and (cfg.afterthoughts >= 1 or rng.random() < cfg.afterthoughts):
            extra = AFTERTHOUGHTS[int(rng.integers(len(AFTERTHOUGHTS)))]
            fields["process"] = fields["process"].replace("</think>", f" {extra}</think>" if extra else "</think>", 1)
        rel = f"{split}/{split}_{i:05d}." + ("png" if as_image else "mp4")
        if as_image:
            Image.fromarray(frames[0]).save(os.path.join(out_dir, rel))
        else:
            write_mp4(os.path.join(out_dir, rel), frames, cfg.fps)
        records.append(
            {
                "problem_id": f"synth-{split}-{i:05d}",
                **fields,
                "data_type": "image" if as_image else "video",
                "path": rel,
                "data_source": "synthetic",
            }
        )
    return records, seen


def synth_settings(num_train, num_test, seed, cfg):
    """What synth_config.json records of a generated benchmark: enough to tell whether a cached one matches."""
    return {"seed": seed, "train": num_train, "test": num_test, **cfg.__dict__}


def synth(out_dir, num_train, num_test, seed, cfg):
    """Write out_dir/train.json and out_dir/test.json with their media. Deterministic per seed."""
    train, seen = synth_split(out_dir, "train", num_train, seed, cfg)
    test, _ = synth_split(out_dir, "test", num_test, seed, cfg, avoid=seen)
    for name, records in (("train", train), ("test", test)):
        with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
            json.dump(records, f, indent=1)
    with open(os.path.join(out_dir, "synth_config.json"), "w") as f:
        json.dump(synth_settings(num_train, num_test, seed, cfg), f, indent=1)
    return train, test


# -----------------------------------------------------------------------------
# 6. Command line


def check(path, num_frames=4, min_pixels=28 * 28, max_pixels=112 * 112):
    """Validate a Video-R1 file, decode all its media, print a summary and one line per bad record.
    Returns the number of bad records."""
    from tqdm import tqdm

    good, bad = load_records(path)
    decoded = []
    for record in tqdm(good, desc="decoding", leave=False):
        try:
            load_visual(record, num_frames, min_pixels, max_pixels)
            decoded.append(record)
        except SampleError as e:
            bad.append(e)
    counts = Counter((r["data_type"], r["problem_type"]) for r in decoded)
    print(f"{path}: {len(decoded)} good records, {len(bad)} bad")
    for (data_type, problem_type), n in sorted(counts.items()):
        print(f"  {data_type:6s} {problem_type:20s} {n}")
    for e in bad:
        print(f"BAD problem_id={e.problem_id} file={e.file}: {e.reason}")
    return len(bad)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0].strip(), formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "synth", help="write the synthetic video benchmark", formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--out", required=True, help="output folder (train.json, test.json, media)")
    p.add_argument("--train", type=int, default=600, help="number of training samples")
    p.add_argument("--test", type=int, default=200, help="number of held-out test samples")
    p.add_argument("--seed", type=int, default=0, help="same seed => identical JSON and media")
    defaults = SynthConfig()
    for name in ("width", "height", "frames", "fps", "size", "speed", "distractors", "noise", "image_frac"):
        p.add_argument(
            f"--{name}",
            type=type(getattr(defaults, name)),
            default=getattr(defaults, name),
            help="difficulty/format knob (see SynthConfig)",
        )
    p.add_argument("--families", default=",".join(defaults.families), help="comma-separated question families")
    p.add_argument(
        "--size_percents",
        default="",
        help="comma-separated widths (percent of the frame) a `size` question's square may have; "
        "empty: any whole number from 20 to 80",
    )
    c = sub.add_parser(
        "check", help="validate a Video-R1 JSON/JSONL file and decode its media; exit 1 on any bad record"
    )
    c.add_argument("file")
    c.add_argument("--num_frames", type=int, default=4, help="frames to decode per video")
    args = parser.parse_args(argv)

    if args.command == "synth":
        try:
            percents = parse_percents(args.size_percents)
        except ValueError as e:
            parser.error(str(e))
        cfg = SynthConfig(
            **{
                k: getattr(args, k)
                for k in ("width", "height", "frames", "fps", "size", "speed", "distractors", "noise", "image_frac")
            },
            families=tuple(f.strip() for f in args.families.split(",") if f.strip()),
            size_percents=percents,
        )
        if cfg.width % 2 or cfg.height % 2:
            parser.error("--width and --height must be even (H.264 with yuv420p)")
        unknown = set(cfg.families) - set(SynthConfig().families)
        if unknown:
            parser.error(f"unknown question families {sorted(unknown)}")
        train, test = synth(args.out, args.train, args.test, args.seed, cfg)
        print(f"wrote {len(train)} train and {len(test)} test records to {args.out}")
        print("families:", dict(Counter(r["question_family"] for r in train)))
    elif args.command == "check":
        sys.exit(1 if check(args.file, num_frames=args.num_frames) else 0)


if __name__ == "__main__":
    main()
