// lipdub page: talks only to the documented REST API under /api.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  config: null, media: null, audio: null, faces: [], chosen: null,
  perFace: {},            // face id -> { upload, start, error }
  busy: { media: false, audio: false }, creating: false,
  job: null, events: null, historyTimer: null,
};
const STAGES = {
  starting: "starting the job", preparing: "loading the engine and the speech", detecting: "finding the faces",
  generating: "moving the mouth", encoding: "writing the video", done: "",
};

// ---- token (from #token=... in the URL, or typed in; kept in localStorage)
function token() { return localStorage.getItem("lipdub-token") || ""; }
(function takeTokenFromHash() {
  const m = location.hash.match(/token=([^&]+)/);
  if (m) { localStorage.setItem("lipdub-token", decodeURIComponent(m[1])); history.replaceState(null, "", location.pathname); }
})();
function withToken(url) { return token() ? url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token()) : url; }

class ApiError extends Error { constructor(message, status) { super(message); this.status = status; } }

async function api(path, opts = {}) {
  const headers = Object.assign({}, opts.headers || {});
  if (token()) headers.Authorization = "Bearer " + token();
  if (opts.json !== undefined) { headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(opts.json); }
  const res = await fetch(path, Object.assign({}, opts, { headers }));
  if (res.status === 401) { $("token-box").hidden = false; throw new ApiError("this server needs an access token", 401); }
  if (!res.ok) throw new ApiError(await errorText(res), res.status);
  return res.status === 204 ? null : res.json();
}
async function errorText(res) {
  try { const body = await res.json(); return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail); }
  catch (e) { return res.status + " " + res.statusText; }
}

// ---- uploads: raw body, streamed; XHR for the progress bar
function upload(file, bar) {
  return new Promise((resolve, reject) => {
    if (state.config && file.size > state.config.max_upload_bytes) {
      reject(new Error(`${file.name}: file is larger than this server's limit of ${Math.round(state.config.max_upload_bytes / 1e6)} MB`));
      return;
    }
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/uploads?name=" + encodeURIComponent(file.name || "recording"));
    if (token()) xhr.setRequestHeader("Authorization", "Bearer " + token());
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    bar.hidden = false; bar.value = 0;
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = 100 * e.loaded / e.total; };
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
      if (xhr.status === 201) { bar.value = 100; resolve(body); }
      else reject(new Error(body && body.detail ? body.detail : `upload failed (${xhr.status})`));
    };
    xhr.onerror = () => reject(new Error("upload failed: the server cannot be reached"));
    xhr.send(file);
  });
}

function showError(where, err) { $(where).textContent = err ? (err.message || String(err)) : ""; }
function secs(s) { return s == null ? "" : `${s.toFixed(1)} s`; }

// A slot (picture, or speech) holds one accepted upload. Choosing a file empties it first; a rejected file
// leaves it empty, with the reason next to it.
async function takeMedia(file) {
  clearMedia();
  $("media-name").textContent = file.name;
  state.busy.media = true; refresh();
  try {
    const up = await upload(file, $("media-progress"));
    if (up.kind === "audio") throw new Error(`${file.name}: is an audio file; drop a picture or a video here`);
    state.media = up;
    $("media-name").textContent = describe(up);
    await loadFaces();
  } catch (err) {
    if (!state.media) clearMedia();
    showError("media-error", err);
  } finally { state.busy.media = false; refresh(); }
}

function clearMedia() {
  state.media = null; state.faces = []; state.chosen = null; state.perFace = {};
  showError("media-error", null);
  $("media-name").textContent = ""; $("media-progress").hidden = true;
  $("frame").removeAttribute("src"); $("overlay").innerHTML = "";
  document.querySelectorAll("#picker .face-number").forEach((n) => n.remove());
  $("step-faces").hidden = true;
}

async function takeAudio(file) {
  state.audio = null; showError("audio-error", null);
  $("audio-name").textContent = file.name;
  state.busy.audio = true; refresh();
  try {
    const up = await upload(file, $("audio-progress"));
    if (up.kind === "image") throw new Error(`${file.name}: is a picture; drop an audio file for the speech`);
    state.audio = up;
    $("audio-name").textContent = describe(up);
  } catch (err) {
    $("audio-name").textContent = ""; $("audio-progress").hidden = true;
    showError("audio-error", err);
  } finally { state.busy.audio = false; refresh(); }
}

