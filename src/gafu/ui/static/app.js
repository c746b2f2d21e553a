// gafu ui: one page per stage over the JSON API of gafu.ui.api. No build step, no framework.
"use strict";

const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children.flat()) node.append(child instanceof Node ? child : String(child ?? ""));
  return node;
};

// --- talking to the server ---------------------------------------------------------------------
class ApiError extends Error {
  constructor(message, fields) { super(message); this.fields = fields || {}; }
}

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const response = await fetch(path, options);
  const data = await response.json();
  if (!response.ok) throw new ApiError(data.error || response.statusText, data.fields);
  return data;
}

function say(text, bad = false) {
  const box = $("message");
  box.textContent = text;
  box.className = bad ? "message bad" : "message";
  box.hidden = !text;
}

async function guarded(action) {
  try { return await action(); } catch (error) { say(error.message, true); return undefined; }
}

// A project path as a /files/ URL: each segment encoded, so `#`, `?` and `%` in names survive.
const fileUrl = (path) => "/files/" + path.split("/").map(encodeURIComponent).join("/");

const query = (params) => new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v != null)).toString();

function tagChips(tags, trigger, marks = {}) {
  return el("div", { class: "tags" }, (tags || []).map((tag) =>
    el("span", { class: "tag" + (tag === trigger ? " trigger" : "") + (marks[tag] ? " " + marks[tag] : "") }, tag)));
}

// --- project state and navigation ------------------------------------------------------------------
const ui = { trigger: "", page: null, selected: new Set(), shown: [] };

async function refreshState() {
  const state = await guarded(() => api("/api/state"));
  if (!state) return;
  ui.trigger = state.trigger;
  $("project-name").textContent = `${state.name} · ${state.trigger} · ${state.family}`;
  for (const stage of state.stages) {
    const badge = document.querySelector(`.badge[data-stage="${stage.name}"]`);
    if (!badge) continue;
    badge.textContent = stage.name === "check" ? `check ${stage.status}` : stage.status;
    badge.className = "badge " + stage.status;
    badge.title = stage.detail;
  }
}

const pages = { dataset: showDataset, reg: showReg, tagging: showTagging, plan: showPlan, train: showTrain, sample: showSample };

function route() {
  const [name, params] = (location.hash.slice(1) || "dataset").split("?");
  const page = pages[name] ? name : "dataset";
  for (const section of document.querySelectorAll(".page")) section.classList.toggle("active", section.id === "page-" + page);
  for (const link of document.querySelectorAll("nav a")) link.classList.toggle("active", link.dataset.page === page);
  ui.page = page;
  say("");
  pages[page](new URLSearchParams(params || ""));
  refreshState();
}

// --- dataset ---------------------------------------------------------------------------------------
async function showDataset(params) {
  if (params.has("pictures")) ui.onlyPictures = params.get("pictures");
  if (params.has("tags")) { $("filter-tags").value = params.get("tags"); $("filter-mode").value = params.get("mode") || "any"; }
  await Promise.all([loadPictures(), loadStats(), loadAside(), refreshState()]);
}

async function loadPictures() {
  const data = await guarded(() => api("/api/pictures?" + query({
    tags: $("filter-tags").value, mode: $("filter-mode").value, set: $("filter-set").value, pictures: ui.onlyPictures,
  })));
  if (!data) return;
  ui.shown = data.pictures;
  const only = ui.onlyPictures ? " (pictures named by a check finding)" : "";
  $("picture-count").textContent = `${data.pictures.length} of ${data.total} pictures${only}`;
  const grid = $("grid");
  grid.replaceChildren(...data.pictures.map((picture) => {
    const card = el("div", { class: "card" + (ui.selected.has(picture.name) ? " selected" : ""), "data-name": picture.name },
      el("img", { src: picture.thumb, loading: "lazy", alt: picture.name }),
      el("div", { class: "name" }, el("span", { class: "set" }, picture.set), " ", picture.name.split("/").pop()),
      picture.error ? el("div", { class: "error" }, picture.error)
        : picture.captioned ? tagChips(picture.tags, ui.trigger) : el("div", { class: "muted" }, "no caption yet"));
    card.addEventListener("click", () => toggleSelected(picture.name, card));
    return card;
  }));
  updateSelectedCount();
}

function toggleSelected(name, card) {
  if (ui.selected.has(name)) ui.selected.delete(name); else ui.selected.add(name);
  card.classList.toggle("selected", ui.selected.has(name));
  updateSelectedCount();
}

