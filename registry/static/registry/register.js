/**
 * The register page: photos and videos hashed in the browser, the protection, the statements, a
 * summary; on submit, only the hashes, the qualities (a video's frame list, MD5 and length) and
 * the consent fields are sent, as JSON. The answer
 * (the reference, the secret shown once, the signed receipt) replaces the form.
 */

import { readMessages, sendForReceipt, showErrors } from "./common.js";
import { markFields } from "./field-errors.js";
import { PhotoPicker } from "./photos.js";

const root = document.querySelector("[data-register-root]");
const form = root.querySelector("[data-register-form]");
const picker = new PhotoPicker(form.querySelector("[data-picker]"));
const messages = readMessages(form);
const summary = form.querySelector("[data-error-summary]");
const submit = form.querySelector("[data-submit]");
const sending = form.querySelector("[data-sending]");

function checked(name) {
  const input = form.querySelector(`input[name="${name}"]:checked`);
  return input ? input.value : null;
}

function labelOf(input) {
  const label = input ? form.querySelector(`label[for="${input.id}"]`) : null;
  return label ? label.textContent.trim().replace(/\s+/g, " ") : "";
}

function updateSummary() {
  const { photos, videos } = picker.counts;
  form.querySelector("[data-summary-photos]").textContent = String(photos);
  const videosRow = form.querySelector("[data-summary-videos]");
  videosRow.textContent = String(videos);
  videosRow.parentElement.hidden = videos === 0;
  const scope = form.querySelector('input[name="scope"]:checked');
  if (scope) form.querySelector("[data-summary-scope]").textContent = labelOf(scope);
  const statements = form.querySelector("#depicted").checked && form.querySelector("#rights").checked;
  form.querySelector("[data-summary-statements]").textContent = statements
    ? messages.confirmed
    : messages.not_confirmed;
  const minor = checked("minor_depicted");
  if (minor) form.querySelector("[data-summary-minor]").textContent = messages[minor];
}

function problems() {
  const errors = [];
  if (picker.working > 0) {
    errors.push({ message: messages.busy, target: "photos" });
  } else if (picker.readyImages().length === 0 && picker.readyVideos().length === 0) {
    errors.push({ message: messages.no_photos, target: "photos" });
  }
  if (!checked("scope")) errors.push({ message: messages.scope, target: "scope" });
  if (!form.querySelector("#depicted").checked) {
    errors.push({ message: messages.depicted, target: "depicted" });
  }
  if (!form.querySelector("#rights").checked) {
    errors.push({ message: messages.rights, target: "rights" });
  }
  if (!checked("minor_depicted")) errors.push({ message: messages.minor, target: "minor" });
  return errors;
}

/** The `videos` field beside `images`, only when there are videos to send. */
function videosField(source) {
  const videos = source.readyVideos();
  return videos.length ? { videos } : {};
}

// Once the person has tried to send, the errors follow their corrections.
let attempted = false;

function refreshErrors() {
  if (!attempted) return;
  const errors = problems();
  showErrors(summary, errors, { focus: false });
  markFields(form, errors);
}

picker.onChange(() => {
  updateSummary();
  refreshErrors();
});
form.addEventListener("change", () => {
  updateSummary();
  refreshErrors();
});

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  attempted = true;
  const errors = problems();
  showErrors(summary, errors);
  markFields(form, errors);
  if (errors.length) return;
  await sendForReceipt({
    root,
    form,
    summary,
    submit,
    sending,
    messages,
    body: {
      scope: checked("scope"),
      attestations: {
        depicted_or_acting_for: form.querySelector("#depicted").checked,
        rights_to_register: form.querySelector("#rights").checked,
        minor_depicted: checked("minor_depicted") === "yes",
      },
      images: picker.readyImages(),
      ...videosField(picker),
    },
  });
});

updateSummary();
