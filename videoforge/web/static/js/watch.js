// The watch page's player. It plays the HLS ladder with adaptive switching through hls.js where
// it runs (loaded by the page only when vendored), else the browser's own HLS, else the MP4
// renditions. Plyr (also vendored) draws the controls: quality, captions and speed menus,
// storyboard thumbnails over the seek bar, keyboard, fullscreen and picture-in-picture.
// `?player=mp4` (or `?player=native`) forces a fallback, so it can be checked in a browser that
// supports more. Tests read the mode, hls.js and Plyr from `window.videoforgePlayer`.
import { api, announce } from "./api.js";

const section = document.querySelector(".player[data-video-id]");
const video = document.getElementById("player-video");
const levelText = document.getElementById("player-level");
const statusLine = document.getElementById("player-status");
const HLS_TYPE = "application/vnd.apple.mpegurl";
// Signed URLs last `expiresIn`; a failure after this long is worth one fresh set of URLs.
const REFRESH_AFTER_MS = 60_000;
// Plyr's menu value for "let the player choose" (heights and rung numbers start at 1).
const AUTO = 0;

const PLYR_OPTIONS = {
  // Everything from this origin: Plyr's defaults point at its CDN, which the CSP refuses.
  iconUrl: "/static/vendor/plyr.svg",
  // Plyr loads this only when it drops a source (destroy, its own source setter), neither of
  // which the page does; an empty one fails without a request rather than reaching the CDN.
  blankVideo: "",
  controls: [
    "play-large",
    "play",
    "progress",
    "current-time",
    "duration",
    "mute",
    "volume",
    "captions",
    "settings",
    "pip",
    "airplay",
    "fullscreen",
  ],
  settings: ["captions", "quality", "speed"],
  // `update`: hls.js adds the playlist's subtitle tracks after Plyr is built.
  captions: { active: false, language: "auto", update: true },
  keyboard: { focused: true, global: false },
  // Control tooltips would be the buttons' only names, and Plyr hides the settings button's
  // while its menu is open: screen-reader labels instead.
  tooltips: { controls: false, seek: true },
  // A quality remembered from another video would name another ladder's rung.
  storage: { enabled: false },
};

const player = { mode: null, hls: null, plyr: null, fetchedAt: 0 };
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

// Plyr around the video, once: `quality` gives the menu's values (AUTO first), their labels and
// what choosing one does. Without a vendored Plyr the browser's own controls stay.
function buildPlyr(stream, quality) {
  if (player.plyr || !window.Plyr) return;
  video.controls = false;
  player.plyr = new window.Plyr(video, {
    ...PLYR_OPTIONS,
    quality: { default: AUTO, options: quality.options, forced: true, onChange: quality.onChange },
    i18n: { qualityLabel: { [AUTO]: "Auto", ...quality.labels } },
    previewThumbnails: { enabled: Boolean(stream.storyboardUrl), src: stream.storyboardUrl ?? "" },
  });
  markThumbnailsDecorative(player.plyr.elements.container);
}

// Plyr's storyboard thumbnails are images without alt text; the time beside them says what
// they show, so they are marked decorative as Plyr adds them.
function markThumbnailsDecorative(container) {
  const observer = new MutationObserver((changes) => {
    for (const change of changes) {
      for (const node of change.addedNodes) {
        if (node instanceof HTMLImageElement && !node.hasAttribute("alt")) node.alt = "";
      }
    }
  });
  observer.observe(container, { childList: true, subtree: true });
}

// The video's caption tracks (from the stream answer) as <track> elements, for the browser and
// Plyr: an MP4 carries no subtitles.
function addCaptionTracks(captions) {
  const tracks = (captions ?? []).map(({ language, label, url }) => {
    const track = document.createElement("track");
    Object.assign(track, { kind: "captions", srclang: language, src: url, label });
    return track;
  });
  video.replaceChildren(...tracks);
}

// Play, ignoring the refusal a browser gives to playback nobody asked for.
function play() {
  video.play().catch(() => {});
}

// Swap the source, keeping the position, the speed (a new source resets it) and whether it
// was playing.
function swapSource(url, at = video.currentTime, playing = !video.paused) {
  const rate = video.playbackRate;
  video.src = url;
  video.addEventListener(
    "loadedmetadata",
    () => {
      video.playbackRate = rate;
      if (at > 0) video.currentTime = at;
      if (playing) play();
    },
    { once: true },
  );
}

// The menu of an HLS ladder: Auto, then each rung by height, best first.
function ladderQuality(hls) {
  const heights = [...new Set(hls.levels.map((level) => level.height))].sort((a, b) => b - a);
  let chosen = AUTO;
  return {
    options: heights.length > 1 ? [AUTO, ...heights] : [],
    labels: {},
    onChange: (height) => {
      // Plyr's default once it is ready is Auto, which hls.js already does: no flush for it.
      if (height === chosen) return;
      chosen = height;
      const levels = player.hls.levels;
      player.hls.currentLevel =
        height === AUTO ? -1 : levels.findIndex((level) => level.height === height);
    },
  };
}

