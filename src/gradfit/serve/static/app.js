// gradfit playground: the page. Streams a fit's rows over one WebSocket and draws them, at most once a frame.
"use strict";

const $ = (id) => document.getElementById(id);
const COLORS = ["#5ec8ff", "#ffb454", "#6ee7a8", "#ff6b7a", "#c792ea", "#f7d26a", "#82aaff", "#ff9cac"];
const SPEEDS = [1, 3, 10, 30, 100, 1000, null]; // steps a second; null: as fast as the machine goes
const TABLE_ROWS = 8;

const state = {
  dataset: null, // the summary of the chosen data (columns, first rows)
  names: [], // parameter names of the current run
  rows: [], // [step, loss, val_loss, lr, grad_norm, ...params]
  data: null, // points of the data, sent once per run
  curve: null, // the model's values at data.grid (or at the sampled rows)
  run: null, // "running" | "paused" | "done" | "failed" | null
  end: null,
  formula: { ok: false, params: [] },
  zoo: [],
  stats: { rows: 0, messages: 0, redraws: 0 }, // read by the browser test
  land: { grid: null, asked: 0, pending: false, endAsked: false }, // the last grid; when one was asked
};
window.gradfitPlayground = state;

// ---- the WebSocket ------------------------------------------------------------------------------------------

let socket = null;
const waiting = [];

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/api/run`);
  socket.onopen = () => waiting.splice(0).forEach((text) => socket.send(text));
  socket.onmessage = (event) => receive(JSON.parse(event.data));
  socket.onclose = () => setTimeout(connect, 1000);
}

function send(message) {
  const text = JSON.stringify(message);
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(text);
  else waiting.push(text);
}

function receive(m) {
  state.stats.messages += 1;
  if (m.type === "started") {
    Object.assign(state, { rows: [], curve: null, end: null, names: [], runId: m.run });
    state.land = { grid: null, asked: 0, pending: false, endAsked: false };
    $("command").textContent = m.command;
    $("downloads").textContent = "";
    setMessage(m.paused ? "Held before the first update: press Step or Run." : "Running…", "");
    setStatus(m.paused ? "paused" : "running");
  } else if (m.type === "params") {
    state.names = m.names;
    state.data = m.data;
    fill($("land-a"), m.names, [m.names[0]]);
    fill($("land-b"), m.names, [m.names[1] || m.names[0]]);
  } else if (m.type === "rows") {
    for (const row of m.rows) state.rows.push(row);
    state.stats.rows += m.rows.length;
    if (m.curve) state.curve = m.curve;
  } else if (m.type === "end") {
    state.end = m;
    for (const row of m.rows || []) state.rows.push(row);
    if (m.curve) state.curve = m.curve;
    showEnd(m);
  } else if (m.type === "limit") {
    state.limit = m.limit;
    hintLearningRate();
  } else if (m.type === "landscape") {
    state.land.pending = false;
    if (m.run !== state.runId) return; // asked for a run that has since been replaced
    state.land.grid = m;
    $("land-note").textContent = `Exact loss over ${m.pair.join(" and ")}, the others held at the current values${m.note ? `, ${m.note}` : ""}; the path so far in white.`;
  } else if (m.type === "error") {
    state.land.pending = false;
    setMessage(m.message, "bad");
    if (!state.run || state.run === "done") setStatus("failed");
  }
  redraw();
}

// ---- controls -----------------------------------------------------------------------------------------------

function setStatus(run) {
  state.run = run;
  const status = $("status");
  status.className = `status ${run || "idle"}`;
  status.textContent = { running: "running", paused: "paused", done: "finished", failed: "failed" }[run] || "ready";
  $("pause").disabled = run !== "running";
  $("stop").disabled = run !== "running" && run !== "paused";
  $("reset").disabled = !run;
}

function live() {
  return state.run === "running" || state.run === "paused";
}

$("play").onclick = () => {
  if (state.run === "paused") {
    send({ type: "play" });
    setStatus("running");
  } else if (!live()) start(false);
};
$("pause").onclick = () => {
  send({ type: "pause" });
  setStatus("paused");
};
$("step").onclick = () => {
  if (live()) {
    send({ type: "step" });
    setStatus("paused");
  } else start(true);
};
$("stop").onclick = () => send({ type: "stop" });
$("reset").onclick = () => send({ type: "reset", paused: true });
$("speed").oninput = () => {
  const pace = SPEEDS[Number($("speed").value)];
  $("speed-out").textContent = pace === null ? "max" : `${pace}/s`;
  send({ type: "speed", steps_per_second: pace });
};
document.addEventListener("keydown", (event) => {
  if (event.target.closest("input, select, textarea")) return;
  if (event.key === " ") {
    event.preventDefault();
    (state.run === "running" ? $("pause") : $("play")).click();
  } else if (event.key === "ArrowRight") $("step").click();
});
$("copy").onclick = () => navigator.clipboard && navigator.clipboard.writeText($("command").textContent);

function start(paused) {
  if (!state.dataset) return setMessage("Choose the data first.", "bad");
  const options = {
    loss: $("loss").value,
    optimizer: $("optimizer").value,
    steps: integer($("steps").value),
    batch_size: integer($("batch").value),
    seed: integer($("seed").value),
  };
  if (!["lm", "auto"].includes(options.optimizer)) options.lr = learningRate();
  if ($("scale").checked) options.scale = true;
  send({
    type: "start",
    paused,
    data: state.dataset.id,
    model: modelText(),
    y: $("y").value,
    x: selectedX(),
    init: initialValues(),
    fix: fixedNames(),
    bounds: boundsOf(),
    options,
  });
  const pace = SPEEDS[Number($("speed").value)];
  if (pace !== null) send({ type: "speed", steps_per_second: pace });
}

function integer(text) {
  const value = Number.parseInt(text, 10);
  return Number.isFinite(value) ? value : null;
}

function learningRate() {
  return Number(Math.pow(10, Number($("lr").value)).toPrecision(2));
}
$("lr").oninput = () => {
  $("lr-out").textContent = learningRate();
  hintLearningRate();
};

function hintLearningRate() {
  const limit = state.limit;
  const hint = $("lr-hint");
  const mark = $("lr-limit");
  if (!limit || !Number.isFinite(limit)) {
    mark.hidden = true;
    hint.textContent = "";
    return;
  }
  const slider = $("lr");
  const low = Number(slider.min);
  const high = Number(slider.max);
  const at = (Math.log10(limit) - low) / (high - low);
  mark.hidden = at < 0 || at > 1;
  mark.style.left = `calc(${(100 * at).toFixed(2)}% - 1px)`;
  const lr = learningRate();
  if ($("optimizer").value === "sgd" && lr > limit) {
    hint.className = "hint warn";
    hint.textContent = `lr ${lr} is past the stability limit ${format(limit)} (2/λmax, measured at the start): each step overshoots more than the last and the fit will diverge. Below ${format(limit / 2)} it settles smoothly.`;
  } else {
    hint.className = "hint";
    hint.textContent = `The stability limit is ${format(limit)} (2/λmax at the start): sgd's steps overshoot beyond it.`;
  }
}