async function takeFaceAudio(file, faceId) {
  const slot = state.perFace[faceId] = { upload: null, start: (state.perFace[faceId] || {}).start || 0, busy: true };
  refresh();
  try {
    const up = await upload(file, document.createElement("progress"));
    if (up.kind === "image") throw new Error(`${file.name}: is a picture, not speech`);
    slot.upload = up;
  } catch (err) { slot.error = err.message; }
  slot.busy = false;
  refresh();
}

function describe(up) { return up.duration ? `${up.name} (${secs(up.duration)})` : up.name; }

// ---- face picker
async function loadFaces() {
  $("faces-hint").textContent = "detecting faces…";
  $("step-faces").hidden = false;
  const res = await api(`/api/uploads/${state.media.id}/faces`);
  if (!state.media || state.media.id !== res.upload_id) return; // replaced meanwhile
  state.faces = res.faces;
  $("frame").src = withToken(res.frame_url);
  const svg = $("overlay");
  svg.setAttribute("viewBox", `0 0 ${res.width} ${res.height}`);
  svg.innerHTML = "";
  for (const f of res.faces) {
    if (!f.box) continue; // walks in later: listed below with its thumbnail and time span
    const [x1, y1, x2, y2] = f.box;
    const rect = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    Object.entries({ x: x1, y: y1, width: x2 - x1, height: y2 - y1, "data-face-id": f.id, "data-number": f.number })
      .forEach(([k, v]) => rect.setAttribute(k, v));
    rect.addEventListener("click", () => choose(f.id));
    svg.append(rect);
    const num = document.createElement("span"); // HTML, so it stays legible however small the picture is shown
    num.className = "face-number"; num.textContent = f.number;
    num.style.left = `${100 * x1 / res.width}%`; num.style.top = `${100 * y1 / res.height}%`;
    $("picker").append(num);
  }
  if (res.faces.length === 0) {
    $("faces-hint").textContent = "";
    throw new Error(`No face found in ${state.media.name}. Use a picture or video where a face is clearly visible.`);
  }
  if (res.faces.length === 1) state.chosen = res.faces[0].id;
}

function choose(faceId) { if (!$("multi").checked) { state.chosen = faceId; refresh(); } }

let faceListKey = "";
function renderFaceList() {
  const multi = $("multi").checked;
  const key = JSON.stringify([multi, state.chosen, state.faces.map((f) => f.id), state.perFace]);
  if (key === faceListKey) return; // unchanged: keep the fields as the user left them
  faceListKey = key;
  const list = $("face-list");
  list.innerHTML = "";
  for (const f of state.faces) {
    const li = document.createElement("li");
    li.dataset.faceId = f.id;
    const slot = state.perFace[f.id];
    li.classList.toggle("chosen", multi ? !!(slot && slot.upload) : state.chosen === f.id);
    const img = document.createElement("img");
    if (f.thumbnail) img.src = f.thumbnail;
    img.alt = `face ${f.number}`;
    li.append(img, document.createTextNode(`#${f.number}`));
    if (state.media && state.media.kind === "video") {
      const span = document.createElement("div");
      span.className = "face-span"; // one person: a span per shot they are in
      span.textContent = `${f.spans.map(([a, b]) => `${a.toFixed(1)}–${b.toFixed(1)}`).join(", ")} s`;
      if (f.spans.length > 1) span.title = `the same person, seen in ${f.spans.length} shots`;
      li.append(span);
    }
    if (multi) li.append(faceAudioControls(f, slot));
    else li.addEventListener("click", () => choose(f.id));
    list.append(li);
  }
  document.querySelectorAll("#overlay rect").forEach((r) => {
    const id = Number(r.dataset.faceId);
    r.classList.toggle("chosen", multi ? !!(state.perFace[id] && state.perFace[id].upload) : state.chosen === id);
  });
}

