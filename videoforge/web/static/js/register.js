// The registration page: create the account, sign it in, and open its library.
import { announce, api, startSession } from "./api.js";

const form = document.getElementById("register-form");
const statusLine = document.getElementById("register-status");
const confirmation = document.getElementById("register-confirm");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const data = new FormData(form);
  if (data.get("password") !== data.get("confirm")) {
    confirmation.setAttribute("aria-invalid", "true");
    announce(statusLine, "The passwords do not match.", "error");
    confirmation.focus();
    return;
  }
  confirmation.removeAttribute("aria-invalid");
  const button = form.querySelector('button[type="submit"]');
  button.disabled = true;
  announce(statusLine, "Creating your account…");
  try {
    const account = { username: data.get("username").trim(), password: data.get("password") };
    const { token } = await api("POST", "/api/auth/register", account);
    await startSession(token);
    window.location.assign("/me");
  } catch (error) {
    announce(statusLine, error.message, "error");
    button.disabled = false;
  }
});
