// Canvas drawing: sparklines for tiles and line charts for the detail screens.
//
// A line chart's axis labels are DOM spans laid over its canvas (`.chart-labels`), placed so
// that they never overlap at any width: time ticks fall on round local times and are spaced
// by the measured width of their labels; y ticks fall on round values whose formatted
// labels are all different (never "1 B/s, 1 B/s, 0 B/s").

const FONT = "11px system-ui, sans-serif";
const X_GAP = 12; // px at least between two time labels
const Y_SPACING = 26; // px at least between two y labels
const TIME_STEPS = [
  1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
  86400, 172800, 345600, 604800, 1209600, 2592000,
];
const BINARY = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

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

/**
 * Draw a Ring of values across the whole width (a ring that is not full yet is stretched,
 * so the first minutes are not squeezed into the right edge); `fixedMax` (e.g. 100 for
 * percentages) keeps the scale stable.
 */
export function drawSparkline(canvas, ring, fixedMax) {
  const { ctx, width, height } = prepare(canvas);
  if (ring.length < 1) return;
  let max = fixedMax || 0;
  if (!fixedMax) for (let i = 0; i < ring.length; i += 1) max = Math.max(max, ring.at(i));
  if (max <= 0) max = 1;
  const y = (v) => height - 1 - (Math.min(v, max) / max) * (height - 2);
  ctx.strokeStyle = getComputedStyle(canvas).color;
  ctx.fillStyle = ctx.strokeStyle;
  if (ring.length === 1) {
    ctx.fillRect(width - 2, y(ring.at(0)) - 1, 2, 2);
    return;
  }
  const step = (width - 1) / (ring.length - 1);
  ctx.beginPath();
  for (let i = 0; i < ring.length; i += 1) {
    if (i === 0) ctx.moveTo(0, y(ring.at(i)));
    else ctx.lineTo(i * step, y(ring.at(i)));
  }
  ctx.lineWidth = 1.2;
  ctx.stroke();
}

// --- y axis: round values, distinct labels -------------------------------------------------

/** The unit family of a metric, as srvmon_core.metrics names them. */
export function unitOf(metric) {
  if (metric.endsWith("_percent") || metric.includes("_percent_")) return "percent";
  if (metric.endsWith("_bytes_per_s")) return "rate";
  if (metric.endsWith("_bytes")) return "bytes";
  return "number";
}

function niceStep(raw) {
  const power = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * power >= raw * 0.999) return m * power;
  return 10 * power;
}

function nextNice(step) {
  return niceStep(step * 1.01);
}

/** Decimals that show every multiple of `step` exactly (0.25 → 2, 2.5 → 1, 5 → 0). */
function decimalsFor(step) {
  const text = Number(step.toPrecision(6)).toFixed(6).replace(/0+$/, "");
  return Math.min(6, text.split(".")[1]?.length ?? 0);
}

/**
 * Y ticks for values in [lo, hi]: round steps (1, 2, 2.5, 5 × 10^k; bytes in binary units),
 * at most `maxTicks`, every label different. Returns {ticks: [{value, text}], lo, hi}.
 */