function updateSelectedCount() { $("selected-count").textContent = `${ui.selected.size} selected`; }

async function loadStats() {
  const stats = await guarded(() => api("/api/tags/stats?top=60"));
  if (!stats) return;
  const head = el("tr", {}, el("th", {}, "tag"), stats.sets.map((s) => el("th", {}, `${s} (${stats.captioned[s]})`)));
  const rows = stats.tags.map((t) => el("tr", {},
    el("td", {}, el("a", { class: "link", onclick: () => filterBy(t.tag) }, t.tag)),
    stats.sets.map((s) => el("td", { class: "n" }, `${t[s]} · ${stats.captioned[s] ? Math.round(100 * t[s] / stats.captioned[s]) : 0}%`))));
  $("stats").replaceChildren(head, ...rows);
}

function filterBy(tags, mode = "all", pictures = "") {
  $("filter-tags").value = tags;
  $("filter-mode").value = mode;
  ui.onlyPictures = pictures;
  loadPictures();
}

async function applyEdit() {
  const action = $("edit-action").value;
  const body = { action, pictures: [...ui.selected] };
  if (action === "replace") { body.old = $("edit-tags").value; body.new = $("edit-new").value; }
  else body.tags = $("edit-tags").value.split(",").map((t) => t.trim()).filter(Boolean);
  const result = await guarded(() => api("/api/tags/edit", body));
  if (!result) return;
  const changed = result.changed.target + result.changed.reg;
  say(`${action}: ${changed} of ${result.selected} caption(s) changed` + (result.notes.length ? ` — ${result.notes.join("; ")}` : "")
      + (changed ? " (Undo reverts it)" : ""));
  await Promise.all([loadPictures(), loadStats(), refreshState()]);
}

async function undoEdit() {
  const result = await guarded(() => api("/api/tags/undo", {}));
  if (!result) return;
  say(result.entry === null ? "nothing to undo" : `undid edit ${result.entry} (${result.action}): ${result.restored.length} caption(s) restored`);
  await Promise.all([loadPictures(), loadStats(), refreshState()]);
}

async function runCheck() {
  const box = $("check-report");
  box.textContent = "checking…";
  const [report, target] = await Promise.all([guarded(() => api("/api/check")), guarded(() => api("/api/pictures?set=target"))]);
  if (!report) { box.textContent = ""; return; }
  refreshState();
  const cov = report.coverage;
  const share = cov.share === null ? "–" : Math.round(cov.share * 100) + "%";
  const pictureLink = (files, text) => el("a", { class: "link", onclick: () => filterBy("", "all", files.join(",")) }, text);
  box.replaceChildren(
    el("div", {}, el("span", { class: "coverage", id: "coverage" }, share), " D3 coverage ",
      el("span", { class: "muted" }, cov.share === null ? cov.reason : `${cov.covered}/${cov.occurrences} target tag uses also in reg`)),
    el("div", { class: "muted" }, `${report.summary.error} error(s), ${report.summary.warning} warning(s), ${report.summary.info} note(s)`),
    ...report.findings.map((f) => el("div", { class: "finding " + f.severity },
      el("b", {}, `${f.severity} ${f.rule}`), " ", f.message, f.hint ? el("div", { class: "muted" }, f.hint) : "",
      f.files.length ? el("div", {}, pictureLink(f.files, `show ${f.files.length} picture(s)`)) : "",
      STYLE_CODES.includes(f.code) && target ? styleFindingView(f, target.pictures) : "")),
    cov.uncovered.length ? el("h4", {}, "Uncovered tags (no reg caption has them)") : "",
    el("div", { class: "tags" }, cov.uncovered.slice(0, 40).map((u) =>
      el("span", { class: "tag" }, pictureLink(u.files, `${u.tag} ×${u.count}`)))),
  );
}

// --- tagging ---------------------------------------------------------------------------------------
let previewTimer = null;

async function showTagging() {
  const plan = await guarded(() => api("/api/tag/preview"));
  if (plan) {
    setSlider("target", plan.sets.target ? plan.sets.target.threshold : 0.5);
    setSlider("reg", plan.sets.reg ? plan.sets.reg.threshold : 0.35);
    setSlider("character", plan.character_threshold);
    renderPreview(plan);
  }
  pollTagger();
}

function setSlider(which, value) { $("th-" + which).value = value; $(`th-${which}-value`).textContent = Number(value).toFixed(2); }

