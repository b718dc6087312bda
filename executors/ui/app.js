// The /ui page: search with a file, a part of it or a recording; listen to the matches from the
// part that matched; judge them and refine; page through and prune the library; see it as a map.
// Talks only to this service, and loads nothing from elsewhere.
import { ServiceDown, getJson, post, upload } from "./api.js";
import { LibraryMap, palette } from "./map.js";
import { startRecording } from "./recorder.js";
import { RATE, decodeMono, drawWave, peaksOf, timeAt, wavBlob } from "./wave.js";

const PAGE_SIZE = 20;
const VIEWS = ["search", "library", "map"];
const $ = (selector) => document.querySelector(selector);

const search = {
  // {kind: "audio", name, file, samples, duration} (a file or a recording) or
  // {kind: "clip", clipId, name, duration, peaks} (an indexed clip: "more like this").
  query: null,
  region: null, // [start, end] seconds of the query to search with; null: all of it
  judgments: new Map(), // clip id -> "like" | "unlike"
  seq: 0, // the latest search: answers to older ones are dropped
};
let limits = null; // GET /limits, once it answered
let mapData = null; // GET /map: every clip's id, uri and place; dropped when a clip is deleted
let recording = null;
const peaksCache = new Map(); // clip id -> promise of its /peaks answer
const libraryMap = new LibraryMap($("#map"));

// ---- small helpers ----

const fileName = (uri) => uri.split(/[\\/]/).pop();
const folderOf = (uri) => uri.split(/[\\/]/).slice(0, -1).join("/") || "/";
const seconds = (value) => (value == null ? "–" : `${value.toFixed(1)} s`);
const span = (start, end) => `${start.toFixed(1)}-${end.toFixed(1)} s`;

function cell(row, content, className) {
  const td = row.insertCell();
  if (content instanceof Node) td.append(content);
  else td.textContent = content;
  if (className) td.className = className;
  return td;
}