// ---- data ---------------------------------------------------------------------------------------------------

async function api(path, options) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({ error: `The server answered ${response.status}.` }));
  if (!response.ok) throw new Error(body.error || `The server answered ${response.status}.`);
  return body;
}

async function loadBuiltins() {
  const list = await api("/api/builtin");
  const select = $("builtin");
  select.innerHTML = "";
  for (const item of list) select.add(new Option(`builtin: ${item.name}`, item.id));
  select.onchange = () => chooseData(select.value);
  select.dataset.about = JSON.stringify(Object.fromEntries(list.map((d) => [d.id, d.about])));
  state.zoo = await api("/api/models");
  for (const model of state.zoo) $("zoo").add(new Option(model.name, model.name));
  await chooseData(list[0].id);
}

let choosing = 0; // the latest choice wins: an earlier one still loading must not overwrite it
async function chooseData(id, summary) {
  const mine = (choosing += 1);
  $("data-error").hidden = true;
  let chosen;
  try {
    chosen = summary || (await api(`/api/datasets/${encodeURIComponent(id)}`));
  } catch (error) {
    if (mine === choosing) showDataError(error.message);
    return;
  }
  if (mine !== choosing) return;
  state.dataset = chosen;
  state.limit = null;
  hintLearningRate();
  const about = JSON.parse($("builtin").dataset.about || "{}")[state.dataset.id];
  const notes = state.dataset.notes.length ? ` ${state.dataset.notes.join(" ")}` : "";
  const title = (about || state.dataset.name).replace(/\.$/, "");
  $("data-about").textContent = `${title}: ${state.dataset.rows} rows.${notes}`;
  const numeric = state.dataset.numeric;
  const y = numeric[numeric.length - 1] || state.dataset.columns[0];
  fill($("y"), state.dataset.columns, [y]);
  fill($("x"), state.dataset.columns.filter((c) => c !== y), numeric.filter((c) => c !== y));
  drawHead();
  checkFormula();
}

