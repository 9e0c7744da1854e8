// Large files go up as an S3 multipart upload through Uppy's S3 plugin, which speaks our
// /api/uploads/s3/multipart routes (`companionEndpoint`). A pause, a failed part or a lost
// connection keeps the parts already stored: on resume or retry Uppy lists them and sends the
// rest. The bundle is loaded only for such files, so small uploads never fetch it.
const UPPY_BUNDLE = "/static/vendor/uppy.min.mjs";

// The page shows upload errors itself and retries them: a console error is for the page's faults.
const LOGGER = { debug() {}, warn: console.warn, error: console.warn };

export class UploadCancelled extends Error {
  constructor() {
    super("The upload was cancelled.");
  }
}

// Upload `file` in parts; resolves to its storage key, ready for confirm. `view` shows progress
// (`progress(sent, total)`), a stopped upload (`stopped(message)`) and its retry (`retrying()`),
// and gets the controls (`controls({pause, retry, cancel})`, or null once the upload has ended).
export async function uploadInParts(file, contentType, view) {
  const { Uppy, AwsS3 } = await import(UPPY_BUNDLE);
  const uppy = new Uppy({ logger: LOGGER, restrictions: { maxNumberOfFiles: 1 } });
  uppy.use(AwsS3, { companionEndpoint: "/api/uploads", shouldUseMultipart: true });
  // The size lets the server refuse a file over its limit before any part is sent.
  const id = uppy.addFile({ name: file.name, type: contentType, data: file, meta: { size: file.size } });
  try {
    return await new Promise((resolve, reject) => follow(uppy, id, view, resolve, reject));
  } finally {
    view.controls(null);
    uppy.destroy(); // after success or cancel: nothing is left for it to abort
  }
}

function follow(uppy, id, view, resolve, reject) {
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
    // Refused before any part was stored (too large, not a video...): nothing to resume.
    if (!uppy.getFile(id).s3Multipart) return reject(new Error(startError(error)));
    view.stopped(stoppedMessage());
    if (!navigator.onLine) window.addEventListener("online", retry, { once: true });
  });
  view.controls({
    pause: () => uppy.pauseResume(id),
    retry,
    cancel: () => {
      window.removeEventListener("online", retry);
      uppy.cancelAll(); // aborts the multipart upload: the server deletes its parts
      reject(new UploadCancelled());
    },
  });
  start(() => uppy.upload());
}

function stoppedMessage() {
  return navigator.onLine
    ? "The upload stopped: press Retry to send the rest."
    : "The connection was lost: the upload goes on when it is back.";
}

// Uppy's S3 plugin reports only the HTTP status text of a refused request.
function startError(error) {
  const status = /failed: (.+)$/.exec(error?.message ?? "")?.[1];
  return status ? `The upload could not start: ${status}.` : error?.message || "The upload failed.";
}