// hls.js would keep each subtitles rendition in a <track src="data:,WEBVTT">, which the CSP's
// media-src refuses. Told not to render (`renderTextTracksNatively: false`), it hands over the
// renditions and their cues instead: the page keeps them in text tracks of its own (made by
// addTextTrack, which needs no URL), where Plyr finds them, each beside the set of its cues'
// keys. Keyed by language and label, they outlive an hls.js instance replaced after a failure
// (such tracks cannot be removed).
const subtitleTracks = new Map();

function subtitleKey(rendition) {
  return `${rendition.lang ?? ""}|${rendition.name}`;
}

function keepSubtitles(hls) {
  const Hls = window.Hls;
  hls.on(Hls.Events.NON_NATIVE_TEXT_TRACKS_FOUND, (_event, data) => {
    for (const { kind, label, subtitleTrack: rendition } of data.tracks) {
      const key = rendition && subtitleKey(rendition);
      if (!key || subtitleTracks.has(key)) continue; // no in-band captions in our encodes
      const track = video.addTextTrack(kind, label, rendition.lang ?? "");
      subtitleTracks.set(key, { track, cues: new Set() });
    }
  });
  hls.on(Hls.Events.CUES_PARSED, (_event, data) => {
    const kept = data.subtitleTrack && subtitleTracks.get(subtitleKey(data.subtitleTrack));
    if (!kept) return;
    // A rendition chosen again is parsed again: each cue once, looked up by its key (comparing
    // each cue with every one kept would be quadratic, and a long track would freeze the page).
    for (const cue of data.cues) {
      const key = `${cue.startTime}|${cue.endTime}|${cue.text}`;
      if (kept.cues.has(key)) continue;
      kept.cues.add(key);
      kept.track.addCue(cue);
    }
  });
}

// hls.js loads one rendition's cues at a time: the one in the language Plyr shows, if any.
function loadShownSubtitles() {
  const { hls, plyr } = player;
  if (!hls || !plyr) return;
  const language = plyr.captions.active ? plyr.language : null;
  const index = language ? hls.subtitleTracks.findIndex((t) => t.lang === language) : -1;
  if (hls.subtitleTrack !== index) hls.subtitleTrack = index;
}

function followCaptions(plyr) {
  for (const event of ["languagechange", "captionsenabled", "captionsdisabled"]) {
    plyr.on(event, loadShownSubtitles);
  }
}

function startHlsJs(stream, at = 0, playing = false) {
  const Hls = window.Hls;
  // From the start (or where it was), also while the playlists still grow (EVENT): hls.js would
  // start a growing playlist at its live edge. Metadata cues would go in a track like those of
  // the subtitles (see keepSubtitles), and our encodes carry none.
  const hls = new Hls({
    startPosition: at > 0 ? at : 0,
    renderTextTracksNatively: false,
    enableID3MetadataCues: false,
    enableEmsgMetadataCues: false,
    enableDateRangeMetadataCues: false,
  });
  player.hls?.destroy();
  player.hls = hls;
  keepSubtitles(hls);
  hls.on(Hls.Events.MANIFEST_PARSED, () => {
    if (!player.plyr) {
      buildPlyr(stream, ladderQuality(hls));
      if (player.plyr) followCaptions(player.plyr);
    }
    loadShownSubtitles();
    // Only now: Plyr moves the video into its wrapper, and a video moved while its MediaSource
    // opens goes on to fetch the MediaSource's blob URL as a file (a console error).
    hls.attachMedia(video);
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
}

// The menu of MP4 renditions (or, natively, the ladder as Auto): rung n is `qualities[n - 1]`.
function renditionQuality(stream) {
  const names = stream.qualities ?? [];
  const options = names.map((_name, index) => index + 1);
  let chosen = AUTO;
  return {
    // An original upload has nothing to choose from.
    options: options.length ? [AUTO, ...options] : [],
    labels: Object.fromEntries(names.map((name, index) => [index + 1, qualityLabel(name)])),
    onChange: (value) => {
      // Plyr also "chooses" its default once it is ready: that rung already plays.
      if (value === chosen) return;
      chosen = value;
      switchRendition(value === AUTO ? null : names[value - 1]).catch(showError);
    },
  };
}

// Tracks for a video the browser plays itself, once: an MP4's, and the ladder's where the
// browser's HLS offers none of the playlist's subtitles (Chromium's does not; Safari's does).
function addTracksOnce(stream) {
  if (player.plyr) return;
  if (player.mode === "mp4") {
    addCaptionTracks(stream.captions);
    return;
  }
  const addIfNone = () => {
    if (video.textTracks.length === 0) addCaptionTracks(stream.captions);
  };
  video.addEventListener("loadedmetadata", addIfNone, { once: true });
}

function startElement(stream, at = 0, playing = false) {
  const url = player.mode === "native" ? stream.hlsUrl : stream.streamUrl;
  addTracksOnce(stream);
  buildPlyr(stream, renditionQuality(stream));
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

// Without hls.js a rung is its MP4; Auto is the best one, or natively the ladder again.
async function switchRendition(name) {
  const stream = await fetchStream(name);
  const ladder = name === null && player.mode === "native";
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
  video.addEventListener("error", () => {
    if (player.mode !== "hls.js") recover().catch(showError);
  });
  start(stream);
}

main().catch(showError);