export function yTicks(lo, hi, maxTicks, metric) {
  const unit = unitOf(metric);
  const bytes = unit === "bytes" || unit === "rate";
  let scale = 1;
  let name = "";
  if (bytes) {
    let i = 0;
    while (Math.max(Math.abs(lo), Math.abs(hi)) >= 1024 ** (i + 1) && i < BINARY.length - 1) i += 1;
    scale = 1024 ** i;
    name = `${BINARY[i]}${unit === "rate" ? "/s" : ""}`;
  }
  const minStep = bytes && scale === 1 ? 1 : 1e-6; // no fraction of a byte
  let top = hi > lo ? hi : lo + (bytes ? Math.max(1, scale) : 1);
  let step = Math.max(minStep, niceStep((top - lo) / scale / Math.max(1, maxTicks - 1)));
  for (let attempt = 0; attempt < 12; attempt += 1) {
    const first = Math.floor(lo / scale / step + 1e-9) * step;
    const last = Math.ceil(top / scale / step - 1e-9) * step;
    const count = Math.round((last - first) / step) + 1;
    if (count <= maxTicks || count <= 2) {
      const digits = decimalsFor(step);
      const values = Array.from({ length: count }, (_, k) => first + k * step);
      const texts = values.map((v) => {
        const fixed = (Math.abs(v) < step / 1e6 ? 0 : v).toFixed(digits);
        if (unit === "percent") return `${fixed} %`;
        return bytes ? `${fixed} ${name}` : fixed;
      });
      if (new Set(texts).size === texts.length) {
        return {
          ticks: values.map((v, k) => ({ value: v * scale, text: texts[k] })),
          lo: first * scale,
          hi: last * scale,
        };
      }
    }
    step = nextNice(step);
  }
  return { ticks: [{ value: lo, text: String(lo) }], lo, hi: top };
}

// --- x axis: round local times, spaced by their measured width ------------------------------

function tzOffsetSeconds(ts) {
  return -new Date(ts * 1000).getTimezoneOffset() * 60;
}

function timeLabel(ts, step, span) {
  const d = new Date(ts * 1000);
  if (step >= 86400) return d.toLocaleDateString([], { month: "short", day: "numeric" });
  const time = d.toLocaleTimeString([], {
    hour: "2-digit", minute: "2-digit", second: step < 60 ? "2-digit" : undefined,
  });
  if (span > 86400) return `${d.toLocaleDateString([], { weekday: "short" })} ${time}`;
  return time;
}

/**
 * Time ticks between `from` and `to` (epoch s) for a plot `plotW` px wide: the smallest
 * round step whose labels, measured with `measure(text)`, leave at least X_GAP px between
 * them. Returns [{ts, text}].
 */
export function timeTicks(from, to, plotW, measure) {
  const span = Math.max(1, to - from);
  for (const step of TIME_STEPS) {
    if (span / step > 60) continue;
    const widest = Math.max(
      measure(timeLabel(from, step, span)), measure(timeLabel(to, step, span)),
      measure(timeLabel(from + span / 2, step, span)),
    );
    if ((plotW * step) / span < widest + X_GAP) continue;
    const ticks = [];
    const offset = tzOffsetSeconds(from); // round local times (zones of :30 and :45 too)
    let ts = Math.ceil((from + offset) / step) * step - offset;
    for (; ts <= to; ts += step) ticks.push({ ts, text: timeLabel(ts, step, span) });
    return ticks;
  }
  return [{ ts: to, text: timeLabel(to, 86400, span) }];
}

// --- the line chart ------------------------------------------------------------------------

function labelLayer(canvas) {
  const next = canvas.nextElementSibling;
  return next && next.classList.contains("chart-labels") ? next : null;
}

/**
 * A line chart of series points `[ts, avg, min, max]`: avg as a line, min..max as a band.
 * The x axis spans the data's own extent until the data fills [from, to]; labels in local
 * time. `metric` chooses how values are formatted.
 */
