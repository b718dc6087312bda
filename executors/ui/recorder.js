// Recording a query from the microphone, with a level meter fed by an AnalyserNode.

/**
 * Start recording; ``onLevel(rms)`` (0..1) is called on every animation frame meanwhile.
 * Resolves to an object whose ``stop()`` resolves to the recording as a File.
 */
export async function startRecording(onLevel) {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  const context = new AudioContext();
  const analyser = context.createAnalyser();
  analyser.fftSize = 2048;
  context.createMediaStreamSource(stream).connect(analyser);
  const frame = new Float32Array(analyser.fftSize);
  let running = true;
  const meter = () => {
    if (!running) return;
    analyser.getFloatTimeDomainData(frame);
    let sum = 0;
    for (const v of frame) sum += v * v;
    onLevel(Math.min(1, Math.sqrt(sum / frame.length) * 3)); // speech sits near 0.1 RMS
    requestAnimationFrame(meter);
  };
  meter();
  const recorder = new MediaRecorder(stream);
  const parts = [];
  recorder.addEventListener("dataavailable", (event) => parts.push(event.data));
  recorder.start();
  return {
    stop: () =>
      new Promise((resolve) => {
        recorder.addEventListener("stop", () => {
          running = false;
          onLevel(0);
          stream.getTracks().forEach((track) => track.stop());
          context.close();
          const type = recorder.mimeType || "audio/webm";
          const blob = new Blob(parts, { type });
          const stamp = new Date().toTimeString().slice(0, 8).replaceAll(":", "");
          resolve(new File([blob], `recording-${stamp}.${type.includes("ogg") ? "ogg" : "webm"}`, { type }));
        });
        recorder.stop();
      }),
  };
}
