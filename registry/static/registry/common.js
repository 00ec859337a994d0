/**
 * Shared behaviour of the people's pages: copy, print and download buttons, revealing a secret
 * as it is typed, and the helpers the register and status pages use to talk to the registry.
 *
 * Every text shown comes from the page itself (translated by Django): scripts hold no wording.
 * Nothing here contacts any origin but this site's.
 */

import { keepReceipt } from "./receipt.js";

/** The translated messages of a `[data-messages]` block inside `root`, by key. */
export function readMessages(root) {
  const messages = {};
  for (const block of root.querySelectorAll("[data-messages]")) {
    for (const span of block.querySelectorAll("[data-message]")) {
      messages[span.dataset.message] = span.textContent.trim().replace(/\s+/g, " ");
    }
  }
  return messages;
}

/** Replace `{name}` placeholders in a translated message. */
export function format(template, values) {
  return template.replace(/\{(\w+)\}/g, (whole, name) =>
    Object.hasOwn(values, name) ? String(values[name]) : whole,
  );
}

/** The CSRF token: from the csrftoken cookie, or from the page's form if cookies are hidden. */
export function csrfToken() {
  const cookie = document.cookie
    .split(";")
    .map((part) => part.trim())
    .find((part) => part.startsWith("csrftoken="));
  if (cookie) return decodeURIComponent(cookie.slice("csrftoken=".length));
  const field = document.querySelector("input[name=csrfmiddlewaretoken]");
  return field ? field.value : "";
}

/** An error the registry answered, with its translated message. */
export class RegistryAnswer extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * POST `body` (an object, or its JSON text) to this site's `url` with extra `headers`; resolve
 * with the JSON answer, or reject with a RegistryAnswer (an error the registry explained) or a
 * TypeError (the network failed).
 */
export async function postJson(url, body, headers = {}) {
  const response = await fetch(url, {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      Accept: "application/json",
      "X-CSRFToken": csrfToken(),
      ...headers,
    },
    body: typeof body === "string" ? body : JSON.stringify(body),
    credentials: "same-origin",
    cache: "no-store",
    referrerPolicy: "same-origin",
  });
  let answer = null;
  try {
    answer = await response.json();
  } catch {
    answer = null;
  }
  if (response.ok && answer) return answer;
  const error = answer && answer.error ? answer.error : {};
  throw new RegistryAnswer(response.status, error.code || "failed", error.message || "");
}

/** Replace the contents of `root` with the receipt `html` the registry rendered, and focus it. */
export function showReceipt(root, html) {
  const parsed = new DOMParser().parseFromString(html, "text/html");
  root.replaceChildren(...Array.from(parsed.body.childNodes, (node) => document.adoptNode(node)));
  window.scrollTo(0, 0);
  const heading = root.querySelector("[data-receipt-heading]");
  if (heading) heading.focus();
}