function button(label, className, onClick, title) {
  const element = document.createElement("button");
  element.type = "button";
  element.className = className;
  element.textContent = label;
  if (title) element.title = title;
  element.addEventListener("click", onClick);
  return element;
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

function clipName(uri) {
  const element = document.createElement("span");
  element.className = "clip-name";
  element.textContent = fileName(uri);
  element.title = uri;
  return element;
}

function showStatus(view, message, isError = false) {
  const element = $(`#${view}-status`);
  element.textContent = message;
  element.classList.toggle("error", isError);
  if (!isError) $(`#${view}-retry`).hidden = true;
}

// A failure with a Retry button; "Search failed:" only before the service's own words.
function showFailure(view, error, retry, prefix) {
  const message = error instanceof ServiceDown || !prefix ? error.message : `${prefix}: ${error.message}`;
  showStatus(view, message, true);
  const again = $(`#${view}-retry`);
  again.hidden = false;
  again.onclick = () => {
    again.hidden = true;
    retry();
  };
}

async function maxSeconds() {
  if (!limits) limits = await getJson("/limits").catch(() => null);
  return limits ? limits.max_seconds : 600;
}

function clipPeaks(clipId, points) {
  const key = `${clipId}:${points}`;
  if (!peaksCache.has(key)) {
    const answer = getJson(`/peaks/${clipId}?points=${points}`);
    answer.catch(() => peaksCache.delete(key));
    peaksCache.set(key, answer);
  }
  return peaksCache.get(key);
}

// ---- the query: a file, a recording or an indexed clip, and the region searched ----

function showQuery(name, source) {
  const queryPlayer = $("#query-player");
  if (queryPlayer.src.startsWith("blob:")) URL.revokeObjectURL(queryPlayer.src);
  queryPlayer.src = source;
  $("#query-name").textContent = name;
  $("#query").hidden = false;
  $("#region-info").textContent = "Reading the clip…";
  $("#query-wave").dataset.drawn = "";
  search.region = null;
  search.judgments.clear();
}

async function useAudio(file) {
  const query = { kind: "audio", name: file.name, file, samples: null, duration: null };
  search.query = query;
  showQuery(file.name, URL.createObjectURL(file));
  try {
    query.samples = await decodeMono(file);
    query.duration = query.samples.length / RATE;
  } catch {
    query.samples = null; // the service decodes it instead; no waveform, no region
  }
  if (search.query !== query) return;
  await drawQuery();
  return runSearch();
}

async function useClip(clipId, uri) {
  const query = { kind: "clip", clipId, name: fileName(uri), duration: null, peaks: null };
  search.query = query;
  showQuery(query.name, `/audio/${clipId}`);
  const searched = runSearch();
  try {
    const outline = await clipPeaks(clipId, 600);
    if (search.query !== query) return searched;
    Object.assign(query, { peaks: outline.peaks, duration: outline.seconds });
    await drawQuery();
  } catch {
    $("#region-info").textContent = "";
  }
  return searched;
}

async function drawQuery() {
  const query = search.query;
  const canvas = $("#query-wave");
  const info = $("#region-info");
  if (!query.duration) {
    canvas.hidden = true;
    info.textContent = "(this browser cannot decode it: the service searches the whole file)";
    return;
  }
  canvas.hidden = false;
  if (query.samples && !query.peaks) query.peaks = peaksOf(query.samples, 1200);
  drawWave(canvas, query.peaks, query.duration, search.region);
  const max = await maxSeconds();
  const [start, end] = search.region || [0, query.duration];
  const cut = end - start > max ? `; only its first ${max} s are searched` : "";
  info.textContent = search.region
    ? `Searching ${span(start, end)} of ${seconds(query.duration)}${cut}`
    : `All ${seconds(query.duration)}${cut}; drag on the waveform to search a part`;
  $("#whole-clip").hidden = !search.region;
}

// Dragging across the query's waveform chooses the region; a click plays from there.
function setUpRegionSelection() {
  const canvas = $("#query-wave");
  let anchor = null;
  let dragged = false;
  canvas.addEventListener("pointerdown", (event) => {
    if (!search.query || !search.query.duration) return;
    anchor = { time: timeAt(canvas, event, search.query.duration), x: event.clientX };
    dragged = false;
    canvas.setPointerCapture(event.pointerId);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!anchor) return;
    if (Math.abs(event.clientX - anchor.x) < 4 && !dragged) return;
    dragged = true;
    const time = timeAt(canvas, event, search.query.duration);
    search.region = [Math.min(anchor.time, time), Math.max(anchor.time, time)];
    drawWave(canvas, search.query.peaks, search.query.duration, search.region);
  });
  canvas.addEventListener("pointerup", (event) => {
    if (!anchor) return;
    anchor = null;
    if (dragged) {
      drawQuery();
      runSearch();
    } else {
      const queryPlayer = $("#query-player");
      queryPlayer.currentTime = timeAt(canvas, event, search.query.duration);
      queryPlayer.play();
    }
  });
  $("#whole-clip").addEventListener("click", () => {
    search.region = null;
    drawQuery();
    runSearch();
  });
}

// ---- searching ----

// limit, the duration range and the judgments as the flow's parameters; empty fields left out.
function searchParameters() {
  const parameters = { limit: Number($("#limit").value) || 10 };
  for (const [name, id] of [["min_duration", "#min-duration"], ["max_duration", "#max-duration"]]) {
    const value = $(id).value;
    if (value !== "") parameters[name] = Number(value);
  }
  for (const verdict of ["like", "unlike"]) {
    const ids = [...search.judgments].filter(([, v]) => v === verdict).map(([id]) => id);
    if (ids.length) parameters[verdict] = ids;
  }
  return parameters;
}

