// digitlab draw-a-digit page: plain browser JavaScript, no build step, no dependencies.
//
// The canvas keeps the strokes (in 0..1 coordinates) so it can redraw itself sharply at any size.
// While drawing, the picture is sent to POST /api/predict at most every THROTTLE_MS, with one request
// in flight at a time (the newest picture wins), and once more when the stroke ends. The server does
// the MNIST preprocessing and returns the 28x28 image the model saw, which is shown enlarged.
"use strict";

const THROTTLE_MS = 150;
const BRUSH = 0.085;        // brush width as a fraction of the board: MNIST strokes are ~1/8 of the digit
const SEND_SIZE = 280;      // the picture is sent at 280x280: plenty for a 28x28 result, and small

const $ = (id) => document.getElementById(id);
const board = $("board");
const pad = $("pad");
const ctx = pad.getContext("2d");
const result = $("result");
const fileInput = $("file-input");

const strokes = [];          // each stroke: array of [x, y] in 0..1
let current = null;          // the stroke being drawn
let generation = 0;          // bumped by Clear and uploads, so late answers for old pictures are dropped
let uploadMode = "digit";

// ---- drawing ---------------------------------------------------------------------------------

function resizeCanvas() {
  const rect = pad.getBoundingClientRect();
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(rect.width * dpr));
  const h = Math.max(1, Math.round(rect.height * dpr));
  if (pad.width !== w || pad.height !== h) {
    pad.width = w;
    pad.height = h;
    render(ctx, w, h);
  }
}

function traceStroke(c, pts, w, h) {
  c.beginPath();
  c.moveTo(pts[0][0] * w, pts[0][1] * h);
  if (pts.length === 1) {
    c.lineTo(pts[0][0] * w + 0.01, pts[0][1] * h);   // a dot: round caps make it a disc
  } else {
    // Quadratic curves through the midpoints give a smooth line from jittery pointer samples.
    for (let i = 1; i < pts.length - 1; i++) {
      const mx = (pts[i][0] + pts[i + 1][0]) / 2;
      const my = (pts[i][1] + pts[i + 1][1]) / 2;
      c.quadraticCurveTo(pts[i][0] * w, pts[i][1] * h, mx * w, my * h);
    }
    const last = pts[pts.length - 1];
    c.lineTo(last[0] * w, last[1] * h);
  }
  c.stroke();
}

function render(c, w, h) {
  c.fillStyle = "#000";
  c.fillRect(0, 0, w, h);
  c.strokeStyle = "#fff";
  c.lineWidth = BRUSH * Math.min(w, h);
  c.lineCap = "round";
  c.lineJoin = "round";
  for (const s of strokes) traceStroke(c, s, w, h);
  if (current) traceStroke(c, current, w, h);
}

function pointFromEvent(ev) {
  const rect = pad.getBoundingClientRect();
  const x = (ev.clientX - rect.left) / rect.width;
  const y = (ev.clientY - rect.top) / rect.height;
  return [Math.min(1, Math.max(0, x)), Math.min(1, Math.max(0, y))];
}

pad.addEventListener("pointerdown", (ev) => {
  if (ev.button !== 0 && ev.pointerType === "mouse") return;
  ev.preventDefault();
  pad.setPointerCapture(ev.pointerId);
  if (uploadShown()) startOver();
  current = [pointFromEvent(ev)];
  board.classList.add("has-ink");
  render(ctx, pad.width, pad.height);
});

pad.addEventListener("pointermove", (ev) => {
  if (!current) return;
  ev.preventDefault();
  // Coalesced events keep fast strokes smooth on devices that batch pointer samples.
  const events = ev.getCoalescedEvents ? ev.getCoalescedEvents() : [ev];
  for (const e of (events.length ? events : [ev])) current.push(pointFromEvent(e));
  render(ctx, pad.width, pad.height);
  schedulePrediction(false);
});

