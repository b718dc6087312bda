#!/usr/bin/env bash
# Regenerates toy-data/: short, real, redistributable audio clips used by the
# tests and the demo of the audio similarity search service, plus
# toy-data/ATTRIBUTION.md (a table of every clip, how it was made and its
# license).
#
# Needs these Debian packages (apt-get install -y ...):
#   fluidsynth fluid-soundfont-gm sox espeak-ng ffmpeg sound-theme-freedesktop
#   python3
# (sox only reads/writes WAV here; every other format is decoded/encoded by
# ffmpeg, so libsox-fmt-all is not required.)
#
# Usage: bash scripts/make_toy_data.sh
#
# Determinism: every step is meant to give the same bytes on every run on the
# same package versions: MIDI files are written by the embedded Python code
# from fixed note lists, the noise "whoosh" uses Python's random.Random with a
# fixed seed, sox runs with -R (repeatable mode: fixed seeds for its dither and
# noise generators), and ffmpeg runs with bitexact flags and no metadata.
# Different versions of fluidsynth, espeak-ng, sox or the ffmpeg encoders may
# still produce slightly different samples; if you ever add a `sox synth
# whitenoise` effect without -R, its output differs on each run (that would
# be acceptable for these clips, but keep it in mind when comparing hashes).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/toy-data"
SF2=/usr/share/sounds/sf2/FluidR3_GM.sf2
FD=/usr/share/sounds/freedesktop/stereo

