"""data.py: schema, loading, decoding, frame sampling and budgets, the synthetic benchmark, `check`."""

import filecmp
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
import torch

import data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --- frame sampling and pixel budgets -----------------------------------------------------------


@pytest.mark.parametrize("h,w", [(112, 112), (360, 640), (1080, 1920), (50, 70), (29, 500), (720, 1280)])
@pytest.mark.parametrize("min_pixels,max_pixels", [(56 * 56, 112 * 112), (128 * 28 * 28, 768 * 28 * 28)])
def test_fit_pixels_multiples_of_28_within_budget_and_same_as_transformers(h, w, min_pixels, max_pixels):
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    rh, rw = data.fit_pixels(h, w, min_pixels, max_pixels)
    assert rh % 28 == 0 and rw % 28 == 0
    assert rh * rw <= max_pixels
    assert rh * rw >= min_pixels or (rh, rw) == smart_resize(h, w, 28, min_pixels, max_pixels)
    assert (rh, rw) == smart_resize(h, w, 28, min_pixels, max_pixels)


def test_sample_indices_uniform_with_first_and_last():
    assert data.sample_indices(16, 4) == [0, 5, 10, 15]
    assert data.sample_indices(16, 2) == [0, 15]
    assert data.sample_indices(3, 4) == [0, 1, 1, 2]  # fewer frames than asked: repeats, never out of range


def test_load_video_samples_resizes_and_keeps_the_frame_rate(synth_dir):
    records, bad = data.load_records(os.path.join(synth_dir, "train.json"))
    assert not bad
    video = next(r for r in records if r["data_type"] == "video")
    visual = data.load_video(video["_media"], 4, 28 * 28, 56 * 56)
    assert visual.frames.shape == (4, 3, 56, 56) and visual.frames.dtype == torch.uint8
    md = visual.metadata
    assert md.total_num_frames == 16 and md.fps == 8.0 and md.frames_indices == [0, 5, 10, 15]
    assert md.sampled_fps == pytest.approx(2.0)  # 4 of 16 frames of an 8 fps clip


def test_shuffle_is_never_identity_and_noise_is_seeded():
    frames = torch.arange(4).view(4, 1, 1, 1).expand(4, 3, 28, 28).to(torch.uint8)
    visual = data.Visual("video", frames)
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        shuffled, perm = data.shuffle_frames(visual, g)
        assert not torch.equal(perm, torch.arange(4))
        assert torch.equal(shuffled.frames[:, 0, 0, 0], perm.to(torch.uint8))
    a = data.add_frame_noise(visual, 0.1, torch.Generator().manual_seed(1)).frames
    b = data.add_frame_noise(visual, 0.1, torch.Generator().manual_seed(1)).frames
    assert torch.equal(a, b) and a.dtype == torch.uint8 and not torch.equal(a, frames)
    assert 15 < (a.float() - frames.float()).std() < 35  # std 0.1 of 255, a little less after clipping at 0


# --- the synthetic benchmark ----------------------------------------------------------------------


def _sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_synth_is_deterministic_and_splits_are_disjoint(tmp_path, synth_dir):
    cfg = data.SynthConfig(image_frac=0.2)
    data.synth(str(tmp_path / "a"), 28, 12, seed=3, cfg=cfg)
    for name in ("train.json", "test.json"):
        assert open(tmp_path / "a" / name).read() == open(os.path.join(synth_dir, name)).read()
    data.synth(str(tmp_path / "b"), 28, 12, seed=4, cfg=cfg)
    assert open(tmp_path / "b" / "train.json").read() != open(tmp_path / "a" / "train.json").read()
    train = json.load(open(os.path.join(synth_dir, "train.json")))
    test = json.load(open(os.path.join(synth_dir, "test.json")))
    train_media = {_sha(os.path.join(synth_dir, r["path"])) for r in train}
    assert not train_media & {_sha(os.path.join(synth_dir, r["path"])) for r in test}


def test_synth_media_are_byte_identical_whatever_memory_held(tmp_path):
    """Two builds of one benchmark give the same bytes, media included, even when freshly allocated memory
    holds different garbage (MALLOC_PERTURB_): the encoder must not read memory it has not written."""
    hashes = []
    for fill in ("85", "170"):
        out = tmp_path / fill
        run = subprocess.run(
            [
                sys.executable,
                "data.py",
                "synth",
                "--out",
                str(out),
                "--train",
                "16",
                "--test",
                "4",
                "--seed",
                "0",
                "--families",
                "approach,direction",
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, "MALLOC_PERTURB_": fill},
        )
        assert run.returncode == 0, run.stderr
        hashes.append({p.relative_to(out).as_posix(): _sha(p) for p in sorted(out.rglob("*")) if p.is_file()})
    assert len(hashes[0]) == 16 + 4 + 3 and hashes[0] == hashes[1]


