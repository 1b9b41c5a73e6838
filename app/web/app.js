// The page: upload -> job (/v1/jobs) -> progress (server-sent events) -> transcript with a
// player, speaker renaming and downloads. Plain ES module, no build step, no CDN.

const $ = (selector) => document.querySelector(selector);
const state = {
  key: localStorage.getItem("whisperx.apiKey") || "",
  file: null,
  audioUrl: null,
  jobId: null,
  words: [], // {start, end, el} in time order, for the player's highlight
  names: {}, // speaker label -> name chosen on this page
};

class NeedsKey extends Error {}

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (state.key) headers.set("Authorization", `Bearer ${state.key}`);
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) {
    $("#key-panel").hidden = false;
    $("#key-input").focus();
    throw new NeedsKey("This server needs an API key.");
  }
  return response;
}

async function failure(response) {
  try {
    const body = await response.json();
    return body.error?.message || body.detail || response.statusText;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

function showError(error) {
  if (error instanceof NeedsKey) return;
  $("#error").textContent = error.message || String(error);
  $("#error").hidden = false;
}

function clock(seconds) {
  const s = Math.floor(seconds);
  const hh = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, "0");
  const ss = String(s % 60).padStart(2, "0");
  return hh ? `${hh}:${mm}:${ss}` : `${mm}:${ss}`;
}

// --- options -----------------------------------------------------------------------------
async function loadModels() {
  const response = await api("/v1/models");
  if (!response.ok) throw new Error(await failure(response));
  const models = (await response.json()).data.map((m) => m.id).filter((id) => id !== "whisper-1");
  const info = await api("/info").then((r) => (r.ok ? r.json() : {}));
  const select = $("#model");
  select.replaceChildren(...models.map((id) => new Option(id, id, false, id === info.default_model)));
}

function chooseFile(file) {
  if (!file) return;
  state.file = file;
  $("#drop-text").textContent = `${file.name} (${(file.size / 1048576).toFixed(1)} MB)`;
}

// --- a job and its progress --------------------------------------------------------------
async function submit(event) {
  event.preventDefault();
  $("#error").hidden = true;
  if (!state.file) return showError(new Error("Choose a file first."));
  const form = new FormData();
  form.append("file", state.file, state.file.name);
  form.append("model", $("#model").value);
  if ($("#language").value) form.append("language", $("#language").value);
  form.append("diarize", $("#diarize").checked ? "true" : "false");
  if ($("#num-speakers").value) form.append("num_speakers", $("#num-speakers").value);
  $("#submit").disabled = true;
  try {
    const response = await api("/v1/jobs", { method: "POST", body: form });
    if (!response.ok) throw new Error(await failure(response));
    const job = await response.json();
    if (state.audioUrl) URL.revokeObjectURL(state.audioUrl);
    state.audioUrl = URL.createObjectURL(state.file);
    state.audioFor = job.id;
    await follow(job.id);
  } catch (error) {
    showError(error);
  } finally {
    $("#submit").disabled = false;
    refreshJobs();
  }
}

async function follow(jobId) {
  $("#progress-box").hidden = false;
  const response = await api(`/v1/jobs/${jobId}/events`);
  if (!response.ok) throw new Error(await failure(response));
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffered += value;
    let end;
    while ((end = buffered.indexOf("\n\n")) >= 0) {
      const chunk = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      const data = chunk.split("\n").find((line) => line.startsWith("data: "));
      if (!data) continue;
      const { type, job } = JSON.parse(data.slice(6));
      $("#progress").value = job.progress.fraction;
      $("#progress-text").textContent =
        `${Math.round(job.progress.fraction * 100)} % · ${job.progress.stage || job.status}`;
      if (type === "job.completed") return showResult(jobId);
      if (type === "job.failed" || type === "job.cancelled") {
        throw new Error(`The job ${job.status}: ${job.error || "no reason given"}`);
      }
    }
  }
}

// --- the transcript ----------------------------------------------------------------------
async function showResult(jobId) {
  const response = await api(`/v1/jobs/${jobId}/result?format=json`);
  if (!response.ok) throw new Error(await failure(response));
  const body = await response.json();
  state.jobId = jobId;
  state.names = {};
  const player = $("#player");
  player.hidden = state.audioFor !== jobId;
  if (!player.hidden) player.src = state.audioUrl;
  render(body);
  $("#result").hidden = false;
  $("#progress-box").hidden = true;
}

function turnsOf(segments) {
  const turns = [];
  for (const segment of segments) {
    const last = turns[turns.length - 1];
    if (last && last.speaker === (segment.speaker || null)) last.segments.push(segment);
    else turns.push({ speaker: segment.speaker || null, segments: [segment] });
  }
  return turns;
}