# ---------------------------------------------------------------- checks
missing=()
need_cmd() { command -v "$1" >/dev/null 2>&1 || missing+=("$1 (Debian package: $2)"); }
need_file() { [[ -e "$1" ]] || missing+=("$1 (Debian package: $2)"); }
need_cmd fluidsynth fluidsynth
need_cmd sox sox
need_cmd espeak-ng espeak-ng
need_cmd ffmpeg ffmpeg
need_cmd ffprobe ffmpeg
need_cmd python3 python3
need_file "$SF2" fluid-soundfont-gm
need_file "$FD/camera-shutter.oga" sound-theme-freedesktop
need_file "$FD/alarm-clock-elapsed.oga" sound-theme-freedesktop
need_file "$FD/trash-empty.oga" sound-theme-freedesktop
if ((${#missing[@]})); then
  echo "make_toy_data.sh: missing requirements:" >&2
  printf '  - %s\n' "${missing[@]}" >&2
  echo "Install them with: apt-get install -y fluidsynth fluid-soundfont-gm sox espeak-ng ffmpeg sound-theme-freedesktop python3" >&2
  exit 1
fi

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$OUT" "$TMP/mid"

# Remove previously generated clips (ATTRIBUTION.md is rewritten below).
find "$OUT" -maxdepth 1 -type f \( -name '*.wav' -o -name '*.flac' -o -name '*.ogg' \
  -o -name '*.mp3' -o -name '*.m4a' -o -name '*.opus' \) -delete

FF=(ffmpeg -nostdin -hide_banner -loglevel error -y)
FFBITEXACT=(-map_metadata -1 -fflags +bitexact -flags:a +bitexact)

# ---------------------------------------------------------------- MIDI files
# Writes one Standard MIDI File (format 0) per instrument/percussion clip.
python3 - "$TMP/mid" <<'PY'
import os
import struct
import sys

OUTDIR = sys.argv[1]
TPB = 480  # ticks per beat
NAMES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def pitch(tok):
    semis = NAMES[tok[0]]
    rest = tok[1:]
    if rest[0] == "#":
        semis, rest = semis + 1, rest[1:]
    elif rest[0] == "b":
        semis, rest = semis - 1, rest[1:]
    return 12 * (int(rest) + 1) + semis


def seq(text, ch=0, t0=0.0, vel=90, legato=0.95, ring=0.0):
    """'C4/1 E4+G4/0.5@100 r/0.5' -> notes (start, dur, pitch, vel, ch)."""
    notes, t = [], t0
    for tok in text.split():
        body, _, v = tok.partition("@")
        ptxt, dur = body.split("/")
        dur = float(dur)
        if ptxt != "r":
            for p in ptxt.split("+"):
                notes.append((t, dur * legato + ring, pitch(p), int(v or vel), ch))
        t += dur
    return notes


def grid(pattern, note, step, t0=0.0, ch=9, accent=115, soft=70):
    """Drum grid: 'x' accented hit, 'o' soft hit, '.' rest."""
    notes = []
    for i, c in enumerate(pattern.replace(" ", "")):
        if c in "xo":
            notes.append((t0 + i * step, step * 0.9, note, accent if c == "x" else soft, ch))
    return notes


def vlq(n):
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    return bytes(reversed(out))


def write_mid(name, bpm, notes, programs, tail_beats=2.0):
    ev = [(0, 0, b"\xff\x51\x03" + struct.pack(">I", round(60e6 / bpm))[1:])]
    for ch, prog in programs.items():
        ev.append((0, 1, bytes([0xC0 | ch, prog])))
        ev.append((0, 1, bytes([0xB0 | ch, 7, 110])))  # channel volume
    last = 0
    for start, dur, p, v, ch in notes:
        t0, t1 = round(start * TPB), round((start + dur) * TPB)
        ev.append((t0, 3, bytes([0x90 | ch, p, v])))
        ev.append((t1, 2, bytes([0x80 | ch, p, 0])))
        last = max(last, t1)
    ev.sort(key=lambda e: (e[0], e[1]))
    ev.append((last + round(tail_beats * TPB), 9, b"\xff\x2f\x00"))
    data, now = b"", 0
    for t, _, msg in ev:
        data += vlq(t - now) + msg
        now = t
    with open(os.path.join(OUTDIR, name + ".mid"), "wb") as f:
        f.write(b"MThd" + struct.pack(">IHHH", 6, 0, 1, TPB))
        f.write(b"MTrk" + struct.pack(">I", len(data)) + data)


# ---- melodic instruments (General MIDI program numbers, 0-based)
rh = ("E5/0.5 G5/0.5 C6/1 B5/0.5 A5/0.5 G5/1 E5/0.5 F5/0.5 G5/1 A5/0.5 G5/0.5 "
      "F5/1 D5/1 E5/0.5 F5/0.5 G5/1.5 E5/0.5 C5/1 D5/0.5 E5/0.5 F5/1 A5/1 "
      "G5/1 F5/0.5 E5/0.5 D5/2 C5/2")
lh = " ".join(["C3+G3/2 A2+E3/2 F2+C3/2 G2+D3/2"] * 3)
write_mid("piano", 96, seq(rh, vel=92) + seq(lh, vel=70), {0: 0})

write_mid("strings", 72, seq(
    "D3+A3+D4+F4/2 A#2+F3+A#3+D4/2 F2+C3+A3+C4/2 C3+G3+C4+E4/2", vel=85), {0: 48})

write_mid("flute", 112, seq(
    "G5/0.5 A5/0.5 B5/1 D6/0.5 B5/0.5 A5/1 G5/0.5 E5/0.5 D5/1 E5/0.5 G5/0.5 A5/2",
    vel=95, legato=0.9), {0: 73})

arp = ("A2 E3 A3 C4 E4 C4 ", "E2 B2 E3 G3 B3 G3 ", "F2 C3 F3 A3 C4 A3 ", "G2 D3 G3 B3 D4 B3 ")
write_mid("guitar", 120, seq(" ".join(f"{n}/0.5" for a in arp for n in a.split()),
                             vel=88, ring=1.0), {0: 24})

write_mid("brass", 126, seq(
    "C4+E4+G4/0.33 C4+E4+G4/0.33 C4+E4+G4/0.34 C4+E4+G4/1 F4+A4+C5/1 "
    "E4+G4+C5/0.5 D4+F4+B4/0.5 E4+G4+C5/2 G3+B3+D4/1 C4+E4+G4+C5/2",
    vel=105, legato=0.85), {0: 61})

write_mid("organ", 90, seq(
    "C3+G3+C4+E4/1 F3+A3+C4+F4/1 G3+B3+D4+G4/1 C3+G3+C4+E4+C5/1.2", vel=100),
    {0: 19}, tail_beats=1.0)

write_mid("violin", 76, seq(
    "A4/1 C5/0.5 E5/0.5 A5/1.5 G5/0.5 F5/1 E5/1 D5/0.5 E5/0.5 C5/2", vel=96), {0: 40})

write_mid("marimba", 132, seq(
    "C5/0.25 E5/0.25 G5/0.25 C6/0.25 B5/0.25 G5/0.25 D5/0.25 G5/0.25 "
    "A5/0.25 F5/0.25 C5/0.25 F5/0.25 G5/0.25 E5/0.25 C5/0.25 E5/0.25 "
    "D5/0.25 F5/0.25 A5/0.25 D6/0.25 C6/0.25 A5/0.25 F5/0.25 A5/0.25 "
    "G5/0.25 B5/0.25 D6/0.25 G6/0.25 E6/1", vel=100), {0: 12})

write_mid("bass", 100, seq(
    "E2/0.5 r/0.25 E2/0.25 G2/0.5 A2/0.5 r/0.25 A2/0.25 B2/0.5 D3/0.5 B2/0.5 "
    "A2/0.5 G2/0.5 E2/1 D2/0.5 E2/1.5", vel=105, legato=0.8), {0: 33})

up = "C4 E4 G4 C5 E5 G5 C6 E6 G6 C7 "
down = "A6 F6 C6 A5 F5 C5 A4 F4 C4 A3 F3 C3"
write_mid("harp", 90, seq(" ".join(f"{n}/0.25" for n in (up + down).split()) + " F2+C3+F3/2",
                          vel=90, ring=1.5), {0: 46})

write_mid("choir", 66, seq(
    "A3+C4+E4/1.5 G3+B3+D4/1.5 F3+A3+C4/1.5 E3+G#3+B3/1.5", vel=90), {0: 52})

write_mid("sax", 116, seq(
    "G4/0.5 A#4/0.5 C5/0.5 C#5/0.25 D5/0.75 r/0.5 F5/0.5 D5/0.5 C5/0.5 A#4/0.5 G4/1.5",
    vel=100, legato=0.9), {0: 65})

write_mid("musicbox", 100, seq(
    "C6/0.5 C6/0.5 G6/0.5 G6/0.5 A6/0.5 A6/0.5 G6/1", vel=100), {0: 10})

write_mid("trumpet", 120, seq(
    "G4/0.5 C5/0.5 E5/0.5 G5/1 E5/0.5 G5/2 C5/0.5 E5/0.5 G5/0.5 C6/2",
    vel=108, legato=0.85), {0: 56})

# ---- percussion on channel 10 (index 9); the program selects the drum kit
# FluidR3_GM kits: 0 Standard, 8 Room, 16 Power, 25 TR-808, 40 Brush.
snare = [(t, 0.2, 38, v, 9) for t, v in
         [(0, 120), (1.0, 100), (1.5, 90), (1.75, 80), (2.0, 112), (2.25, 72), (2.5, 124), (3.0, 96)]]
write_mid("snare", 120, snare, {9: 0}, tail_beats=1.0)

write_mid("rock", 110,
          grid("x.x...x.x.x...x." + "x", 36, 0.5)
          + grid("..x...x...x...x.", 38, 0.5)
          + grid("xoxoxoxoxoxoxoxo", 42, 0.5)
          + grid("x...............x", 49, 0.5), {9: 16}, tail_beats=1.0)

write_mid("latin", 104,
          grid("x..x..x...x.x..." * 2, 75, 0.25)           # claves, son clave 3-2
          + grid("oooooooooooooooo" * 2, 70, 0.25, soft=55)  # maracas
          + grid("..x.o.x...x.o.xx" * 2, 63, 0.25)         # open high conga
          + grid("x.......x..o...." * 2, 64, 0.25)         # low conga
          + grid("....x.......x.o." * 2, 60, 0.25)         # high bongo
          + grid("x...x...x...x..." * 2, 56, 0.25, accent=80), {9: 0})

toms = [50, 50, 48, 48, 47, 47, 45, 45, 43, 43, 41, 41]
write_mid("toms", 100,
          [(i * 0.25, 0.2, n, 90 + 2 * i, 9) for i, n in enumerate(toms)]
          + [(3.0, 0.5, 49, 120, 9), (3.0, 0.5, 36, 120, 9)], {9: 8}, tail_beats=2.5)

sw = [0, 1, 1 + 2 / 3, 2, 3, 3 + 2 / 3, 4, 5, 5 + 2 / 3, 6, 7, 7 + 2 / 3]
write_mid("brush", 140,
          [(t, 0.3, 51, 90 if t % 1 == 0 else 70, 9) for t in sw]
          + [(t, 0.3, 44, 80, 9) for t in (1, 3, 5, 7)]
          + [(t, 0.3, 38, v, 9) for t, v in ((0.67, 50), (2.67, 60), (3.33, 45), (4.67, 55),
                                             (6.67, 90), (7.33, 70))]
          + [(8, 0.5, 36, 90, 9), (8, 0.5, 49, 90, 9)], {9: 40})

write_mid("tr808", 92,
          grid("x.....x...x....." * 2, 36, 0.25)
          + grid("....x.......x..." * 2, 39, 0.25)
          + grid("x.x.x.x.x.x.x.o." * 2, 42, 0.25, accent=90)
          + grid("..............x." * 2, 46, 0.25, accent=80)
          + grid("......x.......x....x.........x.x", 56, 0.25, accent=85), {9: 25})
PY

# ---------------------------------------------------------------- helpers
META="$TMP/meta.tsv"
: >"$META"
# meta FILE KIND HOW SOURCE LICENSE
meta() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$META"; }

# prep IN OUT RATE CHANNELS: normalise, trim leading/trailing silence,
# convert rate/channels, short fade in/out. Writes a 16-bit WAV.
prep() {
  sox -R "$1" -b 16 "$2" channels "$4" rate "$3" norm -1 \
    silence 1 0.01 -50d reverse silence 1 0.01 -50d reverse \
    fade q 0.005 reverse fade q 0.08 reverse
}

# exact IN OUT SAMPLES: cut to an exact number of samples, fade the end.
exact() {
  sox -R "$1" "$2" trim 0 "${3}s" reverse fade q 0.15 reverse
  local got
  got="$(soxi -s "$2")"
  if [[ "$got" != "$3" ]]; then
    echo "make_toy_data.sh: $2 has $got samples, expected $3 (render more material)" >&2
    exit 1
  fi
}

# encode WAV OUTFILE: write the final file; the codec follows the extension.
encode() {
  local in=$1 out=$OUT/$2
  case "$2" in
    *.wav) cp "$in" "$out" ;;
    *.flac) "${FF[@]}" -i "$in" -c:a flac -compression_level 8 "${FFBITEXACT[@]}" "$out" ;;
    *.ogg) "${FF[@]}" -i "$in" -c:a libvorbis -q:a 3 "${FFBITEXACT[@]}" "$out" ;;
    *.mp3) "${FF[@]}" -i "$in" -c:a libmp3lame -b:a 96k "${FFBITEXACT[@]}" "$out" ;;
    *.m4a) "${FF[@]}" -i "$in" -c:a aac -b:a 96k "${FFBITEXACT[@]}" "$out" ;;
    *.opus) "${FF[@]}" -i "$in" -c:a libopus -b:a 64k "${FFBITEXACT[@]}" "$out" ;;
    *) echo "unknown extension: $2" >&2; exit 1 ;;
  esac
}

