// lipdub live: the microphone, resampled to 16 kHz float32, goes to /api/live; JPEG frames come back and are
// drawn on the canvas at the photo's size. Protocol: see /api/docs (the app's description) or the README.
"use strict";

const RATE = 16000;
const HEADER = 20; // uint32 index, float64 frame time (s), float64 audio received when sent (s)
const $ = (id) => document.getElementById(id);
const token = new URLSearchParams(location.hash.slice(1)).get("token") || "";
const live = { sent: 0, frames: [], lastT: -1, socket: null, audio: null };
window.lipdubLive = live; // for tests and curious users: the newest frame's time is live.lastT

function connect() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/live`);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => ws.send(JSON.stringify({ token }));
    ws.onmessage = (event) => {
      if (typeof event.data !== "string") return drawFrame(event.data);
      const msg = JSON.parse(event.data);
      if (msg.type === "ready") {
        const canvas = $("face");
        canvas.width = msg.width;
        canvas.height = msg.height;
        canvas.hidden = false;
        resolve(ws);
      } else if (msg.type === "error") {
        $("error").textContent = msg.message;
      }
    };
    ws.onclose = (event) => {
      $("status").textContent = "disconnected" + (event.reason ? `: ${event.reason}` : "");
      reject(new Error(event.reason || "the server closed the connection"));
    };
  });
}

async function drawFrame(buffer) {
  const view = new DataView(buffer);
  const t = view.getFloat64(4, true);
  const bitmap = await createImageBitmap(new Blob([buffer.slice(HEADER)], { type: "image/jpeg" }));
  if (t < live.lastT) return; // a frame decoded late: a newer one is already shown
  $("face").getContext("2d").drawImage(bitmap, 0, 0);
  bitmap.close();
  live.lastT = t;
  const now = performance.now();
  live.frames.push(now);
  while (live.frames.length && now - live.frames[0] > 1000) live.frames.shift();
  $("fps").textContent = String(live.frames.length);
  // audio sent by now minus the frame's time: the look-ahead plus the server's and the network's delay
  $("latency").textContent = String(Math.round((live.sent / RATE - t) * 1000));
}

// streaming resampler: average the input over each output sample's span (an anti-alias box filter), any rate
function makeResampler(inRate) {
  const step = inRate / RATE;
  let pos = 0; // position of the next output sample in the current input block's coordinates
  let carry = new Float32Array(0);
  return (input) => {
    const x = new Float32Array(carry.length + input.length);
    x.set(carry);
    x.set(input, carry.length);
    const out = [];
    while (pos + step <= x.length) {
      const a = Math.floor(pos);
      const b = Math.floor(pos + step);
      let sum = 0;
      for (let i = a; i < b; i++) sum += x[i];
      out.push(b > a ? sum / (b - a) : x[a]);
      pos += step;
    }
    const keep = Math.floor(pos);
    carry = x.slice(keep);
    pos -= keep;
    return Float32Array.from(out);
  };
}

async function start() {
  $("mic").disabled = true;
  $("error").textContent = "";
  try {
    $("status").textContent = "connecting…";
    const ws = await connect(); // first: the session is ready when the first samples come
    live.socket = ws;
    $("status").textContent = "asking for the microphone…";
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    const ctx = new AudioContext();
    const source = ctx.createMediaStreamSource(stream);
    const node = ctx.createScriptProcessor(1024, 1, 1);
    const resample = makeResampler(ctx.sampleRate);
    node.onaudioprocess = (event) => {
      const samples = resample(event.inputBuffer.getChannelData(0));
      if (samples.length && ws.readyState === WebSocket.OPEN) {
        ws.send(samples.buffer);
        live.sent += samples.length;
      }
    };
    source.connect(node);
    node.connect(ctx.destination); // a ScriptProcessor only runs when connected; its output stays silent
    live.audio = { ctx, stream };
    $("status").textContent = "listening: talk";
  } catch (err) {
    $("error").textContent = err.name === "NotAllowedError" ? "the microphone was not allowed" : String(err.message || err);
    $("status").textContent = "";
    $("mic").disabled = false;
    if (live.socket) live.socket.close();
    live.socket = null;
  }
}

$("mic").addEventListener("click", start);
