// The playground's live view: one st.components.v2 component that paints a frame's payload
// (workbench/ui/playground_live.py says what is in it) onto canvases. Streamlit calls the default export with
// each new payload on the same mounted element, so the DOM is built once and a frame only repaints; clicks on
// a neuron or on the network switch go back through setStateValue while the run plays. Counters for
// measurements: data-frames (payloads painted), data-drawn-bnn / data-drawn-float (new boundaries painted).

const STATE = new WeakMap(); // parentElement -> what is kept between frames

function decode(text) {
  const raw = atob(text);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

function rgb(hex) {
  return [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
}

// 256 RGB entries along the blue-white-orange scale: a uint8 cell value -> its colour
function palette(scale) {
  const [low, mid, high] = scale.map(rgb);
  const out = new Uint8ClampedArray(256 * 3);
  for (let v = 0; v < 256; v++) {
    const t = v / 255;
    const [a, b, u] = t < 0.5 ? [low, mid, t * 2] : [mid, high, t * 2 - 1];
    for (let k = 0; k < 3; k++) out[v * 3 + k] = a[k] + (b[k] - a[k]) * u;
  }
  return out;
}

// A square grid of uint8 cells as a side x side canvas (one pixel per cell), reusing `into`
function gridCanvas(bytes, side, colours, into) {
  const canvas = into || document.createElement("canvas");
  if (canvas.width !== side) canvas.width = canvas.height = side;
  const context = canvas.getContext("2d");
  const image = context.createImageData(side, side);
  for (let i = 0; i < side * side; i++) {
    const v = bytes[i] * 3;
    image.data[i * 4] = colours[v];
    image.data[i * 4 + 1] = colours[v + 1];
    image.data[i * 4 + 2] = colours[v + 2];
    image.data[i * 4 + 3] = 255;
  }
  context.putImageData(image, 0, 0);
  return canvas;
}

// Size a canvas to CSS pixels (sharp on any device pixel ratio) and return its context in CSS pixels
function fit(canvas, width, height) {
  const ratio = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(width * ratio));
  const h = Math.max(1, Math.round(height * ratio));
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
    canvas.style.width = width + "px";
    canvas.style.height = height + "px";
  }
  const context = canvas.getContext("2d");
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  context.clearRect(0, 0, width, height);
  return context;
}

function decodePoints(part, span) {
  const raw = decode(part.xy);
  const xy = new Uint16Array(raw.buffer, 0, raw.length / 2); // little-endian, as every browser is
  const labels = decode(part.labels);
  const out = [];
  for (let i = 0; i < labels.length; i++) {
    out.push([(xy[2 * i] / 65535) * 2 * span - span, (xy[2 * i + 1] / 65535) * 2 * span - span, labels[i]]);
  }
  return out;
}

