// orgplane: passkeys (WebAuthn) on the sign-in and two-factor pages. Progressive enhancement:
// forms marked data-passkey stay hidden where the browser has no WebAuthn, and the one-time
// code forms work without this file. The options come from the page (a data- attribute, so
// no inline script under the CSP); the browser's answer goes back in the form's hidden
// "credential" field, posted with the form's CSRF token.
"use strict";

(function () {
  function toBytes(text) {
    const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const padded = b64 + "===".slice((b64.length + 3) % 4);
    return Uint8Array.from(atob(padded), function (c) { return c.charCodeAt(0); }).buffer;
  }

  function toText(buffer) {
    let s = "";
    new Uint8Array(buffer).forEach(function (b) { s += String.fromCharCode(b); });
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function creationOptions(o) {
    o.challenge = toBytes(o.challenge);
    o.user.id = toBytes(o.user.id);
    (o.excludeCredentials || []).forEach(function (c) { c.id = toBytes(c.id); });
    return o;
  }

  function requestOptions(o) {
    o.challenge = toBytes(o.challenge);
    (o.allowCredentials || []).forEach(function (c) { c.id = toBytes(c.id); });
    return o;
  }

  // The credential as the JSON WebAuthn Level 3 defines (PublicKeyCredential.toJSON()).
  function asJSON(credential) {
    const r = credential.response;
    const out = {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      clientExtensionResults: credential.getClientExtensionResults(),
      response: { clientDataJSON: toText(r.clientDataJSON) },
    };
    if (credential.authenticatorAttachment) {
      out.authenticatorAttachment = credential.authenticatorAttachment;
    }
    if (r.attestationObject) {
      out.response.attestationObject = toText(r.attestationObject);
      out.response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      out.response.authenticatorData = toText(r.authenticatorData);
      out.response.signature = toText(r.signature);
      if (r.userHandle) { out.response.userHandle = toText(r.userHandle); }
    }
    return out;
  }

  function wire(form) {
    const button = form.querySelector("[data-passkey-go]");
    const status = form.querySelector("[data-passkey-status]");
    form.hidden = false;
    button.addEventListener("click", async function () {
      const options = JSON.parse(form.dataset.passkeyOptions);
      button.disabled = true;
      status.textContent = "Waiting for your passkey…";
      try {
        const credential = form.dataset.passkey === "create"
          ? await navigator.credentials.create({ publicKey: creationOptions(options) })
          : await navigator.credentials.get({ publicKey: requestOptions(options) });
        form.querySelector("input[name=credential]").value = JSON.stringify(asJSON(credential));
        form.submit();
      } catch (err) {
        button.disabled = false;
        status.textContent = "The passkey was not used (" + err.name + "). Try again, or use a code.";
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (!window.PublicKeyCredential || !navigator.credentials) { return; }
    document.querySelectorAll("form[data-passkey-only]").forEach(function (f) { f.hidden = false; });
    document.querySelectorAll("form[data-passkey]").forEach(wire);
  });
})();
