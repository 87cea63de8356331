// Passkeys on Gatehouse's hosted pages, without a library: the browser's own JSON
// helpers (PublicKeyCredential.parse*OptionsFromJSON, credential.toJSON()). Each form
// with data-passkey="sign-in", "second-factor", "sign-up" or "add" gets its button
// enabled (a form's data-options names where its ceremony's options come from); a ceremony
// ends by submitting that form (the credential in a hidden field), so the server
// answers as for any other form: a redirect, or the page with its error.
"use strict";
(() => {
  const supported =
    window.PublicKeyCredential &&
    typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function" &&
    typeof PublicKeyCredential.parseCreationOptionsFromJSON === "function";

  /** POSTs the form's CSRF token to `url`; the ceremony's options. */
  async function options(form, url) {
    const body = new URLSearchParams({ csrf: form.elements.csrf.value });
    const res = await fetch(url, { method: "POST", body, credentials: "same-origin" });
    if (!res.ok) throw new Error(`options: ${res.status}`);
    return res.json();
  }

  function finish(form, ceremony, credential) {
    form.elements.ceremony.value = ceremony;
    form.elements.credential.value = JSON.stringify(credential.toJSON());
    form.submit();
  }

  function failed(form, error) {
    if (error && error.name === "AbortError") return;
    const status = form.querySelector("[data-passkey-status]");
    if (status) status.textContent = status.dataset.message;
  }

  let pending = null;
  async function signIn(form, conditional) {
    if (pending) pending.abort();
    pending = new AbortController();
    const begun = await options(form, form.dataset.options || "/ui/passkey/options");
    const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(begun.publicKey);
    const request = { publicKey, signal: pending.signal };
    if (conditional) request.mediation = "conditional";
    const credential = await navigator.credentials.get(request);
    finish(form, begun.ceremony, credential);
  }

  async function create(form, url) {
    if (pending) pending.abort();
    const begun = await options(form, url);
    const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(begun.publicKey);
    const credential = await navigator.credentials.create({ publicKey });
    finish(form, begun.ceremony, credential);
  }

  for (const form of document.querySelectorAll("form[data-passkey]")) {
    const button = form.querySelector("button");
    const note = form.querySelector("[data-needs-js]");
    if (!supported) continue;
    if (note) note.hidden = true;
    button.disabled = false;
    const kind = form.dataset.passkey;
    button.addEventListener("click", (event) => {
      event.preventDefault();
      const run =
        kind === "sign-in" || kind === "second-factor"
          ? signIn(form, false)
          : create(form, kind === "sign-up" ? "/ui/sign-up/passkey/options" : "/ui/account/passkeys/options");
      run.catch((e) => failed(form, e));
    });
    if (kind === "sign-in" && PublicKeyCredential.isConditionalMediationAvailable) {
      PublicKeyCredential.isConditionalMediationAvailable().then((available) => {
        if (available) signIn(form, true).catch((e) => failed(form, e));
      });
    }
  }
})();
