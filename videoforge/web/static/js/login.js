// The sign-in page: a password (local accounts) or a pasted bearer token becomes the session
// cookie, then the browser goes back to where it was sent from.
import { announce, api, startSession } from "./api.js";

const page = document.getElementById("login");
const statusLine = document.getElementById("login-status");

// Only a path on this site: "//host" and "/\host" would leave it (the server checks too).
function destination() {
  const next = page.dataset.next ?? "/";
  return /^\/(?![/\\])/.test(next) ? next : "/";
}

// Sign in with the token `tokenFor(formData)` answers when `form` is submitted.
function signInWith(form, tokenFor) {
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    announce(statusLine, "Signing in…");
    try {
      await startSession(await tokenFor(new FormData(form)));
      window.location.assign(destination());
    } catch (error) {
      announce(statusLine, error.message, "error");
      button.disabled = false;
      form.querySelector('[type="password"], textarea')?.select();
    }
  });
}

signInWith(document.getElementById("password-form"), async (data) => {
  const credentials = { username: data.get("username").trim(), password: data.get("password") };
  const { token } = await api("POST", "/api/auth/login", credentials);
  return token;
});

signInWith(document.getElementById("token-form"), async (data) => data.get("token").trim());
