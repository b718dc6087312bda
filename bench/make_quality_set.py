"""Build the labeled real-audio set that ``bench/quality.py`` measures retrieval quality on.

    .venv/bin/python bench/make_quality_set.py            # about 1-2 minutes on 2 cores

Everything comes from Debian packages (``apt-get install -y fluidsynth fluid-soundfont-gm
musescore-general-soundfont-small timgm6mb-soundfont csound-soundfont espeak-ng``):

- 12 instrument families: phrases (melodies, chords, bass lines) rendered note by note with
  fluidsynth from four independent General MIDI soundfonts, i.e. four sets of recorded samples;
- 6 drum families (kick, snare, toms, cymbals, hi-hat, hand drums): rhythms on the GM drum kit
  of the same soundfonts;
- 2 speech classes (speech, whispered speech): numbers read by espeak-ng in nine languages.

20 index clips (3-7 s) and 8 queries per class: 4 short ones (3-7 s, one to three 4 s windows)
and 4 long ones (8-14 s, a recording a user might search with). A query never shares a soundfont
(the recordings), a GM program or drum note (the instrument) or a language and voice (the
speaker) with any index clip of its class: index clips come from FluidR3_GM and MuseScore
General, queries from TimGM6mb and csound's sf_GMbank, with programs, notes, voices and languages
split likewise.

Writes ``bench/data/quality/{index,queries}/<class>/*.flac`` (16 kHz mono, peak -1 dBFS) and
``manifest.csv`` (path, label, split, source, instrument, length: short or long, seconds). The
folder is rebuilt from scratch.
"""

from __future__ import annotations

import argparse
import csv
import random
import shutil
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np
import soundfile as sf
import soxr

from audiosearch.audio import SAMPLE_RATE

OUT = Path(__file__).resolve().parent / "data" / "quality"
INDEX_CLIPS_PER_CLASS = 20
QUERIES_PER_CLASS = 8
#: Clip lengths, seconds: index clips and the first half of each class's queries are short.
SHORT_SECONDS = (3.0, 7.0)
LONG_SECONDS = (8.0, 14.0)
#: Silence between rendered phrases, long enough for any release and reverb to die out.
GAP_SECONDS = 3.0
#: Kept after the last note-off of a phrase: the release is part of the sound.
RELEASE_SECONDS = 0.5
PEAK = 10 ** (-1 / 20)
RENDER_RATE = 44_100
TICKS_PER_SECOND = 960  # 480 ticks per beat at mido's default 120 bpm

#: soundfont name -> (Debian file, split that uses it)
SOUNDFONTS = {
    "FluidR3_GM": ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "index"),
    "MuseScore_General": ("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3", "index"),
    "TimGM6mb": ("/usr/share/sounds/sf2/TimGM6mb.sf2", "queries"),
    "sf_GMbank": ("/usr/share/sounds/sf2/sf_GMbank.sf2", "queries"),
}
INDEX_LANGUAGES = ("en", "de", "fr", "es", "it")
QUERY_LANGUAGES = ("nl", "pl", "pt", "sv")


@dataclass(frozen=True)
class Family:
    """A class of sounds: what index clips and queries are made with, split without overlap.

    ``kind`` is ``melodic`` (GM programs), ``drums`` (GM drum-kit notes) or ``speech``
    (espeak-ng voice variants).
    """

    kind: str
    index: tuple[int | str, ...]
    queries: tuple[int | str, ...]
    low: int = 48  # MIDI pitch range of melodic phrases
    high: int = 84
    chords: float = 0.0  # chance that a step of a phrase is a chord


FAMILIES = {
    "piano": Family("melodic", (0, 1), (2, 3), 45, 84, chords=0.4),
    "mallets": Family("melodic", (11, 12), (13, 9), 60, 88),
    "organ": Family("melodic", (16, 19), (17, 20), 43, 79, chords=0.6),
    "acoustic_guitar": Family("melodic", (24,), (25,), 40, 76, chords=0.3),
    "distorted_guitar": Family("melodic", (30,), (29,), 40, 70, chords=0.3),
    "bass": Family("melodic", (33, 34), (32, 35), 28, 52),
    "strings": Family("melodic", (40, 48), (41, 49), 55, 86, chords=0.3),
    "brass": Family("melodic", (56, 61), (57, 60), 48, 77),
    "saxophone": Family("melodic", (65, 66), (64, 67), 45, 77),
    "flute": Family("melodic", (73, 72), (74, 75), 62, 91),
    "choir": Family("melodic", (52,), (53,), 52, 76, chords=0.7),
    "synth_lead": Family("melodic", (80, 81), (86, 87), 48, 84),
    "kick": Family("drums", (36,), (35,)),
    "snare": Family("drums", (38,), (40,)),
    "toms": Family("drums", (41, 45, 48), (43, 47, 50)),
    "cymbals": Family("drums", (49, 51), (57, 59)),
    "hihat": Family("drums", (42, 46), (44,)),
    "hand_drums": Family("drums", (60, 61, 62), (63, 64)),
    "speech": Family("speech", ("m1", "m3", "f1", "f3"), ("m2", "f2")),
    "whisper": Family("speech", ("whisper",), ("whisperf",)),
}

