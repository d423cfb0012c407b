// The appointment page while the backfill books its slot (templates/staff/slot_story.html):
// reload every few seconds until the page no longer says "Backfill running". A file of our
// own, as the Content Security Policy allows no inline script.
(function () {
  var running = document.querySelector("[data-refresh-seconds]");
  if (!running) return;
  var seconds = parseFloat(running.getAttribute("data-refresh-seconds")) || 3;
  window.setTimeout(function () {
    // Someone typing in a form keeps what they typed: no reload then.
    if (document.activeElement && /^(INPUT|SELECT|TEXTAREA)$/.test(document.activeElement.tagName)) return;
    window.location.reload();
  }, seconds * 1000);
})();
