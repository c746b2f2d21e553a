// gafu ui, curation: the target pictures that stand apart (RECIPE D1) and the regularization pick (D2, D3).
// Loaded before app.js, whose helpers ($, el, api, say, guarded, query) these functions use when called.
"use strict";

const STYLE_CODES = ["style-groups", "style-apart"];
const SHOWN_THUMBS = 8;

// A D1 finding on the Dataset page: its pictures beside some of the rest, the numbers, one click to set aside.
function styleFindingView(finding, targetPictures) {
  const named = new Set(finding.files);
  const thumbOf = Object.fromEntries(targetPictures.map((p) => [p.name, p.thumb]));
  const rest = targetPictures.filter((p) => !named.has(p.name)).slice(0, SHOWN_THUMBS);
  const strip = (names, label) => el("div", { class: "strip" }, el("div", { class: "muted" }, label),
    names.slice(0, SHOWN_THUMBS).map((name) => el("img", { src: thumbOf[name] || "", alt: name, title: name })));
  const rows = (finding.details.differences || []).map((d) => el("tr", {},
    el("td", {}, d.title), el("td", { class: "n" }, Number(d.group).toFixed(2)), el("td", { class: "n" }, Number(d.rest).toFixed(2)), el("td", {}, d.words)));
  const button = el("button", { class: "small set-aside", onclick: () => setAside(finding.files) }, `Set aside these ${finding.files.length}`);
  return el("div", { class: "style-finding" },
    strip(finding.files, `these ${finding.files.length}`), strip(rest.map((p) => p.name), `the rest (${targetPictures.length - finding.files.length})`),
    el("table", { class: "stats" }, el("tr", {}, el("th", {}, "cue"), el("th", {}, "these"), el("th", {}, "the rest"), el("th", {})), rows),
    button);
}

async function setAside(names) {
  const result = await guarded(() => api("/api/aside", { pictures: names }));
  if (!result) return;
  const moved = result.set_aside.map((row) => row.picture);
  const undo = el("button", { class: "small quiet", id: "aside-undo", onclick: () => bringBack(moved) }, "Undo");
  say(`${moved.length} picture(s) set aside: out of the dataset, in [sources.exclude] of gafu.toml; captions kept in set-aside/ `);
  $("message").append(undo);
  await afterAside();
}

async function bringBack(names) {
  const result = await guarded(() => api("/api/aside/restore", { pictures: names }));
  if (!result) return;
  say(`${result.restored.length} picture(s) back in the dataset` + (result.notes.length ? ` — ${result.notes.join("; ")}` : ""));
  await afterAside();
}

async function afterAside() {
  await Promise.all([loadPictures(), loadStats(), loadAside(), refreshState()]);
  runCheck();
}

async function loadAside() {
  const data = await guarded(() => api("/api/aside"));
  if (!data) return;
  const box = $("aside-list");
  if (!data.pictures.length) { box.replaceChildren(el("span", { class: "muted" }, "none")); return; }
  box.replaceChildren(...data.pictures.map((p) => el("div", { class: "aside-item", "data-name": p.name },
    p.thumb ? el("img", { src: p.thumb, alt: p.original }) : "",
    el("span", {}, `${p.set} ${p.original}`), " ",
    el("button", { class: "small quiet", onclick: () => bringBack([p.name]) }, "Bring back"))));
}

// --- the Regularization page ---------------------------------------------------------------------------
async function showReg() {
  pollReg();
}

async function runPick() {
  const started = await guarded(() => api("/api/reg/pick", { pool: $("reg-pool").value, count: $("reg-count").value }));
  if (started) { ui.regShown = false; pollReg(); }
}

async function pollReg() {
  const progress = await guarded(() => api("/api/reg/status"));
  if (!progress) return;
  const bar = $("reg-progress");
  bar.max = progress.total || 1;
  bar.value = progress.state === "done" ? bar.max : progress.done || 0;
  const text = { idle: "", running: progress.total ? `tagging the pool ${progress.done}/${progress.total}` : "reading the pool…",
    failed: "failed: " + progress.error, done: "done" };
  $("reg-status").textContent = text[progress.state];
  $("reg-run").disabled = progress.state === "running";
  if (progress.state === "running") setTimeout(pollReg, 500);
  else if (progress.state === "done" && !ui.regShown) { ui.regShown = true; renderPick(progress.result); }
}

function percent(share) { return share === null || share === undefined ? "–" : Math.round(share * 100) + "%"; }

function renderPick(result) {
  const gained = result.coverage_before === null ? "" : ` (+${Math.round((result.coverage_after - result.coverage_before) * 100)} points)`;
  $("reg-coverage").replaceChildren(
    el("div", {}, el("span", { class: "label" }, "D3 coverage now"), el("span", { id: "reg-before" }, percent(result.coverage_before))),
    el("div", {}, el("span", { class: "label" }, `with these ${result.picks.length}`), el("span", { id: "reg-after" }, percent(result.coverage_after) + gained)),
    el("div", {}, el("span", { class: "label" }, "the whole pool could give"), el("span", {}, percent(result.coverage_possible))));
  const left = Object.entries(result.left_out).map(([why, names]) => el("li", {}, `${names.length} left out: ${why}`));
  $("reg-notes").replaceChildren(el("div", { class: "muted" },
    `${result.pool_pictures} pictures in the pool, ${result.candidates} usable (${result.tagged_now} tagged now, ${result.reused} from earlier runs)`),
    el("ul", {}, left, result.notes.map((n) => el("li", {}, n))),
    result.uncovered_after.length ? el("div", {}, "still uncovered: " + result.uncovered_after.join(", ")) : "");
  $("reg-picks").replaceChildren(el("tr", {}, el("th", {}, "#"), el("th", {}, "picture"), el("th", {}, "adds"), el("th", {}, "coverage")),
    ...result.picks.map((p, i) => el("tr", { "data-name": p.picture }, el("td", { class: "n" }, i + 1), el("td", {}, p.picture),
      el("td", {}, p.adds.length ? "+ " + p.adds.join(", ") : p.again.length ? "again: " + p.again.slice(0, 6).join(", ") : "another style"),
      el("td", { class: "n" }, percent(p.coverage)))));
  $("reg-write-box").hidden = !result.picks.length;
}

async function writePick() {
  const written = await guarded(() => api("/api/reg/write", { copy_to: $("reg-copy").value }));
  if (!written) return;
  say(written.lines.join(" ") + " — next: `gafu prep` and `gafu tag` prepare and caption them");
  refreshState();
}

function wireCuration() {
  $("reg-run").addEventListener("click", runPick);
  $("reg-write").addEventListener("click", writePick);
}