Note = tuple[float, float, int, int]  # start s, duration s, MIDI pitch, velocity


@dataclass(frozen=True)
class Clip:
    """One clip to make: where it goes, its label and what it is made from."""

    label: str
    split: str  # index | queries
    source: str  # soundfont, or espeak-ng language
    instrument: int | str  # GM program, drum note, or voice variant
    number: int
    seed: int
    long: bool = False

    @property
    def path(self) -> Path:
        """Where the clip goes, relative to the set's folder."""
        return Path(
            self.split, self.label, f"{self.source}_{self.instrument}_{self.number:02d}.flac"
        )


def plan() -> list[Clip]:
    """Every clip of the set; sources and instruments rotate so each pairing is used evenly."""
    clips = []
    for label, family in FAMILIES.items():
        for split, count, instruments in (
            ("index", INDEX_CLIPS_PER_CLASS, family.index),
            ("queries", QUERIES_PER_CLASS, family.queries),
        ):
            if family.kind == "speech":
                sources = INDEX_LANGUAGES if split == "index" else QUERY_LANGUAGES
            else:
                sources = tuple(name for name, (_, use) in SOUNDFONTS.items() if use == split)
            for i in range(count):
                instrument = instruments[(i // len(sources)) % len(instruments)]
                seed = zlib.crc32(f"{label}/{split}/{i}".encode())
                long = split == "queries" and i >= count // 2
                source = sources[i % len(sources)]
                clips.append(Clip(label, split, source, instrument, i, seed, long))
    return clips


def melody(rng: random.Random, family: Family, seconds: float) -> list[Note]:
    """A phrase on a random major or minor scale: steps of a random walk, some of them chords."""
    root = rng.randrange(12)
    steps = (0, 2, 4, 5, 7, 9, 11) if rng.random() < 0.5 else (0, 2, 3, 5, 7, 8, 10)
    scale = [p for p in range(family.low, family.high + 1) if (p - root) % 12 in steps]
    beat = rng.uniform(0.3, 0.6)
    position = rng.randrange(len(scale))
    notes: list[Note] = []
    t = 0.0
    while t < seconds:
        length = beat * rng.choice((0.5, 1, 1, 1, 2))
        position = min(max(position + rng.randint(-3, 3), 0), len(scale) - 1)
        velocity = rng.randint(60, 110)
        chord = [0, 2, 4] if rng.random() < family.chords else [0]
        for offset in chord:
            if position + offset < len(scale):
                notes.append((t, length * 0.95, scale[position + offset], velocity))
        t += length
    return notes


def rhythm(rng: random.Random, drums: tuple[int, ...], seconds: float) -> list[Note]:
    """Hits on a random grid, accents on the beat, drum notes drawn from ``drums``."""
    step = rng.choice((0.125, 0.15, 0.2, 0.25))
    density = rng.uniform(0.3, 0.7)
    notes = []
    for i in range(int(seconds / step)):
        if i % 4 == 0 or rng.random() < density:
            velocity = rng.randint(95, 125) if i % 4 == 0 else rng.randint(45, 95)
            notes.append((i * step, step, rng.choice(drums), velocity))
    return notes


def lengths(clip: Clip) -> tuple[float, float]:
    """Shortest and longest the clip may be, seconds."""
    return LONG_SECONDS if clip.long else SHORT_SECONDS


def phrase(clip: Clip) -> list[Note]:
    """The notes of a melodic or drum clip, reproducible from its seed."""
    rng = random.Random(clip.seed)
    family = FAMILIES[clip.label]
    seconds = rng.uniform(*lengths(clip)) - RELEASE_SECONDS
    if family.kind == "drums":
        # A drum clip uses its own note, plus the split's other notes of the family for fills.
        notes = family.index if clip.split == "index" else family.queries
        return rhythm(rng, (clip.instrument, clip.instrument, *notes), seconds)
    return melody(rng, family, seconds)


def write_midi(clips: list[Clip], path: Path) -> list[tuple[float, float]]:
    """All ``clips`` one after another in one MIDI file; each clip's (start, end) in seconds."""
    events: list[tuple[int, int, mido.Message]] = []  # tick, order at that tick, message
    spans = []
    t0 = 0.5
    for clip in clips:
        notes = phrase(clip)
        drums = FAMILIES[clip.label].kind == "drums"
        channel = 9 if drums else 0
        tick = round(t0 * TICKS_PER_SECOND)
        if not drums:
            events.append((tick, 0, mido.Message("program_change", program=clip.instrument)))
        for start, length, pitch, velocity in notes:
            on = round((t0 + start) * TICKS_PER_SECOND)
            off = round((t0 + start + length) * TICKS_PER_SECOND)
            events.append((on, 2, mido.Message("note_on", channel=channel, note=pitch,
                                               velocity=velocity)))  # fmt: skip
            events.append((off, 1, mido.Message("note_off", channel=channel, note=pitch)))
        end = t0 + max(s + n for s, n, _, _ in notes) + RELEASE_SECONDS
        spans.append((t0, end))
        t0 = end + GAP_SECONDS
    track = mido.MidiTrack()
    now = 0
    for tick, _, message in sorted(events, key=lambda e: e[:2]):
        track.append(message.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=round(GAP_SECONDS * TICKS_PER_SECOND)))
    mido.MidiFile(tracks=[track], ticks_per_beat=480).save(path)
    return spans


def render(font: str, clips: list[Clip], workdir: Path) -> list[np.ndarray]:
    """The clips rendered by fluidsynth with soundfont ``font``, as mono float32 at 44.1 kHz."""
    midi, wav = workdir / f"{font}.mid", workdir / f"{font}.wav"
    spans = write_midi(clips, midi)
    # No reverb or chorus: each clip is the dry sound of its own notes.
    subprocess.run(
        ["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.5", "-r", str(RENDER_RATE),
         "-F", str(wav), SOUNDFONTS[font][0], str(midi)],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    audio, rate = sf.read(wav, dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    return [audio[round(a * rate) : round(b * rate)] for a, b in spans]


def speak(clip: Clip, workdir: Path) -> np.ndarray:
    """A few numbers read by espeak-ng in the clip's language and voice, at 22.05 kHz."""
    rng = random.Random(clip.seed)
    count = rng.randint(5, 7) if clip.long else rng.randint(2, 3)
    text = ", ".join(str(rng.randint(2, 999)) for _ in range(count))
    wav = workdir / "speech.wav"
    subprocess.run(
        ["espeak-ng", "-v", f"{clip.source}+{clip.instrument}", "-s", str(rng.randint(140, 190)),
         "-w", str(wav), text],
        check=True,
    )  # fmt: skip
    audio, _ = sf.read(wav, dtype="float32")
    return audio[: round(lengths(clip)[1] * 22_050)]


def save(clip: Clip, audio: np.ndarray, rate: int, out: Path) -> float:
    """Write ``audio`` as the clip's 16 kHz FLAC at -1 dBFS peak; its length in seconds."""
    peak = float(np.abs(audio).max())
    if peak < 1e-4:
        raise SystemExit(f"{clip.path}: rendered silent; is the soundfont {clip.source} complete?")
    audio = soxr.resample(audio * (PEAK / peak), rate, SAMPLE_RATE)
    path = out / clip.path
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.clip(audio, -1, 1), SAMPLE_RATE, subtype="PCM_16")
    return len(audio) / SAMPLE_RATE


def check_requirements() -> None:
    """Exit with the apt-get line to run when a program or soundfont is missing."""
    missing = [p for p in ("fluidsynth", "espeak-ng") if shutil.which(p) is None]
    missing += [path for path, _ in SOUNDFONTS.values() if not Path(path).is_file()]
    if missing:
        raise SystemExit(
            f"missing: {', '.join(missing)}; install them with: apt-get install -y fluidsynth "
            "fluid-soundfont-gm musescore-general-soundfont-small timgm6mb-soundfont "
            "csound-soundfont espeak-ng"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {OUT})")
    out = parser.parse_args().out
    check_requirements()
    if out.is_dir() and any(out.iterdir()) and not (out / "manifest.csv").is_file():
        raise SystemExit(f"{out}: not empty and not a set made here; choose another --out")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    clips = plan()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for font in SOUNDFONTS:
            ours = [c for c in clips if c.source == font]
            for clip, audio in zip(ours, render(font, ours, workdir), strict=True):
                rows.append((clip, save(clip, audio, RENDER_RATE, out)))
            print(f"{font}: {len(ours)} clips")
        for clip in clips:
            if FAMILIES[clip.label].kind == "speech":
                rows.append((clip, save(clip, speak(clip, workdir), 22_050, out)))
    with open(out / "manifest.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "split", "source", "instrument", "length", "seconds"])
        for clip, seconds in sorted(rows, key=lambda r: str(r[0].path)):
            length = "long" if clip.long else "short"
            writer.writerow([clip.path, clip.label, clip.split, clip.source, clip.instrument,
                             length, f"{seconds:.2f}"])  # fmt: skip
    n_index = sum(c.split == "index" for c, _ in rows)
    print(f"{len(FAMILIES)} classes, {n_index} index clips, {len(rows) - n_index} queries -> {out}")


if __name__ == "__main__":
    main()