# render MIDNAME: MIDI -> 44.1 kHz stereo WAV with FluidR3_GM (single thread).
render() {
  fluidsynth -q -n -i -g 0.7 -r 44100 -o synth.cpu-cores=1 \
    -F "$TMP/$1.raw.wav" -T wav "$SF2" "$TMP/mid/$1.mid" >/dev/null
}

SF2_HOW="MIDI written by this script, rendered with fluidsynth + FluidR3_GM.sf2"
SF2_SRC="FluidR3_GM.sf2 by Frank Wen et al. (Debian fluid-soundfont-gm)"
SF2_LIC="MIT (soundfont); MIDI/arrangement CC0-1.0"

# ---------------------------------------------------------------- instruments
# clip: midname outfile rate channels kind description
instrument() {
  render "$1"
  prep "$TMP/$1.raw.wav" "$TMP/$1.wav" "$3" "$4"
  encode "$TMP/$1.wav" "$2"
  meta "$2" "$5" "$SF2_HOW ($6)" "$SF2_SRC" "$SF2_LIC"
}

# exact_clip name outfile rate samples class description: a mono clip of exactly `samples`
# samples at `rate`, for the tests that check window times on known lengths.
exact_clip() {
  render "$1"
  prep "$TMP/$1.raw.wav" "$TMP/$1.prep.wav" "$3" 1
  exact "$TMP/$1.prep.wav" "$TMP/$1.wav" "$4"
  encode "$TMP/$1.wav" "$2"
  meta "$2" "$5" "$SF2_HOW ($6, cut to exactly $4 samples)" "$SF2_SRC" "$SF2_LIC"
}