// The search request for the query: the documents answered, and the seconds to add to the
// query's times in them (the page uploads only the region, which starts at 0 s for the service).
async function request(query, parameters) {
  const region = search.region;
  if (query.kind === "clip") {
    const item = { clip_id: query.clipId };
    if (region) [item.start, item.end] = region;
    return { docs: await post("search", [item], parameters), offset: 0 };
  }
  const form = new FormData();
  let offset = 0;
  if (query.samples) {
    // Only what the service would search travels: the region, or the first max_seconds, as
    // 16 kHz mono, whatever the file's size, rate and channels.
    const [start, end] = region || [0, query.duration];
    const first = Math.round(start * RATE);
    const last = Math.min(Math.round(end * RATE), first + Math.round((await maxSeconds()) * RATE));
    form.append("file", wavBlob(query.samples.subarray(first, last)), query.name);
    offset = start;
  } else {
    form.append("file", query.file, query.name);
    if (region) [["start", region[0]], ["end", region[1]]].forEach(([k, v]) => form.append(k, v));
  }
  for (const [name, value] of Object.entries(parameters)) {
    form.append(name, Array.isArray(value) ? value.join(",") : value);
  }
  return { docs: await upload("/upload/search", form), offset };
}

function clearResults() {
  $("#results").hidden = true;
  $("#results").tBodies[0].replaceChildren();
  $("#judge-bar").hidden = true;
}

async function runSearch() {
  const query = search.query;
  if (!query) {
    showStatus("search", "Choose, drop or record an audio clip first", true);
    return;
  }
  const seq = ++search.seq;
  const startedAt = performance.now();
  showStatus("search", "Searching…");
  $("#results").classList.add("stale");
  try {
    const { docs, offset } = await request(query, searchParameters());
    if (seq !== search.seq) return;
    const [doc] = docs;
    if (doc.status === "error") throw new Error(doc.error);
    await showResults(doc, offset, startedAt, seq);
  } catch (error) {
    if (seq !== search.seq) return;
    clearResults();
    showFailure("search", error, runSearch, "Search failed");
  }
}

function resultsTitle(query) {
  const region = search.region ? ` (${span(...search.region)})` : "";
  const judged = search.judgments.size ? `, refined by ${search.judgments.size} judged` : "";
  return `${query.kind === "clip" ? "More like" : "Most similar to"} ${query.name}${region}${judged}`;
}

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

async function showResults(doc, offset, startedAt, seq) {
  const matches = doc.matches || [];
  const lengths = await durations(matches.map((m) => m.clip_id));
  if (seq !== search.seq) return;
  const table = $("#results");
  const body = table.tBodies[0];
  body.replaceChildren();
  matches.forEach((match, i) => {
    const row = body.insertRow();
    row.dataset.clipId = match.clip_id;
    if (match.judged === "like" && !search.judgments.has(match.clip_id)) {
      search.judgments.set(match.clip_id, "like");
    }
    cell(row, String(i + 1), "number");
    cell(row, match.score.toFixed(3), "number score");
    const audio = player(match.clip_id, match.start);
    const name = cell(row, clipName(match.uri));
    name.append(clipWave(match, audio));
    cell(row, seconds(lengths.get(match.clip_id)), "number");
    const matched = cell(row, span(match.start, match.end), "matched");
    if (match.query_end > match.query_start) {
      const part = document.createElement("span");
      part.className = "query-span";
      part.dataset.start = String(match.query_start + offset);
      part.dataset.end = String(match.query_end + offset);
      part.textContent = `query ${span(match.query_start + offset, match.query_end + offset)}`;
      matched.append(part);
    }
    cell(row, audio);
    const actions = cell(row, "", "actions");
    actions.append(
      button("Like", "judge like", () => judge(match.clip_id, "like"), "More like this one"),
      button("Not", "judge unlike", () => judge(match.clip_id, "unlike"), "Not like this one"),
      button("More like this", "more-like-this", () => moreLikeThis(match.clip_id, match.uri)),
    );
  });
  $("#results-title").textContent = resultsTitle(search.query);
  table.classList.remove("stale");
  table.hidden = false;
  $("#judge-bar").hidden = matches.length === 0;
  markJudged();
  const elapsed = ((performance.now() - startedAt) / 1000).toFixed(1);
  const note = doc.note ? ` (${doc.note})` : "";
  showStatus("search", matches.length ? `${matches.length} clips in ${elapsed} s${note}` : "No clip matched");
}

