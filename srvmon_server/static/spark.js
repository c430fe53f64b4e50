// Tile sparklines without layout reads: each canvas has a fixed CSS size and a backing
// store sized once, so drawing never asks the browser for a layout (a helper that read
// clientWidth after a tile's text changed forced one per tile per second).

export const SPARK_WIDTH = 56;
export const SPARK_HEIGHT = 18;

/** A sparkline canvas of the fixed size, its backing store scaled for the screen once. */
export function makeSparkCanvas(className = "spark") {
  const ratio = window.devicePixelRatio || 1;
  const canvas = document.createElement("canvas");
  canvas.className = className;
  canvas.width = Math.round(SPARK_WIDTH * ratio);
  canvas.height = Math.round(SPARK_HEIGHT * ratio);
  canvas.style.width = `${SPARK_WIDTH}px`;
  canvas.style.height = `${SPARK_HEIGHT}px`;
  return canvas;
}

/** Draw a Ring of values; `fixedMax` (e.g. 100 for percentages) keeps the scale stable. */
export function drawSpark(canvas, ring, fixedMax, color) {
  const ctx = canvas.getContext("2d");
  const ratio = canvas.width / SPARK_WIDTH;
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, SPARK_WIDTH, SPARK_HEIGHT);
  if (ring.length < 2) return;
  let max = fixedMax || 0;
  if (!fixedMax) for (let i = 0; i < ring.length; i += 1) max = Math.max(max, ring.at(i));
  if (max <= 0) max = 1;
  // the x range is the data's own extent until the ring fills (no squeeze to the right)
  const step = SPARK_WIDTH / (ring.length - 1);
  ctx.beginPath();
  for (let i = 0; i < ring.length; i += 1) {
    const x = i * step;
    const y = SPARK_HEIGHT - 1 - (Math.min(ring.at(i), max) / max) * (SPARK_HEIGHT - 2);
    if (i === 0) ctx.moveTo(x, y);
    else ctx.lineTo(x, y);
  }
  ctx.strokeStyle = color;
  ctx.lineWidth = 1.2;
  ctx.stroke();
}