function fill(select, names, chosen) {
  select.innerHTML = "";
  for (const name of names) {
    const option = new Option(name, name);
    option.selected = chosen.includes(name);
    select.add(option);
  }
}

$("y").onchange = () => {
  const y = $("y").value;
  fill($("x"), state.dataset.columns.filter((c) => c !== y), state.dataset.numeric.filter((c) => c !== y));
  checkFormula();
};
$("x").onchange = () => checkFormula();

function selectedX() {
  return Array.from($("x").selectedOptions).map((o) => o.value);
}

function drawHead() {
  const { columns, head } = state.dataset;
  const cells = (values, tag) => values.map((v) => `<${tag}>${escapeHtml(format(v))}</${tag}>`).join("");
  $("head").innerHTML = `<table><tr>${cells(columns, "th")}</tr>${head.map((r) => `<tr>${cells(r, "td")}</tr>`).join("")}</table>`;
}

$("file").onchange = async () => {
  const file = $("file").files[0];
  if (!file) return;
  const form = new FormData();
  form.append("file", file);
  try {
    const summary = await api("/api/datasets", { method: "POST", body: form });
    const select = $("builtin");
    const option = new Option(`file: ${summary.name}`, summary.id);
    select.add(option, 0);
    option.selected = true;
    await chooseData(summary.id, summary);
  } catch (error) {
    showDataError(error.message);
  }
  $("file").value = "";
};

function showDataError(message) {
  $("data-error").hidden = false;
  $("data-error").textContent = message;
}

// ---- the model ----------------------------------------------------------------------------------------------

function modelText() {
  return $("zoo").value || $("formula").value.trim();
}

let checking = null;
$("formula").oninput = () => {
  $("zoo").value = "";
  state.limit = null;
  hintLearningRate();
  clearTimeout(checking);
  checking = setTimeout(checkFormula, 200);
};
$("zoo").onchange = () => {
  const entry = state.zoo.find((m) => m.name === $("zoo").value);
  if (entry) $("formula").value = entry.formula.replace(/^\s*y\s*=\s*/, "");
  checkFormula();
};

async function checkFormula() {
  if (!state.dataset) return;
  const text = modelText();
  const out = $("formula-check");
  const columns = $("zoo").value ? selectedX() : state.dataset.columns.filter((c) => c !== $("y").value);
  let answer;
  try {
    answer = await api("/api/formula", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ text, columns: $("zoo").value ? selectedX() : columns }),
    });
  } catch (error) {
    answer = { ok: false, message: error.message };
  }
  state.formula = answer;
  if (answer.ok) {
    out.className = "check ok";
    out.textContent = `parameters ${answer.params.join(", ")}  ·  inputs ${answer.inputs.join(", ") || "none"}`;
    if (!$("zoo").value && answer.inputs.length) {
      fill($("x"), state.dataset.columns.filter((c) => c !== $("y").value), answer.inputs);
    }
    drawInits(answer.params);
    askLimit();
  } else {
    out.className = "check bad";
    const caret = answer.offset == null ? "" : `${text}\n${" ".repeat(answer.offset)}${"^".repeat(answer.length || 1)}\n`;
    out.textContent = caret + answer.message;
    drawInits([]);
  }
}

let limitTimer = null;
function askLimit() {
  clearTimeout(limitTimer);
  limitTimer = setTimeout(() => {
    if (!state.dataset || !state.formula.ok) return;
    send({ type: "limit", data: state.dataset.id, model: modelText(), y: $("y").value, x: selectedX(),
      init: initialValues(), fix: fixedNames(), bounds: boundsOf(), options: { loss: $("loss").value } });
  }, 300);
}
$("loss").onchange = () => askLimit();

function drawInits(params) {
  const box = $("inits");
  const kept = settings();
  box.innerHTML = params.length ? "<span>param</span><span>start</span><span>fix</span><span>low</span><span>high</span>" : "";
  for (const name of params.slice(0, 12)) {
    const was = kept[name] || {};
    const cell = (kind, value, placeholder) => {
      const input = document.createElement("input");
      input.type = kind === "fix" ? "checkbox" : "number";
      if (kind === "fix") input.checked = Boolean(value);
      else {
        input.step = "any";
        input.placeholder = placeholder;
        if (value !== undefined && value !== null) input.value = value;
      }
      input.dataset.param = name;
      input.dataset.kind = kind;
      input.setAttribute("aria-label", `${name} ${kind}`);
      return input;
    };
    const label = document.createElement("span");
    label.textContent = name;
    box.append(label, cell("start", was.start, "auto"), cell("fix", was.fix), cell("low", was.low, "–∞"), cell("high", was.high, "∞"));
  }
}

