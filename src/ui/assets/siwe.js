// Sign-In with Ethereum on Gatehouse's sign-in page, with the browser's wallet
// (EIP-1193: window.ethereum). The server builds the EIP-4361 message for the wallet's
// address (POST /ui/sign-in/siwe/message: its site, chain, a single-use nonce); the
// wallet signs it with personal_sign (EIP-191); the page's form carries the message
// and the signature to POST /ui/sign-in/siwe, which answers as every sign-in form: the
// session cookie and a redirect, or the page with its error. No token reaches the
// page's script or storage.
"use strict";
(() => {
  const form = document.querySelector("form[data-siwe]");
  const wallet = window.ethereum;
  if (!form || !wallet || typeof wallet.request !== "function") return;
  const button = form.querySelector("button");
  const note = form.querySelector("[data-needs-wallet]");
  if (note) note.hidden = true;
  button.disabled = false;

  /** UTF-8 text as 0x-prefixed hex, as personal_sign takes it. */
  const hex = (text) =>
    "0x" + Array.from(new TextEncoder().encode(text), (b) => b.toString(16).padStart(2, "0")).join("");

  async function signIn() {
    const [address] = await wallet.request({ method: "eth_requestAccounts" });
    const body = new URLSearchParams({ csrf: form.elements.csrf.value, address });
    const res = await fetch("/ui/sign-in/siwe/message", { method: "POST", body, credentials: "same-origin" });
    if (!res.ok) throw new Error(`message: ${res.status}`);
    const { message } = await res.json();
    const signature = await wallet.request({ method: "personal_sign", params: [hex(message), address] });
    form.elements.message.value = message;
    form.elements.signature.value = signature;
    form.submit();
  }

  button.addEventListener("click", (event) => {
    event.preventDefault();
    signIn().catch(() => {
      const status = form.querySelector("[data-siwe-status]");
      if (status) status.textContent = status.dataset.message;
    });
  });
})();