function render(body) {
  const speakers = body.speakers || [];
  const container = $("#transcript");
  state.words = [];
  container.replaceChildren(
    ...turnsOf(body.segments).map((turn) => {
      const article = document.createElement("article");
      article.className = "turn";
      const index = Math.max(0, speakers.indexOf(turn.speaker));
      article.style.setProperty("--hue", String((index * 137 + 210) % 360));
      const header = document.createElement("header");
      if (turn.speaker) {
        const name = document.createElement("button");
        name.type = "button";
        name.className = "speaker";
        name.dataset.speaker = turn.speaker;
        name.textContent = turn.speaker;
        name.title = "Rename this speaker";
        header.append(name);
      }
      const time = document.createElement("time");
      time.textContent = clock(turn.segments[0].start);
      header.append(time);
      const text = document.createElement("p");
      for (const segment of turn.segments) {
        const words = segment.words?.length ? segment.words : [{ word: segment.text.trim(), start: segment.start, end: segment.end }];
        for (const word of words) {
          const span = document.createElement("span");
          span.className = "word";
          span.tabIndex = 0;
          span.dataset.start = word.start;
          span.textContent = word.word;
          text.append(span, " ");
          state.words.push({ start: word.start, end: word.end, el: span });
        }
      }
      article.append(header, text);
      return article;
    }),
  );
}

function seek(target) {
  const player = $("#player");
  if (player.hidden || !target.classList.contains("word")) return;
  player.currentTime = Number(target.dataset.start);
  player.play().catch(() => {}); // autoplay rules may refuse; the position is set anyway
  highlight();
}

let lit = null;
function highlight() {
  const t = $("#player").currentTime;
  let lo = 0;
  let hi = state.words.length - 1;
  let found = null;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (state.words[mid].start <= t) {
      found = state.words[mid];
      lo = mid + 1;
    } else hi = mid - 1;
  }
  const current = found && t <= found.end + 0.3 ? found.el : null;
  if (current === lit) return;
  lit?.classList.remove("current");
  current?.classList.add("current");
  lit = current;
}

function rename(button) {
  const label = button.dataset.speaker;
  const input = document.createElement("input");
  input.className = "speaker-input";
  input.value = state.names[label] || button.textContent;
  input.setAttribute("aria-label", `New name for ${button.textContent}`);
  button.replaceWith(input);
  input.focus();
  input.select();
  let finished = false;
  const finish = (keep) => {
    if (finished) return;
    finished = true;
    const name = input.value.trim();
    if (keep && name) state.names[label] = name;
    input.replaceWith(button);
    for (const other of document.querySelectorAll(`.speaker[data-speaker="${label}"]`)) {
      other.textContent = state.names[label] || label;
    }
    button.focus();
  };
  input.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" && event.key !== "Escape") return;
    event.preventDefault(); // else the key also "clicks" the name button that gets focus
    finish(event.key === "Enter");
  });
  input.addEventListener("blur", () => finish(true));
}

async function download(format) {
  const params = new URLSearchParams({ format });
  if (Object.keys(state.names).length) params.set("speakers", JSON.stringify(state.names));
  const response = await api(`/v1/jobs/${state.jobId}/result?${params}`);
  if (!response.ok) throw new Error(await failure(response));
  const blob = await response.blob();
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = `transcript.${format === "text" ? "txt" : format}`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}

// --- recent jobs -------------------------------------------------------------------------
async function refreshJobs() {
  const response = await api("/v1/jobs?limit=10");
  if (!response.ok) return;
  const jobs = (await response.json()).data;
  $("#jobs").replaceChildren(
    ...jobs.map((job) => {
      const item = document.createElement("li");
      const open = document.createElement("button");
      open.type = "button";
      open.textContent = job.filename;
      open.disabled = job.status !== "completed";
      open.addEventListener("click", () => showResult(job.id).catch(showError));
      const status = document.createElement("span");
      status.className = "status";
      status.textContent = `${job.status} · ${new Date(job.created_at * 1000).toLocaleString()}`;
      item.append(open, status);
      return item;
    }),
  );
}

// --- wiring ------------------------------------------------------------------------------
async function init() {
  try {
    await loadModels();
    await refreshJobs();
  } catch (error) {
    showError(error);
  }
}

$("#upload-form").addEventListener("submit", submit);
$("#file-input").addEventListener("change", (event) => chooseFile(event.target.files[0]));
const zone = $("#drop-zone");
zone.addEventListener("dragover", (event) => {
  event.preventDefault();
  zone.classList.add("over");
});
zone.addEventListener("dragleave", () => zone.classList.remove("over"));
zone.addEventListener("drop", (event) => {
  event.preventDefault();
  zone.classList.remove("over");
  chooseFile(event.dataTransfer.files[0]);
});
$("#transcript").addEventListener("click", (event) => {
  if (event.target.classList.contains("speaker")) rename(event.target);
  else seek(event.target);
});
$("#transcript").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && event.target.classList.contains("word")) seek(event.target);
});
$("#player").addEventListener("timeupdate", highlight);
$("#player").addEventListener("seeked", highlight);
for (const button of document.querySelectorAll(".downloads button")) {
  button.addEventListener("click", () => download(button.dataset.format).catch(showError));
}
$("#key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.key = $("#key-input").value.trim();
  localStorage.setItem("whisperx.apiKey", state.key);
  $("#key-panel").hidden = true;
  init();
});
init();
