// My videos: edit a video's title, description and visibility in place, and delete one after
// confirming. Each change goes through the API and updates the list without a reload.
import { announce, api, askToConfirm } from "./api.js";

const list = document.getElementById("library");
const statusLine = document.getElementById("library-status");
const count = document.getElementById("library-count");

const capitalize = (word) => word.charAt(0).toUpperCase() + word.slice(1);

function confirmDelete(title) {
  return askToConfirm({
    title: "Delete this video?",
    text: `“${title}” will be removed from the gallery and from your videos. This cannot be undone.`,
    confirmLabel: "Delete",
  });
}

function setEditing(row, editing) {
  const button = row.querySelector('[data-action="edit"]');
  const form = row.querySelector(".edit-form");
  form.hidden = !editing;
  button.setAttribute("aria-expanded", String(editing));
  if (editing) {
    form.elements.title.focus();
    return;
  }
  form.reset();
  announce(form.querySelector(".message"), "");
  button.focus();
}

// Show the saved record in the row, and make it what the edit form resets to.
function showVideo(row, video) {
  row.querySelector('[data-field="title"]').textContent = video.title;
  for (const label of row.querySelectorAll("button .visually-hidden")) {
    label.textContent = ` “${video.title}”`;
  }
  const description = row.querySelector('[data-field="description"]');
  description.textContent = video.description;
  description.hidden = !video.description;
  const visibility = row.querySelector('[data-field="visibility"]');
  visibility.dataset.value = video.visibility;
  visibility.textContent = capitalize(video.visibility);
  const fields = row.querySelector(".edit-form").elements;
  fields.title.defaultValue = video.title;
  fields.description.defaultValue = video.description;
  for (const option of fields.visibility.options) {
    option.defaultSelected = option.value === video.visibility;
  }
}

async function save(row, form) {
  const button = form.querySelector('button[type="submit"]');
  const data = new FormData(form);
  const changes = {
    title: data.get("title").trim(),
    description: data.get("description"),
    visibility: data.get("visibility"),
  };
  button.disabled = true;
  try {
    const video = await api("PUT", `/api/gallery/videos/${row.dataset.videoId}`, changes);
    showVideo(row, video);
    setEditing(row, false);
    announce(statusLine, `Saved “${video.title}”.`, "ok");
  } catch (error) {
    announce(form.querySelector(".message"), error.message, "error");
  } finally {
    button.disabled = false;
  }
}

function countDown() {
  const total = Number(count.dataset.total) - 1;
  count.dataset.total = String(total);
  count.textContent = `${total.toLocaleString("en-US")} video${total === 1 ? "" : "s"}`;
  document.getElementById("library-empty").hidden = total > 0;
}

async function remove(row) {
  const title = row.querySelector('[data-field="title"]').textContent;
  if (!(await confirmDelete(title))) return;
  try {
    await api("DELETE", `/api/gallery/videos/${row.dataset.videoId}`);
  } catch (error) {
    announce(statusLine, error.message, "error");
    return;
  }
  // Focus would be lost with the row: it goes to the neighbour's first button instead.
  const neighbour = row.nextElementSibling ?? row.previousElementSibling;
  row.remove();
  countDown();
  announce(statusLine, `Deleted “${title}”.`, "ok");
  const next = neighbour?.querySelector('[data-action="edit"]');
  (next ?? document.getElementById("library-heading")).focus();
}

list?.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const row = button.closest(".library-item");
  const action = button.dataset.action;
  if (action === "edit") setEditing(row, button.getAttribute("aria-expanded") !== "true");
  else if (action === "cancel") setEditing(row, false);
  else if (action === "delete") remove(row);
});

list?.addEventListener("submit", (event) => {
  event.preventDefault();
  save(event.target.closest(".library-item"), event.target);
});