// A result's outline with its matched segment shaded; a click plays the clip from there.
function clipWave(match, audio) {
  const canvas = document.createElement("canvas");
  canvas.className = "clip-wave";
  canvas.title = "Click to play from here";
  let duration = null;
  clipPeaks(match.clip_id, 240)
    .then((outline) => {
      duration = outline.seconds;
      requestAnimationFrame(() => drawWave(canvas, outline.peaks, duration, [match.start, match.end]));
    })
    .catch(() => canvas.remove());
  canvas.addEventListener("click", (event) => {
    if (!duration) return;
    audio.currentTime = timeAt(canvas, event, duration);
    audio.play();
  });
  return canvas;
}

function judge(clipId, verdict) {
  if (search.judgments.get(clipId) === verdict) search.judgments.delete(clipId);
  else search.judgments.set(clipId, verdict);
  markJudged();
}

function markJudged() {
  for (const row of $("#results").tBodies[0].rows) {
    const verdict = search.judgments.get(Number(row.dataset.clipId));
    row.classList.toggle("judged-like", verdict === "like");
    row.classList.toggle("judged-unlike", verdict === "unlike");
    row.querySelector(".like").setAttribute("aria-pressed", String(verdict === "like"));
    row.querySelector(".unlike").setAttribute("aria-pressed", String(verdict === "unlike"));
  }
  const count = search.judgments.size;
  $("#refine").disabled = count === 0;
  $("#refine").textContent = count ? `Refine with ${count} judged` : "Refine";
  $("#judge-info").textContent = count
    ? ""
    : "Mark results Like or Not, then Refine to search again with them";
}

function moreLikeThis(clipId, uri) {
  if (location.hash !== "#search") location.hash = "#search";
  return useClip(clipId, uri);
}

// ---- recording ----

async function startMicrophone() {
  try {
    recording = await startRecording((level) => {
      $("#level").value = level;
    });
  } catch (error) {
    showStatus("search", `Cannot record (${error.message}): allow this page the microphone`, true);
    return;
  }
  $("#record").hidden = true;
  $("#stop-recording").hidden = false;
  $("#level").hidden = false;
  showStatus("search", "Recording… press Stop to search with it");
}

async function stopMicrophone() {
  const file = await recording.stop();
  recording = null;
  $("#record").hidden = false;
  $("#stop-recording").hidden = true;
  $("#level").hidden = true;
  return useAudio(file);
}

// ---- library view: a page of clips, filtered by name, kept in the URL ----

function route() {
  const [view, query] = location.hash.slice(1).split("?");
  return { view: VIEWS.includes(view) ? view : "search", params: new URLSearchParams(query || "") };
}

function goToLibrary(page, filter) {
  const params = new URLSearchParams();
  if (page > 1) params.set("page", String(page));
  if (filter) params.set("filter", filter);
  location.hash = `library${params.size ? `?${params}` : ""}`;
}

async function mapPoints() {
  if (!mapData) mapData = await getJson("/map");
  return mapData;
}

// One page of the clips whose file name holds ``filter``: their ids from /map, their facts
// from /clips.
async function filteredPage(filter, offset) {
  const data = await mapPoints();
  const needle = filter.toLowerCase();
  const ids = data.clip_ids
    .filter((_, i) => fileName(data.uris[i]).toLowerCase().includes(needle))
    .sort((a, b) => a - b);
  const wanted = ids.slice(offset, offset + PAGE_SIZE).map((id) => ({ clip_id: id }));
  const clips = wanted.length ? await post("clips", wanted, {}) : [];
  return { clips: clips.filter((c) => c.status !== "error"), total: ids.length };
}