# The 10.0 s test clip: exact length at 22050 Hz = 220500 samples.
exact_clip piano piano_phrase_10s.wav 22050 220500 "instrument (piano)" "GM 1 Acoustic Grand Piano, two-hand phrase"

instrument strings string_ensemble_chords.flac 22050 1 "instrument (strings)" "GM 49 String Ensemble 1, four chords"
instrument flute flute_melody.ogg 44100 2 "instrument (flute)" "GM 74 Flute, melody"
instrument guitar nylon_guitar_arpeggio.wav 16000 1 "instrument (guitar)" "GM 25 Acoustic Guitar (nylon), arpeggios"
instrument brass brass_fanfare.mp3 44100 2 "instrument (brass)" "GM 62 Brass Section, fanfare"
instrument organ church_organ_chords.wav 48000 1 "instrument (organ)" "GM 20 Church Organ, cadence"
instrument violin violin_melody.m4a 44100 2 "instrument (violin)" "GM 41 Violin, melody"
instrument marimba marimba_pattern.wav 22050 1 "instrument (mallet)" "GM 13 Marimba, sixteenth-note pattern"
instrument bass electric_bass_line.wav 22050 1 "instrument (bass)" "GM 34 Electric Bass (finger), bass line"
instrument harp harp_arpeggio.opus 48000 2 "instrument (harp)" "GM 47 Orchestral Harp, up/down arpeggio"
instrument choir choir_aahs_chords.mp3 22050 1 "instrument (choir)" "GM 53 Choir Aahs, four chords"
instrument sax alto_sax_riff.wav 16000 1 "instrument (saxophone)" "GM 66 Alto Sax, blues riff"
instrument musicbox music_box_tune.wav 44100 1 "instrument (music box)" "GM 11 Music Box, traditional nursery tune"
instrument trumpet trumpet_call.flac 44100 1 "instrument (trumpet)" "GM 57 Trumpet, bugle-style call"

