// Outbound's dashboard: live numbers without a reload. The pages work without this script; it only keeps
// them current. An element with data-live-url is polled every data-live-seconds for JSON of the form
// {"values": {"<key>": "<text>"}, "bars": {"<key>": {"value": n, "max": m}}}, and every element inside it
// marked data-live="<key>" (text) or data-live-bar="<key>" (a <progress>) is updated in place. The answer's
// "next_seconds" stretches the interval when the numbers are costly to compute.
(function () {
  "use strict";

  var MIN_SECONDS = 2;
  var MAX_BACKOFF_SECONDS = 60;

  function applyValues(root, values) {
    root.querySelectorAll("[data-live]").forEach(function (el) {
      var key = el.getAttribute("data-live");
      if (Object.prototype.hasOwnProperty.call(values, key)) {
        var text = String(values[key]);
        if (el.textContent !== text) { el.textContent = text; }
      }
    });
  }

  function applyBars(root, bars) {
    root.querySelectorAll("progress[data-live-bar]").forEach(function (el) {
      var bar = bars[el.getAttribute("data-live-bar")];
      if (bar && typeof bar.value === "number" && typeof bar.max === "number") {
        el.max = Math.max(bar.max, 1);
        el.value = Math.min(bar.value, el.max);
      }
    });
  }

  function poll(root) {
    var url = root.getAttribute("data-live-url");
    var seconds = Math.max(Number(root.getAttribute("data-live-seconds")) || 5, MIN_SECONDS);
    var MAX_SECONDS = 300;
    var failures = 0;

    function schedule() {
      // After a failure wait longer (up to a minute) so a server that is down is not hammered.
      var wait = Math.min(seconds * Math.pow(2, failures), MAX_BACKOFF_SECONDS);
      window.setTimeout(tick, wait * 1000);
    }

    function tick() {
      if (document.hidden) { schedule(); return; }
      fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (response) {
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          return response.json();
        })
        .then(function (data) {
          failures = 0;
          if (typeof data.next_seconds === "number") {
            seconds = Math.min(Math.max(data.next_seconds, MIN_SECONDS), MAX_SECONDS);
          }
          applyValues(root, data.values || {});
          applyBars(root, data.bars || {});
          root.setAttribute("data-live-updated", new Date().toISOString());
        })
        .catch(function () { failures = Math.min(failures + 1, 5); })
        .then(schedule);
    }

    schedule();
  }

  function confirmForms() {
    // A form marked data-confirm asks before it acts (pausing a campaign, resolving a send).
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live-url]").forEach(poll);
    confirmForms();
  });
})();
