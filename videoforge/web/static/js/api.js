// Calls to the JSON API from the pages: the session cookie authenticates, and every request
// that changes something carries the page's CSRF token.

export const csrfToken = () => document.querySelector('meta[name="csrf-token"]')?.content ?? "";

export class ApiError extends Error {
  constructor(status, message, details) {
    super(message);
    this.status = status;
    this.details = details;
  }
}

export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrfToken();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  const data = response.status === 204 ? {} : await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new ApiError(response.status, data.error || `Request failed (${response.status})`, data.details);
  }
  return data;
}

// Sign a browser in with a bearer token: the server moves it into an HttpOnly cookie.
export async function startSession(token) {
  return api("POST", "/api/auth/session", { token });
}

// Show a message in a live region, so screen readers announce it too.
export function announce(element, message, kind = "info") {
  element.textContent = message;
  element.dataset.kind = kind;
  element.hidden = !message;
}

// Ask in the page's confirmation dialog (the `confirm_dialog` macro). Resolves to true once the
// user confirms, false on Cancel or Escape.
export function askToConfirm({ title, text, confirmLabel }) {
  const dialog = document.getElementById("confirm-dialog");
  document.getElementById("confirm-dialog-title").textContent = title;
  document.getElementById("confirm-dialog-text").textContent = text;
  document.getElementById("confirm-dialog-ok").textContent = confirmLabel;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "confirm"), { once: true });
  });
}

// Decimal units, as the server's `bytes` template filter writes them.
export function formatBytes(n) {
  for (const [unit, scale] of [["TB", 1e12], ["GB", 1e9], ["MB", 1e6], ["kB", 1e3]]) {
    if (n >= scale) return `${(n / scale).toFixed(1)} ${unit}`;
  }
  return `${n} bytes`;
}
