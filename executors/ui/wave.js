// Audio in the page: decoding a file to 16 kHz mono (Web Audio), encoding a part of it as a
// WAV file to upload, and drawing waveforms with a shaded span on a canvas.

/** The rate the service searches at: the page sends it only what it would decode. */
export const RATE = 16000;

/** ``file`` (a File or Blob) decoded and mixed down to mono at RATE: a Float32Array. */
export async function decodeMono(file) {
  const bytes = await file.arrayBuffer();
  // decodeAudioData resamples to its context's rate; rendering through a one-channel
  // context mixes the channels down.
  const decoded = await new OfflineAudioContext(1, 1, RATE).decodeAudioData(bytes);
  const mixer = new OfflineAudioContext(1, decoded.length, RATE);
  const source = mixer.createBufferSource();
  source.buffer = decoded;
  source.connect(mixer.destination);
  source.start();
  return (await mixer.startRendering()).getChannelData(0);
}

/** ``samples`` (mono floats at ``rate``) as a 16-bit PCM WAV Blob. */
export function wavBlob(samples, rate = RATE) {
  const view = new DataView(new ArrayBuffer(44 + samples.length * 2));
  const text = (offset, value) => [...value].forEach((c, i) => view.setUint8(offset + i, c.charCodeAt(0)));
  text(0, "RIFF");
  view.setUint32(4, 36 + samples.length * 2, true);
  text(8, "WAVEfmt ");
  view.setUint32(16, 16, true);
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 1, true); // mono
  view.setUint32(24, rate, true);
  view.setUint32(28, rate * 2, true);
  view.setUint16(32, 2, true);
  view.setUint16(34, 16, true);
  text(36, "data");
  view.setUint32(40, samples.length * 2, true);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    view.setInt16(44 + i * 2, s < 0 ? s * 0x8000 : s * 0x7fff, true);
  }
  return new Blob([view], { type: "audio/wav" });
}

/** The loudest sample of each of ``points`` equal spans of ``samples`` (as /peaks gives). */
export function peaksOf(samples, points) {
  const count = Math.max(1, Math.min(points, samples.length));
  const out = new Float32Array(count);
  for (let p = 0; p < count; p++) {
    const end = Math.floor(((p + 1) * samples.length) / count);
    let peak = 0;
    for (let i = Math.floor((p * samples.length) / count); i < end; i++) {
      const v = Math.abs(samples[i]);
      if (v > peak) peak = v;
    }
    out[p] = Math.min(1, peak);
  }
  return out;
}

/** Size a canvas's pixels to its CSS box (sharp on high-density screens); its 2-D context. */
export function fitCanvas(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
  const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  return canvas.getContext("2d");
}

/**
 * Draw ``peaks`` (0..1) covering ``duration`` seconds on ``canvas``, with ``span`` ([start, end]
 * seconds, or null) shaded: the matched segment of a result, the region of a query.
 */
export function drawWave(canvas, peaks, duration, span) {
  const ctx = fitCanvas(canvas);
  const { width, height } = canvas;
  const style = getComputedStyle(canvas);
  ctx.clearRect(0, 0, width, height);
  if (span && duration > 0) {
    const [start, end] = span;
    ctx.fillStyle = style.getPropertyValue("--span").trim() || "#cfe0ff";
    ctx.fillRect((start / duration) * width, 0, Math.max(2, ((end - start) / duration) * width), height);
  }
  ctx.fillStyle = style.getPropertyValue("--wave").trim() || "#2458c6";
  const middle = height / 2;
  const step = width / Math.max(1, peaks.length);
  for (let i = 0; i < peaks.length; i++) {
    const h = Math.max(1, peaks[i] * middle * 0.95);
    ctx.fillRect(i * step, middle - h, Math.max(1, step - 0.5), 2 * h);
  }
  canvas.dataset.drawn = String(peaks.length);
}

/** The time in seconds at a pointer event's x on ``canvas`` showing ``duration`` seconds. */
export function timeAt(canvas, event, duration) {
  const box = canvas.getBoundingClientRect();
  return Math.max(0, Math.min(1, (event.clientX - box.left) / box.width)) * duration;
}
