// The /ui page: search by uploading a clip, listen to the matches from the part that matched,
// "more like this" on any clip, and a paged view of the library. Talks only to this service.
"use strict";

const PAGE_SIZE = 20;
const $ = (selector) => document.querySelector(selector);
let queryFile = null;
let libraryOffset = 0;

// ---- talking to the service ----

// A JSON error body's detail (a string, or FastAPI's list of validation problems) as one line.
function describeError(body, response) {
  const detail = body && body.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ");
  }
  return `HTTP ${response.status} ${response.statusText}`;
}

// The documents of a flow response, or an Error saying what went wrong.
async function responseDocs(response) {
  const body = await response.json().catch(() => null);
  if (!response.ok || !body) throw new Error(describeError(body, response));
  return body.data;
}

// fetch(), asking once for the API key when the server wants one. The key goes into a
// same-site cookie, because <audio> elements cannot send the X-API-Key header.
async function send(url, init) {
  const response = await fetch(url, init);
  if (response.status !== 401) return response;
  const key = window.prompt("This server needs an API key (AUDIOSEARCH_API_KEY):");
  if (!key) return response;
  document.cookie = `audiosearch_api_key=${encodeURIComponent(key)}; path=/; SameSite=Strict`;
  return fetch(url, init);
}

// POST documents to one of the flow's endpoints (/search, /list, /clips, /stats).
async function post(endpoint, data, parameters) {
  const response = await send(`/${endpoint}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ data, parameters }),
  });
  return responseDocs(response);
}

// limit and the duration range as the flow's parameters; empty fields are left out.
function searchParameters() {
  const parameters = { limit: Number($("#limit").value) || 10 };
  for (const [name, id] of [["min_duration", "#min-duration"], ["max_duration", "#max-duration"]]) {
    const value = $(id).value;
    if (value !== "") parameters[name] = Number(value);
  }
  return parameters;
}

// ---- formatting ----

const fileName = (uri) => uri.split(/[\\/]/).pop();
const seconds = (value) => (value == null ? "–" : `${value.toFixed(1)} s`);

function cell(row, content, className) {
  const td = row.insertCell();
  if (content instanceof Node) td.append(content);
  else td.textContent = content;
  if (className) td.className = className;
  return td;
}

// A player for an indexed clip that starts at ``start`` seconds (a media fragment: the browser
// seeks there once it has the file's header, using HTTP range requests).
function player(clipId, start) {
  const audio = document.createElement("audio");
  audio.controls = true;
  audio.preload = "metadata";
  audio.dataset.start = String(start);
  audio.src = `/audio/${clipId}#t=${start.toFixed(2)}`;
  return audio;
}

function moreLikeThisButton(clipId, uri) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "more-like-this";
  button.textContent = "More like this";
  button.addEventListener("click", () => moreLikeThis(clipId, uri));
  return button;
}

function clipName(uri) {
  const span = document.createElement("span");
  span.className = "clip-name";
  span.textContent = fileName(uri);
  span.title = uri;
  return span;
}

function showStatus(element, message, isError = false) {
  element.textContent = message;
  element.classList.toggle("error", isError);
}

// ---- search view ----

// clip_id -> duration of the given clips, asked of /clips; empty if that fails (then the
// table shows "–": the durations are a convenience, the matches are what counts).
async function durations(clipIds) {
  if (clipIds.length === 0) return new Map();
  try {
    const clips = await post("clips", clipIds.map((id) => ({ clip_id: id })), {});
    return new Map(clips.map((c) => [c.clip_id, c.duration]));
  } catch {
    return new Map();
  }
}

async function showResults(doc, title, startedAt) {
  const status = $("#search-status");
  const table = $("#results");
  if (doc.status === "error") {
    table.hidden = true;
    showStatus(status, doc.error, true);
    return;
  }
  const matches = doc.matches || [];
  const lengths = await durations(matches.map((m) => m.clip_id));
  const body = table.tBodies[0];
  body.replaceChildren();
  matches.forEach((match, i) => {
    const row = body.insertRow();
    row.dataset.clipId = match.clip_id;
    cell(row, String(i + 1), "number");
    cell(row, match.score.toFixed(3), "number score");
    cell(row, clipName(match.uri));
    cell(row, seconds(lengths.get(match.clip_id)), "number");
    cell(row, `${match.start.toFixed(1)}-${match.end.toFixed(1)} s`, "matched");
    cell(row, player(match.clip_id, match.start));
    cell(row, moreLikeThisButton(match.clip_id, match.uri));
  });
  $("#results-title").textContent = title;
  table.hidden = false;
  const elapsed = ((performance.now() - startedAt) / 1000).toFixed(1);
  showStatus(status, matches.length ? `${matches.length} clips in ${elapsed} s` : "No clip matched");
}

