// Canvas drawing: sparklines for tiles and line charts for the detail screens.

function prepare(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || canvas.width;
  const height = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  return { ctx, width, height };
}

/** Draw a Ring of values; `fixedMax` (e.g. 100 for percentages) keeps the scale stable. */
export function drawSparkline(canvas, ring, fixedMax) {
  const { ctx, width, height } = prepare(canvas);
  if (ring.length < 2) return;
  let max = fixedMax || 0;
  if (!fixedMax) for (let i = 0; i < ring.length; i += 1) max = Math.max(max, ring.at(i));
  if (max <= 0) max = 1;
  const capacity = ring.values.length;
  const step = width / (capacity - 1);
  const offset = (capacity - ring.length) * step;
  ctx.beginPath();
  for (let i = 0; i < ring.length; i += 1) {
    const x = offset + i * step;
    const y = height - 1 - (Math.min(ring.at(i), max) / max) * (height - 2);
    if (i === 0) ctx.moveTo(x, y);
    else ctx.lineTo(x, y);
  }
  ctx.strokeStyle = getComputedStyle(canvas).color;
  ctx.lineWidth = 1.2;
  ctx.stroke();
}

/**
 * A line chart of series points `[ts, avg, min, max]`: avg as a line, min..max as a band,
 * axis labels in local time. `format` renders y values.
 */
export function drawSeriesChart(canvas, points, { from, to, format }) {
  const { ctx, width, height } = prepare(canvas);
  const left = 64;
  const bottom = 18;
  const plotW = width - left - 6;
  const plotH = height - bottom - 6;
  const style = getComputedStyle(canvas);
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = style.getPropertyValue("--muted") || "#888";
  if (!points.length) {
    ctx.fillText("no data in this range", left + 8, plotH / 2);
    return;
  }
  let max = 0;
  for (const p of points) max = Math.max(max, p[3] ?? p[1]);
  if (max <= 0) max = 1;
  const x = (ts) => left + ((ts - from) / Math.max(1, to - from)) * plotW;
  const y = (v) => 6 + plotH - (v / max) * plotH;
  ctx.strokeStyle = "rgba(128,128,128,0.25)";
  ctx.beginPath();
  for (let i = 0; i <= 4; i += 1) {
    const gy = 6 + (plotH * i) / 4;
    ctx.moveTo(left, gy);
    ctx.lineTo(left + plotW, gy);
    ctx.fillText(format((max * (4 - i)) / 4), 2, gy + 4);
  }
  ctx.stroke();
  const labelStep = Math.max(1, Math.floor(points.length / 4));
  for (let i = 0; i < points.length; i += labelStep) {
    const d = new Date(points[i][0] * 1000);
    const span = to - from;
    const text = span > 2 * 86400 ? d.toLocaleDateString() : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    const textWidth = ctx.measureText(text).width;
    ctx.fillText(text, Math.min(x(points[i][0]), width - textWidth - 2), height - 4);
  }
  ctx.fillStyle = "rgba(80,140,220,0.18)";
  ctx.beginPath();
  points.forEach((p, i) => (i ? ctx.lineTo(x(p[0]), y(p[3] ?? p[1])) : ctx.moveTo(x(p[0]), y(p[3] ?? p[1]))));
  for (let i = points.length - 1; i >= 0; i -= 1) ctx.lineTo(x(points[i][0]), y(points[i][2] ?? points[i][1]));
  ctx.closePath();
  ctx.fill();
  ctx.strokeStyle = style.color;
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  points.forEach((p, i) => (i ? ctx.lineTo(x(p[0]), y(p[1])) : ctx.moveTo(x(p[0]), y(p[1]))));
  ctx.stroke();
  if (points.length <= plotW / 6) {
    // few points: mark each one, so a single sample is visible too
    ctx.fillStyle = style.color;
    for (const p of points) {
      ctx.beginPath();
      ctx.arc(x(p[0]), y(p[1]), 2.5, 0, 2 * Math.PI);
      ctx.fill();
    }
  }
}
