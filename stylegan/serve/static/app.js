// stylegan serve: the page. Plain JavaScript, no libraries, no build step; talks only to this server's /api.
//
// Stale images: every image request has a key (one per place on the page that shows an image). A new request
// for a key aborts the previous fetch (AbortController) and becomes the key's newest; a response is shown only
// while its request is still the key's newest, so a slow old answer never overwrites a newer image.
// Slider-driven requests also carry slot=PAGE-KEY, so the server drops a queued request that a newer one replaced
// (it answers 409 "superseded", which the page ignores).
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const PAGE_ID = Math.random().toString(36).slice(2, 10);
  const SEED_MAX = 4294967295;
  const RUN_POLL_MS = 3000;
  const JOB_POLL_MS = 400;
  const TEXT_DEBOUNCE_MS = 300;
  const BUSY_RETRIES = 4;
  const PLOT_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"];

  const state = {
    info: null,
    net: null,          // the selected entry of info.networks
    tab: "seeds",
    lodSet: false,      // false: omit lod (the server renders at the checkpoint's own lod, as the CLI does)
    cutoffSet: false,   // false: omit cutoff (the CLI's default --trunc-cutoff)
    seedResults: [],    // per grid cell: {seed, url, command}
    largeIndex: null,   // the grid cell shown in the large view
    job: null,          // {id, state, step, steps, timer, imageStep}
    run: {records: [], snapshots: [], keys: null, timer: null, name: ""},
  };

  // ---------------------------------------------------------------- status line

  class ApiError extends Error {
    constructor(message, parameter, status) {
      super(message);
      this.parameter = parameter || null;
      this.status = status;
    }
  }

  let statusTimer = null;
  function showStatus(text, kind = "") {
    const el = $("status");
    el.textContent = text;
    el.className = "status" + (kind ? " " + kind : "");
    clearTimeout(statusTimer);
    if (kind === "") statusTimer = setTimeout(() => { if (el.textContent === text) el.textContent = ""; }, 4000);
  }

  // Inputs named by an API error's "parameter" (the last one shown is outlined until the next success).
  const PARAMETER_INPUTS = {
    seed: "seed-start", psi: "psi", cutoff: "cutoff", noise: "noise", class: "class", lod: "lod",
    rows: "mix-rows", cols: "mix-cols", styles: "mix-styles", seeds: "interp-seeds", space: "interp-space",
    frames: "interp-frames", image: "project-file", steps: "project-steps", noise_steps: "project-noise-steps",
    loss: "project-loss", directions: "edit-direction", index: "edit-index", strength: "edit-strength",
    layers: "edit-layers",
  };
  let invalidInput = null;
  function showError(err) {
    const where = err.parameter ? ` (parameter ${err.parameter})` : "";
    showStatus(`Error: ${err.message}${where}`, "error");
    clearInvalid();
    const id = err.parameter && PARAMETER_INPUTS[err.parameter];
    if (id && $(id)) {
      invalidInput = $(id);
      invalidInput.setAttribute("aria-invalid", "true");
    }
  }
  function clearInvalid() {
    if (invalidInput) invalidInput.removeAttribute("aria-invalid");
    invalidInput = null;
  }
  function clearErrorStatus() {
    const status = $("status").classList;
    if (status.contains("error") || status.contains("busy")) showStatus("");
    clearInvalid();
  }

  async function errorOf(resp) {
    let body = null;
    try { body = await resp.json(); } catch (e) { /* not JSON */ }
    if (body && body.error) return new ApiError(body.error, body.parameter, resp.status);
    return new ApiError(`${resp.status} ${resp.statusText} from ${new URL(resp.url).pathname}`, null, resp.status);
  }

  async function getJson(path, params) {
    const resp = await fetch(apiUrl(path, params));
    if (!resp.ok) throw await errorOf(resp);
    return resp.json();
  }

  function apiUrl(path, params = {}) {
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") query.set(k, v);
    const text = query.toString();
    return text ? `${path}?${text}` : path;
  }

  // ---------------------------------------------------------------- latest-only image fetches

  const latest = new Map();  // key -> the newest request's {controller}
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // Fetch an image for `key`; resolves to {blob, command} or null when a newer request for the key replaced it.
  async function fetchLatest(key, path, params, {slot = true} = {}) {
    const previous = latest.get(key);
    if (previous) previous.controller.abort();
    const mine = {controller: new AbortController()};
    latest.set(key, mine);
    const current = () => latest.get(key) === mine;
    const url = apiUrl(path, slot ? {...params, slot: `${PAGE_ID}-${key}`} : params);
    try {
      for (let attempt = 0; ; attempt++) {
        // Renders are answered from the server's own cache; job images change under the same URL.
        const resp = await fetch(url, {signal: mine.controller.signal, cache: slot ? "default" : "no-store"});
        if (!current() || resp.status === 409) return null;
        if (resp.status === 503 && attempt < BUSY_RETRIES) {
          showStatus("server busy, retrying", "busy");
          await sleep(250 * (attempt + 1));
          if (!current()) return null;
          continue;
        }
        if (!resp.ok) throw await errorOf(resp);
        const blob = await resp.blob();
        if (!current()) return null;
        latest.delete(key);
        return {blob, command: resp.headers.get("X-Stylegan-Command") || ""};
      }
    } catch (err) {
      if (err.name === "AbortError" || !current()) return null;
      latest.delete(key);
      throw err;
    }
  }

  // Small results (a 32 px network's grid) are shown at a whole-number zoom so pixels stay square and sharp.
  const RESULT_WIDTH_PX = 640;
  const MAX_ZOOM = 8;
  function zoomToFit(img) {
    if (!img.classList.contains("result") || !img.naturalWidth) return;
    const zoom = Math.max(1, Math.min(MAX_ZOOM, Math.floor(RESULT_WIDTH_PX / img.naturalWidth)));
    img.style.width = `${img.naturalWidth * zoom}px`;
  }

  // Show a fetched blob in an <img>, releasing the object URL it showed before.
  const objectUrls = new WeakMap();
  function showBlob(img, blob) {
    const url = URL.createObjectURL(blob);
    const old = objectUrls.get(img);
    img.onload = () => zoomToFit(img);
    objectUrls.set(img, url);
    img.src = url;
    if (old) URL.revokeObjectURL(old);
    return url;
  }

  // Request an image for `key` and put it into `img` (and the command into `commandEl`), marking it loading.
  async function loadImage(key, img, path, params, {command = null, slot = true} = {}) {
    img.classList.add("loading");
    img.setAttribute("aria-busy", "true");
    try {
      const result = await fetchLatest(key, path, params, {slot});
      if (!result) return null;
      showBlob(img, result.blob);
      img.dataset.command = result.command;
      img.dataset.query = apiUrl(path, params);  // what the shown image is (tests and curious users read it)
      if (command) command.textContent = result.command;
      img.classList.remove("loading");
      img.removeAttribute("aria-busy");
      clearErrorStatus();
      return result;
    } catch (err) {
      img.classList.remove("loading");
      img.removeAttribute("aria-busy");
      showError(err);
      return null;
    }
  }

  // Run fn at most once per animation frame however many input events arrive (the slot does the rest).
  function perFrame(fn) {
    let pending = false;
    return () => {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => { pending = false; fn(); });
    };
  }
  function debounced(fn, ms = TEXT_DEBOUNCE_MS) {
    let timer = null;
    return () => { clearTimeout(timer); timer = setTimeout(fn, ms); };
  }

  // ---------------------------------------------------------------- shared sampling settings

  const conditional = () => state.net && state.net.label_size > 0;
  const psi = () => Number($("psi").value);

  function samplingParams({cutoff = false, noise = false, lod = false} = {}) {
    const params = {net: state.net.index, psi: psi().toFixed(2)};
    if (cutoff && state.cutoffSet) params.cutoff = $("cutoff").value;
    if (noise) params.noise = $("noise").value;
    if (conditional()) params.class = $("class").value;
    if (lod && state.lodSet) params.lod = Number($("lod").value).toFixed(2);
    return params;
  }

  function updateOutputs() {
    $("psi-value").textContent = psi().toFixed(2);
    $("cutoff-value").textContent = state.cutoffSet ? $("cutoff").value : "the CLI's default";
    $("lod-value").textContent = state.lodSet ? `${Number($("lod").value).toFixed(2)} (${lodResolution()} px)`
                                              : "the checkpoint's";
    $("edit-strength-value").textContent = Number($("edit-strength").value).toFixed(1);
  }
  function lodResolution() {
    return state.net.resolution >> Math.floor(Number($("lod").value));  // GeneratorConfig.resolution_at
  }

  // Grey out (and disable) the settings the shown tab does not use.
  function markUsedSettings() {
    let unused = 0;
    for (const field of document.querySelectorAll(".controls .field")) {
      const seedOnly = state.tab === "project" && "editSeedOnly" in field.dataset && editsProjection();
      const used = field.dataset.tabs.split(" ").includes(state.tab) && !seedOnly;
      field.classList.toggle("unused", !used);
      for (const input of field.querySelectorAll("input, select, button")) input.disabled = !used;
      if (!used && !field.hidden) unused++;
    }
    $("controls-hint").textContent = unused ? "Greyed settings do not apply to this view." : "";
  }

  function setupNetwork() {
    const net = state.net;
    const facts = [`${net.resolution} px`, `${net.num_layers} layers`, `z ${net.latent_size}`];
    if (net.label_size) facts.push(`${net.label_size} classes`);
    $("net-facts").textContent = facts.join(" · ") + ` · ${state.info.device}, ${state.info.precision}`;

    const cutoff = $("cutoff");
    cutoff.max = net.num_layers;
    cutoff.value = Math.min(8, net.num_layers);
    state.cutoffSet = false;

    $("class-field").hidden = !conditional();
    const classSelect = $("class");
    classSelect.replaceChildren(...Array.from({length: net.label_size}, (_, k) => new Option(String(k), String(k))));

    $("lod-field").hidden = !(net.max_lod > 0);
    $("lod").max = net.max_lod;
    $("lod").value = net.default_lod || 0;
    state.lodSet = false;

    const groups = Object.entries(net.layer_groups || {}).filter(([, range]) => Array.isArray(range));
    const rangeText = ([a, b]) => (a === b ? `layer ${a}` : `layers ${a}-${b}`);
    $("mix-styles").replaceChildren(
      ...groups.map(([name, range]) => new Option(`${name} (${rangeText(range)})`, name)),
      new Option("a layer range…", "range"));
    $("mix-from").max = $("mix-to").max = net.num_layers - 1;
    $("mix-to").value = Math.min(3, net.num_layers - 1);
    $("mix-range").hidden = groups.length > 0;
    if (!groups.length) $("mix-styles").value = "range";

    const directions = net.directions || [];
    $("edit-direction").replaceChildren(
      ...directions.map((d) => new Option(`${d.name} (${d.method}, ${d.count})`, d.name)));
    $("edit-layers").replaceChildren(
      new Option("the directions' own layers", ""),
      ...groups.map(([name, range]) => new Option(`${name} (${rangeText(range)})`, name)),
      new Option(`all (layers 0-${net.num_layers - 1})`, `0-${net.num_layers - 1}`));
    updateEditIndexLimit();
    updateOutputs();
    markUsedSettings();
  }

  // ---------------------------------------------------------------- tabs

  const TAB_NAMES = ["seeds", "mix", "interp", "project", "run"];
  const tabButton = (name) => $(`tab-${name}`);

  function showTab(name, {focus = false} = {}) {
    if (!TAB_NAMES.includes(name) || tabButton(name).hidden) name = "seeds";
    state.tab = name;
    for (const other of TAB_NAMES) {
      const selected = other === name;
      const button = tabButton(other);
      button.setAttribute("aria-selected", String(selected));
      button.tabIndex = selected ? 0 : -1;
      $(`panel-${other}`).hidden = !selected;
    }
    if (focus) tabButton(name).focus();
    if (location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
    markUsedSettings();
    refreshTab();
  }

  function refreshTab() {
    if (!state.net) return;
    if (state.tab === "seeds") refreshSeeds();
    else if (state.tab === "mix") refreshMix();
    else if (state.tab === "interp") refreshInterp();
    else if (state.tab === "project") refreshEdit();
    if (state.tab === "run") startRunPolling(); else stopRunPolling();
  }

  function setupTabs() {
    for (const name of TAB_NAMES) tabButton(name).addEventListener("click", () => showTab(name));
    document.querySelector("[role=tablist]").addEventListener("keydown", (event) => {
      const visible = TAB_NAMES.filter((n) => !tabButton(n).hidden);
      let i = visible.indexOf(state.tab);
      if (event.key === "ArrowRight") i = (i + 1) % visible.length;
      else if (event.key === "ArrowLeft") i = (i - 1 + visible.length) % visible.length;
      else if (event.key === "Home") i = 0;
      else if (event.key === "End") i = visible.length - 1;
      else return;
      event.preventDefault();
      showTab(visible[i], {focus: true});
    });
  }

  // ---------------------------------------------------------------- seeds

  function seedStart() {
    const value = Math.floor(Number($("seed-start").value));
    return Number.isFinite(value) ? Math.min(Math.max(value, 0), SEED_MAX) : 0;
  }
  const seedCount = () => Number($("seed-count").value);

  function buildSeedGrid() {
    const grid = $("seed-grid");
    const count = seedCount();
    while (grid.children.length > count) grid.lastChild.remove();
    while (grid.children.length < count) {
      const i = grid.children.length;
      const cell = document.createElement("button");
      cell.type = "button";
      cell.className = "seed-cell";
      const img = document.createElement("img");
      img.className = "seed";
      img.alt = "";
      const label = document.createElement("span");
      cell.append(img, label);
      cell.addEventListener("click", () => openLarge(i));
      grid.append(cell);
    }
    state.seedResults.length = count;
  }

  function refreshSeeds() {
    buildSeedGrid();
    const start = seedStart();
    const cells = $("seed-grid").children;
    for (let i = 0; i < cells.length; i++) {
      const seed = start + i;
      const cell = cells[i];
      const img = cell.querySelector("img");
      if (seed > SEED_MAX) {
        cell.hidden = true;
        continue;
      }
      cell.hidden = false;
      cell.querySelector("span").textContent = `seed ${seed}`;
      cell.setAttribute("aria-label", `seed ${seed}: open the large view`);
      img.alt = `seed ${seed}`;
      img.dataset.seed = String(seed);
      const params = {...samplingParams({cutoff: true, noise: true, lod: true}), seed};
      loadImage(`seed-${i}`, img, "/api/generate", params).then((result) => {
        if (!result) return;
        state.seedResults[i] = {seed, url: img.src, command: result.command};
        if (state.largeIndex === i) showLarge();
      });
    }
  }

  function movePage(direction) {
    const start = Math.min(Math.max(seedStart() + direction * seedCount(), 0), SEED_MAX);
    $("seed-start").value = start;
    refreshSeeds();
  }

  function openLarge(i) {
    state.largeIndex = i;
    showLarge();
    const dialog = $("seed-large");
    if (!dialog.open) dialog.showModal();
  }
  function showLarge() {
    const i = state.largeIndex;
    const cellImg = $("seed-grid").children[i].querySelector("img");
    const result = state.seedResults[i];
    $("seed-large-seed").textContent = cellImg.dataset.seed;
    $("seed-large-image").alt = `seed ${cellImg.dataset.seed}, large view`;
    // The cell's current image (its object URL stays alive while the cell shows it).
    if (result && String(result.seed) === cellImg.dataset.seed) {
      $("seed-large-image").src = result.url;
      $("seed-command").textContent = result.command;
    } else {
      $("seed-large-image").removeAttribute("src");
      $("seed-command").textContent = "(rendering…)";
    }
  }

  async function copyText(text) {
    try {
      await navigator.clipboard.writeText(text);
    } catch (err) {  // no clipboard permission (e.g. headless, plain http on another host): select and copy
      const area = document.createElement("textarea");
      area.value = text;
      document.body.append(area);
      area.select();
      document.execCommand("copy");
      area.remove();
    }
    showStatus("command copied");
  }

  function setupSeeds() {
    $("page-prev").addEventListener("click", () => movePage(-1));
    $("page-next").addEventListener("click", () => movePage(1));
    $("seed-start").addEventListener("input", debounced(refreshSeeds));
    $("seed-count").addEventListener("change", refreshSeeds);
    $("seed-close").addEventListener("click", () => $("seed-large").close());
    $("seed-large").addEventListener("close", () => { state.largeIndex = null; });
    $("seed-copy").addEventListener("click", () => copyText($("seed-command").textContent));
    document.addEventListener("keydown", (event) => {
      if (state.tab !== "seeds" || $("seed-large").open || event.target.matches("input, select, textarea")) return;
      if (event.key === "PageDown" || event.key === "]") { movePage(1); event.preventDefault(); }
      if (event.key === "PageUp" || event.key === "[") { movePage(-1); event.preventDefault(); }
    });
  }

  // ---------------------------------------------------------------- style mixing

  function mixStyles() {
    if ($("mix-styles").value !== "range") return $("mix-styles").value;
    const a = $("mix-from").value;
    const b = $("mix-to").value;
    return a === b ? a : `${a}-${b}`;
  }
  function refreshMix() {
    $("mix-range").hidden = $("mix-styles").value !== "range";
    const params = {...samplingParams({cutoff: true, noise: true}), rows: $("mix-rows").value.trim(),
                    cols: $("mix-cols").value.trim(), styles: mixStyles()};
    loadImage("mix", $("mix-image"), "/api/mix", params, {command: $("mix-command")});
  }

  function setupMix() {
    const soon = debounced(refreshMix);
    for (const id of ["mix-rows", "mix-cols", "mix-from", "mix-to"]) $(id).addEventListener("input", soon);
    $("mix-styles").addEventListener("change", refreshMix);
  }

  // ---------------------------------------------------------------- interpolation

  function refreshInterp() {
    const params = {...samplingParams({cutoff: true, noise: true}), seeds: $("interp-seeds").value.trim(), space: $("interp-space").value,
                    frames: $("interp-frames").value, format: $("interp-format").value};
    loadImage("interp", $("interp-image"), "/api/interpolate", params, {command: $("interp-command")});
  }

  function setupInterp() {
    const soon = debounced(refreshInterp);
    for (const id of ["interp-seeds", "interp-frames"]) $(id).addEventListener("input", soon);
    for (const id of ["interp-space", "interp-format"]) $(id).addEventListener("change", refreshInterp);
  }

  // ---------------------------------------------------------------- projection and editing

  const TERMINAL = new Set(["done", "failed", "cancelled"]);

  async function startProjection() {
    const file = $("project-file").files[0];
    if (!file) {
      showError(new ApiError("choose an image file to project first", "image"));
      return;
    }
    if (state.job && !TERMINAL.has(state.job.state)) cancelProjection();  // one projection at a time per page
    stopJob();
    const form = new FormData();
    form.append("image", file);
    form.append("net", state.net.index);
    form.append("space", $("project-space").value);
    form.append("steps", $("project-steps").value);
    form.append("noise_steps", $("project-noise-steps").value);
    form.append("seed", $("project-seed").value);
    form.append("loss", $("project-loss").value);
    if (conditional()) form.append("class", $("class").value);
    $("project-start").disabled = true;
    try {
      const resp = await fetch("/api/project", {method: "POST", body: form});
      if (!resp.ok) throw await errorOf(resp);
      const {job} = await resp.json();
      state.job = {id: job, state: "queued", step: 0, steps: Number($("project-steps").value), imageStep: -1,
                   timer: null, targetShown: false};
      $("project-cancel").disabled = false;
      clearErrorStatus();
      showStatus(`projection job ${job} started`);
      pollJob();
    } catch (err) {
      showError(err);
    } finally {
      $("project-start").disabled = false;
    }
  }

  async function pollJob() {
    const job = state.job;
    if (!job) return;
    try {
      const info = await getJson(`/api/jobs/${encodeURIComponent(job.id)}`);
      if (state.job !== job) return;
      Object.assign(job, {state: info.state, step: info.step, steps: info.steps});
      showProgress(info);
      if (!job.targetShown && info.state !== "queued") {
        job.targetShown = true;
        loadImage("project-target", $("project-target"), `/api/jobs/${encodeURIComponent(job.id)}/target`, {},
                  {slot: false});
      }
      if (info.step > 0 && info.step !== job.imageStep && info.state !== "failed") {  // step 0: no image yet
        job.imageStep = info.step;
        loadImage("project-image", $("project-image"), `/api/jobs/${encodeURIComponent(job.id)}/image`, {},
                  {slot: false});
      }
      if (TERMINAL.has(info.state)) return finishJob(info);
    } catch (err) {
      if (state.job !== job) return;
      showError(err);
      return finishJob({state: "failed"});
    }
    job.timer = setTimeout(pollJob, JOB_POLL_MS);
  }

  function showProgress(info) {
    const bar = $("project-progress");
    bar.max = Math.max(info.steps || 1, 1);
    bar.value = info.step || 0;
    const parts = [`${info.state}`, `step ${info.step || 0} / ${info.steps || "?"}`];
    if (Number.isFinite(info.psnr)) parts.push(`PSNR ${info.psnr.toFixed(2)} dB`);
    if (Number.isFinite(info.loss)) parts.push(`loss ${info.loss.toPrecision(4)}`);
    if (info.note) parts.push(info.note);
    if (info.error) parts.push(info.error);
    $("project-progress-text").textContent = parts.join(" · ");
  }

  function finishJob(info) {
    $("project-cancel").disabled = true;
    if (info.state === "failed") showError(new ApiError(`projection failed: ${info.error || "see the server log"}`));
    if (info.state === "cancelled") showStatus("projection cancelled");
    if (info.state === "done") {
      setDownload(`/api/jobs/${encodeURIComponent(state.job.id)}/ws`);
      $("edit-source").options[1].disabled = false;
      $("edit-source").value = "job";
      showStatus("projection done: edit it below, or download its ws");
      if (state.tab === "project") refreshEdit();
    }
  }

  // Forget the job (a new one starts, or the network changed): the editor goes back to a seed.
  function stopJob() {
    if (state.job) clearTimeout(state.job.timer);
    state.job = null;
    $("project-cancel").disabled = true;
    $("edit-source").options[1].disabled = true;
    $("edit-source").value = "seed";
    setDownload(null);
  }

  async function cancelProjection() {
    const job = state.job;
    if (!job) return;
    try {
      const resp = await fetch(`/api/jobs/${encodeURIComponent(job.id)}`, {method: "DELETE"});
      if (!resp.ok) throw await errorOf(resp);
      showStatus("cancelling…", "busy");
    } catch (err) {
      showError(err);
    }
  }

  function setDownload(href) {
    const link = $("project-download");
    if (href) {
      link.href = href;
      link.setAttribute("aria-disabled", "false");
    } else {
      link.removeAttribute("href");
      link.setAttribute("aria-disabled", "true");
    }
  }

  function selectedDirections() {
    return (state.net.directions || []).find((d) => d.name === $("edit-direction").value) || null;
  }
  function updateEditIndexLimit() {
    const d = selectedDirections();
    $("edit-index").max = d ? d.count - 1 : 0;
    if (d && Number($("edit-index").value) > d.count - 1) $("edit-index").value = d.count - 1;
  }

  // The editor works on the finished projection (its latents as they are: no psi, cutoff) or on a seed.
  const editsProjection = () => $("edit-source").value === "job" && state.job !== null && state.job.state === "done";

  function refreshEdit() {
    const fromJob = editsProjection();
    markUsedSettings();
    $("edit-seed-label").hidden = fromJob;
    if (!selectedDirections()) {
      $("edit-command").textContent = "";
      return;
    }
    const source = fromJob ? {job: state.job.id} : {...samplingParams({cutoff: true}), seed: $("edit-seed").value};
    const params = {net: state.net.index, ...source, directions: $("edit-direction").value,
                    index: $("edit-index").value, strength: Number($("edit-strength").value).toFixed(1),
                    layers: $("edit-layers").value};
    loadImage("edit", $("edit-image"), "/api/edit", params, {command: $("edit-command")});
  }
  const refreshEditSoon = perFrame(refreshEdit);

  function setupProject() {
    $("project-start").addEventListener("click", startProjection);
    $("project-cancel").addEventListener("click", cancelProjection);
    $("edit-strength").addEventListener("input", () => { updateOutputs(); refreshEditSoon(); });
    $("edit-direction").addEventListener("change", () => { updateEditIndexLimit(); refreshEdit(); });
    for (const id of ["edit-source", "edit-layers"]) $(id).addEventListener("change", refreshEdit);
    for (const id of ["edit-index", "edit-seed"]) $(id).addEventListener("input", debounced(refreshEdit));
  }

  // ---------------------------------------------------------------- run view

  function startRunPolling() {
    if (!state.info.run || state.run.timer) return;
    const tick = async () => {
      await pollRun();
      if (state.tab === "run") state.run.timer = setTimeout(tick, RUN_POLL_MS);
      else state.run.timer = null;
    };
    state.run.timer = setTimeout(tick, 0);
  }
  function stopRunPolling() {
    clearTimeout(state.run.timer);
    state.run.timer = null;
  }

  async function pollRun() {
    const run = state.run;
    try {
      const data = await getJson("/api/run", {since: run.records.length});
      run.name = data.name;
      run.records.push(...(data.records || []));
      run.keys = data.keys;  // the curves `stylegan plot` draws (the server names them)
      const grew = (data.records || []).length > 0 || !run.drawn;
      const oldCount = run.snapshots.length;
      run.snapshots = data.snapshots || [];
      if (grew) drawRun();
      updateSnapshots(oldCount);
    } catch (err) {
      showError(err);
    }
  }

  function drawRun() {
    const run = state.run;
    run.drawn = true;
    $("run-title").textContent = `Run ${run.name || ""}`;
    const records = run.records;
    const last = records[records.length - 1];
    $("run-facts").textContent = last
      ? `${records.length} ticks · ${fmt(last.kimg)} kimg · ${last.resolution ? last.resolution + " px" : ""}`
      : "no log records yet";
    const xs = records.map((r) => r.kimg).filter(Number.isFinite);
    const panels = [];
    if (xs.length) {
      const xRange = [Math.min(...xs), Math.max(...xs)];
      (state.run.keys || []).forEach((key, i) => {
        const points = records.filter((r) => Number.isFinite(r[key]) && Number.isFinite(r.kimg))
          .map((r) => [r.kimg, r[key]]);
        if (points.length) panels.push(plotPanel(key, points, xRange, PLOT_COLOURS[i % PLOT_COLOURS.length]));
      });
    }
    $("run-plot").replaceChildren(...panels);
    $("run-plot").dataset.panels = String(panels.length);
  }

  function fmt(v) {
    if (!Number.isFinite(v)) return String(v);
    const a = Math.abs(v);
    if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(2);
    return String(Number(v.toPrecision(4)));
  }

  // 1-2-5 ticks covering [lo, hi] (about `target` of them).
  function niceTicks(lo, hi, target = 5) {
    if (hi === lo) { hi = lo + 1; lo = lo - 1; }
    const rough = (hi - lo) / target;
    const power = Math.pow(10, Math.floor(Math.log10(rough)));
    const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough);
    const ticks = [];
    for (let t = Math.floor(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
    if (ticks[ticks.length - 1] < hi) ticks.push(ticks[ticks.length - 1] + step);
    return ticks;
  }

  const SVG_NS = "http://www.w3.org/2000/svg";
  function svg(tag, attrs = {}, text = null) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (text !== null) el.textContent = text;
    return el;
  }

  function plotPanel(key, points, xRange, colour) {
    const W = 360, H = 190, left = 52, right = 12, top = 24, bottom = 30;
    const ys = points.map((p) => p[1]);
    const yTicks = niceTicks(Math.min(...ys), Math.max(...ys), 4);
    const xTicks = niceTicks(xRange[0], xRange[1], 5);
    const [x0, x1] = [xTicks[0], xTicks[xTicks.length - 1]];
    const [y0, y1] = [yTicks[0], yTicks[yTicks.length - 1]];
    const px = (x) => left + (W - left - right) * (x - x0) / (x1 - x0 || 1);
    const py = (y) => H - bottom - (H - top - bottom) * (y - y0) / (y1 - y0 || 1);
    const last = points[points.length - 1][1];
    const root = svg("svg", {viewBox: `0 0 ${W} ${H}`, role: "img", "data-key": key,
                             "aria-label": `${key} over kimg, last value ${fmt(last)}`});
    for (const t of yTicks) {
      root.append(svg("line", {class: "grid", x1: left, x2: W - right, y1: py(t), y2: py(t)}));
      root.append(svg("text", {x: left - 4, y: py(t) + 4, "text-anchor": "end"}, fmt(t)));
    }
    for (const t of xTicks) {
      root.append(svg("line", {class: "grid", x1: px(t), x2: px(t), y1: top, y2: H - bottom}));
      root.append(svg("text", {x: px(t), y: H - bottom + 14, "text-anchor": "middle"}, fmt(t)));
    }
    root.append(svg("line", {class: "axis", x1: left, x2: left, y1: top, y2: H - bottom}));
    root.append(svg("line", {class: "axis", x1: left, x2: W - right, y1: H - bottom, y2: H - bottom}));
    root.append(svg("text", {x: W - right, y: H - 4, "text-anchor": "end"}, "kimg"));
    root.append(svg("text", {class: "title", x: left, y: 15}, `${key}  ${fmt(last)}`));
    const path = points.map((p) => `${px(p[0]).toFixed(1)},${py(p[1]).toFixed(1)}`).join(" ");
    root.append(svg("polyline", {class: "curve", points: path, stroke: colour}));
    if (points.length === 1) root.append(svg("circle", {cx: px(points[0][0]), cy: py(points[0][1]), r: 2.5, fill: colour}));
    addHoverReadout(root, points, px, py, W, colour);
    return root;
  }

  // Pointing at a panel marks the nearest logged point and writes its kimg and value in the panel's corner.
  function addHoverReadout(root, points, px, py, width, colour) {
    const marker = svg("circle", {r: 3.5, fill: colour, visibility: "hidden"});
    const readout = svg("text", {x: width - 12, y: 15, "text-anchor": "end", visibility: "hidden"});
    root.append(marker, readout);
    root.addEventListener("mousemove", (event) => {
      const box = root.getBoundingClientRect();
      const x = (event.clientX - box.left) * width / box.width;
      let best = points[0];
      for (const p of points) if (Math.abs(px(p[0]) - x) < Math.abs(px(best[0]) - x)) best = p;
      marker.setAttribute("cx", px(best[0]));
      marker.setAttribute("cy", py(best[1]));
      readout.textContent = `${fmt(best[0])} kimg: ${fmt(best[1])}`;
      marker.setAttribute("visibility", "visible");
      readout.setAttribute("visibility", "visible");
    });
    root.addEventListener("mouseleave", () => {
      marker.setAttribute("visibility", "hidden");
      readout.setAttribute("visibility", "hidden");
    });
  }

  function updateSnapshots(oldCount) {
    const snaps = state.run.snapshots;
    const slider = $("run-snapshot-index");
    slider.max = Math.max(snaps.length - 1, 0);
    slider.disabled = snaps.length < 2;
    if (!snaps.length) {
      $("run-snapshot-label").textContent = "none yet";
      return;
    }
    if (snaps.length !== oldCount && ($("run-follow").checked || oldCount === 0)) {
      slider.value = snaps.length - 1;
      showSnapshot();
    }
  }

  function showSnapshot() {
    const snap = state.run.snapshots[Number($("run-snapshot-index").value)];
    if (!snap) return;
    const when = snap.kimg === null ? "the training images" : `${fmt(snap.kimg)} kimg`;
    $("run-snapshot-label").textContent = `${snap.name} (${when})`;
    $("run-snapshot-image").alt = `snapshot grid: ${when}`;
    loadImage("run-snapshot", $("run-snapshot-image"), `/api/run/snapshots/${encodeURIComponent(snap.name)}`, {},
              {slot: false});
  }

  function setupRun() {
    $("run-snapshot-index").addEventListener("input", () => {
      $("run-follow").checked = Number($("run-snapshot-index").value) === state.run.snapshots.length - 1;
      showSnapshot();
    });
    $("run-follow").addEventListener("change", () => {
      if ($("run-follow").checked) updateSnapshots(-1);
    });
  }

  // ---------------------------------------------------------------- settings wiring and start

  function setupSettings() {
    const onSetting = perFrame(() => { updateOutputs(); refreshTab(); });
    $("psi").addEventListener("input", onSetting);
    $("cutoff").addEventListener("input", () => { state.cutoffSet = true; onSetting(); });
    $("lod").addEventListener("input", () => { state.lodSet = true; onSetting(); });
    $("lod-reset").addEventListener("click", () => {
      state.lodSet = false;
      $("lod").value = state.net.default_lod || 0;
      onSetting();
    });
    for (const id of ["noise", "class"]) $(id).addEventListener("change", onSetting);
    $("net").addEventListener("change", () => {
      state.net = state.info.networks[Number($("net").value)];
      stopJob();
      setupNetwork();
      refreshTab();
    });
  }

  async function start() {
    setupTabs();
    setupSeeds();
    setupMix();
    setupInterp();
    setupProject();
    setupRun();
    setupSettings();
    try {
      state.info = await getJson("/api/info");
    } catch (err) {
      showError(err);
      return;
    }
    const networks = state.info.networks;
    $("net").replaceChildren(...networks.map((n) => new Option(`${n.index}: ${n.name}`, String(n.index))));
    state.net = networks[0];
    tabButton("run").hidden = !state.info.run;
    setupNetwork();
    showTab(location.hash.slice(1) || "seeds");
  }

  start();
})();