function thresholds() {
  return { target: $("th-target").value, reg: $("th-reg").value, character: $("th-character").value };
}

function onSlider(event) {
  $(event.target.id + "-value").textContent = Number(event.target.value).toFixed(2);
  clearTimeout(previewTimer);
  previewTimer = setTimeout(async () => {
    const plan = await guarded(() => api("/api/tag/preview?" + query(thresholds())));
    if (plan) renderPreview(plan);
  }, 150);
}

function renderPreview(plan) {
  const rows = [];
  const parts = [];
  for (const [which, set] of Object.entries(plan.sets)) {
    parts.push(`${which}: ${set.changed} caption(s) would change` + (set.edited ? `, ${set.edited} edited by hand (kept unless ticked)` : ""));
    for (const p of set.pictures) {
      const current = p.current || [];
      const preview = p.preview || [];
      const lower = (list) => new Set(list.map((t) => t.toLowerCase()));
      const [inCurrent, inPreview] = [lower(current), lower(preview)];
      const marks = Object.fromEntries(preview.filter((t) => !inCurrent.has(t.toLowerCase())).map((t) => [t, "added"]));
      const gone = current.filter((t) => !inPreview.has(t.toLowerCase()));
      rows.push(el("tr", { class: p.changed ? "changed" : "", "data-name": p.name },
        el("td", {}, el("img", { src: p.thumb, loading: "lazy" })),
        el("td", {}, el("span", { class: "set" }, which), " ", p.name.split("/").pop(), p.edited ? el("div", { class: "muted" }, "edited by hand") : ""),
        el("td", { class: "preview-caption" }, p.preview ? tagChips(preview, ui.trigger, marks) : el("span", { class: "muted" }, p.note),
          gone.length ? tagChips(gone, "", Object.fromEntries(gone.map((t) => [t, "removed"]))) : "")));
    }
  }
  $("th-summary").textContent = parts.join(" · ");
  $("preview").replaceChildren(el("tr", {}, el("th", {}), el("th", {}, "picture"), el("th", {}, "caption at these thresholds (green: new, struck: dropped)")), ...rows);
}

async function applyThresholds() {
  const result = await guarded(() => api("/api/tag/thresholds", { ...thresholds(), overwrite_edited: $("th-overwrite").checked }));
  if (!result) return;
  say(`gafu.toml updated; ${result.tagged} caption(s) rewritten, ${result.skipped} left alone`);
  showTagging();
  refreshState();
}

async function runTagger() {
  const started = await guarded(() => api("/api/tag/run", { mode: $("tag-mode").value }));
  if (started) pollTagger();
}

async function pollTagger() {
  const progress = await guarded(() => api("/api/tag/status"));
  if (!progress) return;
  const bar = $("tag-progress");
  bar.max = progress.total || 1;
  bar.value = progress.done || 0;
  const text = { idle: "", running: `tagging ${progress.done}/${progress.total ?? "…"} ${progress.tagger || ""}`,
    failed: "failed: " + progress.error,
    done: progress.result ? `done: ${progress.result.tagged} tagged, ${progress.result.skipped} skipped, ${progress.result.failed} failed` : "done" };
  $("tag-status").textContent = text[progress.state];
  $("tag-run").disabled = progress.state === "running";
  if (progress.state === "running") setTimeout(pollTagger, 500);
  else if (progress.state === "done" && ui.page === "tagging" && !ui.taggedShown) { ui.taggedShown = true; showTagging(); }
}

// --- plan ---------------------------------------------------------------------------------------------
async function showPlan() {
  $("plan-status").textContent = "resolving…";
  const data = await guarded(() => api("/api/plan?" + query({ vram: $("plan-vram").value })));
  $("plan-status").textContent = "";
  if (!data) return;
  $("plan-error").hidden = !data.error;
  $("plan-error").textContent = data.error || "";
  renderOverrides(data.fields);
  if (data.plan) renderPlan(data.plan); else { $("plan-values").replaceChildren(); $("plan-network").replaceChildren(); }
}

function sourceOf(name, sources) {
  for (let key = name; key; key = key.includes(".") ? key.slice(0, key.lastIndexOf(".")) : "") if (sources[key]) return sources[key];
  return "";
}

function formatValue(value) {
  if (value === null || value === undefined) return "(none)";
  if (Array.isArray(value)) return value.length ? value.map(formatValue).join(", ") : "(empty)";
  if (typeof value === "object") return Object.entries(value).map(([k, v]) => `${k} ${formatValue(v)}`).join(", ");
  if (value === "") return "(not set)";
  return String(value);
}