async function plainPage(offset) {
  const [clips, [stats]] = await Promise.all([
    post("list", [], { offset, limit: PAGE_SIZE }),
    post("stats", [], {}),
  ]);
  return { clips, total: (stats && stats.stats && stats.stats.clips) || 0 };
}

async function loadLibrary(page, filter) {
  const offset = (page - 1) * PAGE_SIZE;
  const body = $("#library").tBodies[0];
  showStatus("library", "Loading…");
  try {
    const { clips, total } = filter ? await filteredPage(filter, offset) : await plainPage(offset);
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
      cell(row, "", "actions").append(
        button("More like this", "more-like-this", () => moreLikeThis(clip.clip_id, clip.uri)),
        button("Delete", "delete", () => deleteClip(clip, page, filter)),
      );
    }
    const last = offset + clips.length;
    $("#page-info").textContent = clips.length ? `Clips ${offset + 1}-${last} of ${total}` : "";
    $("#prev").disabled = page === 1;
    $("#next").disabled = last >= total;
    $("#prev").onclick = () => goToLibrary(page - 1, filter);
    $("#next").onclick = () => goToLibrary(page + 1, filter);
    const empty = filter
      ? `No clip's name contains "${filter}"`
      : "The library is empty: index a folder with python app.py index DIR";
    showStatus("library", total ? "" : empty);
  } catch (error) {
    body.replaceChildren();
    $("#page-info").textContent = "";
    showFailure("library", error, () => loadLibrary(page, filter), "Could not list the library");
  }
}

async function deleteClip(clip, page, filter) {
  const name = fileName(clip.uri);
  if (!window.confirm(`Delete ${name} (clip ${clip.clip_id}) from the index? The file stays.`)) return;
  try {
    const [doc] = await post("delete", [{ clip_id: clip.clip_id }], {});
    if (doc.status === "error") throw new Error(doc.error);
    mapData = null;
    peaksCache.clear();
    showStatus("library", `Deleted ${name}`);
    const emptied = $("#library").tBodies[0].rows.length === 1 && page > 1;
    if (emptied) goToLibrary(page - 1, filter);
    else await loadLibrary(page, filter);
  } catch (error) {
    showFailure("library", error, () => deleteClip(clip, page, filter), `Could not delete ${name}`);
  }
}

// ---- map view ----

async function loadMap() {
  showStatus("map", "Loading the map…");
  try {
    const data = await mapPoints();
    const counts = new Map();
    for (const uri of data.uris) counts.set(folderOf(uri), (counts.get(folderOf(uri)) || 0) + 1);
    const folders = [...counts.keys()].sort((a, b) => counts.get(b) - counts.get(a));
    const number = new Map(folders.map((f, i) => [f, i]));
    const colours = palette(folders.length);
    libraryMap.setPoints(data.x, data.y, data.uris.map((u) => number.get(folderOf(u))), colours);
    libraryMap.selected = -1;
    libraryMap.draw();
    $("#map-menu").hidden = true;
    const legend = $("#map-legend");
    legend.replaceChildren(
      ...folders.slice(0, 12).map((folder, i) => {
        const item = document.createElement("li");
        const dot = document.createElement("span");
        dot.style.background = colours[i].css;
        item.append(dot, `${fileName(folder) || folder} (${counts.get(folder)})`);
        item.title = folder;
        return item;
      }),
    );
    if (folders.length > 12) legend.append(`… and ${folders.length - 12} more folders`);
    const total = data.clip_ids.length;
    showStatus("map", total
      ? `${total} clips from ${folders.length} folders; clips that sound alike lie close. Hover for a name, click to play.`
      : "The library is empty: index a folder with python app.py index DIR");
  } catch (error) {
    showFailure("map", error, loadMap, "Could not draw the map");
  }
}