def test_synth_schema_mixes_kinds_and_answer_types(synth_dir):
    records, bad = data.load_records(os.path.join(synth_dir, "train.json"))
    assert not bad and len(records) == 28
    for r in records:
        assert set(r) >= {
            "problem_id",
            "problem",
            "data_type",
            "problem_type",
            "options",
            "process",
            "solution",
            "path",
            "data_source",
            "temporal",
            "question_family",
        }
        assert r["process"].startswith("<think>") and r["process"].endswith("</think>")
        assert r["temporal"] == (r["question_family"] in data.TEMPORAL_FAMILIES)
        if r["data_type"] == "image":
            assert not r["temporal"]
    assert {r["temporal"] for r in records} == {True, False}
    assert {r["data_type"] for r in records} == {"video", "image"}
    assert {r["problem_type"] for r in records} == {"multiple choice", "numerical", "regression"}


def test_synth_answers_match_the_pictures():
    """The generator draws what it says: a rightward mover's mass moves right, a square 40% wide is 40% wide."""
    cfg = data.SynthConfig()
    rng = np.random.default_rng(0)
    for _ in range(20):
        frames, fields, _ = data.synth_sample("direction", rng, cfg, as_image=False)
        mass = frames.astype(float).sum(-1) > 3 * 40  # [F, H, W] object pixels
        xs = [np.nonzero(m)[1].mean() for m in mass]
        ys = [np.nonzero(m)[0].mean() for m in mass]
        direction = data.DIRECTIONS[ord(data.answer_of(fields["solution"])) - 65]
        delta = {"left": xs[0] - xs[-1], "right": xs[-1] - xs[0], "up": ys[0] - ys[-1], "down": ys[-1] - ys[0]}[
            direction
        ]
        assert delta > 0.5 * cfg.speed * (cfg.width * (1 - cfg.size * 1.15))
    frames, fields, _ = data.synth_sample("size", np.random.default_rng(1), cfg, as_image=True)
    percent = float(data.answer_of(fields["solution"]))
    widest_row = (frames[0].astype(float).sum(-1) > 3 * 40).sum(1).max()  # the square's width in pixels
    assert abs(widest_row / cfg.width * 100 - percent) <= 2


def test_size_percents_restrict_the_widths_drawn():
    """SynthConfig.size_percents: every `size` square has one of the given widths, drawn that wide, and its
    signature holds its exact position; bad lists are refused with the list in the message."""
    cfg = data.SynthConfig(size_percents=(20, 50, 80))
    rng = np.random.default_rng(2)
    seen = set()
    for _ in range(30):
        frames, fields, signature = data.synth_sample("size", rng, cfg, as_image=True)
        percent = int(data.answer_of(fields["solution"]))
        widest_row = (frames[0].astype(float).sum(-1) > 3 * 40).sum(1).max()
        assert percent in (20, 50, 80) and abs(widest_row / cfg.width * 100 - percent) <= 2
        seen.add(percent)
        assert signature[1] == percent and len(signature) == 5
    assert seen == {20, 50, 80}
    assert data.parse_percents("20, 50,80") == (20, 50, 80) and data.parse_percents("") == ()
    for bad, why in (("20,x", "whole numbers"), ("0,50", "between 1 and 100"), ("20,120", "between 1 and 100")):
        with pytest.raises(ValueError, match=rf"size percents '{bad}': .*{why}"):
            data.parse_percents(bad)


def test_size_percents_synth_keeps_splits_apart(tmp_path):
    """Few widths: with exact positions in the signature, 300 training records do not exhaust any width's
    parameters (with 8-pixel bins an 80% square has 16 positions per colour), and the test split gets every width."""
    cfg = data.SynthConfig(families=("size",), size_percents=(20, 50, 80), frames=4, image_frac=0.5)
    train, test = data.synth(str(tmp_path), 300, 30, seed=0, cfg=cfg)
    counts = Counter(data.answer_of(r["solution"]) for r in train)
    # no width runs out of positions
    assert set(counts) == {"20", "50", "80"} and min(counts.values()) >= 300 / 4, counts
    assert {data.answer_of(r["solution"]) for r in test} == {"20", "50", "80"}
    assert json.load(open(tmp_path / "synth_config.json"))["size_percents"] == [20, 50, 80]


