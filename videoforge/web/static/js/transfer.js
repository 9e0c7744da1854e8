// Every file goes to storage through Uppy's S3 plugin (@uppy/aws-s3 4, `endpoint` mode), which
// calls our /api/uploads routes: one PUT up to the multipart threshold, above it several parts at
// a time. A failed part is retried (RETRY_DELAYS); while the connection is lost Uppy waits and then
// sends the rest; after a pause or a Retry it lists the stored parts and sends only the others.
// The bundle is loaded on the first upload, so the page itself stays light.
import { ApiError, api, csrfToken } from "./api.js";

const UPPY_BUNDLE = "/static/vendor/uppy.min.mjs";
// Requests in flight at once, the part PUTs and the requests that sign them: as the CLI's 4 parts.
const CONCURRENT_REQUESTS = 4;
const PART_BYTES = 16 * 1024 ** 2; // the CLI's default part, or the threshold where smaller
const RETRY_DELAYS = [0, 1000, 3000, 5000]; // milliseconds before each new try of a failed part

// The page shows upload errors itself and retries them: a console error is for the page's faults.
const LOGGER = { debug() {}, warn: console.warn, error: console.warn };

export class UploadCancelled extends Error {
  constructor() {
    super("The upload was cancelled.");
  }
}

// The two requests that start an upload go through `api`, so that a refusal (too large, not a
// video, too many uploads) shows the server's words: Uppy's own client keeps only the status.
const starts = {
  createMultipartUpload: (file) =>
    api("POST", "/api/uploads/s3/multipart", { filename: file.name, type: file.type, size: file.size }),
  getUploadParameters: (file) => {
    const query = new URLSearchParams({ filename: file.name, type: file.type, "metadata[size]": file.size });
    return api("GET", `/api/uploads/s3/params?${query}`);
  },
};

// Upload `file`; resolves to its storage key, ready for confirm. Above `threshold` it goes in
// parts, and `view` gets the controls (`controls({pause, retry, cancel})`, null once it has ended)
// and shows a lost connection (`offline(lost)`), a stopped upload (`stopped(message)`) and its
// retry (`retrying()`); `view.progress(sent, total)` counts the bytes of every upload.
export async function sendFile(file, contentType, threshold, view) {
  const { Uppy, AwsS3 } = await import(UPPY_BUNDLE);
  const inParts = file.size > threshold;
  const uppy = new Uppy({ logger: LOGGER, restrictions: { maxNumberOfFiles: 1 } });
  uppy.use(AwsS3, {
    endpoint: "/api/uploads",
    headers: { "X-CSRF-Token": csrfToken() }, // for complete and abort, the cookie's requests
    limit: CONCURRENT_REQUESTS,
    retryDelays: RETRY_DELAYS,
    shouldUseMultipart: () => inParts,
    getChunkSize: () => Math.min(threshold, PART_BYTES),
    ...starts,
  });
  const id = uppy.addFile({ name: file.name, type: contentType, data: file });
  const connection = inParts ? watchConnection(view) : () => {};
  try {
    return await new Promise((resolve, reject) => follow(uppy, id, inParts, view, resolve, reject));
  } finally {
    connection();
    if (inParts) view.controls(null);
    uppy.destroy(); // after success or cancel: nothing is left for it to abort
  }
}

// Show a lost connection while parts go up (Uppy waits for it by itself); returns the unwatch.
function watchConnection(view) {
  const lost = () => view.offline(true);
  const back = () => view.offline(false);
  window.addEventListener("offline", lost);
  window.addEventListener("online", back);
  return () => {
    window.removeEventListener("offline", lost);
    window.removeEventListener("online", back);
  };
}

function follow(uppy, id, inParts, view, resolve, reject) {
  let run; // the upload run under way: a retry starts a new one
  const start = (next) => {
    run = next();
    run.catch(reject);
  };
  const retry = () => {
    window.removeEventListener("online", retry); // whether it came from there or from the button
    start(() => uppy.retryUpload(id));
  };
  uppy.on("upload-progress", (_, progress) => view.progress(progress.bytesUploaded, progress.bytesTotal));
  uppy.on("upload-retry", () => view.retrying());
  // Once the run is over: destroying Uppy before would abort the upload it still holds.
  uppy.on("upload-success", (_, response) => run.then(() => resolve(response.body.key)));
  uppy.on("upload-error", (_, error) => {
    // Refused at the start (nothing stored to resume), or a single PUT: the upload ends there.
    if (!inParts || error instanceof ApiError) return reject(new Error(failure(error)));
    view.stopped(stoppedMessage());
    if (!navigator.onLine) window.addEventListener("online", retry, { once: true });
  });
  if (inParts) {
    view.controls({
      pause: () => uppy.pauseResume(id),
      retry,
      cancel: () => {
        window.removeEventListener("online", retry);
        uppy.cancelAll(); // aborts the multipart upload: the server deletes its parts
        reject(new UploadCancelled());
      },
    });
  }
  start(() => uppy.upload());
}

function stoppedMessage() {
  return navigator.onLine
    ? "The upload stopped: press Retry to send the rest."
    : "The connection was lost: the upload goes on when it is back.";
}

// Why an upload ended: the API's words, else those of the storage that refused the PUT.
function failure(error) {
  const xhr = error?.source;
  if (!(xhr instanceof XMLHttpRequest)) return error?.message || "The upload failed.";
  if (xhr.status === 0) return "The upload failed: the connection was lost.";
  return storageError(xhr);
}

// The storage's own words for a refused PUT: JSON from the local backend, XML from S3.
function storageError(xhr) {
  try {
    const body = JSON.parse(xhr.responseText);
    if (body.error) return body.error;
  } catch {
    const match = /<Message>([^<]+)<\/Message>/.exec(xhr.responseText ?? "");
    if (match) return match[1];
  }
  return `The upload was refused (${xhr.status})`;
}
