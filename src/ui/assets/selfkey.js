// Login with SelfKey on Gatehouse's sign-in page. The page side of LWS: the page hands
// the lws.init object (GET {selfkey.mount}/config: the site, the wallet's endpoints,
// the attributes asked for) to the SelfKey browser extension, whose wallet then signs
// the server's challenge and fetches its single-use login token (USER-TOKEN) itself.
// The token comes back to the page, which puts it in its form and posts it to
// POST /ui/sign-in/selfkey (CSRF-protected like every form of the pages): the server
// redeems it once and answers as every sign-in form does, with the session cookie and
// a redirect, or the second factor, or the page with its error. No token is kept in
// the page's storage.
//
// Two ways in, whichever the browser has: the lws.js library on the page
// (window.lws.init with an onAuthResponse), or the extension's content script, which
// speaks window messages: the page posts {type: "wp_init", meta: {id, src:
// "browser_lib"}, payload: config}; the extension answers under meta.src "content"
// with "wp_init" (its UI's address) and then "wp_auth" with {token} or an error.
"use strict";
(() => {
  const form = document.querySelector("form[data-selfkey]");
  if (!form) return;
  const button = form.querySelector("button");
  const status = form.querySelector("[data-selfkey-status]");
  const note = form.querySelector("[data-needs-js]");
  if (note) note.hidden = true;
  button.disabled = false;

  let waiting = null; // the id of our wp_init message, until the token or an error
  let timer = 0;

  function fail() {
    waiting = null;
    clearTimeout(timer);
    button.disabled = false;
    if (status) status.textContent = status.dataset.message;
  }

  /** The wallet's login token into the form, which signs the browser in. */
  function submit(token) {
    waiting = null;
    clearTimeout(timer);
    if (typeof token !== "string" || token === "") return fail();
    form.elements.token.value = token;
    form.submit();
  }

  /** lws.js's callback: `({token})`, or `(error, {token})` as its docs have it. */
  function onAuthResponse(first, second) {
    const response = first && typeof first === "object" && !(first instanceof Error) ? first : second;
    if (!response || (first instanceof Error)) return fail();
    submit(response.token ?? response.user);
  }

  window.addEventListener("message", (event) => {
    if (event.source !== window || event.origin !== window.location.origin) return;
    const msg = event.data;
    if (!waiting || !msg || !msg.meta || msg.meta.src !== "content") return;
    if (msg.type === "wp_init" && msg.meta.id === waiting) {
      // The extension is there: now the person picks a wallet and approves, in the
      // extension's own window, for as long as it takes.
      clearTimeout(timer);
      if (msg.error) return fail();
      if (msg.payload && typeof msg.payload.uiUrl === "string") {
        window.open(msg.payload.uiUrl, "lws", "popup,width=420,height=640");
      }
    } else if (msg.type === "wp_auth") {
      if (msg.error) return fail();
      onAuthResponse(msg.payload);
    }
  });

  async function start() {
    const res = await fetch(form.dataset.lwsConfig, { credentials: "same-origin" });
    if (!res.ok) throw new Error(`config: ${res.status}`);
    const config = await res.json();
    if (window.lws && typeof window.lws.init === "function") {
      window.lws.init({ ...config, meta: {}, onAuthResponse });
      return;
    }
    waiting = `gatehouse-${Date.now()}-${Math.random().toString(16).slice(2)}`;
    window.postMessage(
      { type: "wp_init", meta: { id: waiting, src: "browser_lib" }, payload: { ...config, meta: {} } },
      window.location.origin,
    );
    // No extension answered: say so rather than wait for ever.
    timer = setTimeout(() => { if (waiting) fail(); }, 5000);
  }

  button.addEventListener("click", (event) => {
    event.preventDefault();
    button.disabled = true;
    if (status) status.textContent = "";
    start().catch(fail);
  });
})();
