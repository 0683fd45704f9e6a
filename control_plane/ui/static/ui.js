// orgplane admin UI: progressive enhancement only. Every page works without this file.
// Everything inserted into the page goes through textContent, never innerHTML.
"use strict";

(function () {
  const POLL_MS = 2000;
  const MAX_POLLS = 1800; // one hour of live refresh per page view

  function text(el, value) { if (el) { el.textContent = value; } }

  // Live refresh of the instance phase and timeline on the org page.
  function liveStatus(section) {
    const url = section.dataset.statusUrl;
    let polls = 0;
    async function tick() {
      polls += 1;
      let answer;
      try {
        answer = await fetch(url, { headers: { Accept: "application/json" } });
      } catch (_) {
        return schedule();
      }
      if (answer.status === 404) {
        const note = document.getElementById("live-note");
        text(note, note ? note.dataset.gone : "");
        return;
      }
      if (!answer.ok) { return; }
      const s = await answer.json();
      const badge = document.getElementById("phase-badge");
      if (badge) { badge.className = "badge " + s.tone; text(badge, s.phase); }
      text(document.getElementById("phase-reason"), s.phase === "running" ? "" : s.reason);
      text(document.getElementById("heartbeat"), s.heartbeat);
      text(document.getElementById("desired"), s.desired_state);
      text(document.getElementById("endpoint"), s.endpoint);
      const list = document.getElementById("timeline");
      if (list) {
        list.replaceChildren(...s.events.map(function (e) {
          const li = document.createElement("li");
          const at = document.createElement("span");
          at.className = "muted"; at.textContent = e.at + " ";
          const kind = document.createElement("strong");
          kind.textContent = e.kind;
          li.append(at, kind, " " + e.message);
          return li;
        }));
      }
      schedule();
    }
    function schedule() { if (polls < MAX_POLLS) { setTimeout(tick, POLL_MS); } }
    schedule();
  }

  // The pending-deletion countdown.
  function countdown(el) {
    const deadline = Date.parse(el.dataset.deadline);
    function render() {
      const left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
      if (left === 0) { el.textContent = "now: deletion is under way"; return; }
      const min = Math.floor(left / 60), sec = left % 60;
      el.textContent = "in " + (min ? min + " min " : "") + sec + " s";
      setTimeout(render, 1000);
    }
    render();
  }

  // Autocomplete from /api/v1/orgs/lookup (or, with data-lookup-source="users", the users
  // list): "open" goes to the org, "fill" puts its id (a user's email) in.
  function autocomplete(input) {
    const list = document.getElementById(input.getAttribute("aria-controls"));
    let items = [], active = -1, timer = null, seq = 0;
    function close() {
      list.hidden = true; input.setAttribute("aria-expanded", "false"); active = -1;
      input.removeAttribute("aria-activedescendant");
    }
    function choose(item) {
      close();
      if (input.dataset.lookup === "open") {
        window.location.assign("/ui/orgs/" + encodeURIComponent(item.value));
      } else {
        input.value = item.value;
      }
    }
    function highlight(index) {
      active = index;
      Array.from(list.children).forEach(function (li, i) {
        li.setAttribute("aria-selected", i === index ? "true" : "false");
      });
      if (index >= 0) { input.setAttribute("aria-activedescendant", list.children[index].id); }
    }
    async function lookup() {
      const q = input.value.trim();
      const mine = ++seq;
      if (!q) { close(); return; }
      let answer;
      const users = input.dataset.lookupSource === "users";
      const url = users ? "/api/v1/users?limit=20&q=" : "/api/v1/orgs/lookup?q=";
      try {
        answer = await fetch(url + encodeURIComponent(q));
      } catch (_) { return; }
      if (!answer.ok || mine !== seq) { return; }
      const found = await answer.json();
      // The users list pages its answer; its entries become lookup items (the email fills in).
      items = users ? found.items.map(function (u) {
        return { value: u.email, label: u.name ? u.name + " (" + u.email + ")" : u.email };
      }) : found;
      list.replaceChildren(...items.map(function (item, i) {
        const li = document.createElement("li");
        li.id = list.id + "-" + i; li.setAttribute("role", "option");
        li.textContent = item.label;
        li.addEventListener("mousedown", function (ev) { ev.preventDefault(); choose(item); });
        return li;
      }));
      list.hidden = items.length === 0;
      input.setAttribute("aria-expanded", items.length ? "true" : "false");
      active = -1;
    }
    input.addEventListener("input", function () {
      clearTimeout(timer); timer = setTimeout(lookup, 200);
    });
    input.addEventListener("keydown", function (ev) {
      if (list.hidden) { return; }
      if (ev.key === "ArrowDown") { ev.preventDefault(); highlight(Math.min(active + 1, items.length - 1)); }
      else if (ev.key === "ArrowUp") { ev.preventDefault(); highlight(Math.max(active - 1, 0)); }
      else if (ev.key === "Enter" && active >= 0) { ev.preventDefault(); choose(items[active]); }
      else if (ev.key === "Escape") { close(); }
    });
    input.addEventListener("blur", function () { setTimeout(close, 150); });
  }

  // Invite, reset and verification links carry the token in the fragment; put it in the
  // form and out of the URL.
  function inviteToken() {
    const field = document.getElementById("f-token");
    const match = /(?:^|&)token=([^&]+)/.exec(window.location.hash.slice(1));
    if (field && match) {
      field.value = decodeURIComponent(match[1]);
      history.replaceState(null, "", window.location.pathname);
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-status-url]").forEach(liveStatus);
    document.querySelectorAll("[data-deadline]").forEach(countdown);
    document.querySelectorAll("input[data-lookup]").forEach(autocomplete);
    if (document.getElementById("accept-form") || document.querySelector("[data-token-form]")) { inviteToken(); }
  });
})();
