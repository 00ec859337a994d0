/**
 * Inline errors beside the fields of a form: a message above each field to fix, linked to it
 * by aria-describedby, and aria-invalid on its inputs. The error summary (common.js) lists the
 * same messages; both are refreshed together as the person fixes each point.
 */

function describedBy(input, id, present) {
  const ids = (input.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean);
  const others = ids.filter((value) => value !== id);
  const next = present ? [id, ...others] : others;
  if (next.length) input.setAttribute("aria-describedby", next.join(" "));
  else input.removeAttribute("aria-describedby");
}

/** Where the message for `field` goes, and the inputs it describes. */
function placement(field) {
  if (field.matches("fieldset")) {
    const legend = field.querySelector("legend");
    return { parent: field, before: legend ? legend.nextSibling : field.firstChild, field };
  }
  const choice = field.closest(".choice");
  if (choice) return { parent: choice.parentNode, before: choice, field: choice };
  const picker = field.closest("[data-picker]");
  if (picker) return { parent: picker, before: picker.firstChild, field: picker };
  return { parent: field.parentNode, before: field, field };
}

/** Show `errors` ({message, target}) beside their fields in `form`, and clear the others. */
export function markFields(form, errors) {
  for (const old of form.querySelectorAll("[data-field-error]")) {
    const input = form.querySelectorAll(`[aria-describedby~="${old.id}"]`);
    for (const element of input) {
      describedBy(element, old.id, false);
      element.removeAttribute("aria-invalid");
    }
    old.remove();
  }
  for (const marked of form.querySelectorAll(".has-error")) marked.classList.remove("has-error");
  for (const { message, target } of errors) {
    const field = target ? form.querySelector(`#${CSS.escape(target)}`) : null;
    if (!field) continue;
    const where = placement(field);
    const error = document.createElement("p");
    error.className = "field-error";
    error.id = `${target}-error`;
    error.dataset.fieldError = "";
    error.textContent = message;
    where.parent.insertBefore(error, where.before);
    where.field.classList.add("has-error");
    const inputs = field.matches("input, select, textarea")
      ? [field]
      : Array.from(field.querySelectorAll("input, select, textarea"));
    for (const input of inputs) {
      input.setAttribute("aria-invalid", "true");
      describedBy(input, error.id, true);
    }
  }
}