function settings() {
  const out = {};
  for (const input of $("inits").querySelectorAll("input")) {
    const entry = (out[input.dataset.param] = out[input.dataset.param] || {});
    if (input.dataset.kind === "fix") entry.fix = input.checked;
    else if (input.value !== "" && Number.isFinite(Number(input.value))) entry[input.dataset.kind] = Number(input.value);
  }
  return out;
}

function initialValues() {
  return Object.fromEntries(Object.entries(settings()).filter(([, e]) => e.start !== undefined).map(([k, e]) => [k, e.start]));
}

function fixedNames() {
  return Object.entries(settings()).filter(([, e]) => e.fix).map(([k]) => k);
}

function boundsOf() {
  const out = {};
  for (const [name, e] of Object.entries(settings())) {
    if (e.low !== undefined || e.high !== undefined) out[name] = [e.low ?? null, e.high ?? null];
  }
  return out;
}

// ---- lessons ------------------------------------------------------------------------------------------------

const LESSONS = {
  line: { data: "builtin:linear", formula: "a*x + b", optimizer: "sgd", lr: 0.1, steps: 100,
    say: "The seeds' loop: guess, predict, measure the loss, step against the gradient, again." },
  crawl: { data: "builtin:rollercoaster", y: "speed", formula: "a*t**2 + b*t + c", optimizer: "sgd", lr: 1e-5,
    steps: 300, say: "t runs to 19, so t² is ~360 and a tiny learning rate is all that is stable: the fit crawls." },
  fix: { data: "builtin:rollercoaster", y: "speed", formula: "a*t**2 + b*t + c", optimizer: "lm", steps: 50,
    say: "Levenberg-Marquardt uses the curvature: a few steps to the answer." },
  diverge: { data: "builtin:linear", formula: "a*x + b", optimizer: "sgd", lr: 3, steps: 100,
    say: "Past the stability limit every step overshoots more than the last; the fit stops and says why." },
  bouncy: { data: "builtin:linear", formula: "a*x + b", optimizer: "momentum", lr: 0.3, steps: 150,
    say: "Momentum carries the parameters past the bottom and back: watch them swing." },
  classes: { data: "builtin:blobs", y: "label", zoo: "logistic", loss: "bce", optimizer: "adam", lr: 0.1, steps: 150,
    say: "Two classes: the model's call shades the plane, and the boundary turns to fall between them." },
};

for (const button of document.querySelectorAll("[data-lesson]")) {
  button.onclick = async () => {
    const lesson = LESSONS[button.dataset.lesson];
    $("builtin").value = lesson.data;
    await chooseData(lesson.data);
    if (lesson.y) {
      $("y").value = lesson.y;
      $("y").onchange();
    }
    $("zoo").value = lesson.zoo || "";
    if (lesson.zoo) $("zoo").onchange();
    else $("formula").value = lesson.formula;
    $("optimizer").value = lesson.optimizer;
    $("loss").value = lesson.loss || "mse";
    $("steps").value = lesson.steps;
    $("batch").value = "";
    if (lesson.lr) {
      $("lr").value = Math.log10(lesson.lr);
      $("lr-out").textContent = lesson.lr;
    }
    await checkFormula();
    if (live()) send({ type: "stop" });
    setTimeout(() => {
      start(false);
      setMessage(lesson.say, "");
    }, live() ? 150 : 0);
  };
}

// ---- the end ------------------------------------------------------------------------------------------------

function showEnd(m) {
  if (m.stability && m.stability.limit) {
    state.limit = m.stability.limit;
    hintLearningRate();
  }
  if (!m.ok) {
    setStatus("failed");
    return setMessage(m.message, "bad");
  }
  setStatus(m.stop_reason === "diverged" ? "failed" : "done");
  const params = Object.entries(m.params).map(([k, v]) => `${k} = ${format(v)}`).join(",  ");
  const settled = /^(converged|target_loss|early_stopped)$/.test(m.stop_reason) || /at the minimum/.test(m.message || "");
  const kind = m.stop_reason === "diverged" ? "bad" : settled ? "ok" : "warn";
  setMessage(`${m.stop_reason} after ${m.steps} steps · loss ${format(m.loss)} · ${params}\n${m.message || ""}`.trim(), kind);
  const links = Object.entries(m.downloads).map(([name, url]) => `<a href="${url}" download>${name}</a>`);
  $("downloads").innerHTML = links.join("");
  if (m.stop_reason === "diverged" && !state.limit) {
    $("lr-hint").className = "hint warn";
    $("lr-hint").textContent = "The fit diverged: every step overshot more than the last. Lower the learning rate.";
  }
}

