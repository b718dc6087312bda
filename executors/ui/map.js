// The library map: every clip as a point on a canvas (drawn into pixels, so 100k points stay
// smooth), coloured by folder, with a grid to find the point under the pointer quickly.

const DOT = 3; // CSS pixels per point's side
const CELL = 12; // CSS pixels per side of a hit-test grid cell
const MARGIN = 8;

// A grid cell's number (canvases are far under 65,536 cells wide).
const cellKey = (gx, gy) => gy * 65536 + gx;

/** A colour per group: hues spread by the golden angle, so neighbours differ. */
export function palette(count) {
  return Array.from({ length: count }, (_, i) => {
    const hue = (i * 137.508) % 360;
    const [r, g, b] = hslToRgb(hue / 360, 0.65, 0.45);
    return { r, g, b, css: `rgb(${r},${g},${b})` };
  });
}

function hslToRgb(h, s, l) {
  const f = (n) => {
    const k = (n + h * 12) % 12;
    const a = s * Math.min(l, 1 - l);
    return Math.round(255 * (l - a * Math.max(-1, Math.min(k - 3, 9 - k, 1))));
  };
  return [f(0), f(8), f(4)];
}

export class LibraryMap {
  /** ``canvas`` to draw on; points given by ``setPoints``. */
  constructor(canvas) {
    this.canvas = canvas;
    this.x = new Float32Array(0);
    this.y = new Float32Array(0);
    this.group = new Uint16Array(0);
    this.colours = [];
    this.selected = -1;
  }

  /** ``x``, ``y`` in 0..1; ``group[i]`` indexes ``colours`` (from ``palette``). */
  setPoints(x, y, group, colours) {
    this.x = Float32Array.from(x);
    this.y = Float32Array.from(y);
    this.group = Uint16Array.from(group);
    this.colours = colours;
  }

  // A point's position in CSS pixels on the canvas.
  position(i, width, height) {
    return [MARGIN + this.x[i] * (width - 2 * MARGIN), MARGIN + (1 - this.y[i]) * (height - 2 * MARGIN)];
  }

  /** Draw every point; returns the milliseconds it took. */
  draw() {
    const started = performance.now();
    const ratio = window.devicePixelRatio || 1;
    const cssWidth = this.canvas.clientWidth || this.canvas.width / ratio;
    const cssHeight = this.canvas.clientHeight || this.canvas.height / ratio;
    this.canvas.width = Math.max(1, Math.round(cssWidth * ratio));
    this.canvas.height = Math.max(1, Math.round(cssHeight * ratio));
    const { width, height } = this.canvas;
    const ctx = this.canvas.getContext("2d");
    const image = ctx.createImageData(width, height);
    const pixels = new Uint32Array(image.data.buffer); // little-endian: 0xAABBGGRR
    const packed = this.colours.map((c) => (255 << 24) | (c.b << 16) | (c.g << 8) | c.r);
    const side = Math.max(1, Math.round(DOT * ratio));
    const cells = new Map();
    for (let i = 0; i < this.x.length; i++) {
      const [cx, cy] = this.position(i, cssWidth, cssHeight);
      const px = Math.round(cx * ratio - side / 2);
      const py = Math.round(cy * ratio - side / 2);
      const colour = packed[this.group[i]] ?? 0xff888888;
      for (let dy = 0; dy < side; dy++) {
        const row = py + dy;
        if (row < 0 || row >= height) continue;
        for (let dx = 0; dx < side; dx++) {
          const col = px + dx;
          if (col >= 0 && col < width) pixels[row * width + col] = colour;
        }
      }
      const key = cellKey(Math.floor(cx / CELL), Math.floor(cy / CELL));
      const cell = cells.get(key);
      if (cell) cell.push(i);
      else cells.set(key, [i]);
    }
    ctx.putImageData(image, 0, 0);
    this.cells = cells;
    this.size = [cssWidth, cssHeight];
    if (this.selected >= 0) this.ring(this.selected);
    this.canvas.dataset.points = String(this.x.length);
    return performance.now() - started;
  }

  /** Circle point ``i`` (the one clicked). */
  ring(i) {
    const ratio = window.devicePixelRatio || 1;
    const [cx, cy] = this.position(i, ...this.size);
    const ctx = this.canvas.getContext("2d");
    ctx.strokeStyle = "#000";
    ctx.lineWidth = 2 * ratio;
    ctx.beginPath();
    ctx.arc(cx * ratio, cy * ratio, 6 * ratio, 0, 2 * Math.PI);
    ctx.stroke();
  }

  /** The point nearest to CSS pixel (``cx``, ``cy``) within ``radius`` pixels, or -1. */
  nearest(cx, cy, radius = 8) {
    if (!this.cells) return -1;
    let best = -1;
    let bestDistance = radius * radius;
    const [gx, gy] = [Math.floor(cx / CELL), Math.floor(cy / CELL)];
    for (let dx = -1; dx <= 1; dx++) {
      for (let dy = -1; dy <= 1; dy++) {
        for (const i of this.cells.get(cellKey(gx + dx, gy + dy)) || []) {
          const [px, py] = this.position(i, ...this.size);
          const distance = (px - cx) ** 2 + (py - cy) ** 2;
          if (distance <= bestDistance) [best, bestDistance] = [i, distance];
        }
      }
    }
    return best;
  }

  /** Where point ``i`` is drawn, in CSS pixels from the canvas's top left. */
  where(i) {
    return this.position(i, ...this.size);
  }
}