function endStroke(ev) {
  if (!current) return;
  if (ev && pad.hasPointerCapture(ev.pointerId)) pad.releasePointerCapture(ev.pointerId);
  strokes.push(current);
  current = null;
  render(ctx, pad.width, pad.height);
  schedulePrediction(true);
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

// ---- asking the server -------------------------------------------------------------------------

let inFlight = false;
let dirty = false;
let lastSent = 0;
let timer = null;

function schedulePrediction(now) {
  dirty = true;
  if (inFlight) return;                       // the answer handler sends the newest picture next
  const wait = now ? 0 : Math.max(0, THROTTLE_MS - (performance.now() - lastSent));
  if (timer !== null) {
    if (!now) return;
    clearTimeout(timer);
  }
  timer = setTimeout(sendDrawing, wait);
}

function drawingBlob() {
  const off = document.createElement("canvas");
  off.width = SEND_SIZE;
  off.height = SEND_SIZE;
  render(off.getContext("2d"), SEND_SIZE, SEND_SIZE);
  return new Promise((resolve) => off.toBlob(resolve, "image/png"));
}

async function sendDrawing() {
  timer = null;
  if (!dirty || (!strokes.length && !current)) { dirty = false; return; }
  dirty = false;
  inFlight = true;
  const gen = generation;
  setState("pending");
  try {
    const blob = await drawingBlob();
    lastSent = performance.now();   // the throttle spaces the requests themselves
    const answer = await postImage("/api/predict", blob, "drawing.png");
    if (gen === generation) showPrediction(answer);
  } catch (err) {
    if (gen === generation) showError(err.message);
  } finally {
    inFlight = false;
    if (dirty) schedulePrediction(false);
  }
}

async function postImage(url, blob, name) {
  const form = new FormData();
  form.append("file", blob, name);
  let response;
  try {
    response = await fetch(url + "?image=true", { method: "POST", body: form });
  } catch (err) {
    throw new Error("The server cannot be reached. Is `digitlab serve` still running?");
  }
  let body = null;
  try { body = await response.json(); } catch (err) { /* not JSON: handled below */ }
  if (!response.ok) {
    const detail = body && (body.detail || body.error);
    throw new Error(detail ? String(detail) : `The server answered ${response.status}.`);
  }
  return body;
}

// ---- showing answers ---------------------------------------------------------------------------

function setState(state) {
  result.dataset.state = state;
  $("status").textContent = "";
}

function percent(p) {
  return (100 * p).toFixed(p >= 0.995 || p < 0.0005 ? 0 : 1) + "%";
}

function buildBars() {
  const list = $("bars");
  list.textContent = "";
  for (let d = 0; d < 10; d++) {
    const li = document.createElement("li");
    li.dataset.digit = String(d);
    li.innerHTML = `<span class="label">${d}</span><span class="track"><span class="fill"></span></span>` +
                   `<span class="value">–</span>`;
    list.appendChild(li);
  }
}

function showBars(probabilities, top) {
  const items = $("bars").children;
  for (let d = 0; d < items.length; d++) {
    const p = probabilities && probabilities.length > d ? probabilities[d] : 0;
    items[d].querySelector(".fill").style.width = (100 * p).toFixed(2) + "%";
    items[d].querySelector(".value").textContent = probabilities && probabilities.length ? percent(p) : "–";
    items[d].classList.toggle("top", d === top);
  }
  $("bars").hidden = false;
}

function showSaw(b64) {
  const img = $("saw");
  img.closest("figure").hidden = false;
  if (b64) {
    img.src = "data:image/png;base64," + b64;
    img.hidden = false;
    $("saw-empty").hidden = true;
  } else {
    img.hidden = true;
    img.removeAttribute("src");
    $("saw-empty").hidden = false;
  }
}

function showNote(text) {
  $("note").textContent = text || "";
  $("note").hidden = !text;
}

function showPrediction(p) {
  $("error").hidden = true;
  const found = p.digit !== null && p.digit !== undefined;
  $("digit").textContent = found ? String(p.digit) : "?";
  $("digit").classList.remove("is-number");
  result.classList.toggle("is-unsure", found && !!p.unsure);
  $("unsure").hidden = !(found && p.unsure);
  if (found) {
    $("confidence").innerHTML = `<b>${percent(p.confidence)}</b> sure it is a <b>${p.digit}</b>`;
  } else {
    $("confidence").textContent = "No digit found. Draw a bigger, clearer digit.";
  }
  showNote(p.error || p.note);
  showBars(p.probabilities, found ? p.digit : -1);
  showSaw(p.image);
  setState("ready");
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
  setState("error");
}

function resetResult() {
  $("digit").textContent = "–";
  $("digit").classList.remove("is-number");
  result.classList.remove("is-unsure");
  $("unsure").hidden = true;
  $("confidence").textContent = "Start drawing to see what the model thinks.";
  showNote("");
  $("error").hidden = true;
  showBars(null, -1);
  showSaw(null);
  $("reading").hidden = true;
  setState("empty");
}

// ---- Clear and uploads ------------------------------------------------------------------------

function startOver() {
  generation += 1;
  strokes.length = 0;
  current = null;
  dirty = false;
  if (timer !== null) { clearTimeout(timer); timer = null; }
  board.classList.remove("has-ink");
  render(ctx, pad.width, pad.height);
  resetResult();
}

function uploadShown() { return !$("reading").hidden; }

$("clear").addEventListener("click", startOver);
$("upload-digit").addEventListener("click", () => { uploadMode = "digit"; fileInput.click(); });
$("upload-number").addEventListener("click", () => { uploadMode = "number"; fileInput.click(); });

fileInput.addEventListener("change", async () => {
  const file = fileInput.files && fileInput.files[0];
  fileInput.value = "";               // choosing the same file again fires change again
  if (!file) return;
  startOver();
  const gen = generation;
  showPhoto(file);
  setState("pending");
  try {
    if (uploadMode === "number") {
      const reading = await postImage("/api/read", file, file.name);
      if (gen === generation) showReading(reading);
    } else {
      const answer = await postImage("/api/predict", file, file.name);
      if (gen === generation) showPrediction(answer);
    }
  } catch (err) {
    if (gen === generation) showError(err.message);
  }
});

function showPhoto(file) {
  const img = $("photo-img");
  if (img.dataset.url) URL.revokeObjectURL(img.dataset.url);
  img.dataset.url = URL.createObjectURL(file);
  img.src = img.dataset.url;
  $("boxes").textContent = "";
  $("chips").textContent = "";
  $("reading").hidden = false;
}

function showReading(r) {
  $("error").hidden = true;
  const digits = r.digits || [];
  const found = !!r.number;
  $("digit").textContent = found ? r.number : "?";
  $("digit").classList.toggle("is-number", found && r.number.length > 1);
  result.classList.toggle("is-unsure", found && !!r.unsure);
  $("unsure").hidden = !(found && r.unsure);
  $("confidence").innerHTML = found
    ? `Read <b>${r.number}</b> · ${percent(r.confidence)} sure`
    : "No digits found in this image.";
  showNote(r.note || "");
  $("bars").hidden = true;
  $("saw").closest("figure").hidden = true;   // each digit's 28x28 is on its chip below
  drawBoxes(digits);
  const chips = $("chips");
  digits.forEach((d) => {
    const chip = document.createElement("div");
    chip.className = "chip" + (d.unsure ? " unsure-chip" : "");
    const img = d.image ? `<img alt="" src="data:image/png;base64,${d.image}">` : "";
    chip.innerHTML = `${img}<b>${d.digit ?? "?"}</b><span>${percent(d.confidence || 0)}</span>`;
    chips.appendChild(chip);
  });
  setState("ready");
}

function drawBoxes(digits) {
  const img = $("photo-img");
  const place = () => {
    const layer = $("boxes");
    layer.textContent = "";
    const W = img.naturalWidth, H = img.naturalHeight;
    if (!W || !H) return;
    digits.forEach((d) => {
      if (!d.box) return;
      const [x0, y0, x1, y1] = d.box;
      const box = document.createElement("div");
      box.style.left = (100 * x0 / W) + "%";
      box.style.top = (100 * y0 / H) + "%";
      box.style.width = (100 * (x1 - x0) / W) + "%";
      box.style.height = (100 * (y1 - y0) / H) + "%";
      const label = document.createElement("span");
      label.textContent = d.digit !== null && d.digit !== undefined ? String(d.digit) : "?";
      box.appendChild(label);
      layer.appendChild(box);
    });
  };
  if (img.complete && img.naturalWidth) place(); else img.addEventListener("load", place, { once: true });
}

// ---- start -----------------------------------------------------------------------------------

async function showModel() {
  try {
    const info = await (await fetch("/api/model")).json();
    const acc = info.test_accuracy ?? (info.metrics && (info.metrics.test_accuracy ?? info.metrics.accuracy));
    const name = info.architecture || info.name || "model";
    $("model-badge").innerHTML = `Model <b></b>` + (typeof acc === "number" ? ` · ${(100 * acc).toFixed(2)}% on MNIST test` : "");
    $("model-badge").querySelector("b").textContent = name;
    $("version").textContent = info.digitlab_version ? `digitlab ${info.digitlab_version}` : "";
  } catch (err) {
    $("model-badge").textContent = "model info unavailable";
  }
}

buildBars();
resetResult();
resizeCanvas();
new ResizeObserver(resizeCanvas).observe(pad);
showModel();
