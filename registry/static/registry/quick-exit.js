/**
 * The quick exit: the header's "Leave quickly" link, or Escape pressed three times in a row,
 * blanks the page at once and replaces it, in the browser's history too, with the neutral site
 * the operator chose (the link's /leave redirects there). Going back then skips this page.
 */

const PRESSES = 3;
const WITHIN_MS = 2000;

const link = document.querySelector("[data-quick-exit]");
let presses = [];

function leave() {
  document.title = "";
  document.body.replaceChildren();
  window.location.replace(link.href);
}

if (link) {
  link.addEventListener("click", (event) => {
    event.preventDefault();
    leave();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") {
      presses = [];
      return;
    }
    const now = event.timeStamp;
    presses = [...presses.filter((time) => now - time < WITHIN_MS), now];
    if (presses.length >= PRESSES) leave();
  });
  link.dataset.ready = "true";
}