# ---------------------------------------------------------------- percussion
# The 1.5 s test clip: exact length at 44100 Hz = 66150 samples.
exact_clip snare snare_hit_1p5s.wav 44100 66150 "percussion (snare)" "GM drum channel 10, Standard kit, snare hits"

instrument rock rock_drum_beat.wav 22050 2 "percussion (drum kit)" "GM drum channel 10, Power kit, two-bar rock beat"
instrument latin latin_percussion.mp3 44100 2 "percussion (latin)" "GM drum channel 10, claves, congas, bongos, maracas, cowbell"
instrument toms tom_fill.ogg 22050 1 "percussion (toms)" "GM drum channel 10, Room kit, tom fill and crash"
instrument brush jazz_brush_groove.wav 16000 1 "percussion (brushes)" "GM drum channel 10, Brush kit, swing ride pattern"
instrument tr808 tr808_beat.wav 16000 1 "percussion (drum machine)" "GM drum channel 10, TR-808 kit, two-bar beat"

# ---------------------------------------------------------------- speech
ESPEAK_SRC="espeak-ng $(espeak-ng --version | awk '{print $4; exit}') (Debian espeak-ng); text written for this project"
ESPEAK_LIC="CC0-1.0 (synthesised output; espeak-ng itself is GPL-3.0-or-later)"
# speech outfile rate voice speed pitch language text
speech() {
  local base=${2%.*}
  espeak-ng -v "$3" -s "$4" -p "$5" -w "$TMP/$base.raw.wav" "$7"
  prep "$TMP/$base.raw.wav" "$TMP/$base.wav" "$1" 1
  encode "$TMP/$base.wav" "$2"
  meta "$2" "speech ($6)" "espeak-ng -v $3 -s $4 -p $5: \"$7\"" "$ESPEAK_SRC" "$ESPEAK_LIC"
}
speech 16000 speech_en_us_male.wav en-us 160 45 "English, US, male voice" \
  "The quick brown fox jumps over the lazy dog, while the river keeps flowing quietly to the sea."