export function drawSeriesChart(canvas, points, { from, to, metric }) {
  const { ctx, width, height } = prepare(canvas);
  const layer = labelLayer(canvas);
  const labels = [];
  const style = getComputedStyle(canvas);
  ctx.font = FONT;
  const measure = (text) => ctx.measureText(text).width;
  const top = 8;
  const bottom = 18;
  const plotH = height - top - bottom;
  if (!points.length) {
    canvas.dataset.xFrom = String(from);
    canvas.dataset.xTo = String(to);
    labels.push({ cls: "chart-empty", text: "no data in this range", x: 12, y: plotH / 2 });
    placeLabels(layer, ctx, labels, style);
    return;
  }
  let lo = 0;
  let hi = 0;
  for (const p of points) {
    hi = Math.max(hi, p[3] ?? p[1]);
    lo = Math.min(lo, p[2] ?? p[1]);
  }
  const maxTicks = Math.max(2, Math.min(6, Math.floor(plotH / Y_SPACING) + 1));
  const y = yTicks(lo, hi, maxTicks, metric);
  const left = Math.ceil(Math.max(...y.ticks.map((t) => measure(t.text)))) + 8;
  const plotW = Math.max(10, width - left - 8);
  // the data's own extent until it fills the window, never less than a minute
  const xFrom = Math.max(from, Math.min(points[0][0], to - 60));
  const xTo = to;
  canvas.dataset.xFrom = String(xFrom);
  canvas.dataset.xTo = String(xTo);
  const x = (ts) => left + ((ts - xFrom) / Math.max(1, xTo - xFrom)) * plotW;
  const yPx = (v) => top + plotH - ((v - y.lo) / Math.max(1e-12, y.hi - y.lo)) * plotH;

  ctx.strokeStyle = "rgba(128,128,128,0.25)";
  ctx.beginPath();
  for (const tick of y.ticks) {
    const gy = Math.round(yPx(tick.value)) + 0.5;
    ctx.moveTo(left, gy);
    ctx.lineTo(left + plotW, gy);
    labels.push({ cls: "tick-y", text: tick.text, right: left - 4, y: gy });
  }
  for (const tick of timeTicks(xFrom, xTo, plotW, measure)) {
    const gx = Math.round(x(tick.ts)) + 0.5;
    ctx.moveTo(gx, top + plotH);
    ctx.lineTo(gx, top + plotH + 3);
    labels.push({ cls: "tick-x", text: tick.text, center: gx, y: height - bottom / 2 });
  }
  ctx.stroke();

  ctx.fillStyle = "rgba(80,140,220,0.18)";
  ctx.beginPath();
  points.forEach((p, i) => (i ? ctx.lineTo(x(p[0]), yPx(p[3] ?? p[1])) : ctx.moveTo(x(p[0]), yPx(p[3] ?? p[1]))));
  for (let i = points.length - 1; i >= 0; i -= 1) ctx.lineTo(x(points[i][0]), yPx(points[i][2] ?? points[i][1]));
  ctx.closePath();
  ctx.fill();
  ctx.strokeStyle = style.color;
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  points.forEach((p, i) => (i ? ctx.lineTo(x(p[0]), yPx(p[1])) : ctx.moveTo(x(p[0]), yPx(p[1]))));
  ctx.stroke();
  if (points.length <= plotW / 6) {
    // few points: mark each one, so a single sample is visible too
    ctx.fillStyle = style.color;
    for (const p of points) {
      ctx.beginPath();
      ctx.arc(x(p[0]), yPx(p[1]), 2.5, 0, 2 * Math.PI);
      ctx.fill();
    }
  }
  placeLabels(layer, ctx, labels, style, left - 2, width);
}

/**
 * Put the labels into the chart's label layer (DOM spans), or onto the canvas when the
 * chart has none. A time label that would reach into the y labels (left of `minX`) or
 * stick out of the chart is left out.
 */
function placeLabels(layer, ctx, labels, style, minX = 0, width = Infinity) {
  const spans = [];
  ctx.fillStyle = style.getPropertyValue("--muted") || "#888";
  for (const label of labels) {
    const w = ctx.measureText(label.text).width;
    let leftPx = label.x ?? 0;
    if (label.right !== undefined) leftPx = label.right - w;
    if (label.center !== undefined) {
      leftPx = label.center - w / 2;
      if (leftPx < minX || leftPx + w > width) continue;
    }
    if (!layer) {
      ctx.fillText(label.text, leftPx, label.y + 4);
      continue;
    }
    const span = document.createElement("span");
    span.className = label.cls;
    span.textContent = label.text;
    span.style.left = `${leftPx}px`;
    span.style.top = `${label.y - 7}px`;
    spans.push(span);
  }
  if (layer) layer.replaceChildren(...spans);
}