function setMessage(text, kind) {
  const box = $("end-message");
  box.className = `message ${kind || "muted"}`;
  box.textContent = text;
}

// ---- drawing ------------------------------------------------------------------------------------------------

let pending = false;
function redraw() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => {
    pending = false;
    state.stats.redraws += 1;
    drawData();
    drawLoss();
    drawParams();
    drawTable();
    drawLandscape();
    askLandscape();
  });
}

function canvas(id) {
  const element = $(id);
  const ratio = window.devicePixelRatio || 1;
  const width = element.clientWidth;
  const height = element.clientHeight;
  if (element.width !== Math.round(width * ratio) || element.height !== Math.round(height * ratio)) {
    element.width = Math.round(width * ratio);
    element.height = Math.round(height * ratio);
  }
  const ctx = element.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  return { ctx, width, height };
}

function extent(values, log) {
  let low = Infinity;
  let high = -Infinity;
  for (const v of values) {
    if (v == null || !Number.isFinite(v) || (log && v <= 0)) continue;
    if (v < low) low = v;
    if (v > high) high = v;
  }
  if (!Number.isFinite(low)) return null;
  if (log) return [Math.log10(low), Math.log10(high) + (high === low ? 1 : 0)];
  if (high === low) return [low - 1, high + 1];
  const pad = 0.05 * (high - low);
  return [low - pad, high + pad];
}

function ticks(low, high, count, whole = false) {
  const step = Math.pow(10, Math.floor(Math.log10((high - low) / count)));
  let nice = [1, 2, 5, 10].map((m) => m * step).find((s) => (high - low) / s <= count) || step * 10;
  if (whole) nice = Math.max(1, Math.round(nice));
  const out = [];
  for (let v = Math.ceil(low / nice) * nice; v <= high + 1e-12 * Math.abs(high); v += nice) out.push(v);
  return out;
}

function frame(view, xs, ys, options = {}) {
  const { ctx, width, height } = view;
  ctx.font = "11px ui-monospace, monospace";
  const yTicks = options.logY ? ticks(ys[0], ys[1], 5, ys[1] - ys[0] >= 1) : ticks(ys[0], ys[1], 5);
  const yText = (t) => (options.logY ? format(Math.pow(10, t)) : format(t));
  const left = 12 + Math.max(30, ...yTicks.map((t) => ctx.measureText(yText(t)).width));
  const box = { left, right: width - 12, top: 10, bottom: height - 26 };
  const sx = (v) => box.left + ((v - xs[0]) / (xs[1] - xs[0])) * (box.right - box.left);
  const sy = (v) => box.bottom - ((v - ys[0]) / (ys[1] - ys[0])) * (box.bottom - box.top);
  ctx.fillStyle = "#8d99b3";
  ctx.strokeStyle = "#222c42";
  ctx.lineWidth = 1;
  for (const t of yTicks) {
    const y = sy(t);
    ctx.beginPath();
    ctx.moveTo(box.left, y);
    ctx.lineTo(box.right, y);
    ctx.stroke();
    ctx.textAlign = "right";
    ctx.fillText(yText(t), box.left - 6, y + 4);
  }
  for (const t of ticks(xs[0], xs[1], 6, options.wholeX)) {
    ctx.textAlign = "center";
    ctx.fillText(format(t), sx(t), box.bottom + 16);
  }
  if (options.xLabel) {
    ctx.textAlign = "right";
    ctx.fillText(options.xLabel, box.right, box.bottom - 6);
  }
  return { sx, sy, box, ctx };
}

function line(plot, xs, ys, color, width = 2) {
  const { ctx, sx, sy } = plot;
  ctx.strokeStyle = color;
  ctx.lineWidth = width;
  ctx.beginPath();
  let drawing = false;
  for (let i = 0; i < xs.length; i += 1) {
    if (ys[i] == null || !Number.isFinite(ys[i]) || xs[i] == null) {
      drawing = false;
      continue;
    }
    const x = sx(xs[i]);
    const y = sy(ys[i]);
    if (drawing) ctx.lineTo(x, y);
    else ctx.moveTo(x, y);
    drawing = true;
  }
  ctx.stroke();
}

function thinned(count, most) {
  const stride = Math.max(1, Math.ceil(count / most));
  const out = [];
  for (let i = 0; i < count; i += stride) out.push(i);
  if (count && out[out.length - 1] !== count - 1) out.push(count - 1);
  return out;
}

