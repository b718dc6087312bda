"""Windows cover every clip completely, at 4 s length and 2 s stride."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from audiosearch.audio import SAMPLE_RATE, load_audio
from audiosearch.audio.segment import segment, window_starts
from tests.conftest import TOY_DATA


def test_ten_second_clip_gives_windows_at_0_2_4_6_s():
    segments = segment(load_audio(TOY_DATA / "piano_phrase_10s.wav"))
    assert segments.duration == pytest.approx(10.0, abs=1e-4)
    assert segments.start_seconds.tolist() == [0.0, 2.0, 4.0, 6.0]
    assert segments.end_seconds.tolist() == [4.0, 6.0, 8.0, 10.0]


def test_short_clip_is_looped_to_one_full_window():
    clip = load_audio(TOY_DATA / "snare_hit_1p5s.wav")
    segments = segment(clip)
    assert segments.starts.tolist() == [0]
    assert segments.waveform.size == 4 * SAMPLE_RATE
    # Looped, not padded with silence: the last second repeats the clip, it is not zeros.
    np.testing.assert_array_equal(segments.waveform[clip.size : 2 * clip.size], clip)
    assert np.abs(segments.waveform[-SAMPLE_RATE:]).max() > 0.01
    assert segments.duration == pytest.approx(1.5, abs=1e-4)
    assert segments.end_seconds.tolist() == pytest.approx([1.5], abs=1e-4)


def test_tail_past_the_stride_grid_gets_a_window_flush_with_the_end():
    starts = window_starts(11 * SAMPLE_RATE, window_samples=64_000, stride_samples=32_000)
    assert (starts / SAMPLE_RATE).tolist() == [0.0, 2.0, 4.0, 6.0, 7.0]


@given(
    n=st.integers(min_value=1, max_value=2_000_000),
    stride=st.sampled_from([160, 16_000, 32_000, 64_000]),
)
def test_windows_cover_the_clip_on_the_frame_grid(n: int, stride: int):
    window = 64_000
    starts = window_starts(n, window_samples=window, stride_samples=stride, align_samples=160)
    assert starts[0] == 0
    assert np.all(np.diff(starts) > 0)
    assert np.all(starts % 160 == 0)
    assert starts[-1] + window >= n - 159  # at most one 10 ms frame of tail is left out
    assert np.all(starts + window <= max(n, window))
    # Consecutive windows never leave a gap.
    assert np.all(np.diff(starts) <= window)
