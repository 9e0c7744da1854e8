// Behaviour every page shares: the sign-out button.
import { api } from "./api.js";

document.addEventListener("click", async (event) => {
  const button = event.target.closest('[data-action="sign-out"]');
  if (!button) return;
  button.disabled = true;
  await api("DELETE", "/api/auth/session").catch(() => {});
  window.location.assign("/");
});