// The points (training filled, test as rings), frame and ticks over a map: drawn once per run and size
function pointsLayer(state, data, size, withTest, text) {
  const ratio = window.devicePixelRatio || 1;
  const key = [size, withTest, text.font, ratio].join();
  const cache = (state.layers ||= new Map());
  const points = data.points.train.xy + data.points.test.xy + data.points.train.labels + data.points.test.labels;
  if (state.pointsText !== points) {
    cache.clear(); // other points: every layer drawn so far is stale
    state.pointsText = points;
  }
  if (cache.has(key)) return cache.get(key);
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = Math.round(size * ratio);
  const context = canvas.getContext("2d");
  context.scale(ratio, ratio);
  const extent = data.extent;
  const pixel = (x, y) => [((x + extent) / (2 * extent)) * size, size - ((y + extent) / (2 * extent)) * size];
  const grow = Math.max(1, size / 360);
  const sets = [[decodePoints(data.points.train, data.points.span), false]];
  if (withTest) sets.push([decodePoints(data.points.test, data.points.span), true]);
  for (const [points, test] of sets) {
    for (const [x, y, label] of points) {
      const [px, py] = pixel(x, y);
      context.beginPath();
      context.arc(px, py, (test ? 3.5 : 3.2) * grow, 0, 2 * Math.PI);
      if (test) {
        context.lineWidth = 2;
        context.strokeStyle = data.classes[label];
        context.stroke();
      } else {
        context.fillStyle = data.classes[label];
        context.fill();
        context.lineWidth = 1;
        context.strokeStyle = "#ffffff";
        context.stroke();
      }
    }
  }
  context.strokeStyle = "#999999";
  context.lineWidth = 1;
  context.strokeRect(0.5, 0.5, size - 1, size - 1);
  context.fillStyle = "#444444";
  context.font = text.font;
  context.textBaseline = "bottom";
  for (const tick of data.ticks) {
    const at = ((tick + extent) / (2 * extent)) * size;
    context.beginPath();
    context.moveTo(at, size - 6);
    context.lineTo(at, size);
    context.moveTo(0, size - at);
    context.lineTo(6, size - at);
    context.strokeStyle = "#666666";
    context.stroke();
    context.fillText(String(tick), at + 3, size - 3);
  }
  if (cache.size >= 8) cache.delete(cache.keys().next().value);
  cache.set(key, canvas);
  return canvas;
}

function drawMap(state, data, canvas, size, bytes, withTest, text, label) {
  const context = fit(canvas, size, size);
  context.imageSmoothingEnabled = false;
  state.cells = gridCanvas(bytes, data.grid, state.colours, state.cells);
  context.drawImage(state.cells, 0, 0, size, size);
  context.drawImage(pointsLayer(state, data, size, withTest, text), 0, 0, size, size);
  canvas.setAttribute("aria-label", label);
}

// ------------------------------------------------------------------------------------------- charts