function drawData() {
  const view = canvas("data-canvas");
  const data = state.data;
  if (!data) return placeholder(view, "The data and the model's curve appear here when a run starts.");
  if (data.kind === "curve") {
    const curve = state.curve || [];
    const xs = extent([...data.x, ...data.grid]);
    const own = extent(data.y);
    if (!xs || !own) return;
    // The data's range, widened to show the curve where it stays near the data (a diverging curve is clipped).
    const reach = own[1] - own[0];
    const near = curve.filter((v) => v != null && v > own[0] - reach && v < own[1] + reach);
    const ys = extent([...data.y, ...near]) || own;
    const plot = frame(view, xs, ys, { xLabel: data.input[0] });
    dots(plot, data.x, data.y);
    plot.ctx.save();
    plot.ctx.beginPath();
    plot.ctx.rect(plot.box.left, plot.box.top, plot.box.right - plot.box.left, plot.box.bottom - plot.box.top);
    plot.ctx.clip();
    if (state.curve) line(plot, data.grid, state.curve, "#ffb454", 2.5);
    plot.ctx.restore();
    $("fit-caption").textContent = `${$("y").value} against ${data.input[0]}`;
  } else if (data.kind === "classes") {
    drawClasses(view, data);
  } else {
    const predicted = state.curve || [];
    const all = extent([...data.y, ...predicted]);
    if (!all) return;
    const plot = frame(view, all, all, { xLabel: "observed" });
    line(plot, all, all, "#3a4868", 1);
    dots(plot, data.y, predicted.length ? predicted : data.y.map(() => null));
    $("fit-caption").textContent = "predicted against observed (the diagonal is a perfect fit)";
  }
}

const CLASS_COLOURS = ["#5ec8ff", "#ffb454", "#6ee7a8", "#ff6b7a", "#c792ea", "#f7d26a", "#82aaff", "#ff9cac", "#9ee7ff", "#d0d6e4"];

function drawClasses(view, data) {
  const [gx, gy] = data.grid;
  const plot = frame(view, [gx[0], gx[gx.length - 1]], [gy[0], gy[gy.length - 1]], { xLabel: data.input[0] });
  const { ctx, box } = plot;
  const values = state.curve;
  const several = data.classes.length > 2 && values && values.some((v) => v > 1);
  if (values && values.length === gx.length * gy.length) {
    const image = new ImageData(gx.length, gy.length);
    values.forEach((v, k) => {
      const i = Math.floor(k / gx.length); // row of the plane: gy
      const j = k % gx.length;
      const at = 4 * ((gy.length - 1 - i) * gx.length + j);
      let rgb;
      if (several) rgb = hex(CLASS_COLOURS[Math.round(v ?? 0) % CLASS_COLOURS.length]);
      else {
        const p = v ?? 0.5; // the chance of the second class
        const [a, b] = [hex(CLASS_COLOURS[0]), hex(CLASS_COLOURS[1])];
        rgb = a.map((c, n) => c + p * (b[n] - c));
      }
      image.data.set([...rgb.map(Math.round), several ? 70 : 30 + Math.round(90 * Math.abs((v ?? 0.5) - 0.5) * 2)], at);
    });
    const tile = document.createElement("canvas");
    tile.width = gx.length;
    tile.height = gy.length;
    tile.getContext("2d").putImageData(image, 0, 0);
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(tile, box.left, box.top, box.right - box.left, box.bottom - box.top);
  }
  data.x.forEach(([a, b], k) => {
    if (a == null || b == null || data.y[k] == null) return;
    const index = Math.max(0, data.classes.indexOf(Math.round(data.y[k])));
    ctx.fillStyle = CLASS_COLOURS[index % CLASS_COLOURS.length];
    ctx.strokeStyle = "#0f1420";
    ctx.beginPath();
    ctx.arc(plot.sx(a), plot.sy(b), 3.4, 0, 2 * Math.PI);
    ctx.fill();
    ctx.stroke();
  });
  ctx.fillStyle = "#e6ebf5";
  ctx.textAlign = "left";
  ctx.fillText(data.input[1], box.left + 6, box.top + 14);
  $("fit-caption").textContent = `classes ${data.classes.join(", ")} over ${data.input.join(" and ")}: the shading is the model's call`;
}

function hex(colour) {
  return [1, 3, 5].map((i) => Number.parseInt(colour.slice(i, i + 2), 16));
}

function marker(plot, x, y, color) {
  if (x == null || y == null || !Number.isFinite(y)) return;
  const { ctx, sx, sy } = plot;
  ctx.fillStyle = color;
  ctx.beginPath();
  ctx.arc(sx(x), sy(y), 4, 0, 2 * Math.PI);
  ctx.fill();
}