function renderPlan(plan) {
  const sections = ["model", "dataset", "batch", "optimizer", "loss", "network", "run", "memory", "sample", "eval"];
  const blocks = sections.map((section) => {
    const rows = [];
    const walk = (data, prefix) => {
      for (const [key, value] of Object.entries(data)) {
        const name = `${prefix}.${key}`;
        if (key === "summary") continue;
        if (value && typeof value === "object" && !Array.isArray(value) && !["sizes", "buckets", "bucket_samples"].includes(key)) { walk(value, name); continue; }
        rows.push(el("tr", { "data-name": name }, el("td", {}, name.slice(section.length + 1)), el("td", {}, formatValue(value)),
          el("td", { class: "source" }, sourceOf(name, plan.sources))));
      }
    };
    walk(plan[section], section);
    return el("div", {}, el("h4", {}, section), el("table", { class: "values" }, rows));
  });
  const notes = [["Why", plan.notes], ["Warnings", plan.warnings]].filter(([, items]) => items.length)
    .map(([title, items]) => el("div", {}, el("h4", {}, title), el("ul", {}, items.map((i) => el("li", {}, i)))));
  $("plan-values").replaceChildren(...notes, ...blocks);
  const summary = plan.network.summary;
  const batch = plan.batch;
  const byBlock = {};
  for (const module of summary ? summary.modules : []) {
    const block = byBlock[module.block] || (byBlock[module.block] = { modules: 0, parameters: 0 });
    block.modules += 1;
    block.parameters += module.parameters;
  }
  const blockTable = el("table", { class: "stats", id: "plan-blocks" },
    el("tr", {}, el("th", {}, "block"), el("th", {}, "modules"), el("th", {}, "parameters")),
    Object.entries(byBlock).map(([name, b]) => el("tr", {}, el("td", {}, name), el("td", { class: "n" }, b.modules),
      el("td", { class: "n" }, b.parameters.toLocaleString()))));
  $("plan-network").replaceChildren(el("div", { class: "metrics" },
    el("div", {}, el("span", { class: "label" }, "steps"), el("span", { id: "plan-steps" }, `${batch.total_steps}`)),
    el("div", {}, el("span", { class: "label" }, "epochs × steps/epoch"), el("span", {}, `${batch.epochs} × ${batch.steps_per_epoch}`)),
    el("div", {}, el("span", { class: "label" }, "batch × accumulation"), el("span", {}, `${batch.batch_size} × ${batch.gradient_accumulation}`)),
    summary ? el("div", {}, el("span", { class: "label" }, "LoKr parameters"), el("span", {}, summary.trainable_parameters.toLocaleString())) : "",
    summary ? el("div", {}, el("span", { class: "label" }, `file size (${plan.run.save_dtype})`),
      el("span", { id: "plan-file-size" }, `${summary.file_mb[plan.run.save_dtype]} MB`)) : "",
    summary ? el("div", {}, el("span", { class: "label" }, "modules"), el("span", {}, `${summary.modules.length}`)) : ""),
    summary ? el("details", {}, el("summary", {}, "LoKr modules by block"), blockTable) : "");
}

function renderOverrides(fields) {
  const form = $("overrides");
  let section = "";
  const nodes = [];
  for (const field of fields) {
    const [group] = field.name.split(".");
    if (group !== section) { section = group; nodes.push(el("h4", {}, `[${group}]`)); }
    nodes.push(overrideField(field));
  }
  form.replaceChildren(...nodes);
}

function overrideField(field) {
  const id = "o-" + field.name.replace(".", "-");
  const value = field.value === null || field.value === undefined ? "" : field.value;
  let input;
  if (field.kind === "bool") {
    input = el("select", { id, name: field.name }, [["", "(recipe / family)"], ["true", "true"], ["false", "false"]].map(([v, t]) =>
      el("option", { value: v, ...(String(value) === v ? { selected: "" } : {}) }, t)));
  } else if (field.kind === "choice") {
    input = el("select", { id, name: field.name }, field.choices.map((c) => el("option", { value: c, ...(c === value ? { selected: "" } : {}) }, c)));
  } else if (field.kind === "lines") {
    input = el("textarea", { id, name: field.name, rows: 3, placeholder: "one per line" });
    input.value = value.join("\n");
  } else {
    input = el("input", { id, name: field.name, placeholder: formatValue(field.default) });
    input.value = field.kind === "floats" ? value.join(", ") : value;
  }
  input.dataset.original = input.value;
  return el("div", { class: "field", "data-field": field.name },
    el("label", { for: id }, field.name.split(".")[1]), input, el("div", { class: "doc" }, field.doc),
    el("div", { class: "field-error" }));
}

