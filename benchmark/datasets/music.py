"""``music``: MUSIC solo videos (Zhao et al., "The Sound of Pixels", ECCV 2018) for separation.

The MUSIC release is a list of YouTube ids per instrument; media must be downloaded and
extracted by the user in the Sound of Pixels layout::

    DIR/MUSIC_solo_videos.json             {"videos": {instrument: [youtube_id, ...]}}  (list=solo)
    DIR/MUSIC21_solo_videos.json           the 21-instrument extension                   (list=solo21)
    DIR/audio/<instrument>/<id>.wav        the video's audio track (any rate, mono or stereo)
    DIR/frames/<instrument>/<id>.mp4/000001.jpg, 000002.jpg, ...   frames at ``fps`` (default 8)

The json lists may also sit in ``DIR/music/``, ``DIR/annotations/music/`` or ``DIR/metadata/``.
Sound of Pixels ships mp3 audio; decoding mp3 needs libraries this suite does not depend on,
so an mp3 without a wav beside it is an error that says how to convert it. Videos of the
list that are absent on disk (many were removed from YouTube) are skipped and counted in
``spec.extra["missing_videos"]``.

A clip is the centred ``clip_seconds`` (default 6 s, as Sound of Pixels) of a solo video at
11,025 Hz. Splits are 80/10/10 % per instrument by a stable hash of the video id (MUSIC
has no official split; at least one val and one test video per instrument). Fields:
``labels`` = instrument; ``sources`` and ``waveforms`` = the clip's waveform
(the suite mixes clips of different instruments: mix-and-separate); ``audio`` = log-mel of
the clip in T = 3 segments (40 bands x 8 frames each), standardised with train statistics;
``visual`` = T frames at the segment centres, ``(T, 3, S, S)`` uint8 with S = ``image_size``
(default 64); ``frames`` = the middle frame.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..interface import DataSpec
from ._io import (
    cache_key,
    cached_arrays,
    locate,
    need_file,
    parse_option,
    read_image,
    read_wav,
    resample,
    resolve_root,
    segment_log_mel,
    stable_fraction,
    standardise,
)
from .base import AVSplit, InMemoryDataset
from .filehash import combine, files_digest
from .registry import register_dataset

VERSION = "1"
SAMPLE_RATE = 11025
SEGMENTS = 3
FRAMES_PER_SEGMENT = 8
N_MELS = 40
N_FFT = 1024
LISTS = {"solo": "MUSIC_solo_videos.json", "solo21": "MUSIC21_solo_videos.json", "duet": "MUSIC_duet_videos.json"}
QUICK_SIZES = {"train": 80, "val": 20, "test": 20}
LAYOUT = ("DIR/MUSIC_solo_videos.json + DIR/audio/<instrument>/<id>.wav + DIR/frames/<instrument>/<id>.mp4/"
          "000001.jpg ... (Sound of Pixels layout)")


def read_video_list(path: Path) -> dict[str, list[str]]:
    """``{"videos": {instrument: [youtube_id, ...]}}`` -> ``{instrument: ids}`` (validated)."""
    need_file(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(path, None, f"not valid JSON ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("videos"), dict):
        raise InputError(path, "videos", "expected an object {\"videos\": {instrument: [youtube_id, ...]}}")
    out: dict[str, list[str]] = {}
    for inst, ids in data["videos"].items():
        if not isinstance(ids, list) or not all(isinstance(i, str) and i and "/" not in i for i in ids):
            raise InputError(path, f"videos.{inst}", "expected a list of YouTube id strings")
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise InputError(path, f"videos.{inst}", f"duplicate id {dup!r}")
        out[inst] = list(ids)
    if not out:
        raise InputError(path, "videos", "no instruments")
    return out


@dataclass(frozen=True)
class MusicConfig:
    list: str = "solo"
    clip_seconds: float = 6.0
    image_size: int = 64
    fps: int = 8
    quick: bool = False


@dataclass(frozen=True)
class Video:
    instrument: str
    vid: str
    audio: Path
    frames: Path
    n_frames: int


def find_videos(folder: Path, videos: dict[str, list[str]]) -> tuple[list[Video], int]:
    """Listed videos present on disk, and how many are missing."""
    found, missing = [], 0
    for inst in sorted(videos):
        for vid in videos[inst]:
            wav = folder / "audio" / inst / f"{vid}.wav"
            mp3 = wav.with_suffix(".mp3")
            fdir = folder / "frames" / inst / f"{vid}.mp4"
            if not wav.exists():
                if mp3.exists():
                    raise InputError(mp3, None, "mp3 audio is not decoded by this suite; convert it to wav beside it "
                                                "(e.g. ffmpeg -i X.mp3 X.wav)")
                missing += 1
                continue
            n = len(list(fdir.glob("*.jpg"))) if fdir.is_dir() else 0
            if n == 0:
                missing += 1
                continue
            found.append(Video(inst, vid, wav, fdir, n))
    return found, missing


def _frame_path(v: Video, t: float, fps: int) -> Path:
    """The extracted frame nearest to time ``t`` (1-based ``%06d.jpg`` numbering), clamped to what exists."""
    idx = min(max(1, int(round(t * fps)) + 1), v.n_frames)
    p = v.frames / f"{idx:06d}.jpg"
    if not p.exists():
        raise InputError(p, None, f"frame not found ({v.n_frames} jpg files in the folder, expected 000001.jpg ...)")
    return p


def _clip_start(n_samples: int, cfg: MusicConfig) -> int:
    """First sample (at ``SAMPLE_RATE``) of the centred clip of a track of ``n_samples``."""
    return max(0, (n_samples - int(round(cfg.clip_seconds * SAMPLE_RATE))) // 2)


def _clip_frames(v: Video, start: int, cfg: MusicConfig) -> list[Path]:
    """The frames a clip starting at sample ``start`` shows: one per segment centre, then the middle one."""
    t0, seg = start / SAMPLE_RATE, cfg.clip_seconds / SEGMENTS
    return [_frame_path(v, t0 + (k + 0.5) * seg, cfg.fps) for k in range(SEGMENTS)] + [
        _frame_path(v, t0 + cfg.clip_seconds / 2, cfg.fps)]


def _resampled_length(path: Path) -> int:
    """Samples of a WAV file at ``SAMPLE_RATE`` (as :func:`resample` makes them), reading the header only."""
    from math import gcd

    from scipy.io import wavfile

    try:
        sr, data = wavfile.read(path, mmap=True)
        n = int(data.shape[0])
    except (ValueError, OSError, EOFError):  # formats mmap cannot map: read it
        x, sr = read_wav(path)
        n = len(x)
    if sr == SAMPLE_RATE:
        return n
    g = gcd(int(sr), SAMPLE_RATE)
    up, down = SAMPLE_RATE // g, int(sr) // g
    return -(-n * up // down)  # scipy.signal.resample_poly: ceil(n * up / down)


def input_files(videos: list[Video], cfg: MusicConfig) -> list[Path]:
    """Every file a build reads: each video's wav and the frames its clip shows."""
    out: list[Path] = []
    for v in videos:
        out += [v.audio, *_clip_frames(v, _clip_start(_resampled_length(v.audio), cfg), cfg)]
    return out


