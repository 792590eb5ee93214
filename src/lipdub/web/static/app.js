// lipdub page: talks only to the documented REST API under /api.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { config: null, media: null, audio: null, faces: [], chosen: null, perFace: {}, job: null, events: null };

// ---- token (from #token=... in the URL, or typed in; kept in localStorage)
function token() { return localStorage.getItem("lipdub-token") || ""; }
(function takeTokenFromHash() {
  const m = location.hash.match(/token=([^&]+)/);
  if (m) { localStorage.setItem("lipdub-token", decodeURIComponent(m[1])); history.replaceState(null, "", location.pathname); }
})();
function withToken(url) { return token() ? url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token()) : url; }

async function api(path, opts = {}) {
  const headers = Object.assign({}, opts.headers || {});
  if (token()) headers.Authorization = "Bearer " + token();
  if (opts.json !== undefined) { headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(opts.json); }
  const res = await fetch(path, Object.assign({}, opts, { headers }));
  if (res.status === 401) { $("token-box").hidden = false; throw new Error("this server needs an access token"); }
  if (!res.ok) throw new Error(await errorText(res));
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

async function takeMedia(file) {
  showError("media-error", null);
  $("media-name").textContent = file.name;
  state.media = null; state.faces = []; state.chosen = null; refresh();
  try {
    const up = await upload(file, $("media-progress"));
    if (up.kind === "audio") throw new Error(`${file.name}: is an audio file; drop a picture or a video here`);
    state.media = up;
    await loadFaces();
  } catch (err) { showError("media-error", err); }
  refresh();
}

async function takeAudio(file, faceId) {
  showError("media-error", null);
  try {
    const up = await upload(file, faceId === undefined ? $("audio-progress") : document.createElement("progress"));
    if (up.kind === "image") throw new Error(`${file.name}: is a picture; drop an audio file for the speech`);
    if (faceId === undefined) { state.audio = up; $("audio-name").textContent = `${file.name} (${up.duration.toFixed(1)} s)`; }
    else state.perFace[faceId] = up;
  } catch (err) { showError("media-error", err); }
  refresh();
}

// ---- face picker
async function loadFaces() {
  $("faces-hint").textContent = "detecting faces…";
  $("step-faces").hidden = false;
  const res = await api(`/api/uploads/${state.media.id}/faces`);
  state.faces = res.faces;
  $("frame").src = withToken(res.frame_url);
  const svg = $("overlay");
  svg.setAttribute("viewBox", `0 0 ${res.width} ${res.height}`);
  svg.innerHTML = "";
  for (const f of res.faces) {
    const [x1, y1, x2, y2] = f.box;
    const rect = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    Object.entries({ x: x1, y: y1, width: x2 - x1, height: y2 - y1, "data-face-id": f.id, "data-number": f.number })
      .forEach(([k, v]) => rect.setAttribute(k, v));
    rect.addEventListener("click", () => choose(f.id));
    const label = document.createElementNS("http://www.w3.org/2000/svg", "text");
    label.setAttribute("x", x1 + 4); label.setAttribute("y", y1 + Math.max(16, (y2 - y1) * 0.18));
    label.setAttribute("font-size", Math.max(14, (y2 - y1) * 0.18));
    label.textContent = f.number;
    svg.append(rect, label);
  }
  if (res.faces.length === 0) {
    $("faces-hint").textContent = "";
    throw new Error(`No face found in ${state.media.name}. Use a picture or video where a face is clearly visible.`);
  }
  $("faces-hint").textContent = res.faces.length === 1 ? "one face: it speaks" : `${res.faces.length} faces: click the one that speaks`;
  if (res.faces.length === 1) state.chosen = res.faces[0].id;
}

function choose(faceId) { state.chosen = faceId; refresh(); }

function renderFaceList() {
  const list = $("face-list");
  list.innerHTML = "";
  const multi = $("multi").checked;
  for (const f of state.faces) {
    const li = document.createElement("li");
    li.dataset.faceId = f.id;
    li.classList.toggle("chosen", multi ? !!state.perFace[f.id] : state.chosen === f.id);
    const img = document.createElement("img");
    img.src = f.thumbnail; img.alt = `face ${f.number}`;
    li.append(img, document.createTextNode(`#${f.number}`));
    if (multi) {
      const input = document.createElement("input");
      input.type = "file"; input.accept = "audio/*,video/*"; input.title = `audio for face ${f.number}`;
      input.addEventListener("change", () => input.files[0] && takeAudio(input.files[0], f.id));
      const name = document.createElement("div");
      name.textContent = state.perFace[f.id] ? state.perFace[f.id].name : "no audio";
      li.append(input, name);
    } else li.addEventListener("click", () => choose(f.id));
    list.append(li);
  }
  document.querySelectorAll("#overlay rect").forEach((r) => {
    const id = Number(r.dataset.faceId);
    r.classList.toggle("chosen", multi ? !!state.perFace[id] : state.chosen === id);
  });
}

function ready() {
  if (!state.media || state.faces.length === 0) return false;
  if ($("multi").checked) return Object.keys(state.perFace).length > 0;
  return !!state.audio && state.chosen !== null;
}

function refresh() {
  renderFaceList();
  const hasMedia = !!state.media && state.faces.length > 0;
  $("step-options").hidden = !hasMedia;
  $("keep-box").hidden = !(state.media && state.media.kind === "video" && state.media.has_audio);
  $("duck-box").hidden = !$("keep").checked || $("keep-box").hidden;
  $("start").disabled = !ready();
}

// ---- jobs
function isOver(job) { return ["done", "failed", "cancelled"].includes(job.state); }

async function start() {
  showError("job-error", null);
  const body = {
    media: state.media.id, engine: $("engine").value, paste: $("paste").value,
    keep_original_audio: !$("keep-box").hidden && $("keep").checked, duck_db: Number($("duck").value),
  };
  if ($("multi").checked) body.speakers = Object.entries(state.perFace).map(([id, up]) => ({ audio: up.id, face_id: Number(id) }));
  else { body.audio = state.audio.id; body.face_id = state.chosen; }
  try { follow(await api("/api/jobs", { method: "POST", json: body })); }
  catch (err) { showError("job-error", err); }
}

function follow(job) {
  if (state.events) state.events.close();
  $("step-result").hidden = true;
  $("step-progress").hidden = false;
  show(job);
  if (isOver(job)) return;
  const es = new EventSource(withToken(`/api/jobs/${job.id}/events`));
  es.addEventListener("status", (e) => show(JSON.parse(e.data)));
  es.addEventListener("deleted", () => es.close());
  es.onerror = () => { if (state.job && isOver(state.job)) es.close(); };
  state.events = es;
}

function fmtEta(s) { return s == null ? "" : s < 60 ? `~${Math.ceil(s)} s left` : `~${Math.ceil(s / 60)} min left`; }

function show(job) {
  state.job = job;
  $("job-progress").value = job.percent;
  $("job-state").textContent = job.state;
  $("job-stage").textContent = job.state === "running" ? job.stage : "";
  $("job-percent").textContent = `${job.percent.toFixed(0)} %`;
  $("job-eta").textContent = job.state === "running" ? fmtEta(job.eta) : "";
  $("cancel").hidden = isOver(job);
  showError("job-error", job.state === "failed" ? new Error(job.error) : null);
  if (job.state === "done") showResult(job);
  if (isOver(job)) { if (state.events) state.events.close(); loadHistory(); }
  refresh();
}

function showResult(job) {
  $("step-result").hidden = false;
  const video = $("result");
  const src = withToken(job.result_url);
  if (video.dataset.job !== job.id) { video.dataset.job = job.id; video.src = src; }
  $("download").href = withToken(job.result_url + "?download=true");
  $("notes").innerHTML = "";
  for (const n of (job.result && job.result.notes) || []) {
    const li = document.createElement("li"); li.textContent = n; $("notes").append(li);
  }
}

async function cancel() {
  if (!state.job) return;
  try { show(await api(`/api/jobs/${state.job.id}/cancel`, { method: "POST" })); }
  catch (err) { showError("job-error", err); }
}

async function loadHistory() {
  let jobs;
  try { jobs = await api("/api/jobs"); } catch (err) { return; }
  const body = document.querySelector("#history tbody");
  body.innerHTML = "";
  for (const j of jobs) {
    const tr = document.createElement("tr");
    tr.dataset.jobId = j.id;
    const cells = [new Date(j.created * 1000).toLocaleString(), j.params.media_name || "", j.params.engine, j.state];
    for (const c of cells) { const td = document.createElement("td"); td.textContent = c; tr.append(td); }
    const td = document.createElement("td");
    const open = document.createElement("button");
    open.textContent = j.state === "done" ? "Play" : "Show"; open.addEventListener("click", () => follow(j));
    const del = document.createElement("button");
    del.textContent = "Delete";
    del.addEventListener("click", async () => { await api(`/api/jobs/${j.id}`, { method: "DELETE" }); loadHistory(); });
    td.append(open, del); tr.append(td); body.append(tr);
  }
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
      $("audio-name").textContent = "recording";
      takeAudio(file);
    };
    recorder.start();
    $("record").textContent = "■ Stop recording";
  } catch (err) { showError("media-error", new Error("cannot record: " + err.message)); }
}

// ---- wiring
function dropZone(zone, input, take) {
  input.addEventListener("change", () => input.files[0] && take(input.files[0]));
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault(); zone.classList.remove("over");
    if (e.dataTransfer.files[0]) take(e.dataTransfer.files[0]);
  });
}

async function init() {
  dropZone($("media-drop"), $("media-input"), takeMedia);
  dropZone($("audio-drop"), $("audio-input"), (f) => { $("audio-name").textContent = f.name; takeAudio(f); });
  $("record").addEventListener("click", toggleRecord);
  $("multi").addEventListener("change", refresh);
  $("keep").addEventListener("change", refresh);
  $("duck").addEventListener("input", () => { $("duck-value").textContent = $("duck").value; });
  $("start").addEventListener("click", start);
  $("cancel").addEventListener("click", cancel);
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
  loadHistory();
  refresh();
}

init();