async function saveOverrides() {
  const values = {};
  for (const input of $("overrides").querySelectorAll("input, select, textarea")) {
    if (input.value !== input.dataset.original) values[input.name] = input.value;
  }
  for (const box of document.querySelectorAll(".field")) { box.classList.remove("invalid"); box.querySelector(".field-error").textContent = ""; }
  if (!Object.keys(values).length) { $("overrides-status").textContent = "nothing changed"; return; }
  try {
    await api("/api/plan/overrides", { values });
    $("overrides-status").textContent = "saved to gafu.toml";
    showPlan();
  } catch (error) {
    const named = Object.entries(error.fields || {});
    for (const [name, message] of named) {
      const box = document.querySelector(`.field[data-field="${name}"]`);
      if (box) { box.classList.add("invalid"); box.querySelector(".field-error").textContent = message; }
    }
    $("overrides-status").textContent = named.length ? "not saved: see the field marked in red" : "not saved: " + error.message;
  }
}

// --- training ----------------------------------------------------------------------------------------
const run = { source: null, losses: [], saves: [], grids: {}, style: [], total: 0, starting: false };

async function showTrain() {
  if (!run.source) followProgress();
  await refreshTrainStatus();
  await loadEpochGrids();
}

function followProgress() {
  run.source = new EventSource("/api/train/events");
  run.source.addEventListener("progress", (message) => onProgress(JSON.parse(message.data)));
  run.source.addEventListener("status", () => { refreshTrainStatus(); refreshState(); });
}

function onProgress(event) {
  if (event.event === "start") {
    if (event.resumed_from == null) { run.losses = []; run.saves = []; run.grids = {}; run.style = []; }
    run.total = event.total_steps;
    $("train-state").textContent = `started: ${event.total_steps} steps over ${event.epochs} epochs` + (event.resumed_from != null ? `, resumed from step ${event.resumed_from}` : "");
  } else if (event.event === "step") {
    run.losses.push([event.step, event.loss]);
    $("m-step").textContent = `${event.step} / ${event.total_steps}`;
    $("m-epoch").textContent = `${event.epoch} / ${event.epochs}`;
    $("m-loss").textContent = Number(event.loss).toFixed(4);
    $("m-lr").textContent = `${Number(event.lr_unet).toExponential(2)} / ${Number(event.lr_te).toExponential(2)}`;
    $("m-speed").textContent = Number(event.samples_per_s).toFixed(2);
    $("m-eta").textContent = formatSeconds(event.eta_s);
    $("train-progress").max = event.total_steps; $("train-progress").value = event.step;
    drawLoss();
  } else if (event.event === "save") {
    run.saves.push(event);
    $("train-saves").replaceChildren(...run.saves.map((s) => el("div", {}, `epoch ${s.epoch} (step ${s.step}): `, el("a", { href: fileUrl(s.path) }, s.path))));
  } else if (event.event === "eval") {
    run.style = run.style.filter((point) => point.epoch !== event.epoch).concat([event]);
    drawStyle($("style-chart"), run.style);
  } else if (event.event === "sample") {
    run.grids[event.epoch] = event.grids.map(fileUrl);
    renderTrainGrids();
  } else if (event.event === "latents") {
    $("train-state").textContent = `encoding latents before the first step: ${event.done} / ${event.total} pictures`;
  } else if (event.event === "stopping") {
    $("train-state").textContent = event.message;
  } else if (["done", "stopped", "error"].includes(event.event)) {
    $("train-state").textContent = `${event.event}: ${event.message || ""}`;
    setTimeout(() => { refreshTrainStatus(); refreshState(); }, 1000);  // the trainer lets go of its lock as it exits
  }
}