speech 22050 speech_en_gb_female.wav en-gb+f3 150 60 "English, UK, female variant" \
  "Please remember to bring an umbrella tomorrow, because the forecast says heavy rain after lunch."
speech 22050 speech_de_male.mp3 de 150 40 "German" \
  "Guten Morgen! Heute ist ein schöner Tag für einen langen Spaziergang im Park."
speech 22050 speech_fr_female.ogg fr-fr+f2 155 55 "French, female variant" \
  "Bonjour à tous, le train pour Marseille partira dans dix minutes du quai numéro trois."
speech 16000 speech_es.flac es+m3 150 50 "Spanish" \
  "El pequeño gato negro duerme tranquilamente junto a la ventana de la cocina."
speech 16000 speech_it_counting.wav it 120 50 "Italian, slow counting" \
  "Uno, due, tre, quattro, cinque, sei, sette."
speech 22050 speech_en_whisper.wav en-us+whisper 140 50 "English, whispered" \
  "Can you keep a secret? The treasure is hidden under the old oak tree."

# ---------------------------------------------------------------- effects
FD_SRC="sound-theme-freedesktop 0.8 (Debian package sound-theme-freedesktop)"

# Real recordings from sound-theme-freedesktop (decoded by ffmpeg first).
"${FF[@]}" -i "$FD/camera-shutter.oga" -ar 44100 "$TMP/shutter.src.wav"
sox -R "$TMP/shutter.src.wav" "$TMP/shutter.low.wav" gain -3 pitch -250 rate 44100
sox -R "$TMP/shutter.src.wav" "$TMP/shutter.high.wav" gain -3 pitch 200 rate 44100
sox -R "$TMP/shutter.src.wav" "$TMP/shutter.low.wav" "$TMP/shutter.high.wav" \
  "$TMP/shutter.cat.wav"
prep "$TMP/shutter.cat.wav" "$TMP/shutter.wav" 44100 2
encode "$TMP/shutter.wav" camera_shutter_burst.wav
meta camera_shutter_burst.wav "effect (recorded: camera shutter)" \
  "Modified: stereo/camera-shutter.oga played 3 times (original, then pitched down and up with sox), trimmed, resampled" \
  "$FD_SRC; recording by freesound user horsthorstensen" "CC-BY-SA-3.0"

"${FF[@]}" -i "$FD/alarm-clock-elapsed.oga" -ar 44100 "$TMP/alarm.src.wav"
prep "$TMP/alarm.src.wav" "$TMP/alarm.wav" 44100 2
encode "$TMP/alarm.wav" alarm_clock_ring.ogg
meta alarm_clock_ring.ogg "effect (recorded: alarm clock)" \
  "Modified: stereo/alarm-clock-elapsed.oga normalised, silence-trimmed, re-encoded" \
  "$FD_SRC; recording by Tim/corsica_s" "CC-BY-SA-3.0"

