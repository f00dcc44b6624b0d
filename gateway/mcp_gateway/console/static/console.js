// Copy buttons: <button class="copy" data-copy="ELEMENT_ID">. Served as a file so the
// Content-Security-Policy can forbid inline scripts.
"use strict";

function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    return navigator.clipboard.writeText(text);
  }
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "offscreen";
  document.body.appendChild(area);
  area.select();
  const ok = document.execCommand("copy");
  document.body.removeChild(area);
  return ok ? Promise.resolve() : Promise.reject(new Error("copy refused"));
}

function wireCopyButtons() {
  for (const button of document.querySelectorAll("button.copy[data-copy]")) {
    button.addEventListener("click", () => {
      const source = document.getElementById(button.dataset.copy);
      if (!source) return;
      copyText(source.textContent.trim()).then(
        () => { button.textContent = "Copied"; button.classList.add("done"); },
        () => { button.textContent = "Select and copy by hand"; }
      );
    });
  }
}

function markCurrentNav() {
  const path = window.location.pathname;
  for (const link of document.querySelectorAll("header nav a")) {
    const name = link.dataset.nav;
    const current = (name === "overview" && (path === "/console/" || path.startsWith("/console/profiles/")))
      || (name !== "overview" && path.startsWith("/console/" + name));
    if (current) link.classList.add("current");
  }
}

document.addEventListener("DOMContentLoaded", () => {
  wireCopyButtons();
  markCurrentNav();
});
