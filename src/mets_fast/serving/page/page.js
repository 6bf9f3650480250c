// The page talks to the API as any client does: JSON in, JSON out.
"use strict";
let ecg = null;  // {signal, fs, leads} of the record shown
let files = null;  // the uploaded files of the record shown (sent again, not its samples)
const $ = (id) => document.getElementById(id);

function headers(json) {
  const h = {};
  if (json) h["Content-Type"] = "application/json";
  if ($("key").value) h["Authorization"] = "Bearer " + $("key").value;
  return h;
}

async function call(method, path, body) {
  const options = {method, headers: headers(body !== undefined && !(body instanceof FormData))};
  if (body instanceof FormData) options.body = body;
  else if (body !== undefined) options.body = JSON.stringify(body);
  const response = await fetch(path, options);
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function report(error) { $("error").textContent = error ? String(error.message || error) : ""; }

function warn(answer) { $("error").textContent = (answer.warnings || []).join(" "); }

// the record shown as a request body: its files again where it was uploaded (as the server
// reads them, whatever their length), else the JSON ECG; `fields` beside it
function requestBody(fields) {
  if (!files) return {ecg, ...fields};
  const form = new FormData();
  for (const f of files) form.append("files", f, f.name);
  for (const [k, v] of Object.entries(fields)) {
    form.append(k, typeof v === "string" ? v : JSON.stringify(v));
  }
  return form;
}

function plot(record) {
  const holder = $("leads");
  holder.innerHTML = "";
  record.signal.forEach((row, k) => {
    const label = document.createElement("div");
    label.className = "leadname";
    label.textContent = record.leads[k];
    const canvas = document.createElement("canvas");
    canvas.className = "lead";
    canvas.dataset.lead = record.leads[k];
    holder.append(label, canvas);
    canvas.width = holder.clientWidth || 800;
    canvas.height = 60;
    const ctx = canvas.getContext("2d");
    const finite = row.filter(Number.isFinite);
    const lo = Math.min(...finite), hi = Math.max(...finite), span = (hi - lo) || 1;
    ctx.strokeStyle = "#a00";
    ctx.beginPath();
    row.forEach((v, i) => {
      const x = (i / (row.length - 1)) * canvas.width;
      const y = canvas.height - ((Number.isFinite(v) ? v : lo) - lo) / span * (canvas.height - 4) - 2;
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke();
  });
  const seconds = record.signal[0].length / record.fs;
  $("recordinfo").textContent =
    `${record.leads.length} leads, ${record.fs} Hz, ${seconds.toFixed(1)} s`;
  $("classify").disabled = false;
  $("retrieve").disabled = $("index").options.length === 0;
}

async function show(promise, uploaded) {
  report(null);
  try { ecg = await promise; files = uploaded; plot(ecg); } catch (e) { report(e); }
}

$("files").addEventListener("change", () => {
  const chosen = Array.from($("files").files);
  const form = new FormData();
  for (const f of chosen) form.append("files", f, f.name);
  show(call("POST", "/v1/record", form), chosen);
});

$("example").addEventListener("change", () => {
  if ($("example").value) show(call("GET", "/v1/examples/" + encodeURIComponent($("example").value)), null);
});

$("classify").addEventListener("click", async () => {
  report(null);
  const classes = $("classes").value.split("\n").map((s) => s.trim()).filter(Boolean);
  try {
    const r = await call("POST", "/v1/zeroshot", requestBody({classes, kind: $("kind").value}));
    warn(r);
    const chart = $("chart");
    chart.innerHTML = "";
    r.classes.forEach((name, k) => {
      const bar = document.createElement("div");
      bar.className = "bar";
      bar.dataset.class = name;
      bar.dataset.probability = r.mean[k];
      bar.innerHTML = `<span class="name"></span><span class="fill"></span><span class="value"></span>`;
      bar.querySelector(".name").textContent = name;
      bar.querySelector(".fill").style.width = (r.mean[k] * 30) + "rem";
      bar.querySelector(".value").textContent = r.mean[k].toFixed(3);
      chart.append(bar);
    });
  } catch (e) { report(e); }
});

$("retrieve").addEventListener("click", async () => {
  report(null);
  try {
    const r = await call("POST", "/v1/retrieve",
                         requestBody({index: $("index").value, k: String($("k").value)}));
    warn(r);
    const body = $("results").querySelector("tbody");
    body.innerHTML = "";
    for (const hit of r.results) {
      const row = body.insertRow();
      for (const v of [hit.rank, hit.score.toFixed(3), hit.text ?? hit.id]) {
        row.insertCell().textContent = v;
      }
    }
  } catch (e) { report(e); }
});

async function start() {
  try {
    const info = await call("GET", "/v1/info");
    $("model").textContent = "model " + info.model;
    for (const index of info.indexes) $("index").add(new Option(`${index.name} (${index.count} ${index.items})`, index.name));
    const examples = await call("GET", "/v1/examples");
    for (const name of examples.examples) $("example").add(new Option(name, name));
  } catch (e) { report(e); }
}
$("key").addEventListener("change", start);
start();