function niceStep(span, count) {
  const raw = span / Math.max(count, 1);
  const power = Math.pow(10, Math.floor(Math.log10(raw || 1)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * power >= raw) return m * power;
  return 10 * power;
}

function format(value) {
  if (Math.abs(value) >= 1000) return value.toLocaleString("en-US");
  return String(Math.round(value * 1000) / 1000);
}

// A chart of lines and bars over epochs, a left and a right y axis (spec: title, epochs, left, right, series)
function drawChart(canvas, width, height, spec, text) {
  const context = fit(canvas, width, height);
  const px = text.size;
  const margin = { left: 3.6 * px, right: 3.6 * px, top: 3.4 * px, bottom: 2.8 * px };
  const plot = { x: margin.left, y: margin.top, w: width - margin.left - margin.right, h: height - margin.top - margin.bottom };
  const epochs = spec.epochs;
  const last = epochs.length ? epochs[epochs.length - 1] : 1;
  const first = epochs.length > 1 ? epochs[0] : 0;
  const xOf = (e) => plot.x + ((e - first) / Math.max(last - first, 1)) * plot.w;
  const axes = {};
  for (const side of ["left", "right"]) {
    const axis = spec[side];
    let high = axis.max;
    if (high == null) {
      high = 0;
      for (const s of spec.series) if (s.axis === side) for (const v of s.values) if (v != null && v > high) high = v;
      high = high > 0 ? niceStep(high, 1) : 1;
    }
    axes[side] = { ...axis, low: 0, high, y: (v) => plot.y + plot.h - (v / high) * plot.h };
  }
  context.font = text.bold;
  context.fillStyle = text.colour;
  context.textBaseline = "top";
  context.textAlign = "left";
  context.fillText(spec.title, 0, 0);
  // legend, on the line below the title
  context.font = text.font;
  let lx = 0;
  const ly = 1.6 * px;
  for (const item of spec.legend) {
    context.strokeStyle = context.fillStyle = item.colour;
    if (item.kind === "bar") context.fillRect(lx, ly + 0.2 * px, 1.4 * px, 0.7 * px);
    else {
      context.lineWidth = 2;
      context.setLineDash(item.dash || []);
      context.beginPath();
      context.moveTo(lx, ly + 0.55 * px);
      context.lineTo(lx + 1.6 * px, ly + 0.55 * px);
      context.stroke();
      context.setLineDash([]);
    }
    context.fillStyle = text.colour;
    context.fillText(item.label, lx + 2 * px, ly);
    lx += 2.6 * px + context.measureText(item.label).width;
  }
  // grid and axes
  context.strokeStyle = "rgba(128, 128, 128, 0.25)";
  context.lineWidth = 1;
  context.fillStyle = text.muted;
  context.textBaseline = "middle";
  for (const side of ["left", "right"]) {
    const axis = axes[side];
    const step = niceStep(axis.high, 4);
    context.textAlign = side === "left" ? "right" : "left";
    for (let v = 0; v <= axis.high + step / 1e6; v += step) {
      const y = axis.y(v);
      if (side === "left") {
        context.beginPath();
        context.moveTo(plot.x, y);
        context.lineTo(plot.x + plot.w, y);
        context.stroke();
      }
      context.fillText(format(v), side === "left" ? plot.x - 0.4 * px : plot.x + plot.w + 0.4 * px, y);
    }
  }
  const xStep = niceStep(Math.max(last - first, 1), Math.max(2, Math.floor(plot.w / (5 * px))));
  context.textAlign = "center";
  context.textBaseline = "top";
  for (let e = Math.ceil(first / xStep) * xStep; e <= last; e += xStep) {
    context.fillText(format(e), xOf(e), plot.y + plot.h + 0.3 * px);
  }
  context.fillText("epoch", plot.x + plot.w / 2, plot.y + plot.h + 1.5 * px);
  context.strokeStyle = "#999999";
  context.strokeRect(plot.x + 0.5, plot.y + 0.5, plot.w - 1, plot.h - 1);
  // axis titles, along the axes
  for (const side of ["left", "right"]) {
    context.save();
    context.translate(side === "left" ? 0.1 * px : width - 0.1 * px, plot.y + plot.h / 2);
    context.rotate(side === "left" ? -Math.PI / 2 : Math.PI / 2);
    context.textAlign = "center";
    context.textBaseline = "top";
    context.fillText(spec[side].title, 0, 0);
    context.restore();
  }
  if (!epochs.length) {
    context.textAlign = "center";
    context.textBaseline = "middle";
    context.fillText("no epoch trained yet: press Play or Step", plot.x + plot.w / 2, plot.y + plot.h / 2);
    return;
  }
  context.save();
  context.beginPath();
  context.rect(plot.x, plot.y, plot.w, plot.h);
  context.clip();
  for (const s of spec.series) {
    const y = axes[s.axis].y;
    context.strokeStyle = context.fillStyle = s.colour;
    if (s.kind === "bar") {
      const bar = Math.max(1, (plot.w / Math.max(epochs.length, 1)) * 0.8);
      s.values.forEach((v, i) => {
        if (v != null) context.fillRect(xOf(epochs[i]) - bar / 2, y(v), bar, plot.y + plot.h - y(v));
      });
      continue;
    }
    context.lineWidth = 2;
    context.setLineDash(s.dash || []);
    context.beginPath();
    let pen = false;
    s.values.forEach((v, i) => {
      if (v == null) {
        pen = false;
        return;
      }
      if (pen) context.lineTo(xOf(epochs[i]), y(v));
      else context.moveTo(xOf(epochs[i]), y(v));
      pen = true;
    });
    if (epochs.length === 1) {
      const v = s.values[0];
      if (v != null) context.arc(xOf(epochs[0]), y(v), 2.5, 0, 2 * Math.PI);
    }
    context.stroke();
    context.setLineDash([]);
  }
  context.restore();
}

function drawCharts(root, data, text) {
  const curves = data.curves;
  const titles = curves.titles;
  const box = root.querySelector(".pg-charts");
  const left = box.querySelector(".pg-curves");
  const right = box.querySelector(".pg-flips");
  const height = Math.round(18 * text.size);
  const gap = 16;
  const total = box.clientWidth || 800;
  const wide = total >= 640;
  const leftWidth = wide ? Math.floor(((total - gap) * 3) / 5) : total;
  const rightWidth = wide ? total - gap - leftWidth : total;
  const nets = Object.keys(data.nets);
  const dotted = [4, 3];
  const curvesChart = {
    title: titles.curves,
    left: { title: titles.loss, max: null },
    right: { title: titles.accuracy, max: 1 },
    series: nets.flatMap((n) => [
      { values: curves.loss[n], colour: data.nets[n].color, axis: "left" },
      { values: curves.accuracy[n], colour: data.nets[n].color, axis: "right", dash: dotted },
    ]),
    legend: nets.map((n) => ({ label: data.nets[n].title, colour: data.nets[n].color })),
  };
  const flipsChart = {
    title: titles.flips_chart,
    left: { title: titles.flips, max: null },
    right: { title: titles.at_bound, max: 1 },
    series: [
      { values: curves.flips, colour: data.nets.bnn.color, axis: "left", kind: "bar" },
      { values: curves.at_bound, colour: curves.bound_color, axis: "right" },
    ],
    legend: [
      { label: "flips", colour: data.nets.bnn.color, kind: "bar" },
      { label: "at the clip bound", colour: curves.bound_color },
    ],
  };
  for (const [canvas, width, spec] of [[left, leftWidth, curvesChart], [right, rightWidth, flipsChart]]) {
    drawChart(canvas, width, height, { ...spec, epochs: curves.epochs }, text);
  }
  const lastOf = (values) => (values.length ? values[values.length - 1] : null);
  const pct = (v) => (v == null ? "not measured" : Math.round(v * 100) + "%");
  left.setAttribute(
    "aria-label",
    titles.curves + ", last epoch: " + nets.map((n) => data.nets[n].title + " accuracy " + pct(lastOf(curves.accuracy[n]))).join(", "),
  );
  right.setAttribute(
    "aria-label",
    titles.flips_chart + ", last epoch: " + (lastOf(curves.flips) ?? 0) + " flips, " + pct(lastOf(curves.at_bound)) + " at the clip bound",
  );
}

// ------------------------------------------------------------------------------------------- diagram

function buildButtons(state, root, d) {
  const view = root.querySelector(".pg-diagram-view");
  const layout = JSON.stringify([d.width, d.height, d.box, d.neurons]);
  if (view.dataset.layout === layout) return;
  view.dataset.layout = layout;
  view.querySelectorAll("button").forEach((old) => old.remove());
  for (const [left, top, column, row, label] of d.neurons) {
    const hit = document.createElement("button");
    hit.type = "button";
    hit.title = label;
    hit.setAttribute("aria-label", label);
    hit.dataset.neuron = column + "," + row;
    Object.assign(hit.style, {
      left: (100 * left) / d.width + "%",
      top: (100 * top) / d.height + "%",
      width: (100 * d.box) / d.width + "%",
      height: (100 * d.box) / d.height + "%",
    });
    hit.addEventListener("click", () => state.choose("neuron", [column, row, Date.now()]));
    view.appendChild(hit);
  }
}

function drawDiagram(state, root, data, text) {
  const d = data.diagram;
  root.querySelectorAll(".pg-switch button").forEach((button, i) => {
    [button.dataset.net, button.textContent] = d.nets[i];
    button.setAttribute("aria-pressed", String(button.dataset.net === d.net));
  });
  buildButtons(state, root, d);
  const view = root.querySelector(".pg-diagram-view");
  const canvas = view.querySelector("canvas");
  const width = view.clientWidth || d.width;
  const k = width / d.width;
  const context = fit(canvas, width, d.height * k);
  const centre = new Map();
  for (const [left, top, column, row] of d.neurons) centre.set(column + "," + row, [(left + d.box / 2) * k, (top + d.box / 2) * k]);
  const half = (d.box / 2) * k;
  context.globalAlpha = 150 / 255;
  d.links.forEach((widths, layer) => {
    const inputs = d.columns[layer].count;
    widths.forEach((w, i) => {
      const [x0, y0] = centre.get(layer + "," + (i % inputs));
      const [x1, y1] = centre.get(layer + 1 + "," + Math.floor(i / inputs));
      context.strokeStyle = w > 0 ? d.link_colors[0] : d.link_colors[1];
      context.lineWidth = Math.abs(w) * Math.max(k, 0.75);
      context.beginPath();
      context.moveTo(x0 + half, y0);
      context.lineTo(x1 - half, y1);
      context.stroke();
    });
  });
  context.globalAlpha = 1;
  context.imageSmoothingEnabled = false;
  const cell = (state.thumbCell ||= document.createElement("canvas"));
  d.neurons.forEach(([left, top, column, row], i) => {
    gridCanvas(decode(d.thumbs[i]), d.thumb, state.colours, cell);
    context.drawImage(cell, left * k, top * k, d.box * k, d.box * k);
    if (column === d.selected[0] && row === d.selected[1]) {
      context.strokeStyle = text.colour;
      context.lineWidth = 2;
      context.strokeRect(left * k - 3, top * k - 3, d.box * k + 6, d.box * k + 6);
    }
  });
  context.fillStyle = text.muted;
  context.font = text.font;
  context.textAlign = "center";
  context.textBaseline = "top";
  for (const column of d.columns) context.fillText(column.label, column.x * k, 4);
  for (const button of view.querySelectorAll("button")) {
    button.setAttribute("aria-pressed", String(button.dataset.neuron === d.selected.join(",")));
  }
  canvas.setAttribute("aria-label", "network diagram of the " + data.nets[d.net].title + ", " + d.neurons.length + " neurons");
  // the picked neuron, large
  const right = root.querySelector(".pg-diagram-right");
  right.querySelector(".pg-map-title").textContent = d.map_title;
  const size = Math.min(right.clientWidth || 360, Math.round(22.5 * text.size));
  drawMap(state, data, right.querySelector("canvas"), size, decode(d.map), false, text, "map of " + d.map_title);
}

// ------------------------------------------------------------------------------------------- the frame

function textStyle(root) {
  const style = getComputedStyle(root);
  const size = Math.max(12, 0.8 * parseFloat(style.fontSize || "16"));
  const family = style.fontFamily || "sans-serif";
  return {
    size,
    font: `${size}px ${family}`,
    bold: `600 ${1.15 * size}px ${family}`,
    colour: style.color || "#31333f",
    muted: "rgba(100, 100, 110, 1)",
  };
}

function setup(state, root, parentElement) {
  root.querySelector(".pg-switch").addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (button && button.getAttribute("aria-pressed") !== "true") state.choose("net", [button.dataset.net, Date.now()]);
  });
  root.querySelector(".pg-copy").addEventListener("click", async () => {
    const link = root.querySelector(".pg-link code").textContent;
    const note = root.querySelector(".pg-copied");
    try {
      await navigator.clipboard.writeText(link);
      note.textContent = "copied";
    } catch {
      const range = document.createRange();
      range.selectNodeContents(root.querySelector(".pg-link code"));
      const selection = (parentElement.getSelection ? parentElement : window).getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      note.textContent = "selected: press Ctrl+C";
    }
    setTimeout(() => (note.textContent = ""), 2500);
  });
}

