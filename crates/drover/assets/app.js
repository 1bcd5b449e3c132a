// Live parts: an element with data-live is fetched again every two seconds while the work it
// shows goes on (it says so with a data-watching element inside). Without this script the
// page still shows the same, current at each load.
"use strict";
function follow(element) {
  const watching = () => element.querySelector("[data-watching]") !== null;
  const refresh = async () => {
    try {
      const response = await fetch(element.dataset.live, { credentials: "same-origin" });
      if (response.ok) {
        element.innerHTML = await response.text();
      }
    } catch (e) {
      // A missed refresh is retried at the next tick.
    }
    if (watching()) {
      setTimeout(refresh, 2000);
    }
  };
  if (watching()) {
    setTimeout(refresh, 2000);
  }
}
document.querySelectorAll("[data-live]").forEach(follow);