"${FF[@]}" -i "$FD/trash-empty.oga" -ar 22050 "$TMP/trash.src.wav"
sox -R "$TMP/trash.src.wav" "$TMP/trash.low.wav" gain -3 pitch -300 rate 22050
sox -R "$TMP/trash.src.wav" "$TMP/trash.low.wav" "$TMP/trash.cat.wav"
prep "$TMP/trash.cat.wav" "$TMP/trash.wav" 22050 1
encode "$TMP/trash.wav" trash_empty_twice.wav
meta trash_empty_twice.wav "effect (recorded: trash/paper)" \
  "Modified: stereo/trash-empty.oga played twice (second pitched down 3 semitones with sox), mono" \
  "$FD_SRC; sound by Dr. Richard Boulanger et al." "CC-BY-3.0"

# Synthetic effects (a minority of the set).
# Noise whoosh: seeded white noise through a band-pass whose centre sweeps up
# and back down (pure Python, deterministic: random.Random(20240517)).
python3 - "$TMP/whoosh.raw.wav" <<'PY'
import math
import random
import struct
import sys
import wave

SR, DUR = 22050, 3.2
rng = random.Random(20240517)
n = int(SR * DUR)
low = band = 0.0
out = []
for i in range(n):
    x = i / n
    fc = 150.0 * (40.0 ** math.sin(math.pi * x))  # 150 Hz -> 6 kHz -> 150 Hz
    f = 2.0 * math.sin(math.pi * fc / SR)
    q = 0.35
    high = rng.uniform(-1.0, 1.0) - low - q * band
    band += f * high
    low += f * band
    env = math.sin(math.pi * x) ** 1.5
    out.append(max(-32767, min(32767, int(band * env * 9000))))
with wave.open(sys.argv[1], "wb") as w:
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(SR)
    w.writeframes(struct.pack("<%dh" % n, *out))
PY
prep "$TMP/whoosh.raw.wav" "$TMP/whoosh.wav" 22050 1
encode "$TMP/whoosh.wav" noise_whoosh.wav
meta noise_whoosh.wav "effect (synthetic: noise sweep)" \
  "Seeded white noise (Python random, seed 20240517) through a swept band-pass filter, made by this script" \
  "this project" "CC0-1.0"

# Sine chirp: exponential sweep up, linear sweep down (sox synth).
sox -R -n -r 16000 -b 16 "$TMP/chirp.up.wav" synth 2 sine 150/3500 vol 0.7
sox -R -n -r 16000 -b 16 "$TMP/chirp.down.wav" synth 1 sine 3500:600 vol 0.7
sox -R "$TMP/chirp.up.wav" "$TMP/chirp.down.wav" "$TMP/chirp.raw.wav"
prep "$TMP/chirp.raw.wav" "$TMP/chirp.wav" 16000 1
encode "$TMP/chirp.wav" sine_chirp.wav
meta sine_chirp.wav "effect (synthetic: chirp)" \
  "sox synth: sine 150->3500 Hz exponential (2 s) then 3500->600 Hz linear (1 s)" \
  "this project" "CC0-1.0"

# Bell-like strikes: inharmonic partials with exponential-ish decays (sox).
bell() { # bell OUT FUNDAMENTAL
  local f=$1 i=0 parts=() ratio
  for ratio in 1 2.76 5.40 8.93; do
    sox -R -n -r 22050 -b 16 "$TMP/bellp$i.wav" synth 1.6 sine "$(python3 -c "print($2*$ratio)")" \
      fade l 0.002 1.6 "$(python3 -c "print(1.55/(1+$i*0.6))")" vol "$(python3 -c "print(0.5/(1+$i))")"
    parts+=("$TMP/bellp$i.wav")
    i=$((i + 1))
  done
  sox -R -m "${parts[@]}" "$f"
}
bell "$TMP/bell1.wav" 523.25
bell "$TMP/bell2.wav" 659.25
bell "$TMP/bell3.wav" 392.00
sox -R "$TMP/bell1.wav" "$TMP/bell2.wav" "$TMP/bell3.wav" "$TMP/bell.raw.wav"
prep "$TMP/bell.raw.wav" "$TMP/bell.wav" 22050 1
encode "$TMP/bell.wav" bell_strikes.wav
meta bell_strikes.wav "effect (synthetic: bell-like tone)" \
  "sox synth: three strikes of four inharmonic sine partials with decaying fades" \
  "this project" "CC0-1.0"