def test_afterthoughts_share_changes_only_the_reasoning(tmp_path):
    """--synth_afterthoughts: the media and questions stay those of the benchmark without them; a share of 1 is
    the benchmark of `afterthoughts: true` (one draw per record), 0.5 offers an afterthought to about half the
    records (each draws one of four, one empty), 0 to none."""
    cfg = data.SynthConfig(families=("color", "approach"), frames=4)
    made = {}
    for share in (0.0, 0.5, 1.0):
        records, _ = data.synth_split(str(tmp_path / str(share)), "train", 40, 0, replace(cfg, afterthoughts=share))
        made[share] = records
    plain = made[0.0]
    for share in (0.5, 1.0):
        for a, b in zip(plain, made[share]):
            assert {k: v for k, v in a.items() if k != "process"} == {k: v for k, v in b.items() if k != "process"}
            tail = b["process"][len(a["process"]) - len("</think>") : -len("</think>")].strip()
            assert b["process"].startswith(a["process"][: -len("</think>")]) and tail in data.AFTERTHOUGHTS
        media = sorted(os.listdir(tmp_path / str(share) / "train"))
        assert all(
            filecmp.cmp(tmp_path / "0.0" / "train" / m, tmp_path / str(share) / "train" / m, shallow=False)
            for m in media
        )
    longer = {s: sum(b["process"] != a["process"] for a, b in zip(plain, made[s])) for s in (0.5, 1.0)}
    assert 0 < longer[0.5] < longer[1.0] < 40, longer  # 1.0: about 3 in 4 (one afterthought is empty)


# --- loading Video-R1 files -----------------------------------------------------------------------

VIDEO_R1_RECORD = {  # the exact layout of a Video-R1-260k / Video-R1-COT-165k record
    "problem_id": 2,
    "problem": "What appears on the screen in Russian during the missile's ascent?",
    "data_type": "video",
    "problem_type": "multiple choice",
    "options": ["A. Rocket launch", "B. Missile test", "C. Flight path", "D. Space mission"],
    "process": "<think>Let me think about the frames.</think>",
    "solution": "<answer>B</answer>",
    "path": "./LLaVA-Video-178K/videos/ytb_7nRmsEw7nsE.mp4",
    "data_source": "LLaVA-Video-178K/2_3_m_youtube_v0_1",
}


def _copy_video(synth_dir, dest):
    src = next(
        os.path.join(synth_dir, "train", f)
        for f in sorted(os.listdir(os.path.join(synth_dir, "train")))
        if f.endswith(".mp4")
    )
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    shutil.copy(src, dest)


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_loads_a_video_r1_record_unchanged(tmp_path, synth_dir, fmt):
    _copy_video(synth_dir, tmp_path / "LLaVA-Video-178K" / "videos" / "ytb_7nRmsEw7nsE.mp4")
    path = tmp_path / f"Video-R1-260k.{fmt}"
    path.write_text(json.dumps([VIDEO_R1_RECORD]) if fmt == "json" else json.dumps(VIDEO_R1_RECORD) + "\n")
    records, bad = data.load_records(str(path))
    assert not bad and len(records) == 1
    r = records[0]
    assert {k: r[k] for k in VIDEO_R1_RECORD} == VIDEO_R1_RECORD
    assert r["_media"] == str(tmp_path / "LLaVA-Video-178K" / "videos" / "ytb_7nRmsEw7nsE.mp4")
    assert data.load_visual(r, 4, 28 * 28, 56 * 56).frames.shape[0] == 4
    text = data.question_text(r)
    assert "Options:\nA. Rocket launch\nB. Missile test" in text and "<think>" in text and "<answer>" in text
    assert data.sft_target(r) == "<think>Let me think about the frames.</think>\n<answer>B</answer>"


def test_eval_style_object_and_absolute_paths(tmp_path, synth_dir):
    _copy_video(synth_dir, tmp_path / "v.mp4")
    record = dict(VIDEO_R1_RECORD, path=str(tmp_path / "v.mp4"))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "eval.json").write_text(json.dumps({"results": [record]}))
    records, bad = data.load_records(str(tmp_path / "sub" / "eval.json"))
    assert not bad and records[0]["_media"] == str(tmp_path / "v.mp4")