function formatSeconds(seconds) {
  if (seconds == null) return "–";
  const s = Math.round(seconds);
  return s >= 3600 ? `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min` : s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`;
}

function drawLoss() {
  const canvas = $("loss-chart");
  const ctx = canvas.getContext("2d");
  const [w, h, pad] = [canvas.width, canvas.height, 30];
  ctx.clearRect(0, 0, w, h);
  ctx.fillStyle = "#777"; ctx.font = "12px sans-serif"; ctx.fillText("loss", 4, 14);
  if (run.losses.length < 1) return;
  const values = run.losses.map(([, loss]) => loss);
  const [low, high] = [Math.min(...values), Math.max(...values)];
  const maxStep = Math.max(run.total, run.losses[run.losses.length - 1][0], 1);
  const x = (step) => pad + (w - 2 * pad) * step / maxStep;
  const y = (loss) => h - pad - (h - 2 * pad) * (high > low ? (loss - low) / (high - low) : 0.5);
  ctx.fillText(high.toFixed(3), 4, pad); ctx.fillText(low.toFixed(3), 4, h - pad);
  ctx.strokeStyle = "#b4472f"; ctx.lineWidth = 1.5; ctx.beginPath();
  run.losses.forEach(([step, loss], i) => (i ? ctx.lineTo(x(step), y(loss)) : ctx.moveTo(x(step), y(loss))));
  ctx.stroke();
  if (run.losses.length === 1) { ctx.fillStyle = "#b4472f"; ctx.fillRect(x(run.losses[0][0]) - 2, y(run.losses[0][1]) - 2, 4, 4); }
}

// The style probe per epoch: fit, leakage and drift (left, in % of the base model's loss) and the
// trigger share (right, 0–100 %). Points: [{epoch, fit, leakage, trigger_share, drift}].
const STYLE_LINES = [["fit", "#b4472f", 0], ["leakage", "#b07a12", 0], ["drift", "#2f5fb4", 0], ["trigger_share", "#2f7d4a", 1]];

function drawStyle(canvas, points) {
  const ctx = canvas.getContext("2d");
  const [w, h, pad] = [canvas.width, canvas.height, 34];
  ctx.clearRect(0, 0, w, h);
  ctx.font = "12px sans-serif";
  const panels = [["fit, leakage, drift (%)", [pad, w / 2 - pad / 2]], ["trigger share (%)", [w / 2 + pad, w - pad / 2]]];
  panels.forEach(([title, [left]]) => { ctx.fillStyle = "#777"; ctx.fillText(title, left - pad + 4, 14); });
  const sorted = points.filter((p) => p.epoch != null).sort((a, b) => a.epoch - b.epoch);
  if (!sorted.length) { ctx.fillStyle = "#777"; ctx.fillText("no measurements yet", pad, h / 2); return; }
  const epochs = sorted.map((p) => p.epoch);
  const [first, last] = [Math.min(...epochs), Math.max(...epochs)];
  const values = sorted.flatMap((p) => ["fit", "leakage", "drift"].map((k) => p[k]).filter((v) => v != null)).map((v) => 100 * v);
  const ranges = [[Math.min(0, ...values), Math.max(0.01, ...values)], [0, 100]];
  STYLE_LINES.forEach(([key, colour, panel], index) => {
    const [left, right] = panels[panel][1];
    const [low, high] = ranges[panel];
    const x = (epoch) => last > first ? left + (right - left) * (epoch - first) / (last - first) : (left + right) / 2;
    const y = (value) => h - pad - (h - 2 * pad) * (100 * value - low) / (high - low);
    ctx.fillStyle = "#777";
    ctx.fillText(high.toFixed(1), left - pad + 2, pad); ctx.fillText(low.toFixed(1), left - pad + 2, h - pad);
    ctx.fillText(`epoch ${first}`, left, h - 8); if (last > first) ctx.fillText(`${last}`, right - 20, h - 8);
    ctx.strokeStyle = colour; ctx.fillStyle = colour; ctx.lineWidth = 1.5; ctx.beginPath();
    let started = false;
    for (const point of sorted) {
      if (point[key] == null) continue;
      const [px, py] = [x(point.epoch), y(point[key])];
      started ? ctx.lineTo(px, py) : ctx.moveTo(px, py);
      started = true;
      ctx.fillRect(px - 2, py - 2, 4, 4);
    }
    ctx.stroke();
    ctx.fillText(key.replace("_", " "), left + 6 + (panel ? 0 : 70 * index), pad - 8);
  });
}

function formatFigure(key, value) {
  if (value == null) return "–";
  return key === "trigger_share" ? `${Math.round(100 * value)} %` : `${value >= 0 ? "+" : ""}${(100 * value).toFixed(2)} %`;
}

// The figures of each saved file at weight 1 (at its save, else from gafu eval), by epoch.
function styleByEpoch(files) {
  const points = [];
  for (const file of files) {
    const chosen = (file.figures || []).find((f) => f.weight === 1 && f.source === "at its save") || (file.figures || []).find((f) => f.weight === 1);
    const epoch = file.epoch ?? file.trained_epoch;
    if (chosen && epoch != null) points.push({ epoch, ...chosen });
  }
  return points;
}

function renderTrainGrids() {
  const epochs = Object.keys(run.grids).map(Number).sort((a, b) => b - a);
  $("train-grids").replaceChildren(...epochs.map((epoch) => el("div", { class: "epoch-grids", "data-epoch": epoch },
    el("h4", {}, `epoch ${epoch}`), run.grids[epoch].map((url) => el("img", { src: url, alt: url })))));
}

async function loadEpochGrids() {
  const outputs = await guarded(() => api("/api/outputs"));
  if (!outputs) return;
  if (!run.style.length) run.style = styleByEpoch(outputs.lokr);
  drawStyle($("style-chart"), run.style);
  for (const group of outputs.grids) {
    if (group.epoch !== null && !run.grids[group.epoch]) run.grids[group.epoch] = group.grids;
  }
  renderTrainGrids();
}

async function refreshTrainStatus() {
  const status = await guarded(() => api("/api/train/status"));
  if (!status) return undefined;
  showTrainControls(status);
  const failed = status.ended && status.ended.returncode;
  $("train-log").hidden = !failed;
  if (failed) {
    $("train-log").textContent = `gafu train exited with ${status.ended.returncode}:\n${status.ended.log}`;
    if (run.starting) say(`gafu train failed: ${status.ended.error || "exit code " + status.ended.returncode}`, true);
  }
  if (!status.running) run.starting = false;
  return status;
}

// Start when output/ holds no run; Resume (a stopped run) and Start over (any saved run) when it does.
function showTrainControls(status) {
  const saved = status.run || {};
  const holds = saved.saved_step != null;
  $("train-start").hidden = holds;
  $("train-resume").hidden = !saved.resumable;
  $("train-restart").hidden = !holds;
  for (const id of ["train-start", "train-resume", "train-restart"]) $(id).disabled = status.running;
  $("train-stop").disabled = !status.running;
  if (status.running && !$("train-state").textContent) $("train-state").textContent = "running";
  const over = "Start over moves it to output/runs/ (nothing is deleted) and trains anew";
  $("train-saved").hidden = status.running || !holds;
  $("train-saved").textContent = !holds ? "" : saved.finished
    ? `output/ holds a finished run (${saved.saved_step} steps, ${saved.latest}). ${over}.`
    : `output/ holds a run stopped at step ${saved.saved_step} of ${saved.total_steps}: Resume continues it; ${over}.`;
}

async function startTraining(mode) {
  const started = await guarded(() => api("/api/train/start", { mode }));
  if (!started) return;
  run.starting = true;
  say(`training started (pid ${started.pid}); it goes on if you close this page`);
  for (const id of ["train-start", "train-resume", "train-restart"]) $(id).disabled = true;
  $("train-stop").disabled = false;
  setTimeout(refreshTrainStatus, 1500);
  setTimeout(refreshTrainStatus, 4000);  // a run that fails to start says why
}

async function stopTraining() {
  const stopped = await guarded(() => api("/api/train/stop", {}));
  if (stopped) say("stop requested: the trainer saves a LoKr and a state at the next step, then exits");
}

// --- sampling -------------------------------------------------------------------------------------------
async function showSample() {
  const outputs = await guarded(() => api("/api/outputs"));
  if (!outputs) return;
  $("lokr-files").replaceChildren(...outputs.lokr.map((file) => el("tr", { "data-name": file.name, "data-kind": file.kind },
    el("td", {}, file.kind !== "epoch" ? file.label : el("label", {}, el("input", { type: "checkbox", class: "epoch-pick", value: file.epoch }), ` epoch ${file.epoch}`)),
    el("td", {}, el("a", { href: file.url }, file.name), el("span", { class: "muted" }, ` ${file.mb} MB`),
      (file.figures || []).map((f) => el("div", { class: "muted figures" },
        `w ${f.weight}: fit ${formatFigure("fit", f.fit)} · leakage ${formatFigure("leakage", f.leakage)} · trigger share ${formatFigure("trigger_share", f.trigger_share)} · drift ${formatFigure("drift", f.drift)}`))),
    el("td", {}, el("button", { class: "small render", onclick: () => renderSample({ lokr: file.name }) }, "Render grid")))));
  if (!outputs.lokr.length) $("lokr-files").replaceChildren(el("tr", {}, el("td", { class: "muted" }, "no LoKr files yet: train first")));
  $("sample-index").replaceChildren(outputs.index ? el("a", { href: outputs.index, target: "_blank" }, "all grids (index.html)") : "");
  drawStyle($("sample-style-chart"), styleByEpoch(outputs.lokr));
  ui.gridGroups = outputs.grids;
  const known = new Set(outputs.grids.map((g) => g.name));
  const kept = (ui.compare || []).filter((name) => known.has(name));
  const chosen = new Set(kept.length ? kept : outputs.grids.slice(-2).map((g) => g.name));
  $("epoch-choice").replaceChildren(...outputs.grids.map((group) => el("label", {},
    el("input", { type: "checkbox", value: group.name, ...(chosen.has(group.name) ? { checked: "" } : {}), onchange: renderCompare }), ` ${group.name}`)));
  if (!outputs.grids.length) $("epoch-choice").replaceChildren(el("span", { class: "muted" }, "no grids yet"));
  renderCompare();
  pollSampler();
}

function renderCompare() {
  const chosen = [...$("epoch-choice").querySelectorAll("input:checked")].map((box) => box.value);
  ui.compare = chosen;
  const groups = (ui.gridGroups || []).filter((g) => chosen.includes(g.name));
  $("compare").replaceChildren(...groups.map((group) => el("div", { "data-group": group.name },
    el("h4", {}, group.epoch === null ? group.name : `${group.name} (epoch ${group.epoch})`),
    group.grids.map((url) => el("img", { src: url, alt: url })))));
}

async function renderSample(request) {
  const started = await guarded(() => api("/api/sample", { ...request, weights: $("sample-weights").value }));
  if (started) { ui.sampledShown = null; pollSampler(); }
}

function renderEpochs() {
  const epochs = [...document.querySelectorAll(".epoch-pick:checked")].map((box) => Number(box.value));
  if (epochs.length < 2) { say("tick two or more epochs first", true); return; }
  renderSample({ epochs });
}

async function pollSampler() {
  const status = await guarded(() => api("/api/sample/status"));
  if (!status) return;
  const text = { idle: "", running: `rendering ${status.what}…`, done: `rendered ${status.what}`, failed: `gafu sample failed (exit ${status.returncode})` };
  $("sample-status").textContent = text[status.state];
  $("sample-log").hidden = status.state !== "failed";
  $("sample-log").textContent = status.log || "";
  if (status.state === "running") setTimeout(pollSampler, 1000);
  else if (status.state === "done" && ui.page === "sample" && ui.sampledShown !== status.what) {
    ui.sampledShown = status.what;
    ui.compare = null;
    showSample();
    refreshState();
  }
}

// --- wiring ----------------------------------------------------------------------------------------------
function wire() {
  const on = (id, event, handler) => $(id).addEventListener(event, handler);
  on("filter-apply", "click", () => { ui.onlyPictures = ""; loadPictures(); });
  on("filter-tags", "keydown", (e) => { if (e.key === "Enter") { ui.onlyPictures = ""; loadPictures(); } });
  on("filter-clear", "click", () => filterBy("", "all", ""));
  on("select-all", "click", () => { ui.shown.forEach((p) => ui.selected.add(p.name)); loadPictures(); });
  on("select-none", "click", () => { ui.selected.clear(); loadPictures(); });
  on("edit-action", "change", () => { $("edit-new").hidden = $("edit-action").value !== "replace"; });
  on("edit-apply", "click", applyEdit);
  on("undo", "click", undoEdit);
  on("check-run", "click", runCheck);
  for (const which of ["target", "reg", "character"]) on("th-" + which, "input", onSlider);
  on("th-apply", "click", applyThresholds);
  on("tag-run", "click", () => { ui.taggedShown = false; runTagger(); });
  on("plan-resolve", "click", showPlan);
  on("overrides-save", "click", saveOverrides);
  on("train-start", "click", () => startTraining("new"));
  on("train-resume", "click", () => startTraining("resume"));
  on("train-restart", "click", () => startTraining("restart"));
  on("train-stop", "click", stopTraining);
  on("sample-epochs", "click", renderEpochs);
  wireCuration();
  window.addEventListener("hashchange", route);
  route();
}

wire();