/** A random version 4 UUID (crypto.randomUUID is missing outside secure contexts). */
export function randomUuid() {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The last submission sent: its URL, JSON text and Idempotency-Key, reused by a retry. */
let lastAttempt = null;

/**
 * Send `body` to the form's submit URL and show the receipt it answers in `root`; on a refusal
 * or a network failure, show the message in `summary` and let the person try again. `submit` is
 * disabled and `sending` shown while the request is under way.
 */
export async function sendForReceipt({ root, form, summary, submit, sending, messages, body }) {
  submit.disabled = true;
  sending.hidden = false;
  const text = JSON.stringify(body);
  // A retry of the same submission (after a network failure, say) carries the same key, so the
  // registry answers what it answered the first time and opens no second case.
  if (!lastAttempt || lastAttempt.url !== form.dataset.submitUrl || lastAttempt.text !== text) {
    lastAttempt = { url: form.dataset.submitUrl, text, key: randomUuid() };
  }
  try {
    const answer = await postJson(form.dataset.submitUrl, text, {
      "Idempotency-Key": lastAttempt.key,
    });
    showReceipt(root, answer.receipt_html);
    keepReceipt(root, answer.receipt_html_by_language || {});
  } catch (error) {
    const message =
      error instanceof RegistryAnswer ? error.message || messages.failed : messages.network;
    showErrors(summary, [{ message }]);
    submit.disabled = false;
    sending.hidden = true;
  }
}

/**
 * Show `errors` ({message, target}) in an error summary and focus it (unless `focus` is false:
 * a refresh while the person fixes the form); each error with a target links to the field to
 * fix. The heading counts the points when the summary carries its two forms. An empty list
 * hides the summary.
 */
export function showErrors(summary, errors, { focus = true } = {}) {
  const heading = summary.querySelector("h2");
  const { headingOne, headingMany } = summary.dataset;
  if (heading && headingOne && headingMany) {
    heading.textContent =
      errors.length === 1 ? headingOne : format(headingMany, { count: errors.length });
  }
  const list = summary.querySelector("ul");
  list.replaceChildren();
  for (const { message, target } of errors) {
    const item = document.createElement("li");
    if (target) {
      const link = document.createElement("a");
      link.href = `#${target}`;
      link.textContent = message;
      link.addEventListener("click", (event) => {
        const field = document.getElementById(target);
        if (!field) return;
        event.preventDefault();
        const focusable = field.matches("input, select, textarea, button")
          ? field
          : field.querySelector("input, select, textarea, button");
        field.scrollIntoView({ block: "center" });
        (focusable || field).focus();
      });
      item.append(link);
    } else {
      item.textContent = message;
    }
    list.append(item);
  }
  summary.hidden = errors.length === 0;
  if (errors.length && focus) summary.focus();
}

async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // Fall through to the selection-based copy below.
    }
  }
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "print-only";
  document.body.append(area);
  area.select();
  let copied = false;
  try {
    copied = document.execCommand("copy");
  } catch {
    copied = false;
  }
  area.remove();
  return copied;
}

function onCopy(button) {
  const source = document.querySelector(button.dataset.copy);
  if (!source) return;
  copyText(source.textContent.trim()).then((copied) => {
    if (!copied) {
      // Leave the text selected so the person can copy it with the keyboard.
      const range = document.createRange();
      range.selectNodeContents(source);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      return;
    }
    const label = button.dataset.label || button.textContent;
    button.dataset.label = label;
    button.textContent = button.dataset.copiedLabel || label;
    window.setTimeout(() => {
      button.textContent = label;
    }, 2500);
  });
}

function onDownload(button) {
  const source = document.querySelector(button.dataset.download);
  if (!source) return;
  const blob = new Blob([source.textContent], { type: "text/plain;charset=utf-8" });
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = button.dataset.filename || "receipt.txt";
  document.body.append(link);
  link.click();
  link.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

document.addEventListener("click", (event) => {
  const target = event.target instanceof Element ? event.target : null;
  if (!target) return;
  const copy = target.closest("[data-copy]");
  if (copy) {
    onCopy(copy);
    return;
  }
  if (target.closest("[data-print]")) {
    window.print();
    return;
  }
  const download = target.closest("[data-download]");
  if (download) onDownload(download);
});

document.addEventListener("change", (event) => {
  const target = event.target;
  if (!(target instanceof HTMLInputElement)) return;
  if (target.matches("[data-print-secret]")) {
    const root = target.closest("[data-receipt-root]");
    if (root) root.classList.toggle("print-with-secret", target.checked);
  }
  if (target.matches("[data-reveal]")) {
    const field = document.querySelector(target.dataset.reveal);
    if (field) field.type = target.checked ? "text" : "password";
  }
});

function focusAnswer() {
  const answer = document.querySelector("[data-autofocus]");
  if (answer) answer.focus();
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", focusAnswer);
} else {
  focusAnswer();
}