def _faulty_file(tmp_path, synth_dir):
    _copy_video(synth_dir, tmp_path / "good.mp4")
    (tmp_path / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    records = [
        dict(VIDEO_R1_RECORD, problem_id="ok-1", path="good.mp4"),
        dict(VIDEO_R1_RECORD, problem_id="missing-2", path="nowhere.mp4"),
        dict(VIDEO_R1_RECORD, problem_id="corrupt-3", path="corrupt.mp4"),
        {k: v for k, v in dict(VIDEO_R1_RECORD, problem_id="nosolution-4", path="good.mp4").items() if k != "solution"},
        dict(VIDEO_R1_RECORD, problem_id="badletter-5", path="good.mp4", solution="<answer>Z</answer>"),
    ]
    path = tmp_path / "faulty.json"
    path.write_text(json.dumps(records))
    return path


def test_loader_skips_bad_records_by_id_or_stops_when_strict(tmp_path, synth_dir):
    path = _faulty_file(tmp_path, synth_dir)
    records, bad = data.load_records(str(path))
    assert [r["problem_id"] for r in records] == ["ok-1", "corrupt-3"]  # corrupt media is found when decoded
    assert {e.problem_id for e in bad} == {"missing-2", "nosolution-4", "badletter-5"}
    assert all(e.file == str(path) for e in bad)
    with pytest.raises(data.SampleError, match="missing-2"):
        data.load_records(str(path), strict=True)
    with pytest.raises(data.SampleError, match="corrupt-3.*cannot decode"):
        data.load_visual(records[1], 4, 28 * 28, 56 * 56)


def test_check_reports_every_fault_by_id_and_exits_nonzero(tmp_path, synth_dir):
    path = _faulty_file(tmp_path, synth_dir)
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "data.py"), "check", str(path)], capture_output=True, text=True, cwd=ROOT
    )
    assert out.returncode == 1, out.stderr
    bad_lines = [line for line in out.stdout.splitlines() if line.startswith("BAD")]
    assert len(bad_lines) == 4
    for pid, reason in [
        ("missing-2", "not found"),
        ("corrupt-3", "cannot decode"),
        ("nosolution-4", "missing field 'solution'"),
        ("badletter-5", "option letters"),
    ]:
        assert any(f"problem_id={pid}" in line and reason in line for line in bad_lines), (pid, out.stdout)
    assert "1 good records, 4 bad" in out.stdout


def test_synth_and_check_command_line(tmp_path):
    out = subprocess.run(
        [sys.executable, "data.py", "synth", "--out", str(tmp_path), "--train", "6", "--test", "3", "--seed", "7"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    for split in ("train", "test"):
        check = subprocess.run(
            [sys.executable, "data.py", "check", str(tmp_path / f"{split}.json")],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        assert check.returncode == 0, check.stdout + check.stderr
        assert "0 bad" in check.stdout


def _write_video(path, frames, fps, options, pts_step=None):
    """An H.264 mp4 with the given x264 options; pts_step: per-frame time steps (in 1/fps/10 units) for a
    variable rate."""
    import fractions

    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = options
        if pts_step is not None:
            stream.codec_context.time_base = fractions.Fraction(1, fps * 10)
        pts = 0
        for i, frame in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            if pts_step is not None:
                vf.pts, vf.time_base = pts, fractions.Fraction(1, fps * 10)
                pts += pts_step[i % len(pts_step)]
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _full_decode(path):
    import av

    with av.open(str(path)) as container:
        decoded = sorted(((f.pts, f.to_ndarray(format="rgb24")) for f in container.decode(video=0)), key=lambda x: x[0])
    return [torch.from_numpy(a).permute(2, 0, 1) for _, a in decoded]


def _frames(n, size=32, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (n, size, size, 3), dtype=np.uint8)
    return np.ascontiguousarray(np.repeat(np.repeat(base[:, ::8, ::8], 8, 1), 8, 2))  # blocky: each frame distinct


@pytest.mark.parametrize("kind", ["synthetic", "b-frames", "variable rate"])
def test_decode_frames_equals_a_full_decode(synth_dir, tmp_path, kind):
    """Seeking to the sampled frames gives the frames a full decode has at those positions."""
    if kind == "synthetic":
        records, _ = data.load_records(os.path.join(synth_dir, "train.json"))
        path = next(r for r in records if r["data_type"] == "video")["_media"]
    else:
        path = tmp_path / "v.mp4"
        options = {
            "crf": "18",
            "x264-params": "keyint=12:min-keyint=12:bframes=3" if kind == "b-frames" else "keyint=10:min-keyint=10",
        }
        _write_video(path, _frames(60), 10, options, pts_step=[7, 13, 10] if kind == "variable rate" else None)
    full = _full_decode(path)
    for num_frames in (4, 16):
        frames, _, total, wanted, _ = data.decode_frames(str(path), num_frames)
        assert total == len(full) and wanted == data.sample_indices(len(full), num_frames)
        for got, i in zip(frames, wanted):
            assert torch.equal(got, full[i]), (kind, i)


def test_decoding_cost_follows_the_frames_kept(tmp_path):
    """A 900-frame video with a keyframe every 30: 16 sampled frames decode at most one GOP each, not 900."""
    path = tmp_path / "long.mp4"
    _write_video(path, _frames(900, size=16), 30, {"crf": "30", "x264-params": "keyint=30:min-keyint=30:bframes=2"})
    frames, _, total, wanted, decoded = data.decode_frames(str(path), 16)
    assert total == 900 and len(frames) == 16
    assert decoded <= 16 * 30 and decoded < 900 / 2, decoded
