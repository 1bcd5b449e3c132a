// Live parts: an element with data-live is fetched again every two seconds while the work it
// shows goes on (it says so with a data-watching element inside), and replaced only when it
// changed. When the work ends, a part marked data-reload-when-done loads its page again, so that
// everything on it (its buttons too) is current; a session that ended sends the whole page to
// sign in. Without this script
// the page shows the same, current at each load.
"use strict";
function follow(element) {
  const watching = () => element.querySelector("[data-watching]") !== null;
  const refresh = async () => {
    try {
      const response = await fetch(element.dataset.live, { credentials: "same-origin" });
      if (response.redirected || !response.ok) {
        window.location.reload();
        return;
      }
      const text = await response.text();
      if (text !== element.innerHTML) {
        element.innerHTML = text;
      }
    } catch (e) {
      // A missed refresh is retried at the next tick.
    }
    if (watching()) {
      setTimeout(refresh, 2000);
    } else if ("reloadWhenDone" in element.dataset) {
      window.location.reload();
    }
  };
  if (watching()) {
    setTimeout(refresh, 2000);
  }
}
document.querySelectorAll("[data-live]").forEach(follow);