function setUpMap() {
  const canvas = $("#map");
  const tip = $("#map-tip");
  const menu = $("#map-menu");
  const pointAt = (event) => libraryMap.nearest(event.offsetX, event.offsetY);
  canvas.addEventListener("pointermove", (event) => {
    const i = pointAt(event);
    tip.hidden = i < 0;
    canvas.style.cursor = i < 0 ? "crosshair" : "pointer";
    if (i < 0) return;
    const [x, y] = libraryMap.where(i);
    tip.textContent = fileName(mapData.uris[i]);
    tip.style.left = `${Math.min(x + 10, canvas.clientWidth - tip.offsetWidth)}px`;
    tip.style.top = `${y + 10}px`;
  });
  canvas.addEventListener("pointerleave", () => {
    tip.hidden = true;
  });
  canvas.addEventListener("click", (event) => {
    const i = pointAt(event);
    tip.hidden = true;
    libraryMap.selected = i;
    libraryMap.draw();
    menu.hidden = i < 0;
    if (i < 0) return;
    const [clipId, uri] = [mapData.clip_ids[i], mapData.uris[i]];
    const [x, y] = libraryMap.where(i);
    $("#map-menu-name").textContent = fileName(uri);
    menu.dataset.clipId = String(clipId);
    menu.style.left = `${Math.max(0, Math.min(x + 12, canvas.clientWidth - menu.offsetWidth))}px`;
    menu.style.top = `${y + 12}px`;
    const mapPlayer = $("#map-player");
    mapPlayer.src = `/audio/${clipId}`;
    mapPlayer.play().catch(() => {});
    $("#map-more").onclick = () => {
      menu.hidden = true;
      mapPlayer.pause();
      moreLikeThis(clipId, uri);
    };
  });
  window.addEventListener("resize", () => {
    if (route().view === "map" && mapData) libraryMap.draw();
  });
}

// ---- wiring ----

function showView() {
  const { view, params } = route();
  for (const name of VIEWS) {
    $(`#${name}-view`).hidden = name !== view;
    $(`#nav-${name}`).classList.toggle("active", name === view);
  }
  window.scrollTo(0, 0); // "#library" names the table too: the header must stay in view
  if (view === "library") {
    const filter = params.get("filter") || "";
    if (document.activeElement !== $("#library-filter")) $("#library-filter").value = filter;
    loadLibrary(Math.max(1, Number(params.get("page")) || 1), filter);
  }
  if (view === "map") loadMap();
}

function setUp() {
  const dropZone = $("#drop-zone");
  const fileInput = $("#file");
  fileInput.addEventListener("change", () => {
    if (fileInput.files.length) useAudio(fileInput.files[0]);
  });
  dropZone.addEventListener("dragover", (event) => {
    event.preventDefault();
    dropZone.classList.add("dragging");
  });
  dropZone.addEventListener("dragleave", () => dropZone.classList.remove("dragging"));
  dropZone.addEventListener("drop", (event) => {
    event.preventDefault();
    dropZone.classList.remove("dragging");
    const files = event.dataTransfer.files;
    if (!files.length) return;
    fileInput.files = files; // the input names the dropped file, as if it had been chosen
    useAudio(files[0]);
  });
  $("#search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    runSearch();
  });
  $("#record").addEventListener("click", startMicrophone);
  $("#stop-recording").addEventListener("click", stopMicrophone);
  $("#refine").addEventListener("click", runSearch);
  $("#start-over").addEventListener("click", () => {
    search.judgments.clear();
    markJudged();
    runSearch();
  });
  let typing = null;
  $("#library-filter").addEventListener("input", (event) => {
    clearTimeout(typing);
    typing = setTimeout(() => goToLibrary(1, event.target.value.trim()), 250);
  });
  setUpRegionSelection();
  setUpMap();
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