function faceAudioControls(f, slot) {
  const box = document.createElement("div");
  box.className = "face-audio";
  const input = document.createElement("input");
  input.type = "file"; input.accept = "audio/*,video/*"; input.hidden = true; input.className = "face-file";
  input.addEventListener("change", () => { const file = input.files[0]; input.value = ""; if (file) takeFaceAudio(file, f.id); });
  const pick = document.createElement("button");
  pick.type = "button"; pick.className = "face-pick";
  pick.textContent = slot && slot.upload ? "Change audio" : "Choose audio";
  pick.addEventListener("click", () => input.click());
  const name = document.createElement("div");
  name.className = "face-audio-name";
  name.textContent = slot ? (slot.busy ? "uploading…" : slot.upload ? describe(slot.upload) : "") : "no audio";
  box.append(input, pick, name);
  if (slot && slot.error) { const e = document.createElement("div"); e.className = "error"; e.textContent = slot.error; box.append(e); }
  const start = document.createElement("label");
  start.className = "face-start";
  start.textContent = "starts at ";
  const field = document.createElement("input");
  field.type = "number"; field.min = "0"; field.step = "0.1"; field.value = slot ? slot.start : 0;
  field.addEventListener("change", () => {
    state.perFace[f.id] = Object.assign(state.perFace[f.id] || { upload: null }, { start: Math.max(0, Number(field.value) || 0) });
    refresh();
  });
  start.append(field, document.createTextNode(" s"));
  box.append(start);
  return box;
}

function speakers() {
  return Object.entries(state.perFace).filter(([, s]) => s.upload)
    .map(([id, s]) => ({ audio: s.upload, face_id: Number(id), start: s.start || 0 }));
}

// Why Start cannot be pressed now ("" when it can).
function blocked() {
  if (state.busy.media || state.busy.audio) return "uploading…";
  if (!state.media) return "add a picture or a video";
  if (state.faces.length === 0) return $("step-faces").hidden ? "add a picture or a video" : "no face to animate";
  if (state.creating) return "starting…";
  if (state.job && !isOver(state.job)) return `a job is ${state.job.state}: wait for it or cancel it`;
  if ($("multi").checked) {
    if (Object.values(state.perFace).some((s) => s.busy)) return "uploading…";
    return speakers().length ? "" : "give at least one face its audio";
  }
  if (!state.audio) return "add the speech";
  return state.chosen === null ? "click the face that speaks" : "";
}

function lengthNote() {
  const m = state.media;
  if (!m || m.kind !== "video" || !m.duration) return "";
  const ends = $("multi").checked ? speakers().map((s) => s.start + (s.audio.duration || 0))
    : state.audio ? [state.audio.duration || 0] : [];
  const end = Math.max(0, ...ends);
  return end > m.duration + 0.05
    ? `The speech (${secs(end)}) is longer than the video (${secs(m.duration)}): the video is played forwards, ` +
      "then backwards, and so on, to cover it." : "";
}

function refresh() {
  renderFaceList();
  const multi = $("multi").checked;
  if (state.faces.length) {
    $("faces-hint").textContent = multi ? "give each face that speaks its own audio and start time"
      : state.faces.length === 1 ? "one face: it speaks" : `${state.faces.length} faces: click the one that speaks`;
  }
  $("audio-slot").classList.toggle("off", multi);
  $("audio-input").disabled = multi; $("record").disabled = multi;
  $("audio-hint").textContent = multi ? "not used: each face has its own audio (step 2)"
    : "drop an audio file here or click to choose";
  $("keep-box").hidden = !(state.media && state.media.kind === "video" && state.media.has_audio);
  $("motion-box").hidden = !(state.config && state.config.motion && state.media && state.media.kind === "image");
  $("duck-box").hidden = !$("keep").checked || $("keep-box").hidden;
  const note = lengthNote();
  $("length-note").textContent = note; $("length-note").hidden = !note;
  const why = blocked();
  $("start").disabled = !!why;
  $("start-reason").textContent = why;
}

// ---- jobs
function isOver(job) { return ["done", "failed", "cancelled"].includes(job.state); }

async function start() {
  if (blocked()) return;
  state.creating = true; refresh(); // disabled at once: a double click makes one job
  showError("job-error", null);
  const body = {
    media: state.media.id, engine: $("engine").value, paste: $("paste").value,
    keep_original_audio: !$("keep-box").hidden && $("keep").checked, duck_db: Number($("duck").value),
    silence: $("silence").value,
  };
  if (!$("motion-box").hidden && $("motion").value) body.motion = $("motion").value;
  if ($("english").checked) body.lang = "en";
  if ($("multi").checked) body.speakers = speakers().map((s) => ({ audio: s.audio.id, face_id: s.face_id, start: s.start }));
  else { body.audio = state.audio.id; body.face_id = state.chosen; }
  try {
    const job = await api("/api/jobs", { method: "POST", json: body });
    follow(job);
    $("step-progress").scrollIntoView({ block: "center" });
    loadHistory();
  } catch (err) { showError("job-error", err); $("step-progress").hidden = false; }
  finally { state.creating = false; refresh(); }
}

function closeEvents() { if (state.events) { state.events.close(); state.events = null; } }