def build_arrays(videos: list[Video], split: np.ndarray, cfg: MusicConfig) -> dict[str, np.ndarray]:
    clip_len = int(round(cfg.clip_seconds * SAMPLE_RATE))
    waves, visual, middle = [], [], []
    for v in videos:
        x, sr = read_wav(v.audio)
        x = resample(x, sr, SAMPLE_RATE)
        start = _clip_start(len(x), cfg)
        wave = np.pad(x[start : start + clip_len], (0, max(0, clip_len - len(x[start : start + clip_len]))))
        waves.append(wave)
        *seg_frames, mid = _clip_frames(v, start, cfg)
        visual.append(np.stack([read_image(p, cfg.image_size) for p in seg_frames]))
        middle.append(read_image(mid, cfg.image_size))
    w = np.stack(waves).astype(np.float32)
    feats = segment_log_mel(w, SAMPLE_RATE, segments=SEGMENTS, frames_per_segment=FRAMES_PER_SEGMENT, n_mels=N_MELS,
                            n_fft=N_FFT, fmin=30.0)
    return {"audio": standardise(feats, np.flatnonzero(split == 0)), "visual": np.stack(visual),
            "frames": np.stack(middle), "waves": w, "split": split}


def assign_splits(videos: list[Video]) -> np.ndarray:
    """0/1/2 per video: per instrument, videos ordered by a stable hash of their id give 10 % test,
    10 % val (at least one each when the instrument has 3 or more videos) and the rest train."""
    code = np.zeros(len(videos), dtype=np.int64)
    for inst in {v.instrument for v in videos}:
        rows = sorted((i for i, v in enumerate(videos) if v.instrument == inst),
                      key=lambda i: stable_fraction(videos[i].vid))
        n = len(rows)
        n_held = max(1, int(round(0.1 * n))) if n >= 3 else 0
        code[rows[:n_held]] = 2
        code[rows[n_held : 2 * n_held]] = 1
    return code