function dots(plot, xs, ys) {
  const { ctx, sx, sy } = plot;
  ctx.fillStyle = "rgba(94, 200, 255, 0.75)";
  for (let i = 0; i < xs.length; i += 1) {
    if (xs[i] == null || ys[i] == null) continue;
    ctx.beginPath();
    ctx.arc(sx(xs[i]), sy(ys[i]), 2.6, 0, 2 * Math.PI);
    ctx.fill();
  }
}

function placeholder(view, text) {
  const { ctx, width, height } = view;
  ctx.fillStyle = "#8d99b3";
  ctx.font = "13px system-ui, sans-serif";
  ctx.textAlign = "center";
  ctx.fillText(text, width / 2, height / 2);
}

function drawLoss() {
  const view = canvas("loss-canvas");
  const rows = state.rows;
  const last = rows[rows.length - 1];
  $("loss-now").textContent = last && last[1] != null ? format(last[1]) : "";
  if (rows.length < 1) return placeholder(view, "The loss, step by step.");
  const index = thinned(rows.length, view.width);
  const steps = index.map((i) => rows[i][0]);
  const loss = index.map((i) => rows[i][1]);
  const val = index.map((i) => rows[i][2]);
  const range = extent([...loss, ...val]);
  const log = range && loss.every((v) => v == null || v > 0) && range[1] / Math.max(range[0], 1e-300) > 50;
  const ys = extent([...loss, ...val], log);
  if (!ys) return;
  const xs = [steps[0], Math.max(steps[steps.length - 1], steps[0] + 1)];
  const plot = frame(view, xs, ys, { logY: log, xLabel: "step", wholeX: true });
  const scale = (values) => (log ? values.map((v) => (v > 0 ? Math.log10(v) : null)) : values);
  if (val.some((v) => v != null)) line(plot, steps, scale(val), "#ffb454", 1.5);
  const shown = scale(loss);
  line(plot, steps, shown, "#5ec8ff", 2);
  marker(plot, steps[steps.length - 1], shown[shown.length - 1], "#5ec8ff");
}

function drawParams() {
  const view = canvas("params-canvas");
  const rows = state.rows;
  const names = state.names.slice(0, COLORS.length);
  $("legend").innerHTML = names
    .map((n, i) => `<span style="--c:${COLORS[i]}">${escapeHtml(n)} ${rows.length ? format(rows[rows.length - 1][5 + i]) : ""}</span>`)
    .join("");
  if (!rows.length || !names.length) return placeholder(view, "Each parameter's path.");
  const index = thinned(rows.length, view.width);
  const steps = index.map((i) => rows[i][0]);
  const series = names.map((_, k) => index.map((i) => rows[i][5 + k]));
  const ys = extent(series.flat());
  if (!ys) return;
  const xs = [steps[0], Math.max(steps[steps.length - 1], steps[0] + 1)];
  const plot = frame(view, xs, ys, { xLabel: "step", wholeX: true });
  series.forEach((values, k) => {
    line(plot, steps, values, COLORS[k], 2);
    marker(plot, steps[steps.length - 1], values[values.length - 1], COLORS[k]);
  });
}

// ---- the loss landscape -------------------------------------------------------------------------------------

const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];

function pair() {
  const a = $("land-a").value;
  const b = $("land-b").value;
  return a && b && a !== b ? [a, b] : null;
}
$("land-a").onchange = $("land-b").onchange = () => {
  state.land.grid = null;
  redraw();
};

function pathOf(names) {
  const i = state.names.indexOf(names[0]);
  const j = state.names.indexOf(names[1]);
  return [state.rows.map((r) => r[5 + i]), state.rows.map((r) => r[5 + j])];
}

function spanAround(values) {
  const range = extent(values);
  if (!range) return null;
  const [low, high] = [Math.min(...values.filter(Number.isFinite)), Math.max(...values.filter(Number.isFinite))];
  const pad = Math.max(0.25 * (high - low), 0.1 * Math.abs(high), 0.1 * Math.abs(low), 0.1);
  return [low - pad, high + pad];
}

