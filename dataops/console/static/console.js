// dataops console: small progressive enhancements; every page works without this file.
// - <form data-confirm="Push 40 images to vendor-a?">: asks before submitting.
// - <select data-autosubmit>: submits its form when the choice changes.
// - <main data-refresh="10">: reloads the page every 10 s while the tab is visible
//   (live job progress), unless the user is typing in a form.
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
      return;
    }
    var buttons = form.querySelectorAll("button[type=submit]");
    window.setTimeout(function () {
      buttons.forEach(function (b) { b.disabled = true; });
    }, 0);
  });

  document.addEventListener("change", function (event) {
    var field = event.target;
    if (field instanceof HTMLSelectElement && field.hasAttribute("data-autosubmit") && field.form) {
      field.form.requestSubmit();
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    var holder = document.querySelector("[data-refresh]");
    if (!holder) return;
    var seconds = parseInt(holder.getAttribute("data-refresh"), 10);
    if (!(seconds >= 2)) return;
    window.setInterval(function () {
      var typing = document.activeElement && /^(INPUT|SELECT|TEXTAREA)$/.test(document.activeElement.tagName);
      if (document.visibilityState === "visible" && !typing) window.location.reload();
    }, seconds * 1000);
  });
})();

// Live job progress: <section data-poll="/console/jobs/active.json"> holding elements with
// data-job="ID" (each with a <progress> and a [data-job-status] text) asks the URL every few
// seconds for {"jobs": [{"id", "status", "progress_done", "progress_total"}]} and updates
// them; when a watched job is no longer pending or running the page reloads once, to show
// what the job made.
(function () {
  "use strict";

  var ACTIVE = { pending: true, running: true };

  function update(holder, jobs) {
    var byId = {};
    jobs.forEach(function (job) { byId[job.id] = job; });
    var finished = false;
    holder.querySelectorAll("[data-job]").forEach(function (row) {
      var job = byId[row.getAttribute("data-job")];
      if (!job || !ACTIVE[job.status]) {
        finished = true;
        return;
      }
      var bar = row.querySelector("progress");
      if (bar && job.progress_total > 0) {
        bar.max = job.progress_total;
        bar.value = job.progress_done;
        bar.textContent = job.progress_done + " of " + job.progress_total;
      }
      var status = row.querySelector("[data-job-status]");
      if (status) {
        status.textContent = job.status + (job.progress_total > 0
          ? " · " + job.progress_done + " / " + job.progress_total : "");
      }
    });
    return finished;
  }

  document.addEventListener("DOMContentLoaded", function () {
    var holder = document.querySelector("[data-poll]");
    if (!holder || !window.fetch) return;
    var url = holder.getAttribute("data-poll");
    var timer = window.setInterval(function () {
      if (document.visibilityState !== "visible") return;
      window.fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (answer) { return answer.ok ? answer.json() : null; })
        .then(function (body) {
          if (body && update(holder, body.jobs || [])) {
            window.clearInterval(timer);
            window.location.reload();
          }
        })
        .catch(function () { /* keep the last numbers; the next poll may work */ });
    }, 2000);
  });
})();
