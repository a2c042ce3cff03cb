// chart.js - a small SVG line chart: series of [x, y] points as lines or
// dots, with axes, ticks and a legend. Redrawn whole on each update (the
// dashboard throttles to one redraw per animation frame).
import { num } from './i18n.js';

const NS = 'http://www.w3.org/2000/svg';
export const COLORS = ['#2f6fde', '#e0692b', '#2a9d6a', '#b0469c', '#8a6d1f', '#5b6b82', '#d23a4f', '#1f8fa6'];

function node(tag, attrs = {}, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// about n round numbers spanning [lo, hi]
function ticks(lo, hi, n = 5) {
  if (!(hi > lo)) return [lo];
  const step0 = (hi - lo) / n, mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= step0);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(v);
  return out;
}

// series: [{name, color, points: [[x, y]], dots: bool}]; opts: {xLabel, log}
export function drawChart(host, series, opts = {}) {
  const W = 520, H = 240, L = 56, R = 12, T = 12, B = 40;
  const pts = series.flatMap((s) => s.points).filter(([x, y]) => isFinite(x) && isFinite(y) && (!opts.log || y > 0));
  const s = node('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart-svg', role: 'img' });
  s.append(node('title', {}, opts.title || ''));
  if (!pts.length) {
    host.replaceChildren(s);
    return s;
  }
  const fy = opts.log ? Math.log10 : (y) => y;
  let x0 = Math.min(...pts.map((p) => p[0])), x1 = Math.max(...pts.map((p) => p[0]));
  let y0 = Math.min(...pts.map((p) => fy(p[1]))), y1 = Math.max(...pts.map((p) => fy(p[1])));
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) { y0 -= 0.5; y1 += 0.5; }
  const pad = (y1 - y0) * 0.05;
  y0 -= pad;
  y1 += pad;
  const X = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const Y = (y) => T + (1 - (fy(y) - y0) / (y1 - y0)) * (H - T - B);
  const axes = node('g', { class: 'axes' });
  for (const v of ticks(x0, x1)) {
    axes.append(node('line', { x1: X(v), x2: X(v), y1: T, y2: H - B, class: 'grid' }));
    axes.append(node('text', { x: X(v), y: H - B + 14, 'text-anchor': 'middle' }, num(v, 0)));
  }
  const yt = opts.log ? ticks(y0, y1).map((v) => 10 ** v) : ticks(y0, y1);
  for (const v of yt) {
    axes.append(node('line', { x1: L, x2: W - R, y1: Y(v), y2: Y(v), class: 'grid' }));
    axes.append(node('text', { x: L - 6, y: Y(v) + 4, 'text-anchor': 'end' }, num(v, Math.abs(v) < 0.01 ? 6 : 3)));
  }
  axes.append(node('text', { x: (L + W - R) / 2, y: H - 6, 'text-anchor': 'middle', class: 'axis-label' }, opts.xLabel || ''));
  s.append(axes);
  series.forEach((ser, i) => {
    const color = ser.color || COLORS[i % COLORS.length];
    const p = ser.points.filter(([x, y]) => isFinite(x) && isFinite(y) && (!opts.log || y > 0));
    const g = node('g', { class: 'series', 'data-name': ser.name, 'data-points': p.length });
    if (ser.dots) {
      for (const [x, y] of p) g.append(node('circle', { cx: X(x), cy: Y(y), r: 3.5, fill: color }));
    } else if (p.length) {
      const d = p.map(([x, y], k) => `${k ? 'L' : 'M'}${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join('');
      g.append(node('path', { d, fill: 'none', stroke: color, 'stroke-width': 1.8 }));
    }
    s.append(g);
  });
  // legend, top right
  let ly = T + 4;
  for (const [i, ser] of series.entries()) {
    if (!ser.name) continue;
    const color = ser.color || COLORS[i % COLORS.length];
    s.append(node('rect', { x: W - R - 130, y: ly, width: 10, height: 10, fill: color }));
    s.append(node('text', { x: W - R - 115, y: ly + 9, class: 'legend' }, ser.name.length > 20 ? `${ser.name.slice(0, 19)}…` : ser.name));
    ly += 15;
  }
  host.replaceChildren(s);
  return s;
}