function follow(job) {
  closeEvents();
  localStorage.setItem("lipdub-job", job.id);
  $("step-result").hidden = true;
  $("step-progress").hidden = false;
  show(job);
  if (isOver(job)) return;
  const es = new EventSource(withToken(`/api/jobs/${job.id}/events`));
  es.addEventListener("status", (e) => show(JSON.parse(e.data)));
  es.addEventListener("deleted", () => gone(job.id));
  es.onerror = () => { if (!state.job || isOver(state.job)) closeEvents(); };
  state.events = es;
}

// The job shown in the panel was deleted (here or elsewhere).
function gone(jobId) {
  if (!state.job || state.job.id !== jobId) return;
  closeEvents();
  state.job = null;
  localStorage.removeItem("lipdub-job");
  $("job-state").textContent = "deleted";
  ["job-stage", "job-percent", "job-eta"].forEach((id) => { $(id).textContent = ""; });
  $("job-progress").value = 0;
  $("cancel").hidden = true;
  $("step-result").hidden = true;
  showError("job-error", null);
  refresh();
}

function fmtEta(job) {
  if (!["running", "queued"].includes(job.state) || job.stage === "done") return "";
  const s = job.eta;
  if (s == null) return job.stage === "generating" ? "(estimating the time left…)" : "";
  return s < 60 ? `~${Math.max(1, Math.ceil(s))} s left` : `~${Math.ceil(s / 60)} min left`;
}
function inLine(n) { return n === 1 ? "next in line" : `${n - 1} job${n > 2 ? "s" : ""} ahead`; }

function show(job) {
  state.job = job;
  $("job-progress").value = job.percent;
  $("job-state").textContent = job.state === "queued" ? "queued" : job.state;
  $("job-stage").textContent = job.state === "running" ? (STAGES[job.stage] ?? job.stage)
    : job.state === "queued" && job.queue_position ? inLine(job.queue_position) : "";
  $("job-percent").textContent = `${job.percent.toFixed(0)} %`;
  $("job-eta").textContent = fmtEta(job);
  $("cancel").hidden = isOver(job);
  showError("job-error", job.state === "failed" ? new Error(job.error) : null);
  if (job.state === "done") showResult(job);
  updateRow(job);
  if (isOver(job)) { closeEvents(); loadHistory(); }
  refresh();
}

function showResult(job) {
  $("step-result").hidden = false;
  const video = $("result");
  if (video.dataset.job !== job.id) {
    video.dataset.job = job.id; video.src = withToken(job.result_url);
    const before = $("before");
    before.innerHTML = "";
    const original = job.params.media_kind === "video" ? document.createElement("video") : document.createElement("img");
    original.id = "original";
    if (original.tagName === "VIDEO") {
      original.controls = true; original.muted = true; original.playsInline = true;
      original.src = withToken(`/api/uploads/${job.params.media}/file`);
    } else { original.src = withToken(`/api/uploads/${job.params.media}/frame.jpg`); original.alt = "the original"; }
    before.append(original);
    $("play-both").hidden = original.tagName !== "VIDEO";
  }
  $("download").href = withToken(job.result_url + "?download=true");
  $("notes").innerHTML = "";
  for (const n of (job.result && job.result.notes) || []) {
    const li = document.createElement("li"); li.textContent = n; $("notes").append(li);
  }
}

function playBoth() {
  const players = [$("result"), $("original")].filter((v) => v && v.tagName === "VIDEO");
  players.forEach((v) => { v.currentTime = 0; v.play(); });
}

async function cancel(event) {
  // The page scrolls to the progress once the job exists, so the second click of a double click on Start can land
  // on Cancel: only a click that starts a click sequence (detail 1; 0 from the keyboard) cancels.
  if (!state.job || (event && event.detail > 1)) return;
  const id = state.job.id;
  try { show(await api(`/api/jobs/${id}/cancel`, { method: "POST" })); }
  catch (err) { if (err.status === 404) gone(id); else showError("job-error", err); }
}

// ---- history: rows stay live while a job in it has not ended
function speechOf(j) {
  const sp = j.params.speakers || [];
  if (sp.length > 1) return `${sp.length} speakers`;
  return sp.length ? `${sp[0].audio_name || ""}${sp[0].audio_duration ? ` (${secs(sp[0].audio_duration)})` : ""}` : "";
}
function stateOf(j) {
  if (j.state === "running") return `running ${j.percent.toFixed(0)} %`;
  return j.state === "queued" && j.queue_position ? `queued (${inLine(j.queue_position)})` : j.state;
}

