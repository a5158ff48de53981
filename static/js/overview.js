// The overview refreshes itself: every data-refresh-seconds it fetches its sections
// (/?fragment=1) and swaps them in, without a reload. It waits while the tab is hidden
// (and catches up when it shows again), keeps the focus on the link that had it, leaves
// the page alone while the reader selects text in it, and announces a change of the
// summary politely. Without this script the page is read once, like any other.
(function () {
  "use strict";

  const container = document.querySelector("[data-overview-url]");
  if (!container) return;
  const status = document.querySelector("[data-overview-status]");
  const announce = document.querySelector("[data-overview-announce]");
  const url = container.dataset.overviewUrl;
  let timer = null;
  let due = false;
  let inFlight = false;
  let stopped = false;
  let summary = sectionsOf(container)?.dataset.summary || "";

  function seconds() {
    const value = Number(container.dataset.refreshSeconds);
    return Number.isFinite(value) && value >= 0.2 ? value : 30;
  }

  function every() {
    const s = seconds();
    return s >= 1 ? `${Math.round(s)} s` : `${s} s`;
  }

  function clock(date) {
    return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  function say(text, failing) {
    if (!status) return;
    status.textContent = text;
    status.classList.toggle("failing", Boolean(failing));
  }

  function sectionsOf(root) {
    return root.querySelector("[data-overview-sections]");
  }

  function schedule() {
    clearTimeout(timer);
    if (!stopped) timer = setTimeout(tick, seconds() * 1000);
  }

  function tick() {
    if (document.hidden) {
      due = true; // caught up when the tab shows again
      return;
    }
    refresh();
  }

  // What identifies the focused element across a swap: the same link (address and
  // text) or the same element id.
  function focusKey(element) {
    if (!element || element === container || !container.contains(element)) return null;
    return {
      id: element.id,
      href: element.getAttribute("href"),
      text: element.textContent.trim(),
    };
  }

  function refocus(key, fresh) {
    if (!key) return;
    let found = key.id ? fresh.querySelector(`#${CSS.escape(key.id)}`) : null;
    if (!found && key.href) {
      found = [...fresh.querySelectorAll("a[href]")].find(
        (a) => a.getAttribute("href") === key.href && a.textContent.trim() === key.text,
      );
    }
    // The link is gone (its alert resolved): the region keeps the focus, not the body.
    (found || container).focus({ preventScroll: true });
  }

  function selecting() {
    const selection = window.getSelection();
    return (
      selection && !selection.isCollapsed && selection.rangeCount > 0 &&
      container.contains(selection.getRangeAt(0).commonAncestorContainer)
    );
  }

  async function refresh() {
    if (inFlight || stopped) return;
    if (selecting()) {
      schedule(); // the reader is copying a trace id: next time
      return;
    }
    inFlight = true;
    due = false;
    try {
      const response = await fetch(url, {
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "text/html" },
      });
      const landed = new URL(response.url, window.location.href);
      if (response.redirected && landed.pathname !== window.location.pathname) {
        stopped = true; // the session ended: the login page is no fragment
        say("Signed out: reload the page to sign in again.", true);
        return;
      }
      if (!response.ok) throw new Error(`the server answered ${response.status}`);
      const parsed = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = sectionsOf(parsed);
      if (!fresh) throw new Error("the answer held no overview");
      const key = focusKey(document.activeElement);
      const adopted = document.adoptNode(fresh);
      container.replaceChildren(adopted);
      refocus(key, adopted);
      const now = new Date();
      container.dataset.refreshedAt = now.toISOString();
      container.dataset.refreshes = String(Number(container.dataset.refreshes || 0) + 1);
      say(`Refreshed at ${clock(now)}; again every ${every()} while this tab shows.`);
      const next = adopted.dataset.summary || "";
      if (announce && next !== summary) announce.textContent = `Overview updated: ${next}`;
      summary = next;
    } catch (error) {
      say(
        `Could not refresh at ${clock(new Date())} (${error.message}); ` +
          `trying again in ${every()}. What shows may be out of date.`,
        true,
      );
    } finally {
      inFlight = false;
      schedule();
    }
  }

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && due) refresh();
  });

  say(`Refreshes every ${every()} while this tab shows.`);
  schedule();
})();