# ---------------------------------------------------------------- ATTRIBUTION.md
{
  cat <<'EOF'
# toy-data: attribution and licenses

Small, redistributable audio clips for tests and demos of the audio similarity
search service. **Everything in this folder is generated by
`scripts/make_toy_data.sh`** (run `bash scripts/make_toy_data.sh` to rebuild
it, including this file); do not edit by hand.

## License terms of the folder

Each clip's license is given in the table below. In short:

- **Instrument and percussion clips** are renderings, made by this project, of
  MIDI note sequences written by this project, played with the *FluidR3_GM*
  SoundFont (Copyright © 2000-2002, 2008 Frank Wen, © 2008 Toby Smithe;
  released under the **MIT license**, text below). The MIDI sequences and the
  arrangement are dedicated to the public domain under **CC0-1.0**; the
  rendered audio contains the SoundFont's samples, so keep the MIT notice
  below with them.
- **Speech clips** are synthesised by *espeak-ng* from sentences written for
  this project. espeak-ng is GPL-3.0-or-later software; its GPL does not
  extend to the audio it produces. This project dedicates these clips to the
  public domain under **CC0-1.0**.
- **Synthetic effects** (made with sox or the script's own Python code) are
  dedicated to the public domain under **CC0-1.0** by this project.
- **Recorded effects** come from Debian's `sound-theme-freedesktop` package
  and keep their upstream licenses as stated in
  `/usr/share/doc/sound-theme-freedesktop/copyright`: **CC-BY-SA-3.0**
  (<https://creativecommons.org/licenses/by-sa/3.0/>) or **CC-BY-3.0**
  (<https://creativecommons.org/licenses/by/3.0/>). They were modified
  (trimmed, normalised, resampled, repeated/pitch-shifted) as described in the
  table; the modified versions are offered under the same license as the
  original. Credit the authors named in the table when you redistribute them.

No clip is covered by the license of the project's source code.

## Files

| File | Kind | Duration (s) | Format | How it was made | Source | License |
| --- | --- | --- | --- | --- | --- | --- |
EOF
  while IFS=$'\t' read -r file kind how src lic; do
    f="$OUT/$file"
    dur="$(ffprobe -v error -show_entries format=duration -of default=nw=1:nk=1 "$f")"
    info="$(ffprobe -v error -select_streams a:0 -show_entries stream=codec_name,sample_rate,channels \
      -of default=nw=1:nk=1 "$f" | paste -sd' ')"
    read -r codec rate ch <<<"$info"
    case "$ch" in 1) chs=mono ;; 2) chs=stereo ;; *) chs="$ch ch" ;; esac
    # shellcheck disable=SC2016  # the backticks are Markdown, not a command
    printf '| `%s` | %s | %.3f | %s, %s Hz, %s | %s | %s | %s |\n' \
      "$file" "$kind" "$dur" "$codec" "$rate" "$chs" "${how//|/\\|}" "$src" "$lic"
  done <"$META"
  cat <<'EOF'

Durations are as reported by ffprobe (MP3/AAC/Opus values include the
encoder's padding). `piano_phrase_10s.wav` is exactly 220500 samples at
22050 Hz (10.0 s) and `snare_hit_1p5s.wav` exactly 66150 samples at 44100 Hz
(1.5 s); tests rely on both.

## FluidR3_GM license (MIT)

Copyright © 2000-2002, 2008 Frank Wen; Copyright © 2008 Toby Smithe

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
EOF
} >"$OUT/ATTRIBUTION.md"

count="$(wc -l <"$META")"
echo "make_toy_data.sh: wrote $count clips and ATTRIBUTION.md to $OUT ($(du -sh "$OUT" | cut -f1))"
