// The watch page's player. It plays the HLS ladder with adaptive switching through hls.js where
// it runs (loaded by the page only when vendored), else the browser's own HLS, else the MP4
// renditions; a quality menu picks a level. `?player=mp4` (or `?player=native`) forces a
// fallback, so it can be checked in a browser that supports more. Tests read the mode from
// `window.videoforgePlayer`.
import { api, announce } from "./api.js";

const section = document.querySelector(".player[data-video-id]");
const video = document.getElementById("player-video");
const menu = document.getElementById("player-quality");
const levelText = document.getElementById("player-level");
const statusLine = document.getElementById("player-status");
const HLS_TYPE = "application/vnd.apple.mpegurl";
// Signed URLs last `expiresIn`; a failure after this long is worth one fresh set of URLs.
const REFRESH_AFTER_MS = 60_000;

const player = { mode: null, hls: null, fetchedAt: 0 };
window.videoforgePlayer = player;

async function fetchStream(quality) {
  const query = quality ? `?quality=${encodeURIComponent(quality)}` : "";
  const stream = await api("GET", `/api/gallery/videos/${section.dataset.videoId}/stream${query}`);
  player.fetchedAt = Date.now();
  return stream;
}

// The best way this browser can play `stream`; `forced` names a fallback to use instead.
function chooseMode(stream, forced) {
  const hlsJs = Boolean(window.Hls && window.Hls.isSupported());
  const native = video.canPlayType(HLS_TYPE) !== "";
  if (!stream.hlsUrl || forced === "mp4") return "mp4";
  if (forced === "native" && native) return "native";
  if (hlsJs) return "hls.js";
  return native ? "native" : "mp4";
}

function qualityLabel(name) {
  return name.charAt(0).toUpperCase() + name.slice(1);
}

function fillMenu(options) {
  const items = options.map(([value, text]) => new Option(text, value));
  menu.replaceChildren(new Option("Auto", "auto"), ...items);
  menu.value = "auto";
  menu.disabled = options.length === 0;
  // An original upload has nothing to choose from.
  menu.parentElement.hidden = options.length === 0;
}

// Play, ignoring the refusal a browser gives to playback nobody asked for.
function play() {
  video.play().catch(() => {});
}

// Swap the source, keeping the position and whether it was playing.
function swapSource(url, at = video.currentTime, playing = !video.paused) {
  video.src = url;
  video.addEventListener(
    "loadedmetadata",
    () => {
      if (at > 0) video.currentTime = at;
      if (playing) play();
    },
    { once: true },
  );
}

function startHlsJs(stream, at = 0, playing = false) {
  const Hls = window.Hls;
  // From the start (or where it was), also while the playlists still grow (EVENT): hls.js would
  // start a growing playlist at its live edge.
  const hls = new Hls({ startPosition: at > 0 ? at : 0 });
  player.hls?.destroy();
  player.hls = hls;
  hls.on(Hls.Events.MANIFEST_PARSED, () => {
    // hls.js orders levels by bitrate, lowest first; a menu reads best first.
    const levels = hls.levels.map((level, index) => ({ index, height: level.height }));
    levels.sort((a, b) => b.height - a.height);
    fillMenu(levels.map(({ index, height }) => [String(index), `${height}p`]));
    if (playing) play();
  });
  hls.on(Hls.Events.LEVEL_SWITCHED, (_event, data) => {
    const level = hls.levels[data.level];
    const auto = hls.autoLevelEnabled ? " (auto)" : "";
    levelText.textContent = level ? `Playing ${level.height}p${auto}` : "";
  });
  hls.on(Hls.Events.ERROR, (_event, data) => {
    if (!data.fatal) return; // hls.js retries those itself
    if (data.type === Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
    else recover().catch(showError);
  });
  hls.loadSource(stream.hlsUrl);
  hls.attachMedia(video);
}

function startElement(stream, at = 0, playing = false) {
  const url = player.mode === "native" ? stream.hlsUrl : stream.streamUrl;
  fillMenu((stream.qualities ?? []).map((name) => [name, qualityLabel(name)]));
  levelText.textContent = stream.quality ? `Playing ${qualityLabel(stream.quality)}` : "";
  swapSource(url, at, playing);
}

function start(stream, at, playing) {
  if (player.mode === "hls.js") startHlsJs(stream, at, playing);
  else startElement(stream, at, playing);
}

// Signed URLs expire: after a failure, fetch new ones once and carry on where playback stopped.
async function recover() {
  if (Date.now() - player.fetchedAt < REFRESH_AFTER_MS) {
    announce(statusLine, "This video could not be played.", "error");
    return;
  }
  const at = video.currentTime;
  const playing = !video.paused;
  start(await fetchStream(), at, playing);
}

// hls.js switches levels itself; the others swap in the chosen MP4 (or, natively, the ladder).
async function switchQuality(value) {
  if (player.mode === "hls.js") {
    player.hls.currentLevel = value === "auto" ? -1 : Number(value);
    return;
  }
  const stream = await fetchStream(value === "auto" ? null : value);
  const ladder = value === "auto" && player.mode === "native";
  levelText.textContent = ladder ? "" : `Playing ${qualityLabel(stream.quality ?? "original")}`;
  swapSource(ladder ? stream.hlsUrl : stream.streamUrl);
}

function showError(error) {
  announce(statusLine, error.message || "Something went wrong.", "error");
}

async function main() {
  const stream = await fetchStream();
  player.mode = chooseMode(stream, new URLSearchParams(window.location.search).get("player"));
  section.dataset.mode = player.mode;
  menu.addEventListener("change", () => switchQuality(menu.value).catch(showError));
  video.addEventListener("error", () => {
    if (player.mode !== "hls.js") recover().catch(showError);
  });
  start(stream);
}

main().catch(showError);
