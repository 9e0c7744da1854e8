// The gallery's animated previews. A card's still thumbnail turns into its animated preview
// (`data-preview`) while a mouse or pen rests on the card or its link has keyboard focus, and
// back once neither holds. A touch never starts one: a finger scrolling past is no hover. A
// reader who asks for less motion keeps the still. The image keeps its box (width, height and
// `object-fit` in the stylesheet), so nothing moves when it swaps.
const reduceMotion = window.matchMedia("(prefers-reduced-motion: reduce)");
const HOVERING = new Set(["mouse", "pen"]);

function follow(image) {
  const link = image.closest("a");
  const still = image.getAttribute("src");
  const state = { hovered: false, focused: false };
  const update = () => {
    const animated = (state.hovered || state.focused) && !reduceMotion.matches;
    const url = animated ? image.dataset.preview : still;
    if (image.getAttribute("src") !== url) image.src = url;
  };
  const set = (key, value) => {
    state[key] = value;
    update();
  };
  link.addEventListener("pointerenter", (event) => {
    if (HOVERING.has(event.pointerType)) set("hovered", true);
  });
  link.addEventListener("pointerleave", () => set("hovered", false));
  link.addEventListener("focus", () => set("focused", true));
  link.addEventListener("blur", () => set("focused", false));
  reduceMotion.addEventListener("change", update);
}

for (const image of document.querySelectorAll(".video-card img[data-preview]")) follow(image);
