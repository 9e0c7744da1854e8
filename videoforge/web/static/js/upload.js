// The upload page: send the file straight to storage through Uppy (transfer.js: in one PUT, or in
// parts above the multipart threshold, resumable), confirm, then follow the transcoding job's
// server-sent events until it ends.
import { announce, api, formatBytes } from "./api.js";
import { UploadCancelled, sendFile } from "./transfer.js";

const form = document.getElementById("upload-form");
const statusLine = document.getElementById("upload-status");
const panel = document.getElementById("upload-progress-section");
const uploadBar = document.getElementById("upload-progress");
const uploadText = document.getElementById("upload-progress-text");
const jobGroup = document.getElementById("job-progress-group");
const jobBar = document.getElementById("job-progress");
const jobText = document.getElementById("job-progress-text");
const done = document.getElementById("upload-done");
const watchLink = document.getElementById("watch-link");
const controls = document.getElementById("upload-controls");
const pauseButton = document.getElementById("upload-pause");
const retryButton = document.getElementById("upload-retry");
const cancelButton = document.getElementById("upload-cancel");

// Rendered by the server: files above it go in parts.
const MULTIPART_THRESHOLD = Number(form.dataset.multipartThreshold);

const FINAL = new Set(["COMPLETED", "FAILED", "CANCELLED"]);
const STATUS_WORDS = {
  PENDING: "Queued",
  DOWNLOADING: "Fetching the upload",
  PROCESSING: "Transcoding",
  UPLOADING: "Saving the renditions",
  COMPLETED: "Ready",
  FAILED: "Failed",
  CANCELLED: "Cancelled",
};

function setBusy(busy) {
  for (const element of form.elements) element.disabled = busy;
}

function showUploadProgress(sent, total) {
  uploadBar.max = total;
  uploadBar.value = sent;
  const percent = total ? Math.floor((sent / total) * 100) : 0;
  uploadText.textContent = `${formatBytes(sent)} of ${formatBytes(total)} (${percent}%)`;
}

function showJob(job) {
  jobBar.value = job.progress;
  const words = STATUS_WORDS[job.status] ?? job.status;
  // A failed or cancelled job's percentage says nothing about the outcome.
  const stopped = job.status === "FAILED" || job.status === "CANCELLED";
  jobText.textContent = stopped ? words : `${words} (${job.progress}%)`;
}

// What an upload shows, and the controls one in parts hands over while it runs.
let partControls = null;

const uploadView = {
  progress: showUploadProgress,
  offline(lost) {
    announce(statusLine, lost ? "The connection was lost: the upload goes on when it is back." : "", "error");
  },
  stopped(message) {
    announce(statusLine, message, "error");
    pauseButton.hidden = true;
    retryButton.hidden = false;
  },
  retrying() {
    announce(statusLine, "");
    retryButton.hidden = true;
    pauseButton.hidden = false;
  },
  controls(actions) {
    partControls = actions;
    controls.hidden = actions === null;
    pauseButton.textContent = "Pause";
    pauseButton.hidden = false;
    retryButton.hidden = true;
  },
};

pauseButton.addEventListener("click", () => {
  const paused = partControls?.pause();
  if (paused === undefined) return;
  pauseButton.textContent = paused ? "Resume" : "Pause";
  announce(statusLine, paused ? "Paused: the parts sent so far are kept." : "", "info");
});
retryButton.addEventListener("click", () => partControls?.retry());
cancelButton.addEventListener("click", () => partControls?.cancel());

function formFields() {
  const data = new FormData(form);
  const transcode = data.getAll("transcode");
  return {
    title: data.get("title"),
    description: data.get("description"),
    visibility: data.get("visibility"),
    transcode: transcode.length ? transcode : null,
  };
}

function finish(message, kind, videoId) {
  announce(statusLine, message, kind);
  if (videoId !== undefined) {
    watchLink.href = `/videos/${videoId}`;
    done.hidden = false;
  }
  setBusy(false);
}

function endJob(job, videoId) {
  if (job.status === "COMPLETED") return finish("Your video is ready.", "ok", videoId);
  if (job.status === "CANCELLED") return finish("The job was cancelled.", "info");
  return finish(`Processing failed: ${job.errorText || "no reason given"}`, "error");
}

// Follow the job until it ends; the browser reconnects by itself after a dropped connection and
// the server then sends the current state again.
function followJob(jobId, videoId) {
  jobGroup.hidden = false;
  const events = new EventSource(`/api/jobs/${jobId}/events`);
  const onJob = (event) => {
    const job = JSON.parse(event.data);
    showJob(job);
    if (!FINAL.has(job.status)) return;
    events.close();
    endJob(job, videoId);
  };
  events.addEventListener("status", onJob);
  events.addEventListener("progress", onJob);
  events.addEventListener("error", () => {
    if (events.readyState === EventSource.CLOSED) {
      finish("Lost track of the job: see My videos for its status.", "error");
    }
  });
}

// Browsers type a file from the system's table: on Linux `.ts` is Qt Linguist and `.MTS` nothing.
const TRANSPORT_STREAM = /\.(ts|mts|m2ts)$/i;

function videoType(file) {
  if (file.type.startsWith("video/")) return file.type;
  if (TRANSPORT_STREAM.test(file.name)) return "video/mp2t";
  return file.type || "application/octet-stream";
}

async function upload() {
  const file = form.elements.file.files[0];
  const fields = formFields(); // before disabling: FormData skips disabled controls
  setBusy(true);
  announce(statusLine, "");
  panel.hidden = false;
  done.hidden = true;
  jobGroup.hidden = true;
  showUploadProgress(0, file.size);
  // An empty type is refused by the API with words that say why ("Only video uploads ...").
  const contentType = videoType(file);
  const s3Key = await sendFile(file, contentType, MULTIPART_THRESHOLD, uploadView);
  const video = await api("POST", "/api/upload/confirm", { s3Key, ...fields });
  if (video.jobId === undefined || video.jobId === null) {
    finish("Uploaded: the original is published as it is.", "ok", video.id);
  } else {
    announce(statusLine, "Uploaded: processing has started.", "info");
    followJob(video.jobId, video.id);
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  upload().catch((error) => {
    if (error instanceof UploadCancelled) return finish(error.message, "info");
    finish(error.message || "The upload failed.", "error");
  });
});
