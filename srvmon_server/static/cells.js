// The dense fleet's pixels: every cell is painted on ONE canvas. A frame that changes 500
// cells then hands the compositor one image, where 500 styled elements would make the
// browser repaint and re-record the whole grid (measured: several times the main-thread
// time). The links laid over the canvas (views/overview.js) keep clicks, keyboard focus,
// hover titles and the cells' data attributes; they are transparent and never repaint.

export const CELL_GAP = 3;
const NAMED_FROM = 56;
/** Cells at least this wide show the short hostname. */

function cssColor(style, name, fallback) {
  return style.getPropertyValue(name).trim() || fallback;
}

export class CellPainter {
  constructor(canvas) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    const style = getComputedStyle(document.documentElement); // once, at mount
    this.fill = {
      ok: cssColor(style, "--ok", "#2e9d5b"),
      warning: cssColor(style, "--warning", "#d9a21b"),
      critical: cssColor(style, "--critical", "#d9473b"),
      silent: cssColor(style, "--silent", "#6b7380"),
    };
    this.size = 0;
    this.height = 0;
    this.cols = 1;
  }

  /** Size the canvas for `count` cells of `size` px in `cols` columns (clears it). */
  layout(count, cols, size) {
    const ratio = window.devicePixelRatio || 1;
    this.size = size;
    this.height = Math.round(size * 0.7);
    this.cols = Math.max(1, cols);
    const rows = Math.ceil(count / this.cols);
    const width = Math.max(0, this.cols * (size + CELL_GAP) - CELL_GAP);
    const height = Math.max(0, rows * (this.height + CELL_GAP) - CELL_GAP);
    this.canvas.width = Math.round(width * ratio);
    this.canvas.height = Math.round(height * ratio);
    this.canvas.style.width = `${width}px`;
    this.canvas.style.height = `${height}px`;
    this.ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    this.ctx.font = "11px system-ui, sans-serif";
    this.ctx.textBaseline = "top";
  }

  /** Paint the cell at `index`: status colour, CPU and memory bars, the short name. */
  paint(index, status, cpu, memory, name) {
    const { ctx, size, height } = this;
    const x = (index % this.cols) * (size + CELL_GAP);
    const y = Math.floor(index / this.cols) * (height + CELL_GAP);
    ctx.clearRect(x, y, size, height);
    ctx.globalAlpha = status === "silent" ? 0.7 : 1;
    ctx.fillStyle = this.fill[status] || this.fill.ok;
    ctx.fillRect(x, y, size, height);
    if (status === "critical") {
      ctx.strokeStyle = "#ff8a80";
      ctx.lineWidth = 2;
      ctx.strokeRect(x + 1, y + 1, size - 2, height - 2);
    }
    const ink = status === "warning" ? "#111" : "#fff";
    const bar = size - 6;
    ctx.fillStyle = "rgba(0,0,0,0.33)";
    ctx.fillRect(x + 3, y + height - 10, bar, 3);
    ctx.fillRect(x + 3, y + height - 5, bar, 3);
    ctx.fillStyle = ink;
    ctx.fillRect(x + 3, y + height - 10, bar * clamp(cpu), 3);
    ctx.fillRect(x + 3, y + height - 5, bar * clamp(memory), 3);
    if (size >= NAMED_FROM && name) ctx.fillText(name, x + 3, y + 2, size - 6);
    ctx.globalAlpha = 1;
  }
}

function clamp(percent) {
  return Math.max(0, Math.min(100, percent ?? 0)) / 100;
}