@register_dataset(
    "music",
    tasks=("separation",),
    layout=LAYOUT,
    licence="video id lists: public (github.com/roudimit/MUSIC_dataset); media: YouTube terms, research use",
    citation=("H. Zhao, C. Gan, A. Rouditchenko, C. Vondrick, J. McDermott, A. Torralba, The Sound of Pixels, "
              "ECCV 2018; H. Zhao et al., The Sound of Motions, ICCV 2019 (MUSIC-21)"),
    needs_data_root=True,
    description="MUSIC solo instrument videos (11 or 21 instruments) for mix-and-separate source separation",
    homepage="https://github.com/roudimit/MUSIC_dataset (video lists); https://github.com/hangzhaomit/Sound-of-Pixels",
    options={"list": "solo (default, 11 instruments) or solo21 (MUSIC-21)",
             "clip_seconds": "seconds per clip, centred in the video (default 6)",
             "image_size": "side of the square RGB frames (default 64)",
             "fps": "frame rate of the extracted frames folders (default 8, as Sound of Pixels)"},
)
def load_music(*, data_root: Path | None, options: dict[str, Any], quick: bool, seed: int) -> InMemoryDataset:
    root = resolve_root(data_root, "music", LAYOUT)
    cfg = MusicConfig(
        list=parse_option(options, "music", "list", str, "solo", choices=("solo", "solo21")),
        clip_seconds=parse_option(options, "music", "clip_seconds", float, 6.0, minimum=0.5),
        image_size=parse_option(options, "music", "image_size", int, 64, minimum=8),
        fps=parse_option(options, "music", "fps", int, 8, minimum=1),
        quick=bool(quick),
    )
    ann = locate(root, LISTS[cfg.list], ("music", "annotations/music", "metadata"))
    folder = root if (root / "audio").is_dir() else ann
    listed = read_video_list(ann / LISTS[cfg.list])
    instruments = tuple(sorted(listed))
    videos, missing = find_videos(folder, listed)
    if not videos:
        raise InputError(folder / "audio", None, f"none of the {sum(map(len, listed.values()))} listed videos has "
                                                 f"audio/<instrument>/<id>.wav and frames ({LAYOUT})")
    code = assign_splits(videos)
    if quick:
        keep = np.zeros(len(videos), dtype=bool)
        for c, s in enumerate(("train", "val", "test")):
            keep[np.flatnonzero(code == c)[: QUICK_SIZES[s]]] = True
        videos, code = [v for v, k in zip(videos, keep) if k], code[keep]
    for c, s in enumerate(("train", "val", "test")):
        if not (code == c).any():
            raise InputError(folder / "audio", None, f"too few videos ({len(videos)}) for a {s} split")
    order = np.argsort(code, kind="stable")
    videos, code = [videos[i] for i in order], code[order]
    # content of the list and of every wav and frame a clip uses (memoised per file state)
    files = files_digest([ann / LISTS[cfg.list], *input_files(videos, cfg)])
    key = cache_key("music", {"version": VERSION, **asdict(cfg), "ids": [v.vid for v in videos], "files": files})
    arrays, digest = cached_arrays(key, lambda: build_arrays(videos, code, cfg))
    labels = np.asarray([instruments.index(v.instrument) for v in videos], dtype=np.int64)
    splits = {}
    for c, s in enumerate(("train", "val", "test")):
        sel = np.flatnonzero(arrays["split"] == c)
        splits[s] = AVSplit(audio=arrays["audio"][sel], visual=arrays["visual"][sel], labels=labels[sel],
                            sources=arrays["waves"][sel], waveforms=arrays["waves"][sel], frames=arrays["frames"][sel],
                            ids=[f"{videos[i].instrument}/{videos[i].vid}" for i in sel])
    spec = DataSpec(
        name="music", audio_shape=(SEGMENTS, FRAMES_PER_SEGMENT * N_MELS),
        visual_shape=(SEGMENTS, 3, cfg.image_size, cfg.image_size), num_classes=len(instruments),
        class_names=instruments, sample_rate=SAMPLE_RATE, visual_is_image=True,
        extra={"config": asdict(cfg), "missing_videos": missing, "segment_samples":
               int(round(cfg.clip_seconds * SAMPLE_RATE)) // SEGMENTS},
    )
    return InMemoryDataset(spec=spec, splits=splits, content_hash=combine(digest, files))