async function runSearch(request, title) {
  const startedAt = performance.now();
  showStatus($("#search-status"), "Searching…");
  try {
    const [doc] = await request();
    await showResults(doc, title, startedAt);
  } catch (error) {
    showStatus($("#search-status"), `Search failed: ${error.message}`, true);
  }
}

function searchWithFile(file) {
  queryFile = file;
  $("#query-name").textContent = file.name;
  const queryPlayer = $("#query-player");
  if (queryPlayer.src) URL.revokeObjectURL(queryPlayer.src);
  queryPlayer.src = URL.createObjectURL(file);
  $("#query").hidden = false;
  const form = new FormData();
  form.append("file", file, file.name);
  for (const [name, value] of Object.entries(searchParameters())) form.append(name, value);
  return runSearch(
    async () => responseDocs(await send("/upload/search", { method: "POST", body: form })),
    `Most similar to ${file.name}`,
  );
}

function moreLikeThis(clipId, uri) {
  location.hash = "#search";
  $("#query").hidden = true;
  return runSearch(
    () => post("search", [{ clip_id: clipId }], searchParameters()),
    `More like ${fileName(uri)}`,
  );
}

// ---- library view ----

async function loadLibrary(offset) {
  const status = $("#library-status");
  showStatus(status, "Loading…");
  try {
    const [clips, [stats]] = await Promise.all([
      post("list", [], { offset, limit: PAGE_SIZE }),
      post("stats", [], {}),
    ]);
    const total = (stats && stats.stats && stats.stats.clips) || 0;
    libraryOffset = offset;
    const body = $("#library").tBodies[0];
    body.replaceChildren();
    for (const clip of clips) {
      const row = body.insertRow();
      row.dataset.clipId = clip.clip_id;
      cell(row, String(clip.clip_id), "number");
      cell(row, clipName(clip.uri));
      cell(row, seconds(clip.duration), "number");
      cell(row, String(clip.chunk_count ?? "–"), "number");
      cell(row, clip.indexed_at ? new Date(clip.indexed_at * 1000).toLocaleString() : "–");
      cell(row, player(clip.clip_id, 0));
      cell(row, moreLikeThisButton(clip.clip_id, clip.uri));
    }
    const last = offset + clips.length;
    $("#page-info").textContent = clips.length ? `Clips ${offset + 1}-${last} of ${total}` : "";
    $("#prev").disabled = offset === 0;
    $("#next").disabled = last >= total;
    showStatus(status, total ? "" : "The library is empty: index a folder with python app.py index DIR");
  } catch (error) {
    showStatus(status, `Could not list the library: ${error.message}`, true);
  }
}

// ---- wiring ----

function showView() {
  const library = location.hash === "#library";
  $("#search-view").hidden = library;
  $("#library-view").hidden = !library;
  $("#nav-search").classList.toggle("active", !library);
  $("#nav-library").classList.toggle("active", library);
  if (library) loadLibrary(libraryOffset);
}

function setUp() {
  const dropZone = $("#drop-zone");
  $("#file").addEventListener("change", (event) => {
    if (event.target.files.length) searchWithFile(event.target.files[0]);
  });
  dropZone.addEventListener("dragover", (event) => {
    event.preventDefault();
    dropZone.classList.add("dragging");
  });
  dropZone.addEventListener("dragleave", () => dropZone.classList.remove("dragging"));
  dropZone.addEventListener("drop", (event) => {
    event.preventDefault();
    dropZone.classList.remove("dragging");
    if (event.dataTransfer.files.length) searchWithFile(event.dataTransfer.files[0]);
  });
  $("#search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    if (queryFile) searchWithFile(queryFile);
    else showStatus($("#search-status"), "Choose or drop an audio clip first", true);
  });
  $("#prev").addEventListener("click", () => loadLibrary(Math.max(0, libraryOffset - PAGE_SIZE)));
  $("#next").addEventListener("click", () => loadLibrary(libraryOffset + PAGE_SIZE));
  // One sound at a time: starting a player pauses the others.
  document.addEventListener(
    "play",
    (event) => {
      for (const audio of document.querySelectorAll("audio")) {
        if (audio !== event.target) audio.pause();
      }
    },
    true,
  );
  window.addEventListener("hashchange", showView);
  showView();
}

setUp();