function updateRow(job) {
  const cell = document.querySelector(`#history tr[data-job-id="${job.id}"] .state`);
  if (cell) cell.textContent = stateOf(job);
}

async function loadHistory() {
  clearTimeout(state.historyTimer);
  let jobs;
  try { jobs = await api("/api/jobs"); } catch (err) { return []; }
  const body = document.querySelector("#history tbody");
  body.innerHTML = "";
  for (const j of jobs) {
    const tr = document.createElement("tr");
    tr.dataset.jobId = j.id;
    const cells = [["When", new Date(j.created * 1000).toLocaleString()], ["Media", j.params.media_name || ""],
      ["Speech", speechOf(j)], ["Engine", j.params.engine], ["State", stateOf(j)]];
    for (const [label, text] of cells) {
      const td = document.createElement("td");
      td.dataset.label = label; td.textContent = text;
      if (label === "State") td.className = "state";
      tr.append(td);
    }
    const td = document.createElement("td");
    td.className = "actions";
    const open = document.createElement("button");
    open.textContent = j.state === "done" ? "Play" : "Show"; open.addEventListener("click", () => follow(j));
    const del = document.createElement("button");
    del.textContent = "Delete";
    del.addEventListener("click", () => removeJob(j));
    td.append(open, del); tr.append(td); body.append(tr);
  }
  if (jobs.some((j) => !isOver(j))) state.historyTimer = setTimeout(loadHistory, 2000);
  return jobs;
}

async function removeJob(j) {
  const live = state.job && state.job.id === j.id ? state.job : j;
  const question = isOver(live) ? "Delete this job and its video?"
    : `This job is ${live.state}. Cancel it and delete it?`;
  if (!confirm(question)) return;
  try { await api(`/api/jobs/${j.id}`, { method: "DELETE" }); }
  catch (err) { if (err.status !== 404) { showError("job-error", err); return; } }
  gone(j.id);
  loadHistory();
}

// ---- recording
let recorder = null;
async function toggleRecord() {
  if (recorder) { recorder.stop(); return; }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const parts = [];
    recorder = new MediaRecorder(stream);
    recorder.ondataavailable = (e) => parts.push(e.data);
    recorder.onstop = () => {
      stream.getTracks().forEach((t) => t.stop());
      const file = new File(parts, "recording.webm", { type: recorder.mimeType || "audio/webm" });
      recorder = null; $("record").textContent = "● Record speech";
      takeAudio(file);
    };
    recorder.start();
    $("record").textContent = "■ Stop recording";
  } catch (err) { showError("audio-error", new Error("cannot record: " + err.message)); }
}

// ---- wiring
function dropZone(zone, input, take) {
  input.addEventListener("change", () => { const file = input.files[0]; input.value = ""; if (file) take(file); });
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault(); zone.classList.remove("over");
    if (!input.disabled && e.dataTransfer.files[0]) take(e.dataTransfer.files[0]);
  });
}

async function init() {
  dropZone($("media-drop"), $("media-input"), takeMedia);
  dropZone($("audio-drop"), $("audio-input"), takeAudio);
  $("record").addEventListener("click", toggleRecord);
  $("multi").addEventListener("change", refresh);
  $("keep").addEventListener("change", refresh);
  $("duck").addEventListener("input", () => { $("duck-value").textContent = $("duck").value; });
  $("start").addEventListener("click", start);
  $("cancel").addEventListener("click", cancel);
  $("play-both").addEventListener("click", playBoth);
  $("token-box").addEventListener("submit", (e) => {
    e.preventDefault();
    localStorage.setItem("lipdub-token", $("token-input").value); $("token-box").hidden = true; init2();
  });
  await init2();
}

async function init2() {
  try { state.config = await api("/api/config"); } catch (err) { showError("media-error", err); return; }
  const engine = $("engine");
  engine.innerHTML = "";
  for (const e of state.config.engines) {
    const o = document.createElement("option");
    o.value = e; o.textContent = e === "wav2lip" ? "neural (Wav2Lip)" : "viseme (no weights)";
    engine.append(o);
  }
  engine.value = state.config.default_engine;
  const jobs = await loadHistory();
  // after a reload: bring back the job this page last followed if it has not ended
  const saved = jobs.find((j) => j.id === localStorage.getItem("lipdub-job"));
  if (saved && !isOver(saved)) follow(saved);
  refresh();
}

init();
