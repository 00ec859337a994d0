/**
 * Keeping a receipt, and the secret shown with it, safe on the page that shows it.
 *
 * The receipt replaces the register (or status) form without a new address, so a reload or a
 * change of language would lose it, and with it a secret that is shown only once. So:
 *
 * - while a secret is on the page and the person has not said they saved it (the "I have saved
 *   my secret" box, or printing the receipt with the secret), leaving the page asks first;
 * - the language switch keeps the receipt: it sets the language as usual (the same form, sent
 *   in the background), then shows the receipt the registry already rendered in that language,
 *   and the page's header and footer in it.
 *
 * The secret stays in this page's memory and DOM only: never in a URL, a cookie, web storage or
 * the server's session.
 */

/** The receipt `root` shows, with the registry's renderings of it by language code. */
export function keepReceipt(root, byLanguage) {
  let saved = !root.querySelector("[data-case-secret]");
  let printSecret = false;

  function onBeforeUnload(event) {
    if (saved) return;
    event.preventDefault();
    // Older browsers show the warning only when returnValue is set.
    event.returnValue = "";
  }
  window.addEventListener("beforeunload", onBeforeUnload);

  root.addEventListener("change", (event) => {
    const target = event.target;
    if (!(target instanceof HTMLInputElement)) return;
    if (target.matches("[data-secret-saved]")) saved = target.checked;
    if (target.matches("[data-print-secret]")) printSecret = target.checked;
  });
  window.addEventListener("afterprint", () => {
    if (!printSecret) return;
    saved = true;
    const box = root.querySelector("[data-secret-saved]");
    if (box) box.checked = true;
  });

  function restoreChoices() {
    const box = root.querySelector("[data-secret-saved]");
    if (box) box.checked = saved;
    const print = root.querySelector("[data-print-secret]");
    if (print) {
      print.checked = printSecret;
      root.classList.toggle("print-with-secret", printSecret);
    }
  }

  async function switchLanguage(form, language) {
    const data = new FormData(form);
    data.set("language", language);
    let answer;
    try {
      const response = await fetch(form.action, {
        method: "POST",
        body: data,
        credentials: "same-origin",
        cache: "no-store",
        referrerPolicy: "same-origin",
      });
      if (!response.ok) return;
      answer = new DOMParser().parseFromString(await response.text(), "text/html");
    } catch {
      return; // Offline: the receipt stays as it is, in its language.
    }
    const lang = answer.documentElement.lang || language;
    for (const selector of [".site-header", ".site-footer"]) {
      const current = document.querySelector(selector);
      const fresh = answer.querySelector(selector);
      if (current && fresh) current.replaceWith(document.adoptNode(fresh));
    }
    document.documentElement.lang = lang;
    if (answer.title) document.title = answer.title;
    const receipt = new DOMParser().parseFromString(byLanguage[language], "text/html");
    root.replaceChildren(...Array.from(receipt.body.childNodes, (node) => document.adoptNode(node)));
    restoreChoices();
    const heading = root.querySelector("[data-receipt-heading]");
    if (heading) heading.focus();
  }

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.matches(".language-switcher")) return;
    const language = event.submitter ? event.submitter.value : "";
    if (!Object.hasOwn(byLanguage, language)) return; // An unknown language: switch as usual.
    event.preventDefault();
    switchLanguage(form, language);
  });
}
