// The admin console: restart failed jobs, clean up old ones, and sweep orphaned files (a dry run
// first, then deleting what it found). Whatever destroys data asks first in a dialog.
import { announce, api, askToConfirm, formatBytes } from "./api.js";

const jobsStatus = document.getElementById("jobs-status");
const storageStatus = document.getElementById("storage-status");
const cleanupForm = document.getElementById("cleanup-form");
const dryRunButton = document.getElementById("sweep-dry-run");
const deleteButton = document.getElementById("sweep-delete");
const orphans = document.getElementById("orphans");
const orphanRows = document.getElementById("orphans-rows");
const orphansMore = document.getElementById("orphans-more");

// Parts of the page the server renders: after a change they are fetched again and swapped in,
// so the figures are drawn in one place only.
const RENDERED_SECTIONS = ["job-stats", "job-list", "storage-usage"];

const files = (n) => `${n.toLocaleString("en-US")} orphaned file${n === 1 ? "" : "s"}`;
const uploads = (n) => `${n.toLocaleString("en-US")} unfinished upload${n === 1 ? "" : "s"}`;

// What a sweep found: orphaned files, and multipart uploads abandoned for over a day.
function found(report) {
  const things = [];
  if (report.count || !report.uploadCount) things.push(files(report.count));
  if (report.uploadCount) things.push(uploads(report.uploadCount));
  return things.join(" and ");
}

const foundBytes = (report) => report.bytes + (report.uploadBytes ?? 0);

async function refresh() {
  const response = await fetch(window.location.href, { credentials: "same-origin" });
  if (!response.ok) return;
  const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
  for (const id of RENDERED_SECTIONS) {
    const replacement = fresh.getElementById(id);
    if (replacement) document.getElementById(id).replaceWith(document.adoptNode(replacement));
  }
}

// Run `action` with `button` disabled; say in `statusLine` what it answers, or what went wrong.
async function run(button, statusLine, busyText, action) {
  button.disabled = true;
  announce(statusLine, busyText);
  try {
    announce(statusLine, await action(), "ok");
  } catch (error) {
    announce(statusLine, error.message, "error");
  } finally {
    button.disabled = false;
  }
}

document.getElementById("restart-failed").addEventListener("click", (event) => {
  run(event.currentTarget, jobsStatus, "Restarting failed jobs…", async () => {
    const result = await api("POST", "/api/jobs/admin/restart-failed");
    await refresh();
    return result.message;
  });
});

cleanupForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const days = cleanupForm.elements.days.value;
  const confirmed = await askToConfirm({
    title: "Clean up old jobs?",
    text:
      `Jobs that ended more than ${days} days ago will be deleted with their outputs. ` +
      "Jobs still behind a gallery video are kept. This cannot be undone.",
    confirmLabel: "Delete old jobs",
  });
  if (!confirmed) return;
  run(cleanupForm.querySelector('button[type="submit"]'), jobsStatus, "Cleaning up…", async () => {
    const query = new URLSearchParams({ days });
    const result = await api("DELETE", `/api/jobs/admin/cleanup-old?${query}`);
    await refresh();
    return `${result.message}; ${formatBytes(result.freedBytes)} freed.`;
  });
});

function orphanRow(orphan) {
  const row = document.createElement("tr");
  for (const [text, className] of [
    [orphan.key, "key"],
    [formatBytes(orphan.size), "num"],
    [orphan.reason, ""],
  ]) {
    const cell = row.insertCell();
    cell.textContent = text;
    cell.className = className;
  }
  return row;
}

// What the last dry run found: the list, and a button to delete exactly that many.
function showOrphans(report) {
  const unfinished = (report.uploads ?? []).map((upload) =>
    orphanRow({ key: upload.key, size: upload.bytes, reason: "unfinished upload" }),
  );
  orphanRows.replaceChildren(...report.objects.map(orphanRow), ...unfinished);
  const nothing = report.count === 0 && !report.uploadCount;
  orphans.hidden = nothing;
  orphansMore.hidden =
    report.count <= report.objects.length && (report.uploadCount ?? 0) <= unfinished.length;
  orphansMore.textContent = "The first 100 of each are listed.";
  deleteButton.hidden = nothing;
  deleteButton.textContent = `Delete ${found(report)}`;
  deleteButton.dataset.found = found(report);
  deleteButton.dataset.bytes = String(foundBytes(report));
}

dryRunButton.addEventListener("click", () => {
  run(dryRunButton, storageStatus, "Looking for orphaned files…", async () => {
    const report = await api("POST", "/api/admin/storage/sweep?dryRun=true");
    showOrphans(report);
    if (!report.count && !report.uploadCount) {
      return "No orphaned files: everything stored is in use.";
    }
    return `Found ${found(report)}, ${formatBytes(foundBytes(report))} in all.`;
  });
});

deleteButton.addEventListener("click", async () => {
  const what = deleteButton.dataset.found;
  const confirmed = await askToConfirm({
    title: `Delete ${what}?`,
    text:
      `The ${what} found (${formatBytes(Number(deleteButton.dataset.bytes))}) will be ` +
      "deleted from storage, and any that became orphaned since. This cannot be undone.",
    confirmLabel: "Delete files",
  });
  if (!confirmed) return;
  await run(deleteButton, storageStatus, "Deleting orphaned files…", async () => {
    const report = await api("POST", "/api/admin/storage/sweep?dryRun=false");
    showOrphans({ count: 0, bytes: 0, objects: [] });
    await refresh();
    return `Deleted ${found(report)}; ${formatBytes(foundBytes(report))} freed.`;
  });
  // The delete button is hidden now: focus stays in the storage section.
  dryRunButton.focus();
});
