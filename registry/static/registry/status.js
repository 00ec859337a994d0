/**
 * The status page's "add photos" form: photos hashed in the browser, then only their hashes and
 * qualities sent, with the case's reference and secret in the JSON body (never in a URL). The
 * answer, a signed receipt for the added photos, replaces the page's content.
 */

import { readMessages, sendForReceipt, showErrors } from "./common.js";
import { PhotoPicker } from "./photos.js";

const root = document.querySelector("[data-status-root]");
const form = root.querySelector("[data-add-form]");
const picker = new PhotoPicker(form.querySelector("[data-picker]"));
const messages = readMessages(form);
const summary = form.querySelector("[data-error-summary]");
const submit = form.querySelector("[data-submit]");
const sending = form.querySelector("[data-sending]");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const errors = [];
  if (picker.working > 0) {
    errors.push({ message: messages.busy, target: "more-photos" });
  } else if (picker.readyImages().length === 0 && picker.readyVideos().length === 0) {
    errors.push({ message: messages.no_photos, target: "more-photos" });
  }
  showErrors(summary, errors);
  if (errors.length) return;
  await sendForReceipt({
    root,
    form,
    summary,
    submit,
    sending,
    messages,
    body: {
      case_reference: form.elements.case_reference.value,
      case_secret: form.elements.case_secret.value,
      images: picker.readyImages(),
      ...(picker.readyVideos().length ? { videos: picker.readyVideos() } : {}),
    },
  });
});