export default function ({ data, parentElement, setStateValue, setTriggerValue }) {
  const root = parentElement.querySelector(".pg-live");
  if (!root || !data) return;
  let state = STATE.get(parentElement);
  if (!state) {
    state = { drawn: {} };
    STATE.set(parentElement, state);
    setup(state, root, parentElement);
  }
  // the latest callbacks: they carry this run's fragment. A choice (a neuron, the diagram's network) is a state
  // value stamped with the time, so that every click is a change; a frame request is a trigger. Not both triggers:
  // of two triggers of one component that reach a busy server, the newer replaces the older, and a frame request
  // made just after a click lost the click
  state.choose = setStateValue;
  state.trigger = setTriggerValue;
  const scaleKey = data.scale.join();
  if (state.scaleKey !== scaleKey) {
    state.colours = palette(data.scale);
    state.scaleKey = scaleKey;
  }
  const text = textStyle(root);
  root.querySelector(".pg-epoch").textContent = data.heading;
  root.querySelector(".pg-summary").textContent = data.summary;
  for (const [name, net] of Object.entries(data.nets)) {
    const figure = root.querySelector(`.pg-net[data-net="${name}"]`);
    figure.querySelector(".pg-title").textContent = net.title;
    figure.querySelector(".pg-text").textContent = ": " + net.text;
    const size = Math.min(figure.clientWidth || 360, Math.round(30 * text.size));
    drawMap(state, data, figure.querySelector("canvas"), size, decode(net.boundary), true, text,
      `${net.title} decision boundary, ${net.text}; training points filled, test points as rings`);
    if (state.drawn[name] !== net.boundary) {
      state.drawn[name] = net.boundary; // a new boundary painted: count it (data-drawn-bnn, data-drawn-float)
      const counter = "drawn" + name[0].toUpperCase() + name.slice(1);
      root.dataset[counter] = String(Number(root.dataset[counter] || 0) + 1);
    }
  }
  const stats = root.querySelector(".pg-stats");
  stats.hidden = !data.stats;
  if (data.stats) {
    stats.querySelectorAll(".pg-metric").forEach((box, i) => {
      const item = data.stats[i];
      box.title = item.help;
      box.querySelector(".pg-label").textContent = item.label;
      box.querySelector(".pg-value").textContent = item.value;
      box.querySelector(".pg-delta").textContent = item.delta || "";
    });
  }
  const charts = root.querySelector(".pg-charts");
  charts.hidden = !data.curves;
  if (data.curves) drawCharts(root, data, text);
  const diagram = root.querySelector(".pg-diagram");
  diagram.hidden = !data.diagram;
  if (data.diagram) drawDiagram(state, root, data, text);
  const link = root.querySelector(".pg-link");
  link.hidden = !data.link;
  if (data.link) link.querySelector("code").textContent = data.link;
  root.dataset.epoch = String(data.epoch);
  root.dataset.frames = String(Number(root.dataset.frames || 0) + 1);
  pace(state, data);
}

// While playing, ask for the next frame once this one is painted, frame_ms after the last ask at the earliest:
// one frame in flight per tab, so a busy browser is never sent frames it cannot paint. A watchdog asks again when
// no frame came in time (a lost rerun, a reconnect): after WATCHDOG_MS or 4 round trips, whichever is longer, and
// twice as long after each ask it had to repeat, since an ask that arrives while the server still makes a frame
// restarts that frame (a slow setting, epochs of seconds, would otherwise never finish one).
const WATCHDOG_MS = 2000;

function pace(state, data) {
  clearTimeout(state.watchdog);
  clearTimeout(state.next);
  if (state.askedAt != null) {
    state.roundTrip = performance.now() - state.askedAt;
    state.askedAt = null;
  }
  state.patience = Math.max(WATCHDOG_MS, 4 * (state.roundTrip || 0));
  if (!data.playing) return;
  const ask = () => {
    state.askedAt = state.lastAsk = performance.now();
    state.trigger("frame", data.epoch);
    state.watchdog = setTimeout(() => {
      state.patience *= 2;
      ask();
    }, state.patience);
  };
  state.next = setTimeout(ask, Math.max(0, (state.lastAsk || 0) + data.frame_ms - performance.now()));
}