function askLandscape() {
  const names = pair();
  const land = state.land;
  if (!names || !state.rows.length || land.pending || !live() && state.end === null) return;
  const [pa, pb] = pathOf(names);
  const now = [pa[pa.length - 1], pb[pb.length - 1]];
  if (now.some((v) => v == null || !Number.isFinite(v))) return;
  const grid = land.grid;
  const same = grid && grid.pair[0] === names[0] && grid.pair[1] === names[1];
  const inside = (v, axis) => {
    const lo = axis[0];
    const hi = axis[axis.length - 1];
    return v > lo + 0.08 * (hi - lo) && v < hi - 0.08 * (hi - lo);
  };
  const ended = state.end && !land.endAsked; // once more at the end, around where the fit stopped
  if (same && inside(now[0], grid.a) && inside(now[1], grid.b) && !ended) return;
  if (performance.now() - land.asked < 300) return setTimeout(redraw, 320);
  const span = [spanAround(pa), spanAround(pb)];
  if (span.some((s) => !s)) return;
  land.pending = true;
  land.asked = performance.now();
  land.endAsked = Boolean(state.end);
  send({ type: "landscape", pair: names, span });
}

function drawLandscape() {
  const view = canvas("land-canvas");
  const grid = state.land.grid;
  const names = pair();
  if (!grid || !names || grid.pair[0] !== names[0] || grid.pair[1] !== names[1]) {
    return placeholder(view, state.names.length >= 2 ? "Computing the landscape…" : "Needs two parameters.");
  }
  const values = grid.loss.flat().filter((v) => v != null && v > 0);
  const low = Math.log10(Math.min(...values));
  const high = Math.log10(Math.max(...values));
  const image = new ImageData(grid.a.length, grid.b.length);
  grid.loss.forEach((line, i) =>
    line.forEach((v, j) => {
      const t = v == null || v <= 0 ? 1 : (Math.log10(v) - low) / Math.max(high - low, 1e-12);
      const [r, g, b] = colour(1 - t);
      const k = 4 * ((grid.b.length - 1 - i) * grid.a.length + j);
      image.data.set([r, g, b, 255], k);
    }),
  );
  const plot = frame(view, [grid.a[0], grid.a[grid.a.length - 1]], [grid.b[0], grid.b[grid.b.length - 1]], {
    xLabel: names[0],
  });
  const tile = document.createElement("canvas");
  tile.width = grid.a.length;
  tile.height = grid.b.length;
  tile.getContext("2d").putImageData(image, 0, 0);
  const { ctx, box } = plot;
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(tile, box.left, box.top, box.right - box.left, box.bottom - box.top);
  ctx.fillStyle = "#e6ebf5";
  ctx.textAlign = "left";
  ctx.fillText(names[1], box.left + 6, box.top + 14);
  const [pa, pb] = pathOf(names);
  ctx.save();
  ctx.beginPath();
  ctx.rect(box.left, box.top, box.right - box.left, box.bottom - box.top);
  ctx.clip();
  line(plot, pa, pb, "rgba(255,255,255,0.9)", 1.6);
  marker(plot, pa[0], pb[0], "#8d99b3");
  marker(plot, pa[pa.length - 1], pb[pb.length - 1], "#ff6b7a");
  ctx.restore();
}

function colour(t) {
  const x = Math.min(Math.max(t, 0), 1) * (VIRIDIS.length - 1);
  const i = Math.min(Math.floor(x), VIRIDIS.length - 2);
  const f = x - i;
  return VIRIDIS[i].map((c, k) => Math.round(c + f * (VIRIDIS[i + 1][k] - c)));
}

function drawTable() {
  // Seed 002's table: each step's parameters, loss, gradient size, and the update the step then took
  // (the next row's parameters minus these: -lr * gradient for plain sgd).
  const all = state.rows;
  const first = Math.max(0, all.length - TABLE_ROWS);
  const names = state.names.slice(0, 4);
  const head = ["step", "loss", "|gradient|", "lr", ...names.flatMap((n) => [n, `Δ${n}`])];
  const body = [];
  for (let i = first; i < all.length; i += 1) {
    const r = all[i];
    const next = all[i + 1];
    const cells = names.flatMap((_, k) => {
      const now = r[5 + k];
      const change = next && next[5 + k] != null && now != null ? next[5 + k] - now : null;
      return [now, change];
    });
    body.push([r[0], r[1], r[4], r[3], ...cells]);
  }
  $("steps-table").innerHTML =
    `<tr>${head.map((h) => `<th>${escapeHtml(h)}</th>`).join("")}</tr>` +
    body.map((r) => `<tr>${r.map((v) => `<td>${format(v)}</td>`).join("")}</tr>`).join("");
}

function format(v) {
  if (v == null) return "–";
  if (typeof v !== "number") return String(v);
  if (Number.isInteger(v) && Math.abs(v) < 1e6) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(3).replace(/\.?0+e/, "e");
  return Number(v.toPrecision(5)).toString();
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

window.addEventListener("resize", redraw);
setStatus(null);
connect();
loadBuiltins().catch((error) => showDataError(error.message));
redraw();
